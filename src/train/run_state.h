#pragma once

// Private to the trainer: the on-disk layout of a training checkpoint.
//   <dir>/step-NNNNNN/adapter.safetensors   trainable adapter (portable LoRA format)
//   <dir>/step-NNNNNN/optimizer.pt          AdamW state (LibTorch archive)
//   <dir>/step-NNNNNN/rng.safetensors       noise/timestep generator state
//   <dir>/step-NNNNNN/trainer_state.json    step, data position, counters
//   <dir>/step-NNNNNN/config.yaml           the resolved config
//   <dir>/latest -> step-NNNNNN             newest complete checkpoint
// Written to step-NNNNNN.tmp-PID and renamed when complete.

#include <torch/optim/adamw.h>

#include <filesystem>
#include <string>

#include "ipa/train/config.h"

namespace torch::nn {
class Module;
}

namespace ipa::train::detail {

struct RunState {
    int64_t step = 0;
    int64_t epoch = 0;
    int64_t position = 0;  ///< next index into the epoch's order
    int64_t bad_steps = 0;
};

void save_checkpoint(const std::filesystem::path& dir, const RunState& state, torch::nn::Module& model,
                     const TrainConfig& config, torch::optim::AdamW& optimizer, const at::Generator& gen,
                     int64_t keep);

/// Restores adapter weights, optimizer, generator and returns the state.
RunState load_checkpoint(const std::filesystem::path& step_dir, torch::nn::Module& model,
                         torch::optim::AdamW& optimizer, at::Generator& gen);

/// Drops metrics lines with a step beyond `step` (a resumed run re-logs them).
void truncate_metrics(const std::filesystem::path& metrics, int64_t step);

}  // namespace ipa::train::detail
