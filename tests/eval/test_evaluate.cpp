// The video pipeline (folders matched by name, hand crops from ground-truth keypoints)
// against skimage / DisCo numbers computed by scripts/gen_eval_fixtures.py on the same PNGs.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "eval_test_util.h"
#include "ipa/core/atomic_file.h"
#include "ipa/eval/evaluate.h"
#include "ipa/eval/report.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using ipa::test::eval_fixture;

const fs::path kVideos = eval_fixture("videos");

TEST(Evaluate, FramesAndHandCropsMatchReference) {
    const auto pairs = ipa::eval::pairs_from_dirs(kVideos / "gen", kVideos / "gt", kVideos / "keypoints");
    ASSERT_EQ(pairs.size(), 2u);
    const auto expected = nlohmann::json::parse(ipa::read_file(kVideos / "expected.json"))["videos"];
    const auto results = ipa::eval::evaluate_frames(pairs);
    double worst = 0;
    int64_t crops = 0;
    for (const auto& r : results) {
        const auto& e = expected.at(r.id);
        auto check = [&](const std::vector<double>& got, const char* key, double tol) {
            const auto ref = e.at(key).get<std::vector<double>>();
            ASSERT_EQ(got.size(), ref.size()) << r.id << " " << key;
            for (std::size_t i = 0; i < ref.size(); ++i) {
                EXPECT_NEAR(got[i], ref[i], tol) << r.id << " " << key << " " << i;
                worst = std::max(worst, std::abs(got[i] - ref[i]));
            }
        };
        check(r.psnr, "psnr", 1e-11);
        check(r.ssim, "ssim", 1e-13);
        check(r.hand_psnr, "hand_psnr", 1e-11);
        check(r.hand_ssim, "hand_ssim", 1e-13);
        crops += r.hand_crops;
    }
    EXPECT_EQ(crops, 10);  // 2 videos x (3 left + 2 right hands)
    std::printf("video pipeline: %lld hand crops, max |diff| vs Python %.3g\n", static_cast<long long>(crops), worst);
    const auto s = ipa::eval::summarize(results);
    EXPECT_EQ(s.frames, 6);
    EXPECT_GT(s.psnr, 10);
}

TEST(Evaluate, ManifestAndReport) {
    ipa::test::TempDir tmp;
    {
        std::ofstream m(tmp.path / "eval.csv");
        m << "id,generated,ground_truth,keypoints\n";
        for (const char* id : {"clip_a", "clip_b"})
            m << id << "," << (kVideos / "gen" / id).string() << "," << (kVideos / "gt" / id).string() << ","
              << (kVideos / "keypoints" / id).string() << "\n";
    }
    const auto pairs = ipa::eval::pairs_from_manifest(tmp.path / "eval.csv");
    ASSERT_EQ(pairs.size(), 2u);
    ipa::eval::Report rep;
    rep.videos = ipa::eval::evaluate_frames(pairs);
    ipa::eval::write_report(tmp.path / "a", rep);
    rep.videos.pop_back();
    ipa::eval::write_report(tmp.path / "b", rep);
    for (const char* f : {"metrics.json", "per_video.csv", "per_frame.csv", "index.html"})
        EXPECT_TRUE(fs::exists(tmp.path / "a" / f)) << f;
    const auto html = ipa::read_file(tmp.path / "a" / "index.html");
    // clip_b (stronger noise) has the lower SSIM: listed first
    EXPECT_LT(html.find("<td>clip_b</td>"), html.find("<td>clip_a</td>"));
    const auto cmp = ipa::eval::compare_reports(tmp.path / "a" / "metrics.json", tmp.path / "b" / "metrics.json");
    EXPECT_CONTAINS(cmp, "hand_ssim");
    EXPECT_CONTAINS(cmp, "videos");
    EXPECT_CONTAINS(cmp, "-1");  // one video fewer

    // A bar chart per metric next to index.html, shown by it, decodable by an independent decoder.
    for (const char* m : {"psnr", "ssim", "hand_psnr", "hand_ssim"}) {
        const auto file = std::string("chart_") + m + ".png";
        EXPECT_CONTAINS(html, "<img src=\"" + file + "\"");
        const cv::Mat img = cv::imread((tmp.path / "a" / file).string(), cv::IMREAD_UNCHANGED);
        ASSERT_FALSE(img.empty()) << file;
        EXPECT_EQ(img.type(), CV_8UC3);
        EXPECT_EQ(img.cols, 720);
        EXPECT_GT(cv::countNonZero(img.reshape(1) != 255), 1000) << file << ": bars, labels, ticks";
    }
    const auto charts = ipa::eval::write_compare_charts(tmp.path / "a" / "metrics.json",
                                                        tmp.path / "b" / "metrics.json", tmp.path / "cmp");
    ASSERT_EQ(charts.size(), 4u);
    for (const auto& f : charts) {
        EXPECT_EQ(f.parent_path(), tmp.path / "cmp");
        EXPECT_FALSE(cv::imread(f.string()).empty()) << f;
    }
    // A FID-only report has no per-video values: no charts, no chart section.
    ipa::eval::Report fid_only;
    fid_only.fid = ipa::eval::FidReport{};
    ipa::eval::write_report(tmp.path / "f", fid_only);
    EXPECT_FALSE(fs::exists(tmp.path / "f" / "chart_ssim.png"));
    EXPECT_EQ(ipa::read_file(tmp.path / "f" / "index.html").find("<img"), std::string::npos);
    EXPECT_CONTAINS(ipa::test::error_of<ipa::DataError>([&] {
                        ipa::eval::write_compare_charts(tmp.path / "f" / "metrics.json", tmp.path / "nope.json",
                                                        tmp.path / "cmp2");
                    }),
                    "nope.json");
}

