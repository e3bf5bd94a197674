// Linked into every ipa executable (cmake/IpaTargets.cmake, ipa_target_defaults): defaults for
// the threading runtimes' idle threads where the BLAS is OpenBLAS. docs/architecture.md §12.
//
// A CPU step interleaves LibTorch's OpenMP regions (element-wise ops, softmax, norms) with
// GEMMs that OpenBLAS runs on its own pthreads. Both runtimes keep their idle threads
// spinning for a while after each piece of work, so on a machine with as many cores as
// threads the idle pool of one steals the cores the other computes on: a third of a training
// step went to system time (sched_yield) and the step took about twice as long. Idle OpenMP
// threads that sleep at once (OMP_WAIT_POLICY=PASSIVE) and OpenBLAS threads that stop
// spinning after 2^4 cycles (OPENBLAS_THREAD_TIMEOUT=4) remove that.
//
// Both runtimes read these variables once, in their own initialisers, before main(). Setting
// them from a constructor is too late, and from .preinit_array (before every library's
// initialiser) it does not hold: libc's own initialiser sets `environ` back to the process's
// original environment afterwards. So the executable's .preinit_array entry — before any
// library has initialised, when only the loader has run (~25 ms) — re-executes the program
// with the missing variables added. A value the user set is kept; IPA_THREAD_DEFAULTS lists
// what was added (ipa::thread_settings() reports it, children inherit it, and it stops a
// second re-execution); IPA_THREAD_DEFAULTS=0 turns all this off. Only in builds on a LibTorch
// whose BLAS is OpenBLAS (Debian's; IPA_THREAD_DEFAULTS_ON from CMake) and not under
// sanitizers (their runtimes initialise from .preinit_array too).

#include <unistd.h>

#include <cstddef>
#include <cstring>

namespace {

/// The value of NAME in `envp`, or nullptr.
const char* find(char** envp, const char* name) {
    const std::size_t n = std::strlen(name);
    for (char** e = envp; e && *e; ++e) {
        if (std::strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    }
    return nullptr;
}

void set_thread_defaults(int, char** argv, char** envp) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return;
#endif
#if !IPA_THREAD_DEFAULTS_ON
    // LibTorch's BLAS runs on the OpenMP pool (MKL in the PyPI wheel): no second pool to
    // fight with, and sleeping idle OpenMP threads only add a wake-up to every GEMM there
    // (measured: 2.6–3.1 s vs 4.3 s per mid SFT step). Keep the runtimes' defaults.
    return;
#endif
    if (!argv || !envp || find(envp, "IPA_THREAD_DEFAULTS")) return;
    const bool policy = !find(envp, "OMP_WAIT_POLICY") || !*find(envp, "OMP_WAIT_POLICY");
    const bool timeout = !find(envp, "OPENBLAS_THREAD_TIMEOUT") || !*find(envp, "OPENBLAS_THREAD_TIMEOUT");
    if (!policy && !timeout) return;
    std::size_t n = 0;
    while (envp[n]) ++n;
    // No allocation: libc has not initialised yet. The environment has at most a few
    // thousand entries; beyond that, keep the defaults of the runtimes.
    constexpr std::size_t kMax = 8192;
    if (n + 4 > kMax) return;
    static char* env[kMax];
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (std::strncmp(envp[i], "OMP_WAIT_POLICY=", 16) == 0 && policy) continue;  // empty values
        if (std::strncmp(envp[i], "OPENBLAS_THREAD_TIMEOUT=", 24) == 0 && timeout) continue;
        env[k++] = envp[i];
    }
    static char policy_var[] = "OMP_WAIT_POLICY=PASSIVE";
    static char timeout_var[] = "OPENBLAS_THREAD_TIMEOUT=4";
    static char both[] = "IPA_THREAD_DEFAULTS=OMP_WAIT_POLICY,OPENBLAS_THREAD_TIMEOUT";
    static char only_policy[] = "IPA_THREAD_DEFAULTS=OMP_WAIT_POLICY";
    static char only_timeout[] = "IPA_THREAD_DEFAULTS=OPENBLAS_THREAD_TIMEOUT";
    if (policy) env[k++] = policy_var;
    if (timeout) env[k++] = timeout_var;
    env[k++] = policy && timeout ? both : (policy ? only_policy : only_timeout);
    env[k] = nullptr;
    execve("/proc/self/exe", argv, env);  // returns only on failure: run on with what we have
}

}  // namespace

using PreinitFn = void (*)(int, char**, char**);
__attribute__((section(".preinit_array"), used)) static const PreinitFn ipa_preinit_thread_defaults =
    set_thread_defaults;
