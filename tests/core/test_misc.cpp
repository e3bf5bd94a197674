#include <dlfcn.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "ipa/build_config.h"
#include "ipa/core/allocator.h"
#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/core/logging.h"
#include "ipa/core/run_context.h"
#include "ipa/core/torch_compat.h"

namespace fs = std::filesystem;

namespace {

struct EnvGuard {
    std::vector<std::string> names;
    explicit EnvGuard(std::vector<std::string> n) : names(std::move(n)) {
        for (const auto& v : names) ::unsetenv(v.c_str());
    }
    ~EnvGuard() {
        for (const auto& v : names) ::unsetenv(v.c_str());
    }
};

const std::vector<std::string> kDistVars = {"RANK",
                                            "WORLD_SIZE",
                                            "LOCAL_RANK",
                                            "SLURM_PROCID",
                                            "SLURM_NTASKS",
                                            "SLURM_LOCALID",
                                            "OMPI_COMM_WORLD_RANK",
                                            "OMPI_COMM_WORLD_SIZE",
                                            "OMPI_COMM_WORLD_LOCAL_RANK"};

TEST(RunContext, SingleProcessWithoutLauncherVariables) {
    EnvGuard g(kDistVars);
    const auto ctx = ipa::RunContext::from_env();
    EXPECT_EQ(ctx.rank, 0);
    EXPECT_EQ(ctx.world_size, 1);
    EXPECT_TRUE(ctx.is_main());
}

TEST(RunContext, TorchrunThenSlurmThenOpenMpi) {
    EnvGuard g(kDistVars);
    ::setenv("SLURM_PROCID", "3", 1);
    ::setenv("SLURM_NTASKS", "8", 1);
    ::setenv("SLURM_LOCALID", "1", 1);
    auto ctx = ipa::RunContext::from_env();
    EXPECT_EQ(ctx.rank, 3);
    EXPECT_EQ(ctx.world_size, 8);
    EXPECT_EQ(ctx.local_rank, 1);
    ::setenv("RANK", "5", 1);
    ::setenv("WORLD_SIZE", "6", 1);
    ctx = ipa::RunContext::from_env();  // torchrun's variables win
    EXPECT_EQ(ctx.rank, 5);
    EXPECT_EQ(ctx.world_size, 6);
    EXPECT_EQ(ctx.local_rank, 5);
}

TEST(RunContext, InconsistentVariablesAreDistErrors) {
    EnvGuard g(kDistVars);
    ::setenv("RANK", "4", 1);
    ::setenv("WORLD_SIZE", "4", 1);
    EXPECT_THROW(ipa::RunContext::from_env(), ipa::DistError);
    ::setenv("WORLD_SIZE", "x", 1);
    EXPECT_THROW(ipa::RunContext::from_env(), ipa::DistError);
    ::unsetenv("WORLD_SIZE");
    EXPECT_THROW(ipa::RunContext::from_env(), ipa::DistError);
}

TEST(RunContext, ParsesDtypesAndDevices) {
    EXPECT_EQ(ipa::parse_dtype("bf16"), torch::kBFloat16);
    EXPECT_EQ(ipa::parse_dtype("fp32"), torch::kFloat);
    EXPECT_EQ(ipa::dtype_name(torch::kBFloat16), "bf16");
    EXPECT_THROW(ipa::parse_dtype("int4"), ipa::ConfigError);
    EXPECT_TRUE(ipa::parse_device("cpu").is_cpu());
    EXPECT_EQ(ipa::parse_device("cuda:1").index(), 1);
    EXPECT_THROW(ipa::parse_device("tpu"), ipa::ConfigError);
}

TEST(Errors, ExitCodesPerClass) {
    EXPECT_EQ(ipa::exit_code_for(ipa::ConfigError("x")), ipa::ExitCode::config);
    EXPECT_EQ(ipa::exit_code_for(ipa::CheckpointError("x")), ipa::ExitCode::checkpoint);
    EXPECT_EQ(ipa::exit_code_for(ipa::DataError("x")), ipa::ExitCode::data);
    EXPECT_EQ(ipa::exit_code_for(ipa::DistError("x")), ipa::ExitCode::dist);
    EXPECT_EQ(ipa::exit_code_for(std::runtime_error("x")), ipa::ExitCode::internal);
    EXPECT_THROW(ipa::log::parse_level("loud"), ipa::ConfigError);
    EXPECT_EQ(ipa::log::parse_level("debug"), spdlog::level::debug);
}

TEST(Errors, CliReportFirstLineThenDetails) {
    testing::internal::CaptureStderr();
    const int code = ipa::report_cli_error("ipa-x", ipa::CheckpointError("2 bad keys in a.pth\n  k1\n  k2"));
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "ipa-x: error: 2 bad keys in a.pth\n  k1\n  k2\n");
    EXPECT_EQ(code, static_cast<int>(ipa::ExitCode::checkpoint));
    testing::internal::CaptureStderr();
    EXPECT_EQ(ipa::report_cli_error("ipa-y", std::runtime_error("boom")), 10);
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "ipa-y: error: boom\n");
}

