#pragma once

// The library side of `ipa-inspect` verbs that need a model (the app only parses flags).

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <string>

namespace ipa::tools {

/// `ipa-inspect check`: builds the model of `model_config` (YAML path or preset name, or
/// "auto" to detect it from the weights), loads `weights` strictly (or not) and returns
/// a human-readable report. Throws CheckpointError listing every key problem.
std::string check_weights(const std::string& model_config, const std::filesystem::path& weights, c10::ScalarType dtype,
                          bool strict);

/// `ipa-inspect forward`: one DiT forward on tensors from `inputs` (names `x`, `t`,
/// `context`, optional `vace_context`, `seq_len`, `context_scale`), written as `out` to
/// `output` (safetensors). Returns a one-line summary.
std::string forward_file(const std::string& model_config, const std::filesystem::path& weights,
                         const std::filesystem::path& inputs, const std::filesystem::path& output,
                         c10::ScalarType dtype, const c10::Device& device);

struct BenchForwardOptions {
    std::string model = "tiny";  ///< YAML path or preset
    int64_t frames = 3;          ///< latent frames
    int64_t height = 16;         ///< latent height
    int64_t width = 16;          ///< latent width
    int64_t batch = 1;
    int64_t layers = -1;  ///< override num_layers (e.g. 1 block of a 14B shape)
    c10::ScalarType dtype = c10::kFloat;
    c10::Device device{c10::kCPU};
    int warmup = 1;
    int iters = 3;
    bool grad_checkpointing = false;
    bool backward = true;
};

/// `ipa-inspect bench-forward`: forward and forward+backward time, tokens/s and peak
/// memory on random weights. Returns the report (also JSON-able fields on one line).
std::string bench_forward(const BenchForwardOptions& options);

}  // namespace ipa::tools
