#pragma once

// Video and image I/O as tensors (OpenCV underneath; this header exposes no OpenCV type).
// Tensors are RGB float32 in [-1, 1]: videos [3, T, H, W], images [3, H, W].
// Every failure is an ipa::DataError that names the path and the reason.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

namespace ipa::media {

struct VideoInfo {
    int64_t frames = 0;  ///< as the container reports it (0 if unknown)
    int height = 0;
    int width = 0;
    double fps = 0;
};

/// Size, frame count and fps of a video file (or a directory of image frames: fps 0).
VideoInfo probe_video(const std::filesystem::path& path);

struct VideoReadOptions {
    int64_t start = 0;        ///< first frame
    int64_t stride = 1;       ///< take every stride-th frame
    int64_t max_frames = -1;  ///< -1: all
    /// (H, W): scale = max(W/w, H/h), bicubic antialiased resize, centre crop. The reference
    /// resizes decoded uint8 frames with torch ≥ 2.1's fixed-point uint8 kernel; we resize
    /// in float and round to 8 bit once, so single pixels can differ by 1/255.
    std::optional<std::pair<int64_t, int64_t>> size;
};

/// Where the resize + centre crop of VideoReadOptions::size puts a source frame: the frame
/// (in_h × in_w) is resized to resized_h × resized_w (scale = max(out_w/in_w, out_h/in_h),
/// rounded to the nearest pixel), then the out_h × out_w window at (top, left) is kept.
/// Keypoints follow the frames with x' = x·resized_w/in_w − left (y likewise).
struct ResizeCrop {
    int64_t resized_h = 0, resized_w = 0, top = 0, left = 0;
};
ResizeCrop resize_crop_geometry(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w);

struct Video {
    at::Tensor frames;  ///< [3, T, H, W] float32 RGB in [-1, 1]
    double fps = 0;
};

/// A video file or a directory of image frames (sorted by name).
Video read_video(const std::filesystem::path& path, const VideoReadOptions& opts = {});

struct ReferenceVideoOptions {
    int64_t seq_len = 32760;       ///< token cap (480p: 32760, 720p: 75600)
    int64_t max_area = 480 * 832;  ///< target area H·W
};

/// The VACE reference loader (docs/wan-vace.md §4.5, VaceVideoProcessor with keep_last): the
/// frame count (4k+1) and the output size follow from the video's length and aspect ratio
/// under the token cap; frames are picked by timestamp ([i/fps, (i+1)/fps] per frame, as
/// decord reports them for constant-rate video; a frame directory is taken as 16 fps);
/// resize + centre crop as above. `fps` is the effective rate of the picked frames. Only
/// the picked frames are decoded and kept in memory.
Video read_video_reference(const std::filesystem::path& path, const ReferenceVideoOptions& opts = {});

/// [3, H, W] float32 RGB in [-1, 1]; an alpha channel is dropped (no compositing); 16-bit
/// images are scaled to 8 bit.
at::Tensor read_image(const std::filesystem::path& path);

/// The reference's letterbox for a reference image (docs/wan-vace.md §4.5): scale = min(H/h, W/w), size
/// (int(h·scale), int(w·scale)), bilinear (align_corners false, no antialias), centred on
/// a white (+1) canvas. Input [3, h, w] → [3, H, W].
at::Tensor letterbox_reference(const at::Tensor& image, int64_t height, int64_t width);

struct VideoWriteOptions {
    double fps = 16;
    /// "auto": H.264 ("avc1") when the OpenCV/FFmpeg build can encode it, else MPEG-4 Part 2
    /// ("mp4v", logged once). Or a FOURCC such as "avc1", "mp4v", "MJPG".
    std::string codec = "auto";
};

/// `path` with a video extension (.mp4 .avi .mkv .mov) → encoded video (odd sizes are
/// padded by one black row/column — logged); a path without extension → a directory of
/// PNG frames 000000.png, … (an existing directory is replaced only if it holds nothing
/// but such frames). Written under a temporary name and renamed, so a failed write never
/// leaves a partial file under the final name. The tensor must be finite floating point. Values are mapped
/// as the reference does: clamp, (x+1)/2·255, truncated to uint8.
void write_video(const std::filesystem::path& path, const at::Tensor& frames, const VideoWriteOptions& opts = {});
void write_png_frames(const std::filesystem::path& dir, const at::Tensor& frames);
/// PNG/JPEG/… by extension, from [3, H, W] in [-1, 1].
void write_image(const std::filesystem::path& path, const at::Tensor& image);

}  // namespace ipa::media
