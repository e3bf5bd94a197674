#pragma once

// Private to the trainer: the on-disk layout of a training checkpoint.
//   <dir>/step-NNNNNN/adapter.safetensors   trainable adapter (portable LoRA format)
//   <dir>/step-NNNNNN/optimizer.pt          AdamW state (LibTorch archive)
//   <dir>/step-NNNNNN/trainer_state.json    step, data position, counters, world size
// Noise and timesteps need no state: each sample's generator is keyed by (seed, step, slot).
//   <dir>/step-NNNNNN/config.yaml           the resolved config
//   <dir>/latest -> step-NNNNNN             newest complete checkpoint
// Written to step-NNNNNN.tmp-PID and renamed when complete.

#include <torch/optim/adamw.h>

#include <filesystem>
#include <string>

#include "ipa/train/config.h"
#include "ipa/train/steps.h"

namespace torch::nn {
class Module;
}

namespace ipa::train::detail {

using ipa::train::RunState;

void save_checkpoint(const std::filesystem::path& dir, const RunState& state, torch::nn::Module& model,
                     const TrainConfig& config, torch::optim::AdamW& optimizer, int64_t keep);

/// Restores adapter weights and optimizer and returns the state.
RunState load_checkpoint(const std::filesystem::path& step_dir, torch::nn::Module& model,
                         torch::optim::AdamW& optimizer);

/// Drops metrics lines with a step beyond `step` (a resumed run re-logs them).
void truncate_metrics(const std::filesystem::path& metrics, int64_t step);

}  // namespace ipa::train::detail
