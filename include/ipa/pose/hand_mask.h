#pragma once

/// Hand masks from hand keypoints (for the HALO loss): per hand a padded box or a dilated
/// convex hull in pixel space, and the reduction to the Wan-VAE latent grid.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>
#include <optional>
#include <vector>

#include "ipa/pose/keypoints.h"

namespace ipa::pose {

/// How a hand becomes a region.
struct HandMaskOptions {
    enum class Shape { Box, Hull } shape = Shape::Box;
    float padding = 0.25f;  ///< added on each side, as a fraction of the hand's size (longer side of its keypoint box)
    float threshold = kConfidenceThreshold;  ///< a point counts when c > threshold
    int min_points = 5;                      ///< a hand with fewer confident points is ignored
};

/// The padded box of one hand's confident points, clipped to the image; nullopt if the
/// hand has fewer than opts.min_points confident points (or the box lies outside).
std::optional<cv::Rect> hand_box(const std::vector<Keypoint>& hand, int height, int width,
                                 const HandMaskOptions& opts = {});

/// CV_8UC1 mask (0/255) of height x width: union over both hands of every person.
/// Keypoints are scaled from (frame.width, frame.height) when those are known and differ.
cv::Mat hand_mask(const PoseFrame& frame, int height, int width, const HandMaskOptions& opts = {});

/// hand_mask() per frame as a [T, H, W] float32 tensor with values in {0, 1}.
at::Tensor hand_masks(const PoseSequence& seq, int64_t height, int64_t width, const HandMaskOptions& opts = {});

/// Reduces pixel masks [T, H, W] to the latent grid [1 + (T-1)/temporal, H/spatial, W/spatial]:
/// spatial max-pool, latent 0 = pixel frame 0 alone, latent k = max over pixel frames
/// temporal*(k-1)+1 .. temporal*k. Throws ipa::DataError unless T = 1 + temporal*k and H, W
/// are multiples of spatial.
at::Tensor latent_hand_mask(const at::Tensor& pixel_masks, int64_t spatial = 8, int64_t temporal = 4);

/// Writes a latent mask [T_lat, h, w] as safetensors with the single key `hand_mask` (float32).
void save_latent_mask(const std::filesystem::path& path, const at::Tensor& mask);

}  // namespace ipa::pose
