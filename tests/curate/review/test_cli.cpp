// End to end through the ipa-curate binary on a tiny synthetic set: synth -> score -> pairs
// -> sheets -> mark/review -> index -> select, plus render-pose and masks, and exit codes.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <opencv2/imgcodecs.hpp>

#include "../../common/test_util.h"
#include "ipa/core/atomic_file.h"
#include "ipa/curate/manifest.h"
#include "ipa/curate/review/decisions.h"
#include "ipa/curate/review/index_html.h"
#include "ipa/curate/review/ranking.h"
#include "ipa/io/safetensors.h"
#include "ipa/media/frames.h"

namespace fs = std::filesystem;
namespace rv = ipa::curate::review;

namespace {

struct Run {
    int rc = -1;
    std::string out;
};

// Runs ipa-curate with `args` (shell syntax), stdin from `input` (a file) if given.
Run curate(const std::string& args, const std::string& input = "") {
    std::string cmd = std::string(IPA_CURATE_BIN) + " --log-level warn " + args;
    cmd += input.empty() ? " </dev/null" : " <'" + input + "'";
    cmd += " 2>&1";
    Run r;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
    const int status = ::pclose(p);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

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
    r = curate("mark " + first + " great --manifest " + q(manifest) + " --decisions " + q(dec));
    EXPECT_EQ(r.rc, 5) << r.out;
    EXPECT_NE(r.out.find("unknown decision 'great'"), std::string::npos) << r.out;

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
    r = curate("select --manifest " + q(manifest) + " --decisions " + q(dec) + " --min-score 0.5 --out " + q(train));
    EXPECT_EQ(r.rc, 3) << r.out;  // --min-score without --scores
}

TEST(CurateCli, RenderPoseAndMasks) {
    ipa::test::TempDir dir("cli");
    const fs::path syn = dir.path / "syn";
    ASSERT_EQ(curate("synth --out " + q(syn) + " --clips 1 --candidates 1 --frames 9 --size 64x64").rc, 0);
    const auto m = ipa::curate::read_manifest(syn / "candidates.csv");
    const fs::path kp = m.rows.at(0).keypoints;

    auto r = curate("render-pose --keypoints " + q(kp) + " --out " + q(dir.path / "pose"));
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto frames = ipa::media::read_frames_bgr(dir.path / "pose");  // PNG frames: lossless
    ASSERT_EQ(frames.size(), 9u);
    EXPECT_EQ(frames[0].size(), cv::Size(64, 64));
    EXPECT_GT(cv::countNonZero(frames[0].reshape(1)), 50);  // the skeleton is drawn
    r = curate("render-pose --keypoints " + q(kp) + " --out " + q(dir.path / "p.mp4") + " --size 32x48 --no-hands");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("9 frames, 32x48"), std::string::npos) << r.out;

    r = curate("masks --keypoints " + q(kp) + " --out " + q(dir.path / "masks") + " --shape hull --padding 0.5");
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto st = ipa::io::SafetensorsFile::open(dir.path / "masks" / "hand_mask_latent.safetensors");
    const auto mask = st.tensor("hand_mask");
    EXPECT_EQ(mask.sizes().vec(), (std::vector<int64_t>{3, 8, 8}));
    EXPECT_GT(mask.sum().item<double>(), 0.0);
    EXPECT_TRUE(((mask == 0) | (mask == 1)).all().item<bool>());
    EXPECT_TRUE(fs::exists(dir.path / "masks" / "hand_mask.mp4"));

    EXPECT_EQ(curate("masks --keypoints " + q(kp) + " --out x --size 63x64").rc, 5);  // not a multiple of 8
    EXPECT_EQ(curate("masks --keypoints " + q(kp) + " --out x --shape blob").rc, 3);
    EXPECT_EQ(curate("render-pose --keypoints " + q(kp) + " --out x.mp4 --size 64by64").rc, 3);
    EXPECT_EQ(curate("render-pose --keypoints " + q(dir.path / "nope") + " --out x.mp4").rc, 5);
    EXPECT_NE(curate("frobnicate").rc, 0);
}
