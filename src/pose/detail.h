#pragma once

// Private helpers shared by the pose sources (not installed, not public API).

namespace ipa::pose {

/// The threshold as the reference code compares with it: the shortest decimal that reads
/// back as `t` (0.3f -> 0.3), as a double. Upstream compares float32 scores, widened to
/// double, with the Python float 0.3; so a score of 0.3f counts as above 0.3.
double decimal_threshold(float t);

}  // namespace ipa::pose
