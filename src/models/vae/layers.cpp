#include "ipa/models/vae/layers.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace ipa::models::vae {
namespace F = torch::nn::functional;

namespace {

using A3 = std::array<int64_t, 3>;

// In-place on a fresh temporary when no graph is recorded (inference), else out of place;
// the values are identical either way.
at::Tensor silu_fresh(at::Tensor t) { return torch::GradMode::is_enabled() ? torch::silu(t) : torch::silu_(t); }

// The last min(T, 2) frames of x, copied (not a view that would pin the whole chunk).
at::Tensor last_frames(const at::Tensor& x, int64_t n) {
    const int64_t t = x.size(2);
    const int64_t k = std::min(t, n);
    return x.narrow(2, t - k, k).clone();
}

// nn.Conv*d's default init (kaiming-uniform a=√5, uniform bias); skipped on `meta` (no data).
void default_init(at::Tensor& weight, at::Tensor& bias) {
    if (weight.is_meta()) return;
    torch::NoGradGuard g;
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight[0].numel()));
    bias.uniform_(-bound, bound);
}

}  // namespace

FeatureCache::Slot& FeatureCache::next() {
    if (cursor_ == slots_.size()) slots_.emplace_back();
    return slots_[cursor_++];
}

// ---- CausalConv3d ----------------------------------------------------------------------

CausalConv3dImpl::CausalConv3dImpl(int64_t in, int64_t out, std::array<int64_t, 3> k, std::array<int64_t, 3> s,
                                   std::array<int64_t, 3> p, const torch::TensorOptions& o)
    : stride(s), padding(p) {
    weight = register_parameter("weight", torch::empty({out, in, k[0], k[1], k[2]}, o));
    bias = register_parameter("bias", torch::empty({out}, o));
    default_init(weight, bias);
}

at::Tensor CausalConv3dImpl::forward(const at::Tensor& x_in, const at::Tensor& cache) {
    // x [B, Cin, T, H, W]; time: 2·pt frames in front (cache first, zeros for the rest),
    // none behind; space: symmetric (ph, pw), done by the convolution itself.
    const auto x = x_in.to(weight.scalar_type());
    int64_t front = 2 * padding[0];
    std::vector<at::Tensor> parts;
    at::Tensor c;
    if (cache.defined() && front > 0) {
        c = cache.to(x.device(), x.scalar_type());
        front -= c.size(2);
        TORCH_CHECK(front >= 0, "CausalConv3d: cache of ", c.size(2), " frames exceeds the causal padding ",
                    2 * padding[0]);
    }
    if (front > 0) {
        auto sizes = x.sizes().vec();
        sizes[2] = front;
        parts.push_back(torch::zeros(sizes, x.options()));
    }
    if (c.defined()) parts.push_back(c);
    at::Tensor xin = x;
    if (!parts.empty()) {
        parts.push_back(x);
        xin = torch::cat(parts, 2);  // [B, Cin, T + 2·pt, H, W]
    }
    return F::conv3d(xin, weight,
                     F::Conv3dFuncOptions()
                         .bias(bias)
                         .stride({stride[0], stride[1], stride[2]})
                         .padding({0, padding[1], padding[2]}));
}

at::Tensor cached_conv(CausalConv3dImpl& conv, const at::Tensor& x, FeatureCache& cache) {
    // ref: Wan2.1 wan/modules/vae.py (the `feat_cache` branch repeated in every block)
    auto& slot = cache.next();
    auto keep = last_frames(x, 2);
    const bool have = slot.state == FeatureCache::Slot::State::tensor;
    if (keep.size(2) < 2 && have) keep = torch::cat({slot.frames.narrow(2, slot.frames.size(2) - 1, 1), keep}, 2);
    auto out = conv.forward(x, have ? slot.frames : at::Tensor());
    slot.state = FeatureCache::Slot::State::tensor;
    slot.frames = keep;
    return out;
}

// ---- Conv2d ------------------------------------------------------------------------------

Conv2dImpl::Conv2dImpl(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, const torch::TensorOptions& o)
    : stride(s), padding(p) {
    weight = register_parameter("weight", torch::empty({out, in, k, k}, o));
    bias = register_parameter("bias", torch::empty({out}, o));
    default_init(weight, bias);
}

