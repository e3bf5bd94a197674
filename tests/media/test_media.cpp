// Video/image I/O: round trips, frame selection, the VACE reference loader's rules,
// letterboxing, and every error naming the path.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "ipa/core/error.h"
#include "ipa/media/frames.h"
#include "ipa/media/video.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ipa::media;

using ipa::test::error_of;

namespace {

/// Frame i: gray level 16 + 7·i (left half), and a fixed colour block (right half).
std::vector<cv::Mat> indexed_frames(int n, int h, int w) {
    std::vector<cv::Mat> out;
    for (int i = 0; i < n; ++i) {
        cv::Mat f(h, w, CV_8UC3, cv::Scalar::all(16 + 7 * i));
        f(cv::Rect(w / 2, 0, w - w / 2, h)).setTo(cv::Scalar(200, 40, 10));  // BGR
        out.push_back(f);
    }
    return out;
}

/// Recovers the frame index from the left half's gray level of a [3, T, H, W] tensor.
int64_t frame_index(const at::Tensor& v, int64_t t) {
    const double gray = (v[0][t].narrow(1, 0, v.size(3) / 4).mean().item<double>() + 1) * 127.5;
    return std::lround((gray - 16.0) / 7.0);
}

TEST(Media, Mp4RoundTripKeepsFramesFpsAndColours) {
    ipa::test::TempDir dir("ipa_media");
    const auto p = dir.path / "v.mp4";
    VideoWriteOptions o;
    o.fps = 12.5;
    write_frames_bgr(p, indexed_frames(9, 48, 64), o);
    const auto info = probe_video(p);
    EXPECT_EQ(info.frames, 9);
    EXPECT_EQ(info.width, 64);
    EXPECT_EQ(info.height, 48);
    EXPECT_NEAR(info.fps, 12.5, 1e-6);
    const auto v = read_video(p);
    ASSERT_EQ(v.frames.sizes(), (std::vector<int64_t>{3, 9, 48, 64}));
    EXPECT_NEAR(v.fps, 12.5, 1e-6);
    for (int64_t t = 0; t < 9; ++t) EXPECT_EQ(frame_index(v.frames, t), t);
    // The colour block, RGB order in the tensor: (10, 40, 200) within codec tolerance.
    const auto px = (v.frames.select(1, 4).select(1, 24).select(1, 56) + 1) * 127.5;
    EXPECT_NEAR(px[0].item<double>(), 10, 6);
    EXPECT_NEAR(px[1].item<double>(), 40, 6);
    EXPECT_NEAR(px[2].item<double>(), 200, 6);
    int entries = 0;  // no temporary file left behind
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++entries;
    EXPECT_EQ(entries, 1);
}

TEST(Media, PngFramesRoundTripBitExactly) {
    ipa::test::TempDir dir("ipa_media");
    torch::manual_seed(1);
    const auto u8 = torch::randint(0, 256, {3, 4, 10, 14}).to(torch::kFloat32);
    const auto v = u8 / 127.5 - 1;
    write_video(dir.path / "frames", v);
    EXPECT_TRUE(fs::exists(dir.path / "frames/000003.png"));
    const auto back = read_video(dir.path / "frames");
    // Writing truncates (x+1)/2·255; reading maps u/127.5 − 1: u8 values survive exactly.
    EXPECT_LT((back.frames - v).abs().max().item<double>(), 1e-6);
}

TEST(Media, FrameSelectionAndResizeCrop) {
    ipa::test::TempDir dir("ipa_media");
    write_frames_bgr(dir.path / "f", indexed_frames(12, 20, 30));
    VideoReadOptions o;
    o.start = 1;
    o.stride = 3;
    o.max_frames = 3;
    auto v = read_video(dir.path / "f", o);
    ASSERT_EQ(v.frames.size(1), 3);
    EXPECT_EQ(frame_index(v.frames, 0), 1);
    EXPECT_EQ(frame_index(v.frames, 2), 7);
    // Resize + crop: scale = max(16/30, 16/20) = 0.8 → 16x24, crop x 4..20; compare with LibTorch directly.
    o = {};
    o.size = std::make_pair<int64_t, int64_t>(16, 16);
    v = read_video(dir.path / "f", o);
    ASSERT_EQ(v.frames.sizes(), (std::vector<int64_t>{3, 12, 16, 16}));
    const auto raw = (read_video(dir.path / "f").frames + 1) * 127.5;  // [3, T, 20, 30]
    namespace F = torch::nn::functional;
    auto expect = F::interpolate(raw.transpose(0, 1), F::InterpolateFuncOptions()
                                                          .size(std::vector<int64_t>{16, 24})
                                                          .mode(torch::kBicubic)
                                                          .align_corners(false)
                                                          .antialias(true))
                          .round()
                          .clamp(0, 255)
                          .narrow(3, 4, 16)
                          .transpose(0, 1) /
                      127.5 -
                  1;
    EXPECT_LT((v.frames - expect).abs().max().item<double>(), 1e-6);
}

TEST(Media, ReferenceLoaderFollowsTheVaceRules) {
    // Re-derivation of VaceVideoProcessor._get_frameid_bbox_adjust_last for a 33-frame,
    // 12.5 fps, 64x96 video with a small token cap.
    ipa::test::TempDir dir("ipa_media");
    const auto p = dir.path / "v.avi";  // Motion JPEG: near-lossless grays, so frame ids are readable
    VideoWriteOptions wo;
    wo.fps = 12.5;
    wo.codec = "MJPG";
    write_frames_bgr(p, indexed_frames(30, 64, 96), wo);
    ReferenceVideoOptions o;
    o.seq_len = 60;
    o.max_area = 64 * 96;
    const auto v = read_video_reference(p, o);
    // area_z = min(60, 6144/256 = 24, 4·6 = 24) = 24; of = min((30−1)//4+1 = 8, int(60/24) = 2) = 2;
    // target = min(24, int(60/2) = 30) = 24; oh = round(sqrt(24·64/96)) = 4; ow = int(24/4) = 6;
    // frames (2−1)·4+1 = 5; size 64x96 (no resize).
    ASSERT_EQ(v.frames.sizes(), (std::vector<int64_t>{3, 5, 64, 96}));
    // duration = mean(29/12.5, 30/12.5) = 2.36; timestamps 0, .59, 1.18, 1.77, 2.36 → the
    // first frame whose [i/fps, (i+1)/fps] contains each: 0, 7, 14, 22, 29.
    const std::vector<int64_t> ids{0, 7, 14, 22, 29};
    for (int64_t k = 0; k < 5; ++k) EXPECT_EQ(frame_index(v.frames, k), ids[k]) << k;
    EXPECT_NEAR(v.fps, 5 / 2.36, 1e-4);
    // A longer cap keeps every 4k+1 frames and resizes to the token budget: of = min(8, 60/24) …
    o.seq_len = 32760;
    o.max_area = 32 * 48;  // area_z = 6 → 8 latent frames, oh = round(sqrt(6·2/3)) = 2, ow = 3
    const auto w = read_video_reference(p, o);
    EXPECT_EQ(w.frames.sizes(), (std::vector<int64_t>{3, 29, 32, 48}));
}

TEST(Media, ImagesDropAlphaAndLetterboxOnWhite) {
    ipa::test::TempDir dir("ipa_media");
    cv::Mat rgba(6, 4, CV_8UC4, cv::Scalar(30, 60, 90, 0));  // BGRA, fully transparent
    cv::imwrite((dir.path / "a.png").string(), rgba);
    const auto img = read_image(dir.path / "a.png");
    ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, 6, 4}));
    EXPECT_NEAR((img[0][0][0].item<double>() + 1) * 127.5, 90, 1e-4);  // R, no compositing
    EXPECT_NEAR((img[2][0][0].item<double>() + 1) * 127.5, 30, 1e-4);
    // 6x4 into 12x16: scale = min(2, 4) = 2 → 12x8 at left (16−8)/2 = 4; white elsewhere.
    const auto box = letterbox_reference(img, 12, 16);
    ASSERT_EQ(box.sizes(), (std::vector<int64_t>{3, 12, 16}));
    EXPECT_EQ(box.narrow(2, 0, 4).min().item<float>(), 1.0f);
    EXPECT_EQ(box.narrow(2, 12, 4).min().item<float>(), 1.0f);
    EXPECT_LT((box.narrow(2, 4, 8) - img[0][0][0].item<float>()).select(0, 0).abs().max().item<double>(), 1e-6);
    write_image(dir.path / "b.png", img);
    EXPECT_LT((read_image(dir.path / "b.png") - img).abs().max().item<double>(), 1e-6);
}

