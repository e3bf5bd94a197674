#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/pose/render.h"
#include "pose_test_util.h"

namespace ipa::pose {
namespace {

cv::Vec3b at(const cv::Mat& m, int x, int y) { return m.at<cv::Vec3b>(y, x); }
const cv::Vec3b kBlack(0, 0, 0);

/// A frame from a fixture case: DWPose 133 keypoints per person, converted as VACE does.
PoseFrame fixture_frame(const std::string& name, int& scaled_h, int& scaled_w) {
    const auto j = nlohmann::json::parse(read_file(test::fixtures() / (name + ".json")));
    PoseFrame f;
    f.width = j.at("width").get<int>();
    f.height = j.at("height").get<int>();
    scaled_h = j.at("scaled_height").get<int>();
    scaled_w = j.at("scaled_width").get<int>();
    for (const auto& person : j.at("people")) {
        std::vector<Keypoint> kp;
        for (const auto& k : person) kp.push_back({k[0].get<float>(), k[1].get<float>(), k[2].get<float>()});
        f.people.push_back(from_coco_wholebody(kp));
    }
    return f;
}

/// Number of pixels where `got` differs from the fixture image.
int64_t mismatches(const cv::Mat& got, const std::string& png) {
    const cv::Mat want = cv::imread((test::fixtures() / png).string(), cv::IMREAD_COLOR);
    EXPECT_FALSE(want.empty()) << png;
    if (want.empty() || want.size() != got.size() || got.type() != CV_8UC3) return -1;
    cv::Mat diff;
    cv::absdiff(got, want, diff);
    cv::Mat any;
    cv::transform(diff, any, cv::Matx13f(1, 1, 1));
    return cv::countNonZero(any);
}

// Bit-exact against VACE's own PoseAnnotator.process / draw_pose (scripts/gen_pose_fixtures.py).
TEST(Render, MatchesUpstreamVacePixelForPixel) {
    for (const std::string name : {"two_people", "single"}) {
        int sh = 0, sw = 0;
        const PoseFrame f = fixture_frame(name, sh, sw);
        const int h = f.height, w = f.width;
        EXPECT_EQ(mismatches(render_pose(f, h, w, {true, false, false}), name + ".body.png"), 0) << name;
        EXPECT_EQ(mismatches(render_pose(f, h, w, {false, false, true}), name + ".face.png"), 0) << name;
        EXPECT_EQ(mismatches(render_pose(f, h, w, {.hands = false}), name + ".bodyface.png"), 0) << name;
        const cv::Mat all = render_pose(f, h, w);
        EXPECT_EQ(mismatches(all, name + ".handbodyface.png"), 0) << name;
        EXPECT_GT(cv::countNonZero(all.reshape(1)), 1000) << name;  // not a blank comparison
        // Drawn on another canvas size from the same normalised keypoints.
        EXPECT_EQ(mismatches(render_pose(f, sh, sw), name + ".scaled.png"), 0) << name;
    }
}

// The docs/pose-hands.md §1 variants, bit-exact against UniAnimate-DiT's and MimicMotion's own drawing code.
TEST(Render, MatchesUpstreamUniAnimateAndMimicMotion) {
    using Style = RenderOptions::Style;
    for (const std::string name : {"two_people", "single"}) {
        int sh = 0, sw = 0;
        const PoseFrame f = fixture_frame(name, sh, sw);
        const int h = f.height, w = f.width;
        const cv::Mat uni = render_pose(f, h, w, {.face = false, .style = Style::UniAnimate});
        EXPECT_EQ(mismatches(uni, name + ".unianimate.png"), 0) << name;
        EXPECT_EQ(mismatches(render_pose(f, h, w, {.style = Style::UniAnimate}), name + ".unianimate_face.png"), 0)
            << name;
        const cv::Mat mimic = render_pose(f, h, w, {.style = Style::MimicMotion});
        EXPECT_EQ(mismatches(mimic, name + ".mimicmotion.png"), 0) << name;
        EXPECT_GT(cv::countNonZero(mimic.reshape(1)), 100) << name;
    }
    // UniAnimate draws the first person only; its toe points get the two extra colours.
    int sh = 0, sw = 0;
    PoseFrame one = fixture_frame("two_people", sh, sw);
    one.people.resize(1);
    const cv::Mat a =
        render_pose(fixture_frame("two_people", sh, sw), 256, 320, {.style = RenderOptions::Style::UniAnimate});
    EXPECT_EQ(cv::norm(a, render_pose(one, 256, 320, {.style = RenderOptions::Style::UniAnimate}), cv::NORM_INF), 0.0);
    EXPECT_THROW(render_pose(one, 10, 10, {.style = RenderOptions::Style::MimicMotion, .mimic_ref_short_side = 0}),
                 ConfigError);
}

TEST(Render, OpenPoseJsonRoundTripRendersTheSame) {
    int sh = 0, sw = 0;
    const PoseFrame f = fixture_frame("two_people", sh, sw);
    PoseSequence seq;
    seq.frames = {f, f};
    test::PoseTempDir d;
    write_keypoints_jsonl(d.path / "k.jsonl", seq);
    const auto frames = render_pose_video(read_keypoints(d.path / "k.jsonl"), f.height, f.width);
    ASSERT_EQ(frames.size(), 2u);
    for (const auto& m : frames) EXPECT_EQ(mismatches(m, "two_people.handbodyface.png"), 0);
}

// Hand-computed pixels for hand-made keypoints.
TEST(Render, PinnedPixels) {
    PoseFrame f;  // size unknown: coordinates are pixels of the render canvas
    Person p;
    p.body.assign(18, Keypoint{});
    p.body[1] = {20, 50, 1.0f};   // neck
    p.body[2] = {60, 50, 1.0f};   // right shoulder
    p.body[0] = {20, 20, 0.3f};   // nose at exactly 0.3: visible (float32 0.3 > 0.3, as upstream)
    p.body[5] = {80, 80, 0.29f};  // left shoulder below threshold: not drawn
    p.hand_right.assign(21, Keypoint{});
    p.hand_right[1] = {10, 90, 1.0f};
    p.hand_right[2] = {50, 90, 1.0f};
    p.hand_right[3] = {0.5f, 70, 1.0f};  // int(x) = 0 fails upstream's eps test: hidden
    p.hand_right[5] = {60, 10, 0.3f};    // hands: hidden only below 0.3
    p.hand_right[6] = {90, 10, 0.9f};
    p.face = {{70, 30, 0.5f}, {85, 30, 0.29f}};
    f.people.push_back(p);

    const cv::Mat m = render_pose(f, 100, 100);
    ASSERT_EQ(m.type(), CV_8UC3);
    EXPECT_EQ(at(m, 40, 52), cv::Vec3b(153, 0, 0));  // limb neck-rshoulder: (255,0,0) * 0.6, inside the ellipse
    EXPECT_EQ(at(m, 30, 50), cv::Vec3b(153, 0, 0));
    EXPECT_EQ(at(m, 40, 56), kBlack);                    // beyond stick width 4
    EXPECT_EQ(at(m, 20, 50), cv::Vec3b(255, 85, 0));     // neck joint, colour 1 at full strength
    EXPECT_EQ(at(m, 23, 50), cv::Vec3b(255, 85, 0));     // radius 4
    EXPECT_EQ(at(m, 60, 50), cv::Vec3b(255, 170, 0));    // right shoulder joint, colour 2
    EXPECT_EQ(at(m, 20, 35), cv::Vec3b(0, 0, 153));      // limb neck-nose: colour 12 (0,0,255) * 0.6
    EXPECT_EQ(at(m, 20, 20), cv::Vec3b(255, 0, 0));      // nose joint, colour 0
    EXPECT_EQ(at(m, 80, 80), kBlack);                    // left shoulder below threshold
    EXPECT_EQ(at(m, 30, 90), cv::Vec3b(255, 77, 0));     // hand edge 1: hsv(1/20) * 255 = (255, 76.5+, 0)
    EXPECT_EQ(at(m, 10, 90), cv::Vec3b(0, 0, 255));      // hand joint
    EXPECT_EQ(at(m, 0, 70), kBlack);                     // hidden by the eps test
    EXPECT_EQ(at(m, 25, 80), kBlack);                    // edge 2 not drawn (end point hidden)
    EXPECT_EQ(at(m, 75, 10), cv::Vec3b(128, 255, 0));    // hand edge 5: 127.5 rounds to 128
    EXPECT_EQ(at(m, 60, 10), cv::Vec3b(0, 0, 255));      // score 0.3 is visible for hands
    EXPECT_EQ(at(m, 73, 30), cv::Vec3b(255, 255, 255));  // face dot, radius 3
    EXPECT_EQ(at(m, 74, 30), kBlack);
    EXPECT_EQ(at(m, 85, 30), kBlack);  // face point below 0.3

    const cv::Mat no_hands = render_pose(f, 100, 100, {.hands = false});
    EXPECT_EQ(at(no_hands, 30, 90), kBlack);
    EXPECT_EQ(at(no_hands, 40, 52), cv::Vec3b(153, 0, 0));
    EXPECT_EQ(at(no_hands, 73, 30), cv::Vec3b(255, 255, 255));
    const cv::Mat hands_only = render_pose(f, 100, 100, {false, true, false});
    EXPECT_EQ(at(hands_only, 30, 90), cv::Vec3b(255, 77, 0));  // no 0.6 blend without the body pass
    EXPECT_EQ(at(hands_only, 40, 52), kBlack);
    EXPECT_EQ(at(hands_only, 73, 30), kBlack);
    RenderOptions strict;
    strict.threshold = 0.5f;
    const cv::Mat s = render_pose(f, 100, 100, strict);
    EXPECT_EQ(at(s, 20, 20), kBlack);                    // nose 0.3 < 0.5
    EXPECT_EQ(at(s, 73, 30), cv::Vec3b(255, 255, 255));  // face 0.5 is not below 0.5
    EXPECT_EQ(at(s, 60, 10), kBlack);

    // Keypoints on a 50x50 canvas drawn at 100x100 land at twice the coordinates.
    PoseFrame half;
    half.width = half.height = 50;
    Person q;
    q.body.assign(18, Keypoint{});
    q.body[1] = {10, 25, 1.0f};
    half.people.push_back(q);
    const cv::Mat scaled = render_pose(half, 100, 100);
    EXPECT_EQ(at(scaled, 20, 50), cv::Vec3b(255, 85, 0));
    EXPECT_EQ(at(scaled, 10, 25), kBlack);
}

TEST(Render, BadCanvasSizeIsAnError) {
    EXPECT_THROW(render_pose(PoseFrame{}, 0, 10), ConfigError);
    EXPECT_THROW(render_pose(PoseFrame{}, 10, -1), ConfigError);
    const cv::Mat empty = render_pose(PoseFrame{}, 4, 6);
    EXPECT_EQ(empty.rows, 4);
    EXPECT_EQ(empty.cols, 6);
    EXPECT_EQ(cv::countNonZero(empty.reshape(1)), 0);
}

}  // namespace
}  // namespace ipa::pose
