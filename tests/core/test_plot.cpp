// Charts and the PNG encoder of ipa/core/plot.h without a decoder (checksums, ticks, drawing,
// the metrics.jsonl reader, the compression ratio); tests/core/test_plot_png.cpp decodes the
// PNGs with OpenCV in media builds.

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/core/plot.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ipa::plot;

namespace {

uint32_t be32(const std::string& s, std::size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | static_cast<uint8_t>(s[at + i]);
    return v;
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines) {
    std::ofstream f(p);
    for (const auto& l : lines) f << l << "\n";
}

TEST(Png, Checksums) {
    EXPECT_EQ(crc32("123456789", 9), 0xcbf43926u);
    EXPECT_EQ(crc32("IEND", 4), 0xae426082u);  // the CRC of every PNG's IEND chunk
    EXPECT_EQ(adler32("Wikipedia", 9), 0x11e60398u);
    const std::string big(100000, '\xff');  // beyond the 5552-byte block of deferred modulos
    uint32_t a = 1, b = 0;
    for (unsigned char c : big) a = (a + c) % 65521, b = (b + a) % 65521;
    EXPECT_EQ(adler32(big.data(), big.size()), (b << 16) | a);
}

TEST(Png, ZlibStream) {
    const auto empty = zlib_compress("", 0);
    // header, one final fixed block holding only end-of-block (3 + 7 bits), Adler-32 of nothing
    EXPECT_EQ(empty, std::string("\x78\x01\x03\x00\x00\x00\x00\x01", 8));
    const std::string zeros(1 << 20, '\0');
    const auto z = zlib_compress(zeros.data(), zeros.size());
    EXPECT_LT(z.size(), zeros.size() / 100) << z.size();  // 258-byte matches at distance 1
    EXPECT_EQ(be32(z, z.size() - 4), adler32(zeros.data(), zeros.size()));
}

TEST(Png, Chunks) {
    Canvas c(3, 2, Rgb{1, 2, 3});
    const auto png = encode_png(c);
    EXPECT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n");
    EXPECT_EQ(png.substr(12, 4), "IHDR");
    EXPECT_EQ(be32(png, 16), 3u);
    EXPECT_EQ(be32(png, 20), 2u);
    EXPECT_EQ(png.substr(24, 5), std::string("\x08\x02\x00\x00\x00", 5));
    EXPECT_EQ(be32(png, 29), crc32(png.data() + 12, 17));
    EXPECT_EQ(png.substr(png.size() - 12), std::string("\0\0\0\0IEND\xae\x42\x60\x82", 12));
}

TEST(Plot, NiceTicks) {
    EXPECT_EQ(nice_ticks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
    EXPECT_EQ(nice_ticks(3, 997, 4), (std::vector<double>{0, 200, 400, 600, 800, 1000}));
    const auto t = nice_ticks(-1.3e-4, 2.2e-4, 4);  // spacing 8.75e-5 -> 1e-4
    EXPECT_DOUBLE_EQ(t.front(), -2e-4);
    EXPECT_DOUBLE_EQ(t.back(), 3e-4);
    EXPECT_EQ(t.size(), 6u);
    const auto k = nice_ticks(5, 5, 4);  // a constant: 4.75 .. 5.25, spacing 0.1
    EXPECT_EQ(k.size(), 7u);
    EXPECT_DOUBLE_EQ(k.front(), 4.7);
    EXPECT_EQ(nice_ticks(NAN, NAN, 4), nice_ticks(0, 1, 4));  // no data: 0 .. 1
}

TEST(Plot, TickLabels) {
    EXPECT_EQ(tick_label(0.6000000000000001, 0.2), "0.6");
    EXPECT_EQ(tick_label(1000, 200), "1000");
    EXPECT_EQ(tick_label(-0.25, 0.05), "-0.25");
    EXPECT_EQ(tick_label(1e-17, 0.1), "0");
    EXPECT_EQ(tick_label(1.5e-4, 5e-5), "1.5e-4");
    EXPECT_EQ(tick_label(1e-4, 5e-5), "1e-4");
    EXPECT_EQ(tick_label(-3e-5, 1e-5), "-3e-5");
    EXPECT_EQ(tick_label(2e6, 1e6), "2e6");
    EXPECT_EQ(tick_label(2.5e6, 5e5), "2.5e6");
}

TEST(Plot, CanvasDrawing) {
    Canvas c(20, 10);
    EXPECT_EQ(c.pixel(0, 0), kWhite);
    c.fill_rect(2, 3, 4, 2, Rgb{10, 20, 30});
    EXPECT_EQ(c.pixel(2, 3), (Rgb{10, 20, 30}));
    EXPECT_EQ(c.pixel(5, 4), (Rgb{10, 20, 30}));
    EXPECT_EQ(c.pixel(6, 4), kWhite);
    c.fill_rect(-5, -5, 100, 1, kBlack);  // clipped, no throw
    c.blend(10, 5, kBlack, 0.5);
    EXPECT_EQ(c.pixel(10, 5), (Rgb{128, 128, 128}));
    Canvas l(20, 10);
    l.line(1, 7, 18, 7, kBlack, 1.0, /*antialias=*/false);
    for (int x = 1; x <= 18; ++x) EXPECT_EQ(l.pixel(x, 7), kBlack) << x;
    EXPECT_EQ(l.pixel(0, 7), kWhite);
    EXPECT_EQ(l.pixel(5, 6), kWhite);
    Canvas aa(20, 10);
    aa.line(1, 4.5, 18, 4.5, kBlack);  // between two rows: both half covered
    EXPECT_EQ(aa.pixel(9, 4), (Rgb{128, 128, 128}));
    EXPECT_EQ(aa.pixel(9, 5), (Rgb{128, 128, 128}));
    EXPECT_THROW(Canvas(0, 5), ipa::Error);
}

TEST(Plot, Text) {
    Canvas c(40, 10);
    c.text(0, 0, "1", kBlack);  // '1' of the 5x7 font: column 2 is the full stem
    for (int y = 0; y < 7; ++y) EXPECT_EQ(c.pixel(2, y), kBlack) << y;
    EXPECT_EQ(c.pixel(0, 0), kWhite);
    EXPECT_EQ(text_width("abc"), 18);
    EXPECT_EQ(text_width("abc", 2), 36);
    Canvas a(12, 8), b(12, 8);
    a.text(0, 0, "\xc3\xa9", kBlack);  // non-ASCII bytes draw as '?'
    b.text(0, 0, "??", kBlack);
    EXPECT_EQ(a.rgb(), b.rgb());
}

TEST(Plot, Charts) {
    LineChart lc{"loss", "step", {{"a", {0, 1, 2, 3}, {1, 0.5, NAN, 0.2}}, {"b", {0, 3}, {0.1, 0.9}}}};
    const auto c = lc.render(320, 200);
    EXPECT_EQ(c.width(), 320);
    EXPECT_EQ(c.height(), 200);
    std::size_t blue = 0;
    for (int y = 0; y < c.height(); ++y)
        for (int x = 0; x < c.width(); ++x) blue += c.pixel(x, y) == palette(0);
    EXPECT_GT(blue, 50u);
    BarChart bc{"ssim", "SSIM", {"x", "y", "z"}, {{"base", {0.2, 0.5, NAN}}, {"adapter", {0.3, -0.1, 0.9}}}};
    const auto b = bc.render(400);
    EXPECT_EQ(b.width(), 400);
    EXPECT_GT(b.height(), 3 * 2 * 11);
    const auto t = tile({c, b, c}, 2);
    EXPECT_EQ(t.width(), 2 * 400);
    EXPECT_EQ(t.height(), 2 * std::max(200, b.height()));
    EXPECT_EQ(t.pixel(10, 10), c.pixel(10, 10));
    EXPECT_THROW(lc.render(30, 20), ipa::Error);
}

std::string metrics_line(int step, double loss, const std::string& extra = "") {
    return "{\"step\":" + std::to_string(step) + ",\"loss\":" + std::to_string(loss) + ",\"gap\":1e-5" + extra +
           ",\"lr\":0.0001,\"grad_norm\":0.5,\"reward_accuracy\":0.75,\"samples_per_s\":3}";
}

TEST(TrainingCurves, WritesAPanelPerQuantity) {
    ipa::test::TempDir tmp;
    std::vector<std::string> lines;
    for (int s = 1; s <= 200; ++s) lines.push_back(metrics_line(s, std::exp(-s / 50.0), ",\"margin\":0.1"));
    lines[50] = "{\"step\":51,\"loss\":null,\"gap\":null}";  // a NaN step of the trainer
    lines.push_back(metrics_line(200, 0.01));                // a resumed run repeats a step
    write_lines(tmp.path / "metrics.jsonl", lines);
    write_training_curves(tmp.path / "metrics.jsonl", tmp.path / "curves.png");
    const auto png = ipa::read_file(tmp.path / "curves.png");
    EXPECT_EQ(be32(png, 16), 3u * 480);  // 6 panels: loss gap reward_accuracy margin lr grad_norm
    EXPECT_EQ(be32(png, 20), 2u * 300);
    const double ratio = 3.0 * 1440 * 600 / png.size();
    std::printf("training curves 1440x600: %zu bytes PNG, raw RGB / PNG = %.1f\n", png.size(), ratio);
    EXPECT_GT(ratio, 15);
    // Without margin and reward_accuracy (an older run): 4 panels
    write_lines(tmp.path / "old.jsonl", {R"({"step":1,"loss":0.5,"gap":0,"lr":1e-4,"grad_norm":1})"});
    write_training_curves(tmp.path / "old.jsonl", tmp.path / "old.png");
    EXPECT_EQ(be32(ipa::read_file(tmp.path / "old.png"), 16), 2u * 480);
}

TEST(TrainingCurves, ClearErrors) {
    ipa::test::TempDir tmp;
    const auto m = tmp.path / "metrics.jsonl";
    const auto png = tmp.path / "c.png";
    auto err = [&](const std::vector<std::string>& lines) {
        write_lines(m, lines);
        return ipa::test::error_of<ipa::DataError>([&] { write_training_curves(m, png); });
    };
    EXPECT_CONTAINS(ipa::test::error_of<ipa::DataError>([&] { write_training_curves(tmp.path / "nope", png); }),
                    (tmp.path / "nope").string());
    EXPECT_CONTAINS(err({metrics_line(1, 0.5), "{\"step\":2,\"loss\":0.4"}), m.string() + ":2: not a JSON line");
    EXPECT_CONTAINS(err({metrics_line(1, 0.5), "", metrics_line(3, 0.5)}), m.string() + ":2: blank line");
    EXPECT_CONTAINS(err({"{\"loss\":0.5}"}), m.string() + ":1: no integer `step`");
    EXPECT_CONTAINS(err({"[1,2]"}), m.string() + ":1: not a JSON object");
    EXPECT_CONTAINS(err({metrics_line(1, 0.5), "{\"step\":2,\"loss\":\"x\"}"}),
                    m.string() + ":2: `loss` is not a number");
    EXPECT_CONTAINS(err({"{\"step\":1,\"samples_per_s\":3}"}), "nothing to plot");
    EXPECT_CONTAINS(err({}), "nothing to plot (0 lines");
    EXPECT_FALSE(fs::exists(png));
    write_lines(m, {metrics_line(1, 0.5)});
    EXPECT_CONTAINS(
        ipa::test::error_of<ipa::DataError>([&] { write_training_curves(m, tmp.path / "missing-dir" / "c.png"); }),
        (tmp.path / "missing-dir" / "c.png").string());
}

}  // namespace
