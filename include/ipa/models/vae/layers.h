#pragma once

// Building blocks of the Wan 2.1 VAE, named like upstream (wan/modules/vae.py) so that
// `named_parameters()` yields the official checkpoint keys.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <cstddef>
#include <vector>

namespace ipa::models::vae {

/// The temporal feature cache of one chunked encode or decode call (upstream's
/// `feat_cache` list + `feat_idx` cursor, as an explicit object instead of module state).
/// Every cached conv owns one slot; slots are consumed in module order by `next()`, and
/// `begin_chunk()` rewinds the cursor before each chunk. A fresh cache is made per call.
class FeatureCache {
public:
    struct Slot {
        enum class State { empty, rep, tensor };
        State state = State::empty;  ///< `rep`: upstream's "Rep" marker (upsample3d, chunk 0 done)
        at::Tensor frames;           ///< [B, C, ≤2, H, W] when state == tensor
    };
    void begin_chunk() { cursor_ = 0; }
    Slot& next();
    std::size_t used() const { return slots_.size(); }  ///< slots created so far

private:
    std::vector<Slot> slots_;
    std::size_t cursor_ = 0;
};

/// Conv3d with causal time padding: the input is zero-padded by 2·pt frames in front and
/// none behind, (ph, pw) on both sides in space. With `cache` (earlier frames) and pt > 0
/// the cache is prepended and the zero padding shrinks by its length.
/// Parameters `weight` [out, in, kt, kh, kw] and `bias` [out].
// ref: Wan2.1 wan/modules/vae.py CausalConv3d
struct CausalConv3dImpl : torch::nn::Module {
    CausalConv3dImpl(int64_t in, int64_t out, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride = {1, 1, 1},
                     std::array<int64_t, 3> padding = {0, 0, 0}, const torch::TensorOptions& options = {});
    /// x [B, in, T, H, W] -> [B, out, T', H', W']
    at::Tensor forward(const at::Tensor& x, const at::Tensor& cache = {});
    at::Tensor weight;
    at::Tensor bias;
    std::array<int64_t, 3> stride;
    std::array<int64_t, 3> padding;
};
TORCH_MODULE(CausalConv3d);

/// Plain Conv2d (`weight` [out, in, k, k], `bias` [out]) with symmetric padding; runs in its
/// weight dtype. (Our own so that it can be built on any device, `meta` included.)
struct Conv2dImpl : torch::nn::Module {
    Conv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
               const torch::TensorOptions& options = {});
    at::Tensor forward(const at::Tensor& x);
    at::Tensor weight;
    at::Tensor bias;
    int64_t stride;
    int64_t padding;
};
TORCH_MODULE(Conv2d);

/// Runs a k=3 causal conv under the cache rule of upstream's encoder/decoder/residual
/// blocks: output = conv(x, old slot); slot ← the last 2 frames of x (or, for a 1-frame x,
/// [last frame of the old slot, x]).
at::Tensor cached_conv(CausalConv3dImpl& conv, const at::Tensor& x, FeatureCache& cache);

/// RMS norm over the channel axis with F.normalize semantics:
/// y = x / max(‖x‖₂, 1e-12) · √dim · gamma. `gamma` is [dim, 1, 1, 1] (5-D input) or
/// [dim, 1, 1] (`images`, 4-D input). No bias (upstream's bias=False).
// ref: Wan2.1 wan/modules/vae.py RMS_norm
struct RMSNormImpl : torch::nn::Module {
    RMSNormImpl(int64_t dim, bool images, const torch::TensorOptions& options = {});
    at::Tensor forward(const at::Tensor& x);
    at::Tensor gamma;
    double scale;
};
TORCH_MODULE(RMSNorm);

/// The `residual` Sequential of a ResidualBlock: 0 RMS_norm, 1 SiLU, 2 CausalConv3d,
/// 3 RMS_norm, 4 SiLU, 5 Dropout (p = 0, identity), 6 CausalConv3d.
struct ResidualPathImpl : torch::nn::Module {
    ResidualPathImpl(int64_t in, int64_t out, const torch::TensorOptions& options = {});
    RMSNorm norm0{nullptr};       // "0"
    CausalConv3d conv2{nullptr};  // "2"
    RMSNorm norm3{nullptr};       // "3"
    CausalConv3d conv6{nullptr};  // "6"
};
TORCH_MODULE(ResidualPath);

/// residual(x) + shortcut(x); `shortcut` is a 1×1×1 conv when in ≠ out, else identity.
// ref: Wan2.1 wan/modules/vae.py ResidualBlock
struct ResidualBlockImpl : torch::nn::Module {
    ResidualBlockImpl(int64_t in, int64_t out, const torch::TensorOptions& options = {});
    /// x [B, in, T, H, W] -> [B, out, T, H, W]; uses two cache slots.
    at::Tensor forward(const at::Tensor& x, FeatureCache& cache);
    ResidualPath residual{nullptr};
    CausalConv3d shortcut{nullptr};  ///< null when in == out
};
TORCH_MODULE(ResidualBlock);

/// Single-head self-attention within each frame (norm → to_qkv 1×1 → softmax(qkᵀ/√C)v →
/// proj 1×1) plus identity. No cache.
// ref: Wan2.1 wan/modules/vae.py AttentionBlock
struct AttentionBlockImpl : torch::nn::Module {
    explicit AttentionBlockImpl(int64_t dim, const torch::TensorOptions& options = {});
    /// x [B, C, T, H, W] -> same shape
    at::Tensor forward(const at::Tensor& x);
    RMSNorm norm{nullptr};
    Conv2d to_qkv{nullptr};
    Conv2d proj{nullptr};
};
TORCH_MODULE(AttentionBlock);

/// Spatial ×2 up/down-sampling per frame, optionally with a cached temporal conv.
/// Keys: `resample.1` (the Conv2d; `resample.0` is the parameterless Upsample /
/// ZeroPad2d) and `time_conv` for the 3-D modes.
// ref: Wan2.1 wan/modules/vae.py Resample
struct ResampleImpl : torch::nn::Module {
    enum class Mode { upsample2d, upsample3d, downsample2d, downsample3d };
    ResampleImpl(int64_t dim, Mode mode, const torch::TensorOptions& options = {});
    /// down: [B, C, T, H, W] -> [B, C, T', H/2, W/2]; up: -> [B, C/2, T', 2H, 2W].
    /// upsample3d: 1st chunk T' = T ("Rep", no time conv), later T' = 2T.
    /// downsample3d: 1st chunk T' = T (no time conv), later (T + 1 − 3)/2 + 1.
    at::Tensor forward(const at::Tensor& x, FeatureCache& cache);
    Mode mode;
    Conv2d conv{nullptr};             // "resample.1"
    CausalConv3d time_conv{nullptr};  // 3-D modes only

private:
    at::Tensor spatial(const at::Tensor& x);  // per frame: [B, C, T, H, W] -> [B, C', T, H', W']
};
TORCH_MODULE(Resample);

/// [B, C, T, H, W] <-> [B·T, C, H, W] (upstream's rearrange 'b c t h w -> (b t) c h w').
at::Tensor frames_to_images(const at::Tensor& x);
at::Tensor images_to_frames(const at::Tensor& x, int64_t t);

}  // namespace ipa::models::vae
