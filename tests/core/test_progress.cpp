#include <gtest/gtest.h>

#include <sstream>

#include "ipa/core/progress.h"

namespace {

TEST(Progress, FormatsDurations) {
    EXPECT_EQ(ipa::format_duration(0), "00:00");
    EXPECT_EQ(ipa::format_duration(75.4), "01:15");
    EXPECT_EQ(ipa::format_duration(3723), "01:02:03");
    EXPECT_EQ(ipa::format_duration(-1), "?");
}

TEST(Progress, PlainLinesAreRateLimitedAndShowRateAndEta) {
    std::ostringstream out;
    double now = 0.0;
    ipa::ProgressOptions opt;
    opt.mode = ipa::ProgressOptions::Mode::lines;
    opt.interval_s = 10.0;
    opt.unit = "step";
    {
        ipa::Progress p("train", 100, opt, out, [&] { return now; });
        now = 2.0;
        p.advance(1, "loss=0.5");  // first update prints
        now = 5.0;
        p.advance(9);  // within the interval: silent
        now = 20.0;
        p.advance(10);  // 20 steps in 20 s -> 1 step/s, 80 left -> 01:20
        EXPECT_EQ(p.count(), 20);
    }
    const auto text = out.str();
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    ASSERT_EQ(lines.size(), 3u) << text;  // two periodic lines + the final one
    EXPECT_NE(lines[0].find("1/100"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("loss=0.5"), std::string::npos) << lines[0];
    EXPECT_NE(lines[1].find("20/100"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find("[00:20<01:20, 1.00 step/s]"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find(" 20%"), std::string::npos) << lines[1];
}

TEST(Progress, BarModeRedrawsInPlaceAndEndsWithNewline) {
    std::ostringstream out;
    double now = 0.0;
    ipa::ProgressOptions opt;
    opt.mode = ipa::ProgressOptions::Mode::bar;
    opt.bar_width = 10;
    ipa::Progress p("cache", 4, opt, out, [&] { return now; });
    for (int i = 0; i < 4; ++i) {
        now += 0.5;
        p.advance();
    }
    const auto text = out.str();
    EXPECT_EQ(text.front(), '\r');
    EXPECT_EQ(text.back(), '\n');
    EXPECT_NE(text.find("100%|##########| 4/4"), std::string::npos) << text;
    EXPECT_NE(text.find("2.00 it/s"), std::string::npos) << text;
}

TEST(Progress, SlowRatesShowSecondsPerItemAndUnknownTotal) {
    std::ostringstream out;
    double now = 0.0;
    ipa::ProgressOptions opt;
    opt.mode = ipa::ProgressOptions::Mode::lines;
    ipa::Progress p("scan", 0, opt, out, [&] { return now; });
    now = 8.0;
    p.advance(2);
    EXPECT_NE(p.render().find("scan 2 [00:08, 4.00 s/it]"), std::string::npos) << p.render();
}

}  // namespace
