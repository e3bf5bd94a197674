#include "ipa/media/frames.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <regex>

#include "ipa/core/error.h"
#include "media_internal.h"

namespace ipa::media {
namespace fs = std::filesystem;

namespace detail {

std::string lower_ext(const fs::path& p) {
    std::string e = p.extension().string();
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return e;
}

bool is_video_ext(const fs::path& p) {
    const auto e = lower_ext(p);
    return e == ".mp4" || e == ".avi" || e == ".mkv" || e == ".mov" || e == ".webm";
}

bool is_image_ext(const fs::path& p) {
    const auto e = lower_ext(p);
    return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".webp" || e == ".tif" || e == ".tiff";
}

std::vector<fs::path> image_files(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.is_regular_file() && is_image_ext(e.path())) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty())
        throw DataError(fmt::format("'{}': directory holds no image frames (png, jpg, …)", dir.string()));
    return files;
}

void check_decoded_count(const fs::path& path, int64_t decoded, int64_t reported) {
    if (reported <= 0 || decoded >= reported - 1) return;
    // Containers estimate their frame count; a small shortfall is normal, a large one means
    // the file is cut off or damaged.
    if (decoded < reported - 2 && decoded * 10 < reported * 9) {
        throw DataError(
            fmt::format("'{}': decoding failed at frame {} of the {} the container reports (truncated or "
                        "corrupt file)",
                        path.string(), decoded, reported));
    }
    spdlog::warn("'{}': decoded {} frames, the container reports {}", path.string(), decoded, reported);
}

void prepare_destination(const fs::path& path) {
    const auto parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec || !fs::is_directory(parent, ec) || ::access(parent.c_str(), W_OK) != 0) {
        throw DataError(fmt::format("'{}': cannot write here (directory '{}' is missing or not writable{}{})",
                                    path.string(), parent.string(), ec ? ": " : "", ec ? ec.message() : ""));
    }
}

void require_exists(const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw DataError(fmt::format("'{}': no such file or directory", path.string()));
}

/// A temporary sibling of `path` (same directory, so the final rename is atomic).
fs::path temp_sibling(const fs::path& path) {
    return path.parent_path() /
           fmt::format(".{}.tmp-{}{}", path.stem().string(), ::getpid(), path.extension().string());
}

}  // namespace detail

cv::Mat read_image_bgr(const fs::path& path) {
    detail::require_exists(path);
    cv::Mat img = cv::imread(path.string(), cv::IMREAD_UNCHANGED);
    if (img.empty())
        throw DataError(fmt::format("'{}': not a readable image (corrupt or unsupported format)", path.string()));
    if (img.depth() == CV_16U) img.convertTo(img, CV_8U, 1.0 / 257.0);
    if (img.depth() != CV_8U)
        throw DataError(fmt::format("'{}': unsupported image depth (8 or 16 bit expected)", path.string()));
    cv::Mat bgr;
    switch (img.channels()) {
        case 1:
            cv::cvtColor(img, bgr, cv::COLOR_GRAY2BGR);
            break;
        case 3:
            bgr = img;
            break;
        case 4:
            cv::cvtColor(img, bgr, cv::COLOR_BGRA2BGR);
            break;  // alpha dropped, as PIL .convert('RGB')
        default:
            throw DataError(fmt::format("'{}': {} channels (1, 3 or 4 expected)", path.string(), img.channels()));
    }
    return bgr;
}

std::vector<cv::Mat> read_frames_bgr(const fs::path& path, double* fps) {
    detail::require_exists(path);
    std::vector<cv::Mat> frames;
    if (fs::is_directory(path)) {
        for (const auto& f : detail::image_files(path)) {
            frames.push_back(read_image_bgr(f));
            if (frames.back().size() != frames.front().size()) {
                throw DataError(fmt::format("'{}': frame size {}x{} differs from the first frame's {}x{}", f.string(),
                                            frames.back().cols, frames.back().rows, frames.front().cols,
                                            frames.front().rows));
            }
        }
        if (fps) *fps = 0;
        return frames;
    }
    cv::VideoCapture cap(path.string(), cv::CAP_FFMPEG);
    if (!cap.isOpened()) {
        throw DataError(fmt::format("'{}': cannot open as a video (corrupt, truncated or unsupported)", path.string()));
    }
    const double rate = cap.get(cv::CAP_PROP_FPS);
    const auto reported = static_cast<int64_t>(cap.get(cv::CAP_PROP_FRAME_COUNT));
    cv::Mat f;
    while (cap.read(f)) {
        if (f.empty()) break;
        if (f.type() != CV_8UC3) {
            throw DataError(
                fmt::format("'{}': frame {} decodes to an unexpected pixel format", path.string(), frames.size()));
        }
        frames.push_back(f.clone());
    }
    if (frames.empty()) throw DataError(fmt::format("'{}': the video has no decodable frames", path.string()));
    detail::check_decoded_count(path, static_cast<int64_t>(frames.size()), reported);
    if (fps) *fps = rate;
    return frames;
}

