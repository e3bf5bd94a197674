// Synthetic animation set: determinism, structure, defects confined to the hands, and the
// acceptance test (the default score separates labelled-good from defective candidates).

#include <gtest/gtest.h>

#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "curate_test_util.h"
#include "ipa/core/error.h"
#include "ipa/curate/pairs.h"
#include "ipa/curate/score.h"
#include "ipa/curate/synth.h"
#include "ipa/media/frames.h"
#include "ipa/pose/hand_mask.h"
#include "ipa/pose/keypoints.h"

namespace ipa::curate {
namespace {
namespace fs = std::filesystem;
using test::expect_error;
using test::read_text;
using test::TempDir;

SynthOptions small(uint64_t seed) {
    SynthOptions o;
    o.clips = 2;
    o.candidates = 3;
    o.frames = 5;
    o.height = 96;
    o.width = 128;
    o.seed = seed;
    o.video_ext = "";  // PNG frames: byte-for-byte reproducible
    return o;
}

std::map<std::string, std::string> tree(const fs::path& root) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(root))
        if (e.is_regular_file()) files[fs::relative(e.path(), root).generic_string()] = read_text(e.path());
    return files;
}

TEST(Synth, SameSeedSameFilesOtherSeedOtherVideos) {
    TempDir a, b, c;
    synth_dataset(a.path, small(3));
    synth_dataset(b.path, small(3));
    synth_dataset(c.path, small(4));
    const auto ta = tree(a.path), tb = tree(b.path), tc = tree(c.path);
    EXPECT_GT(ta.size(), 50u);
    EXPECT_TRUE(ta == tb) << "same seed produced different files";
    ASSERT_TRUE(tc.count("clip_000/cand_0/000000.png"));
    EXPECT_NE(ta.at("clip_000/cand_0/000000.png"), tc.at("clip_000/cand_0/000000.png"));
    EXPECT_NE(ta.at("clip_000/prompt.txt") + ta.at("clip_001/prompt.txt"),
              tc.at("clip_000/prompt.txt") + tc.at("clip_001/prompt.txt"));
}

TEST(Synth, StructureOfTheSet) {
    TempDir tmp;
    SynthOptions o = small(11);
    o.candidates = 6;  // index 0 clean + a full cycle of the five others
    const SynthReport rep = synth_dataset(tmp.path, o);
    EXPECT_EQ(rep.clips, 2);
    EXPECT_EQ(rep.candidates, 12);
    EXPECT_EQ(rep.manifest, fs::absolute(tmp.path / "candidates.csv"));
    int64_t total = 0;
    for (const auto& [d, n] : rep.defects) total += n;
    EXPECT_EQ(total, 12);
    for (const char* d : {"none", "blur", "missing_finger", "fused_fingers", "jitter"})
        EXPECT_GE(rep.defects.at(d), 2) << d;

    const Manifest m = read_manifest(rep.manifest);
    EXPECT_EQ(m.columns, (std::vector<std::string>{"id", "group", "video", "vace_video", "vace_reference_image",
                                                   "keypoints", "prompt", "label", "defect"}));
    ASSERT_EQ(m.rows.size(), 12u);
    std::set<std::string> ids;
    for (size_t i = 0; i < m.rows.size(); ++i) {
        const auto& r = m.rows[i];
        const int clip = int(i) / 6, k = int(i) % 6;
        ids.insert(r.id);
        EXPECT_EQ(r.get("group"), clip == 0 ? "clip_000" : "clip_001");
        EXPECT_EQ(r.get("defect"), synth_defect(clip, k, 11));
        EXPECT_EQ(r.get("label"), r.get("defect") == "none" ? "good" : "bad");
        if (k == 0) {
            EXPECT_EQ(r.get("defect"), "none");
        }
        EXPECT_EQ(r.prompt + "\n", read_text(r.video.parent_path() / "prompt.txt"));
        EXPECT_NE(r.prompt.find("dances"), std::string::npos);
        double fps = 0;
        const auto frames = media::read_frames_bgr(r.video, &fps);
        ASSERT_EQ(frames.size(), 5u);
        EXPECT_EQ(frames[0].rows, 96);
        EXPECT_EQ(frames[0].cols, 128);
        EXPECT_EQ(media::read_frames_bgr(r.vace_video).size(), 5u);
        const cv::Mat ref = media::read_image_bgr(r.vace_reference_image);
        EXPECT_EQ(ref.size(), cv::Size(128, 96));
        const auto kp = pose::read_keypoints(r.keypoints);
        ASSERT_EQ(kp.frames.size(), 5u);
        ASSERT_EQ(kp.frames[0].people.size(), 1u);
        EXPECT_EQ(kp.frames[0].people[0].body.size(), 18u);
        EXPECT_EQ(kp.frames[0].people[0].hand_left.size(), 21u);
        EXPECT_EQ(kp.frames[0].people[0].hand_right.size(), 21u);
    }
    EXPECT_EQ(ids.size(), 12u);
    // Ground truth: every point inside the canvas with confidence 1; frame 0 of a clean
    // candidate is the reference image.
    const auto gt = pose::read_keypoints(tmp.path / "clip_000" / "gt_keypoints");
    ASSERT_EQ(gt.frames.size(), 5u);
    for (const auto& f : gt.frames)
        for (const auto* v : {&f.people[0].body, &f.people[0].hand_left, &f.people[0].hand_right})
            for (const auto& k : *v) {
                EXPECT_TRUE(k.x >= 0 && k.x < 128 && k.y >= 0 && k.y < 96) << k.x << "," << k.y;
                EXPECT_EQ(k.c, 1.0f);
            }
    const cv::Mat ref = media::read_image_bgr(m.rows[0].vace_reference_image);
    EXPECT_EQ(cv::norm(ref, media::read_frames_bgr(m.rows[0].video)[0], cv::NORM_INF), 0.0);
}

