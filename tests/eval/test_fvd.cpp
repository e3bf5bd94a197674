// FVD (StyleGAN-V's fvd2048_16f pipeline) with a tiny stand-in of StyleGAN-V's I3D TorchScript
// detector (same forward signature and call), against the reference pipeline re-implemented in
// scripts/gen_fvd_fixtures.py: float64 features of the same module, FeatureStats and scipy's sqrtm.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "eval_test_util.h"
#include "ipa/core/error.h"
#include "ipa/eval/fvd.h"
#include "ipa/eval/report.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using ipa::test::eval_fixture;

/// Writes the uint8 RGB videos [N, T, H, W, 3] as PNG frame folders <dir>/<i>/%04d.png.
std::vector<fs::path> write_videos(const at::Tensor& videos, const fs::path& dir, int64_t frames = -1) {
    std::vector<fs::path> out;
    for (int64_t i = 0; i < videos.size(0); ++i) {
        const auto d = dir / fmt::format("v{:02d}", i);
        fs::create_directories(d);
        const int64_t t_end = frames < 0 ? videos.size(1) : frames;
        for (int64_t t = 0; t < t_end; ++t) {
            cv::Mat bgr;
            cv::cvtColor(ipa::test::to_mat(videos[i][t]), bgr, cv::COLOR_RGB2BGR);
            cv::imwrite((d / fmt::format("{:04d}.png", t)).string(), bgr);
        }
        out.push_back(d);
    }
    return out;
}

std::vector<ipa::eval::VideoPair> make_pairs(const std::vector<fs::path>& gen, const std::vector<fs::path>& gt) {
    std::vector<ipa::eval::VideoPair> pairs;
    for (std::size_t i = 0; i < gen.size(); ++i) pairs.push_back({gen[i].filename().string(), gen[i], gt[i], {}});
    return pairs;
}

struct FvdFixture : ::testing::Test {
    ipa::io::SafetensorsFile f = ipa::io::SafetensorsFile::open(eval_fixture("fvd_cases.safetensors"));
    fs::path module = eval_fixture("fvd_tiny_i3d.pt");
};

TEST_F(FvdFixture, FeaturesAndDistanceMatchStyleGanV) {
    ipa::test::TempDir tmp;
    const auto gen = write_videos(f.tensor("gen.videos"), tmp.path / "gen");
    const auto gt = write_videos(f.tensor("real.videos"), tmp.path / "gt");
    const auto det = ipa::eval::VideoDetector::load(module);
    // Bound: 10x the float32-vs-float64 floor of the same module in PyTorch (relative to the
    // largest feature), measured by the generator.
    const double floor = ipa::test::meta_double(f, "floor_f32_rel");
    const double tol = 10 * floor;
    for (const auto& [name, paths] : {std::pair{"gen", gen}, std::pair{"real", gt}}) {
        std::vector<at::Tensor> clips;
        for (const auto& p : paths) clips.push_back(ipa::eval::first_clip(p, p.filename().string(), name, 16));
        const auto got = det.features(torch::stack(clips));
        const auto ref = f.tensor(std::string(name) + ".features");
        ASSERT_EQ(got.sizes(), ref.sizes());
        const double rel = ((got - ref).abs().max() / ref.abs().max()).item<double>();
        std::printf("FVD features %s: max |ipa f32 - reference f64| / max |f| = %.3g (floor %.3g, bound %.3g)\n", name,
                    rel, floor, tol);
        EXPECT_LT(rel, tol) << name;
        EXPECT_GT(ref.abs().max().item<double>(), 1e-3);  // a real signal
    }
    // The whole pipeline: PNG folders -> first 16 of 17 frames -> detector -> FeatureStats -> distance.
    ipa::eval::FvdOptions opts;
    opts.batch_size = 3;  // batches of 3, 3, 2 clips
    const auto rep = ipa::eval::evaluate_fvd(make_pairs(gen, gt), module, opts);
    const double ref = ipa::test::meta_double(f, "fvd");
    // Bound: 10x the larger of the generator's FVD floor (float32 features vs float64, relative)
    // and its feature floor.
    const double fvd_tol = 10 * std::max(ipa::test::meta_double(f, "floor_fvd_f32_rel"), floor);
    const double rel = std::abs(rep.fvd - ref) / std::abs(ref);
    std::printf("FVD %.10g vs StyleGAN-V pipeline %.10g: rel %.3g (bound %.3g)\n", rep.fvd, ref, rel, fvd_tol);
    EXPECT_LT(rel, fvd_tol);
    EXPECT_EQ(rep.generated_clips, 8);
    EXPECT_EQ(rep.ground_truth_clips, 8);
    EXPECT_EQ(rep.feature_dim, 4);
    EXPECT_EQ(rep.num_frames, 16);
    EXPECT_FALSE(rep.eps_offset_used);

    // The report carries it in its summary (metrics.json, read back as ipa-eval compare does).
    ipa::eval::Report report;
    report.fvd = rep;
    const auto written = ipa::test::written_summary_value(report, tmp.path / "report", "fvd");
    ASSERT_TRUE(written.has_value());
    EXPECT_DOUBLE_EQ(*written, rep.fvd);  // the same run's number, written and read back

    // Identical sets: FVD ~ 0 (the root of Σ² is Σ up to rounding).
    const auto same = ipa::eval::evaluate_fvd(make_pairs(gt, gt), module);
    EXPECT_LT(std::abs(same.fvd), 1e-9 * ref + 1e-12);
}