at::Tensor frames_to_tensor(const std::vector<cv::Mat>& bgr) {
    TORCH_CHECK(!bgr.empty(), "frames_to_tensor: no frames");
    const int h = bgr[0].rows, w = bgr[0].cols;
    auto out = torch::empty({static_cast<int64_t>(bgr.size()), h, w, 3}, torch::kUInt8);
    for (std::size_t i = 0; i < bgr.size(); ++i) {
        TORCH_CHECK(bgr[i].type() == CV_8UC3 && bgr[i].rows == h && bgr[i].cols == w, "frames_to_tensor: frame ", i,
                    " is not CV_8UC3 of ", w, "x", h);
        cv::Mat rgb;
        cv::cvtColor(bgr[i], rgb, cv::COLOR_BGR2RGB);
        std::memcpy(out[static_cast<int64_t>(i)].data_ptr(), rgb.isContinuous() ? rgb.data : rgb.clone().data,
                    static_cast<std::size_t>(h) * w * 3);
    }
    return out.permute({3, 0, 1, 2}).to(torch::kFloat32).div_(127.5).sub_(1.0).contiguous();  // [3, T, H, W]
}

std::vector<cv::Mat> tensor_to_frames(const at::Tensor& frames) {
    TORCH_CHECK(frames.dim() == 4 && frames.size(0) == 3, "video tensor must be [3, T, H, W], got ", frames.sizes());
    TORCH_CHECK(frames.is_floating_point(), "video tensor must be floating point in [-1, 1], got ",
                frames.scalar_type());
    // ref: wan/utils/utils.py cache_video: clamp, (x + 1) / 2, ×255, uint8 (truncation). The
    // 1e-4 lets values read from 8-bit media (u/127.5 − 1) come back as exactly u.
    const auto u8 = ((frames.detach().to(torch::kCPU, torch::kFloat32).clamp(-1, 1) + 1) / 2 * 255 + 1e-4)
                        .to(torch::kUInt8)
                        .permute({1, 2, 3, 0})
                        .contiguous();  // [T, H, W, 3] RGB
    const int h = static_cast<int>(u8.size(1)), w = static_cast<int>(u8.size(2));
    std::vector<cv::Mat> out;
    for (int64_t t = 0; t < u8.size(0); ++t) {
        cv::Mat rgb(h, w, CV_8UC3, u8[t].data_ptr());
        cv::Mat bgr;
        cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
        out.push_back(bgr);
    }
    return out;
}

void write_frames_bgr(const fs::path& path, const std::vector<cv::Mat>& frames_in, const VideoWriteOptions& opts) {
    if (frames_in.empty()) throw DataError(fmt::format("'{}': no frames to write", path.string()));
    std::vector<cv::Mat> frames;
    for (std::size_t i = 0; i < frames_in.size(); ++i) {
        const auto& f = frames_in[i];
        cv::Mat bgr;
        if (f.type() == CV_8UC1)
            cv::cvtColor(f, bgr, cv::COLOR_GRAY2BGR);
        else if (f.type() == CV_8UC3)
            bgr = f;
        else
            throw DataError(fmt::format("'{}': frame {} is not 8-bit gray or BGR", path.string(), i));
        if (bgr.size() != frames_in[0].size()) {
            throw DataError(fmt::format("'{}': frame {} is {}x{}, frame 0 is {}x{}", path.string(), i, bgr.cols,
                                        bgr.rows, frames_in[0].cols, frames_in[0].rows));
        }
        frames.push_back(bgr);
    }
    std::error_code ec;
    detail::prepare_destination(path);
    if (path.extension().empty()) {  // a directory of PNG frames, written aside and renamed
        const auto tmp = detail::temp_sibling(path);
        fs::remove_all(tmp, ec);
        fs::create_directories(tmp, ec);
        if (ec)
            throw DataError(fmt::format("'{}': cannot create the frame directory: {}", path.string(), ec.message()));
        for (std::size_t i = 0; i < frames.size(); ++i) {
            const auto f = tmp / fmt::format("{:06d}.png", i);
            if (!cv::imwrite(f.string(), frames[i])) {
                fs::remove_all(tmp, ec);
                throw DataError(fmt::format("'{}': cannot write frame {}", path.string(), i));
            }
        }
        if (fs::exists(path, ec)) {
            // Only ever replace an earlier frame directory, never a user's folder.
            static const std::regex frame_name(R"(\d{6}\.png)");
            bool frames_only = fs::is_directory(path, ec);
            if (frames_only) {
                for (const auto& e : fs::directory_iterator(path)) {
                    if (!e.is_regular_file() || !std::regex_match(e.path().filename().string(), frame_name)) {
                        frames_only = false;
                        break;
                    }
                }
            }
            if (!frames_only) {
                fs::remove_all(tmp, ec);
                throw DataError(fmt::format("'{}' exists and is not a frame directory written by ipa; not replacing it",
                                            path.string()));
            }
            fs::remove_all(path, ec);
        }
        fs::rename(tmp, path, ec);
        if (ec)
            throw DataError(fmt::format("'{}': cannot move the frames into place: {}", path.string(), ec.message()));
        return;
    }
    if (!detail::is_video_ext(path)) {
        throw DataError(
            fmt::format("'{}': unknown video extension (use .mp4, .avi, .mkv, .mov, or no extension for "
                        "PNG frames)",
                        path.string()));
    }
    if (!(opts.fps > 0)) throw DataError(fmt::format("'{}': fps must be positive, got {}", path.string(), opts.fps));
    detail::encode_video(path, frames, opts);
}

}  // namespace ipa::media
