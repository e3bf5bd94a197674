// Behaviour of the C++ VAE beyond upstream parity: causality of the chunked cache, batching,
// tiling (off = untiled bit for bit; on ≈ untiled), normalisation, input checks.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipa/core/error.h"
#include "vae_test_util.h"

using namespace ipa::models::vae;
using namespace ipa::test::vae;

namespace {

TEST(VaeModel, ChunkedCacheIsCausal) {
    {  // one cache slot per cached conv / temporal resample: encoder 24, decoder 32, as counted
       // on upstream's feat_idx after one chunk (24 for the encoder, 32 for the decoder)
        auto vae = tiny_vae();
        torch::NoGradGuard g;
        FeatureCache enc, dec;
        vae->encoder->forward(det_uniform({1, 3, 1, 16, 16}, 30), enc);
        vae->decoder->forward(torch::zeros({1, 16, 1, 2, 2}), dec);
        EXPECT_EQ(enc.used(), 24u);
        EXPECT_EQ(dec.used(), 32u);
    }
    // Latent frame j only sees frames up to 4j: encoding a prefix gives the same leading latents.
    auto vae = tiny_vae();
    const auto video = det_uniform({1, 3, 9, 16, 24}, 31);
    const auto full = vae->encode(video);
    ASSERT_EQ(full.sizes(), (std::vector<int64_t>{1, 16, 3, 2, 3}));
    // (not bit-exact: the top 1x1x1 conv1 sees a different number of frames)
    EXPECT_LT(max_abs_diff(vae->encode(video.narrow(2, 0, 1)), full.narrow(2, 0, 1)), 1e-6);
    EXPECT_LT(max_abs_diff(vae->encode(video.narrow(2, 0, 5)), full.narrow(2, 0, 2)), 1e-6);
    // ...and a later frame does change later latents
    auto changed = video.clone();
    changed.select(2, 8).add_(0.5);
    const auto other = vae->encode(changed);
    EXPECT_LT(max_abs_diff(other.narrow(2, 0, 2), full.narrow(2, 0, 2)), 1e-6);
    EXPECT_GT(max_abs_diff(other.narrow(2, 2, 1), full.narrow(2, 2, 1)), 1e-3);

    // decode: output frames 1 + 4(j−1) .. 4j only see latent frames up to j
    const auto z = 2.0 * det_uniform({1, 16, 3, 2, 3}, 32);
    const auto frames = vae->decode(z);
    ASSERT_EQ(frames.sizes(), (std::vector<int64_t>{1, 3, 9, 16, 24}));
    // within fp32 noise (outputs ~2; the convs see different frame counts)
    EXPECT_LT(max_abs_diff(vae->decode(z.narrow(2, 0, 1)), frames.narrow(2, 0, 1)), 1e-5);
    EXPECT_LT(max_abs_diff(vae->decode(z.narrow(2, 0, 2)), frames.narrow(2, 0, 5)), 1e-5);
    auto changed_z = z.clone();
    changed_z.select(2, 2).add_(0.5);
    EXPECT_LT(max_abs_diff(vae->decode(changed_z).narrow(2, 0, 5), frames.narrow(2, 0, 5)), 1e-5);
    EXPECT_GT(max_abs_diff(vae->decode(changed_z).narrow(2, 5, 4), frames.narrow(2, 5, 4)), 1e-3);
}

TEST(VaeModel, BatchingAndNormalisation) {
    auto vae = tiny_vae();
    const auto video = det_uniform({2, 3, 5, 16, 16}, 33);
    const auto batched = vae->encode(video);
    const auto one = vae->encode(video[1]);  // [3, T, H, W] -> [16, t, h, w]
    ASSERT_EQ(one.dim(), 4);
    EXPECT_LT(max_abs_diff(one, batched[1]), 1e-5);
    const auto frames = vae->decode(batched);
    const auto frames1 = vae->decode(batched[1]);
    ASSERT_EQ(frames1.sizes(), (std::vector<int64_t>{3, 5, 16, 16}));
    EXPECT_LT(max_abs_diff(frames1, frames[1]), 1e-5);

    // normalisation: round trip and the official statistics
    const auto mu = torch::randn({2, 16, 3, 2, 2}) * 3;
    const auto z = vae->normalize_latents(mu);
    EXPECT_LT(max_abs_diff(vae->denormalize_latents(z), mu), 1e-5);
    // channel 7: mean 1.5508, std 2.0743; channel 8: mean 0.4134, std 3.2687
    auto probe = torch::zeros({16, 1, 1, 1});
    probe[7] = 1.5508 + 2.0743;
    probe[8] = 0.4134;
    const auto n = vae->normalize_latents(probe);
    EXPECT_NEAR(n[7].item<double>(), 1.0, 1e-6);
    EXPECT_NEAR(n[8].item<double>(), 0.0, 1e-7);
    EXPECT_NEAR(n[0].item<double>(), 0.7571 / 2.8184, 1e-6);
}

TEST(VaeTilingTest, OffOrSingleTileIsTheUntiledResultBitForBit) {
    auto vae = tiny_vae();
    const auto video = det_uniform({1, 3, 5, 32, 48}, 34);
    const auto untiled = vae->encode(video);
    VaeTiling big;
    big.enabled = true;
    big.tile_h = 4;  // latent grid is 4 x 6
    big.tile_w = 6;
    big.stride_h = big.stride_w = 2;
    EXPECT_TRUE(torch::equal(vae->encode(video, big), untiled));
    VaeTiling off = big;
    off.enabled = false;
    off.tile_h = off.tile_w = 2;
    EXPECT_TRUE(torch::equal(vae->encode(video, off), untiled));
    const auto frames = vae->decode(untiled);
    EXPECT_TRUE(torch::equal(vae->decode(untiled, big), frames));
    EXPECT_TRUE(torch::equal(vae->decode(untiled, off), frames));
}

// Tile placement, and the blend of a per-position function must reproduce the untiled result:
// the weights of overlapping tiles sum to one everywhere and every tile lands where it belongs.
TEST(VaeTilingTest, GeometryAndBlendWeights) {
    EXPECT_EQ(tile_starts(60, 34, 18), (std::vector<int64_t>{0, 18, 26}));               // 480 px rows
    EXPECT_EQ(tile_starts(104, 34, 16), (std::vector<int64_t>{0, 16, 32, 48, 64, 70}));  // 832 px
    EXPECT_EQ(tile_starts(34, 34, 18), (std::vector<int64_t>{0}));
    EXPECT_EQ(tile_starts(10, 34, 18), (std::vector<int64_t>{0}));
    EXPECT_EQ(tile_starts(12, 4, 4), (std::vector<int64_t>{0, 4, 8}));

    const auto x = det_uniform({2, 3, 2, 11, 17}, 36);
    const auto fn = [](const at::Tensor& t) {  // ×8 nearest upsampling of 2x+1, 3 -> 2 channels
        return (2 * t.narrow(1, 0, 2) + 1).repeat_interleave(8, 3).repeat_interleave(8, 4);
    };
    const auto want = fn(x);
    for (const auto& g : {TileGrid{4, 6, 2, 3, 8, 1}, TileGrid{5, 5, 5, 5, 8, 1}, TileGrid{11, 4, 7, 1, 8, 1}}) {
        const auto got = blend_tiles(x, 2, 2, g, fn);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_LT(max_abs_diff(got, want), 2e-6)
            << g.tile_h << "x" << g.tile_w << " stride " << g.stride_h << "x" << g.stride_w;
    }
    // the encode direction (output grid 1/8 of the input)
    const auto big = det_uniform({1, 1, 1, 48, 64}, 37);
    const auto pool = [](const at::Tensor& t) { return torch::avg_pool3d(t, {1, 8, 8}); };
    EXPECT_LT(max_abs_diff(blend_tiles(big, 1, 1, TileGrid{24, 32, 16, 8, 1, 8}, pool), pool(big)), 2e-6);
}

// Tiled vs untiled on the tiny random-weight VAE. Tiles see zero padding where the untiled
// run sees neighbours, and this VAE's receptive field is larger than the tiles, so they
// differ everywhere a little; blended overlaps must beat hard seams (stride = tile).
TEST(VaeTilingTest, TiledIsCloseToUntiled) {
    auto vae = tiny_vae();
    const auto video = det_uniform({1, 3, 5, 64, 96}, 35);  // latents 8 x 12
    const auto untiled = vae->encode(video);
    VaeTiling t;
    t.enabled = true;
    t.tile_h = t.tile_w = 8;
    t.stride_h = t.stride_w = 4;
    VaeTiling hard = t;
    hard.tile_h = hard.tile_w = hard.stride_h = hard.stride_w = 4;
    const auto tiled = vae->encode(video, t), seams = vae->encode(video, hard);
    const double scale = untiled.abs().max().item<double>();
    const double err = max_abs_diff(tiled, untiled), mean_err = (tiled - untiled).abs().mean().item<double>();
    const double mean_hard = (seams - untiled).abs().mean().item<double>();

    const auto frames = vae->decode(untiled);
    const auto dtiled = vae->decode(untiled, t), dhard = vae->decode(untiled, hard);
    const double derr = max_abs_diff(dtiled, frames), dmean = (dtiled - frames).abs().mean().item<double>();
    const double dmean_hard = (dhard - frames).abs().mean().item<double>();
    std::printf(
        "[vae tiling] encode max|z|=%.3f tiled-untiled max %.3e mean %.3e (hard seams: mean %.3e)\n"
        "[vae tiling] decode tiled-untiled max %.3e mean %.3e (hard seams: mean %.3e)\n",
        scale, err, mean_err, mean_hard, derr, dmean, dmean_hard);
    EXPECT_GT(err, 0.0);  // really tiled
    EXPECT_LT(mean_err, 0.8 * mean_hard);
    EXPECT_LT(dmean, 0.8 * dmean_hard);
    EXPECT_LT(mean_err, 0.05 * scale);
    EXPECT_LT(dmean, 0.1);
    EXPECT_LE(dtiled.abs().max().item<double>(), 1.0);
}

TEST(VaeInputChecks, FrameCountSizeChannelsAndTiling) {
    auto vae = tiny_vae();
    const auto msg_t = error_of([&] { vae->encode(torch::zeros({3, 6, 16, 16})); });
    EXPECT_CONTAINS(msg_t, "6 frames");
    EXPECT_CONTAINS(msg_t, "1 + 4k");
    EXPECT_CONTAINS(msg_t, "drop the last 1");
    EXPECT_CONTAINS(error_of([&] { vae->encode(torch::zeros({3, 5, 20, 16})); }), "multiple of 8");
    EXPECT_CONTAINS(error_of([&] { vae->encode(torch::zeros({1, 4, 5, 16, 16})); }), "4 channels");
    EXPECT_CONTAINS(error_of([&] { vae->encode(torch::zeros({5, 16, 16})); }), "[3, T, H, W]");
    EXPECT_CONTAINS(error_of([&] { vae->encode(torch::zeros({3, 1, 16, 16}, torch::kUInt8)); }), "floating");
    EXPECT_CONTAINS(error_of([&] { vae->decode(torch::zeros({8, 2, 2, 2})); }), "z_dim 16");
    EXPECT_CONTAINS(error_of([&] { vae->decode(torch::zeros({16, 0, 2, 2})); }), "empty");
    VaeTiling bad;
    bad.enabled = true;
    bad.tile_h = 4;
    bad.stride_h = 5;
    EXPECT_CONTAINS(error_of([&] { vae->encode(torch::zeros({3, 1, 16, 16}), bad); }), "exceeds the tile");
    EXPECT_THROW(vae->encode(torch::zeros({3, 2, 16, 16})), ipa::DataError);
}

}  // namespace
