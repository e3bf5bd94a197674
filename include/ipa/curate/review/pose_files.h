#pragma once

// File-level pose helpers behind `ipa-curate render-pose` and `ipa-curate masks`.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ipa/pose/hand_mask.h"
#include "ipa/pose/render.h"

namespace ipa::curate::review {

/// "HxW" (e.g. "480x832") → (H, W); ipa::ConfigError naming `flag` otherwise.
std::pair<int, int> parse_size(const std::string& text, const std::string& flag);

/// Options of render_pose_file().
struct RenderPoseFileOptions {
    std::optional<std::pair<int, int>> size;  ///< (H, W); default: the keypoints' canvas size
    pose::RenderOptions render;
    double fps = 16;
};

/// What a pose-file helper wrote.
struct PoseFilesReport {
    std::vector<std::filesystem::path> written;
    int64_t frames = 0;
    int height = 0, width = 0;
    std::vector<int64_t> latent_shape;  ///< masks only
    double hand_fraction = 0;           ///< masks only: mean fraction of mask pixels set
};

/// Renders the keypoints (directory or .jsonl) to a pose video (or a PNG directory when
/// `out` has no extension). No size and no canvas size in the keypoints is an
/// ipa::ConfigError asking for --size.
PoseFilesReport render_pose_file(const std::filesystem::path& keypoints, const std::filesystem::path& out,
                                 const RenderPoseFileOptions& opts);

/// Options of write_hand_mask_files().
struct MaskFilesOptions {
    std::optional<std::pair<int, int>> size;  ///< (H, W); default: the keypoints' canvas size
    pose::HandMaskOptions mask;
    double fps = 16;
};

/// Writes out_dir/hand_mask.mp4 (white = hand) and out_dir/hand_mask_latent.safetensors
/// (key `hand_mask`, [1 + (T-1)/4, H/8, W/8]). The latent grid needs T = 1 + 4k frames and
/// H, W multiples of 8: otherwise an ipa::DataError before anything is written.
PoseFilesReport write_hand_mask_files(const std::filesystem::path& keypoints, const std::filesystem::path& out_dir,
                                      const MaskFilesOptions& opts);

/// Parser for --shape: "box" | "hull"; ipa::ConfigError otherwise.
pose::HandMaskOptions::Shape parse_mask_shape(const std::string& text);

}  // namespace ipa::curate::review
