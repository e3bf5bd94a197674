#include "ipa/eval/frame_metrics.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <string>

#include "ipa/core/error.h"
#include "ipa/pose/hand_mask.h"

namespace ipa::eval {
namespace {

std::string size_of(const cv::Mat& m) {
    return std::to_string(m.rows) + "x" + std::to_string(m.cols) + "x" + std::to_string(m.channels());
}

/// scipy.ndimage's 'reflect' border (d c b a | a b c d | d c b a) for an index within one
/// length of the edge.
inline int reflect(int i, int n) {
    if (i < 0) i = -i - 1;
    if (i >= n) i = 2 * n - i - 1;
    return std::clamp(i, 0, n - 1);
}

/// One line of scipy.ndimage.uniform_filter1d (origin 0): the running sum of its C code.
void uniform_line(const std::vector<double>& in, std::vector<double>& out, int size, std::vector<double>& ext) {
    const int n = static_cast<int>(in.size());
    const int size1 = size / 2, size2 = size - size1 - 1;
    ext.resize(static_cast<std::size_t>(n + size1 + size2));
    for (int k = -size1; k < n + size2; ++k) ext[static_cast<std::size_t>(k + size1)] = in[reflect(k, n)];
    double tmp = 0;
    for (int k = 0; k < size; ++k) tmp += ext[static_cast<std::size_t>(k)];
    tmp /= size;
    out[0] = tmp;
    for (int k = 1; k < n; ++k) {
        tmp += (ext[static_cast<std::size_t>(k + size - 1)] - ext[static_cast<std::size_t>(k - 1)]) / size;
        out[static_cast<std::size_t>(k)] = tmp;
    }
}

/// One line of scipy.ndimage.correlate1d with a symmetric kernel (its symmetric branch).
void gaussian_line(const std::vector<double>& in, std::vector<double>& out, const std::vector<double>& w,
                   std::vector<double>& ext) {
    const int n = static_cast<int>(in.size());
    const int r = static_cast<int>(w.size() / 2);
    ext.resize(static_cast<std::size_t>(n + 2 * r));
    for (int k = -r; k < n + r; ++k) ext[static_cast<std::size_t>(k + r)] = in[reflect(k, n)];
    for (int k = 0; k < n; ++k) {
        const double* c = ext.data() + k + r;
        double tmp = c[0] * w[static_cast<std::size_t>(r)];
        for (int j = 1; j <= r; ++j) tmp += (c[-j] + c[j]) * w[static_cast<std::size_t>(r + j)];
        out[static_cast<std::size_t>(k)] = tmp;
    }
}

/// Separable filter of a row-major h×w float64 image: axis 0 (columns) first, then axis 1.
std::vector<double> filter2d(const std::vector<double>& img, int h, int w, const SsimOptions& o,
                             const std::vector<double>& kernel) {
    std::vector<double> tmp(img.size()), out(img.size()), line, res, ext;
    line.resize(static_cast<std::size_t>(h));
    res.resize(static_cast<std::size_t>(h));
    for (int x = 0; x < w; ++x) {
        for (int y = 0; y < h; ++y) line[static_cast<std::size_t>(y)] = img[static_cast<std::size_t>(y * w + x)];
        if (o.gaussian_weights)
            gaussian_line(line, res, kernel, ext);
        else
            uniform_line(line, res, o.win_size, ext);
        for (int y = 0; y < h; ++y) tmp[static_cast<std::size_t>(y * w + x)] = res[static_cast<std::size_t>(y)];
    }
    line.resize(static_cast<std::size_t>(w));
    res.resize(static_cast<std::size_t>(w));
    for (int y = 0; y < h; ++y) {
        std::copy_n(tmp.begin() + static_cast<std::ptrdiff_t>(y) * w, w, line.begin());
        if (o.gaussian_weights)
            gaussian_line(line, res, kernel, ext);
        else
            uniform_line(line, res, o.win_size, ext);
        std::copy_n(res.begin(), w, out.begin() + static_cast<std::ptrdiff_t>(y) * w);
    }
    return out;
}

std::vector<double> to_doubles(const cv::Mat& m) {
    cv::Mat d;
    m.convertTo(d, CV_64F);
    if (!d.isContinuous()) d = d.clone();
    return std::vector<double>(d.ptr<double>(), d.ptr<double>() + d.total());
}

void check_options(const SsimOptions& o) {
    if (o.gaussian_weights) {
        if (!(o.sigma > 0) || !std::isfinite(o.sigma))
            throw ConfigError("ssim: sigma must be positive, got " + std::to_string(o.sigma));
    } else if (o.win_size < 3 || o.win_size % 2 == 0) {
        throw ConfigError("ssim: win_size must be odd and >= 3, got " + std::to_string(o.win_size));
    }
    if (!(o.data_range > 0)) throw ConfigError("ssim: data_range must be positive");
}

}  // namespace

SsimOptions SsimOptions::gaussian() {
    SsimOptions o;
    o.gaussian_weights = true;
    o.sigma = 1.5;
    o.use_sample_covariance = false;
    o.gray = false;
    return o;
}

int SsimOptions::effective_win_size() const {
    return gaussian_weights ? 2 * static_cast<int>(3.5 * sigma + 0.5) + 1 : win_size;
}

double ssim_channel(const cv::Mat& a, const cv::Mat& b, const SsimOptions& o) {
    check_options(o);
    if (a.channels() != 1 || b.channels() != 1)
        throw DataError("ssim: expected single-channel images, got " + size_of(a) + " and " + size_of(b));
    if (a.size() != b.size()) throw DataError("ssim: image sizes differ: " + size_of(a) + " vs " + size_of(b));
    const int win = o.effective_win_size();
    if (a.rows < win || a.cols < win)
        throw DataError("ssim: image " + size_of(a) + " is smaller than the " + std::to_string(win) + "x" +
                        std::to_string(win) + " window");
    const int h = a.rows, w = a.cols;
    std::vector<double> kernel;
    if (o.gaussian_weights) {  // scipy.ndimage._gaussian_kernel1d, truncate 3.5
        const int r = win / 2;
        double sum = 0;
        for (int x = -r; x <= r; ++x) {
            kernel.push_back(std::exp(-0.5 / (o.sigma * o.sigma) * double(x) * double(x)));
        }
        for (double v : kernel) sum += v;
        for (double& v : kernel) v /= sum;
    }
    const auto x = to_doubles(a), y = to_doubles(b);
    std::vector<double> xx(x.size()), yy(x.size()), xy(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) xx[i] = x[i] * x[i], yy[i] = y[i] * y[i], xy[i] = x[i] * y[i];
    const auto ux = filter2d(x, h, w, o, kernel), uy = filter2d(y, h, w, o, kernel);
    const auto uxx = filter2d(xx, h, w, o, kernel), uyy = filter2d(yy, h, w, o, kernel),
               uxy = filter2d(xy, h, w, o, kernel);
    const double np = double(win) * double(win);
    const double cov_norm = o.use_sample_covariance ? np / (np - 1) : 1.0;
    const double c1 = (o.k1 * o.data_range) * (o.k1 * o.data_range);
    const double c2 = (o.k2 * o.data_range) * (o.k2 * o.data_range);
    const int pad = (win - 1) / 2;
    long double sum = 0;
    for (int r = pad; r < h - pad; ++r) {
        for (int c = pad; c < w - pad; ++c) {
            const std::size_t i = static_cast<std::size_t>(r * w + c);
            const double vx = cov_norm * (uxx[i] - ux[i] * ux[i]);
            const double vy = cov_norm * (uyy[i] - uy[i] * uy[i]);
            const double vxy = cov_norm * (uxy[i] - ux[i] * uy[i]);
            const double a1 = 2 * ux[i] * uy[i] + c1, a2 = 2 * vxy + c2;
            const double b1 = ux[i] * ux[i] + uy[i] * uy[i] + c1, b2 = vx + vy + c2;
            sum += (a1 * a2) / (b1 * b2);
        }
    }
    return static_cast<double>(sum / (static_cast<long double>(h - 2 * pad) * (w - 2 * pad)));
}

double ssim(const cv::Mat& a, const cv::Mat& b, const SsimOptions& o) {
    if (a.type() != CV_8UC3 || b.type() != CV_8UC3)
        throw DataError("ssim: expected 8-bit BGR frames, got " + size_of(a) + " and " + size_of(b));
    if (a.size() != b.size()) throw DataError("ssim: frame sizes differ: " + size_of(a) + " vs " + size_of(b));
    if (o.gray) {
        cv::Mat ga, gb;
        cv::cvtColor(a, ga, cv::COLOR_BGR2GRAY);
        cv::cvtColor(b, gb, cv::COLOR_BGR2GRAY);
        return ssim_channel(ga, gb, o);
    }
    std::vector<cv::Mat> ca, cb;
    cv::split(a, ca);
    cv::split(b, cb);
    double sum = 0;
    for (int c = 2; c >= 0; --c)
        sum += ssim_channel(ca[static_cast<std::size_t>(c)], cb[static_cast<std::size_t>(c)], o);
    return sum / 3;  // skimage: np.mean over the R, G, B results
}

double psnr(const cv::Mat& a, const cv::Mat& b) {
    if (a.depth() != CV_8U || b.depth() != CV_8U || a.size() != b.size() || a.channels() != b.channels())
        throw DataError("psnr: expected two uint8 images of one size, got " + size_of(a) + " and " + size_of(b));
    int64_t sq = 0;  // exact: the integer sum of squared differences
    const int n = a.cols * a.channels();
    for (int r = 0; r < a.rows; ++r) {
        const uint8_t* pa = a.ptr<uint8_t>(r);
        const uint8_t* pb = b.ptr<uint8_t>(r);
        for (int i = 0; i < n; ++i) {
            const int d = int(pa[i]) - int(pb[i]);
            sq += d * d;
        }
    }
    if (sq == 0) return 100.0;
    const double mse = double(sq) / (double(a.total()) * a.channels());
    return 20 * std::log10(255.0 / std::sqrt(mse));
}

std::vector<cv::Rect> hand_crop_boxes(const pose::PoseFrame& frame, int height, int width,
                                      const HandCropOptions& opts) {
    if (opts.min_side < 1) throw ConfigError("hand crops: min_side must be >= 1, got " + std::to_string(opts.min_side));
    pose::HandMaskOptions mo;
    mo.padding = opts.padding;
    mo.threshold = opts.threshold;
    mo.min_points = opts.min_points;
    const double sx = frame.width > 0 ? double(width) / frame.width : 1.0;
    const double sy = frame.height > 0 ? double(height) / frame.height : 1.0;
    std::vector<cv::Rect> out;
    for (const auto& person : frame.people) {
        for (const auto* raw : {&person.hand_left, &person.hand_right}) {
            if (raw->empty()) continue;
            auto hand = *raw;
            for (auto& k : hand) k.x = float(k.x * sx), k.y = float(k.y * sy);
            const auto box = pose::hand_box(hand, height, width, mo);
            if (!box) continue;
            const int side = std::min({std::max({box->width, box->height, opts.min_side}), height, width});
            const double cx = box->x + box->width / 2.0, cy = box->y + box->height / 2.0;
            const int x = std::clamp(static_cast<int>(std::floor(cx - side / 2.0 + 0.5)), 0, width - side);
            const int y = std::clamp(static_cast<int>(std::floor(cy - side / 2.0 + 0.5)), 0, height - side);
            out.emplace_back(x, y, side, side);
        }
    }
    return out;
}

}  // namespace ipa::eval
