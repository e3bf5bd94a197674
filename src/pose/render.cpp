#include "ipa/pose/render.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <string>

#include "detail.h"
#include "ipa/core/error.h"

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
constexpr std::array<std::array<int, 2>, 17> kLimbSeq = {{{2, 3},
                                                          {2, 6},
                                                          {3, 4},
                                                          {4, 5},
                                                          {6, 7},
                                                          {7, 8},
                                                          {2, 9},
                                                          {9, 10},
                                                          {10, 11},
                                                          {2, 12},
                                                          {12, 13},
                                                          {13, 14},
                                                          {2, 1},
                                                          {1, 15},
                                                          {15, 17},
                                                          {1, 16},
                                                          {16, 18}}};
// UniAnimate-DiT draw_body_and_foot: LAnkle -> left toes (point 19), RAnkle -> right toes (point 20).
constexpr std::array<std::array<int, 2>, 2> kFootLimbs = {{{14, 19}, {11, 20}}};
constexpr std::array<std::array<int, 3>, 20> kColors = {
    {{255, 0, 0},   {255, 85, 0},  {255, 170, 0}, {255, 255, 0}, {170, 255, 0},   {85, 255, 0}, {0, 255, 0},
     {0, 255, 85},  {0, 255, 170}, {0, 255, 255}, {0, 170, 255}, {0, 85, 255},    {0, 0, 255},  {85, 0, 255},
     {170, 0, 255}, {255, 0, 255}, {255, 0, 170}, {255, 0, 85},  {170, 255, 255}, {255, 255, 0}}};
constexpr std::array<std::array<int, 2>, 20> kHandEdges = {
    {{0, 1},   {1, 2},   {2, 3},  {3, 4},   {0, 5},   {5, 6},   {6, 7},  {7, 8},   {0, 9},   {9, 10},
     {10, 11}, {11, 12}, {0, 13}, {13, 14}, {14, 15}, {15, 16}, {0, 17}, {17, 18}, {18, 19}, {19, 20}}};

cv::Scalar palette(int i) { return cv::Scalar(kColors[i][0], kColors[i][1], kColors[i][2]); }

/// matplotlib.colors.hsv_to_rgb([h, 1, 1]) times `scale`, in double precision (OpenCV rounds it when drawing).
cv::Scalar hsv_color(double h, double scale) {
    const double s = 1.0, v = 1.0;
    const int i = static_cast<int>(h * 6.0);
    const double f = h * 6.0 - i;
    const double p = v * (1.0 - s), q = v * (1.0 - s * f), t = v * (1.0 - s * (1.0 - f));
    double r = v, g = t, b = p;
    switch (i % 6) {
        case 1:
            r = q, g = v, b = p;
            break;
        case 2:
            r = p, g = v, b = t;
            break;
        case 3:
            r = p, g = q, b = v;
            break;
        case 4:
            r = t, g = p, b = v;
            break;
        case 5:
            r = v, g = p, b = q;
            break;
        default:
            break;
    }
    return cv::Scalar(r * scale, g * scale, b * scale);
}

/// Python int() of a pixel coordinate (truncation toward zero), kept inside int range.
int trunc_int(double v) { return static_cast<int>(std::clamp(v, -1.0e9, 1.0e9)); }

/// Normalised coordinates as upstream holds them: pixels / detection canvas (double).
struct Norm {
    double fw, fh;
    double x(float v) const { return double(v) / fw; }
    double y(float v) const { return double(v) / fh; }
};

bool finite(const Keypoint& k) { return std::isfinite(k.x) && std::isfinite(k.y) && std::isfinite(k.c); }

/// One body point as the drawers see it: normalised position, score, subset visibility.
struct BodyPoint {
    double nx = -1, ny = -1, c = 0;
    bool visible = false;  // upstream subset != -1 (score > threshold)
};

