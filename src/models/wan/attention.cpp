#include "ipa/models/wan/attention.h"

#include <torch/torch.h>

#include "ipa/core/torch_compat.h"

namespace ipa::models::wan {

torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t num_heads, const torch::Tensor& key_mask) {
    // q [B, Lq, H·d] (or [B, Lq, H, d]), k/v [B, Lk, H·d] -> [B, Lq, H·d]; key_mask bool
    // (true = attend) or additive in v's dtype, broadcastable to [B, H, Lq, Lk]
    const auto dtype = v.scalar_type();
    const int64_t b = q.size(0), lq = q.size(1), lk = k.size(1);
    const int64_t d = v.dim() == 4 ? v.size(-1) : v.size(-1) / num_heads;
    auto qh = q.reshape({b, lq, num_heads, d}).transpose(1, 2).to(dtype);  // [B, H, Lq, d]
    auto kh = k.reshape({b, lk, num_heads, d}).transpose(1, 2).to(dtype);
    auto vh = v.reshape({b, lk, num_heads, d}).transpose(1, 2);
    c10::optional<torch::Tensor> mask;
    if (key_mask.defined()) mask = key_mask;
    auto out = compat::attention(qh, kh, vh, mask);  // [B, H, Lq, d]
    return out.transpose(1, 2).reshape({b, lq, num_heads * d});
}

namespace {

// q, k, v, o (+ norm_q, norm_k): the same names and shapes in self- and cross-attention.
template <class Attention>
void register_projections(Attention& a, int64_t dim, bool qk_norm, double eps, const torch::TensorOptions& opt) {
    a.q = a.register_module("q", Linear(dim, dim, true, opt));
    a.k = a.register_module("k", Linear(dim, dim, true, opt));
    a.v = a.register_module("v", Linear(dim, dim, true, opt));
    a.o = a.register_module("o", Linear(dim, dim, true, opt));
    if (qk_norm) {
        a.norm_q = a.register_module("norm_q", WanRMSNorm(dim, eps, opt));
        a.norm_k = a.register_module("norm_k", WanRMSNorm(dim, eps, opt));
    }
}

}  // namespace

WanSelfAttentionImpl::WanSelfAttentionImpl(int64_t dim_, int64_t heads, bool qk_norm, double eps,
                                           const torch::TensorOptions& opt)
    : dim(dim_), num_heads(heads) {
    register_projections(*this, dim, qk_norm, eps, opt);
}

torch::Tensor WanSelfAttentionImpl::forward(const torch::Tensor& x, const RopeTable& rope,
                                            const torch::Tensor& key_mask) {
    // x [B, L, D] -> [B, L, D]
    const int64_t b = x.size(0), l = x.size(1), d = dim / num_heads;
    auto qx = q(x);
    auto kx = k(x);
    if (norm_q) {
        qx = norm_q(qx);
        kx = norm_k(kx);
    }
    const auto vx = v(x);
    const auto qr = apply_rope(qx.reshape({b, l, num_heads, d}), rope);  // [B, L, H, d] fp32
    const auto kr = apply_rope(kx.reshape({b, l, num_heads, d}), rope);
    return o(multi_head_attention(qr, kr, vx, num_heads, key_mask));
}

WanCrossAttentionImpl::WanCrossAttentionImpl(int64_t dim_, int64_t heads, bool qk_norm, double eps, bool image,
                                             int64_t text_len_, const torch::TensorOptions& opt)
    : dim(dim_), num_heads(heads), text_len(text_len_) {
    register_projections(*this, dim, qk_norm, eps, opt);
    if (image) {
        k_img = register_module("k_img", Linear(dim, dim, true, opt));
        v_img = register_module("v_img", Linear(dim, dim, true, opt));
        if (qk_norm) norm_k_img = register_module("norm_k_img", WanRMSNorm(dim, eps, opt));
    }
}

torch::Tensor WanCrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                             const torch::Tensor& text_bias) {
    return attend(x, project(context, text_bias));
}

CrossKV WanCrossAttentionImpl::project(const torch::Tensor& context, const torch::Tensor& text_bias) {
    // context [B, (n_img +) text_len, D] (text rows fewer when the padding is merged)
    auto text = context;
    torch::Tensor image;
    if (k_img) {
        TORCH_CHECK(!text_bias.defined(), "image cross-attention takes the whole text_len context");
        const int64_t n_img = context.size(1) - text_len;
        image = context.narrow(1, 0, n_img);
        text = context.narrow(1, n_img, text_len);
    }
    CrossKV kv;
    kv.k = norm_k ? norm_k(k(text)) : k(text);
    kv.v = v(text);
    kv.bias = text_bias;
    if (k_img) {
        kv.k_img = norm_k_img ? norm_k_img(k_img(image)) : k_img(image);
        kv.v_img = v_img(image);
    }
    return kv;
}

torch::Tensor WanCrossAttentionImpl::attend(const torch::Tensor& x, const CrossKV& kv) {
    // x [B, L, D] -> [B, L, D]
    auto qx = q(x);
    if (norm_q) qx = norm_q(qx);
    auto out = multi_head_attention(qx, kv.k, kv.v, num_heads, kv.bias);
    if (kv.k_img.defined()) out = out + multi_head_attention(qx, kv.k_img, kv.v_img, num_heads);
    return o(out);
}

}  // namespace ipa::models::wan