TEST(Synth, DefectsOnlyChangeTheHands) {
    TempDir tmp;
    SynthOptions o = small(11);
    o.clips = 1;
    o.candidates = 6;
    o.height = o.width = 128;
    const Manifest m = read_manifest(synth_dataset(tmp.path, o).manifest);
    const auto gt = pose::read_keypoints(tmp.path / "clip_000" / "gt_keypoints");
    const auto clean = media::read_frames_bgr(m.rows[0].video);
    pose::HandMaskOptions wide;
    wide.padding = 0.4f;
    int checked = 0;
    for (const auto& r : m.rows) {
        const std::string d = r.get("defect");
        if (d == "jitter") continue;  // moves the hand itself
        const auto frames = media::read_frames_bgr(r.video);
        for (size_t t = 0; t < frames.size(); ++t) {
            cv::Mat diff;
            cv::absdiff(frames[t], clean[t], diff);
            cv::Mat outside = cv::Mat::ones(128, 128, CV_8U);
            for (const auto* h : {&gt.frames[t].people[0].hand_left, &gt.frames[t].people[0].hand_right})
                outside(*pose::hand_box(*h, 128, 128, wide)).setTo(0);
            cv::Mat gray;
            cv::cvtColor(diff, gray, cv::COLOR_BGR2GRAY);
            EXPECT_EQ(cv::countNonZero(gray & outside * 255), 0) << r.id << " frame " << t;
            if (d == "none") {
                EXPECT_EQ(cv::countNonZero(gray), 0) << r.id;
            } else {
                EXPECT_GT(cv::countNonZero(gray), 5) << r.id << " frame " << t;
            }
        }
        ++checked;
    }
    EXPECT_EQ(checked, 5);
}

TEST(Synth, InvalidOptions) {
    TempDir tmp;
    auto bad = [&](auto edit, const std::string& key) {
        SynthOptions o = small(0);
        edit(o);
        expect_error<ConfigError>([&] { synth_dataset(tmp.path, o); }, {key});
    };
    bad([](SynthOptions& o) { o.clips = 0; }, "clips");
    bad([](SynthOptions& o) { o.candidates = 0; }, "candidates");
    bad([](SynthOptions& o) { o.frames = 1; }, "frames");
    bad([](SynthOptions& o) { o.height = 100; }, "height");
    bad([](SynthOptions& o) { o.width = 32; }, "width");
    bad([](SynthOptions& o) { o.fps = 0; }, "fps");
    bad([](SynthOptions& o) { o.video_ext = ".gif"; }, "video_ext");
}

