#include "dancer.h"

#include <cmath>
#include <opencv2/imgproc.hpp>

namespace ipa::curate::detail {
namespace {

constexpr double kPi = 3.14159265358979323846;

cv::Point2d vec(double a) { return {std::cos(a), std::sin(a)}; }

struct Named {
    const char* name;
    cv::Scalar bgr;
};

const Named kShirts[] = {{"red", {40, 40, 200}},     {"blue", {190, 90, 40}},    {"green", {60, 160, 50}},
                         {"yellow", {40, 200, 220}}, {"purple", {150, 50, 130}}, {"orange", {30, 130, 240}}};
const Named kPants[] = {
    {"black", {30, 30, 30}}, {"navy", {90, 40, 20}}, {"grey", {120, 120, 120}}, {"brown", {30, 60, 100}}};
const Named kBackgrounds[] = {{"white", {235, 235, 235}},
                              {"light blue", {230, 200, 170}},
                              {"beige", {190, 215, 230}},
                              {"pale green", {190, 230, 200}}};
const char* const kMotions[] = {"energetically", "slowly", "gracefully", "playfully"};

cv::Point ip(const cv::Point2d& p) { return {cvRound(p.x * 16), cvRound(p.y * 16)}; }  // 4 fractional bits

void thick_line(cv::Mat& img, cv::Point2d a, cv::Point2d b, const cv::Scalar& color, int thickness) {
    cv::line(img, ip(a), ip(b), color, thickness, cv::LINE_AA, 4);
}

cv::Point2d kp(const std::vector<pose::Keypoint>& v, int i) { return {v[i].x, v[i].y}; }

void draw_hand(cv::Mat& img, const std::vector<pose::Keypoint>& h, const Dancer& d, int height, const HandDraw& how) {
    const int ft = std::max(2, cvRound(0.012 * height));
    // Palm: convex hull of the wrist, the thumb base and the finger bases.
    std::vector<cv::Point> palm;
    for (int i : {0, 1, 2, 5, 9, 13, 17}) palm.push_back(ip(kp(h, i)));
    std::vector<cv::Point> hull;
    cv::convexHull(palm, hull);
    cv::fillConvexPoly(img, hull, d.skin, cv::LINE_AA, 4);
    cv::polylines(img, hull, true, d.skin_dark, 1, cv::LINE_AA, 4);
    auto finger_pts = [&](int f) {
        std::vector<cv::Point2d> p;
        for (int j = 1; j <= 4; ++j) p.push_back(kp(h, 4 * f + j));
        return p;
    };
    auto draw_chain = [&](const std::vector<cv::Point2d>& p, int thickness) {
        for (size_t j = 0; j + 1 < p.size(); ++j) thick_line(img, p[j], p[j + 1], d.skin_dark, thickness + 2);
        for (size_t j = 0; j + 1 < p.size(); ++j) thick_line(img, p[j], p[j + 1], d.skin, thickness);
    };
    for (int f = 0; f < 5; ++f) {
        if (f == how.missing_finger) continue;
        if (f == how.fused_finger + 1) continue;
        if (f == how.fused_finger && f + 1 < 5) {
            auto a = finger_pts(f), b = finger_pts(f + 1);
            std::vector<cv::Point2d> m(4);
            for (int j = 0; j < 4; ++j) m[j] = 0.5 * (a[j] + b[j]);
            draw_chain(m, 2 * ft + 1);
            continue;
        }
        draw_chain(finger_pts(f), ft);
    }
}

// The 21 points of a hand (OpenPose order) at `wrist`, pointing along angle `a`; `side`
// +1 for the right hand, -1 for the left (which side the thumb is on).
std::vector<pose::Keypoint> hand_points(cv::Point2d wrist, double a, double side, double flex, double spread,
                                        double palm, const HandNoise& n) {
    std::vector<pose::Keypoint> out(21);
    wrist += cv::Point2d(n.dx, n.dy);
    a += n.angle;
    flex += n.flex;
    const cv::Point2d dir = vec(a), nor = vec(a + kPi / 2);
    auto set = [&](int i, cv::Point2d p) { out[i] = {float(p.x), float(p.y), 1.0f}; };
    set(0, wrist);
    // Thumb: base beside the palm, pointing outward.
    {
        const double len = 0.95 * palm;
        cv::Point2d p = wrist + 0.25 * palm * dir - side * 0.38 * palm * nor;
        set(1, p);
        double ang = a - side * (0.75 + 0.3 * spread + n.finger[0]);
        const double seg[3] = {0.42, 0.32, 0.26};
        for (int j = 0; j < 3; ++j) {
            p += seg[j] * len * vec(ang);
            set(2 + j, p);
            ang += side * 0.5 * flex;
        }
    }
    const double offs[4] = {-0.36, -0.12, 0.12, 0.36};
    const double splay[4] = {-0.2, -0.07, 0.07, 0.2};
    const double lens[4] = {1.0, 1.1, 1.02, 0.82};
    for (int f = 0; f < 4; ++f) {
        cv::Point2d p = wrist + palm * dir + side * offs[f] * palm * nor;
        set(5 + 4 * f, p);
        double ang = a + side * (splay[f] * (1 + spread)) + n.finger[f + 1];
        const double seg[3] = {0.45, 0.3, 0.25};
        for (int j = 0; j < 3; ++j) {
            p += seg[j] * lens[f] * 1.05 * palm * vec(ang);
            set(6 + 4 * f + j, p);
            ang += side * flex;
        }
    }
    return out;
}

}  // namespace

uint64_t Rng::next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * double(next() >> 11) * 0x1.0p-53; }

