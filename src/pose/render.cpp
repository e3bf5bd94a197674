#include "ipa/pose/render.h"

#include <opencv2/imgproc.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

#include "ipa/core/error.h"
#include "detail.h"

namespace ipa::pose {

double decimal_threshold(float t) {
    // The shortest decimal that reads back as t (0.3f -> 0.3), as a double: upstream compares
    // float32 scores with the Python float 0.3.
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf) - 1, t);
    *res.ptr = '\0';
    return std::strtod(buf, nullptr);
}

namespace {

// ref: vace/annotators/dwpose/util.py draw_bodypose / draw_handpose / draw_facepose
constexpr int kStickWidth = 4;
constexpr double kEps = 0.01;
// 1-based (upstream limbSeq); only the first 17 of upstream's 19 pairs are drawn.
constexpr std::array<std::array<int, 2>, 17> kLimbSeq = {{{2, 3}, {2, 6}, {3, 4}, {4, 5}, {6, 7}, {7, 8}, {2, 9},
                                                         {9, 10}, {10, 11}, {2, 12}, {12, 13}, {13, 14}, {2, 1},
                                                         {1, 15}, {15, 17}, {1, 16}, {16, 18}}};
constexpr std::array<std::array<int, 3>, 18> kColors = {{{255, 0, 0}, {255, 85, 0}, {255, 170, 0}, {255, 255, 0},
                                                        {170, 255, 0}, {85, 255, 0}, {0, 255, 0}, {0, 255, 85},
                                                        {0, 255, 170}, {0, 255, 255}, {0, 170, 255}, {0, 85, 255},
                                                        {0, 0, 255}, {85, 0, 255}, {170, 0, 255}, {255, 0, 255},
                                                        {255, 0, 170}, {255, 0, 85}}};
constexpr std::array<std::array<int, 2>, 20> kHandEdges = {{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {0, 5}, {5, 6}, {6, 7},
                                                           {7, 8}, {0, 9}, {9, 10}, {10, 11}, {11, 12}, {0, 13},
                                                           {13, 14}, {14, 15}, {15, 16}, {0, 17}, {17, 18},
                                                           {18, 19}, {19, 20}}};

cv::Scalar palette(int i) { return cv::Scalar(kColors[i][0], kColors[i][1], kColors[i][2]); }

/// matplotlib.colors.hsv_to_rgb([h, 1, 1]) * 255 in double precision (OpenCV rounds it when drawing).
cv::Scalar hsv_color(double h) {
    const double s = 1.0, v = 1.0;
    const int i = static_cast<int>(h * 6.0);
    const double f = h * 6.0 - i;
    const double p = v * (1.0 - s), q = v * (1.0 - s * f), t = v * (1.0 - s * (1.0 - f));
    double r = v, g = t, b = p;
    switch (i % 6) {
        case 1: r = q, g = v, b = p; break;
        case 2: r = p, g = v, b = t; break;
        case 3: r = p, g = q, b = v; break;
        case 4: r = t, g = p, b = v; break;
        case 5: r = v, g = p, b = q; break;
        default: break;
    }
    return cv::Scalar(r * 255, g * 255, b * 255);
}

/// Python int() of a pixel coordinate (truncation toward zero), kept inside int range.
int trunc_int(double v) { return static_cast<int>(std::clamp(v, -1.0e9, 1.0e9)); }

/// Normalised coordinates as upstream holds them (pixels / detection canvas), times the render canvas.
struct Scale {
    double fw, fh, w, h;
    double x(float v) const { return double(v) / fw * w; }
    double y(float v) const { return double(v) / fh * h; }
};

bool finite(const Keypoint& k) { return std::isfinite(k.x) && std::isfinite(k.y) && std::isfinite(k.c); }

void draw_body(cv::Mat& canvas, const std::vector<Person>& people, const Scale& s, double thr) {
    const auto visible = [&](const Person& p, int j) {
        return static_cast<int>(p.body.size()) > j && finite(p.body[j]) && double(p.body[j].c) > thr;
    };
    for (std::size_t i = 0; i < kLimbSeq.size(); ++i) {
        for (const Person& p : people) {
            const int a = kLimbSeq[i][0] - 1, b = kLimbSeq[i][1] - 1;
            if (!visible(p, a) || !visible(p, b)) continue;
            const double x0 = s.x(p.body[a].x), x1 = s.x(p.body[b].x);
            const double y0 = s.y(p.body[a].y), y1 = s.y(p.body[b].y);
            const double mx = (x0 + x1) / 2, my = (y0 + y1) / 2;
            const double length = std::pow(std::pow(y0 - y1, 2.0) + std::pow(x0 - x1, 2.0), 0.5);
            const double angle = std::atan2(y0 - y1, x0 - x1) * (180.0 / M_PI);  // math.degrees
            std::vector<cv::Point> poly;
            cv::ellipse2Poly(cv::Point(trunc_int(mx), trunc_int(my)), cv::Size(trunc_int(length / 2), kStickWidth),
                             trunc_int(angle), 0, 360, 1, poly);
            cv::fillConvexPoly(canvas, poly, palette(static_cast<int>(i)));
        }
    }
    // (canvas * 0.6).astype(uint8): truncation of the double product.
    std::array<uchar, 256> lut;
    for (int v = 0; v < 256; ++v) lut[v] = static_cast<uchar>(v * 0.6);
    canvas.forEach<cv::Vec3b>([&](cv::Vec3b& px, const int*) {
        for (int c = 0; c < 3; ++c) px[c] = lut[px[c]];
    });
    for (int j = 0; j < 18; ++j) {
        for (const Person& p : people) {
            if (!visible(p, j)) continue;
            cv::circle(canvas, cv::Point(trunc_int(s.x(p.body[j].x)), trunc_int(s.y(p.body[j].y))), 4, palette(j),
                       cv::FILLED);
        }
    }
}

/// Hand/face point in canvas pixels, or nullopt when upstream hides it (score < threshold,
/// or an integer coordinate not > eps).
std::optional<cv::Point> dot(const Keypoint& k, const Scale& s, double thr) {
    if (!finite(k) || double(k.c) < thr) return std::nullopt;
    const int x = trunc_int(s.x(k.x)), y = trunc_int(s.y(k.y));
    if (!(x > kEps && y > kEps)) return std::nullopt;
    return cv::Point(x, y);
}

void draw_hand(cv::Mat& canvas, const std::vector<Keypoint>& hand, const Scale& s, double thr) {
    if (hand.size() < 21) return;
    for (std::size_t ie = 0; ie < kHandEdges.size(); ++ie) {
        const auto a = dot(hand[kHandEdges[ie][0]], s, thr), b = dot(hand[kHandEdges[ie][1]], s, thr);
        if (a && b) cv::line(canvas, *a, *b, hsv_color(double(ie) / double(kHandEdges.size())), 2);
    }
    for (const Keypoint& k : hand)
        if (auto d = dot(k, s, thr)) cv::circle(canvas, *d, 4, cv::Scalar(0, 0, 255), cv::FILLED);
}

}  // namespace

