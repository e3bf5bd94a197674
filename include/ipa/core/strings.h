#pragma once
// Small string helpers shared by the libraries (one definition each, so that no two
// sources of a library define the same helper: unity builds compile them as one).

#include <string>

namespace ipa {

inline bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

inline bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace ipa