double Rng::normal() {
    const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * kPi * u2);
}

int Rng::below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }

uint64_t mix_seed(std::initializer_list<uint64_t> parts) {
    uint64_t h = 0x243F6A8885A308D3ull;
    for (const uint64_t p : parts) {
        Rng r(h ^ p);
        h = r.next();
    }
    return h;
}

double Channel::at(double t) const {
    double v = base;
    for (size_t k = 0; k < amp.size(); ++k) v += amp[k] * std::sin(2 * kPi * freq[k] * t + phase[k]);
    return v;
}

Dancer make_dancer(Rng& rng, bool textured) {
    Dancer d;
    const double tone = rng.uniform(0.0, 1.0);
    d.skin = cv::Scalar(120 + 70 * tone, 150 + 60 * tone, 190 + 50 * tone);
    d.skin_dark = d.skin * 0.55;
    const Named& shirt = kShirts[rng.below(6)];
    const Named& pants = kPants[rng.below(4)];
    const Named& bg = kBackgrounds[rng.below(4)];
    d.shirt = shirt.bgr, d.shirt_name = shirt.name;
    d.pants = pants.bgr, d.pants_name = pants.name;
    d.background = bg.bgr, d.background_name = bg.name;
    d.texture = bg.bgr * 0.8;
    d.textured = textured;
    d.motion_name = kMotions[rng.below(4)];
    // Base angles and amplitudes (radians; pixel offsets as fractions of the height).
    const double base[16] = {
        0, 0, 0,    0,  kPi / 2 + 0.5, 0.5, kPi / 2 - 0.5, -0.5, kPi / 2 + 0.1, -0.15, kPi / 2 - 0.1, 0.15,
        0, 0, 0.15, 0.0};
    const double amp[16] = {0.03, 0.012, 0.06, 0.12, 0.7,  0.45, 0.7,  0.45,
                            0.12, 0.15,  0.12, 0.15, 0.35, 0.35, 0.12, 0.3};
    for (int c = 0; c < 16; ++c) {
        d.ch[c].base = base[c];
        for (int k = 0; k < 2; ++k) {
            d.ch[c].amp[k] = amp[c] * rng.uniform(0.3, 0.7);
            d.ch[c].freq[k] = rng.uniform(0.15, 0.6) * (k + 1);
            d.ch[c].phase[k] = rng.uniform(0, 2 * kPi);
        }
    }
    return d;
}

