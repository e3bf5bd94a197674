#pragma once

// The Wan 2.1 video VAE (upstream wan/modules/vae.py: Encoder3d, Decoder3d, WanVAE_ and
// the chunked causal encode/decode of WanVAE). Parameter names equal the 194 keys of
// Wan2.1_VAE.pth (encoder.*, conv1, conv2, decoder.*).

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <memory>

#include "ipa/models/vae/config.h"
#include "ipa/models/vae/layers.h"
#include "ipa/models/vae/tiling.h"

namespace ipa::models::vae {

/// Encoder3d: conv1 → downsamples → middle (RB, attention, RB) → head (norm, SiLU, conv).
// ref: Wan2.1 wan/modules/vae.py Encoder3d
struct Encoder3dImpl : torch::nn::Module {
    explicit Encoder3dImpl(const VaeConfig& cfg, const torch::TensorOptions& options = {});
    /// One chunk: x [B, 3, t, H, W] -> [B, 2·z_dim, t', H/8, W/8] (t = 1 → 1; t = 4 → 1).
    at::Tensor forward(const at::Tensor& x, FeatureCache& cache);
    CausalConv3d conv1{nullptr};
    torch::nn::ModuleList downsamples{nullptr};
    torch::nn::ModuleList middle{nullptr};
    RMSNorm head_norm{nullptr};       // "head.0" ("head.1" is SiLU)
    CausalConv3d head_conv{nullptr};  // "head.2"
};
TORCH_MODULE(Encoder3d);

/// Decoder3d: conv1 → middle → upsamples → head.
// ref: Wan2.1 wan/modules/vae.py Decoder3d
struct Decoder3dImpl : torch::nn::Module {
    explicit Decoder3dImpl(const VaeConfig& cfg, const torch::TensorOptions& options = {});
    /// One latent frame: z [B, z_dim, 1, h, w] -> [B, 3, 1 (first chunk) or 4, 8h, 8w].
    at::Tensor forward(const at::Tensor& z, FeatureCache& cache);
    CausalConv3d conv1{nullptr};
    torch::nn::ModuleList middle{nullptr};
    torch::nn::ModuleList upsamples{nullptr};
    RMSNorm head_norm{nullptr};
    CausalConv3d head_conv{nullptr};
};
TORCH_MODULE(Decoder3d);

/// The whole VAE (upstream WanVAE_ plus WanVAE's normalisation and clamping).
///
/// Input rules (checked, DataError naming the violated rule):
///  - video [3, T, H, W] or [B, 3, T, H, W], floating, values nominally in [−1, 1];
///  - T = 1 + 4k frames. Upstream silently drops trailing frames of any other length
///    (it encodes 1 + (T−1)//4 chunks); here such a T is an ERROR, so no frame is lost
///    silently — trim or pad the clip first;
///  - H and W multiples of 8 (other sizes would round the latent grid down).
///  - latents [16, t, h, w] or [B, 16, t, h, w] with t, h, w ≥ 1.
/// Runs in the dtype of the weights (fp32, or bf16 after `to(kBFloat16)`), on their
/// device; outputs are float32. encode/decode run under NoGradGuard (the VAE is frozen).
struct WanVAEImpl : torch::nn::Module {
    /// Parameters in `options` (fp32 CPU by default; `meta` builds without memory).
    explicit WanVAEImpl(const VaeConfig& cfg = {}, const torch::TensorOptions& options = {});

    /// Normalised latent mean: (mu − mean) / std, [.., 16, 1 + (T−1)/4, H/8, W/8] (same
    /// rank as the input). Chunks of 1, 4, 4, … frames through the encoder with one
    /// feature cache per call (per tile when tiled).
    at::Tensor encode(const at::Tensor& video, const VaeTiling& tiling = {});
    /// Video in [−1, 1]: [.., 3, 1 + 4(t−1), 8h, 8w], one latent frame at a time through
    /// the decoder.
    at::Tensor decode(const at::Tensor& latents, const VaeTiling& tiling = {});

    /// Encoder moments after `conv1`: [B, 2·z_dim, t, h, w] (mu = first z_dim channels,
    /// log-variance the rest), untiled, no normalisation. Input [B, 3, T, H, W].
    at::Tensor encode_moments(const at::Tensor& video);
    /// Decoder output before clamping, untiled, from UN-normalised latents [B, z, t, h, w].
    at::Tensor decode_raw(const at::Tensor& z);

    /// (mu − mean) · (1/std) and its inverse z / (1/std) + mean, per channel (axis −4).
    at::Tensor normalize_latents(const at::Tensor& mu) const;
    at::Tensor denormalize_latents(const at::Tensor& z) const;

    const VaeConfig& config() const { return cfg_; }
    c10::ScalarType dtype() const;
    c10::Device device() const;

    Encoder3d encoder{nullptr};
    CausalConv3d conv1{nullptr};  ///< 2z → 2z 1×1×1, on the encoder output
    CausalConv3d conv2{nullptr};  ///< z → z 1×1×1, before the decoder
    Decoder3d decoder{nullptr};

private:
    at::Tensor encode_untiled(const at::Tensor& video);  // [B, 3, T, H, W] -> normalised mu
    at::Tensor decode_untiled(const at::Tensor& z);      // normalised z -> unclamped video
    VaeConfig cfg_;
};
TORCH_MODULE(WanVAE);

}  // namespace ipa::models::vae
