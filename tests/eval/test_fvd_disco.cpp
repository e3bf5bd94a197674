// DisCo's own FVD ('fvd' = FVD-3DInception) against scripts/gen_disco_i3d_fixtures.py: DisCo's
// InceptionI3d (imported from DisCo's tool/metrics/inception3d.py) with seeded weights in the real
// key layout, run in float64 on DisCo's preprocessing of small videos, and DisCo's Fréchet distance.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "eval_test_util.h"
#include "ipa/core/error.h"
#include "ipa/eval/fvd_disco.h"
#include "ipa/eval/report.h"
#include "ipa/io/checkpoint.h"
#include "test_util.h"

namespace {

using ipa::test::eval_fixture;

TEST(FvdDisco, SamePadding) {
    // pytorch-i3d compute_pad: k − s when the size divides by the stride, else k − size mod s.
    EXPECT_EQ(ipa::eval::i3d_same_pad(7, 2, 224), 5);  // Conv3d_1a on 224: 2 in front, 3 behind
    EXPECT_EQ(ipa::eval::i3d_same_pad(7, 2, 9), 6);    // odd: 3 and 3
    EXPECT_EQ(ipa::eval::i3d_same_pad(3, 1, 5), 2);
    EXPECT_EQ(ipa::eval::i3d_same_pad(2, 2, 1), 1);  // MaxPool3d_5a on one time step
    EXPECT_EQ(ipa::eval::i3d_same_pad(1, 1, 7), 0);
    EXPECT_EQ(ipa::eval::i3d_same_pad(3, 2, 2), 1);
}

TEST(FvdDisco, PreprocessingMatchesDisco) {
    const auto f = ipa::io::SafetensorsFile::open(eval_fixture("fvd_disco_cases.safetensors"));
    const auto clip = ipa::eval::fvd_disco_clip(f.tensor("gen.0.video"));  // [9, 28, 22, 3]
    ASSERT_EQ(clip.sizes(), (std::vector<int64_t>{1, 3, 9, 224, 224}));
    const auto got = clip[0].index_select(1, torch::tensor({0, 8})).narrow(2, 0, 6).narrow(3, 0, 6);
    const auto ref = f.tensor("gen.0.clip_crop");
    // The same float32 operations as PIL and torch: at most an ulp of values in [−1, 1].
    const double err = (got.to(torch::kFloat64) - ref.to(torch::kFloat64)).abs().max().item<double>();
    std::printf("DisCo FVD preprocessing: max |ipa - DisCo| = %.3g\n", err);
    EXPECT_LE(err, 2 * std::numeric_limits<float>::epsilon());
    EXPECT_GT(ref.abs().max().item<double>(), 0.1);
}

TEST(FvdDisco, FeaturesAndFvdFromFrameFoldersMatchDisco) {
    const auto f = ipa::io::SafetensorsFile::open(eval_fixture("fvd_disco_cases.safetensors"));
    ipa::test::TempDir tmp;
    std::vector<ipa::eval::VideoPair> pairs;
    for (int64_t i = 0; i < 2; ++i) {
        ipa::eval::VideoPair p{fmt::format("v{}", i),
                               tmp.path / "gen" / fmt::format("v{}", i),
                               tmp.path / "gt" / fmt::format("v{}", i),
                               {}};
        for (const auto& [key, dir] : {std::pair{fmt::format("gen.{}.video", i), p.generated},
                                       std::pair{fmt::format("real.{}.video", i), p.ground_truth}}) {
            std::filesystem::create_directories(dir);
            const auto v = f.tensor(key);
            for (int64_t t = 0; t < v.size(0); ++t) {
                cv::Mat bgr;
                cv::cvtColor(ipa::test::to_mat(v[t]), bgr, cv::COLOR_RGB2BGR);
                cv::imwrite((dir / fmt::format("{:04d}.png", t)).string(), bgr);
            }
        }
        pairs.push_back(p);
    }
    torch::NoGradGuard ng;
    ipa::eval::InceptionI3d net;
    ipa::eval::load_inception_i3d(net, eval_fixture("fvd_disco_i3d_seeded.pth"));
    const auto feats = ipa::eval::fvd_disco_features(pairs, net);
    EXPECT_EQ(feats.generated_frames, 9 + 2);
    EXPECT_EQ(feats.ground_truth_frames, 3 + 4);
    const double floor = ipa::test::meta_double(f, "floor_f32_rel");
    const double tol = 10 * floor;  // 10x DisCo's own float32-vs-float64 floor
    for (const auto& [got, key] :
         {std::pair{feats.generated, "gen.features"}, std::pair{feats.ground_truth, "real.features"}}) {
        const auto ref = f.tensor(key);
        ASSERT_EQ(got.sizes(), ref.sizes());
        const double rel = ((got - ref).abs().max() / ref.abs().max()).item<double>();
        std::printf("DisCo FVD features %s: max |ipa f32 - DisCo f64| / max |f| = %.3g (floor %.3g, bound %.3g)\n", key,
                    rel, floor, tol);
        EXPECT_LT(rel, tol) << key;
        EXPECT_GT(ref.abs().max().item<double>(), 1.0);
    }
    const auto rep = ipa::eval::fvd_disco_from_features(feats);
    const double ref_fvd = ipa::test::meta_double(f, "fvd");
    const double fvd_floor = ipa::test::meta_double(f, "floor_fvd_f32_rel");
    const double rel = std::abs(rep.fvd - ref_fvd) / std::abs(ref_fvd);
    std::printf("DisCo FVD %.10g vs DisCo float64 %.10g: rel %.3g (floor %.3g, bound %.3g)\n", rep.fvd, ref_fvd, rel,
                fvd_floor, 10 * fvd_floor);
    EXPECT_LT(rel, 10 * fvd_floor);
    EXPECT_EQ(rep.generated_videos, 2);
    EXPECT_EQ(rep.ground_truth_videos, 2);

    ipa::eval::Report report;
    report.fvd_disco = rep;
    const auto written = ipa::test::written_summary_value(report, tmp.path / "report", "fvd_disco");
    ASSERT_TRUE(written.has_value());
    EXPECT_DOUBLE_EQ(*written, rep.fvd);
    EXPECT_FALSE(ipa::test::written_summary_value(report, tmp.path / "report", "fvd").has_value());
}

TEST(FvdDisco, TooFewVideos) {
    ipa::eval::FvdDiscoFeatures f;
    f.generated = torch::rand({1, 400}, torch::kFloat64);
    f.ground_truth = torch::rand({3, 400}, torch::kFloat64);
    const auto msg = ipa::test::error_of<ipa::DataError>([&] { ipa::eval::fvd_disco_from_features(f); });
    EXPECT_CONTAINS(msg, "generated videos");
}

TEST(FvdDisco, WeightErrorsNameTheFile) {
    auto msg = ipa::test::error_of<ipa::CheckpointError>([] {
        ipa::eval::InceptionI3d net;
        ipa::eval::load_inception_i3d(net, "/nonexistent/i3d_pretrained_400.pt");
    });
    EXPECT_CONTAINS(msg, "/nonexistent/i3d_pretrained_400.pt");
    const auto ck = ipa::io::Checkpoint::open(eval_fixture("fvd_disco_i3d_seeded.pth"));
    ipa::io::NamedTensors t;
    for (const auto& n : ck.names())
        if (n == "Mixed_5c.b0.bn.running_var")
            t.emplace_back(n, torch::ones({7}));  // a wrong shape
        else if (n != "Mixed_4d.b2b.conv3d.weight")
            t.emplace_back(n, ck.get(n));
    msg = ipa::test::error_of<ipa::CheckpointError>([&] {
        ipa::eval::InceptionI3d net;
        ipa::eval::load_inception_i3d(net, ipa::io::Checkpoint::from_tensors(t, "bad_i3d.pt"));
    });
    EXPECT_CONTAINS(msg, "Mixed_4d.b2b.conv3d.weight");
    EXPECT_CONTAINS(msg, "Mixed_5c.b0.bn.running_var");
    EXPECT_CONTAINS(msg, "bad_i3d.pt");
    // A legacy (PyTorch < 1.6) torch.save file: the reader's refusal, with the file and what it is.
    msg = ipa::test::error_of<ipa::CheckpointError>([] {
        ipa::eval::InceptionI3d net;
        ipa::eval::load_inception_i3d(net, eval_fixture("lpips_alex_lin_legacy.pth"));
    });
    EXPECT_CONTAINS(msg, "lpips_alex_lin_legacy.pth");
    EXPECT_CONTAINS(msg, "i3d_pretrained_400.pt");
    EXPECT_CONTAINS(msg, "re-save");
}

}  // namespace
