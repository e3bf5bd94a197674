#include "ipa/models/vae/model.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "ipa/core/error.h"

namespace ipa::models::vae {
namespace {

using A3 = std::array<int64_t, 3>;

CausalConv3d conv333(int64_t in, int64_t out, const torch::TensorOptions& o) {
    return CausalConv3d(in, out, A3{3, 3, 3}, A3{1, 1, 1}, A3{1, 1, 1}, o);
}

bool has_scale(const std::vector<double>& scales, double s) {
    return std::any_of(scales.begin(), scales.end(), [&](double v) { return std::abs(v - s) < 1e-12; });
}

// Registers "head" = {0: RMS_norm, 2: CausalConv3d} ("1" is SiLU).
void make_head(torch::nn::Module& parent, int64_t in, int64_t out, RMSNorm& norm, CausalConv3d& conv,
               const torch::TensorOptions& o) {
    auto head = std::make_shared<torch::nn::Module>();
    norm = head->register_module("0", RMSNorm(in, /*images=*/false, o));
    conv = head->register_module("2", conv333(in, out, o));
    parent.register_module("head", head);
}

// Runs a block list (residual blocks, attention blocks, resamples) in order.
at::Tensor run_blocks(torch::nn::ModuleList& blocks, at::Tensor x, FeatureCache& cache) {
    for (const auto& m : *blocks) {
        if (auto* rb = m->as<ResidualBlockImpl>()) {
            x = rb->forward(x, cache);
        } else if (auto* attn = m->as<AttentionBlockImpl>()) {
            x = attn->forward(x);
        } else if (auto* rs = m->as<ResampleImpl>()) {
            x = rs->forward(x, cache);
        } else {
            TORCH_CHECK(false, "unexpected VAE block ", m->name());
        }
    }
    return x;
}

at::Tensor run_head(RMSNorm& norm, CausalConv3d& conv, const at::Tensor& x, FeatureCache& cache) {
    auto y = norm->forward(x);
    y = torch::GradMode::is_enabled() ? torch::silu(y) : torch::silu_(y);
    return cached_conv(*conv, y, cache);
}

}  // namespace

// ---- Encoder3d -----------------------------------------------------------------------------

Encoder3dImpl::Encoder3dImpl(const VaeConfig& cfg, const torch::TensorOptions& o) {
    // dims = dim · [1] + dim_mult, e.g. [96, 96, 192, 384, 384]
    std::vector<int64_t> dims{cfg.dim};
    for (auto m : cfg.dim_mult) dims.push_back(cfg.dim * m);
    conv1 = register_module("conv1", conv333(3, dims[0], o));
    downsamples = torch::nn::ModuleList();
    double scale = 1.0;
    int64_t out_dim = dims[0];
    const auto levels = cfg.dim_mult.size();
    for (std::size_t i = 0; i < levels; ++i) {
        int64_t in_dim = dims[i];
        out_dim = dims[i + 1];
        for (int64_t j = 0; j < cfg.num_res_blocks; ++j) {
            downsamples->push_back(ResidualBlock(in_dim, out_dim, o));
            if (has_scale(cfg.attn_scales, scale)) downsamples->push_back(AttentionBlock(out_dim, o));
            in_dim = out_dim;
        }
        if (i != levels - 1) {
            downsamples->push_back(Resample(
                out_dim,
                cfg.temperal_downsample[i] ? ResampleImpl::Mode::downsample3d : ResampleImpl::Mode::downsample2d, o));
            scale /= 2.0;
        }
    }
    register_module("downsamples", downsamples);
    middle = torch::nn::ModuleList(ResidualBlock(out_dim, out_dim, o), AttentionBlock(out_dim, o),
                                   ResidualBlock(out_dim, out_dim, o));
    register_module("middle", middle);
    make_head(*this, out_dim, 2 * cfg.z_dim, head_norm, head_conv, o);
}

at::Tensor Encoder3dImpl::forward(const at::Tensor& x, FeatureCache& cache) {
    // x [B, 3, t, H, W] -> [B, 2z, t', H/8, W/8]
    // ref: Wan2.1 wan/modules/vae.py Encoder3d.forward (feat_cache branch)
    auto y = cached_conv(*conv1, x, cache);
    y = run_blocks(downsamples, y, cache);
    y = run_blocks(middle, y, cache);
    return run_head(head_norm, head_conv, y, cache);
}

// ---- Decoder3d -----------------------------------------------------------------------------

Decoder3dImpl::Decoder3dImpl(const VaeConfig& cfg, const torch::TensorOptions& o) {
    // dims = dim · ([dim_mult[-1]] + reversed(dim_mult)), e.g. [384, 384, 384, 192, 96]
    const auto levels = cfg.dim_mult.size();
    std::vector<int64_t> dims{cfg.dim * cfg.dim_mult.back()};
    for (auto it = cfg.dim_mult.rbegin(); it != cfg.dim_mult.rend(); ++it) dims.push_back(cfg.dim * *it);
    std::vector<bool> temperal_upsample(cfg.temperal_downsample.rbegin(), cfg.temperal_downsample.rend());
    conv1 = register_module("conv1", conv333(cfg.z_dim, dims[0], o));
    middle = torch::nn::ModuleList(ResidualBlock(dims[0], dims[0], o), AttentionBlock(dims[0], o),
                                   ResidualBlock(dims[0], dims[0], o));
    register_module("middle", middle);
    upsamples = torch::nn::ModuleList();
    double scale = 1.0 / double(int64_t{1} << (levels - 2));
    int64_t out_dim = dims[0];
    for (std::size_t i = 0; i < levels; ++i) {
        // every up-sampler halves the channels, so later levels start from half the width
        // (upstream hard-codes i in {1, 2, 3} for its 4 levels)
        int64_t in_dim = i >= 1 ? dims[i] / 2 : dims[i];
        out_dim = dims[i + 1];
        for (int64_t j = 0; j < cfg.num_res_blocks + 1; ++j) {
            upsamples->push_back(ResidualBlock(in_dim, out_dim, o));
            if (has_scale(cfg.attn_scales, scale)) upsamples->push_back(AttentionBlock(out_dim, o));
            in_dim = out_dim;
        }
        if (i != levels - 1) {
            upsamples->push_back(Resample(
                out_dim, temperal_upsample[i] ? ResampleImpl::Mode::upsample3d : ResampleImpl::Mode::upsample2d, o));
            scale *= 2.0;
        }
    }
    register_module("upsamples", upsamples);
    make_head(*this, out_dim, 3, head_norm, head_conv, o);
}

at::Tensor Decoder3dImpl::forward(const at::Tensor& z, FeatureCache& cache) {
    // z [B, z_dim, 1, h, w] -> [B, 3, 1 or 4, 8h, 8w]
    // ref: Wan2.1 wan/modules/vae.py Decoder3d.forward (feat_cache branch)
    auto y = cached_conv(*conv1, z, cache);
    y = run_blocks(middle, y, cache);
    y = run_blocks(upsamples, y, cache);
    return run_head(head_norm, head_conv, y, cache);
}

// ---- WanVAE ----------------------------------------------------------------------------------

WanVAEImpl::WanVAEImpl(const VaeConfig& cfg, const torch::TensorOptions& o) : cfg_(cfg) {
    cfg_.validate();
    encoder = register_module("encoder", Encoder3d(cfg_, o));
    conv1 = register_module("conv1",
                            CausalConv3d(2 * cfg_.z_dim, 2 * cfg_.z_dim, A3{1, 1, 1}, A3{1, 1, 1}, A3{0, 0, 0}, o));
    conv2 = register_module("conv2", CausalConv3d(cfg_.z_dim, cfg_.z_dim, A3{1, 1, 1}, A3{1, 1, 1}, A3{0, 0, 0}, o));
    decoder = register_module("decoder", Decoder3d(cfg_, o));
}

c10::ScalarType WanVAEImpl::dtype() const { return conv2->weight.scalar_type(); }

c10::Device WanVAEImpl::device() const { return conv2->weight.device(); }

at::Tensor WanVAEImpl::encode_moments(const at::Tensor& video) {
    // video [B, 3, T, H, W], T = 1 + 4k -> [B, 2z, 1 + k, H/8, W/8]
    // ref: Wan2.1 wan/modules/vae.py WanVAE_.encode (chunks [0:1], [1:5], [5:9], …)
    const int64_t ts = cfg_.temporal_stride();
    TORCH_CHECK(video.dim() == 5 && (video.size(2) - 1) % ts == 0, "encode_moments: bad video shape ",
                c10::str(video.sizes()));
    const auto x = video.to(device(), dtype());
    const int64_t chunks = 1 + (x.size(2) - 1) / ts;
    FeatureCache cache;
    std::vector<at::Tensor> outs;
    for (int64_t i = 0; i < chunks; ++i) {
        cache.begin_chunk();
        const auto chunk = i == 0 ? x.narrow(2, 0, 1) : x.narrow(2, 1 + ts * (i - 1), ts);
        outs.push_back(encoder->forward(chunk, cache));
    }
    return conv1->forward(torch::cat(outs, 2));
}

at::Tensor WanVAEImpl::decode_raw(const at::Tensor& z_in) {
    // z [B, z_dim, t, h, w] (un-normalised) -> [B, 3, 1 + 4(t−1), 8h, 8w]
    // ref: Wan2.1 wan/modules/vae.py WanVAE_.decode (one latent frame per chunk)
    const auto x = conv2->forward(z_in.to(device(), dtype()));
    FeatureCache cache;
    std::vector<at::Tensor> outs;
    for (int64_t i = 0; i < x.size(2); ++i) {
        cache.begin_chunk();
        outs.push_back(decoder->forward(x.narrow(2, i, 1), cache));
    }
    return torch::cat(outs, 2);
}

at::Tensor WanVAEImpl::normalize_latents(const at::Tensor& mu) const {
    // scale = [mean, 1/std] as float32 tensors (upstream WanVAE.scale), per channel
    const auto o = mu.options();
    const auto shape = std::vector<int64_t>{cfg_.z_dim, 1, 1, 1};
    const auto mean = torch::tensor(cfg_.latent_mean, torch::kDouble).to(torch::kFloat).view(shape).to(o);
    const auto inv_std = (1.0 / torch::tensor(cfg_.latent_std, torch::kDouble).to(torch::kFloat)).view(shape).to(o);
    return (mu - mean) * inv_std;
}

at::Tensor WanVAEImpl::denormalize_latents(const at::Tensor& z) const {
    const auto o = z.options();
    const auto shape = std::vector<int64_t>{cfg_.z_dim, 1, 1, 1};
    const auto mean = torch::tensor(cfg_.latent_mean, torch::kDouble).to(torch::kFloat).view(shape).to(o);
    const auto inv_std = (1.0 / torch::tensor(cfg_.latent_std, torch::kDouble).to(torch::kFloat)).view(shape).to(o);
    return z / inv_std + mean;
}

at::Tensor WanVAEImpl::encode_untiled(const at::Tensor& video) {
    const auto moments = encode_moments(video);
    return normalize_latents(moments.narrow(1, 0, cfg_.z_dim).to(torch::kFloat));
}

at::Tensor WanVAEImpl::decode_untiled(const at::Tensor& z) {
    return decode_raw(denormalize_latents(z.to(torch::kFloat))).to(torch::kFloat);
}

}  // namespace ipa::models::vae