std::vector<BodyPoint> body_points(const Person& p, const Norm& n, double thr, bool with_feet) {
    std::vector<BodyPoint> out(with_feet ? 20 : 18);
    for (std::size_t j = 0; j < 18 && j < p.body.size(); ++j) {
        const Keypoint& k = p.body[j];
        if (!finite(k)) continue;
        out[j] = {n.x(k.x), n.y(k.y), double(k.c), double(k.c) > thr};
    }
    if (with_feet && p.feet.size() == 6) {
        // ref: UniAnimate-DiT prepare_training_data.py: 18 = mean(l_big_toe, l_small_toe), 19 = mean(r_big_toe,
        // r_small_toe)
        for (int side = 0; side < 2; ++side) {
            const Keypoint &a = p.feet[3 * side], &b = p.feet[3 * side + 1];
            if (!finite(a) || !finite(b)) continue;
            const bool vis = double(a.c) > thr && double(b.c) > thr;
            out[18 + side] = {(n.x(a.x) + n.x(b.x)) / 2, (n.y(a.y) + n.y(b.y)) / 2, 1.0, vis};
        }
    }
    return out;
}

cv::Scalar scaled(const cv::Scalar& c, double alpha) {  // MimicMotion alpha_blend_color: int(c * alpha)
    return cv::Scalar(trunc_int(c[0] * alpha), trunc_int(c[1] * alpha), trunc_int(c[2] * alpha));
}

void draw_body(cv::Mat& canvas, const std::vector<std::vector<BodyPoint>>& people, RenderOptions::Style style,
               double thr) {
    const double W = canvas.cols, H = canvas.rows;
    const bool mimic = style == RenderOptions::Style::MimicMotion;
    const std::size_t n_limbs = style == RenderOptions::Style::UniAnimate ? 19 : 17;
    for (std::size_t i = 0; i < n_limbs; ++i) {
        for (const auto& pts : people) {
            const auto [ia, ib] = i < 17 ? kLimbSeq[i] : kFootLimbs[i - 17];
            const BodyPoint &a = pts[ia - 1], &b = pts[ib - 1];
            // MimicMotion skips a limb when a score is below the threshold; the others need both in the subset.
            if (mimic ? (a.c < thr || b.c < thr || !a.visible || !b.visible) : (!a.visible || !b.visible)) continue;
            const double x0 = a.nx * W, x1 = b.nx * W, y0 = a.ny * H, y1 = b.ny * H;
            const double mx = (x0 + x1) / 2, my = (y0 + y1) / 2;
            const double length = std::pow(std::pow(y0 - y1, 2.0) + std::pow(x0 - x1, 2.0), 0.5);
            const double angle = std::atan2(y0 - y1, x0 - x1) * (180.0 / M_PI);  // math.degrees
            std::vector<cv::Point> poly;
            cv::ellipse2Poly(cv::Point(trunc_int(mx), trunc_int(my)), cv::Size(trunc_int(length / 2), kStickWidth),
                             trunc_int(angle), 0, 360, 1, poly);
            const cv::Scalar color = palette(static_cast<int>(i));
            cv::fillConvexPoly(canvas, poly, mimic ? scaled(color, a.c * b.c) : color);
        }
    }
    // (canvas * 0.6).astype(uint8): truncation of the double product.
    std::array<uchar, 256> lut;
    for (int v = 0; v < 256; ++v) lut[v] = static_cast<uchar>(v * 0.6);
    canvas.forEach<cv::Vec3b>([&](cv::Vec3b& px, const int*) {
        for (int c = 0; c < 3; ++c) px[c] = lut[px[c]];
    });
    const std::size_t n_joints = people.empty() ? 0 : people.front().size();
    for (std::size_t j = 0; j < n_joints; ++j) {
        for (const auto& pts : people) {
            if (!pts[j].visible) continue;
            const cv::Point c(trunc_int(pts[j].nx * W), trunc_int(pts[j].ny * H));
            cv::circle(canvas, c, 4, mimic ? scaled(palette(int(j)), pts[j].c) : palette(int(j)), cv::FILLED);
        }
    }
}

/// Hand/face point in canvas pixels, or nullopt when upstream hides it (score below the
/// threshold where `masked`, or an integer coordinate not > eps).
std::optional<cv::Point> dot(const Keypoint& k, const Norm& n, const cv::Mat& canvas, double thr, bool masked) {
    if (!finite(k) || (masked && double(k.c) < thr)) return std::nullopt;
    const int x = trunc_int(n.x(k.x) * canvas.cols), y = trunc_int(n.y(k.y) * canvas.rows);
    if (!(x > kEps && y > kEps)) return std::nullopt;
    return cv::Point(x, y);
}

