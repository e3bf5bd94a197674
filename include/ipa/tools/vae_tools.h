#pragma once

// `ipa-inspect vae` and `ipa-inspect encode-prompt`: the VAE and text encoder on files.

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ipa/models/vae/tiling.h"

namespace ipa::tools {

struct VaeFileOptions {
    c10::Device device{c10::kCPU};
    c10::ScalarType dtype = c10::kFloat;
    models::vae::VaeTiling tiling;
    int64_t frames = -1;                              ///< encode: frames to take (4k+1; -1: the most there are)
    std::optional<std::pair<int64_t, int64_t>> size;  ///< encode: resize + centre crop to (H, W)
    double fps = 16;                                  ///< decode: output frame rate
};

/// Encodes a video (file or frame directory, read with ipa::media) or a safetensors file
/// holding `video` [3, T, H, W] in [-1, 1] to `out` (safetensors: `latents` [16, t, h, w]
/// float32, metadata with the source and sizes). Returns a one-line summary.
std::string vae_encode_file(const std::filesystem::path& vae, const std::filesystem::path& input,
                            const std::filesystem::path& out, const VaeFileOptions& options);

/// Decodes `latents` [16, t, h, w] from a safetensors file to a video (.mp4 …), a PNG frame
/// directory (no extension) or a safetensors file (`video`). Returns a one-line summary.
std::string vae_decode_file(const std::filesystem::path& vae, const std::filesystem::path& input,
                            const std::filesystem::path& out, const VaeFileOptions& options);

}  // namespace ipa::tools
