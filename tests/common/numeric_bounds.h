#pragma once

// Bounds for parity tests whose reference was computed on another machine.
//
// Low-precision (bf16/fp16) results depend on the CPU's kernels (AVX-512-BF16 / AMX vs AVX2
// paths round at different points), so a test never compares a low-precision result with
// one computed elsewhere for equality. Instead it measures ours against the float64
// reference and bounds that by a multiple of the fixture's own recorded floor: upstream's
// low-precision result vs float64, as measured where the fixture was written.

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace ipa::test {

/// The smallest factor a cross-machine low-precision bound may use: two machines' bf16
/// kernels each land within about one floor of the float64 result, so ours-vs-float64 can
/// exceed the recorded floor; a factor below this would bind the test to the fixture's CPU.
constexpr double kMinCrossMachineFactor = 2.0;

/// `err` = max|ours − float64 reference|, `floor` = max|upstream low precision − float64|
/// from the fixture. Success when err ≤ factor · floor. Fails (naming the reason) for a
/// non-positive floor (the fixture holds no low-precision reference) or a factor below
/// kMinCrossMachineFactor, so a bound tighter than the cross-machine spread cannot be written.
inline ::testing::AssertionResult within_recorded_floor(double err, double floor, double factor) {
    if (!(floor > 0) || !std::isfinite(floor)) {
        return ::testing::AssertionFailure()
               << "recorded floor " << floor << " is not a positive number: the fixture has no low-precision reference";
    }
    if (factor < kMinCrossMachineFactor) {
        return ::testing::AssertionFailure() << "bound factor " << factor << " is below " << kMinCrossMachineFactor
                                             << ": tighter than the spread between CPUs' low-precision kernels";
    }
    if (std::isfinite(err) && err <= factor * floor) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "ours vs float64 " << err << " exceeds " << factor
                                         << " x the recorded floor " << floor << " (= " << factor * floor << ")";
}

}  // namespace ipa::test