void draw_hand(cv::Mat& canvas, const std::vector<Keypoint>& hand, const Norm& n, double thr, bool mimic) {
    if (hand.size() < 21) return;
    for (std::size_t ie = 0; ie < kHandEdges.size(); ++ie) {
        const Keypoint &ka = hand[kHandEdges[ie][0]], &kb = hand[kHandEdges[ie][1]];
        const auto a = dot(ka, n, canvas, thr, !mimic), b = dot(kb, n, canvas, thr, !mimic);
        if (!a || !b) continue;
        // MimicMotion: hsv_to_rgb(...) * int(s0 * s1 * 255) instead of * 255.
        const double scale = mimic ? double(trunc_int(double(ka.c) * double(kb.c) * 255)) : 255.0;
        cv::line(canvas, *a, *b, hsv_color(double(ie) / double(kHandEdges.size()), scale), 2);
    }
    for (const Keypoint& k : hand) {
        if (auto d = dot(k, n, canvas, thr, !mimic))
            cv::circle(canvas, *d, 4, cv::Scalar(0, 0, mimic ? trunc_int(double(k.c) * 255) : 255), cv::FILLED);
    }
}

cv::Mat draw(const std::vector<Person>& people, const Norm& n, int height, int width, const RenderOptions& opts) {
    cv::Mat canvas(height, width, CV_8UC3, cv::Scalar::all(0));
    const double thr = decimal_threshold(opts.threshold);
    const bool mimic = opts.style == RenderOptions::Style::MimicMotion;
    if (opts.body) {
        std::vector<std::vector<BodyPoint>> pts;
        for (const Person& p : people)
            pts.push_back(body_points(p, n, thr, opts.style == RenderOptions::Style::UniAnimate));
        draw_body(canvas, pts, opts.style, thr);
    }
    if (opts.hands) {
        // Upstream's hand list: every person's left hand, then every person's right hand.
        for (const Person& p : people) draw_hand(canvas, p.hand_left, n, thr, mimic);
        for (const Person& p : people) draw_hand(canvas, p.hand_right, n, thr, mimic);
    }
    if (opts.face) {
        for (const Person& p : people) {
            for (const Keypoint& k : p.face) {
                const auto d = dot(k, n, canvas, thr, !mimic);
                if (!d) continue;
                const int g = mimic ? trunc_int(double(k.c) * 255) : 255;
                cv::circle(canvas, *d, 3, cv::Scalar(g, g, g), cv::FILLED);
            }
        }
    }
    return canvas;
}

}  // namespace

cv::Mat render_pose(const PoseFrame& frame, int height, int width, const RenderOptions& opts) {
    if (height <= 0 || width <= 0)
        throw ConfigError("render_pose: canvas size must be positive, got " + std::to_string(height) + "x" +
                          std::to_string(width));
    if (!std::isfinite(opts.threshold)) throw ConfigError("render_pose: threshold must be finite");
    if (opts.mimic_ref_short_side <= 0 || opts.mimic_ref_short_side > 16384)
        throw ConfigError("render_pose: mimic_ref_short_side must be in 1..16384, got " +
                          std::to_string(opts.mimic_ref_short_side));
    const Norm n{frame.width > 0 ? double(frame.width) : double(width),
                 frame.height > 0 ? double(frame.height) : double(height)};
    switch (opts.style) {
        case RenderOptions::Style::UniAnimate: {
            // ref: UniAnimate-DiT prepare_training_data.py keeps the first detection only.
            std::vector<Person> first(frame.people.begin(),
                                      frame.people.begin() + std::min<std::size_t>(1, frame.people.size()));
            return draw(first, n, height, width, opts);
        }
        case RenderOptions::Style::MimicMotion: {
            // ref: mimicmotion/dwpose/util.py draw_pose: draw with the short side at ref_w, then cv2.resize (bilinear).
            const double ref = opts.mimic_ref_short_side, sz = std::min(height, width);
            const double sr = sz != ref ? ref / sz : 1.0;
            const cv::Mat big = draw(frame.people, n, trunc_int(height * sr), trunc_int(width * sr), opts);
            cv::Mat out;
            cv::resize(big, out, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
            return out;
        }
        case RenderOptions::Style::VACE:
        default:
            return draw(frame.people, n, height, width, opts);
    }
}

std::vector<cv::Mat> render_pose_video(const PoseSequence& seq, int height, int width, const RenderOptions& opts) {
    std::vector<cv::Mat> out;
    out.reserve(seq.frames.size());
    for (const PoseFrame& f : seq.frames) out.push_back(render_pose(f, height, width, opts));
    return out;
}

}  // namespace ipa::pose
