// Ground-truth-free hand metrics (ipa-eval hands) on hand-built keypoint files whose expected
// values are worked out by hand below (point threshold 0.3, 5 points make a visible hand).

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/eval/hands.h"
#include "ipa/eval/report.h"
#include "ipa/pose/keypoints.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using ipa::pose::Keypoint;

// A hand of 21 points in a fan (not collinear), points [0, n_high) with confidence `high`,
// the rest with `low`.
std::vector<Keypoint> hand(float high, int n_high = 21, float low = 0.1f, float dx = 0) {
    std::vector<Keypoint> h(21);
    for (int i = 0; i < 21; ++i) h[i] = {100.f + 3.f * i + dx, 100.f + 4.f * (i % 5), i < n_high ? high : low};
    return h;
}

ipa::pose::Person person(std::vector<Keypoint> left, std::vector<Keypoint> right) {
    ipa::pose::Person p;
    p.body.assign(18, Keypoint{});
    p.body[1] = {50.f, 50.f, 1.f};  // the neck: a confident body point
    p.hand_left = std::move(left);
    p.hand_right = std::move(right);
    return p;
}

ipa::pose::PoseFrame frame(std::vector<ipa::pose::Person> people) {
    ipa::pose::PoseFrame f;
    f.width = f.height = 256;
    f.people = std::move(people);
    return f;
}

// Video A, 4 frames, one person:
//   0: left 21 × 0.9 (visible); right 4 × 0.8 + 17 × 0.1 (4 detected: not visible)
//   1: left absent (21 × 0); right 21 × 0.5 (visible)
//   2: left 21 × 0.9; right 21 × 0.5, moved 3 px (both visible)
//   3: nobody (no hand expected)
ipa::pose::PoseSequence video_a() {
    ipa::pose::PoseSequence s;
    s.frames.push_back(frame({person(hand(0.9f), hand(0.8f, 4))}));
    s.frames.push_back(frame({person({}, hand(0.5f))}));
    s.frames.push_back(frame({person(hand(0.9f), hand(0.5f, 21, 0.1f, 3.f))}));
    s.frames.push_back(frame({}));
    return s;
}

// Video B, 2 frames: a person with a body and no hands.
ipa::pose::PoseSequence video_b() {
    ipa::pose::PoseSequence s;
    for (int t = 0; t < 2; ++t) s.frames.push_back(frame({person({}, {})}));
    return s;
}

struct Fixture {
    ipa::test::TempDir tmp;
    fs::path kp = tmp.path / "kp";
    Fixture() {
        fs::create_directories(kp);
        ipa::pose::write_keypoints_jsonl(kp / "a.jsonl", video_a());
        ipa::pose::write_keypoints_dir(kp / "b", video_b());
    }
};

