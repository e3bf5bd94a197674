#include "ipa/media/video.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "ipa/core/error.h"
#include "ipa/media/frames.h"
#include "media_internal.h"

namespace ipa::media {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;

constexpr double kFrameDirFps = 16.0;  // Wan's rate; only the timestamps of frame directories use it

namespace detail {

void encode_video(const fs::path& path, const std::vector<cv::Mat>& frames_in, const VideoWriteOptions& opts) {
    std::vector<std::string> codecs;
    if (opts.codec == "auto")
        codecs = {"avc1", "mp4v"};
    else if (opts.codec.size() == 4)
        codecs = {opts.codec};
    else
        throw DataError(fmt::format("'{}': codec '{}' is not 'auto' or a FOURCC", path.string(), opts.codec));
    const auto tmp = temp_sibling(path);
    cv::Size size = frames_in[0].size();
    cv::VideoWriter writer;
    std::string used;
    for (const auto& c : codecs) {
        // yuv420p needs even sizes; OpenCV would otherwise crop a row/column silently
        const cv::Size s(size.width + size.width % 2, size.height + size.height % 2);
        if (writer.open(tmp.string(), cv::CAP_FFMPEG, cv::VideoWriter::fourcc(c[0], c[1], c[2], c[3]), opts.fps, s)) {
            used = c;
            size = s;
            break;
        }
    }
    if (used.empty()) {
        throw DataError(
            fmt::format("'{}': no encoder available for codec {} (OpenCV/FFmpeg build); write PNG frames "
                        "instead (a path without extension)",
                        path.string(), opts.codec));
    }
    if (opts.codec == "auto" && used != "avc1") {
        static std::once_flag once;
        std::call_once(once, [] { spdlog::warn("H.264 encoding is unavailable here; writing MPEG-4 Part 2 (mp4v)"); });
    }
    if (size != frames_in[0].size()) {
        spdlog::info("'{}': {}x{} padded to even {}x{}", path.string(), frames_in[0].cols, frames_in[0].rows,
                     size.width, size.height);
    }
    for (const auto& f : frames_in) {
        if (f.size() == size) {
            writer.write(f);
        } else {
            cv::Mat padded;
            cv::copyMakeBorder(f, padded, 0, size.height - f.rows, 0, size.width - f.cols, cv::BORDER_CONSTANT,
                               cv::Scalar(0, 0, 0));
            writer.write(padded);
        }
    }
    writer.release();
    std::error_code ec;
    if (!fs::exists(tmp, ec) || fs::file_size(tmp, ec) == 0) {
        fs::remove(tmp, ec);
        throw DataError(
            fmt::format("'{}': the encoder wrote nothing (disk full or unwritable directory?)", path.string()));
    }
    fs::rename(tmp, path, ec);
    if (ec) {
        fs::remove(tmp, ec);
        throw DataError(fmt::format("'{}': cannot move the video into place", path.string()));
    }
}

void check_pixels(const fs::path& path, const at::Tensor& t, int64_t dim, const char* layout) {
    if (!t.defined() || t.dim() != dim || t.size(0) != 3) {
        throw DataError(fmt::format("'{}': the tensor to write must be {}, got [{}]", path.string(), layout,
                                    t.defined() ? fmt::format("{}", fmt::join(t.sizes(), ", ")) : "undefined"));
    }
    if (!t.is_floating_point()) {
        throw DataError(fmt::format("'{}': the tensor to write must be floating point in [-1, 1], got {}",
                                    path.string(), c10::toString(t.scalar_type())));
    }
    if (t.numel() == 0 || !torch::isfinite(t).all().item<bool>()) {
        throw DataError(fmt::format("'{}': the tensor to write is empty or has NaN/Inf values", path.string()));
    }
}

}  // namespace detail

ResizeCrop resize_crop_geometry(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w) {
    if (in_h <= 0 || in_w <= 0 || out_h <= 0 || out_w <= 0) {
        throw DataError(fmt::format("cannot resize {}x{} to {}x{}", in_h, in_w, out_h, out_w));
    }
    ResizeCrop g;
    if (in_h == out_h && in_w == out_w) {
        g.resized_h = in_h;
        g.resized_w = in_w;
        return g;
    }
    const double scale = std::max(static_cast<double>(out_w) / in_w, static_cast<double>(out_h) / in_h);
    g.resized_h = static_cast<int64_t>(std::nearbyint(scale * in_h));
    g.resized_w = static_cast<int64_t>(std::nearbyint(scale * in_w));
    if (g.resized_h < out_h || g.resized_w < out_w) {
        throw Error(fmt::format("resize of {}x{} to cover {}x{} gave {}x{}", in_h, in_w, out_h, out_w, g.resized_h,
                                g.resized_w));
    }
    g.top = (g.resized_h - out_h) / 2;
    g.left = (g.resized_w - out_w) / 2;
    return g;
}

namespace {

/// Number of frames a video decodes to (grab only; directories: the image count).
int64_t count_frames(const fs::path& path, double* fps) {
    detail::require_exists(path);
    if (fs::is_directory(path)) {
        if (fps) *fps = 0;
        return static_cast<int64_t>(detail::image_files(path).size());
    }
    cv::VideoCapture cap(path.string(), cv::CAP_FFMPEG);
    if (!cap.isOpened()) {
        throw DataError(fmt::format("'{}': cannot open as a video (corrupt, truncated or unsupported)", path.string()));
    }
    if (fps) *fps = cap.get(cv::CAP_PROP_FPS);
    const auto reported = static_cast<int64_t>(cap.get(cv::CAP_PROP_FRAME_COUNT));
    int64_t n = 0;
    while (cap.grab()) ++n;
    if (n == 0) throw DataError(fmt::format("'{}': the video has no decodable frames", path.string()));
    detail::check_decoded_count(path, n, reported);
    return n;
}

/// Decodes only the frames `ids` (any order, repeats allowed) as BGR, in the order of `ids`.
std::vector<cv::Mat> decode_frames(const fs::path& path, const std::vector<int64_t>& ids) {
    std::vector<cv::Mat> out(ids.size());
    if (fs::is_directory(path)) {
        const auto files = detail::image_files(path);
        for (std::size_t k = 0; k < ids.size(); ++k)
            out[k] = read_image_bgr(files.at(static_cast<std::size_t>(ids[k])));
        return out;
    }
    std::map<int64_t, std::vector<std::size_t>> wanted;
    for (std::size_t k = 0; k < ids.size(); ++k) wanted[ids[k]].push_back(k);
    cv::VideoCapture cap(path.string(), cv::CAP_FFMPEG);
    if (!cap.isOpened()) throw DataError(fmt::format("'{}': cannot open as a video", path.string()));
    const int64_t last = wanted.rbegin()->first;
    cv::Mat f;
    for (int64_t i = 0; i <= last; ++i) {
        if (!cap.grab()) throw DataError(fmt::format("'{}': decoding failed at frame {}", path.string(), i));
        const auto it = wanted.find(i);
        if (it == wanted.end()) continue;
        if (!cap.retrieve(f) || f.empty() || f.type() != CV_8UC3) {
            throw DataError(fmt::format("'{}': decoding failed at frame {}", path.string(), i));
        }
        for (const auto k : it->second) out[k] = f.clone();
    }
    return out;
}

/// Bicubic antialiased resize of [T, 3, h, w] 0…255 values, rounded to 8 bit (the reference
/// resizes decoded uint8 frames), then centre crop to (oh, ow).
at::Tensor resize_crop_u8(at::Tensor video, int64_t oh, int64_t ow) {
    const int64_t ih = video.size(2), iw = video.size(3);
    if (ih != oh || iw != ow) {
        const auto g = resize_crop_geometry(ih, iw, oh, ow);
        video = F::interpolate(video, F::InterpolateFuncOptions()
                                          .size(std::vector<int64_t>{g.resized_h, g.resized_w})
                                          .mode(torch::kBicubic)
                                          .align_corners(false)
                                          .antialias(true))
                    .round()
                    .clamp(0, 255);
        video = video.narrow(2, g.top, oh).narrow(3, g.left, ow);
    }
    return video;
}

/// Decoded BGR frames → [T, 3, h, w] float 0…255 RGB.
at::Tensor to_u8_float(const std::vector<cv::Mat>& bgr) {
    return frames_to_tensor(bgr).add(1.0).mul(127.5).round().permute({1, 0, 2, 3});
}

at::Tensor to_output(const at::Tensor& t_u8) {  // [T, 3, H, W] 0…255 → [3, T, H, W] in [-1, 1]
    return t_u8.transpose(0, 1).div(127.5).sub(1.0).contiguous();
}

}  // namespace

VideoInfo probe_video(const fs::path& path) {
    detail::require_exists(path);
    VideoInfo info;
    if (fs::is_directory(path)) {
        const auto files = detail::image_files(path);
        const auto first = read_image_bgr(files.front());
        info.frames = static_cast<int64_t>(files.size());
        info.height = first.rows;
        info.width = first.cols;
        return info;
    }
    cv::VideoCapture cap(path.string(), cv::CAP_FFMPEG);
    if (!cap.isOpened()) {
        throw DataError(fmt::format("'{}': cannot open as a video (corrupt, truncated or unsupported)", path.string()));
    }
    info.frames = std::max<int64_t>(0, static_cast<int64_t>(cap.get(cv::CAP_PROP_FRAME_COUNT)));
    info.width = static_cast<int>(cap.get(cv::CAP_PROP_FRAME_WIDTH));
    info.height = static_cast<int>(cap.get(cv::CAP_PROP_FRAME_HEIGHT));
    info.fps = cap.get(cv::CAP_PROP_FPS);
    if (info.width <= 0 || info.height <= 0)
        throw DataError(fmt::format("'{}': the video has no frame size", path.string()));
    return info;
}

Video read_video(const fs::path& path, const VideoReadOptions& o) {
    if (o.start < 0 || o.stride < 1 || o.max_frames == 0 || o.max_frames < -1) {
        throw DataError(fmt::format("'{}': bad frame selection (start {}, stride {}, max_frames {})", path.string(),
                                    o.start, o.stride, o.max_frames));
    }
    if (o.size && (o.size->first < 1 || o.size->second < 1)) {
        throw DataError(fmt::format("'{}': bad target size {}x{}", path.string(), o.size->first, o.size->second));
    }
    double fps = 0;
    const int64_t n = count_frames(path, &fps);
    std::vector<int64_t> ids;
    for (int64_t i = o.start; i < n; i += o.stride) {
        if (o.max_frames > 0 && static_cast<int64_t>(ids.size()) >= o.max_frames) break;
        ids.push_back(i);
    }
    if (ids.empty()) {
        throw DataError(fmt::format("'{}': {} frames, none selected from frame {}", path.string(), n, o.start));
    }
    auto v = to_u8_float(decode_frames(path, ids));
    if (o.size) v = resize_crop_u8(v, o.size->first, o.size->second);
    Video out;
    out.frames = to_output(v);
    out.fps = fps / static_cast<double>(o.stride);
    return out;
}

Video read_video_reference(const fs::path& path, const ReferenceVideoOptions& o) {
    double fps = 0;
    const int64_t n = count_frames(path, &fps);
    if (!(fps > 0)) {
        fps = kFrameDirFps;  // frame directories (and files without a rate): constant-rate timestamps
        spdlog::info("'{}': no frame rate; frame timestamps assume {} fps", path.string(), fps);
    }
    // ref: VACE vace/models/utils/preprocessor.py VaceVideoProcessor._get_frameid_bbox_adjust_last
    const auto first = decode_frames(path, {0});
    const int64_t h = first[0].rows, w = first[0].cols;
    const double ratio = static_cast<double>(h) / w;
    constexpr int64_t df = 4, dh = 16, dw = 16;
    std::vector<float> start(n), end(n);  // decord's [start, end] per frame, float32 as upstream
    for (int64_t i = 0; i < n; ++i) {
        start[i] = static_cast<float>(i / fps);
        end[i] = static_cast<float>((i + 1) / fps);
    }
    const double area_z = std::min({static_cast<double>(o.seq_len), static_cast<double>(o.max_area) / (dh * dw),
                                    static_cast<double>((h / dh) * (w / dw))});
    if (!(area_z >= 1))
        throw DataError(fmt::format("'{}': {}x{} is too small for VACE (16x16 at least)", path.string(), w, h));
    int64_t of = std::min<int64_t>((n - 1) / df + 1, static_cast<int64_t>(o.seq_len / area_z));
    const double target_area_z = std::min(area_z, static_cast<double>(static_cast<int64_t>(o.seq_len / of)));
    const auto oh_z =
        static_cast<int64_t>(std::nearbyint(std::sqrt(target_area_z * ratio)));  // Python round: half to even
    if (oh_z < 1 || static_cast<int64_t>(target_area_z / oh_z) < 1) {
        throw DataError(
            fmt::format("'{}': a {}x{} video does not fit the token budget (seq_len {}) in VACE's 16-pixel "
                        "grid; crop it or raise seq_len",
                        path.string(), w, h, o.seq_len));
    }
    const auto ow_z = static_cast<int64_t>(target_area_z / oh_z);
    of = (of - 1) * df + 1;
    const int64_t oh = oh_z * dh, ow = ow_z * dw;
    const double duration = static_cast<double>(static_cast<float>((start[n - 1] + end[n - 1]) / 2.0f));
    std::vector<int64_t> ids;
    const double step = of > 1 ? duration / static_cast<double>(of - 1) : 0.0;
    for (int64_t k = 0; k < of; ++k) {
        const double ts = (k == of - 1 && of > 1) ? duration : static_cast<double>(k) * step;  // np.linspace
        int64_t id = 0;  // argmax of an all-false row is 0
        for (int64_t i = 0; i < n; ++i) {
            if (ts >= start[i] && ts <= end[i]) {
                id = i;
                break;
            }
        }
        ids.push_back(id);
    }
    Video out;
    out.frames = to_output(resize_crop_u8(to_u8_float(decode_frames(path, ids)), oh, ow));
    out.fps = static_cast<double>(of) / duration;
    return out;
}

at::Tensor read_image(const fs::path& path) {
    const auto bgr = read_image_bgr(path);
    return frames_to_tensor({bgr}).squeeze(1);  // [3, H, W]
}

at::Tensor letterbox_reference(const at::Tensor& image, int64_t height, int64_t width) {
    TORCH_CHECK(image.dim() == 3 && image.size(0) == 3, "reference image must be [3, H, W], got ", image.sizes());
    TORCH_CHECK(height > 0 && width > 0, "letterbox target must be positive, got ", height, "x", width);
    const int64_t rh = image.size(1), rw = image.size(2);
    if (rh == height && rw == width) return image;
    // ref: VACE prepare_source — white canvas, scale = min, int() sizes, bilinear, centred
    const double scale = std::min(static_cast<double>(height) / rh, static_cast<double>(width) / rw);
    const auto nh = static_cast<int64_t>(rh * scale), nw = static_cast<int64_t>(rw * scale);
    const auto resized =
        F::interpolate(
            image.unsqueeze(0).to(torch::kFloat32),
            F::InterpolateFuncOptions().size(std::vector<int64_t>{nh, nw}).mode(torch::kBilinear).align_corners(false))
            .squeeze(0);
    auto canvas = torch::ones({3, height, width}, torch::kFloat32);
    const int64_t top = (height - nh) / 2, left = (width - nw) / 2;
    canvas.narrow(1, top, nh).narrow(2, left, nw).copy_(resized);
    return canvas;
}

void write_video(const fs::path& path, const at::Tensor& frames, const VideoWriteOptions& opts) {
    detail::check_pixels(path, frames, 4, "[3, T, H, W]");
    write_frames_bgr(path, tensor_to_frames(frames), opts);
}

void write_png_frames(const fs::path& dir, const at::Tensor& frames) {
    if (!dir.extension().empty()) {
        throw DataError(fmt::format("'{}': a PNG frame directory must not have an extension", dir.string()));
    }
    write_video(dir, frames);
}

void write_image(const fs::path& path, const at::Tensor& image) {
    detail::check_pixels(path, image, 3, "[3, H, W]");
    if (!detail::is_image_ext(path)) {
        throw DataError(fmt::format("'{}': unknown image extension (png, jpg, …)", path.string()));
    }
    const auto f = tensor_to_frames(image.unsqueeze(1));
    detail::prepare_destination(path);
    const auto tmp = detail::temp_sibling(path);
    std::error_code ec;
    if (!cv::imwrite(tmp.string(), f[0])) {
        fs::remove(tmp, ec);
        throw DataError(fmt::format("'{}': cannot write the image", path.string()));
    }
    fs::rename(tmp, path, ec);
    if (ec) throw DataError(fmt::format("'{}': cannot move the image into place: {}", path.string(), ec.message()));
}

}  // namespace ipa::media
