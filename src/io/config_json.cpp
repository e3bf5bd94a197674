#include "ipa/io/config_json.h"

#include <fmt/format.h>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"

namespace ipa::io {

std::optional<ConfigJson> read_config_json(const Checkpoint& ckpt) {
    const auto files = ckpt.files();
    if (files.empty()) return std::nullopt;
    ConfigJson c;
    c.path = files.front().parent_path() / "config.json";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(c.path, ec)) return std::nullopt;
    try {
        c.json = nlohmann::json::parse(read_file(c.path));
    } catch (const nlohmann::json::exception& e) {
        throw CheckpointError(fmt::format("'{}' is not valid JSON ({})", c.path.string(), e.what()));
    }
    return c;
}

}  // namespace ipa::io
