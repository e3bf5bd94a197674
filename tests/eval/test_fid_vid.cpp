// FID-VID (DisCo's 'fid-vid': 3D ResNet-50 on 16-frame segments) against
// scripts/gen_fvd_fixtures.py: PIL's float bicubic resize and DisCo's segmenting, and the
// per-video features of the network (seeded weights in DisCo's checkpoint layout) in float64.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "eval_test_util.h"
#include "ipa/core/error.h"
#include "ipa/eval/fid_vid.h"
#include "ipa/eval/report.h"
#include "ipa/io/checkpoint.h"
#include "test_util.h"

namespace {

using ipa::test::eval_fixture;

TEST(FidVid, SegmentsMatchDisco) {
    const auto f = ipa::io::SafetensorsFile::open(eval_fixture("fid_vid_cases.safetensors"));
    for (const std::string k : {"gen", "real"}) {
        const auto v = f.tensor(k + ".videos")[0];  // [19, 20, 20, 3]
        const auto segs = ipa::eval::fid_vid_segments(v);
        ASSERT_EQ(segs.sizes(), (std::vector<int64_t>{2, 3, 16, 112, 112}));
        const auto got = segs[1].narrow(2, 0, 8).narrow(3, 0, 8).to(torch::kFloat64);
        const auto ref = f.tensor(k + ".segment1_crop").to(torch::kFloat64);
        // PIL computes in double and stores float32 after each pass, as ipa does: the same
        // rounding, so the difference is at most a float32 ulp of the values (|x| < 256).
        const double err = (got - ref).abs().max().item<double>();
        std::printf("FID-VID segments %s: max |ipa - PIL/DisCo| = %.3g\n", k.c_str(), err);
        EXPECT_LE(err, 256 * std::numeric_limits<float>::epsilon()) << k;
    }
}

TEST(FidVid, FeaturesMatchReference) {
    torch::NoGradGuard ng;
    const auto f = ipa::io::SafetensorsFile::open(eval_fixture("fid_vid_cases.safetensors"));
    ipa::eval::ResNet3d50 net;
    ipa::eval::load_resnet3d50(net, eval_fixture("fid_vid_r50_seeded.pth"));
    const double floor = ipa::test::meta_double(f, "floor_f32_rel");
    const double tol = 10 * floor;  // 10x the reference module's own float32-vs-float64 floor
    for (const std::string k : {"gen", "real"}) {
        const auto videos = f.tensor(k + ".videos");
        std::vector<at::Tensor> feats;
        for (int64_t i = 0; i < videos.size(0); ++i) feats.push_back(ipa::eval::fid_vid_video_feature(net, videos[i]));
        const auto got = torch::stack(feats);
        const auto ref = f.tensor(k + ".features");
        ASSERT_EQ(got.sizes(), ref.sizes());
        const double rel = ((got - ref).abs().max() / ref.abs().max()).item<double>();
        std::printf("FID-VID features %s: max |ipa f32 - reference f64| / max |f| = %.3g (floor %.3g, bound %.3g)\n",
                    k.c_str(), rel, floor, tol);
        EXPECT_LT(rel, tol) << k;
        EXPECT_GT(ref.abs().max().item<double>(), 0.1);
    }
}

TEST(FidVid, PipelineFromFrameFoldersAndReport) {
    // PNG folders -> per-video features, against the reference; the report's fid_vid key.
    const auto f = ipa::io::SafetensorsFile::open(eval_fixture("fid_vid_cases.safetensors"));
    ipa::test::TempDir tmp;
    std::vector<ipa::eval::VideoPair> pairs;
    for (int64_t i = 0; i < 2; ++i) {
        ipa::eval::VideoPair p{fmt::format("v{}", i),
                               tmp.path / "gen" / fmt::format("v{}", i),
                               tmp.path / "gt" / fmt::format("v{}", i),
                               {}};
        for (const auto& [key, dir] :
             {std::pair{"gen.videos", p.generated}, std::pair{"real.videos", p.ground_truth}}) {
            std::filesystem::create_directories(dir);
            const auto v = f.tensor(key)[i];
            for (int64_t t = 0; t < v.size(0); ++t) {
                cv::Mat bgr;
                cv::cvtColor(ipa::test::to_mat(v[t]), bgr, cv::COLOR_RGB2BGR);
                cv::imwrite((dir / fmt::format("{:04d}.png", t)).string(), bgr);
            }
        }
        pairs.push_back(p);
    }
    // The whole pipeline but the 2048-d Fréchet distance (pytorch-fid's, tested in
    // test_frechet.cpp; its 2048x2048 Schur decomposition takes ~30 s here).
    torch::NoGradGuard ng;
    ipa::eval::ResNet3d50 net;
    ipa::eval::load_resnet3d50(net, eval_fixture("fid_vid_r50_seeded.pth"));
    const auto feats = ipa::eval::fid_vid_features(pairs, net);
    EXPECT_EQ(feats.generated_segments, 4);  // 19 frames: 2 segments each
    EXPECT_EQ(feats.ground_truth_segments, 4);
    const double tol = 10 * ipa::test::meta_double(f, "floor_f32_rel");
    for (const auto& [got, key] :
         {std::pair{feats.generated, "gen.features"}, std::pair{feats.ground_truth, "real.features"}}) {
        const auto ref = f.tensor(key);
        ASSERT_EQ(got.sizes(), ref.sizes());
        EXPECT_LT(((got - ref).abs().max() / ref.abs().max()).item<double>(), tol) << key;
    }
    ipa::eval::FidVidReport rep;
    rep.fid_vid = 12.5;
    rep.generated_videos = rep.ground_truth_videos = 2;
    ipa::eval::Report report;
    report.fid_vid = rep;
    const auto written = ipa::test::written_summary_value(report, tmp.path / "report", "fid_vid");
    ASSERT_TRUE(written.has_value());
    EXPECT_DOUBLE_EQ(*written, rep.fid_vid);  // the same run's number, written and read back
}

TEST(FidVid, WeightErrorsNameTheFile) {
    auto msg = ipa::test::error_of<ipa::CheckpointError>([] {
        ipa::eval::ResNet3d50 net;
        ipa::eval::load_resnet3d50(net, "/nonexistent/resnet-50-kinetics.pth");
    });
    EXPECT_CONTAINS(msg, "/nonexistent/resnet-50-kinetics.pth");
    const auto ck = ipa::io::Checkpoint::open(eval_fixture("fid_vid_r50_seeded.pth"));
    ipa::io::NamedTensors t;
    for (const auto& n : ck.names())
        if (n.find("layer3.2.conv2.weight") == std::string::npos) t.emplace_back(n, ck.get(n));
    msg = ipa::test::error_of<ipa::CheckpointError>([&] {
        ipa::eval::ResNet3d50 net;
        ipa::eval::load_resnet3d50(net, ipa::io::Checkpoint::from_tensors(t, "bad.pth"));
    });
    EXPECT_CONTAINS(msg, "layer3.2.conv2.weight");
    EXPECT_CONTAINS(msg, "bad.pth");
}

}  // namespace
