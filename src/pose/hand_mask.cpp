#include "ipa/pose/hand_mask.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <opencv2/imgproc.hpp>
#include <string>

#include "detail.h"
#include "ipa/core/error.h"
#include "ipa/io/safetensors.h"

namespace ipa::pose {
namespace {

void check_options(const HandMaskOptions& o, const char* where) {
    if (!std::isfinite(o.padding) || o.padding < 0)
        throw ConfigError(std::string(where) + ": padding must be a finite number >= 0, got " +
                          std::to_string(o.padding));
    if (!std::isfinite(o.threshold)) throw ConfigError(std::string(where) + ": threshold must be finite");
    if (o.min_points < 1)
        throw ConfigError(std::string(where) + ": min_points must be >= 1, got " + std::to_string(o.min_points));
}

void check_size(int64_t height, int64_t width, const char* where) {
    if (height <= 0 || width <= 0 || height > (1 << 20) || width > (1 << 20))
        throw ConfigError(std::string(where) + ": mask size must be positive, got " + std::to_string(height) + "x" +
                          std::to_string(width));
}

/// The confident points of a hand (c > threshold, finite coordinates).
std::vector<cv::Point2d> confident(const std::vector<Keypoint>& hand, const HandMaskOptions& o) {
    const double thr = decimal_threshold(o.threshold);
    std::vector<cv::Point2d> pts;
    for (const Keypoint& k : hand)
        if (std::isfinite(k.x) && std::isfinite(k.y) && double(k.c) > thr && std::fabs(k.x) < 1e8 &&
            std::fabs(k.y) < 1e8)
            pts.emplace_back(k.x, k.y);
    return pts;
}

/// Padding in pixels: padding x the longer side of the points' box.
double pad_of(const std::vector<cv::Point2d>& pts, double padding) {
    double x0 = pts[0].x, x1 = x0, y0 = pts[0].y, y1 = y0;
    for (const auto& p : pts) {
        x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
        y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
    }
    return padding * std::max(x1 - x0, y1 - y0);
}

/// Fills the convex hull of the points, dilated by a disc of radius round(pad), into `mask`.
void fill_hull(cv::Mat& mask, const std::vector<cv::Point2d>& pts, double pad) {
    std::vector<cv::Point> ipts;
    for (const auto& p : pts) ipts.emplace_back(cvRound(p.x), cvRound(p.y));
    const int r = static_cast<int>(std::lround(pad));
    cv::Rect ext = cv::boundingRect(ipts);  // exclusive br: +1 past the last point
    ext = cv::Rect(ext.x - r, ext.y - r, ext.width + 2 * r, ext.height + 2 * r);
    // Parts of the hull more than r outside the image cannot reach it after the dilation.
    const cv::Rect image(0, 0, mask.cols, mask.rows);
    const cv::Rect local_area = ext & cv::Rect(-r - 1, -r - 1, mask.cols + 2 * r + 2, mask.rows + 2 * r + 2);
    const cv::Rect visible = local_area & image;
    if (visible.empty()) return;
    cv::Mat local(local_area.size(), CV_8UC1, cv::Scalar(0));
    std::vector<cv::Point> hull;
    cv::convexHull(ipts, hull);
    for (auto& p : hull) p -= local_area.tl();
    cv::fillConvexPoly(local, hull, cv::Scalar(255));
    if (r > 0) cv::dilate(local, local, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * r + 1, 2 * r + 1)));
    cv::Mat dst = mask(visible);
    cv::bitwise_or(dst, local(cv::Rect(visible.tl() - local_area.tl(), visible.size())), dst);
}

std::vector<Keypoint> scaled(const std::vector<Keypoint>& hand, double sx, double sy) {
    std::vector<Keypoint> out(hand);
    for (auto& k : out) {
        k.x = static_cast<float>(double(k.x) * sx);
        k.y = static_cast<float>(double(k.y) * sy);
    }
    return out;
}

}  // namespace

std::optional<cv::Rect> hand_box(const std::vector<Keypoint>& hand, int height, int width,
                                 const HandMaskOptions& opts) {
    check_options(opts, "hand_box");
    check_size(height, width, "hand_box");
    const auto pts = confident(hand, opts);
    if (pts.empty() || static_cast<int>(pts.size()) < opts.min_points) return std::nullopt;
    const double pad = pad_of(pts, opts.padding);
    double x0 = pts[0].x, x1 = x0, y0 = pts[0].y, y1 = y0;
    for (const auto& p : pts) {
        x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
        y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
    }
    // Pixels i with floor(min - pad) <= i <= ceil(max + pad), clipped to the image.
    const double bx0 = std::max(std::floor(x0 - pad), 0.0), by0 = std::max(std::floor(y0 - pad), 0.0);
    const double bx1 = std::min(std::ceil(x1 + pad), double(width - 1)),
                 by1 = std::min(std::ceil(y1 + pad), double(height - 1));
    if (bx0 > bx1 || by0 > by1) return std::nullopt;
    return cv::Rect(int(bx0), int(by0), int(bx1 - bx0) + 1, int(by1 - by0) + 1);
}

