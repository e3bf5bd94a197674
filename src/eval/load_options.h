#pragma once
// How the eval feature networks load their user-supplied weights (internal to src/eval).

#include <string>

#include "ipa/io/state_dict.h"

namespace ipa::eval::detail {

/// Strict keys and shapes; only BatchNorm's `num_batches_tracked` counters may be missing
/// (eval mode never reads them, and older or re-saved files lack them).
inline io::LoadOptions strict_allowing_bn_counters() {
    io::LoadOptions o;
    o.strict = true;
    o.allow_missing = [](const std::string& k) {
        static const std::string tail = "num_batches_tracked";
        return k.size() >= tail.size() && k.compare(k.size() - tail.size(), tail.size(), tail) == 0;
    };
    return o;
}

}  // namespace ipa::eval::detail
