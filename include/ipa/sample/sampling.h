#pragma once

// Reverse flow-matching sampling with classifier-free guidance (docs/wan-vace.md §7.6–7.7):
// noise → for each timestep: v = v_u + g·(v_c − v_u); x = solver.step(v, x). The model is a
// callback, so the loop is shared by the DiT, tests with analytic fields, and any wrapper.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ipa/flow/sampler.h"

namespace ipa::models::wan {
struct WanModelImpl;
}

namespace ipa::sample {

/// The Wan VACE negative prompt (wan/configs/shared_config.py `sample_neg_prompt`).
extern const char* const kDefaultNegativePrompt;

/// Velocity at sample `x` [C, T, h, w] and timestep `t` (0…1000); `cond` selects the
/// prompt (true) or the negative prompt (false).
using VelocityFn = std::function<at::Tensor(const at::Tensor& x, double t, bool cond)>;

struct SamplingOptions {
    flow::SamplerOptions sampler;  ///< unipc, 50 steps, shift 16 (VACE defaults)
    double guide_scale = 5.0;      ///< 1: no unconditional pass
    bool progress = true;
};

struct SamplingResult {
    at::Tensor latents;  ///< [C, T, h, w] float32
    std::vector<double> timesteps;
    double seconds = 0;
};

/// Gaussian noise of `shape` drawn in one call from a generator seeded with `seed` on
/// `device` (the reference draws on CUDA; CPU numbers differ from CUDA ones).
at::Tensor initial_noise(at::IntArrayRef shape, uint64_t seed, c10::Device device);

SamplingResult sample_flow(const at::Tensor& noise, const VelocityFn& velocity, const SamplingOptions& opts);

/// The DiT as a VelocityFn for one sample (batch 1): `context`/`context_null` are
/// [L, text_dim] prompt embeddings (zero-padded to text_len by the model), `vace_context`
/// [96, T, h, w] or undefined for a plain Wan model. Runs without autograd.
VelocityFn wan_velocity(models::wan::WanModelImpl& model, at::Tensor vace_context, at::Tensor context,
                        at::Tensor context_null, double context_scale = 1.0);

}  // namespace ipa::sample
