#pragma once

// Reverse flow-matching samplers of the official Wan code (docs/wan-vace.md §7): the
// default UniPC (FlowUniPCMultistepScheduler: predict-x0, B(h) = bh2, order 2, UniC
// corrector, lower-order final step), DPM-Solver++ (FlowDPMSolverMultistepScheduler:
// order 2, midpoint) and plain Euler (DiffSynth). Convention: x_σ = (1−σ)x₀ + σε, the
// model predicts v = ε − x₀ at t = 1000σ.
//
// Use: `auto s = make_sampler(cfg); for (i < s->num_steps()) { v = model(x, s->timestep(i)); x = s->step(v, x); }`

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ipa::flow {

enum class SamplerKind { unipc, dpmpp, euler };
/// "unipc" | "dpm++" (also "dpmpp") | "euler"; ConfigError otherwise.
SamplerKind parse_sampler(const std::string& name);
const char* to_string(SamplerKind kind);

struct SamplerOptions {
    SamplerKind kind = SamplerKind::unipc;
    int64_t steps = 50;   ///< VACE default 50
    double shift = 16.0;  ///< VACE default 16 (Wan t2v: 5)
};
// Not reproduced (documented divergences): on a GPU the reference runs UniPC's order-2
// einsum inside bf16 autocast, rounding those correction terms to bf16 (≈1e-4); we keep
// them in float32. If the first two integer timesteps coincide (e.g. UniPC N=100,
// shift 16), the reference starts at index 1 (diffusers' "second occurrence" rule) and
// then runs past its schedule; we start at index 0 and log a warning.

/// A schedule and the solver state of one sampling run (one sample or a batch sharing t).
class FlowSampler {
public:
    virtual ~FlowSampler() = default;
    int64_t num_steps() const { return static_cast<int64_t>(timesteps_.size()); }
    /// Model timestep input of step i (UniPC, DPM++: integers as in the reference; Euler: 1000σ).
    double timestep(int64_t i) const { return timesteps_.at(static_cast<std::size_t>(i)); }
    const std::vector<double>& timesteps() const { return timesteps_; }
    /// σ of steps 0…N (float32 values; σ_N = 0).
    const std::vector<float>& sigmas() const { return sigmas_; }
    /// Index of the next step (0 before the first call of `step`).
    int64_t step_index() const { return index_; }
    /// One solver step: `velocity` is the (guided) model output at the current sample `x`
    /// and timestep(step_index()). Returns the sample for the next step (float32).
    virtual at::Tensor step(const at::Tensor& velocity, const at::Tensor& x) = 0;

protected:
    std::vector<double> timesteps_;
    std::vector<float> sigmas_;
    int64_t index_ = 0;
};

std::unique_ptr<FlowSampler> make_sampler(const SamplerOptions& opts);

/// The reference's σ schedule before the final 0: UniPC: linspace(float32(0.999), 0, N+1)[:N];
/// DPM++ and Euler: linspace(1, 0, N+1)[:N]; then shifted — all in float64.
std::vector<double> sampler_sigmas(SamplerKind kind, int64_t steps, double shift);

/// Classifier-free guidance as the reference: v_u + g·(v_c − v_u), in float32.
at::Tensor guide(const at::Tensor& v_cond, const at::Tensor& v_uncond, double scale);

}  // namespace ipa::flow
