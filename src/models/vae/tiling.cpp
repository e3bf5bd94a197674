// Public encode/decode of WanVAE: input checks, batching of [C, T, H, W] inputs and the
// spatial tiling with blended overlaps (see VaeTiling in model.h).

#include "ipa/models/vae/tiling.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>

#include "ipa/core/error.h"
#include "ipa/models/vae/model.h"

namespace ipa::models::vae {
namespace {

// Linear ramp weights (i+1)/ramp over `ramp` positions on each side that is not an image
// border (ref: DiffSynth-Studio WanVideoVAE.build_1d_mask). [n] float32.
at::Tensor ramp_1d(int64_t n, int64_t ramp, bool at_start, bool at_end) {
    auto w = torch::ones({n});
    ramp = std::min(ramp, n);
    if (ramp <= 0) return w;
    const auto up = (torch::arange(ramp, torch::kFloat) + 1) / static_cast<double>(ramp);
    if (!at_start) w.narrow(0, 0, ramp).copy_(up);
    if (!at_end) w.narrow(0, n - ramp, ramp).copy_(torch::minimum(w.narrow(0, n - ramp, ramp), up.flip({0})));
    return w;
}

}  // namespace

std::vector<int64_t> tile_starts(int64_t length, int64_t tile, int64_t stride) {
    std::vector<int64_t> starts{0};
    if (length <= tile) return starts;
    while (starts.back() + tile < length) starts.push_back(std::min(starts.back() + stride, length - tile));
    return starts;
}

at::Tensor blend_tiles(const at::Tensor& in, int64_t out_channels, int64_t out_frames, const TileGrid& g,
                       const std::function<at::Tensor(const at::Tensor&)>& fn) {
    // in [B, C, T, H, W] -> [B, out_channels, out_frames, H·num/den, W·num/den] float32
    const int64_t H = in.size(3), W = in.size(4);
    const auto hs = tile_starts(H, g.tile_h, g.stride_h);
    const auto ws = tile_starts(W, g.tile_w, g.stride_w);
    auto to_out = [&](int64_t v) { return v * g.out_num / g.out_den; };
    const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(in.device());
    auto values = torch::zeros({in.size(0), out_channels, out_frames, to_out(H), to_out(W)}, opts);
    auto weight = torch::zeros({to_out(H), to_out(W)}, opts);
    const int64_t th = std::min(g.tile_h, H), tw = std::min(g.tile_w, W);
    for (const auto h0 : hs) {
        for (const auto w0 : ws) {
            const auto out = fn(in.narrow(3, h0, th).narrow(4, w0, tw));  // [B, C', T', th', tw']
            const int64_t ph = out.size(3), pw = out.size(4);
            TORCH_CHECK(
                ph == to_out(th) && pw == to_out(tw) && out.size(1) == out_channels && out.size(2) == out_frames,
                "blend_tiles: tile output ", out.sizes(), " does not fit the grid");
            const auto mh = ramp_1d(ph, to_out(g.tile_h - g.stride_h), h0 == 0, h0 + th >= H);
            const auto mw = ramp_1d(pw, to_out(g.tile_w - g.stride_w), w0 == 0, w0 + tw >= W);
            const auto mask = torch::minimum(mh.view({ph, 1}).expand({ph, pw}), mw.view({1, pw}).expand({ph, pw}))
                                  .to(in.device());  // [ph, pw]
            // accumulate where the input lives (the tiles may run on another device)
            values.narrow(3, to_out(h0), ph).narrow(4, to_out(w0), pw).add_(out.to(in.device(), torch::kFloat) * mask);
            weight.narrow(0, to_out(h0), ph).narrow(1, to_out(w0), pw).add_(mask);
        }
    }
    return values / weight;
}

void VaeTiling::check() const {
    auto bad = [](const std::string& what) { throw ConfigError("vae tiling: " + what); };
    if (tile_h < 1 || tile_w < 1) bad(fmt::format("tile {}x{} (latents) must be positive", tile_h, tile_w));
    if (stride_h < 1 || stride_w < 1) bad(fmt::format("stride {}x{} (latents) must be positive", stride_h, stride_w));
    if (stride_h > tile_h || stride_w > tile_w) {
        bad(fmt::format("stride {}x{} exceeds the tile {}x{}: tiles would leave gaps", stride_h, stride_w, tile_h,
                        tile_w));
    }
}

at::Tensor WanVAEImpl::encode(const at::Tensor& video_in, const VaeTiling& tiling) {
    torch::NoGradGuard no_grad;
    const int64_t ts = cfg_.temporal_stride(), ss = cfg_.spatial_stride();
    const bool single = video_in.dim() == 4;
    if (!single && video_in.dim() != 5) {
        throw DataError(
            fmt::format("VAE encode: video {} must be [3, T, H, W] or [B, 3, T, H, W]", c10::str(video_in.sizes())));
    }
    const auto video = single ? video_in.unsqueeze(0) : video_in;
    if (video.size(1) != 3) {
        throw DataError(fmt::format("VAE encode: video {} has {} channels, expected 3 (RGB) on axis {}",
                                    c10::str(video_in.sizes()), video.size(1), single ? 0 : 1));
    }
    if (!video.is_floating_point()) {
        throw DataError(fmt::format("VAE encode: video dtype {} is not floating point (expected values in [-1, 1])",
                                    c10::toString(video.scalar_type())));
    }
    const int64_t T = video.size(2), H = video.size(3), W = video.size(4);
    if (T < 1 || (T - 1) % ts != 0) {
        throw DataError(
            fmt::format("VAE encode: video {} has {} frames; the Wan VAE needs 1 + {}k frames (1, {}, "
                        "{}, …). Upstream would silently drop the last {} frame(s); trim or pad the clip",
                        c10::str(video_in.sizes()), T, ts, 1 + ts, 1 + 2 * ts, T < 1 ? 0 : (T - 1) % ts));
    }
    if (H < ss || W < ss || H % ss != 0 || W % ss != 0) {
        throw DataError(
            fmt::format("VAE encode: frame size {}x{} (H x W) must be a positive multiple of {}; resize "
                        "or crop first",
                        H, W, ss));
    }
    tiling.check();
    const int64_t h = H / ss, w = W / ss;
    at::Tensor out;
    if (!tiling.enabled || (h <= tiling.tile_h && w <= tiling.tile_w)) {
        out = encode_untiled(video);
    } else {
        const TileGrid grid{tiling.tile_h * ss, tiling.tile_w * ss, tiling.stride_h * ss, tiling.stride_w * ss, 1, ss};
        out = blend_tiles(video, cfg_.z_dim, 1 + (T - 1) / ts, grid,
                          [&](const at::Tensor& v) { return encode_untiled(v); });
    }
    return single ? out.squeeze(0) : out;
}

at::Tensor WanVAEImpl::decode(const at::Tensor& latents_in, const VaeTiling& tiling) {
    torch::NoGradGuard no_grad;
    const bool single = latents_in.dim() == 4;
    if (!single && latents_in.dim() != 5) {
        throw DataError(fmt::format("VAE decode: latents {} must be [{}, t, h, w] or [B, {}, t, h, w]",
                                    c10::str(latents_in.sizes()), cfg_.z_dim, cfg_.z_dim));
    }
    const auto z = single ? latents_in.unsqueeze(0) : latents_in;
    if (z.size(1) != cfg_.z_dim) {
        throw DataError(fmt::format("VAE decode: latents {} have {} channels, the VAE has z_dim {}",
                                    c10::str(latents_in.sizes()), z.size(1), cfg_.z_dim));
    }
    if (z.size(2) < 1 || z.size(3) < 1 || z.size(4) < 1) {
        throw DataError(fmt::format("VAE decode: latents {} are empty", c10::str(latents_in.sizes())));
    }
    if (!z.is_floating_point()) {
        throw DataError(
            fmt::format("VAE decode: latents dtype {} is not floating point", c10::toString(z.scalar_type())));
    }
    tiling.check();
    const int64_t ts = cfg_.temporal_stride(), ss = cfg_.spatial_stride();
    at::Tensor out;
    if (!tiling.enabled || (z.size(3) <= tiling.tile_h && z.size(4) <= tiling.tile_w)) {
        out = decode_untiled(z);
    } else {
        const TileGrid grid{tiling.tile_h, tiling.tile_w, tiling.stride_h, tiling.stride_w, ss, 1};
        out = blend_tiles(z, 3, 1 + ts * (z.size(2) - 1), grid, [&](const at::Tensor& v) { return decode_untiled(v); });
    }
    out.clamp_(-1.0, 1.0);
    return single ? out.squeeze(0) : out;
}

}  // namespace ipa::models::vae
