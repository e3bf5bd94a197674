#pragma once

// Private to ipa_media.

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "ipa/media/video.h"

namespace ipa::media::detail {

std::string lower_ext(const std::filesystem::path& p);
bool is_video_ext(const std::filesystem::path& p);
bool is_image_ext(const std::filesystem::path& p);
/// Image files of a directory sorted by name; DataError if there are none.
std::vector<std::filesystem::path> image_files(const std::filesystem::path& dir);
void require_exists(const std::filesystem::path& path);
/// DataError when far fewer frames decoded than the container reports (truncated file).
void check_decoded_count(const std::filesystem::path& path, int64_t decoded, int64_t reported);
/// Creates the parent directory; DataError naming the path if it cannot be written.
void prepare_destination(const std::filesystem::path& path);
/// DataError naming `path` unless `t` is a finite floating tensor of `dim` dims with `channels` first.
void check_pixels(const std::filesystem::path& path, const at::Tensor& t, int64_t dim, const char* layout);
std::filesystem::path temp_sibling(const std::filesystem::path& path);
/// Encodes BGR frames of one size to `path` (temp file + rename).
void encode_video(const std::filesystem::path& path, const std::vector<cv::Mat>& frames, const VideoWriteOptions& opts);

}  // namespace ipa::media::detail