TEST_F(FvdFixture, StatisticsAreStyleGanVFeatureStats) {
    // Divided by n (not n - 1), as metric_utils.FeatureStats.get_mean_cov.
    const auto x = torch::tensor({{1.0, 2.0}, {3.0, 5.0}, {-1.0, 0.5}}, torch::kFloat64);
    const auto s = ipa::eval::fvd_feature_statistics(x, "test");
    const auto mu = x.mean(0);
    const auto c = x - mu;
    EXPECT_TRUE(torch::allclose(s.sigma, c.t().matmul(c) / 3.0, 0, 1e-15));
    EXPECT_TRUE(torch::allclose(s.mu, mu, 0, 1e-15));
}

TEST_F(FvdFixture, ErrorsNameTheProblem) {
    using ipa::test::error_of;
    // Missing and corrupt TorchScript files.
    auto msg =
        error_of<ipa::CheckpointError>([] { ipa::eval::VideoDetector::load("/nonexistent/i3d_torchscript.pt"); });
    EXPECT_CONTAINS(msg, "/nonexistent/i3d_torchscript.pt");
    EXPECT_CONTAINS(msg, "does not exist");
    ipa::test::TempDir tmp;
    { std::ofstream(tmp.path / "corrupt.pt") << "not a zip archive"; }
    msg = error_of<ipa::CheckpointError>([&] { ipa::eval::VideoDetector::load(tmp.path / "corrupt.pt"); });
    EXPECT_CONTAINS(msg, "corrupt.pt");
    EXPECT_CONTAINS(msg, "TorchScript");
    // A module with another call convention, and one returning the wrong shape.
    msg = error_of<ipa::CheckpointError>([] { ipa::eval::VideoDetector::load(eval_fixture("fvd_no_flags.pt")); });
    EXPECT_CONTAINS(msg, "fvd_no_flags.pt");
    EXPECT_CONTAINS(msg, "rescale: bool, resize: bool, return_features: bool");
    const auto gen = write_videos(f.tensor("gen.videos").narrow(0, 0, 3), tmp.path / "gen");
    const auto gt = write_videos(f.tensor("real.videos").narrow(0, 0, 3), tmp.path / "gt");
    msg = error_of<ipa::DataError>(
        [&] { ipa::eval::evaluate_fvd(make_pairs(gen, gt), eval_fixture("fvd_wrong_shape.pt")); });
    EXPECT_CONTAINS(msg, "fvd_wrong_shape.pt");
    EXPECT_CONTAINS(msg, "expected [3, D]");
    // A video shorter than a clip.
    const auto short_gt = write_videos(f.tensor("real.videos").narrow(0, 0, 3), tmp.path / "short", 10);
    msg = error_of<ipa::DataError>([&] { ipa::eval::evaluate_fvd(make_pairs(gen, short_gt), module); });
    EXPECT_CONTAINS(msg, "10 frames");
    EXPECT_CONTAINS(msg, "16-frame clip");
    EXPECT_CONTAINS(msg, "v00");
    // Too few clips for a covariance.
    msg = error_of<ipa::DataError>([&] { ipa::eval::evaluate_fvd(make_pairs({gen[0]}, {gt[0]}), module); });
    EXPECT_CONTAINS(msg, "give 1 clip(s)");
    EXPECT_CONTAINS(msg, "at least 2");
}

}  // namespace
