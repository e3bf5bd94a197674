#pragma once

// ipa-sample: reference image + pose video (+ prompt) → animated video, the reference
// VACE recipe (docs/wan-vace.md §4.3–4.6, §7.7): pose video as VACE frames with an all-ones
// mask, the reference image letterboxed on white as one extra latent frame, umT5 prompt
// and negative prompt, seeded noise, UniPC with CFG, reference frame dropped, VAE decode.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "ipa/models/vae/tiling.h"
#include "ipa/sample/sampling.h"

namespace ipa::sample {

struct PipelineOptions {
    // Model.
    std::string model = "vace-14b";  ///< model YAML or preset
    std::filesystem::path weights;   ///< DiT weights; empty: random (tiny demos only, warned)
    std::filesystem::path lora;      ///< optional adapter (+ .vace sibling)
    double lora_multiplier = 1.0;
    std::filesystem::path vae;           ///< Wan2.1_VAE.pth (empty: random VAE of the "tiny" config, warned)
    std::filesystem::path text_encoder;  ///< umT5 .pth, or empty with `context_file`
    std::filesystem::path tokenizer;     ///< google/umt5-xxl folder
    std::filesystem::path context_file;  ///< precomputed: context.0 = prompt, context.1 = negative prompt
    // Inputs.
    std::filesystem::path pose_video;       ///< the VACE control video (pose render)
    std::filesystem::path reference_image;  ///< optional; letterboxed onto the video size
    std::string prompt;
    std::string negative_prompt = kDefaultNegativePrompt;
    int64_t frames = -1;                              ///< -1: the reference loader decides (≤ 81 at 480p)
    std::optional<std::pair<int64_t, int64_t>> size;  ///< (H, W); absent: from the video and max_area
    int64_t max_area = 480 * 832;
    // Sampling.
    SamplingOptions sampling;  ///< unipc, 50 steps, shift 16, guide 5
    double context_scale = 1.0;
    uint64_t seed = 42;
    c10::ScalarType dtype = c10::kBFloat16;  ///< DiT compute dtype (the VAE runs in fp32)
    c10::Device device{c10::kCPU};
    models::vae::VaeTiling vae_tiling;
    // Output.
    std::filesystem::path out;           ///< .mp4 … or a PNG frame directory
    std::filesystem::path save_latents;  ///< optional safetensors with the sampled latents
};

struct PipelineResult {
    int64_t frames = 0, height = 0, width = 0;
    double sample_seconds = 0, total_seconds = 0;
};

PipelineResult run_pipeline(const PipelineOptions& options);

}  // namespace ipa::sample