at::Tensor Conv2dImpl::forward(const at::Tensor& x) {
    return F::conv2d(x.to(weight.scalar_type()), weight,
                     F::Conv2dFuncOptions().bias(bias).stride(stride).padding(padding));
}

// ---- RMS_norm ----------------------------------------------------------------------------

RMSNormImpl::RMSNormImpl(int64_t dim, bool images, const torch::TensorOptions& o)
    : scale(std::sqrt(static_cast<double>(dim))) {
    gamma = register_parameter("gamma", images ? torch::ones({dim, 1, 1}, o) : torch::ones({dim, 1, 1, 1}, o));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
    // F.normalize(x, dim=1) · √dim · gamma, in that order
    const auto denom = x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);  // [B, 1, ...]
    if (torch::GradMode::is_enabled()) return x / denom * scale * gamma;
    auto y = x / denom;
    y.mul_(scale);
    y.mul_(gamma);
    return y;
}

// ---- ResidualBlock ---------------------------------------------------------------------

ResidualPathImpl::ResidualPathImpl(int64_t in, int64_t out, const torch::TensorOptions& o) {
    const A3 k{3, 3, 3}, s{1, 1, 1}, p{1, 1, 1};
    norm0 = register_module("0", RMSNorm(in, /*images=*/false, o));
    // "1" is SiLU
    conv2 = register_module("2", CausalConv3d(in, out, k, s, p, o));
    norm3 = register_module("3", RMSNorm(out, /*images=*/false, o));
    // "4" is SiLU, "5" Dropout(p = 0)
    conv6 = register_module("6", CausalConv3d(out, out, k, s, p, o));
}

ResidualBlockImpl::ResidualBlockImpl(int64_t in, int64_t out, const torch::TensorOptions& o) {
    residual = register_module("residual", ResidualPath(in, out, o));
    if (in != out)
        shortcut = register_module("shortcut", CausalConv3d(in, out, A3{1, 1, 1}, A3{1, 1, 1}, A3{0, 0, 0}, o));
}

at::Tensor ResidualBlockImpl::forward(const at::Tensor& x, FeatureCache& cache) {
    // x [B, in, T, H, W] -> [B, out, T, H, W]
    const auto h = shortcut ? shortcut->forward(x) : x;
    auto y = cached_conv(*residual->conv2, silu_fresh(residual->norm0->forward(x)), cache);
    y = cached_conv(*residual->conv6, silu_fresh(residual->norm3->forward(y)), cache);
    return torch::GradMode::is_enabled() ? y + h : y.add_(h);
}

// ---- AttentionBlock ----------------------------------------------------------------------

AttentionBlockImpl::AttentionBlockImpl(int64_t dim, const torch::TensorOptions& o) {
    norm = register_module("norm", RMSNorm(dim, /*images=*/true, o));
    to_qkv = register_module("to_qkv", Conv2d(dim, 3 * dim, 1, 1, 0, o));
    proj = register_module("proj", Conv2d(dim, dim, 1, 1, 0, o));
}

at::Tensor AttentionBlockImpl::forward(const at::Tensor& x_in) {
    // x [B, C, T, H, W]; attention over the H·W positions of each frame, one head of width C
    const auto x = x_in.to(proj->weight.scalar_type());
    const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
    auto y = norm->forward(frames_to_images(x));  // [B·T, C, H, W]
    const auto qkv = to_qkv->forward(y).reshape({b * t, 1, 3 * c, h * w}).permute({0, 1, 3, 2}).contiguous();
    const auto parts = qkv.chunk(3, -1);  // q, k, v [B·T, 1, HW, C]
    const auto scores = torch::matmul(parts[0], parts[1].transpose(-2, -1)) * (1.0 / std::sqrt(double(c)));
    y = torch::matmul(scores.softmax(-1), parts[2]);  // [B·T, 1, HW, C]
    y = y.squeeze(1).permute({0, 2, 1}).reshape({b * t, c, h, w});
    y = images_to_frames(proj->forward(y), t);
    return torch::GradMode::is_enabled() ? y + x : y.add_(x);
}

