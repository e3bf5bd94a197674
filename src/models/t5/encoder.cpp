#include "ipa/models/t5/encoder.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace ipa::models::t5 {
namespace {

/// torch.finfo(dtype).min, the value upstream writes into masked attention logits.
double finfo_min(c10::ScalarType t) {
    switch (t) {
        case c10::kFloat:
            return std::numeric_limits<float>::lowest();
        case c10::kDouble:
            return std::numeric_limits<double>::lowest();
        case c10::kBFloat16:
            return static_cast<float>(std::numeric_limits<c10::BFloat16>::lowest());
        case c10::kHalf:
            return static_cast<float>(std::numeric_limits<c10::Half>::lowest());
        default:
            TORCH_CHECK(false, "T5 attention: unsupported dtype ", t);
    }
}

/// Upstream fp16_clamp: only float16 activations that overflowed are clamped.
torch::Tensor fp16_clamp(const torch::Tensor& x) {
    if (x.scalar_type() == c10::kHalf && torch::isinf(x).any().item<bool>()) {
        const double c = static_cast<float>(std::numeric_limits<c10::Half>::max()) - 1000.0;
        return torch::clamp(x, -c, c);
    }
    return x;
}

}  // namespace

T5LinearImpl::T5LinearImpl(int64_t in, int64_t out, const torch::TensorOptions& o) {
    weight = register_parameter("weight", torch::empty({out, in}, o), /*requires_grad=*/false);
}

torch::Tensor T5LinearImpl::forward(const torch::Tensor& x) {
    return torch::nn::functional::linear(x.to(weight.scalar_type()), weight);
}

T5EmbeddingImpl::T5EmbeddingImpl(int64_t num, int64_t dim, const torch::TensorOptions& o) {
    weight = register_parameter("weight", torch::empty({num, dim}, o), /*requires_grad=*/false);
}

torch::Tensor T5EmbeddingImpl::forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }

torch::Tensor T5GELUImpl::forward(const torch::Tensor& x) {
    // ref: 0.5 * x * (1.0 + tanh(sqrt(2/pi) * (x + 0.044715 * pow(x, 3.0)))), op by op
    const auto inner = (x + torch::pow(x, 3.0) * 0.044715) * std::sqrt(2.0 / M_PI);
    return (x * 0.5) * (torch::tanh(inner) + 1.0);
}

T5LayerNormImpl::T5LayerNormImpl(int64_t dim, double eps_, const torch::TensorOptions& o) : eps(eps_) {
    weight = register_parameter("weight", torch::ones({dim}, o), /*requires_grad=*/false);
}

torch::Tensor T5LayerNormImpl::forward(const torch::Tensor& x) {
    // x [..., D]: bf16·fp32 promotes to fp32; back to the weight's dtype when it is reduced.
    auto y = x * torch::rsqrt(x.to(torch::kFloat).pow(2).mean(-1, /*keepdim=*/true) + eps);
    const auto wt = weight.scalar_type();
    if (wt == c10::kHalf || wt == c10::kBFloat16) y = y.to(wt);
    return weight * y;
}

T5AttentionImpl::T5AttentionImpl(int64_t dim, int64_t dim_attn, int64_t heads, const torch::TensorOptions& o)
    : num_heads(heads), head_dim(dim_attn / heads) {
    q = register_module("q", T5Linear(dim, dim_attn, o));
    k = register_module("k", T5Linear(dim, dim_attn, o));
    v = register_module("v", T5Linear(dim, dim_attn, o));
    this->o = register_module("o", T5Linear(dim_attn, dim, o));
}

