#include "ipa/core/allocator.h"

#include <dlfcn.h>

#include <cstdlib>

namespace ipa {

std::string host_allocator() {
    // gperftools exports `const char* tc_version(int* major, int* minor, const char** patch)`.
    using Version = const char* (*)(int*, int*, const char**);
    if (const auto fn = reinterpret_cast<Version>(dlsym(RTLD_DEFAULT, "tc_version"))) {
        int major = 0, minor = 0;
        const char* patch = nullptr;
        const char* text = fn(&major, &minor, &patch);
        return std::string("tcmalloc") + (text ? std::string(" (") + text + ")" : std::string());
    }
    return "system";
}

std::string thread_settings() {
    std::string out, ours, users;
    const char* marker = std::getenv("IPA_THREAD_DEFAULTS");
    const std::string set_by_ipa = marker ? std::string(",") + marker + "," : std::string();
    for (const char* name : {"OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT"}) {
        const char* v = std::getenv(name);
        const std::string item = std::string(name) + "=" + (v && *v ? v : "(unset)");
        (set_by_ipa.find(std::string(",") + name + ",") != std::string::npos ? ours : users) += " " + item;
    }
    if (!ours.empty()) out += ours.substr(1) + " (ipa defaults)";
    if (!users.empty()) out += (out.empty() ? "" : ", ") + users.substr(1) + " (from the environment)";
    if (marker && std::string(marker) == "0") out += "; IPA_THREAD_DEFAULTS=0 turned the ipa defaults off";
    return out;
}

}  // namespace ipa
