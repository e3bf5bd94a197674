#pragma once

// File names derived from user-given ids (manifest ids become sheet and cache file names).

#include <cstdint>
#include <string>
#include <string_view>

namespace ipa {

/// FNV-1a 64-bit hash (stable across platforms and runs; not cryptographic).
uint64_t fnv1a64(std::string_view bytes, uint64_t h = 1469598103934665603ull);

/// `<id><extension>` when the id is safe as a file name (letters, digits, `.`, `_`, `-`;
/// not empty, not starting with `.`), else the id with other characters replaced by `_`,
/// cut to 80 characters, plus `-<16 hex digits of fnv1a64(id)>` — so distinct ids never
/// share a file. `extension` includes its dot (".png").
std::string file_name_for_id(const std::string& id, const std::string& extension);

}  // namespace ipa