cv::Mat hand_mask(const PoseFrame& frame, int height, int width, const HandMaskOptions& opts) {
    check_options(opts, "hand_mask");
    check_size(height, width, "hand_mask");
    cv::Mat mask(height, width, CV_8UC1, cv::Scalar(0));
    const double sx = frame.width > 0 ? double(width) / frame.width : 1.0;
    const double sy = frame.height > 0 ? double(height) / frame.height : 1.0;
    for (const Person& p : frame.people) {
        for (const auto* raw : {&p.hand_left, &p.hand_right}) {
            if (raw->empty()) continue;
            const auto hand = (sx == 1.0 && sy == 1.0) ? *raw : scaled(*raw, sx, sy);
            if (opts.shape == HandMaskOptions::Shape::Box) {
                if (auto box = hand_box(hand, height, width, opts)) mask(*box).setTo(cv::Scalar(255));
            } else {
                const auto pts = confident(hand, opts);
                if (pts.empty() || static_cast<int>(pts.size()) < opts.min_points) continue;
                fill_hull(mask, pts, pad_of(pts, opts.padding));
            }
        }
    }
    return mask;
}

at::Tensor hand_masks(const PoseSequence& seq, int64_t height, int64_t width, const HandMaskOptions& opts) {
    check_size(height, width, "hand_masks");
    const auto t = static_cast<int64_t>(seq.frames.size());
    auto out = torch::empty({t, height, width}, torch::kFloat32);
    for (int64_t i = 0; i < t; ++i) {
        cv::Mat m = hand_mask(seq.frames[i], static_cast<int>(height), static_cast<int>(width), opts);
        cv::Mat f;
        m.convertTo(f, CV_32F, 1.0 / 255.0);
        std::memcpy(out[i].data_ptr<float>(), f.ptr<float>(), sizeof(float) * height * width);
    }
    return out;
}

at::Tensor latent_hand_mask(const at::Tensor& pixel_masks, int64_t spatial, int64_t temporal) {
    if (spatial < 1 || temporal < 1)
        throw ConfigError("latent_hand_mask: spatial and temporal factors must be >= 1, got " +
                          std::to_string(spatial) + " and " + std::to_string(temporal));
    if (!pixel_masks.defined() || pixel_masks.dim() != 3)
        throw DataError(
            "latent_hand_mask: expected pixel masks [T, H, W], got " +
            (pixel_masks.defined() ? std::to_string(pixel_masks.dim()) + "-d tensor" : "an undefined tensor"));
    const int64_t t = pixel_masks.size(0), h = pixel_masks.size(1), w = pixel_masks.size(2);
    if (t < 1 || (t - 1) % temporal != 0)
        throw DataError("latent_hand_mask: " + std::to_string(t) + " frames; the Wan VAE needs 1 + " +
                        std::to_string(temporal) + "k frames (e.g. 81)");
    if (h < spatial || w < spatial || h % spatial != 0 || w % spatial != 0)
        throw DataError("latent_hand_mask: frame size " + std::to_string(h) + "x" + std::to_string(w) +
                        " is not a positive multiple of " + std::to_string(spatial));
    torch::NoGradGuard no_grad;
    auto x = pixel_masks.to(torch::kFloat32).unsqueeze(1);              // [T, 1, H, W]
    auto pooled = torch::max_pool2d(x, {spatial, spatial}).squeeze(1);  // [T, h, w]
    const int64_t k = (t - 1) / temporal;
    auto first = pooled.narrow(0, 0, 1);  // latent 0 = pixel frame 0 alone (causal VAE)
    if (k == 0) return first.contiguous();
    auto rest = std::get<0>(pooled.narrow(0, 1, k * temporal).reshape({k, temporal, h / spatial, w / spatial}).max(1));
    return torch::cat({first, rest}, 0).contiguous();  // [1 + k, h, w]
}

void save_latent_mask(const std::filesystem::path& path, const at::Tensor& mask) {
    if (!mask.defined() || mask.dim() != 3)
        throw DataError("save_latent_mask " + path.string() + ": expected a [T_lat, h, w] tensor, got " +
                        (mask.defined() ? std::to_string(mask.dim()) + "-d" : "an undefined tensor"));
    if (!mask.is_floating_point())
        throw DataError("save_latent_mask " + path.string() + ": expected a floating-point mask");
    io::save_safetensors(path, {{"hand_mask", mask.detach().to(torch::kCPU, torch::kFloat32).contiguous()}},
                         {{"format", "ipa.hand_mask"}});
}

}  // namespace ipa::pose
