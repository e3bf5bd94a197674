#pragma once

// Leaf layers of the Wan DiT, named like upstream so that `named_parameters()` yields the
// official checkpoint keys.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <array>

namespace ipa::models::wan {

/// One LoRA factor: a bias-free projection holding only `weight` (zero-filled; ipa::lora
/// initialises it), so the adapter keys are `<linear>.lora_A.weight` / `.lora_B.weight`.
struct LoRAFactorImpl : torch::nn::Module {
    LoRAFactorImpl(int64_t out_features, int64_t in_features, const torch::TensorOptions& options = {});
    torch::Tensor weight;  ///< [out, in]
};
TORCH_MODULE(LoRAFactor);

/// nn.Linear whose forward runs in the dtype of its weight (bf16 GEMM when the weight is
/// bf16, like the reference under autocast) and returns that dtype. Parameters `weight`
/// [out, in] and `bias` [out]. Optional LoRA adapter (`lora_A` [r, in], `lora_B`
/// [out, r], fp32) is added by ipa::lora; the base keys never change.
struct LinearImpl : torch::nn::Module {
    LinearImpl(int64_t in_features, int64_t out_features, bool bias = true, const torch::TensorOptions& options = {});
    /// Base projection plus, when active, scale·B(A(x)) computed in the adapter's dtype.
    torch::Tensor forward(const torch::Tensor& x);
    /// The base projection only (no adapter).
    torch::Tensor forward_base(const torch::Tensor& x);

    torch::Tensor weight;
    torch::Tensor bias;
    int64_t in_features;
    int64_t out_features;

    // ---- LoRA slot (driven by ipa/lora) ----
    /// Registers a zero-filled fp32 adapter of `rank` on the weight's device as submodules
    /// `lora_A` / `lora_B` (replacing an existing one, and dropping any reference copy),
    /// enabled, with scale = alpha / rank.
    void attach_lora(int64_t rank, double alpha);
    /// Removes the adapter (and the reference copy); the base is untouched.
    void detach_lora();
    bool has_lora() const { return !lora_A.is_empty(); }
    int64_t lora_rank() const { return has_lora() ? lora_A->weight.size(0) : 0; }
    /// lora_scale = lora_multiplier · lora_alpha / rank.
    void update_lora_scale();
    torch::Tensor lora_A_weight() const;
    torch::Tensor lora_B_weight() const;
    LoRAFactor lora_A{nullptr};  ///< [r, in]
    LoRAFactor lora_B{nullptr};  ///< [out, r]
    double lora_alpha = 0.0;
    double lora_multiplier = 1.0;
    double lora_scale = 0.0;  ///< alpha / rank × user multiplier
    bool lora_enabled = false;
    /// True while lora_merged_scale·B·A is merged into `weight` (ipa::lora::merge_lora).
    bool lora_merged = false;
    double lora_merged_scale = 0.0;

    /// Frozen reference adapter (ipa::lora::snapshot_reference): plain tensors, not
    /// registered, so they are in neither named_parameters() nor checkpoints. Undefined:
    /// the reference is the base alone.
    torch::Tensor ref_A;
    torch::Tensor ref_B;
    double ref_scale = 0.0;
    /// While true, forward uses the reference adapter (or none) instead of lora_A/lora_B.
    bool ref_mode = false;
};
TORCH_MODULE(Linear);

/// Conv3d with kernel = stride = patch size (patch embedding). Runs in its weight dtype.
struct PatchEmbedImpl : torch::nn::Module {
    PatchEmbedImpl(int64_t in_channels, int64_t out_channels, std::array<int64_t, 3> patch,
                   const torch::TensorOptions& options = {});
    /// [B, C, F, H, W] -> [B, D, f, h, w]
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;
    torch::Tensor bias;
    std::array<int64_t, 3> patch;
};
TORCH_MODULE(PatchEmbed);

/// RMSNorm over the whole last dim (all heads): x·rsqrt(mean(x²)+eps) computed in fp32,
/// cast back to the input dtype, times `weight` (fp32 result when the weight is fp32).
// ref: Wan2.1 wan/modules/model.py WanRMSNorm
struct WanRMSNormImpl : torch::nn::Module {
    WanRMSNormImpl(int64_t dim, double eps, const torch::TensorOptions& options = {});
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;
    double eps;
};
TORCH_MODULE(WanRMSNorm);

/// LayerNorm computed in fp32 on the upcast input, cast back to the input dtype.
/// Parameters `weight`/`bias` only when affine.
// ref: Wan2.1 wan/modules/model.py WanLayerNorm
struct WanLayerNormImpl : torch::nn::Module {
    WanLayerNormImpl(int64_t dim, double eps, bool elementwise_affine = false,
                     const torch::TensorOptions& options = {});
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;
    torch::Tensor bias;
    int64_t dim;
    double eps;
};
TORCH_MODULE(WanLayerNorm);

/// GELU with the tanh approximation (upstream nn.GELU(approximate='tanh')).
torch::Tensor gelu_tanh(const torch::Tensor& x);

}  // namespace ipa::models::wan
