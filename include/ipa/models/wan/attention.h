#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "ipa/models/wan/layers.h"
#include "ipa/models/wan/rope.h"

namespace ipa::models::wan {

/// Self-attention with RMS-normed q/k over all heads and 3D RoPE.
// ref: Wan2.1 wan/modules/model.py WanSelfAttention
struct WanSelfAttentionImpl : torch::nn::Module {
    WanSelfAttentionImpl(int64_t dim, int64_t num_heads, bool qk_norm, double eps,
                         const torch::TensorOptions& options = {});
    /// x [B, L, D]; key_mask [B, 1, 1, L] bool (true = real token) or undefined.
    torch::Tensor forward(const torch::Tensor& x, const RopeTable& rope, const torch::Tensor& key_mask);

    Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
    WanRMSNorm norm_q{nullptr}, norm_k{nullptr};  // absent when qk_norm = false
    int64_t dim, num_heads;
};
TORCH_MODULE(WanSelfAttention);

/// Text cross-attention (t2v and every VACE block): no RoPE, no mask over the text_len
/// context tokens. With `image` (i2v/flf2v) the first ctx_len − text_len context tokens
/// are image tokens attended through k_img/v_img and added before `o`.
/// The keys and values a cross-attention computes from its context (they depend on the
/// context alone, so passes over the same context can share them).
struct CrossKV {
    torch::Tensor k, v;          ///< text keys (after norm_k) and values [B, L_text, D]
    torch::Tensor bias;          ///< additive score bias over the text keys [1, 1, 1, L_text], or undefined
    torch::Tensor k_img, v_img;  ///< image keys/values (i2v/flf2v) or undefined
};

// ref: Wan2.1 wan/modules/model.py WanT2VCrossAttention, WanI2VCrossAttention
struct WanCrossAttentionImpl : torch::nn::Module {
    WanCrossAttentionImpl(int64_t dim, int64_t num_heads, bool qk_norm, double eps, bool image, int64_t text_len,
                          const torch::TensorOptions& options = {});
    /// x [B, L, D], context [B, L_ctx, D]; = attend(x, project(context, text_bias))
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, const torch::Tensor& text_bias = {});
    /// The keys and values of `context`. `text_bias` (or undefined): an additive score bias
    /// per text key, [1, 1, 1, L_text] — log(n) on a key that stands for n identical ones
    /// (the merged zero padding of the prompt, see WanPrelude).
    CrossKV project(const torch::Tensor& context, const torch::Tensor& text_bias = {});
    /// Attention of x's queries over precomputed keys and values.
    torch::Tensor attend(const torch::Tensor& x, const CrossKV& kv);

    Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
    WanRMSNorm norm_q{nullptr}, norm_k{nullptr};
    Linear k_img{nullptr}, v_img{nullptr};  // i2v only
    WanRMSNorm norm_k_img{nullptr};         // i2v only (with qk_norm)
    int64_t dim, num_heads, text_len;
};
TORCH_MODULE(WanCrossAttention);

/// Multi-head attention on [B, L, D] projections: heads split, SDPA in the dtype of `v`
/// (fused kernels on LibTorch ≥ 2), heads merged back to [B, Lq, D].
torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t num_heads, const torch::Tensor& key_mask = {});

}  // namespace ipa::models::wan