TEST(Hands, KeypointMetricsByHand) {
    Fixture fx;
    const auto inputs = ipa::eval::hand_inputs_from_dirs(fx.kp);
    ASSERT_EQ(inputs.size(), 2u);
    EXPECT_EQ(inputs[0].id, "a");
    EXPECT_TRUE(inputs[0].video.empty());
    const auto res = ipa::eval::evaluate_hands(inputs);
    const auto& a = res[0];
    EXPECT_EQ(a.frames, 4);
    EXPECT_EQ(a.expected_hands, 6);  // 2 per person in frames 0-2
    EXPECT_EQ(a.visible_hands, 4);
    EXPECT_DOUBLE_EQ(a.hands_visible, 4.0 / 6);
    EXPECT_DOUBLE_EQ(a.left_hand_visible, 2.0 / 3);   // frames 0, 2
    EXPECT_DOUBLE_EQ(a.right_hand_visible, 2.0 / 3);  // frames 1, 2
    // Σ c: 21·0.9 + 4·0.8 + 17·0.1 | 0 + 21·0.5 | 21·0.9 + 21·0.5 = 63.7 over 6·21 points.
    EXPECT_NEAR(a.hand_confidence, 63.7 / 126, 1e-6);
    EXPECT_DOUBLE_EQ(a.hand_points_detected, 88.0 / 126);  // 21 + 4 | 21 | 42
    ASSERT_EQ(a.frame_hands_visible.size(), 4u);
    EXPECT_DOUBLE_EQ(a.frame_hands_visible[0], 0.5);
    EXPECT_DOUBLE_EQ(a.frame_hands_visible[2], 1.0);
    EXPECT_TRUE(std::isnan(a.frame_hands_visible[3]));
    // The curation scorer's signals: visible hands' mean confidence (0.9 + 0.5 + 0.9 + 0.5) / 4,
    // the weakest finger per frame (0.9, 0.5, min(0.9, 0.5)) averaged over the 3 frames.
    EXPECT_NEAR(a.confidence_mean, 0.7, 1e-6);
    EXPECT_NEAR(a.finger_confidence, (0.9 + 0.5 + 0.5) / 3, 1e-6);
    EXPECT_NEAR(a.jitter, 0.0, 1e-9);  // frames 1 → 2: the same right hand, translated
    EXPECT_TRUE(std::isnan(a.accel));  // never 3 frames in a row with the same hand visible
    EXPECT_TRUE(std::isnan(a.sharpness_ratio));
    EXPECT_TRUE(std::isnan(a.score));  // no video: no combined score

    const auto& b = res[1];
    EXPECT_EQ(b.expected_hands, 4);
    EXPECT_EQ(b.visible_hands, 0);
    EXPECT_DOUBLE_EQ(b.hands_visible, 0.0);
    EXPECT_DOUBLE_EQ(b.hand_confidence, 0.0);
    EXPECT_DOUBLE_EQ(b.left_hand_visible, 0.0);
    EXPECT_TRUE(std::isnan(b.jitter));

    const auto s = ipa::eval::summarize_hands(res);
    EXPECT_EQ(s.expected_hands, 10);
    EXPECT_DOUBLE_EQ(s.hands_visible, 0.4);
    EXPECT_DOUBLE_EQ(s.left_hand_visible, 0.4);
    EXPECT_NEAR(s.hand_confidence, 63.7 / 210, 1e-6);
    EXPECT_DOUBLE_EQ(s.hand_points_detected, 88.0 / 210);
    EXPECT_NEAR(s.confidence_mean, 0.35, 1e-6);  // over videos
    EXPECT_NEAR(s.jitter, 0.0, 1e-9);            // B has none
    EXPECT_TRUE(std::isnan(s.accel));
}

