#include "ipa/core/allocator.h"

#include <dlfcn.h>

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

}  // namespace ipa
