#include "ipa/models/wan/attention_block.h"

#include <torch/torch.h>

#include "ipa/models/wan/numerics.h"

namespace ipa::models::wan {
namespace F = torch::nn::functional;

WanAttentionBlockImpl::WanAttentionBlockImpl(const WanConfig& cfg, bool image_cross_attn,
                                             const torch::TensorOptions& o) {
    const int64_t dim = cfg.dim;
    norm1 = register_module("norm1", WanLayerNorm(dim, cfg.eps, false, o));
    self_attn = register_module("self_attn", WanSelfAttention(dim, cfg.num_heads, cfg.qk_norm, cfg.eps, o));
    if (cfg.cross_attn_norm) norm3 = register_module("norm3", WanLayerNorm(dim, cfg.eps, true, o));
    cross_attn = register_module(
        "cross_attn", WanCrossAttention(dim, cfg.num_heads, cfg.qk_norm, cfg.eps, image_cross_attn, cfg.text_len, o));
    norm2 = register_module("norm2", WanLayerNorm(dim, cfg.eps, false, o));
    ffn = register_module("ffn", torch::nn::Sequential(Linear(dim, cfg.ffn_dim, true, o),
                                                       torch::nn::GELU(torch::nn::GELUOptions().approximate("tanh")),
                                                       Linear(cfg.ffn_dim, dim, true, o)));
    modulation = register_parameter("modulation", torch::randn({1, 6, dim}, o) / std::sqrt(double(dim)));
}

torch::Tensor WanAttentionBlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& e0,
                                             const torch::Tensor& context, const RopeTable& rope,
                                             const torch::Tensor& key_mask, const torch::Tensor& context_bias,
                                             const CrossKV* cross_kv) {
    // x [B, L, D] (bf16 into block 0 in bf16 mode, fp32 after), e0 [B, 6, D] fp32
    const auto e = (modulation + e0).chunk(6, 1);  // 6 × [B, 1, D] fp32
    auto y = self_attn(at_least_fp32(norm1(x_in)) * (1 + e[1]) + e[0], rope, key_mask);
    auto x = x_in + y * e[2];  // -> fp32
    const auto xq = norm3 ? norm3(x) : x;
    x = x + (cross_kv ? cross_attn->attend(xq, *cross_kv) : cross_attn(xq, context, context_bias));
    y = ffn->forward(at_least_fp32(norm2(x)) * (1 + e[4]) + e[3]);
    return x + y * e[5];
}

VaceWanAttentionBlockImpl::VaceWanAttentionBlockImpl(const WanConfig& cfg, int64_t id, const torch::TensorOptions& o)
    : WanAttentionBlockImpl(cfg, /*image_cross_attn=*/false, o), block_id(id) {
    if (block_id == 0) before_proj = register_module("before_proj", Linear(cfg.dim, cfg.dim, true, o));
    after_proj = register_module("after_proj", Linear(cfg.dim, cfg.dim, true, o));
}

std::pair<torch::Tensor, torch::Tensor> VaceWanAttentionBlockImpl::forward_vace(
    const torch::Tensor& c_in, const torch::Tensor& x, const torch::Tensor& e0, const torch::Tensor& context,
    const RopeTable& rope, const torch::Tensor& key_mask, const torch::Tensor& context_bias) {
    // c [B, L, D] control tokens, x [B, L, D] patch-embedded main tokens (pre block 0)
    auto c = block_id == 0 ? before_proj(c_in) + x : c_in;
    c = forward(c, e0, context, rope, key_mask, context_bias);
    return {c, after_proj(c)};
}

HeadImpl::HeadImpl(int64_t dim, int64_t out_dim, const std::array<int64_t, 3>& patch, double eps,
                   const torch::TensorOptions& o) {
    norm = register_module("norm", WanLayerNorm(dim, eps, false, o));
    head = register_module("head", Linear(dim, out_dim * patch[0] * patch[1] * patch[2], true, o));
    modulation = register_parameter("modulation", torch::randn({1, 2, dim}, o) / std::sqrt(double(dim)));
}

torch::Tensor HeadImpl::forward(const torch::Tensor& x, const torch::Tensor& e) {
    const auto m = (modulation + e.unsqueeze(1)).chunk(2, 1);  // shift, scale: [B, 1, D] fp32
    return head(norm(x) * (1 + m[1]) + m[0]);
}

MLPProjImpl::MLPProjImpl(int64_t in_dim, int64_t out_dim, bool flf_pos_emb, const torch::TensorOptions& o) {
    proj = register_module("proj", torch::nn::Sequential(torch::nn::LayerNorm(torch::nn::LayerNormOptions({in_dim})),
                                                         Linear(in_dim, in_dim, true, o), torch::nn::GELU(),
                                                         Linear(in_dim, out_dim, true, o),
                                                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({out_dim}))));
    if (flf_pos_emb) emb_pos = register_parameter("emb_pos", torch::zeros({1, 514, in_dim}, o));
}

torch::Tensor MLPProjImpl::forward(const torch::Tensor& image_embeds) {
    auto x = image_embeds;
    if (emb_pos.defined()) {
        const auto b = x.size(0), n = x.size(1), d = x.size(2);
        x = x.view({b / 2, 2 * n, d}) + emb_pos;
    }
    // LayerNorms run in fp32 (their weights stay fp32); Linears in their weight dtype.
    auto ln = [](const std::shared_ptr<torch::nn::Module>& m, const torch::Tensor& t) {
        auto* l = m->as<torch::nn::LayerNormImpl>();
        return F::layer_norm(at_least_fp32(t), F::LayerNormFuncOptions(l->options.normalized_shape())
                                                   .weight(l->weight)
                                                   .bias(l->bias)
                                                   .eps(l->options.eps()));
    };
    x = ln(proj->ptr(0), x);
    x = proj->ptr(1)->as<LinearImpl>()->forward(x);
    x = torch::gelu(x);
    x = proj->ptr(3)->as<LinearImpl>()->forward(x);
    return ln(proj->ptr(4), x);
}

}  // namespace ipa::models::wan
