// LPIPS against the `lpips` package (scripts/gen_lpips_fixtures.py, tests/fixtures/eval): random
// torchvision trunks (AlexNet, VGG16; whole torchvision state dicts) and random lin layers, loaded by lpips through its
// own paths and here through the restricted .pth reader. Bound: ipa float32 vs lpips float64 within 10x lpips' own
// float32-vs-float64 floor.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "eval_test_util.h"
#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/eval/evaluate.h"
#include "ipa/eval/lpips.h"
#include "ipa/eval/report.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/pth.h"
#include "numeric_bounds.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using ipa::eval::LpipsNet;
using ipa::test::eval_fixture;

ipa::eval::Lpips fixture_net(LpipsNet net) {
    const std::string n = ipa::eval::lpips_net_name(net);
    return ipa::eval::load_lpips(net, eval_fixture("lpips_" + n + "_backbone.pth"),
                                 eval_fixture("lpips_" + n + "_lin.pth"));
}

const ipa::io::SafetensorsFile& cases() {
    static const auto f = ipa::io::SafetensorsFile::open(eval_fixture("lpips_cases.safetensors"));
    return f;
}

/// [N, H, W, 3] uint8 RGB -> [N, 3, H, W] in [-1, 1] as lpips.im2tensor (x / 127.5 - 1).
torch::Tensor to_input(const torch::Tensor& rgb, torch::ScalarType dtype) {
    return rgb.permute({0, 3, 1, 2}).to(dtype).div(127.5).sub(1);
}

class LpipsParity : public ::testing::TestWithParam<LpipsNet> {};

TEST_P(LpipsParity, Float32WithinTenTimesLpipsFloor) {
    torch::NoGradGuard ng;
    auto net = fixture_net(GetParam());
    const std::string n = ipa::eval::lpips_net_name(GetParam());
    const double floor = ipa::test::meta_double(cases(), n + "_floor_f32");
    for (const std::string c : {"clip", "wide"}) {
        const auto gen = cases().tensor(c + ".generated"), gt = cases().tensor(c + ".ground_truth");
        const auto ref = cases().tensor(c + "." + n + ".lpips_f64");
        const auto got = net->forward(to_input(gen, torch::kFloat32), to_input(gt, torch::kFloat32));
        ASSERT_EQ(got.sizes(), ref.sizes()) << c;
        const double err = (got.to(torch::kFloat64) - ref).abs().max().item<double>();
        std::printf("LPIPS %s %s: max |ipa f32 - lpips f64| = %.3g (lpips f32 floor %.3g, max %.3g)\n", n.c_str(),
                    c.c_str(), err, floor, ref.abs().max().item<double>());
        EXPECT_TRUE(ipa::test::within_recorded_floor(err, floor, 10.0)) << n << " " << c;
        // Every layer contributes (no dead random layer), and the layer terms match too.
        const auto layers = net->forward_layers(to_input(gen, torch::kFloat32), to_input(gt, torch::kFloat32));
        const auto ref_layers = cases().tensor(c + "." + n + ".layers_f64");
        EXPECT_TRUE((ref_layers > 1e-3 * ref.max()).all().item<bool>()) << c;
        EXPECT_LT((layers.to(torch::kFloat64) - ref_layers).abs().max().item<double>(), 10 * floor) << c;
    }
}

TEST_P(LpipsParity, Float64ReproducesTheReference) {
    torch::NoGradGuard ng;
    auto net = fixture_net(GetParam());
    net->to(torch::kFloat64);
    const std::string n = ipa::eval::lpips_net_name(GetParam());
    const auto gen = cases().tensor("clip.generated"), gt = cases().tensor("clip.ground_truth");
    const auto ref = cases().tensor("clip." + n + ".lpips_f64");
    const auto got = net->forward(to_input(gen, torch::kFloat64), to_input(gt, torch::kFloat64));
    EXPECT_LT((got - ref).abs().max().item<double>(), 1e-12);
}