torch::Tensor T5AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                       const torch::Tensor& pos_bias) {
    // x [B, L, D] -> q, k, v [B, L, H, C]; logits [B, H, L, L] in x's dtype; no 1/sqrt(C).
    const int64_t b = x.size(0);
    const auto qh = q->forward(x).view({b, -1, num_heads, head_dim});
    const auto kh = k->forward(x).view({b, -1, num_heads, head_dim});
    const auto vh = v->forward(x).view({b, -1, num_heads, head_dim});
    auto bias = x.new_zeros({b, num_heads, qh.size(1), kh.size(1)});  // [B, H, Lq, Lk]
    if (pos_bias.defined()) bias += pos_bias;
    if (mask.defined()) bias.masked_fill_(mask.view({b, 1, 1, -1}) == 0, finfo_min(x.scalar_type()));
    auto attn = torch::einsum("binc,bjnc->bnij", {qh, kh}) + bias;
    attn = torch::softmax(attn.to(torch::kFloat), -1).to(attn.scalar_type());
    auto out = torch::einsum("bnij,bjnc->binc", {attn, vh});  // [B, L, H, C]
    return this->o->forward(out.reshape({b, -1, num_heads * head_dim}));
}

T5FeedForwardImpl::T5FeedForwardImpl(int64_t dim, int64_t dim_ffn, const torch::TensorOptions& o) {
    gate = register_module("gate", torch::nn::Sequential(T5Linear(dim, dim_ffn, o), T5GELU()));
    fc1 = register_module("fc1", T5Linear(dim, dim_ffn, o));
    fc2 = register_module("fc2", T5Linear(dim_ffn, dim, o));
}

torch::Tensor T5FeedForwardImpl::forward(const torch::Tensor& x) {
    return fc2->forward(fc1->forward(x) * gate->forward(x));
}

torch::Tensor relative_position_bucket(const torch::Tensor& rel_pos_in, bool bidirectional, int64_t num_buckets,
                                       int64_t max_dist) {
    torch::Tensor buckets;
    torch::Tensor rel = rel_pos_in;
    if (bidirectional) {
        num_buckets /= 2;
        buckets = (rel > 0).to(torch::kLong) * num_buckets;
        rel = torch::abs(rel);
    } else {
        buckets = torch::zeros_like(rel);
        rel = -torch::min(rel, torch::zeros_like(rel));
    }
    const int64_t max_exact = num_buckets / 2;
    // Same tensor ops and scalar types as upstream: float32 log, double ln(max_dist/max_exact).
    const double log_ratio = std::log(static_cast<double>(max_dist) / static_cast<double>(max_exact));
    auto large =
        (torch::log(rel.to(torch::kFloat) / max_exact) / log_ratio * (num_buckets - max_exact)).to(torch::kLong) +
        max_exact;
    large = torch::min(large, torch::full_like(large, num_buckets - 1));
    return buckets + torch::where(rel < max_exact, rel, large);
}

T5RelativeEmbeddingImpl::T5RelativeEmbeddingImpl(int64_t nb, int64_t heads, bool bidir, int64_t md,
                                                 const torch::TensorOptions& o)
    : num_buckets(nb), max_dist(md), bidirectional(bidir) {
    embedding = register_module("embedding", T5Embedding(nb, heads, o));
}

torch::Tensor T5RelativeEmbeddingImpl::forward(int64_t lq, int64_t lk) {
    const auto dev = embedding->weight.device();
    const auto opts = torch::TensorOptions().dtype(torch::kLong).device(dev);
    const auto rel = torch::arange(lk, opts).unsqueeze(0) - torch::arange(lq, opts).unsqueeze(1);  // [Lq, Lk]
    const auto bucket = relative_position_bucket(rel, bidirectional, num_buckets, max_dist);
    return embedding->forward(bucket).permute({2, 0, 1}).unsqueeze(0).contiguous();  // [1, H, Lq, Lk]
}

T5SelfAttentionImpl::T5SelfAttentionImpl(const T5Config& c, const torch::TensorOptions& o) {
    norm1 = register_module("norm1", T5LayerNorm(c.dim, c.eps, o));
    attn = register_module("attn", T5Attention(c.dim, c.dim_attn, c.num_heads, o));
    norm2 = register_module("norm2", T5LayerNorm(c.dim, c.eps, o));
    ffn = register_module("ffn", T5FeedForward(c.dim, c.dim_ffn, o));
    if (!c.shared_pos) {
        pos_embedding = register_module(
            "pos_embedding", T5RelativeEmbedding(c.num_buckets, c.num_heads, /*bidirectional=*/true, c.max_dist, o));
    }
}

