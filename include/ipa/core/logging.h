#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace ipa::log {

/// Installs the process logger: stderr, pattern with time, rank and level. Rank 0 logs at
/// `level` (default info); other ranks at warn unless `all_ranks` is set. Call once from
/// `main` (the apps do); libraries just use spdlog::info/warn/error.
void init(int rank = 0, const std::string& level = "info", bool all_ranks = false);

/// Parses "trace|debug|info|warn|error|off"; ConfigError otherwise.
spdlog::level::level_enum parse_level(const std::string& name);

}  // namespace ipa::log
