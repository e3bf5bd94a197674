#pragma once

// Flow-matching timesteps and noising, Wan convention (docs/architecture.md §6):
//   x_t = (1 - σ)·x0 + σ·ε,   target v = ε - x0,   timestep = 1000·σ,
//   shift: σ' = s·σ / (1 + (s - 1)·σ).
// Pure functions: no module state, no host syncs.

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace ipa::flow {

/// How training sigmas are drawn.
///   uniform      σ ~ U(0, 1)                  (IPA README: t ~ U(0, 1))
///   logit_normal σ = sigmoid(N(mean, std))    (Wan report, Flow-DPO / SD3)
///   shifted      σ = shift(U(0, 1), s)        (DiffSynth: uniform over a shift-s grid)
enum class TimestepSampling { uniform, logit_normal, shifted };

/// "uniform" | "logit_normal" | "shifted"; anything else is a ConfigError naming the
/// bad value and the allowed ones.
TimestepSampling parse_timestep_sampling(const std::string& name);
const char* to_string(TimestepSampling sampling);

struct TimestepOptions {
    TimestepSampling sampling = TimestepSampling::uniform;
    /// Wan shift s (> 0). Used by `shifted`, and also applied after `logit_normal` when
    /// s != 1 (SD3-style "logit-normal + shift"). With `uniform` it must stay 1: check()
    /// rejects it, so a shift in a config never goes silently unused.
    double shift = 1.0;
    double logit_mean = 0.0;
    double logit_std = 1.0;  ///< > 0
    /// Final sigmas lie in [min_sigma, max_sigma] ⊆ [0, 1]. The range truncates the
    /// distribution (its shape inside the range is kept), it does not rescale it.
    double min_sigma = 0.0;
    double max_sigma = 1.0;

    /// Throws ConfigError for shift <= 0, logit_std <= 0, a range outside [0, 1] or
    /// min > max, non-finite values, and shift != 1 with `uniform`.
    void check() const;
};

/// Draws `batch` sigmas, [batch] float32 on CPU, each in [min_sigma, max_sigma].
/// Deterministic given the state of `gen` (a seeded CPU generator; an undefined one
/// falls back to the global default generator). Sampled by inverse CDF in float64:
/// u ~ U(F(lo), F(hi)) with F the CDF of the unshifted law and lo/hi the range mapped
/// back through the inverse shift, then σ = shift(F⁻¹(u)). Calls opts.check().
at::Tensor sample_sigmas(int64_t batch, const TimestepOptions& opts, at::Generator gen);

/// σ' = s·σ / (1 + (s - 1)·σ), elementwise; keeps 0 ↦ 0 and 1 ↦ 1. s must be > 0.
at::Tensor shift_sigma(const at::Tensor& sigma, double shift);

/// Model timestep for a sigma: 1000·σ (same dtype and device).
at::Tensor sigma_to_timestep(const at::Tensor& sigma);

struct NoisedSample {
    at::Tensor x_t;     ///< (1 - σ)·x0 + σ·ε, in x0's dtype (the model input)
    at::Tensor target;  ///< ε - x0, in the compute dtype (float32, or float64 for double inputs)
};

/// Noises clean latents. x0 and noise: same shape [B, ...]; sigma: [B], broadcast over
/// the other dims and moved to x0's device. Computed in float32 (float64 if x0 or noise
/// is double).
NoisedSample add_noise(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& sigma);

}  // namespace ipa::flow
