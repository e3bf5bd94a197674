// The PNG encoder of ipa/core/plot.h read back by an independent decoder (OpenCV's imread,
// libpng + zlib underneath): every pixel must come back exactly. Media builds only.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "ipa/core/atomic_file.h"
#include "ipa/core/plot.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ipa::plot;

namespace {

/// Every pixel of `png` (decoded by OpenCV, BGR) equals the canvas's.
void expect_decodes_to(const fs::path& png, const Canvas& c) {
    const cv::Mat m = cv::imread(png.string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(m.empty()) << "OpenCV cannot read " << png;
    ASSERT_EQ(m.type(), CV_8UC3);
    ASSERT_EQ(m.cols, c.width());
    ASSERT_EQ(m.rows, c.height());
    std::size_t bad = 0;
    for (int y = 0; y < c.height(); ++y)
        for (int x = 0; x < c.width(); ++x) {
            const auto& v = m.at<cv::Vec3b>(y, x);
            bad += Rgb{v[2], v[1], v[0]} != c.pixel(x, y);
        }
    EXPECT_EQ(bad, 0u) << png;
}

/// Deterministic pixels: noise (literals, Sub/None rows), flat bands (long matches, Up rows)
/// and rows repeating an earlier row (matches across rows).
Canvas synthetic(int w, int h, uint32_t seed) {
    Canvas c(w, h);
    uint32_t s = seed;
    auto next = [&] { return s ^= s << 13, s ^= s >> 17, s ^= s << 5; };
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            if (y % 7 == 3 && y > 0) {
                c.set(x, y, c.pixel(x, y - 2));
            } else if (y % 5 == 1) {
                c.set(x, y, Rgb{static_cast<uint8_t>(y), 200, 17});
            } else {
                const uint32_t r = next();
                c.set(x, y,
                      Rgb{static_cast<uint8_t>(r), static_cast<uint8_t>(r >> 8), static_cast<uint8_t>(x * 3 + y)});
            }
        }
    return c;
}

TEST(PngDecode, SyntheticCanvasesExact) {
    ipa::test::TempDir tmp;
    const std::vector<std::pair<int, int>> sizes = {{1, 1}, {1, 37}, {53, 1}, {97, 61}, {640, 123}, {12001, 3}};
    for (const auto& [w, h] : sizes) {
        const auto c = synthetic(w, h, 2463534242u + w);
        const auto path = tmp.path / ("s" + std::to_string(w) + "x" + std::to_string(h) + ".png");
        write_png(path, c);
        expect_decodes_to(path, c);
    }
    Canvas flat(2000, 1500, Rgb{12, 34, 56});  // 9 MB raw: long runs, matches of 258
    write_png(tmp.path / "flat.png", flat);
    expect_decodes_to(tmp.path / "flat.png", flat);
    std::printf("flat 2000x1500: %zu bytes\n", static_cast<std::size_t>(fs::file_size(tmp.path / "flat.png")));
}

TEST(PngDecode, ChartsExact) {
    ipa::test::TempDir tmp;
    std::vector<double> x, y1, y2;
    for (int s = 0; s <= 500; ++s)
        x.push_back(s), y1.push_back(std::exp(-s / 100.0)), y2.push_back(1e-4 * std::sin(s / 30.0));
    const LineChart lc{"loss and gap", "step", {{"loss", x, y1}, {"gap x 1e4", x, y2}}};
    const BarChart bc{"psnr per video, worst first",
                      "PSNR",
                      {"clip_b", "clip_a", "a_rather_long_clip_name_0001"},
                      {{"base", {21.5, 27.25, 30}}, {"adapter", {22, 26.9, NAN}}}};
    const auto grid = tile({lc.render(480, 300), bc.render(480), lc.render(300, 200)}, 2);
    write_png(tmp.path / "grid.png", grid);
    expect_decodes_to(tmp.path / "grid.png", grid);
    const double raw = 3.0 * grid.width() * grid.height();
    const auto size = fs::file_size(tmp.path / "grid.png");
    std::printf("chart grid %dx%d: %zu bytes PNG, raw RGB / PNG = %.1f\n", grid.width(), grid.height(),
                static_cast<std::size_t>(size), raw / size);
    EXPECT_GT(raw / size, 15);
}

TEST(PngDecode, TrainingCurvesDecode) {
    ipa::test::TempDir tmp;
    {
        std::ofstream m(tmp.path / "metrics.jsonl");
        for (int s = 1; s <= 50; ++s)
            m << "{\"step\":" << s << ",\"loss\":" << 1.0 / s << ",\"gap\":" << s * 1e-6 << ",\"lr\":1e-4}\n";
    }
    write_training_curves(tmp.path / "metrics.jsonl", tmp.path / "curves.png");
    const cv::Mat m = cv::imread((tmp.path / "curves.png").string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(m.empty());
    EXPECT_EQ(m.cols, 2 * 480);
    EXPECT_EQ(m.rows, 2 * 300);
}

}  // namespace
