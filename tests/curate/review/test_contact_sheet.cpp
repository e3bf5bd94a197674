// Contact sheets: layout, the score overlay, video/pose tiles and enlarged hand crops are
// checked pixel by pixel against what they are made from.

#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "../../common/test_util.h"
#include "ipa/core/error.h"
#include "ipa/curate/review/contact_sheet.h"

namespace fs = std::filesystem;
namespace rv = ipa::curate::review;
using ipa::pose::Keypoint;

namespace {

constexpr int kH = 96, kW = 128, kT = 9;

// Noise frames (distinct per frame) so any misplaced pixel shows.
std::vector<cv::Mat> noise_frames() {
    cv::RNG rng(1234);
    std::vector<cv::Mat> f;
    for (int t = 0; t < kT; ++t) {
        cv::Mat m(kH, kW, CV_8UC3);
        rng.fill(m, cv::RNG::UNIFORM, 0, 256);
        f.push_back(m);
    }
    return f;
}

std::vector<Keypoint> hand_at(float cx, float cy, float spread) {
    std::vector<Keypoint> h;
    for (int i = 0; i < 21; ++i) {
        h.push_back({cx + spread * std::cos(0.3f * i) * (i % 5) / 4.0f,
                     cy + spread * std::sin(0.3f * i) * (i % 4) / 3.0f, 0.9f});
    }
    return h;
}

// A person on a half-size canvas (64x48): the sheet must scale the points by 2.
ipa::pose::PoseSequence poses() {
    ipa::pose::PoseSequence seq;
    for (int t = 0; t < kT; ++t) {
        ipa::pose::PoseFrame f;
        f.width = kW / 2;
        f.height = kH / 2;
        ipa::pose::Person p;
        for (int j = 0; j < 18; ++j) p.body.push_back({20.0f + 1.5f * j, 8.0f + 2.0f * j, 0.9f});
        p.hand_left = hand_at(14.0f + t, 30.0f, 4.0f);
        if (t != 8) p.hand_right = hand_at(48.0f, 20.0f + t, 5.0f);  // right hand lost in the last frame
        f.people.push_back(p);
        seq.frames.push_back(f);
    }
    return seq;
}

ipa::curate::CandidateScore score() {
    ipa::curate::CandidateScore s;
    s.id = "clip7_c2";
    s.group = "clip7";
    s.score = 0.734;
    s.pass = true;
    s.stats = {{"confidence_mean", 0.81}, {"jitter", 0.012}, {"sharpness_ratio", 0.95}};
    for (int t = 0; t < kT; ++t) {
        ipa::curate::FrameScore f;
        f.frame = t;
        f.hand_confidence = 0.9;
        f.score = t == 3 ? 0.1 : 0.8;  // frame 3 is the worst
        s.frames.push_back(f);
    }
    return s;
}

int count_differing(const cv::Mat& region, const cv::Scalar& bg) {
    cv::Mat diff;
    cv::absdiff(region, bg, diff);
    cv::Mat gray;
    cv::cvtColor(diff, gray, cv::COLOR_BGR2GRAY);
    return cv::countNonZero(gray);
}

}  // namespace

TEST(ContactSheet, SampleIndices) {
    EXPECT_EQ(rv::sample_frame_indices(9, 4), (std::vector<int64_t>{0, 3, 5, 8}));
    EXPECT_EQ(rv::sample_frame_indices(2, 6), (std::vector<int64_t>{0, 1}));
    EXPECT_EQ(rv::sample_frame_indices(5, 1), (std::vector<int64_t>{0}));
    EXPECT_THROW(rv::sample_frame_indices(0, 3), ipa::DataError);
}

