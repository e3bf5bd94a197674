#include "ipa/core/error.h"

namespace ipa {

ExitCode exit_code_for(const std::exception& e) noexcept {
    if (dynamic_cast<const ConfigError*>(&e)) return ExitCode::config;
    if (dynamic_cast<const CheckpointError*>(&e)) return ExitCode::checkpoint;
    if (dynamic_cast<const DataError*>(&e)) return ExitCode::data;
    if (dynamic_cast<const DistError*>(&e)) return ExitCode::dist;
    return ExitCode::internal;
}

}  // namespace ipa
