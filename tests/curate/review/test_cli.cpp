// End to end through the ipa-curate binary on a tiny synthetic set: synth -> score -> pairs
// -> sheets -> mark/review -> index -> select, plus render-pose and masks, and exit codes;
// and the pose file helpers in-process.

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "../../common/run_command.h"
#include "../../common/test_util.h"
#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/curate/manifest.h"
#include "ipa/curate/review/decisions.h"
#include "ipa/curate/review/index_html.h"
#include "ipa/curate/review/pose_files.h"
#include "ipa/curate/review/ranking.h"
#include "ipa/curate/synth.h"
#include "ipa/io/safetensors.h"
#include "ipa/media/frames.h"
#include "ipa/pose/keypoints.h"
#include "ipa/pose/render.h"

namespace fs = std::filesystem;
namespace rv = ipa::curate::review;

namespace {

using Run = ipa::test::CommandResult;

// Runs ipa-curate with `args` (shell syntax), stdin from `input` (a file) if given.
Run curate(const std::string& args, const std::string& input = "") {
    std::string cmd = std::string(IPA_CURATE_BIN) + " --log-level warn " + args;
    cmd += input.empty() ? " </dev/null" : " <'" + input + "'";
    return ipa::test::run_command(cmd);
}

std::string q(const fs::path& p) { return ipa::test::shell_quote(p); }

}  // namespace

TEST(CurateCli, SyntheticRoundTrip) {
    ipa::test::TempDir dir("cli");
    const fs::path syn = dir.path / "syn", scores = dir.path / "scores", sheets = dir.path / "sheets";
    auto r = curate("synth --out " + q(syn) + " --clips 2 --candidates 2 --frames 9 --size 64x64 --seed 3");
    ASSERT_EQ(r.rc, 0) << r.out;
    const fs::path manifest = syn / "candidates.csv";
    EXPECT_NE(r.out.find(manifest.string()), std::string::npos) << r.out;
    const auto m = ipa::curate::read_manifest(manifest);
    ASSERT_EQ(m.rows.size(), 4u);

    r = curate("score --manifest " + q(manifest) + " --out " + q(scores));
    ASSERT_EQ(r.rc, 0) << r.out;
    const fs::path scores_json = scores / "scores.json";
    ASSERT_TRUE(fs::exists(scores_json));
    r = curate("pairs --scores " + q(scores_json) + " --window 4");
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_FALSE(r.out.empty());

    r = curate("sheets --manifest " + q(manifest) + " --scores " + q(scores_json) + " --out " + q(sheets) +
               " --frames 4 --tile-height 64");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("wrote 4 contact sheets"), std::string::npos) << r.out;
    for (const auto& row : m.rows) {
        const cv::Mat png = cv::imread((sheets / rv::sheet_filename(row.id)).string());
        ASSERT_FALSE(png.empty()) << row.id;
        EXPECT_EQ(png.cols, 520);  // 4 tiles of 64 + gaps are narrower than the minimum width
    }

    const fs::path dec = dir.path / "decisions.csv";
    const std::string first = m.rows[0].id, second = m.rows[1].id;
    r = curate("mark " + first + " good --note 'crisp, clean' --manifest " + q(manifest) + " --decisions " + q(dec));
    ASSERT_EQ(r.rc, 0) << r.out;
    r = curate("mark not_a_candidate good --manifest " + q(manifest) + " --decisions " + q(dec));
    EXPECT_EQ(r.rc, 5) << r.out;
    EXPECT_NE(r.out.find("not in manifest"), std::string::npos) << r.out;

    // Review through a pipe: three undecided candidates, decide two, quit; then resume.
    const fs::path keys = dir.path / "keys.txt";
    ipa::write_file_atomic(keys, "b\nn\nthumb melts\nb\nq\n");
    r = curate("review --manifest " + q(manifest) + " --scores " + q(scores_json) + " --decisions " + q(dec) +
                   " --sheets " + q(sheets) + " --reviewer ci",
               keys.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("3 to review"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("1 of 4 candidates still undecided"), std::string::npos) << r.out;
    ipa::write_file_atomic(keys, "s\n");
    r = curate("review --manifest " + q(manifest) + " --scores " + q(scores_json) + " --decisions " + q(dec),
               keys.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("1 to review"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("all candidates decided"), std::string::npos) << r.out;
    const auto log = rv::DecisionLog::read(dec);
    EXPECT_EQ(log.records().size(), 4u);
    EXPECT_EQ(log.counts().at("good"), 1);
    EXPECT_EQ(log.counts().at("bad"), 2);
    EXPECT_EQ(log.counts().at("skip"), 1);

    const fs::path page = dir.path / "site" / "index.html";
    r = curate("index --manifest " + q(manifest) + " --scores " + q(scores_json) + " --sheets " + q(sheets) +
               " --decisions " + q(dec) + " --out " + q(page));
    ASSERT_EQ(r.rc, 0) << r.out;
    const std::string html = ipa::read_file(page);
    for (const auto& row : m.rows) EXPECT_NE(html.find(rv::html_escape(row.id)), std::string::npos);
    EXPECT_NE(html.find("1 good, 2 bad, 1 skip, 0 undecided"), std::string::npos);

    const fs::path train = dir.path / "out" / "train.csv";
    r = curate("select --manifest " + q(manifest) + " --decisions " + q(dec) + " --out " + q(train));
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("selected 1 (25.00% of candidates)"), std::string::npos) << r.out;
    const auto sel = ipa::curate::read_manifest(train);
    ASSERT_EQ(sel.rows.size(), 1u);
    EXPECT_EQ(sel.rows[0].id, first);
    EXPECT_EQ(sel.columns, m.columns);
    EXPECT_TRUE(fs::exists(sel.rows[0].video));  // paths still resolve from the new location
    EXPECT_EQ(fs::canonical(sel.rows[0].video), fs::canonical(m.rows[0].video));
}

