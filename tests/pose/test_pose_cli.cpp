// `ipa-curate pose` through the real binary on the synthetic DWPose models
// (tests/fixtures/dwpose): one video, a manifest with a corrupt row (exit 7, the row reported,
// the others filled, `ipa-curate score` consumes the result), and bad input answered with an
// error that names the file.

#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "ipa/curate/batch.h"
#include "ipa/curate/manifest.h"
#include "ipa/curate/synth.h"
#include "ipa/pose/keypoints.h"
#include "pose_test_util.h"
#include "run_command.h"

namespace ipa::pose {
namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::path(IPA_FIXTURES_DIR) / "dwpose";

using Cli = ipa::test::CommandResult;

/// Runs `ipa-curate args` (in `cwd` when given).
Cli curate(const std::string& args, const fs::path& cwd = {}) {
    const std::string cd = cwd.empty() ? "" : "cd " + ipa::test::shell_quote(cwd) + " && ";
    return ipa::test::run_command(cd + std::string(IPA_CURATE_BIN) + " --log-level warn " + args + " </dev/null");
}

std::string q(const fs::path& p) { return ipa::test::shell_quote(p); }

std::string models() { return " --det " + q(kDir / "det.onnx") + " --pose " + q(kDir / "pose.onnx"); }

/// 1 clip x 3 candidates of 3 frames (128x128 mp4).
curate::Manifest synth_set(const fs::path& dir) {
    curate::SynthOptions s;
    s.clips = 1, s.candidates = 3, s.frames = 3, s.height = 128, s.width = 128;
    return curate::read_manifest(curate::synth_dataset(dir, s).manifest);
}

int json_files(const fs::path& dir) {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".json" ? 1 : 0;
    return n;
}

TEST(PoseCli, VideoWritesOneJsonPerFrameAndReportsEachStage) {
    test::PoseTempDir d;
    const auto m = synth_set(d.path / "set");
    const auto r = curate("pose --video " + q(m.rows[0].video) + " --out " + q(d.path / "kp") + models());
    std::cout << r.out;
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(json_files(d.path / "kp"), 3);
    EXPECT_EQ(read_keypoints(d.path / "kp").frames.size(), 3u);
    // "... 3 frames 128x128 ...; X frames/s on detection + pose; decode X s, detector X s, pose X s, write X s)"
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(3 frames 128x128)"))) << r.out;
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"([0-9.]+ frames/s on detection \+ pose; decode [0-9.]+ s, )"
                                                    R"(detector [0-9.]+ s, pose [0-9.]+ s, write [0-9.]+ s\))")))
        << r.out;
}

TEST(PoseCli, ManifestGoesPastACorruptRowExitsSevenAndTheScorerConsumesTheRest) {
    test::PoseTempDir d;
    auto m = synth_set(d.path / "set");
    ASSERT_EQ(m.rows.size(), 3u);
    for (auto& row : m.rows) row.keypoints.clear();
    test::write_text(m.rows[1].video, "these bytes are not a video");
    const fs::path in = d.path / "set" / "lacking.csv", filled = d.path / "set" / "filled.csv", out = d.path / "poses";
    curate::write_manifest(in, m);

    // --out relative to the working directory, which is not the manifests' directory.
    const auto r = curate(
        "pose --manifest " + q(in) + " --manifest-out " + q(filled) + " --out poses --jobs 2" + models(), d.path);
    std::cout << r.out;
    EXPECT_EQ(r.rc, curate::kExitRowsFailed) << r.out;
    EXPECT_NE(r.out.find("failed " + m.rows[1].id + ": "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(m.rows[1].video.string()), std::string::npos) << r.out;  // the reason names the file
    EXPECT_NE(r.out.find("summed over rows: decode"), std::string::npos) << r.out;
    std::ifstream fcsv(out / "failures.csv");
    const std::string failures((std::istreambuf_iterator<char>(fcsv)), std::istreambuf_iterator<char>());
    EXPECT_NE(failures.find(m.rows[1].id + ","), std::string::npos) << failures;

    const auto f = curate::read_manifest(filled);
    ASSERT_EQ(f.rows.size(), 3u);  // no row dropped
    EXPECT_TRUE(f.rows[1].keypoints.empty());
    for (const std::size_t i : {std::size_t{0}, std::size_t{2}}) {
        EXPECT_EQ(f.rows[i].keypoints, out / f.rows[i].id);
        EXPECT_EQ(json_files(f.rows[i].keypoints), 3) << f.rows[i].id;
    }
    EXPECT_EQ(curate::read_manifest(in).rows[0].keypoints, "");  // --manifest-out: the input is left alone

    // A rerun resumes: nothing is estimated again, the bad row is tried again and fails again.
    const auto again = curate("pose --manifest " + q(in) + " --manifest-out " + q(filled) + " --out " + q(out) +
                              " --jobs 1" + models());  // the same directory, named absolutely
    EXPECT_EQ(again.rc, curate::kExitRowsFailed) << again.out;
    EXPECT_TRUE(std::regex_search(again.out, std::regex(R"(\b2 resumed\b)"))) << again.out;

    // The scorer reads the keypoints written; the row without keypoints fails there, named.
    const auto s = curate("score --manifest " + q(filled) + " --out " + q(d.path / "scores") + " --jobs 2");
    EXPECT_EQ(s.rc, curate::kExitRowsFailed) << s.out;
    EXPECT_NE(s.out.find("failed " + m.rows[1].id + ": "), std::string::npos) << s.out;
    EXPECT_TRUE(std::regex_search(s.out, std::regex(R"(\b2 ok\b)"))) << s.out;
}

TEST(PoseCli, BadInputNamesTheFile) {
    test::PoseTempDir d;
    const auto m = synth_set(d.path / "set");
    const std::string video = " --video " + q(m.rows[0].video) + " --out " + q(d.path / "kp");
    // A missing model file, a file that is not ONNX, the two models swapped.
    test::write_text(d.path / "junk.onnx", "not a protobuf at all");
    for (const auto& [args, named] : std::vector<std::pair<std::string, fs::path>>{
             {" --det " + q(d.path / "nope.onnx") + " --pose " + q(kDir / "pose.onnx"), d.path / "nope.onnx"},
             {" --det " + q(kDir / "det.onnx") + " --pose " + q(d.path / "junk.onnx"), d.path / "junk.onnx"},
             {" --det " + q(kDir / "pose.onnx") + " --pose " + q(kDir / "det.onnx"), kDir / "pose.onnx"},
         }) {
        const auto r = curate("pose" + video + args);
        EXPECT_NE(r.rc, 0) << args << "\n" << r.out;
        EXPECT_NE(r.out.find(named.string()), std::string::npos) << args << "\n" << r.out;
        EXPECT_FALSE(fs::exists(d.path / "kp")) << args;
    }
    // A corrupt video: named, nothing written.
    test::write_text(d.path / "bad.mp4", "not a video");
    const auto bad = curate("pose --video " + q(d.path / "bad.mp4") + " --out " + q(d.path / "kp") + models());
    EXPECT_NE(bad.rc, 0) << bad.out;
    EXPECT_NE(bad.out.find((d.path / "bad.mp4").string()), std::string::npos) << bad.out;
    EXPECT_FALSE(fs::exists(d.path / "kp"));
    // Exactly one of --video and --manifest.
    const auto both = curate("pose" + video + " --manifest " + q(d.path / "set" / "candidates.csv") + models());
    EXPECT_NE(both.rc, 0);
    EXPECT_NE(both.out.find("exactly one of --video and --manifest"), std::string::npos) << both.out;
}

}  // namespace
}  // namespace ipa::pose
