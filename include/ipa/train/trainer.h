#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ipa/core/run_context.h"
#include "ipa/train/config.h"

namespace ipa::train {

/// Where one optimizer step's wall time went (seconds, summed over its micro steps; on CUDA
/// the device is synchronised at each boundary). `noise` is drawing noise and timesteps and
/// moving the batch to the device; `prelude` is the work the reference and policy passes
/// share (WanModelImpl::prelude); `reference` and `policy` are the forward passes with their
/// weighted errors; `backward` includes the loss; `reduce` is the all-reduce over ranks;
/// `update` is the finiteness check, clipping and the optimizer step.
struct StepPhases {
    double data = 0, noise = 0, prelude = 0, reference = 0, policy = 0, backward = 0, reduce = 0, update = 0;
    /// (name, seconds) in step order.
    std::vector<std::pair<const char*, double>> items() const;
};

/// What one optimizer step measured (averaged over the step's micro-batches).
/// For DPO, gap/err_theta/err_ref are the winners', `margin` is the implicit reward margin
/// mean(gap_w − gap_l) and reward_accuracy the fraction of pairs with a positive logit.
struct StepMetrics {
    int64_t step = 0;
    double loss = 0, gap = 0, err_theta = 0, err_ref = 0, reward_accuracy = 0, margin = 0;
    double grad_norm = 0, lr = 0, samples_per_s = 0, tokens_per_s = 0, step_time_s = 0;
    int64_t bad_steps = 0;    ///< NaN/Inf steps skipped so far
    bool has_margin = false;  ///< DPO: `margin` is written
    StepPhases phases;
    std::string to_json() const;
};

struct TrainResult {
    int64_t final_step = 0;
    int64_t resumed_from = 0;  ///< 0 = fresh start
    std::filesystem::path last_checkpoint;
    std::filesystem::path metrics_file;
    std::vector<StepMetrics> history;  ///< steps run in this process
    int64_t cached_samples = 0;        ///< samples in the training cache
};

struct TrainHooks {
    /// Stop (as if interrupted) after this step, after its checkpoint if one is due; -1 = never.
    int64_t stop_after_step = -1;
    /// Show a progress bar / periodic lines on stderr.
    bool progress = true;
    /// Open (and build) the training cache, then return without loading the DiT or training.
    bool cache_only = false;
    /// Record an operator-level profile of this step (1-based; 0 = none) as a Chrome trace
    /// (chrome://tracing, Perfetto) in <checkpoint.dir>/profile/step-N.trace.json.
    int64_t profile_step = 0;
    /// Building the cache from data.manifest (prepare/cache_builder.h; the trainer itself
    /// links no OpenCV, ipa-train sets these). With data.manifest set, every rank calls
    /// build_cache_shard (it builds what is missing or stale of its share), the ranks wait
    /// for each other (data.build_timeout_s), then rank 0 calls write_cache_index.
    std::function<void()> build_cache_shard;
    std::function<void()> write_cache_index;
};

/// The whole `ipa-train` job for one process: builds the model (base weights frozen, LoRA
/// attached), opens or builds the cache, resumes per `checkpoint.resume`, trains
/// `train.steps` optimizer steps with the configured loss against the reference (same base,
/// adapter off or the frozen initial adapter), logs metrics as JSON Lines and writes
/// atomic checkpoints. Throws ConfigError/DataError/CheckpointError with clear messages;
/// aborts with ipa::Error after `train.max_bad_steps` NaN/Inf steps.
TrainResult run_training(const TrainConfig& config, const RunContext& ctx, const TrainHooks& hooks = {});

/// The newest complete checkpoint under `dir` (via `latest`, else the highest step-N with
/// its state file), or empty when there is none.
std::filesystem::path find_latest_checkpoint(const std::filesystem::path& dir);

}  // namespace ipa::train
