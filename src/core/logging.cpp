#include "ipa/core/logging.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "ipa/core/error.h"

namespace ipa::log {

spdlog::level::level_enum parse_level(const std::string& name) {
    static const std::pair<const char*, spdlog::level::level_enum> table[] = {
        {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
        {"warn", spdlog::level::warn},   {"error", spdlog::level::err},   {"off", spdlog::level::off},
    };
    for (const auto& [n, l] : table) {
        if (name == n) return l;
    }
    throw ConfigError(fmt::format("log level '{}' is not one of trace, debug, info, warn, error, off", name));
}

void init(int rank, const std::string& level, bool all_ranks) {
    auto logger = spdlog::stderr_color_mt(fmt::format("ipa-rank{}", rank));
    logger->set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S.%e] [rank {}] [%^%l%$] %v", rank));
    auto lvl = parse_level(level);
    if (rank != 0 && !all_ranks && lvl < spdlog::level::warn) lvl = spdlog::level::warn;
    logger->set_level(lvl);
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
}

}  // namespace ipa::log
