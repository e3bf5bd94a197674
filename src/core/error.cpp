#include "ipa/core/error.h"

#include <cstdio>
#include <cstring>

namespace ipa {

ExitCode exit_code_for(const std::exception& e) noexcept {
    if (dynamic_cast<const ConfigError*>(&e)) return ExitCode::config;
    if (dynamic_cast<const CheckpointError*>(&e)) return ExitCode::checkpoint;
    if (dynamic_cast<const DataError*>(&e)) return ExitCode::data;
    if (dynamic_cast<const DistError*>(&e)) return ExitCode::dist;
    return ExitCode::internal;
}

int report_cli_error(const char* app, const std::exception& e) noexcept {
    // Only C stdio here: nothing that could throw while an error is being reported.
    const char* msg = e.what();
    const char* nl = std::strchr(msg, '\n');
    const int first = nl ? static_cast<int>(nl - msg) : static_cast<int>(std::strlen(msg));
    std::fprintf(stderr, "%s: error: %.*s\n", app, first, msg);
    if (nl) std::fprintf(stderr, "%s\n", nl + 1);
    return static_cast<int>(exit_code_for(e));
}

}  // namespace ipa
