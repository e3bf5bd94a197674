#pragma once

// Private: the procedural dancer of synth.cpp (skeleton along smooth trajectories, hands
// with five fingers, drawing with optional hand defects) and a small portable RNG.

#include <array>
#include <cstdint>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "ipa/pose/keypoints.h"

namespace ipa::curate::detail {

/// splitmix64: portable, deterministic across standard libraries.
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next();
    double uniform(double lo = 0, double hi = 1);  ///< [lo, hi)
    double normal();                               ///< N(0, 1), Box-Muller
    int below(int n);                              ///< 0..n-1
private:
    uint64_t state_;
};

/// Mixes several values into one seed.
uint64_t mix_seed(std::initializer_list<uint64_t> parts);

/// One sinusoid-sum channel: value(t) = base + sum a_k sin(2 pi f_k t + p_k).
struct Channel {
    double base = 0;
    std::array<double, 2> amp{}, freq{}, phase{};
    double at(double t) const;
};

/// Everything that makes one clip's dancer: look, background and motion.
struct Dancer {
    cv::Scalar skin, skin_dark, shirt, pants, background, texture;
    std::string shirt_name, pants_name, background_name, motion_name;
    bool textured = false;
    // Channels: 0 sway_x, 1 bob_y, 2 lean, 3 head, 4 r_shoulder, 5 r_elbow, 6 l_shoulder, 7 l_elbow,
    // 8 r_hip, 9 r_knee, 10 l_hip, 11 l_knee, 12 r_wrist, 13 l_wrist, 14 flex, 15 spread
    std::array<Channel, 16> ch;
};

/// Random dancer (look + smooth motion) from the rng.
Dancer make_dancer(Rng& rng, bool textured);

/// Per-frame perturbation of one hand's geometry (the "jitter" defect); zero = clean.
struct HandNoise {
    double angle = 0, flex = 0, dx = 0, dy = 0;
    std::array<double, 5> finger{};
};

/// The ground-truth skeleton at time t (seconds) on a height x width canvas, with hand
/// geometry perturbed by `noise[0]` (left) and `noise[1]` (right); all confidences 1.
pose::Person pose_at(const Dancer& d, double t, int height, int width, const std::array<HandNoise, 2>& noise = {});

/// How a hand is drawn.
struct HandDraw {
    int missing_finger = -1;  ///< 0..4 (thumb..pinky) not drawn
    int fused_finger = -1;    ///< f: fingers f and f+1 drawn as one
};

/// Draws the dancer for `person` (from pose_at) onto a fresh background.
cv::Mat draw_dancer(const Dancer& d, const pose::Person& person, int height, int width,
                    const std::array<HandDraw, 2>& hands = {});

}  // namespace ipa::curate::detail
