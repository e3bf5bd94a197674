#pragma once

// OpenCV-level frame I/O (for pose/, curate/ and the tensor functions of video.h).

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <vector>

#include "ipa/media/video.h"

namespace ipa::media {

/// CV_8UC3 BGR frames of a video file or of a directory of images (sorted by name).
/// `fps` (if given) receives the container's rate (0 for a directory).
std::vector<cv::Mat> read_frames_bgr(const std::filesystem::path& path, double* fps = nullptr);

/// Same routing as write_video; accepts CV_8UC3 and CV_8UC1 (gray → BGR). All frames must
/// share one size.
void write_frames_bgr(const std::filesystem::path& path, const std::vector<cv::Mat>& frames,
                      const VideoWriteOptions& opts = {});

/// CV_8UC3 BGR; alpha dropped, gray expanded, 16-bit scaled to 8 bit.
cv::Mat read_image_bgr(const std::filesystem::path& path);

/// BGR uint8 frames → [3, T, H, W] float32 RGB in [-1, 1] (x/127.5 − 1).
at::Tensor frames_to_tensor(const std::vector<cv::Mat>& bgr);

/// [3, T, H, W] in [-1, 1] → BGR uint8: clamp, (x+1)/2·255, truncated (the reference's
/// mapping; values within 1e-4 below a level count as that level, so 8-bit input round-trips).
std::vector<cv::Mat> tensor_to_frames(const at::Tensor& frames);

}  // namespace ipa::media