TEST(ContactSheet, TilesCropsAndOverlayArePixelExact) {
    const auto frames = noise_frames();
    const auto seq = poses();
    const auto sc = score();
    ipa::curate::ManifestRow row;
    row.id = sc.id;
    row.extra = {{"group", "clip7"}, {"defect", "fused_fingers"}};
    rv::SheetOptions o;
    o.frames = 3;
    o.tile_height = 96;
    const auto sheet = rv::make_contact_sheet(sc.id, frames, seq, &sc, &row, o);
    const auto& L = sheet.layout;

    // 0, 4, 8 sampled; the worst frame (3) replaces its nearest sample.
    EXPECT_EQ(L.worst_frame, 3);
    ASSERT_EQ(L.frame_indices, (std::vector<int64_t>{0, 3, 8}));
    const int tw = 128;  // 96 * 128 / 96
    EXPECT_EQ(sheet.image.cols, std::max(520, 2 * 8 + 3 * tw + 2 * 6));
    EXPECT_EQ(sheet.image.type(), CV_8UC3);
    const cv::Rect all(0, 0, sheet.image.cols, sheet.image.rows);
    for (std::size_t c = 0; c < 3; ++c) {
        for (const auto& r : {L.caption[c], L.video[c], L.pose[c], L.left_cell[c], L.right_cell[c]}) {
            EXPECT_EQ(r & all, r) << "tile outside the image";
            EXPECT_EQ(r & L.header, cv::Rect()) << "tile over the header";
        }
        EXPECT_EQ(L.video[c].size(), cv::Size(tw, 96));
        EXPECT_EQ(L.left_cell[c].size(), cv::Size(tw / 2, tw / 2));
    }

    // Overlay: text in the header, PASS in green.
    const cv::Mat header = sheet.image(L.header);
    EXPECT_GT(count_differing(header, cv::Scalar(30, 30, 30)), 400);
    cv::Mat green;
    cv::inRange(header, cv::Scalar(0, 150, 0), cv::Scalar(130, 255, 130), green);
    EXPECT_GT(cv::countNonZero(green), 30);
    cv::Mat red;
    cv::inRange(header, cv::Scalar(0, 0, 150), cv::Scalar(130, 130, 255), red);
    EXPECT_EQ(cv::countNonZero(red), 0);  // no FAIL
    // The worst frame's caption is red.
    cv::Mat cap_red;
    cv::inRange(sheet.image(L.caption[1]), cv::Scalar(0, 0, 150), cv::Scalar(130, 130, 255), cap_red);
    EXPECT_GT(cv::countNonZero(cap_red), 10);

    for (std::size_t c = 0; c < 3; ++c) {
        const int64_t t = L.frame_indices[c];
        const cv::Mat& frame = frames[static_cast<std::size_t>(t)];
        // Video tile = the frame resized.
        cv::Mat expect;
        cv::resize(frame, expect, L.video[c].size(), 0, 0, cv::INTER_AREA);
        EXPECT_EQ(cv::norm(sheet.image(L.video[c]), expect, cv::NORM_INF), 0.0) << "column " << c;
        // Pose tile = the pose rendered at video size, resized; the body is drawn.
        cv::resize(ipa::pose::render_pose(seq.frames[static_cast<std::size_t>(t)], kH, kW), expect, L.pose[c].size(), 0,
                   0, cv::INTER_AREA);
        EXPECT_EQ(cv::norm(sheet.image(L.pose[c]), expect, cv::NORM_INF), 0.0);
        EXPECT_GT(count_differing(sheet.image(L.pose[c]), cv::Scalar(0, 0, 0)), 200);

        // Left hand: its box holds every (scaled) keypoint, and the cell shows exactly that
        // crop, enlarged by nearest neighbour with the aspect kept.
        ASSERT_TRUE(L.left_box[c] && L.left_placed[c]);
        const cv::Rect box = *L.left_box[c], placed = *L.left_placed[c];
        for (const auto& k : seq.frames[static_cast<std::size_t>(t)].people[0].hand_left) {
            EXPECT_TRUE(box.contains(cv::Point(static_cast<int>(k.x * 2), static_cast<int>(k.y * 2))));
        }
        EXPECT_EQ(std::max(placed.width, placed.height), tw / 2);
        EXPECT_NEAR(double(placed.width) / placed.height, double(box.width) / box.height, 0.1);
        EXPECT_EQ(placed & L.left_cell[c], placed);
        cv::resize(frame(box), expect, placed.size(), 0, 0, cv::INTER_NEAREST);
        EXPECT_EQ(cv::norm(sheet.image(placed), expect, cv::NORM_INF), 0.0);
        EXPECT_GT(placed.width, 2 * box.width);  // really enlarged
    }
    // Right hand lost in frame 8: no crop; the cell is grey with a label only.
    EXPECT_TRUE(L.right_placed[0] && L.right_placed[1]);
    EXPECT_FALSE(L.right_placed[2]);
    EXPECT_FALSE(L.right_box[2]);
    const cv::Mat cell = sheet.image(L.right_cell[2]);
    const int not_grey = count_differing(cell, cv::Scalar(64, 64, 64));
    EXPECT_GT(not_grey, 0);
    EXPECT_LT(not_grey, cell.rows * cell.cols / 5);
}

TEST(ContactSheet, NoScoreNoKeypointsAndBadFrames) {
    const auto frames = noise_frames();
    const auto sheet = rv::make_contact_sheet("lonely", frames, {}, nullptr, nullptr, {});
    EXPECT_EQ(sheet.layout.frame_indices, (std::vector<int64_t>{0, 2, 3, 5, 6, 8}));
    EXPECT_EQ(sheet.layout.worst_frame, -1);
    for (std::size_t c = 0; c < 6; ++c) EXPECT_FALSE(sheet.layout.left_placed[c]);
    auto bad = frames;
    bad[4] = cv::Mat(10, 10, CV_8UC3);
    EXPECT_THROW(rv::make_contact_sheet("x", bad, {}, nullptr, nullptr, {}), ipa::DataError);
    EXPECT_THROW(rv::make_contact_sheet("x", {}, {}, nullptr, nullptr, {}), ipa::DataError);
}

TEST(ContactSheet, PngWrittenAtomically) {
    ipa::test::TempDir dir("sheet");
    const auto sheet = rv::make_contact_sheet("c", noise_frames(), poses(), nullptr, nullptr, {});
    const fs::path file = dir.path / "out" / "c.png";
    rv::write_png_atomic(file, sheet.image);
    const cv::Mat back = cv::imread(file.string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(back.empty());
    EXPECT_EQ(cv::norm(back, sheet.image, cv::NORM_INF), 0.0);
    int entries = 0;
    for (const auto& e : fs::directory_iterator(dir.path / "out")) entries += e.is_regular_file() ? 1 : 0;
    EXPECT_EQ(entries, 1);                                                              // no temporary left behind
    EXPECT_THROW(rv::write_png_atomic(file / "sub.png", sheet.image), ipa::DataError);  // parent is a file
}