TEST(Hands, WithVideosAndErrors) {
    Fixture fx;
    const fs::path gen = fx.tmp.path / "gen";
    for (const auto& [id, n] : {std::pair{"a", 4}, std::pair{"b", 2}}) {
        fs::create_directories(gen / id);
        for (int t = 0; t < n; ++t) {
            cv::Mat img(256, 256, CV_8UC3, cv::Scalar(40, 80, 120));
            cv::circle(img, {130, 108}, 20 + 3 * t, cv::Scalar(250, 250, 250), -1);
            cv::rectangle(img, {30, 30}, {70, 90}, cv::Scalar(0, 0, 0), 2);
            cv::imwrite((gen / id / fmt::format("{:04d}.png", t)).string(), img);
        }
    }
    const auto inputs = ipa::eval::hand_inputs_from_dirs(fx.kp, gen);
    ASSERT_EQ(inputs.size(), 2u);
    const auto res = ipa::eval::evaluate_hands(inputs);
    EXPECT_TRUE(res[0].has_video);
    EXPECT_DOUBLE_EQ(res[0].hands_visible, 4.0 / 6);  // the keypoint metrics do not read pixels
    EXPECT_NEAR(res[0].confidence_mean, 0.7, 1e-6);
    EXPECT_TRUE(std::isfinite(res[0].score));
    EXPECT_GE(res[0].score, 0.0);
    EXPECT_LE(res[0].score, 1.0);

    // A video with a frame less than its keypoints.
    fs::remove(gen / "a" / "0003.png");
    auto msg = ipa::test::error_of<ipa::DataError>([&] { ipa::eval::evaluate_hands(inputs[0]); });
    EXPECT_CONTAINS(msg, "4 keypoint frames");
    EXPECT_CONTAINS(msg, "3 frames in the video");
    EXPECT_CONTAINS(msg, (fx.kp / "a.jsonl").string());

    // Corrupt and missing keypoints.
    { std::ofstream(fx.kp / "c.jsonl") << "{\"people\": [\n"; }
    msg = ipa::test::error_of<ipa::DataError>([&] {
        ipa::eval::evaluate_hands(ipa::eval::HandEvalInput{"c", fx.kp / "c.jsonl", {}});
    });
    EXPECT_CONTAINS(msg, "c.jsonl");
    msg = ipa::test::error_of<ipa::DataError>([&] { ipa::eval::hand_inputs_from_dirs(fx.kp, gen); });
    EXPECT_CONTAINS(msg, "no generated video");
    EXPECT_CONTAINS(msg, "c");
    fs::remove(fx.kp / "c.jsonl");
    fs::create_directories(gen / "d");
    msg = ipa::test::error_of<ipa::DataError>([&] { ipa::eval::hand_inputs_from_dirs(fx.kp, gen); });
    EXPECT_CONTAINS(msg, "have no keypoints");
    EXPECT_CONTAINS(msg, "d");
    msg = ipa::test::error_of<ipa::DataError>([&] {
        ipa::eval::evaluate_hands(ipa::eval::HandEvalInput{"x", fx.kp / "x.jsonl", {}});
    });
    EXPECT_CONTAINS(msg, "x.jsonl");
}

TEST(Hands, ReportAndCompare) {
    Fixture fx;
    const auto res = ipa::eval::evaluate_hands(ipa::eval::hand_inputs_from_dirs(fx.kp));
    ipa::eval::Report base, adapter;
    base.hands = {res[1]};     // B: no hands
    adapter.hands = {res[0]};  // A
    ipa::eval::write_report(fx.tmp.path / "base", base);
    ipa::eval::write_report(fx.tmp.path / "adapter", adapter);
    std::map<std::string, double> sum;
    for (const auto& [k, v] : ipa::eval::read_report_summary(fx.tmp.path / "adapter" / "metrics.json")) sum[k] = v;
    EXPECT_DOUBLE_EQ(sum.at("hands_visible"), 4.0 / 6);
    EXPECT_DOUBLE_EQ(sum.at("left_hand_visible"), 2.0 / 3);
    EXPECT_NEAR(sum.at("hand_confidence"), 63.7 / 126, 1e-6);
    EXPECT_TRUE(std::isnan(sum.at("hand_accel")));  // null in the JSON
    const auto csv = ipa::read_file(fx.tmp.path / "adapter" / "per_video_hands.csv");
    EXPECT_CONTAINS(csv, "id,frames,expected_hands,hands_visible");
    EXPECT_CONTAINS(csv, "\na,4,6,");
    const auto html = ipa::read_file(fx.tmp.path / "adapter" / "index.html");
    EXPECT_CONTAINS(html, "Hands of the generated videos");
    EXPECT_TRUE(fs::exists(fx.tmp.path / "adapter" / "chart_hands_visible.png"));
    const auto table =
        ipa::eval::compare_reports(fx.tmp.path / "base" / "metrics.json", fx.tmp.path / "adapter" / "metrics.json");
    EXPECT_CONTAINS(table, "hands_visible");
    EXPECT_CONTAINS(table, "+0.666667");  // 0 → 4/6
    const auto charts = ipa::eval::write_compare_charts(fx.tmp.path / "base" / "metrics.json",
                                                        fx.tmp.path / "adapter" / "metrics.json", fx.tmp.path / "ab");
    EXPECT_TRUE(fs::exists(fx.tmp.path / "ab" / "compare_hands_visible.png"));
    EXPECT_FALSE(charts.empty());
}

}  // namespace
