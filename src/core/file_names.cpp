#include "ipa/core/file_names.h"

#include <fmt/format.h>

namespace ipa {

uint64_t fnv1a64(std::string_view bytes, uint64_t h) {
    for (const unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
    return h;
}

std::string file_name_for_id(const std::string& id, const std::string& extension) {
    std::string safe = id;
    bool changed = id.empty() || id.front() == '.';
    for (auto& c : safe) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) {
            c = '_';
            changed = true;
        }
    }
    if (!changed) return id + extension;
    if (safe.size() > 80) safe.resize(80);
    return fmt::format("{}-{:016x}{}", safe, fnv1a64(id), extension);
}

}  // namespace ipa
