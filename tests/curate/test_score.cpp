// Hand-quality scoring on hand-made inputs: Laplacian variance, sharp vs blurred hands,
// missing points, hidden hands, smooth vs jittery vs accelerating keypoints, config and I/O.

#include <gtest/gtest.h>

#include <cmath>
#include <opencv2/imgproc.hpp>

#include "curate_test_util.h"
#include "ipa/core/error.h"
#include "ipa/curate/score.h"
#include "ipa/media/frames.h"
#include "ipa/pose/hand_mask.h"

namespace ipa::curate {
namespace {
namespace fs = std::filesystem;
using test::expect_error;
using test::TempDir;
using test::write_text;

constexpr int kSize = 128;

// 1-pixel checkerboard 0/255 (BGR).
cv::Mat checkerboard(int h, int w) {
    cv::Mat img(h, w, CV_8UC3);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) img.at<cv::Vec3b>(y, x) = cv::Vec3b::all((x + y) % 2 ? 255 : 0);
    return img;
}

// A hand of 21 points: wrist at (x0, y0), finger f's points 4f+1..4f+4 in a column at
// x0 + 4(f-2), 4 px apart upward (keypoint box 16x16).
std::vector<pose::Keypoint> grid_hand(float x0, float y0, float c = 0.8f) {
    std::vector<pose::Keypoint> h(21);
    h[0] = {x0, y0, c};
    for (int f = 0; f < 5; ++f)
        for (int j = 1; j <= 4; ++j) h[4 * f + j] = {x0 + 4.0f * (f - 2), y0 - 4.0f * j, c};
    return h;
}

pose::PoseFrame frame_with(const std::vector<pose::Keypoint>& left, const std::vector<pose::Keypoint>& right) {
    pose::Person p;
    for (int i = 0; i < 18; ++i) p.body.push_back({30.0f + 4.0f * i, 20.0f + 3.0f * i, 0.9f});
    p.hand_left = left;
    p.hand_right = right;
    pose::PoseFrame f;
    f.width = kSize, f.height = kSize;
    f.people.push_back(p);
    return f;
}

// T identical frames with the two grid hands, each hand modified per frame by `edit`.
template <typename Edit>
pose::PoseSequence sequence(int T, Edit edit) {
    pose::PoseSequence s;
    for (int t = 0; t < T; ++t) {
        auto l = grid_hand(40, 100), r = grid_hand(88, 100);
        edit(t, l);
        edit(t, r);
        s.frames.push_back(frame_with(l, r));
    }
    return s;
}

std::vector<cv::Mat> frames_of(int T, const cv::Mat& img) { return std::vector<cv::Mat>(size_t(T), img); }

TEST(Score, RampIsLinearAndClamped) {
    const Ramp up{0.3, 0.7}, down{0.12, 0.04};
    EXPECT_DOUBLE_EQ(up(0.5), 0.5);
    EXPECT_DOUBLE_EQ(up(0.1), 0.0);
    EXPECT_DOUBLE_EQ(up(0.9), 1.0);
    EXPECT_DOUBLE_EQ(down(0.06), 0.75);
    EXPECT_DOUBLE_EQ(down(0.2), 0.0);
    EXPECT_DOUBLE_EQ(up(std::nan("")), 0.0);
}

TEST(Score, LaplacianVarianceOfCheckerboardIsExact) {
    // 1-px checkerboard, 4-neighbour Laplacian: every pixel of a crop inside the image is
    // ±1020 (its neighbours outside the crop are real pixels), mean 0.
    const cv::Mat img = checkerboard(32, 32);
    EXPECT_DOUBLE_EQ(laplacian_variance(img, cv::Rect(5, 7, 8, 8)), 1020.0 * 1020);
    // At the image's corner borders are replicated: the 4x4 corner crop has 1 corner pixel
    // ±510, 6 edge pixels ±765 and 9 inner ±1020, signs alternating (mean 0).
    const double corner = (1 * 510.0 * 510 + 6 * 765.0 * 765 + 9 * 1020.0 * 1020) / 16;
    EXPECT_DOUBLE_EQ(laplacian_variance(img, cv::Rect(0, 0, 4, 4)), corner);
    EXPECT_DOUBLE_EQ(laplacian_variance(cv::Mat(32, 32, CV_8UC3, cv::Scalar::all(77)), cv::Rect(0, 0, 32, 32)), 0.0);
    EXPECT_DOUBLE_EQ(laplacian_variance(img, cv::Rect(40, 40, 8, 8)), 0.0);  // outside → empty
    EXPECT_DOUBLE_EQ(laplacian_variance(img, cv::Rect(30, 30, 8, 8)), 0.0);  // clipped to 2x2 → empty
    cv::Mat gray;
    cv::cvtColor(img, gray, cv::COLOR_BGR2GRAY);
    EXPECT_DOUBLE_EQ(laplacian_variance(gray, cv::Rect(5, 7, 8, 8)), 1020.0 * 1020);
    EXPECT_DOUBLE_EQ(laplacian_variance(gray, cv::Rect(0, 0, 4, 4)), corner);
}

TEST(Score, CleanStaticHandsScoreOne) {
    const ScoreConfig cfg;
    const cv::Mat img = checkerboard(kSize, kSize);
    const auto kp = sequence(5, [](int, auto&) {});
    const CandidateScore s = score_candidate("c", "g", frames_of(5, img), kp, cfg);
    EXPECT_EQ(s.id, "c");
    EXPECT_EQ(s.group, "g");
    ASSERT_EQ(s.frames.size(), 5u);
    EXPECT_DOUBLE_EQ(s.stats.at("confidence_mean"), double(0.8f));
    EXPECT_DOUBLE_EQ(s.stats.at("finger_confidence"), double(0.8f));
    EXPECT_DOUBLE_EQ(s.stats.at("visible_fraction"), 1.0);
    EXPECT_DOUBLE_EQ(s.stats.at("jitter"), 0.0);
    EXPECT_DOUBLE_EQ(s.stats.at("accel"), 0.0);
    EXPECT_DOUBLE_EQ(s.stats.at("hand_frames"), 5.0);
    // Hand sharpness = mean over both hands of the Laplacian variance of pose::hand_box.
    pose::HandMaskOptions bo;
    const double lv = 0.5 * (laplacian_variance(img, *pose::hand_box(grid_hand(40, 100), kSize, kSize, bo)) +
                             laplacian_variance(img, *pose::hand_box(grid_hand(88, 100), kSize, kSize, bo)));
    EXPECT_DOUBLE_EQ(s.frames[2].hand_sharpness, lv);
    EXPECT_DOUBLE_EQ(s.frames[2].body_sharpness, 1020.0 * 1020);
    // An odd-sized crop has one more pixel of one sign: variance 1020²·(1 - 1/N²).
    EXPECT_NEAR(lv, 1020.0 * 1020, 1020.0 * 1020 * 1e-5);
    EXPECT_NEAR(s.stats.at("sharpness_ratio"), 1.0, 1e-5);  // the same texture everywhere
    EXPECT_DOUBLE_EQ(s.frames[0].jitter, -1.0);             // undefined on the first frame
    EXPECT_DOUBLE_EQ(s.frames[4].accel, -1.0);              // and accel on the last
    EXPECT_DOUBLE_EQ(s.score, 1.0);
    EXPECT_TRUE(s.pass);
    for (const auto& f : s.frames) EXPECT_DOUBLE_EQ(f.score, 1.0);
}

TEST(Score, BlurredHandsFailOnSharpness) {
    const ScoreConfig cfg;
    cv::Mat img = checkerboard(kSize, kSize);
    for (const auto& h : {grid_hand(40, 100), grid_hand(88, 100)}) {
        cv::Mat roi = img(*pose::hand_box(h, kSize, kSize));
        cv::GaussianBlur(roi, roi, cv::Size(0, 0), 2.0);
    }
    const auto s = score_candidate("b", "g", frames_of(3, img), sequence(3, [](int, auto&) {}), cfg);
    EXPECT_LT(s.stats.at("sharpness_ratio"), 0.01);  // σ=2 blur removes the 1-px pattern
    EXPECT_DOUBLE_EQ(s.stats.at("s_sharpness"), 0.0);
    // Every other sub-score is 1, sharpness (weight 2 of 8) is floored at 1e-6.
    EXPECT_NEAR(s.score, std::pow(1e-6, 2.0 / 8.0), 1e-12);
    EXPECT_FALSE(s.pass);
}

TEST(Score, MissingFingerPointsDragTheWeakestFinger) {
    const ScoreConfig cfg;
    const cv::Mat img = checkerboard(kSize, kSize);
    pose::PoseSequence kp = sequence(4, [](int, auto&) {});
    for (auto& f : kp.frames)
        for (int j = 9; j <= 12; ++j) f.people[0].hand_left[j].c = 0.05f;  // middle finger of the left hand
    const auto s = score_candidate("m", "", frames_of(4, img), kp, cfg);
    const double left = (17 * double(0.8f) + 4 * double(0.05f)) / 21;
    EXPECT_NEAR(s.stats.at("confidence_mean"), 0.5 * (left + double(0.8f)), 1e-12);
    EXPECT_NEAR(s.stats.at("finger_confidence"), double(0.05f), 1e-12);
    EXPECT_DOUBLE_EQ(s.stats.at("visible_fraction"), 1.0);  // 17 points are still confident
    EXPECT_DOUBLE_EQ(s.stats.at("s_finger"), 0.0);
    EXPECT_NEAR(s.score, std::pow(1e-6, 2.0 / 8.0), 1e-9);
    EXPECT_FALSE(s.pass);
}

TEST(Score, HiddenHandLowersVisibilityAndNoHandsScoreZero) {
    const ScoreConfig cfg;
    const cv::Mat img = checkerboard(kSize, kSize);
    pose::PoseSequence kp = sequence(3, [](int, auto&) {});
    for (auto& f : kp.frames)
        for (int j = 4; j < 21; ++j) f.people[0].hand_right[j].c = 0.1f;  // 4 confident points < min_points 5
    const auto s = score_candidate("h", "", frames_of(3, img), kp, cfg);
    EXPECT_DOUBLE_EQ(s.stats.at("visible_fraction"), 0.5);
    EXPECT_DOUBLE_EQ(s.stats.at("confidence_mean"), double(0.8f));  // the visible hand only
    EXPECT_DOUBLE_EQ(s.stats.at("s_visibility"), 0.0);
    EXPECT_FALSE(s.pass);

    pose::PoseSequence none = sequence(3, [](int, auto& h) {
        for (auto& k : h) k.c = 0;
    });
    const auto z = score_candidate("z", "", frames_of(3, img), none, cfg);
    EXPECT_DOUBLE_EQ(z.stats.at("hand_frames"), 0.0);
    EXPECT_DOUBLE_EQ(z.score, 0.0);
    for (const auto& f : z.frames) EXPECT_DOUBLE_EQ(f.score, 0.0);
}

TEST(Score, JitterIgnoresRigidMotionAccelMeasuresIt) {
    const ScoreConfig cfg;
    const auto frames = frames_of(5, checkerboard(kSize, kSize));
    // Constant velocity: no jitter, no acceleration.
    const auto lin = score_candidate("v", "", frames,
                                     sequence(5,
                                              [](int t, auto& h) {
                                                  for (auto& k : h) k.x += 3.0f * t;
                                              }),
                                     cfg);
    EXPECT_NEAR(lin.stats.at("jitter"), 0.0, 1e-12);
    EXPECT_NEAR(lin.stats.at("accel"), 0.0, 1e-12);
    // Rotation about the wrist and uniform scaling: a similarity, so no shape jitter.
    const auto rot = score_candidate("r", "", frames,
                                     sequence(5,
                                              [](int t, auto& h) {
                                                  const float x0 = h[0].x, y0 = h[0].y, a = 0.1f * t,
                                                              sc = 1.0f + 0.05f * t;
                                                  for (auto& k : h) {
                                                      const float dx = k.x - x0, dy = k.y - y0;
                                                      k.x = x0 + sc * (std::cos(a) * dx - std::sin(a) * dy);
                                                      k.y = y0 + sc * (std::sin(a) * dx + std::cos(a) * dy);
                                                  }
                                              }),
                                     cfg);
    EXPECT_NEAR(rot.stats.at("jitter"), 0.0, 1e-6);
    EXPECT_GT(rot.stats.at("accel"), 0.004);  // centripetal: ~r·0.1² over the hand
    // x = x0 + t^2: second difference 2 px for every point, hand size 16 → 0.125.
    const auto acc = score_candidate("a", "", frames,
                                     sequence(5,
                                              [](int t, auto& h) {
                                                  for (auto& k : h) k.x += float(t * t);
                                              }),
                                     cfg);
    EXPECT_NEAR(acc.stats.at("jitter"), 0.0, 1e-12);
    EXPECT_NEAR(acc.stats.at("accel"), 0.125, 1e-12);
    EXPECT_NEAR(acc.stats.at("s_accel"), (0.125 - 0.25) / (0.08 - 0.25), 1e-12);
    for (int t = 1; t < 4; ++t) EXPECT_NEAR(acc.frames[t].accel, 0.125, 1e-12);
}

// Mean residual of the least-squares similarity (x' = a x - b y + tx, y' = b x + a y + ty)
// mapping `p` onto `q`, divided by `size`: solved here as a plain 4-unknown linear system.
double similarity_residual(const std::vector<pose::Keypoint>& p, const std::vector<pose::Keypoint>& q, double size) {
    cv::Mat A(42, 4, CV_64F), B(42, 1, CV_64F), X;
    for (int i = 0; i < 21; ++i) {
        const double x = p[i].x, y = p[i].y;
        cv::Mat(cv::Matx14d(x, -y, 1, 0)).copyTo(A.row(2 * i));
        cv::Mat(cv::Matx14d(y, x, 0, 1)).copyTo(A.row(2 * i + 1));
        B.at<double>(2 * i) = q[i].x;
        B.at<double>(2 * i + 1) = q[i].y;
    }
    cv::solve(A, B, X, cv::DECOMP_SVD);
    const cv::Mat fit = A * X;
    double sum = 0;
    for (int i = 0; i < 21; ++i) sum += std::hypot(fit.at<double>(2 * i) - q[i].x, fit.at<double>(2 * i + 1) - q[i].y);
    return sum / 21 / size;
}

TEST(Score, OneShakingFingertipGivesKnownJitterAndAccel) {
    const ScoreConfig cfg;
    const auto frames = frames_of(6, checkerboard(kSize, kSize));
    // The index fingertip (point 8) moves 8 px toward the wrist on odd frames (box stays 16x16).
    auto shake = [](int t, auto& h) {
        if (t % 2) h[8].y += 8.0f;
    };
    const auto kp = sequence(6, shake);
    const auto s = score_candidate("j", "", frames, kp, cfg);
    // Second difference: 16 px at one of 21 points / size 16 → 1/21 on every inner frame.
    EXPECT_NEAR(s.stats.at("accel"), 1.0 / 21, 1e-12);
    // Jitter: the residual after the best similarity fit of frame t-1 onto frame t.
    double mean = 0;
    for (int t = 1; t < 6; ++t) {
        const auto& a = kp.frames[t - 1].people[0].hand_left;
        const auto& b = kp.frames[t].people[0].hand_left;
        const double expected = similarity_residual(a, b, 16.0);
        EXPECT_NEAR(s.frames[t].jitter, expected, 1e-9) << t;
        EXPECT_GT(expected, 8.0 / 21 / 16);  // least squares spreads the error over all points
        mean += expected / 5;
    }
    EXPECT_NEAR(s.stats.at("jitter"), mean, 1e-9);
}

TEST(Score, KeypointsAreScaledFromTheirCanvas) {
    const ScoreConfig cfg;
    const auto frames = frames_of(3, checkerboard(kSize, kSize));
    pose::PoseSequence half = sequence(3, [](int t, auto& h) {
        for (auto& k : h) k.x += float(t * t);
    });
    for (auto& f : half.frames) {
        f.width = f.height = kSize / 2;
        for (auto* v : {&f.people[0].body, &f.people[0].hand_left, &f.people[0].hand_right})
            for (auto& k : *v) k.x *= 0.5f, k.y *= 0.5f;
    }
    const auto s = score_candidate("s", "", frames, half, cfg);
    EXPECT_NEAR(s.stats.at("accel"), 0.125, 1e-12);
    EXPECT_GT(s.stats.at("sharpness_ratio"), 0.8);
}

TEST(Score, BadInputsThrowNamingTheCandidate) {
    const ScoreConfig cfg;
    const auto frames = frames_of(3, checkerboard(kSize, kSize));
    expect_error<DataError>([&] { score_candidate("cand_7", "", frames, sequence(4, [](int, auto&) {}), cfg); },
                            {"cand_7", "3 frames", "4"});
    expect_error<DataError>([&] { score_candidate("cand_8", "", {}, {}, cfg); }, {"cand_8", "no frames"});
}

TEST(Score, ScoreManifestReadsFilesAndNamesRowAndFileOnErrors) {
    TempDir tmp;
    const ScoreConfig cfg;
    const auto frames = frames_of(3, checkerboard(kSize, kSize));
    const auto kp = sequence(3, [](int t, auto& h) {
        for (auto& k : h) k.x += float(t * t);
    });
    media::write_frames_bgr(tmp.path / "video", frames);  // PNG frames: lossless
    pose::write_keypoints_dir(tmp.path / "kp", kp);
    Manifest m;
    m.path = tmp.path / "m.csv";
    ManifestRow row;
    row.id = "row_1";
    row.video = tmp.path / "video";
    row.keypoints = tmp.path / "kp";
    row.extra["group"] = "grp";
    m.rows = {row};
    const auto scores = score_manifest(m, cfg);
    ASSERT_EQ(scores.size(), 1u);
    const auto direct = score_candidate("row_1", "grp", frames, kp, cfg);
    EXPECT_EQ(scores[0].group, "grp");
    EXPECT_DOUBLE_EQ(scores[0].score, direct.score);
    EXPECT_EQ(scores[0].stats, direct.stats);

    m.rows[0].video = tmp.path / "nope.mp4";
    expect_error<DataError>([&] { score_manifest(m, cfg); }, {"row_1", "nope.mp4"});
    m.rows[0].video = tmp.path / "video";
    m.rows[0].keypoints = tmp.path / "missing_kp";
    expect_error<DataError>([&] { score_manifest(m, cfg); }, {"row_1", "missing_kp"});
    write_text(tmp.path / "corrupt.mp4", "not a video at all");
    m.rows[0].keypoints = tmp.path / "kp";
    m.rows[0].video = tmp.path / "corrupt.mp4";
    expect_error<DataError>([&] { score_manifest(m, cfg); }, {"row_1", "corrupt.mp4"});
    m.rows[0].video.clear();
    expect_error<DataError>([&] { score_manifest(m, cfg); }, {"row_1", "no video"});
}

TEST(Score, ConfigFileDocumentsTheDefaultsAndRejectsUnknownKeys) {
    const ScoreConfig def;
    const ScoreConfig c = ScoreConfig::from_yaml(fs::path(IPA_SOURCE_DIR) / "configs/curate/score.yaml");
    EXPECT_EQ(c.threshold, def.threshold);
    EXPECT_EQ(c.point_threshold, def.point_threshold);
    EXPECT_EQ(c.min_points, def.min_points);
    EXPECT_EQ(c.hand_padding, def.hand_padding);
    const double ws[][2] = {{c.w_confidence, def.w_confidence}, {c.w_finger, def.w_finger},
                            {c.w_visibility, def.w_visibility}, {c.w_jitter, def.w_jitter},
                            {c.w_accel, def.w_accel},           {c.w_sharpness, def.w_sharpness}};
    for (const auto& w : ws) EXPECT_EQ(w[0], w[1]);
    const std::pair<Ramp, Ramp> rs[] = {{c.confidence, def.confidence}, {c.finger, def.finger},
                                        {c.visibility, def.visibility}, {c.jitter, def.jitter},
                                        {c.accel, def.accel},           {c.sharpness, def.sharpness}};
    for (const auto& [a, b] : rs) EXPECT_TRUE(a.bad == b.bad && a.good == b.good);

    TempDir tmp;
    const fs::path y = tmp.path / "s.yaml";
    write_text(y, "score:\n  threshold: 0.6\n  weights: {finger: 3}\n  ramps:\n    jitter: {good: 0.02}\n");
    const ScoreConfig d = ScoreConfig::from_yaml(y);
    EXPECT_EQ(d.threshold, 0.6);
    EXPECT_EQ(d.w_finger, 3.0);
    EXPECT_EQ(d.jitter.good, 0.02);
    EXPECT_EQ(d.jitter.bad, def.jitter.bad);
    write_text(y, "score:\n  weights: {fingers: 1}\n");
    expect_error<ConfigError>([&] { ScoreConfig::from_yaml(y); }, {"fingers"});
    write_text(y, "score:\n  ramps:\n    jitter: {bad: 0.1, good: 0.1}\n");
    expect_error<ConfigError>([&] { ScoreConfig::from_yaml(y); }, {"s.yaml", "ramps.jitter"});
    write_text(y, "score:\n  threshold: 1.5\n");
    expect_error<ConfigError>([&] { ScoreConfig::from_yaml(y); }, {"threshold"});
    write_text(y, "scores:\n  threshold: 0.5\n");
    expect_error<ConfigError>([&] { ScoreConfig::from_yaml(y); }, {"scores"});
}

TEST(Score, ScoresFilesRoundTripAndRescore) {
    TempDir tmp;
    ScoreConfig cfg;
    const auto frames = frames_of(4, checkerboard(kSize, kSize));
    std::vector<CandidateScore> in = {
        score_candidate("a,1", "g", frames, sequence(4, [](int t, auto& h) { h[8].y += 8.0f * (t % 2); }), cfg),
        score_candidate("b", "", frames,
                        sequence(4,
                                 [](int t, auto& h) {
                                     for (auto& k : h) k.x += float(t * t);
                                 }),
                        cfg)};
    write_scores(tmp.path / "out", in);
    const std::string csv = test::read_text(tmp.path / "out" / "scores.csv");
    EXPECT_EQ(csv.substr(0, 20), "id,group,score,pass,");
    EXPECT_NE(csv.find("\n\"a,1\",g,"), std::string::npos);
    const auto back = read_scores(tmp.path / "out" / "scores.json");
    ASSERT_EQ(back.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(back[i].id, in[i].id);
        EXPECT_EQ(back[i].group, in[i].group);
        EXPECT_NEAR(back[i].score, in[i].score, 1e-8);
        EXPECT_EQ(back[i].pass, in[i].pass);
        ASSERT_EQ(back[i].stats.size(), in[i].stats.size());
        for (const auto& [k, v] : in[i].stats)
            EXPECT_NEAR(back[i].stats.at(k), v, 1e-7 * std::max(1.0, std::abs(v))) << k;
        ASSERT_EQ(back[i].frames.size(), in[i].frames.size());
        for (size_t t = 0; t < in[i].frames.size(); ++t) {
            EXPECT_NEAR(back[i].frames[t].jitter, in[i].frames[t].jitter, 1e-8);
            EXPECT_NEAR(back[i].frames[t].score, in[i].frames[t].score, 1e-8);
        }
    }
    // Re-thresholding from the stored signals.
    CandidateScore r = back[1];
    cfg.threshold = std::min(1.0, r.score + 0.01);
    rescore(r, cfg);
    EXPECT_NEAR(r.score, in[1].score, 1e-8);
    EXPECT_FALSE(r.pass);

    write_text(tmp.path / "bad.json", "{\"format\": \"ipa-curate-scores\", \"candidates\": [{\"id\": 1}]}");
    expect_error<DataError>([&] { read_scores(tmp.path / "bad.json"); }, {"bad.json", "candidates[0]"});
    write_text(tmp.path / "bad.json", "{not json");
    expect_error<DataError>([&] { read_scores(tmp.path / "bad.json"); }, {"bad.json", "JSON"});
}

}  // namespace
}  // namespace ipa::curate
