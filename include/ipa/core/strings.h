#pragma once
// Small string helpers shared by the libraries (one definition each, so that no two
// sources of a library define the same helper: unity builds compile them as one).

#include <ATen/core/Tensor.h>

#include <string>

namespace ipa {

inline bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

inline bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// A tensor's shape as error messages print it: "[2, 3, 4]" ("[]" for a scalar).
inline std::string shape_str(const at::Tensor& t) {
    std::string s = "[";
    for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
    return s + "]";
}

}  // namespace ipa
