#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/core.hpp>

#include "ipa/core/error.h"
#include "ipa/io/safetensors.h"
#include "ipa/pose/hand_mask.h"
#include "pose_test_util.h"

namespace ipa::pose {
namespace {

uchar px(const cv::Mat& m, int x, int y) { return m.at<uchar>(y, x); }

/// 21 points on a 5-column grid spanning [x0, x0 + 4*step] x [y0, y0 + 4*step], confidence c.
std::vector<Keypoint> grid_hand(float x0, float y0, float step, float c = 0.9f) {
    std::vector<Keypoint> h(21);
    for (int i = 0; i < 21; ++i) h[i] = {x0 + (i % 5) * step, y0 + std::min(i / 5, 4) * step, c};
    return h;
}

PoseFrame frame_with(std::vector<Keypoint> left, std::vector<Keypoint> right = {}) {
    PoseFrame f;
    Person p;
    p.body.assign(18, Keypoint{});
    p.hand_left = std::move(left);
    p.hand_right = std::move(right);
    f.people.push_back(p);
    return f;
}

TEST(HandMask, PaddedBoxIsExact) {
    const auto hand = grid_hand(20, 30, 5);  // spans 20..40 x 30..50: size 20, padding 0.25 -> 5 px
    const auto box = hand_box(hand, 100, 100);
    ASSERT_TRUE(box.has_value());
    EXPECT_EQ(*box, cv::Rect(15, 25, 31, 31));
    const cv::Mat m = hand_mask(frame_with(hand), 100, 100);
    ASSERT_EQ(m.type(), CV_8UC1);
    EXPECT_EQ(cv::countNonZero(m), 31 * 31);
    EXPECT_EQ(px(m, 15, 25), 255);
    EXPECT_EQ(px(m, 45, 55), 255);
    EXPECT_EQ(px(m, 14, 25), 0);
    EXPECT_EQ(px(m, 46, 55), 0);
    EXPECT_EQ(px(m, 15, 24), 0);

    HandMaskOptions none;
    none.padding = 0;
    EXPECT_EQ(*hand_box(hand, 100, 100, none), cv::Rect(20, 30, 21, 21));
}

TEST(HandMask, ThresholdMinPointsAndClipping) {
    auto hand = grid_hand(20, 30, 5);
    for (int i = 5; i < 21; ++i) hand[i].c = 0.2f;  // 5 confident points: x 20..40, y 30
    auto box = hand_box(hand, 100, 100);
    ASSERT_TRUE(box.has_value());
    EXPECT_EQ(*box, cv::Rect(15, 25, 31, 11));  // size 20 -> pad 5
    hand[4].c = 0.2f;                           // 4 confident points < min_points 5
    EXPECT_FALSE(hand_box(hand, 100, 100).has_value());
    EXPECT_EQ(cv::countNonZero(hand_mask(frame_with(hand), 100, 100)), 0);
    HandMaskOptions four;
    four.min_points = 4;
    EXPECT_EQ(*hand_box(hand, 100, 100, four), cv::Rect(16, 26, 24, 9));  // x 20..35 (size 15, pad 3.75)

    // Clipped at the image border; entirely outside -> nothing.
    EXPECT_EQ(*hand_box(grid_hand(-5, 0, 3.75f), 100, 100), cv::Rect(0, 0, 15, 20));
    EXPECT_FALSE(hand_box(grid_hand(200, 10, 2), 100, 100).has_value());
    EXPECT_TRUE(hand_box(grid_hand(200, 10, 2), 100, 300).has_value());

    HandMaskOptions bad;
    bad.padding = -1;
    EXPECT_THROW(hand_box(hand, 100, 100, bad), ConfigError);
    bad = {};
    bad.min_points = 0;
    EXPECT_THROW(hand_mask(frame_with(hand), 100, 100, bad), ConfigError);
    EXPECT_THROW(hand_mask(frame_with(hand), 0, 100), ConfigError);
}

TEST(HandMask, DilatedHull) {
    // A diamond (plus its centre and duplicates): hull vertices (50,20) (80,50) (50,80) (20,50), size 60.
    std::vector<Keypoint> hand(21, Keypoint{50, 50, 0.9f});
    hand[1] = {50, 20, 0.9f};
    hand[2] = {80, 50, 0.9f};
    hand[3] = {50, 80, 0.9f};
    hand[4] = {20, 50, 0.9f};
    HandMaskOptions o;
    o.shape = HandMaskOptions::Shape::Hull;
    o.padding = 0;
    const cv::Mat tight = hand_mask(frame_with(hand), 100, 100, o);
    EXPECT_EQ(px(tight, 50, 50), 255);
    EXPECT_EQ(px(tight, 50, 20), 255);
    EXPECT_EQ(px(tight, 50, 19), 0);
    EXPECT_EQ(px(tight, 30, 30), 0);  // box corner region, outside the diamond
    EXPECT_EQ(px(tight, 36, 36), 255);
    // Area of a diamond with diagonals 60: 1800, plus the rasterised boundary.
    EXPECT_GT(cv::countNonZero(tight), 1800);
    EXPECT_LT(cv::countNonZero(tight), 1800 + 4 * 62);

    o.padding = 0.1f;  // 6 px disc
    const cv::Mat wide = hand_mask(frame_with(hand), 100, 100, o);
    EXPECT_EQ(px(wide, 50, 14), 255);
    EXPECT_EQ(px(wide, 50, 13), 0);
    EXPECT_EQ(px(wide, 86, 50), 255);
    EXPECT_EQ(px(wide, 87, 50), 0);
    EXPECT_EQ(px(wide, 26, 26), 0);                                    // still not the box
    EXPECT_EQ(cv::countNonZero(tight & ~wide), 0);                     // contains the tight hull
    EXPECT_GT(cv::countNonZero(wide), cv::countNonZero(tight) + 900);  // ~perimeter x 6

    // Cut by the image border: the part inside matches the unclipped shape.
    std::vector<Keypoint> shifted = hand;
    for (auto& k : shifted) k.x -= 45;  // left vertex at x = -25
    const cv::Mat cut = hand_mask(frame_with(shifted), 100, 100, o);
    EXPECT_EQ(cv::countNonZero(cut(cv::Rect(0, 0, 55, 100)) != wide(cv::Rect(45, 0, 55, 100))), 0);
}

TEST(HandMask, UnionOverHandsAndPeopleAndScaling) {
    PoseFrame f = frame_with(grid_hand(10, 10, 1), grid_hand(50, 10, 1));  // two hands of size 4: boxes 7x7 (pad 1)
    Person other;
    other.hand_left = grid_hand(10, 60, 1);
    other.hand_right = grid_hand(10, 60, 1, 0.1f);  // not confident
    f.people.push_back(other);
    const cv::Mat m = hand_mask(f, 100, 100);
    EXPECT_EQ(cv::countNonZero(m), 3 * 7 * 7);
    EXPECT_EQ(px(m, 9, 9), 255);
    EXPECT_EQ(px(m, 55, 15), 255);
    EXPECT_EQ(px(m, 9, 65), 255);
    EXPECT_EQ(px(m, 30, 30), 0);

    // Keypoints on a 50x50 canvas, mask at 100x100: coordinates doubled.
    PoseFrame half = frame_with(grid_hand(10, 10, 1));
    half.width = half.height = 50;
    EXPECT_EQ(hand_box(grid_hand(20, 20, 2), 100, 100).value(), cv::Rect(18, 18, 13, 13));
    const cv::Mat s = hand_mask(half, 100, 100);
    EXPECT_EQ(cv::countNonZero(s), 13 * 13);
    EXPECT_EQ(px(s, 18, 18), 255);
}

TEST(HandMask, SequenceTensorAndLatentGrid) {
    // 9 frames of 32x48; a hand only in pixel frame 3, in the 8x8 cell (row 1, col 2).
    PoseSequence seq;
    seq.frames.resize(9);
    HandMaskOptions o;
    o.padding = 0;
    seq.frames[3] = frame_with(grid_hand(17, 9, 1));  // pixels 17..21 x 9..13
    const auto masks = hand_masks(seq, 32, 48, o);
    ASSERT_EQ(masks.sizes(), (std::vector<int64_t>{9, 32, 48}));
    EXPECT_EQ(masks.scalar_type(), torch::kFloat32);
    EXPECT_EQ(masks[3].sum().item<float>(), 25.0f);
    EXPECT_EQ(masks.sum().item<float>(), 25.0f);
    EXPECT_EQ(masks[3][9][17].item<float>(), 1.0f);

    const auto lat = latent_hand_mask(masks);
    ASSERT_EQ(lat.sizes(), (std::vector<int64_t>{3, 4, 6}));
    EXPECT_EQ(lat[1][1][2].item<float>(), 1.0f);
    EXPECT_EQ(lat.sum().item<float>(), 1.0f);  // latent 0 and 2 clear

    // Frame 0 alone in latent 0; frames 1-4 -> latent 1, 5-8 -> latent 2; max, so soft values survive.
    auto pm = torch::zeros({9, 16, 24});
    pm[0][0][0] = 1;
    pm[4][8][8] = 1;
    pm[5][15][23] = 1;
    pm[8][15][0] = 0.5;
    pm[8][14][1] = 0.25;
    const auto l2 = latent_hand_mask(pm);
    ASSERT_EQ(l2.sizes(), (std::vector<int64_t>{3, 2, 3}));
    const auto expect = torch::tensor({1.0f, 0.f, 0.f, 0.f, 0.f, 0.f, /**/ 0.f, 0.f, 0.f, 0.f, 1.f, 0.f, /**/ 0.f, 0.f,
                                       0.f, 0.5f, 0.f, 1.f})
                            .view({3, 2, 3});
    EXPECT_TRUE(torch::equal(l2, expect)) << l2;
    EXPECT_EQ(latent_hand_mask(torch::ones({1, 8, 8})).sizes(), (std::vector<int64_t>{1, 1, 1}));

    EXPECT_THROW(latent_hand_mask(torch::zeros({8, 16, 24})), DataError);
    EXPECT_THROW(latent_hand_mask(torch::zeros({9, 12, 24})), DataError);
    EXPECT_THROW(latent_hand_mask(torch::zeros({16, 24})), DataError);
    EXPECT_THROW(latent_hand_mask(pm, 0, 4), ConfigError);
}

TEST(HandMask, SaveLatentMaskAsSafetensors) {
    test::PoseTempDir d;
    auto mask = torch::zeros({3, 2, 4});
    mask[2][1][3] = 1;
    mask[0][0][0] = 0.5;
    save_latent_mask(d.path / "m.safetensors", mask);
    const auto f = io::SafetensorsFile::open(d.path / "m.safetensors");
    ASSERT_EQ(f.tensors().size(), 1u);
    const auto t = f.tensor("hand_mask");
    EXPECT_EQ(t.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(t, mask));
    save_latent_mask(d.path / "h.safetensors", mask.to(torch::kFloat64));  // stored as float32
    EXPECT_EQ(io::SafetensorsFile::open(d.path / "h.safetensors").tensor("hand_mask").scalar_type(), torch::kFloat32);
    EXPECT_THROW(save_latent_mask(d.path / "x.safetensors", torch::zeros({2, 4})), DataError);
    EXPECT_FALSE(std::filesystem::exists(d.path / "x.safetensors"));
}

}  // namespace
}  // namespace ipa::pose