TEST_P(LpipsParity, FramesFromBgrMatsGiveTheSameValues) {
    auto net = fixture_net(GetParam());
    const std::string n = ipa::eval::lpips_net_name(GetParam());
    const auto gen = cases().tensor("clip.generated"), gt = cases().tensor("clip.ground_truth");
    const auto ref = cases().tensor("clip." + n + ".lpips_f64");
    for (int64_t i = 0; i < gen.size(0); ++i) {
        cv::Mat a, b;  // the fixture holds RGB; lpips_distance takes BGR frames as read from videos
        cv::cvtColor(ipa::test::to_mat(gen[i]), a, cv::COLOR_RGB2BGR);
        cv::cvtColor(ipa::test::to_mat(gt[i]), b, cv::COLOR_RGB2BGR);
        const double d = ipa::eval::lpips_distance(*net, a, b);
        EXPECT_NEAR(d, ref[i].item<double>(), 10 * ipa::test::meta_double(cases(), n + "_floor_f32")) << i;
        EXPECT_EQ(ipa::eval::lpips_distance(*net, a, a), 0.0);
    }
}

INSTANTIATE_TEST_SUITE_P(Nets, LpipsParity, ::testing::Values(LpipsNet::alex, LpipsNet::vgg),
                         [](const auto& info) { return std::string(ipa::eval::lpips_net_name(info.param)); });

TEST(Lpips, RealFileLayoutsLoadStrictly) {
    // The backbone files hold torchvision's whole state dict (classifier included: ignored).
    const auto pth = ipa::io::PthFile::open(eval_fixture("lpips_alex_backbone.pth"));
    bool has_classifier = false;
    for (const auto& [k, v] : pth.tensors()) has_classifier |= k.rfind("classifier.", 0) == 0;
    EXPECT_TRUE(has_classifier);
    auto net = fixture_net(LpipsNet::alex);
    for (const auto& [k, v] : pth.tensors()) {
        if (k.rfind("features.", 0) == 0) {
            EXPECT_TRUE(torch::equal(net->backbone().named_parameters()[k], v)) << k;
        }
    }
}

TEST(Lpips, WrongFilesNameTheFileAndKeys) {
    // vgg16 trunk for alex: shapes and keys differ; the message names the file and the keys.
    auto msg = ipa::test::error_of<ipa::CheckpointError>([] {
        ipa::eval::load_lpips(LpipsNet::alex, eval_fixture("lpips_vgg_backbone.pth"),
                              eval_fixture("lpips_alex_lin.pth"));
    });
    EXPECT_CONTAINS(msg, "lpips_vgg_backbone.pth");
    EXPECT_CONTAINS(msg, "alexnet-owt-7be5be79.pth");
    EXPECT_CONTAINS(msg, "features.28.weight");
    // lin weights of the other net.
    msg = ipa::test::error_of<ipa::CheckpointError>([] {
        ipa::eval::load_lpips(LpipsNet::alex, eval_fixture("lpips_alex_backbone.pth"),
                              eval_fixture("lpips_vgg_lin.pth"));
    });
    EXPECT_CONTAINS(msg, "lpips_vgg_lin.pth");
    EXPECT_CONTAINS(msg, "lin1.model.1.weight");
    EXPECT_CONTAINS(msg, "weights/v0.1/alex.pth");
    // Backbone and lin files swapped.
    msg = ipa::test::error_of<ipa::CheckpointError>([] {
        ipa::eval::load_lpips(LpipsNet::vgg, eval_fixture("lpips_vgg_lin.pth"), eval_fixture("lpips_vgg_backbone.pth"));
    });
    EXPECT_CONTAINS(msg, "features.0.weight");
    EXPECT_CONTAINS(msg, "lpips_vgg_lin.pth");
    // A missing file.
    EXPECT_CONTAINS(
        ipa::test::error_of(
            [] { ipa::eval::load_lpips(LpipsNet::vgg, eval_fixture("nope.pth"), eval_fixture("lpips_vgg_lin.pth")); }),
        "nope.pth");
    // lpips ships its lin weights in the legacy torch.save format: refused with the re-save hint.
    msg = ipa::test::error_of([] {
        ipa::eval::load_lpips(LpipsNet::alex, eval_fixture("lpips_alex_backbone.pth"),
                              eval_fixture("lpips_alex_lin_legacy.pth"));
    });
    EXPECT_CONTAINS(msg, "lpips_alex_lin_legacy.pth");
    EXPECT_CONTAINS(msg, "legacy torch.save format");
    EXPECT_CONTAINS(msg, "torch.save(torch.load(path), new_path)");
    EXPECT_THROW(ipa::eval::parse_lpips_net("squeeze"), ipa::ConfigError);
}