TEST(CurateCli, RenderPoseAndMasks) {
    ipa::test::TempDir dir("cli");
    ipa::curate::SynthOptions so;  // in-process: only the pose commands go through the binary here
    so.clips = so.candidates = 1;
    so.frames = 9;
    so.height = so.width = 64;
    const auto m = ipa::curate::read_manifest(ipa::curate::synth_dataset(dir.path / "syn", so).manifest);
    const fs::path kp = m.rows.at(0).keypoints;

    auto r = curate("render-pose --keypoints " + q(kp) + " --out " + q(dir.path / "pose"));
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("9 frames, 64x64"), std::string::npos) << r.out;
    const auto frames = ipa::media::read_frames_bgr(dir.path / "pose");  // PNG frames: lossless
    ASSERT_EQ(frames.size(), 9u);
    EXPECT_EQ(frames[0].size(), cv::Size(64, 64));
    EXPECT_GT(cv::countNonZero(frames[0].reshape(1)), 50);  // the skeleton is drawn

    r = curate("masks --keypoints " + q(kp) + " --out " + q(dir.path / "masks") + " --shape hull --padding 0.5");
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto st = ipa::io::SafetensorsFile::open(dir.path / "masks" / "hand_mask_latent.safetensors");
    const auto mask = st.tensor("hand_mask");
    EXPECT_EQ(mask.sizes().vec(), (std::vector<int64_t>{3, 8, 8}));
    EXPECT_GT(mask.sum().item<double>(), 0.0);
    EXPECT_TRUE(((mask == 0) | (mask == 1)).all().item<bool>());
    EXPECT_EQ(ipa::media::read_frames_bgr(dir.path / "masks" / "hand_mask.mp4").size(), 9u);

    r = curate("masks --keypoints " + q(kp) + " --out x --shape blob");
    EXPECT_EQ(r.rc, 3) << r.out;  // ConfigError
    EXPECT_NE(r.out.find("--shape 'blob': expected box or hull"), std::string::npos) << r.out;
}

TEST(PoseFiles, SizesOptionsAndErrors) {
    ipa::test::TempDir dir("posefiles");
    EXPECT_EQ(rv::parse_size("480x832", "--size"), std::make_pair(480, 832));
    EXPECT_THROW(rv::parse_size("64by64", "--size"), ipa::ConfigError);
    EXPECT_THROW(rv::parse_size("0x64", "--size"), ipa::ConfigError);
    EXPECT_THROW(rv::parse_size("64x64x", "--size"), ipa::ConfigError);

    ipa::curate::SynthOptions so;
    so.clips = so.candidates = 1;
    so.frames = 6;  // not 1 + 4k
    so.height = so.width = 64;
    so.video_ext = "";
    const auto m = ipa::curate::read_manifest(ipa::curate::synth_dataset(dir.path / "syn", so).manifest);
    const fs::path kp = m.rows.at(0).keypoints;

    rv::RenderPoseFileOptions ro;
    ro.size = std::make_pair(32, 48);
    ro.render.hands = false;
    const auto rep = rv::render_pose_file(kp, dir.path / "p", ro);
    EXPECT_EQ(rep.frames, 6);
    const auto small = ipa::media::read_frames_bgr(dir.path / "p");
    ASSERT_EQ(small.size(), 6u);
    EXPECT_EQ(small[0].size(), cv::Size(48, 32));
    // Without hands the render equals pose::render_pose with hands off.
    const auto seq = ipa::pose::read_keypoints(kp);
    ipa::pose::RenderOptions no_hands;
    no_hands.hands = false;
    EXPECT_EQ(cv::norm(small[2], ipa::pose::render_pose(seq.frames[2], 32, 48, no_hands), cv::NORM_INF), 0.0);

    try {
        rv::write_hand_mask_files(kp, dir.path / "m", {});
        FAIL() << "6 frames accepted";
    } catch (const ipa::DataError& e) {
        EXPECT_NE(std::string(e.what()).find("needs 1 + 4k frames"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir.path / "m"));  // nothing written
    EXPECT_THROW(rv::render_pose_file(dir.path / "nope", dir.path / "x.mp4", {}), ipa::DataError);
}