TEST(AtomicFile, CommitReplacesAndAbandonLeavesTargetIntact) {
    const fs::path dir = fs::temp_directory_path() / "ipa_test_atomic";
    fs::create_directories(dir);
    const fs::path target = dir / "decisions.csv";
    ipa::write_file_atomic(target, "v1\n");
    EXPECT_EQ(ipa::read_file(target), "v1\n");
    fs::path temp;
    {
        ipa::AtomicFile f(target);
        temp = f.temp_path();
        f.write("half-written");
        EXPECT_TRUE(fs::exists(temp));
        // no commit: simulated failure
    }
    EXPECT_FALSE(fs::exists(temp));
    EXPECT_EQ(ipa::read_file(target), "v1\n");
    ipa::write_file_atomic(target, "v2\n");
    EXPECT_EQ(ipa::read_file(target), "v2\n");
    EXPECT_THROW(ipa::read_file(dir / "missing"), ipa::DataError);
    EXPECT_THROW(ipa::AtomicFile(dir / "no" / "such" / "dir" / "f"), ipa::DataError);
    fs::remove_all(dir);
}

TEST(TorchCompat, AttentionMatchesReferenceWithAndWithoutMask) {
    torch::manual_seed(0);
    auto q = torch::randn({2, 3, 5, 8}, torch::kDouble);
    auto k = torch::randn({2, 3, 7, 8}, torch::kDouble);
    auto v = torch::randn({2, 3, 7, 8}, torch::kDouble);
    auto out = ipa::compat::attention(q, k, v);
    auto ref = ipa::compat::attention_reference(q, k, v);
    EXPECT_LT((out - ref).abs().max().item<double>(), 1e-12);
    // Key mask: the last 3 keys are padding.
    auto mask = torch::ones({2, 1, 1, 7}, torch::kBool);
    mask.index_put_({torch::indexing::Slice(), 0, 0, torch::indexing::Slice(4, 7)}, false);
    out = ipa::compat::attention(q, k, v, mask);
    ref = ipa::compat::attention_reference(q.narrow(2, 0, 5), k.narrow(2, 0, 4), v.narrow(2, 0, 4));
    EXPECT_LT((out - ref).abs().max().item<double>(), 1e-12);
}

TEST(TorchCompat, FusedAttentionKernelIsUsedOnLibTorch2) {
    // The DiT's layout: [B, H, L, d] fp32 on CPU, with and without the key-padding mask.
    torch::manual_seed(1);
    auto q = torch::randn({1, 4, 96, 32});
    auto k = torch::randn({1, 4, 96, 32});
    auto v = torch::randn({1, 4, 96, 32});
    auto mask = torch::ones({1, 1, 1, 96}, torch::kBool);
    mask.index_put_({0, 0, 0, torch::indexing::Slice(80, 96)}, false);
    const auto plain = ipa::compat::attention_backend(q, k, v);
    const auto masked = ipa::compat::attention_backend(q, k, v, mask);
    std::printf("[sdpa] LibTorch %s: unmasked -> %s, key-padding mask -> %s\n", ipa::compat::torch_version().c_str(),
                plain.c_str(), masked.c_str());
    if (ipa::compat::kHasFusedSDPA) {
        EXPECT_EQ(plain, "flash") << "the fused CPU SDPA kernel is not selected";
        EXPECT_EQ(masked, "flash") << "the fused CPU SDPA kernel is not selected with a mask";
    } else {
        EXPECT_EQ(plain, "math (LibTorch 1.13)");
    }
    // Whatever the kernel, fp32 results agree with the float64 reference to fp32 accuracy.
    const auto out = ipa::compat::attention(q, k, v, mask).to(torch::kDouble);
    const auto ref =
        ipa::compat::attention_reference(q.to(torch::kDouble), k.to(torch::kDouble), v.to(torch::kDouble), mask);
    EXPECT_LT((out - ref).abs().max().item<double>(), 1e-5);
}

TEST(TorchCompat, AutocastGuardRestoresState) {
    const bool before = ipa::compat::AutocastGuard::is_enabled(torch::kCPU);
    {
        ipa::compat::AutocastGuard g(torch::kCPU, torch::kBFloat16);
        EXPECT_TRUE(ipa::compat::AutocastGuard::is_enabled(torch::kCPU));
        auto y = torch::mm(torch::randn({4, 4}), torch::randn({4, 4}));
        EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(ipa::compat::AutocastGuard::is_enabled(torch::kCPU), before);
    auto y = torch::mm(torch::randn({4, 4}), torch::randn({4, 4}));
    EXPECT_EQ(y.scalar_type(), torch::kFloat);
    EXPECT_FALSE(ipa::compat::torch_version().empty());
}

}  // namespace

