// PSNR / SSIM against skimage and DisCo's psnr_eval (scripts/gen_eval_fixtures.py).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include "eval_test_util.h"
#include "ipa/eval/frame_metrics.h"
#include "test_util.h"

namespace {

using ipa::test::eval_fixture;
using ipa::test::to_mat;

TEST(FrameMetrics, MatchSkimageAndDisco) {
    const auto f = ipa::io::SafetensorsFile::open(eval_fixture("frame_metrics.safetensors"));
    const int cases = std::stoi(f.metadata().at("cases"));
    // Bounds: 10x the float64 floor measured in the generator (same metric on transposed
    // images), never below a few ulps of 1.
    const double tol_disco = std::max(10 * ipa::test::meta_double(f, "floor_ssim_disco"), 1e-14);
    const double tol_gauss = std::max(10 * ipa::test::meta_double(f, "floor_ssim_gauss"), 1e-14);
    double worst_disco = 0, worst_gauss = 0, worst_psnr = 0;
    for (int i = 0; i < cases; ++i) {
        const std::string p = "case" + std::to_string(i) + ".";
        const cv::Mat a = to_mat(f.tensor(p + "a")), b = to_mat(f.tensor(p + "b"));
        // OpenCV's BGR2GRAY is the fixed-point formula the generator used.
        cv::Mat gray;
        cv::cvtColor(a, gray, cv::COLOR_BGR2GRAY);
        EXPECT_EQ(cv::norm(gray, to_mat(f.tensor(p + "gray_a")), cv::NORM_INF), 0) << p;

        const double sd = ipa::eval::ssim(a, b, ipa::eval::SsimOptions::disco());
        const double sg = ipa::eval::ssim(a, b, ipa::eval::SsimOptions::gaussian());
        const double ps = ipa::eval::psnr(a, b);
        const double rd = f.tensor(p + "ssim_disco").item<double>(), rg = f.tensor(p + "ssim_gauss").item<double>();
        const double rp = f.tensor(p + "psnr").item<double>();
        EXPECT_NEAR(sd, rd, tol_disco) << p;
        EXPECT_NEAR(sg, rg, tol_gauss) << p;
        EXPECT_NEAR(ps, rp, 1e-12 * rp) << p;
        EXPECT_GT(sd, -1);
        EXPECT_LT(sd, 1);
        worst_disco = std::max(worst_disco, std::abs(sd - rd));
        worst_gauss = std::max(worst_gauss, std::abs(sg - rg));
        worst_psnr = std::max(worst_psnr, std::abs(ps - rp) / rp);
    }
    std::printf("max |diff| vs skimage: SSIM (DisCo) %.3g, SSIM (Gaussian) %.3g; PSNR rel %.3g\n", worst_disco,
                worst_gauss, worst_psnr);
    // identical frames
    const cv::Mat s = to_mat(f.tensor("same.a"));
    EXPECT_EQ(ipa::eval::psnr(s, s), 100.0);
    EXPECT_EQ(f.tensor("same.psnr").item<double>(), 100.0);
    EXPECT_NEAR(ipa::eval::ssim(s, s), f.tensor("same.ssim_disco").item<double>(), 1e-15);
}

TEST(FrameMetrics, Errors) {
    const cv::Mat a(20, 20, CV_8UC3, cv::Scalar(1, 2, 3)), b(20, 21, CV_8UC3, cv::Scalar(1, 2, 3));
    EXPECT_CONTAINS(ipa::test::error_of<ipa::DataError>([&] { ipa::eval::ssim(a, b); }), "sizes differ");
    EXPECT_CONTAINS(ipa::test::error_of<ipa::DataError>([&] { ipa::eval::psnr(a, b); }), "20x21x3");
    const cv::Mat tiny(5, 9, CV_8UC3, cv::Scalar(0));
    EXPECT_CONTAINS(ipa::test::error_of<ipa::DataError>([&] { ipa::eval::ssim(tiny, tiny); }), "7x7 window");
    ipa::eval::SsimOptions o;
    o.win_size = 4;
    EXPECT_CONTAINS(ipa::test::error_of<ipa::ConfigError>([&] { ipa::eval::ssim(a, a, o); }), "win_size");
}

TEST(FrameMetrics, HandCropBoxesAreSquareInsideAndScaled) {
    ipa::pose::PoseFrame fr;
    fr.width = 200, fr.height = 100;  // the pose canvas is twice the frame
    ipa::pose::Person p;
    p.body.resize(18);
    for (int j = 0; j < 21; ++j) p.hand_left.push_back({float(40 + j % 5), float(20 + j / 5), 0.9f});
    for (int j = 0; j < 21; ++j) p.hand_right.push_back({float(195), float(95), j < 4 ? 0.9f : 0.1f});  // 4 points
    fr.people.push_back(p);
    const auto boxes = ipa::eval::hand_crop_boxes(fr, 50, 100);
    ASSERT_EQ(boxes.size(), 1u);  // the right hand has too few confident points
    EXPECT_EQ(boxes[0].width, 32);
    EXPECT_EQ(boxes[0].height, 32);
    // keypoints scaled by 0.5: x in [20, 22], y in [10, 12]; the box centre stays near (21, 11)
    EXPECT_NEAR(boxes[0].x + 16, 21, 1.5);
    EXPECT_EQ(boxes[0].y, 0);  // shifted down to stay inside
    ipa::eval::HandCropOptions o;
    o.min_side = 80;  // capped by the frame's 50 rows
    EXPECT_EQ(ipa::eval::hand_crop_boxes(fr, 50, 100, o).at(0).width, 50);
}

}  // namespace