TEST(Evaluate, ClearErrors) {
    ipa::test::TempDir tmp;
    fs::create_directories(tmp.path / "gen" / "clip_a");
    fs::copy(kVideos / "gen" / "clip_a", tmp.path / "gen" / "clip_a");
    fs::create_directories(tmp.path / "gen" / "extra");
    fs::copy(kVideos / "gen" / "clip_a", tmp.path / "gen" / "extra");
    auto msg = ipa::test::error_of<ipa::DataError>(
        [&] { ipa::eval::pairs_from_dirs(tmp.path / "gen", kVideos / "gt", kVideos / "keypoints"); });
    EXPECT_CONTAINS(msg, "only generated: [extra]");
    EXPECT_CONTAINS(msg, "only ground truth: [clip_b]");

    // a missing frame: frame counts differ
    fs::remove(tmp.path / "gen" / "clip_a" / "0002.png");
    ipa::eval::VideoPair p{"clip_a", tmp.path / "gen" / "clip_a", kVideos / "gt" / "clip_a", {}};
    msg = ipa::test::error_of<ipa::DataError>([&] { ipa::eval::evaluate_frames(p); });
    EXPECT_CONTAINS(msg, "2 frames in");
    EXPECT_CONTAINS(msg, (kVideos / "gt" / "clip_a").string());

    // a corrupt frame names the video and the file
    { std::ofstream(tmp.path / "gen" / "clip_a" / "0002.png") << "not a png"; }
    msg = ipa::test::error_of<ipa::DataError>([&] { ipa::eval::evaluate_frames(p); });
    EXPECT_CONTAINS(msg, "clip_a");
    EXPECT_CONTAINS(msg, "0002.png");

    // a missing video
    p.generated = tmp.path / "nope.mp4";
    msg = ipa::test::error_of<ipa::DataError>([&] { ipa::eval::evaluate_frames(p); });
    EXPECT_CONTAINS(msg, "nope.mp4");

    // missing Inception weights name the file
    EXPECT_CONTAINS(
        ipa::test::error_of<ipa::CheckpointError>([&] { ipa::eval::evaluate_fid({p}, tmp.path / "missing.pth"); }),
        "missing.pth");
}

}  // namespace