// Acceptance: on a synthetic set with encoded (.mp4) videos the combined score at the
// default threshold (configs/curate/score.yaml) separates labelled-good from defective
// candidates. Positive = passes. IPA_CURATE_ACCEPT_CLIPS / _SEED enlarge the set for
// measurement (default 6 clips x 4 candidates, seed 0).
TEST(Synth, AcceptanceDefaultScoreSeparatesGoodFromDefective) {
    TempDir tmp;
    SynthOptions o;
    o.clips = std::getenv("IPA_CURATE_ACCEPT_CLIPS") ? std::atoi(std::getenv("IPA_CURATE_ACCEPT_CLIPS")) : 6;
    o.seed =
        std::getenv("IPA_CURATE_ACCEPT_SEED") ? std::strtoull(std::getenv("IPA_CURATE_ACCEPT_SEED"), nullptr, 10) : 0;
    o.candidates = 4;
    const SynthReport rep = synth_dataset(tmp.path, o);
    const Manifest m = read_manifest(rep.manifest);
    const ScoreConfig cfg = ScoreConfig::from_yaml(fs::path(IPA_SOURCE_DIR) / "configs/curate/score.yaml");
    const auto scores = score_manifest(m, cfg);
    ASSERT_EQ(scores.size(), m.rows.size());
    int64_t tp = 0, fp = 0, fn = 0, tn = 0;
    std::map<std::string, std::pair<int, int>> by_defect;  // pass, total
    for (size_t i = 0; i < scores.size(); ++i) {
        const bool good = m.rows[i].get("label") == "good";
        const bool pass = scores[i].pass;
        (good ? (pass ? tp : fn) : (pass ? fp : tn))++;
        auto& d = by_defect[m.rows[i].get("defect")];
        d.first += pass;
        d.second += 1;
        const auto& st = scores[i].stats;
        std::printf(
            "  %-18s %-15s score %.3f %s  (confidence %.2f finger %.2f visibility %.2f jitter %.2f "
            "accel %.2f sharpness %.2f)\n",
            scores[i].id.c_str(), m.rows[i].get("defect").c_str(), scores[i].score, pass ? "pass" : "fail",
            st.at("s_confidence"), st.at("s_finger"), st.at("s_visibility"), st.at("s_jitter"), st.at("s_accel"),
            st.at("s_sharpness"));
    }
    const double precision = tp + fp ? double(tp) / double(tp + fp) : 0.0;
    const double recall = tp + fn ? double(tp) / double(tp + fn) : 0.0;
    std::printf(
        "acceptance (seed %llu, %d clips x %d candidates, threshold %.2f): good %lld, defective %lld; "
        "precision %.3f (%lld/%lld), recall %.3f (%lld/%lld)\n",
        static_cast<unsigned long long>(o.seed), o.clips, o.candidates, cfg.threshold, static_cast<long long>(tp + fn),
        static_cast<long long>(fp + tn), precision, static_cast<long long>(tp), static_cast<long long>(tp + fp), recall,
        static_cast<long long>(tp), static_cast<long long>(tp + fn));
    for (const auto& [d, pt] : by_defect) std::printf("  %-15s pass %d / %d\n", d.c_str(), pt.first, pt.second);
    std::printf("%s", format_pair_stats(pair_statistics(scores, cfg, {})).c_str());
    // Bound: the set holds 10 good and 14 defective candidates (default size); 0.9 allows one
    // miss of either kind, well above chance (precision 10/24 = 0.42 when everything passes).
    EXPECT_GE(precision, 0.9);
    EXPECT_GE(recall, 0.9);
}

}  // namespace
}  // namespace ipa::curate