cv::Mat render_pose(const PoseFrame& frame, int height, int width, const RenderOptions& opts) {
    if (height <= 0 || width <= 0)
        throw ConfigError("render_pose: canvas size must be positive, got " + std::to_string(height) + "x" +
                          std::to_string(width));
    if (!std::isfinite(opts.threshold)) throw ConfigError("render_pose: threshold must be finite");
    cv::Mat canvas(height, width, CV_8UC3, cv::Scalar::all(0));
    const Scale s{frame.width > 0 ? double(frame.width) : double(width),
                  frame.height > 0 ? double(frame.height) : double(height), double(width), double(height)};
    const double thr = decimal_threshold(opts.threshold);
    if (opts.body) draw_body(canvas, frame.people, s, thr);
    if (opts.hands) {
        // Upstream's hand list: every person's left hand, then every person's right hand.
        for (const Person& p : frame.people) draw_hand(canvas, p.hand_left, s, thr);
        for (const Person& p : frame.people) draw_hand(canvas, p.hand_right, s, thr);
    }
    if (opts.face) {
        for (const Person& p : frame.people)
            for (const Keypoint& k : p.face)
                if (auto d = dot(k, s, thr)) cv::circle(canvas, *d, 3, cv::Scalar(255, 255, 255), cv::FILLED);
    }
    return canvas;
}

std::vector<cv::Mat> render_pose_video(const PoseSequence& seq, int height, int width, const RenderOptions& opts) {
    std::vector<cv::Mat> out;
    out.reserve(seq.frames.size());
    for (const PoseFrame& f : seq.frames) out.push_back(render_pose(f, height, width, opts));
    return out;
}

}  // namespace ipa::pose