// The executables are linked with the allocator the build chose (IPA_ALLOCATOR): linking
// must keep a library nothing references by name (--no-as-needed), and it must serve malloc.
TEST(HostAllocator, IsTheOneTheBuildLinked) {
    const auto in_use = ipa::host_allocator();
    if (std::string(IPA_HOST_ALLOCATOR) == "tcmalloc") {
        EXPECT_EQ(in_use.rfind("tcmalloc", 0), 0u) << in_use;
        void* big = std::malloc(std::size_t{64} << 20);  // served and returned without trouble
        ASSERT_NE(big, nullptr);
        std::free(big);
    } else if (std::getenv("LD_PRELOAD") == nullptr) {
        EXPECT_EQ(in_use, "system");
    }
}

namespace {
/// The build sets the idle-thread defaults (LibTorch on OpenBLAS: Debian's).
bool with_openblas() { return IPA_THREAD_DEFAULTS_ON != 0; }
}  // namespace

// Where the BLAS is OpenBLAS, every ipa executable (this test binary too) sets the threading
// runtimes' idle-thread defaults before any library initialises, unless the environment has
// them (src/core/process_start.cpp); the OpenMP runtime must have read ours.
TEST(ThreadDefaults, SetBeforeTheRuntimesStart) {
    const char* marker = std::getenv("IPA_THREAD_DEFAULTS");
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    const char* timeout = std::getenv("OPENBLAS_THREAD_TIMEOUT");
    if (!with_openblas()) {  // MKL on the OpenMP pool (the PyPI wheel): nothing set by ipa
        EXPECT_EQ(marker, nullptr);
        EXPECT_EQ(ipa::thread_settings().find("(ipa defaults)"), std::string::npos) << ipa::thread_settings();
        return;
    }
    ASSERT_NE(policy, nullptr);
    ASSERT_NE(timeout, nullptr);
    const auto settings = ipa::thread_settings();
    const bool ours = marker && std::string(marker).find("OMP_WAIT_POLICY") != std::string::npos;
    if (ours) {
        EXPECT_STREQ(policy, "PASSIVE");
        EXPECT_NE(settings.find("OMP_WAIT_POLICY=PASSIVE"), std::string::npos) << settings;
        EXPECT_NE(settings.find("(ipa defaults)"), std::string::npos) << settings;
    } else {
        EXPECT_NE(settings.find("(from the environment)"), std::string::npos) << settings;
    }
    // libgomp (GCC >= 9) prints the values it parsed at its start-up.
    using Display = void (*)(int);
    if (const auto display = reinterpret_cast<Display>(dlsym(RTLD_DEFAULT, "omp_display_env"))) {
        testing::internal::CaptureStderr();
        display(0);
        const auto parsed = testing::internal::GetCapturedStderr();
        EXPECT_NE(parsed.find(std::string("OMP_WAIT_POLICY = '") + policy + "'"), std::string::npos) << parsed;
    }
}

// The executable's start-up re-execution: a program started without the variables runs
// with ipa's defaults; one the user set is kept; IPA_THREAD_DEFAULTS=0 turns it off.
TEST(ThreadDefaults, ProgramsStartWithThemUnlessTheUserSetThem) {
    auto version = [](const std::string& env) {
        const std::string cmd = "env -u OMP_WAIT_POLICY -u OPENBLAS_THREAD_TIMEOUT -u IPA_THREAD_DEFAULTS " + env +
                                " '" IPA_INSPECT_BIN "' version 2>&1";
        std::string out;
        FILE* p = ::popen(cmd.c_str(), "r");
        if (!p) return out;
        char buf[512];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        EXPECT_EQ(::pclose(p), 0) << out;
        return out;
    };
    const auto plain = version("");
    if (!with_openblas()) {  // the runtimes' own defaults where the BLAS runs on the OpenMP pool
        EXPECT_NE(plain.find("idle threads: OMP_WAIT_POLICY=(unset) OPENBLAS_THREAD_TIMEOUT=(unset) (from the "
                             "environment)"),
                  std::string::npos)
            << plain;
        return;
    }
    EXPECT_NE(plain.find("idle threads: OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4 (ipa defaults)"),
              std::string::npos)
        << plain;
    const auto user = version("OMP_WAIT_POLICY=ACTIVE");
    EXPECT_NE(user.find("OPENBLAS_THREAD_TIMEOUT=4 (ipa defaults), OMP_WAIT_POLICY=ACTIVE (from the environment)"),
              std::string::npos)
        << user;
    const auto off = version("IPA_THREAD_DEFAULTS=0");
    EXPECT_NE(off.find("IPA_THREAD_DEFAULTS=0 turned the ipa defaults off"), std::string::npos) << off;
}