TEST(Lpips, RefusesFramesTooSmallOrOfDifferentSizes) {
    auto net = fixture_net(LpipsNet::alex);
    const cv::Mat a(30, 40, CV_8UC3, cv::Scalar(10, 20, 30)), b(40, 40, CV_8UC3, cv::Scalar(1, 2, 3));
    EXPECT_CONTAINS(ipa::test::error_of<ipa::DataError>([&] { ipa::eval::lpips_distance(*net, a, a); }),
                    "smaller than the network's 31 px");
    EXPECT_CONTAINS(ipa::test::error_of<ipa::DataError>([&] { ipa::eval::lpips_distance(*net, a, b); }),
                    "different sizes");
    const cv::Mat c(31, 31, CV_8UC3, cv::Scalar(10, 20, 30)), d(31, 31, CV_8UC3, cv::Scalar(50, 20, 30));
    EXPECT_GT(ipa::eval::lpips_distance(*net, c, d), 0.0);  // the smallest accepted size runs
}

TEST(Lpips, VideoPipelineFramesHandCropsAndReport) {
    const fs::path videos = eval_fixture("videos");
    const auto pairs = ipa::eval::pairs_from_dirs(videos / "gen", videos / "gt", videos / "keypoints");
    ipa::eval::FrameEvalOptions opts;
    auto net = fixture_net(LpipsNet::alex);
    opts.lpips = net.ptr();
    ipa::eval::Report rep;
    rep.videos = ipa::eval::evaluate_frames(pairs, opts);
    rep.lpips_net = "alex";
    const auto plain = ipa::eval::evaluate_frames(pairs);  // without LPIPS: the rest is unchanged
    int64_t crops = 0;
    for (std::size_t v = 0; v < rep.videos.size(); ++v) {
        const auto& r = rep.videos[v];
        EXPECT_EQ(r.psnr, plain[v].psnr);
        EXPECT_TRUE(plain[v].lpips.empty() && plain[v].hand_lpips.empty());
        ASSERT_EQ(r.lpips.size(), static_cast<std::size_t>(r.frames));
        EXPECT_EQ(r.hand_lpips.size(), r.hand_psnr.size()) << "every crop of the fixture is >= 31 px";
        crops += static_cast<int64_t>(r.hand_lpips.size());
        for (const double d : r.lpips) EXPECT_GT(d, 0.0);
    }
    EXPECT_EQ(crops, 10);
    // Frame 0 of clip_a by hand: the same value as lpips_distance on the PNGs.
    const auto first = [&](const char* side) {
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(videos / side / "clip_a")) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        return cv::imread(files.front().string(), cv::IMREAD_COLOR);
    };
    EXPECT_EQ(rep.videos[0].lpips[0], ipa::eval::lpips_distance(*net, first("gen"), first("gt")));

    ipa::test::TempDir tmp;
    ipa::eval::write_report(tmp.path, rep);
    const auto j = nlohmann::json::parse(ipa::read_file(tmp.path / "metrics.json"));
    const auto s = ipa::eval::summarize(rep.videos);
    EXPECT_DOUBLE_EQ(j["summary"]["lpips"].get<double>(), s.lpips);
    EXPECT_DOUBLE_EQ(j["summary"]["hand_lpips"].get<double>(), s.hand_lpips);
    EXPECT_EQ(j["videos"][0]["frame_lpips"].size(), 3u);
    EXPECT_CONTAINS(j["settings"]["lpips"].get<std::string>(), "net='alex'");
    EXPECT_CONTAINS(ipa::read_file(tmp.path / "per_video.csv"), "hand_ssim,lpips,hand_lpips\n");
    EXPECT_CONTAINS(ipa::read_file(tmp.path / "per_frame.csv"), "id,frame,psnr,ssim,lpips\n");
    const auto html = ipa::read_file(tmp.path / "index.html");
    EXPECT_CONTAINS(html, "LPIPS (mean over frames, alex)");
    EXPECT_CONTAINS(html, "<img src=\"chart_lpips.png\"");
    EXPECT_CONTAINS(html, "<img src=\"chart_hand_lpips.png\"");
    EXPECT_FALSE(cv::imread((tmp.path / "chart_lpips.png").string()).empty());
    // Without LPIPS the files keep their columns and keys.
    ipa::eval::Report no_lpips;
    no_lpips.videos = plain;
    ipa::eval::write_report(tmp.path / "plain", no_lpips);
    EXPECT_EQ(ipa::read_file(tmp.path / "plain" / "per_frame.csv").find("lpips"), std::string::npos);
    EXPECT_FALSE(fs::exists(tmp.path / "plain" / "chart_lpips.png"));
}

}  // namespace