torch::Tensor T5SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                           const torch::Tensor& pos_bias) {
    const auto e = pos_embedding ? pos_embedding->forward(x.size(1), x.size(1)) : pos_bias;
    auto h = fp16_clamp(x + attn->forward(norm1->forward(x), mask, e));
    return fp16_clamp(h + ffn->forward(norm2->forward(h)));
}

T5EncoderImpl::T5EncoderImpl(T5Config cfg, const torch::TensorOptions& o, bool initialize) : cfg_(std::move(cfg)) {
    cfg_.validate();
    token_embedding = register_module("token_embedding", T5Embedding(cfg_.vocab, cfg_.dim, o));
    if (cfg_.shared_pos) {
        pos_embedding = register_module("pos_embedding",
                                        T5RelativeEmbedding(cfg_.num_buckets, cfg_.num_heads, true, cfg_.max_dist, o));
    }
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg_.num_layers; ++i) blocks->push_back(T5SelfAttention(cfg_, o));
    norm = register_module("norm", T5LayerNorm(cfg_.dim, cfg_.eps, o));
    if (initialize && o.device().type() != c10::kMeta) init_weights(0);
}

void T5EncoderImpl::init_weights(uint64_t seed) {
    torch::NoGradGuard g;
    auto gen = at::detail::createCPUGenerator(seed);
    auto fill = [&](torch::Tensor& p, double std) {
        auto cpu = torch::empty(p.sizes(), torch::kFloat);
        cpu.normal_(0.0, std, gen);
        p.copy_(cpu);
    };
    const auto d = static_cast<double>(cfg_.dim);
    const auto da = static_cast<double>(cfg_.dim_attn);
    const auto h = static_cast<double>(cfg_.num_heads);
    const double pos_std = 1.0 / std::sqrt(2.0 * static_cast<double>(cfg_.num_buckets) * h);
    fill(token_embedding->weight, 1.0);  // nn.Embedding's default N(0, 1)
    if (pos_embedding) fill(pos_embedding->embedding->weight, pos_std);
    for (const auto& m : *blocks) {
        auto& blk = *m->as<T5SelfAttentionImpl>();
        blk.norm1->weight.fill_(1.0);
        blk.norm2->weight.fill_(1.0);
        fill(blk.attn->q->weight, 1.0 / std::sqrt(d * da));
        fill(blk.attn->k->weight, 1.0 / std::sqrt(d));
        fill(blk.attn->v->weight, 1.0 / std::sqrt(d));
        fill(blk.attn->o->weight, 1.0 / std::sqrt(h * da));
        fill(blk.ffn->gate[0]->as<T5LinearImpl>()->weight, 1.0 / std::sqrt(d));
        fill(blk.ffn->fc1->weight, 1.0 / std::sqrt(d));
        fill(blk.ffn->fc2->weight, 1.0 / std::sqrt(static_cast<double>(cfg_.dim_ffn)));
        if (blk.pos_embedding) fill(blk.pos_embedding->embedding->weight, pos_std);
    }
    norm->weight.fill_(1.0);
}

c10::ScalarType T5EncoderImpl::dtype() const { return token_embedding->weight.scalar_type(); }

c10::Device T5EncoderImpl::device() const { return token_embedding->weight.device(); }

torch::Tensor T5EncoderImpl::forward(const torch::Tensor& ids, const torch::Tensor& mask) {
    // ids [B, L] -> x [B, L, D]; every layer adds its own bias [1, H, L, L] (shared_pos: one).
    TORCH_CHECK(ids.dim() == 2, "T5 encoder: ids must be [B, L], got ", ids.sizes());
    TORCH_CHECK(!mask.defined() || mask.sizes() == ids.sizes(), "T5 encoder: mask ", mask.sizes(),
                " does not match ids ", ids.sizes());
    const auto dev = device();
    auto x = token_embedding->forward(ids.to(dev, torch::kLong));
    const auto m = mask.defined() ? mask.to(dev) : mask;
    const auto e = pos_embedding ? pos_embedding->forward(x.size(1), x.size(1)) : torch::Tensor();
    for (const auto& blk : *blocks) x = blk->as<T5SelfAttentionImpl>()->forward(x, m, e);
    return norm->forward(x);
}

}  // namespace ipa::models::t5
