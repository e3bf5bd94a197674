#pragma once

// The trainer's named steps (docs/architecture.md §7): run_training() is these, in order —
// build the model, make the optimizer, resume, then per optimizer step: draw samples, one
// micro step per accumulation slot (noise, reference pass, policy pass, loss, backward),
// reduce over the ranks, update, checkpoint. Each is a function of its inputs so it can be
// tested alone.

#include <torch/optim/adamw.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "ipa/data/cache.h"
#include "ipa/models/wan/model.h"
#include "ipa/train/config.h"
#include "ipa/train/trainer.h"

namespace ipa::dist {
class ProcessGroup;
}

namespace ipa::train {

/// Where a run stands: what a checkpoint stores besides the adapter and the optimizer.
struct RunState {
    int64_t step = 0;
    int64_t epoch = 0;
    int64_t position = 0;  ///< next index into the epoch's order
    int64_t bad_steps = 0;
    int64_t world_size = 1;  ///< ranks of the run that wrote it
};

/// The model a run trains: base frozen (model.dtype), the adapter attached (fp32, from
/// train.seed), and lora.init_from loaded with its frozen copy as the reference.
struct TrainModel {
    std::shared_ptr<models::wan::WanModelImpl> model;
    std::vector<at::Tensor> params;    ///< the adapter's parameters (what the optimizer updates)
    std::vector<std::string> adapted;  ///< adapted module names
    /// What the reference and the policy pass can share (WanModelImpl::prelude), from where
    /// the adapters sit: the embeddings when every adapter is inside a block, the VACE
    /// hints when none is in a VACE block, the cross-attention K/V when none is on a cross
    /// attention.
    bool share_prelude = false;
    models::wan::PreludeOptions shared;
};
TrainModel build_model(const TrainConfig& cfg, const models::wan::WanConfig& mcfg, const c10::Device& device);

/// AdamW over `params` with optim.* (the lr is set per step by learning_rate()).
std::unique_ptr<torch::optim::AdamW> make_optimizer(const OptimSection& o, const std::vector<at::Tensor>& params);

/// The learning rate of 1-based `step` of `total`: linear warm-up, then constant or cosine.
double learning_rate(const OptimSection& o, int64_t step, int64_t total);

/// Restores adapter, optimizer and state per checkpoint.resume (auto: the newest complete
/// checkpoint in checkpoint.dir; never; or a step directory). Returns the state (step 0 on a
/// fresh start) and sets `from` to the checkpoint used (empty when none).
RunState resume(const TrainConfig& cfg, torch::nn::Module& model, torch::optim::AdamW& optimizer,
                std::filesystem::path& from);

/// The samples one rank draws, in the per-epoch order of data::epoch_order, continuing from
/// `state` (epoch, position) and advancing it. Each file's values are validated at its
/// first draw only; later draws check shapes.
class SampleStream {
public:
    SampleStream(const data::CacheIndex& index, std::filesystem::path cache_dir, uint64_t seed, int rank, int world,
                 RunState& state);
    data::CachedSample next();
    /// The next `n` samples, stacked.
    data::Batch next_batch(int64_t n);

private:
    const data::CacheIndex& index_;
    std::filesystem::path dir_;
    uint64_t seed_;
    int rank_, world_;
    RunState& state_;
    std::vector<int64_t> order_;
    std::unordered_set<std::string> validated_;
};

/// A batch with its noise and timesteps, ready for the DiT. One noise and one t per sample
/// (per pair for DPO: the winner and the loser share them), each from a generator keyed by
/// (seed, step, micro, global slot) — so N ranks with batch b draw what 1 rank with N·b
/// draws, and resuming needs no generator state. Pairs are laid out [winners; losers].
struct NoisedBatch {
    models::wan::WanInputs in;
    at::Tensor target;   ///< velocity target, on the device
    at::Tensor sigma;    ///< [B] t ∈ [0, 1] (per pair for DPO), CPU
    at::Tensor weights;  ///< HALO weights or undefined
    int64_t pairs = 0;   ///< B for a DPO batch (the DiT batch is 2B), else 0
    int64_t tokens = 0;  ///< DiT tokens of the whole batch
};

struct NoiseOptions {
    uint64_t seed = 0;
    int64_t step = 0, micro = 0;
    int rank = 0;
    bool pairs = false;  ///< DPO: winner and loser (batch.latents_loser must be defined)
    flow::TimestepOptions timesteps;
    double hand_weight = 1.0;
    std::array<int64_t, 3> patch{1, 2, 2};
    c10::Device device{c10::kCPU};
};
NoisedBatch noise_batch(const data::Batch& batch, const NoiseOptions& o);

/// What one micro step measured (detached scalars on the device).
struct MicroResult {
    at::Tensor loss, gap, err_theta, err_ref, reward_accuracy, margin;
    int64_t samples = 0, tokens = 0;
};

/// Reference pass (no grad; IPA and DPO), policy pass, the loss of `kind`, and backward of
/// loss / grad_accum. With `share` the passes share what the adapter cannot change (see
/// WanModelImpl::prelude); the result is bitwise the same either way.
/// `phases`, when given, gets the prelude / reference / policy / backward times added.
MicroResult micro_step(TrainModel& tm, const NoisedBatch& nb, const LossSection& loss, int64_t grad_accum,
                       bool share = true, StepPhases* phases = nullptr);

/// Wall-clock laps for StepPhases: each lap() returns the seconds since the previous one
/// (or construction), synchronising a CUDA device first so its queued work is counted.
class PhaseClock {
public:
    explicit PhaseClock(c10::Device device);
    double lap();

private:
    c10::Device device_;
    double last_;
};

/// Multi-rank: averages the adapter gradients and the step's metrics over the ranks (sums
/// samples and tokens). No-op on one rank.
void reduce_step(dist::ProcessGroup& pg, std::vector<at::Tensor>& params, StepMetrics& m, int64_t& samples,
                 int64_t& tokens);

/// A finite step: clip (optim.grad_clip), set the lr of `step`, step the optimizer; returns
/// true. A non-finite loss or gradient: zero the gradients, count it in state.bad_steps and
/// return false — ipa::Error once more than train.max_bad_steps were skipped.
bool apply_update(const TrainConfig& cfg, std::vector<at::Tensor>& params, torch::optim::AdamW& optimizer, int64_t step,
                  StepMetrics& m, RunState& state);

}  // namespace ipa::train
