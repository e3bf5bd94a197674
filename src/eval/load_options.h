#pragma once
// How the eval feature networks load their user-supplied weights (internal to src/eval).

#include <string>

#include "ipa/core/strings.h"
#include "ipa/io/state_dict.h"

namespace ipa::eval::detail {

/// Strict keys and shapes; only BatchNorm's `num_batches_tracked` counters may be missing
/// (eval mode never reads them, and older or re-saved files lack them).
inline io::LoadOptions strict_allowing_bn_counters() {
    io::LoadOptions o;
    o.strict = true;
    o.allow_missing = [](const std::string& k) { return ends_with(k, "num_batches_tracked"); };
    return o;
}

}  // namespace ipa::eval::detail