TEST(Media, BadInputsAreDataErrorsNamingThePath) {
    ipa::test::TempDir dir("ipa_media");
    const auto missing = dir.path / "nope.mp4";
    EXPECT_NE(error_of<ipa::DataError>([&] { read_video(missing); }).find("nope.mp4': no such file"),
              std::string::npos);
    const auto junk = dir.path / "junk.mp4";
    std::ofstream(junk) << "this is not a video";
    EXPECT_NE(error_of<ipa::DataError>([&] { read_video(junk); }).find("junk.mp4': cannot open as a video"),
              std::string::npos);
    fs::create_directories(dir.path / "empty");
    EXPECT_NE(error_of<ipa::DataError>([&] { read_video(dir.path / "empty"); }).find("no image frames"),
              std::string::npos);
    const auto bad_img = dir.path / "x.png";
    std::ofstream(bad_img) << "garbage";
    EXPECT_NE(error_of<ipa::DataError>([&] { read_image(bad_img); }).find("x.png': not a readable image"),
              std::string::npos);
    EXPECT_NE(error_of<ipa::DataError>([&] {
                  write_video(dir.path / "o.mp4", torch::zeros({4, 2, 8, 8}));
              }).find("o.mp4"),
              std::string::npos);
    EXPECT_NE(error_of<ipa::DataError>([&] {
                  write_video(dir.path / "o.xyz", torch::zeros({3, 2, 8, 8}));
              }).find("extension"),
              std::string::npos);
    EXPECT_NE(error_of<ipa::DataError>([&] {
                  write_video("/proc/forbidden/o.mp4", torch::zeros({3, 2, 8, 8}));
              }).find("forbidden"),
              std::string::npos);
    VideoReadOptions o;
    o.stride = 0;
    EXPECT_NE(error_of<ipa::DataError>([&] { read_video(junk, o); }).find("bad frame selection"), std::string::npos);
}

