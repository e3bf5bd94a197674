#pragma once

// The umT5 encoder of Wan 2.1 with upstream module names, so that `named_parameters()`
// yields the keys of `models_t5_umt5-xxl-enc-bf16.pth` (token_embedding.weight,
// blocks.N.norm1.weight, blocks.N.attn.{q,k,v,o}.weight, blocks.N.norm2.weight,
// blocks.N.ffn.gate.0.weight, blocks.N.ffn.fc1.weight, blocks.N.ffn.fc2.weight,
// blocks.N.pos_embedding.embedding.weight, norm.weight).
//
// Numerics follow the reference run outside autocast (docs/wan-vace.md §6.4): every op runs
// in the dtype of the weights (bf16 for the released file), with the same sequence of
// elementwise ops as upstream so the bf16 roundings are the same; the norm's variance and
// the softmax are computed in fp32. With fp32 weights everything is fp32.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include "ipa/models/t5/config.h"

namespace ipa::models::t5 {

/// Bias-free projection `weight` [out, in]; runs in the weight's dtype.
struct T5LinearImpl : torch::nn::Module {
    T5LinearImpl(int64_t in_features, int64_t out_features, const torch::TensorOptions& options = {});
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;
};
TORCH_MODULE(T5Linear);

/// Lookup table `weight` [num, dim].
struct T5EmbeddingImpl : torch::nn::Module {
    T5EmbeddingImpl(int64_t num, int64_t dim, const torch::TensorOptions& options = {});
    /// int64 ids [...] -> [..., dim]
    torch::Tensor forward(const torch::Tensor& ids);
    torch::Tensor weight;
};
TORCH_MODULE(T5Embedding);

/// GELU, tanh approximation, written as upstream's sequence of elementwise ops (each
/// rounded to the tensor's dtype): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
// ref: Wan2.1 wan/modules/t5.py GELU
struct T5GELUImpl : torch::nn::Module {
    torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(T5GELU);

/// T5 RMS norm without mean subtraction or bias: x·rsqrt(mean(x_fp32²) + eps) (fp32
/// product), cast to the weight's dtype when that is fp16/bf16, times `weight`.
// ref: Wan2.1 wan/modules/t5.py T5LayerNorm
struct T5LayerNormImpl : torch::nn::Module {
    T5LayerNormImpl(int64_t dim, double eps, const torch::TensorOptions& options = {});
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;
    double eps;
};
TORCH_MODULE(T5LayerNorm);

/// Multi-head attention without 1/√d scaling; q, k, v, o bias-free.
// ref: Wan2.1 wan/modules/t5.py T5Attention
struct T5AttentionImpl : torch::nn::Module {
    T5AttentionImpl(int64_t dim, int64_t dim_attn, int64_t num_heads, const torch::TensorOptions& options = {});
    /// x [B, L, dim]; mask [B, L] (0 = padding key) or undefined; pos_bias [1|B, H, L, L]
    /// or undefined -> [B, L, dim]
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& pos_bias);
    T5Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
    int64_t num_heads;
    int64_t head_dim;
};
TORCH_MODULE(T5Attention);

/// fc2(fc1(x) ⊙ GELU_tanh(gate.0(x))).
// ref: Wan2.1 wan/modules/t5.py T5FeedForward
struct T5FeedForwardImpl : torch::nn::Module {
    T5FeedForwardImpl(int64_t dim, int64_t dim_ffn, const torch::TensorOptions& options = {});
    torch::Tensor forward(const torch::Tensor& x);
    torch::nn::Sequential gate{nullptr};  // 0 T5Linear, 1 GELU(tanh) (no parameters)
    T5Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(T5FeedForward);

/// Relative-position bucket of `rel_pos` = key position − query position (int64 tensor),
/// with upstream's exact arithmetic: small distances (< num_buckets/4 bidirectional)
/// are their own bucket; larger ones are log-spaced up to `max_dist`, computed as
/// `trunc(log(float32(n) / max_exact) / ln(max_dist / max_exact) · (nb − max_exact))`
/// in float32 tensor ops, so the boundaries match upstream bit for bit.
// ref: Wan2.1 wan/modules/t5.py T5RelativeEmbedding._relative_position_bucket
torch::Tensor relative_position_bucket(const torch::Tensor& rel_pos, bool bidirectional, int64_t num_buckets,
                                       int64_t max_dist);

/// Learned relative-position bias: `embedding` [num_buckets, num_heads].
// ref: Wan2.1 wan/modules/t5.py T5RelativeEmbedding
struct T5RelativeEmbeddingImpl : torch::nn::Module {
    T5RelativeEmbeddingImpl(int64_t num_buckets, int64_t num_heads, bool bidirectional, int64_t max_dist = 128,
                            const torch::TensorOptions& options = {});
    /// -> [1, num_heads, lq, lk] in the embedding's dtype
    torch::Tensor forward(int64_t lq, int64_t lk);
    T5Embedding embedding{nullptr};
    int64_t num_buckets;
    int64_t max_dist;
    bool bidirectional;
};
TORCH_MODULE(T5RelativeEmbedding);

/// One encoder layer: x + attn(norm1(x)), then + ffn(norm2(x)). With `shared_pos` off it
/// owns its relative embedding (umT5).
// ref: Wan2.1 wan/modules/t5.py T5SelfAttention
struct T5SelfAttentionImpl : torch::nn::Module {
    T5SelfAttentionImpl(const T5Config& cfg, const torch::TensorOptions& options = {});
    /// x [B, L, dim]; mask [B, L] or undefined; pos_bias: the shared bias (shared_pos only)
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& pos_bias = {});
    T5LayerNorm norm1{nullptr};
    T5Attention attn{nullptr};
    T5LayerNorm norm2{nullptr};
    T5FeedForward ffn{nullptr};
    T5RelativeEmbedding pos_embedding{nullptr};  // per-layer (shared_pos = false)
};
TORCH_MODULE(T5SelfAttention);

/// The encoder stack. Parameters are created with `options` (device/dtype) and, when
/// `initialize` is true, filled like upstream's `init_weights` (normal with upstream's
/// stds, norm gains 1); with `initialize` false they are left uninitialised (the loader
/// replaces them, so a 5.7 B-parameter skeleton costs no init time).
// ref: Wan2.1 wan/modules/t5.py T5Encoder
struct T5EncoderImpl : torch::nn::Module {
    explicit T5EncoderImpl(T5Config cfg, const torch::TensorOptions& options = {}, bool initialize = true);

    /// ids [B, L] int64, mask [B, L] (1 = token, 0 = padding; any integer/bool dtype) or
    /// undefined -> [B, L, dim] in the weights' dtype. Rows of padding positions are
    /// computed too (upstream trims them afterwards).
    torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask = {});

    /// Upstream `init_weights` with a seeded generator.
    void init_weights(uint64_t seed);
    const T5Config& config() const { return cfg_; }
    /// dtype of the weights (the compute dtype).
    c10::ScalarType dtype() const;
    c10::Device device() const;

    T5Embedding token_embedding{nullptr};
    T5RelativeEmbedding pos_embedding{nullptr};  // shared_pos only
    torch::nn::ModuleList blocks{nullptr};
    T5LayerNorm norm{nullptr};

private:
    T5Config cfg_;
};
TORCH_MODULE(T5Encoder);

}  // namespace ipa::models::t5
