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

    // ---- the adapter (driven by ipa/lora; docs/architecture.md §5) ----
    // All adapter state is private and changes only through these methods, which keep its
    // invariants: a merged adapter cannot be re-attached, enabled, snapshot or serve as the
    // reference; a snapshot is dropped with the adapter it copied.

    /// Registers a zero-filled adapter of `rank` (fp32; fp64 on an fp64 model) on the
    /// weight's device as submodules `lora_A` [r, in] / `lora_B` [out, r] (replacing an
    /// existing one and its reference snapshot), enabled, with `alpha` and multiplier 1.
    void attach_lora(int64_t rank, double alpha);
    /// Removes the adapter and its snapshot; the base is untouched.
    void detach_lora();
    bool has_lora() const { return !lora_A_.is_empty(); }
    int64_t lora_rank() const { return has_lora() ? lora_A_->weight.size(0) : 0; }
    /// The factors' parameters (undefined without an adapter); writing into them trains.
    torch::Tensor lora_A_weight() const;
    torch::Tensor lora_B_weight() const;
    double lora_alpha() const { return lora_.alpha; }
    double lora_multiplier() const { return lora_.multiplier; }
    /// multiplier · alpha / rank (0 without an adapter).
    double lora_scale() const { return lora_.scale; }
    bool lora_enabled() const { return lora_.enabled; }
    bool lora_merged() const { return lora_.merged; }
    void set_lora_alpha(double alpha);
    void set_lora_multiplier(double multiplier);
    /// Enabling a merged adapter is an error.
    void set_lora_enabled(bool enabled);

    /// Copies the current adapter (when enabled with a non-zero scale; else none) into the
    /// frozen reference: plain tensors, in neither named_parameters() nor checkpoints.
    void snapshot_reference();
    void clear_reference();
    bool has_reference() const { return lora_.ref_A.defined(); }
    torch::Tensor reference_A() const { return lora_.ref_A; }
    int64_t reference_bytes() const;
    /// While on, forward uses the reference (the snapshot, or the base alone) instead of the
    /// adapter. Returns the previous mode. Turning it on for a merged adapter is an error.
    bool set_reference_mode(bool on);

    /// Adds scale·B·A (in fp32) into `weight` and disables the adapter; no-op when disabled
    /// or already merged. Returns whether it merged.
    bool merge_lora();
    /// Subtracts the merged delta again and re-enables the adapter; no-op when not merged.
    void unmerge_lora();

private:
    struct LoRAState {
        double alpha = 0.0;
        double multiplier = 1.0;
        double scale = 0.0;  ///< multiplier · alpha / rank
        bool enabled = false;
        bool merged = false;  ///< merged_scale·B·A is inside `weight`
        double merged_scale = 0.0;
        torch::Tensor ref_A, ref_B;  ///< the reference snapshot (undefined: the base alone)
        double ref_scale = 0.0;
        bool ref_mode = false;
    };
    void update_lora_scale();
    torch::Tensor merged_delta(double scale) const;
    LoRAFactor lora_A_{nullptr};  ///< [r, in]
    LoRAFactor lora_B_{nullptr};  ///< [out, r]
    LoRAState lora_;
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