TEST(Media, TruncatedVideosAndUnsafeOverwritesAreRefused) {
    ipa::test::TempDir dir("ipa_media");
    const auto p = dir.path / "v.avi";
    VideoWriteOptions o;
    o.codec = "MJPG";
    write_frames_bgr(p, indexed_frames(30, 32, 48), o);
    // Cut the file in half: the container still reports 30 frames.
    const auto size = fs::file_size(p);
    fs::resize_file(p, size / 2);
    const auto err = error_of<ipa::DataError>([&] { read_video(p); });
    EXPECT_NE(err.find("v.avi': decoding failed at frame"), std::string::npos) << err;
    // A frame directory replaces only an earlier frame directory.
    fs::create_directories(dir.path / "mine");
    std::ofstream(dir.path / "mine/notes.txt") << "keep me";
    const auto v = torch::zeros({3, 2, 8, 8});
    EXPECT_NE(error_of<ipa::DataError>([&] { write_video(dir.path / "mine", v); }).find("not a frame directory"),
              std::string::npos);
    EXPECT_TRUE(fs::exists(dir.path / "mine/notes.txt"));
    write_video(dir.path / "frames", v);
    write_video(dir.path / "frames", v.narrow(1, 0, 1));  // replaces the earlier frames
    EXPECT_FALSE(fs::exists(dir.path / "frames/000001.png"));
    // Bad tensors name the path.
    EXPECT_NE(error_of<ipa::DataError>([&] {
                  write_video(dir.path / "i.mp4", torch::zeros({3, 2, 8, 8}, torch::kInt64));
              }).find("i.mp4': the tensor to write must be floating point"),
              std::string::npos);
    auto nan = torch::zeros({3, 8, 8});
    nan[0][0][0] = NAN;
    EXPECT_NE(error_of<ipa::DataError>([&] { write_image(dir.path / "n.png", nan); }).find("NaN"), std::string::npos);
}

TEST(Media, ReferenceLoaderTakesFrameDirectoriesAtSixteenFps) {
    ipa::test::TempDir dir("ipa_media");
    write_frames_bgr(dir.path / "f", indexed_frames(9, 32, 32));
    ReferenceVideoOptions o;
    o.max_area = 32 * 32;
    const auto v = read_video_reference(dir.path / "f", o);
    EXPECT_EQ(v.frames.sizes(), (std::vector<int64_t>{3, 9, 32, 32}));
    for (int64_t t = 0; t < 9; ++t) EXPECT_EQ(frame_index(v.frames, t), t);
}

TEST(Media, OddSizesArePaddedForH264) {
    ipa::test::TempDir dir("ipa_media");
    write_frames_bgr(dir.path / "odd.mp4", indexed_frames(3, 15, 21));
    const auto info = probe_video(dir.path / "odd.mp4");
    EXPECT_EQ(info.frames, 3);
    EXPECT_EQ(info.width, 22);
    EXPECT_EQ(info.height, 16);
    VideoWriteOptions o;
    o.codec = "mp4v";
    write_frames_bgr(dir.path / "odd4.mp4", indexed_frames(3, 15, 21), o);
    EXPECT_EQ(probe_video(dir.path / "odd4.mp4").width, 22);
}

}  // namespace
