#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include "ipa/models/wan/attention.h"
#include "ipa/models/wan/config.h"

namespace ipa::models::wan {

/// What every block of one forward shares.
struct BlockArgs {
    torch::Tensor e0;            ///< [B, 6, D] fp32 time projection
    torch::Tensor context;       ///< [B, L_ctx, D] embedded text (+ image) tokens
    torch::Tensor context_bias;  ///< [1, 1, 1, L_ctx] additive cross-attention bias, or undefined
    RopeTable rope;              ///< for the padded token sequence
    torch::Tensor key_mask;      ///< [B, 1, 1, seq_len] bool, or undefined when unpadded
};

/// Transformer block with 6-way modulation:
///   x += SelfAttn(LN1(x)·(1+m1)+m0)·m2;  x += CrossAttn(LN3(x), ctx);  x += FFN(LN2(x)·(1+m4)+m3)·m5
// ref: Wan2.1 wan/modules/model.py WanAttentionBlock
struct WanAttentionBlockImpl : torch::nn::Module {
    WanAttentionBlockImpl(const WanConfig& cfg, bool image_cross_attn, const torch::TensorOptions& options = {});
    /// x [B, L, D] -> [B, L, D] (fp32 after the first residual add). `context_bias`: see
    /// BlockArgs. `cross_kv`: the cross attention's keys and values of `context` (with the
    /// bias), precomputed (cross_attn->project), or null.
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& e0, const torch::Tensor& context,
                          const RopeTable& rope, const torch::Tensor& key_mask, const torch::Tensor& context_bias,
                          const CrossKV* cross_kv = nullptr);

    WanLayerNorm norm1{nullptr};
    WanSelfAttention self_attn{nullptr};
    WanLayerNorm norm3{nullptr};  // affine; absent when cross_attn_norm = false (identity)
    WanCrossAttention cross_attn{nullptr};
    WanLayerNorm norm2{nullptr};
    torch::nn::Sequential ffn{nullptr};  // 0 Linear, 1 GELU(tanh), 2 Linear
    torch::Tensor modulation;            // [1, 6, D]
};
TORCH_MODULE(WanAttentionBlock);

/// A VACE context block: a WanAttentionBlock over the control tokens c, with
/// `before_proj` (block 0 only: c = before_proj(c) + x) and `after_proj` (the hint).
// ref: Wan2.1 wan/modules/vace_model.py VaceWanAttentionBlock
struct VaceWanAttentionBlockImpl : WanAttentionBlockImpl {
    VaceWanAttentionBlockImpl(const WanConfig& cfg, int64_t block_id, const torch::TensorOptions& options = {});
    /// Returns {c, hint}.
    std::pair<torch::Tensor, torch::Tensor> forward_vace(const torch::Tensor& c, const torch::Tensor& x,
                                                         const torch::Tensor& e0, const torch::Tensor& context,
                                                         const RopeTable& rope, const torch::Tensor& key_mask,
                                                         const torch::Tensor& context_bias);
    Linear before_proj{nullptr};  // block 0 only
    Linear after_proj{nullptr};
    int64_t block_id;
};
TORCH_MODULE(VaceWanAttentionBlock);

/// Output head: LN(x)·(1+scale)+shift with (shift, scale) = head.modulation + e, then Linear.
// ref: Wan2.1 wan/modules/model.py Head
struct HeadImpl : torch::nn::Module {
    HeadImpl(int64_t dim, int64_t out_dim, const std::array<int64_t, 3>& patch, double eps,
             const torch::TensorOptions& options = {});
    /// x [B, L, D], e [B, D] -> [B, L, out_dim·prod(patch)]
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& e);
    WanLayerNorm norm{nullptr};  // no parameters
    Linear head{nullptr};
    torch::Tensor modulation;  // [1, 2, D]
};
TORCH_MODULE(Head);

/// CLIP image-feature projection of i2v/flf2v (`img_emb`).
// ref: Wan2.1 wan/modules/model.py MLPProj
struct MLPProjImpl : torch::nn::Module {
    MLPProjImpl(int64_t in_dim, int64_t out_dim, bool flf_pos_emb, const torch::TensorOptions& options = {});
    /// clip features [B, 257 (·2), 1280] -> [B, n, D]
    torch::Tensor forward(const torch::Tensor& image_embeds);
    torch::nn::Sequential proj{nullptr};  // 0 LayerNorm, 1 Linear, 2 GELU(erf), 3 Linear, 4 LayerNorm
    torch::Tensor emb_pos;                // flf2v only [1, 514, 1280]
};
TORCH_MODULE(MLPProj);

}  // namespace ipa::models::wan
