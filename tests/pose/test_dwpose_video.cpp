// `ipa-curate pose` end to end on the synthetic DWPose models (tests/fixtures/dwpose): videos of
// `ipa-curate synth` -> OpenPose JSON per frame -> `ipa-curate score`; manifests with bad rows,
// resume, --fail-fast; a video without a person; a corrupt video.

#include <gtest/gtest.h>

#include <fstream>

#include "ipa/core/error.h"
#include "ipa/curate/manifest.h"
#include "ipa/curate/score.h"
#include "ipa/curate/synth.h"
#include "ipa/pose/dwpose_video.h"
#include "pose_test_util.h"

namespace ipa::pose {
namespace {

namespace fs = std::filesystem;
namespace dw = dwpose;

const fs::path kDir = fs::path(IPA_FIXTURES_DIR) / "dwpose";

ProgressOptions silent() {
    ProgressOptions p;
    p.mode = ProgressOptions::Mode::silent;
    return p;
}

curate::BatchOptions batch_opts(int jobs) {
    curate::BatchOptions o;
    o.jobs = jobs;
    o.progress = silent();
    return o;
}

/// A small synthetic candidate set (1 clip, 3 candidates of 4 frames, 128x128 mp4).
curate::Manifest synth_set(const fs::path& dir) {
    curate::SynthOptions s;
    s.clips = 1, s.candidates = 3, s.frames = 4, s.height = 128, s.width = 128;
    return curate::read_manifest(curate::synth_dataset(dir, s).manifest);
}

TEST(DwposeVideo, OneJsonPerFrameThatTheReaderTakesBack) {
    test::PoseTempDir d;
    const auto m = synth_set(d.path / "set");
    const dw::Estimator est(kDir / "det.onnx", kDir / "pose.onnx");
    const auto r = dw::pose_video(est, m.rows[0].video, d.path / "kp", silent());
    EXPECT_EQ(r.frames, 4);
    EXPECT_EQ(r.width, 128);
    EXPECT_EQ(r.height, 128);
    std::cout << fmt::format(
        "[ pose ] {} frames {}x{}, {} with people, {} people, {:.2f} frames/s (synthetic models)\n", r.frames, r.width,
        r.height, r.frames_with_people, r.people, r.frames_per_second());
    std::cout << "[ pose ] " << r.stage_summary() << "\n";
    // Every stage timed; detector + pose are inside the per-frame time they split.
    EXPECT_GT(r.decode_seconds, 0.0);
    EXPECT_GT(r.detect_seconds, 0.0);
    EXPECT_GE(r.pose_seconds, 0.0);
    EXPECT_GT(r.write_seconds, 0.0);
    EXPECT_LE(r.detect_seconds + r.pose_seconds, r.seconds + 1e-9);
    EXPECT_GT(r.detect_seconds + r.pose_seconds, 0.5 * r.seconds);
    const auto seq = read_keypoints(d.path / "kp");
    ASSERT_EQ(seq.frames.size(), 4u);
    int64_t people = 0;
    for (const auto& f : seq.frames) {
        EXPECT_EQ(f.width, 128);
        EXPECT_EQ(f.height, 128);
        people += static_cast<int64_t>(f.people.size());
        for (const auto& p : f.people) {
            EXPECT_EQ(p.body.size(), 18u);
            EXPECT_EQ(p.hand_left.size(), 21u);
            EXPECT_EQ(p.hand_right.size(), 21u);
            EXPECT_EQ(p.face.size(), 68u);
            for (const auto& k : p.hand_left) EXPECT_GE(k.c, 0.0f);
        }
    }
    EXPECT_EQ(people, r.people);
    EXPECT_FALSE(fs::exists(d.path / "kp.partial"));
    // Rewriting a directory replaces it whole.
    EXPECT_NO_THROW(dw::pose_video(est, m.rows[1].video, d.path / "kp", silent()));
    EXPECT_EQ(read_keypoints(d.path / "kp").frames.size(), 4u);
}

TEST(DwposeVideo, NoPersonFramesAreRecordedEmpty) {
    test::PoseTempDir d;
    const auto m = synth_set(d.path / "set");
    const dw::Estimator blind(kDir / "det_blind.onnx", kDir / "pose.onnx");
    const auto r = dw::pose_video(blind, m.rows[0].video, d.path / "kp", silent());
    EXPECT_EQ(r.frames, 4);
    EXPECT_EQ(r.frames_with_people, 0);
    const auto seq = read_keypoints(d.path / "kp");
    ASSERT_EQ(seq.frames.size(), 4u);  // not dropped
    for (const auto& f : seq.frames) {
        EXPECT_TRUE(f.people.empty());
        EXPECT_EQ(f.width, 128);
    }
}

TEST(DwposeVideo, CorruptOrMissingVideoNamesTheFile) {
    test::PoseTempDir d;
    const dw::Estimator est(kDir / "det.onnx", kDir / "pose.onnx");
    test::write_text(d.path / "bad.mp4", "not a video at all");
    for (const auto& v : {d.path / "bad.mp4", d.path / "missing.mp4"}) {
        try {
            dw::pose_video(est, v, d.path / "kp", silent());
            ADD_FAILURE() << "no error for " << v;
        } catch (const DataError& e) {
            EXPECT_NE(std::string(e.what()).find(v.string()), std::string::npos) << e.what();
        }
    }
    EXPECT_FALSE(fs::exists(d.path / "kp"));
}

TEST(DwposeVideo, ManifestFillsKeypointsGoesPastBadRowsResumesAndFeedsTheScorer) {
    test::PoseTempDir d;
    auto m = synth_set(d.path / "set");
    const std::size_t good = m.rows.size();
    const auto kept = m.rows[0].keypoints;  // a row that already has keypoints stays as it is
    for (std::size_t i = 1; i < m.rows.size(); ++i) m.rows[i].keypoints.clear();
    // A truncated mp4 and a missing video.
    {
        std::ifstream in(m.rows[1].video, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        test::write_text(d.path / "set" / "truncated.mp4", bytes.substr(0, bytes.size() / 3));
    }
    auto bad = m.rows[1];
    bad.id = "truncated", bad.video = d.path / "set" / "truncated.mp4";
    auto gone = m.rows[1];
    gone.id = "gone", gone.video = d.path / "set" / "gone.mp4";
    m.rows.insert(m.rows.begin() + 1, bad);
    m.rows.push_back(gone);
    curate::write_manifest(d.path / "set" / "lacking_keypoints.csv", m);
    m = curate::read_manifest(d.path / "set" / "lacking_keypoints.csv");

    const dw::Estimator est(kDir / "det.onnx", kDir / "pose.onnx");
    const fs::path out = d.path / "poses", filled = d.path / "set" / "filled.csv";
    const auto r = dw::pose_manifest(m, est, out, filled, "models-v1", batch_opts(2));
    EXPECT_EQ(r.already, 1);
    EXPECT_EQ(r.batch.ok, static_cast<int64_t>(good - 1));
    EXPECT_EQ(r.batch.failed, 2);
    EXPECT_EQ(r.total.frames, 4 * static_cast<int64_t>(good - 1));
    std::cout << fmt::format("[ pose ] {}; {:.2f} frames/s\n", r.batch.summary(), r.total.frames_per_second());
    EXPECT_GT(r.total.detect_seconds, 0.0);  // the per-stage split summed over the rows
    EXPECT_LE(r.total.detect_seconds + r.total.pose_seconds, r.total.seconds + 1e-9);
    const auto failures = r.batch.failures();
    ASSERT_EQ(failures.size(), 2u);
    EXPECT_EQ(failures[0].id, "truncated");
    EXPECT_NE(failures[0].reason.find("truncated.mp4"), std::string::npos) << failures[0].reason;
    EXPECT_EQ(failures[1].id, "gone");
    EXPECT_NE(failures[1].reason.find("gone.mp4"), std::string::npos) << failures[1].reason;
    std::ifstream csv(out / "failures.csv");
    std::string csv_text((std::istreambuf_iterator<char>(csv)), std::istreambuf_iterator<char>());
    EXPECT_NE(csv_text.find("truncated,"), std::string::npos) << csv_text;
    EXPECT_NE(csv_text.find("gone,"), std::string::npos) << csv_text;

    const auto f = curate::read_manifest(filled);
    ASSERT_EQ(f.rows.size(), m.rows.size());  // no row dropped
    for (const auto& row : f.rows) {
        if (row.id == "truncated" || row.id == "gone") {
            EXPECT_TRUE(row.keypoints.empty()) << row.id;
        } else if (row.id == m.rows[0].id) {
            EXPECT_EQ(row.keypoints, kept);
        } else {
            EXPECT_EQ(row.keypoints, out / row.id) << row.id;
            EXPECT_EQ(read_keypoints(row.keypoints).frames.size(), 4u) << row.id;
        }
    }

    // Resume: finished rows are reused, the failed ones tried again.
    const auto again = dw::pose_manifest(m, est, out, filled, "models-v1", batch_opts(1));
    EXPECT_EQ(again.batch.resumed, static_cast<int64_t>(good - 1));
    EXPECT_EQ(again.batch.computed, 0);
    EXPECT_EQ(again.batch.failed, 2);
    // Other models: redone.
    const auto redo = dw::pose_manifest(m, est, out, filled, "models-v2", batch_opts(1));
    EXPECT_EQ(redo.batch.computed, static_cast<int64_t>(good - 1));

    // --fail-fast: the first bad row's error, naming its file.
    auto ff = batch_opts(1);
    ff.fail_fast = true;
    ff.restart = true;
    try {
        dw::pose_manifest(m, est, d.path / "ff", d.path / "ff.csv", "models-v1", ff);
        ADD_FAILURE() << "fail_fast did not throw";
    } catch (const DataError& e) {
        EXPECT_NE(std::string(e.what()).find("truncated.mp4"), std::string::npos) << e.what();
    }

    // The scorer consumes the keypoints written (the rows without keypoints fail there, named).
    curate::Manifest scored = f;
    const auto s = curate::score_batch(scored, curate::ScoreConfig{}, d.path / "scores", batch_opts(2));
    EXPECT_EQ(s.batch.ok, static_cast<int64_t>(good));
    EXPECT_EQ(s.scores.size(), good);
    EXPECT_EQ(s.batch.failed, 2);
}

}  // namespace
}  // namespace ipa::pose