pose::Person pose_at(const Dancer& d, double t, int height, int width, const std::array<HandNoise, 2>& noise) {
    const double H = height;
    auto c = [&](int i) { return d.ch[i].at(t); };
    std::vector<cv::Point2d> b(18);
    const double lean = c(2);
    const cv::Point2d down = vec(kPi / 2 + lean), across = vec(lean);  // across points to the image right
    b[1] = {0.5 * width + c(0) * H, 0.30 * H + c(1) * H};
    b[2] = b[1] - 0.095 * H * across;
    b[5] = b[1] + 0.095 * H * across;
    const cv::Point2d hip = b[1] + 0.25 * H * down;
    b[8] = hip - 0.06 * H * across;
    b[11] = hip + 0.06 * H * across;
    const double ua = 0.13 * H, fa = 0.12 * H, th = 0.16 * H, sh = 0.15 * H;
    b[3] = b[2] + ua * vec(c(4) + lean);
    b[4] = b[3] + fa * vec(c(4) + c(5) + lean);
    b[6] = b[5] + ua * vec(c(6) + lean);
    b[7] = b[6] + fa * vec(c(6) + c(7) + lean);
    b[9] = b[8] + th * vec(c(8));
    b[10] = b[9] + sh * vec(c(8) + c(9));
    b[12] = b[11] + th * vec(c(10));
    b[13] = b[12] + sh * vec(c(10) + c(11));
    const double head = c(3) + lean;
    const cv::Point2d up = vec(-kPi / 2 + head), side = vec(head);
    b[0] = b[1] + 0.085 * H * up;
    b[14] = b[0] + 0.02 * H * up - 0.022 * H * side;
    b[15] = b[0] + 0.02 * H * up + 0.022 * H * side;
    b[16] = b[0] + 0.005 * H * up - 0.045 * H * side;
    b[17] = b[0] + 0.005 * H * up + 0.045 * H * side;
    pose::Person p;
    for (const auto& q : b) p.body.push_back({float(q.x), float(q.y), 1.0f});
    const double palm = 0.055 * H, flex = c(14), spread = c(15);
    p.hand_right = hand_points(b[4], c(4) + c(5) + lean + c(12), +1, flex, spread, palm, noise[1]);
    p.hand_left = hand_points(b[7], c(6) + c(7) + lean + c(13), -1, flex, spread, palm, noise[0]);
    return p;
}

cv::Mat draw_dancer(const Dancer& d, const pose::Person& p, int height, int width,
                    const std::array<HandDraw, 2>& hands) {
    cv::Mat img(height, width, CV_8UC3, d.background);
    if (d.textured) {
        const int cell = std::max(8, height / 20);
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x) {
                const double s = 0.5 + 0.5 * std::sin(0.11 * x + 0.07 * y);
                if (((x / cell) + (y / cell)) % 2 == 0) {
                    auto& px = img.at<cv::Vec3b>(y, x);
                    for (int k = 0; k < 3; ++k) px[k] = cv::saturate_cast<uchar>(d.texture[k] + 20 * s);
                }
            }
    }
    const double H = height;
    auto b = [&](int i) { return kp(p.body, i); };
    const int limb = std::max(3, cvRound(0.045 * H)), leg = std::max(3, cvRound(0.055 * H));
    // Legs, torso, arms (sleeve then skin forearm), head.
    thick_line(img, b(8), b(9), d.pants, leg);
    thick_line(img, b(9), b(10), d.pants, leg);
    thick_line(img, b(11), b(12), d.pants, leg);
    thick_line(img, b(12), b(13), d.pants, leg);
    std::vector<cv::Point> torso = {ip(b(2)), ip(b(5)), ip(b(11)), ip(b(8))};
    cv::fillConvexPoly(img, torso, d.shirt, cv::LINE_AA, 4);
    thick_line(img, b(2), b(3), d.shirt, limb);
    thick_line(img, b(5), b(6), d.shirt, limb);
    thick_line(img, b(3), b(4), d.skin, limb - 1);
    thick_line(img, b(6), b(7), d.skin, limb - 1);
    thick_line(img, b(1), b(0), d.skin, limb);
    cv::circle(img, ip(b(0)), cvRound(0.06 * H * 16), d.skin, cv::FILLED, cv::LINE_AA, 4);
    cv::circle(img, ip(b(14)), cvRound(0.008 * H * 16), d.skin_dark, cv::FILLED, cv::LINE_AA, 4);
    cv::circle(img, ip(b(15)), cvRound(0.008 * H * 16), d.skin_dark, cv::FILLED, cv::LINE_AA, 4);
    draw_hand(img, p.hand_left, d, height, hands[0]);
    draw_hand(img, p.hand_right, d, height, hands[1]);
    return img;
}

}  // namespace ipa::curate::detail