// ---- Resample ----------------------------------------------------------------------------

ResampleImpl::ResampleImpl(int64_t dim, Mode m, const torch::TensorOptions& o) : mode(m) {
    auto holder = std::make_shared<torch::nn::Module>();
    const bool up = mode == Mode::upsample2d || mode == Mode::upsample3d;
    // "resample.0" is Upsample(×2, nearest-exact) for up modes, ZeroPad2d((0, 1, 0, 1)) for down modes.
    conv = holder->register_module("1", up ? Conv2d(dim, dim / 2, 3, 1, 1, o) : Conv2d(dim, dim, 3, 2, 0, o));
    register_module("resample", holder);
    if (mode == Mode::upsample3d) {
        time_conv = register_module("time_conv", CausalConv3d(dim, 2 * dim, A3{3, 1, 1}, A3{1, 1, 1}, A3{1, 0, 0}, o));
    } else if (mode == Mode::downsample3d) {
        time_conv = register_module("time_conv", CausalConv3d(dim, dim, A3{3, 1, 1}, A3{2, 1, 1}, A3{0, 0, 0}, o));
    }
}

at::Tensor ResampleImpl::spatial(const at::Tensor& x) {
    const int64_t t = x.size(2);
    auto y = frames_to_images(x);  // [B·T, C, H, W]
    if (mode == Mode::upsample2d || mode == Mode::upsample3d) {
        // nearest-exact ×2 equals nearest ×2; computed in fp32 like upstream's Upsample
        y = F::interpolate(
                y.to(torch::kFloat),
                F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest))
                .to(x.scalar_type());
    } else {
        y = F::pad(y, F::PadFuncOptions({0, 1, 0, 1}));
    }
    return images_to_frames(conv->forward(y), t);
}

at::Tensor ResampleImpl::forward(const at::Tensor& x_in, FeatureCache& cache) {
    using State = FeatureCache::Slot::State;
    auto x = x_in.to(conv->weight.scalar_type());
    if (mode == Mode::upsample3d) {
        // ref: Wan2.1 wan/modules/vae.py Resample.forward ("Rep" marker: the first chunk skips
        // the time conv; the next one pads with zeros instead of a cache)
        auto& slot = cache.next();
        if (slot.state == State::empty) {
            slot.state = State::rep;
        } else {
            auto keep = last_frames(x, 2);
            if (keep.size(2) < 2) {
                keep = torch::cat({slot.state == State::tensor ? slot.frames.narrow(2, slot.frames.size(2) - 1, 1)
                                                               : torch::zeros_like(keep),
                                   keep},
                                  2);
            }
            const auto y = time_conv->forward(x, slot.state == State::tensor ? slot.frames : at::Tensor());
            slot.state = State::tensor;
            slot.frames = keep;
            // [B, 2C, T, H, W] -> [B, 2, C, T, H, W] -> interleave in time -> [B, C, 2T, H, W]
            const int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
            x = y.view({b, 2, c, t, h, w}).permute({0, 2, 3, 1, 4, 5}).reshape({b, c, 2 * t, h, w});
        }
    }
    x = spatial(x);
    if (mode == Mode::downsample3d) {
        auto& slot = cache.next();
        if (slot.state == State::empty) {
            slot.state = State::tensor;
            slot.frames = x.clone();  // first chunk: no time conv
        } else {
            auto keep = last_frames(x, 1);
            x = time_conv->forward(torch::cat({slot.frames.narrow(2, slot.frames.size(2) - 1, 1), x}, 2));
            slot.frames = keep;
        }
    }
    return x;
}

at::Tensor frames_to_images(const at::Tensor& x) {
    // [B, C, T, H, W] -> [B·T, C, H, W]
    return x.permute({0, 2, 1, 3, 4}).reshape({x.size(0) * x.size(2), x.size(1), x.size(3), x.size(4)});
}

at::Tensor images_to_frames(const at::Tensor& x, int64_t t) {
    // [B·T, C, H, W] -> [B, C, T, H, W]
    return x.reshape({x.size(0) / t, t, x.size(1), x.size(2), x.size(3)}).permute({0, 2, 1, 3, 4});
}

}  // namespace ipa::models::vae
