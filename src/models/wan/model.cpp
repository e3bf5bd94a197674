#include "ipa/models/wan/model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <cmath>
#include <optional>

#include "ipa/core/error.h"
#include "ipa/core/torch_compat.h"
#include "ipa/models/checkpointing.h"
#include "ipa/models/wan/numerics.h"

namespace ipa::models::wan {

torch::Tensor sinusoidal_embedding(int64_t dim, const torch::Tensor& t, c10::ScalarType dtype) {
    const int64_t half = dim / 2;
    const auto position = t.to(torch::kDouble);
    const auto omega = torch::pow(10000.0, -torch::arange(half, position.options()).div(half));
    const auto sinusoid = torch::outer(position, omega);  // [B, half]
    return torch::cat({torch::cos(sinusoid), torch::sin(sinusoid)}, 1).to(dtype);
}

WanModelImpl::WanModelImpl(WanConfig cfg, const torch::TensorOptions& o) : cfg_(std::move(cfg)) {
    cfg_.validate();
    const int64_t dim = cfg_.dim;
    patch_embedding = register_module("patch_embedding", PatchEmbed(cfg_.in_dim, dim, cfg_.patch_size, o));
    text_embedding = register_module(
        "text_embedding", torch::nn::Sequential(Linear(cfg_.text_dim, dim, true, o),
                                                torch::nn::GELU(torch::nn::GELUOptions().approximate("tanh")),
                                                Linear(dim, dim, true, o)));
    time_embedding = register_module(
        "time_embedding",
        torch::nn::Sequential(Linear(cfg_.freq_dim, dim, true, o), torch::nn::SiLU(), Linear(dim, dim, true, o)));
    time_projection =
        register_module("time_projection", torch::nn::Sequential(torch::nn::SiLU(), Linear(dim, 6 * dim, true, o)));
    blocks = register_module("blocks", torch::nn::ModuleList());
    // A VACE model's main blocks always use text cross-attention (upstream rebuilds them).
    const bool image = cfg_.has_image_input() && !cfg_.is_vace();
    for (int64_t i = 0; i < cfg_.num_layers; ++i) blocks->push_back(WanAttentionBlock(cfg_, image, o));
    head = register_module("head", Head(dim, cfg_.out_dim, cfg_.patch_size, cfg_.eps, o));
    if (image) img_emb = register_module("img_emb", MLPProj(1280, dim, cfg_.model_type == "flf2v", o));
}

bool WanModelImpl::keeps_fp32(const std::string& n) {
    auto starts = [&](const char* p) { return n.rfind(p, 0) == 0; };
    return n.find("modulation") != std::string::npos || n.find("norm") != std::string::npos ||
           n.find("lora_") != std::string::npos || starts("time_embedding.") || starts("time_projection.") ||
           starts("head.") || starts("img_emb.proj.0.") || starts("img_emb.proj.4.") || starts("img_emb.emb_pos");
}

void WanModelImpl::set_dtype(c10::ScalarType dtype) {
    TORCH_CHECK(dtype == torch::kFloat || dtype == torch::kBFloat16 || dtype == torch::kDouble || dtype == torch::kHalf,
                "WanModel: unsupported dtype ", dtype);
    torch::NoGradGuard no_grad;
    for (auto& p : named_parameters()) {
        const auto target = (dtype == torch::kDouble || !keeps_fp32(p.key())) ? dtype : torch::kFloat;
        if (p.value().scalar_type() != target) p.value().set_data(p.value().to(target));
    }
    dtype_ = dtype;
}

void WanModelImpl::check_inputs(const WanInputs& in) const {
    auto fail = [](const std::string& what) { throw DataError("WanModel input: " + what); };
    if (!in.x.defined() || in.x.dim() != 5)
        fail(fmt::format("x must be [B, C, F, H, W], got {}", in.x.defined() ? c10::str(in.x.sizes()) : "nothing"));
    const int64_t b = in.x.size(0);
    const int64_t channels = in.x.size(1) + (in.y.defined() ? in.y.size(1) : 0);
    if (channels != cfg_.in_dim)
        fail(fmt::format("x has {} channels (with y), the model expects in_dim = {}", channels, cfg_.in_dim));
    for (int i = 0; i < 3; ++i) {
        if (in.x.size(2 + i) % cfg_.patch_size[i] != 0) {
            fail(fmt::format("x size {} is not divisible by the patch size [{}]", c10::str(in.x.sizes()),
                             fmt::join(cfg_.patch_size, ", ")));
        }
    }
    if (!in.t.defined() || in.t.dim() != 1 || in.t.size(0) != b) {
        fail(fmt::format("t must be [B] = [{}], got {}", b, in.t.defined() ? c10::str(in.t.sizes()) : "nothing"));
    }
    if (!in.context.defined() || in.context.dim() != 3 || in.context.size(0) != b ||
        in.context.size(2) != cfg_.text_dim) {
        fail(fmt::format("context must be [{}, L, {}], got {}", b, cfg_.text_dim,
                         in.context.defined() ? c10::str(in.context.sizes()) : "nothing"));
    }
    if (in.context.size(1) > cfg_.text_len) {
        fail(fmt::format("context has {} tokens, more than text_len = {}", in.context.size(1), cfg_.text_len));
    }
    if (cfg_.is_vace()) {
        const auto& v = in.vace_context;
        if (!v.defined() || v.dim() != 5 || v.size(0) != b || v.size(1) != cfg_.vace_in_dim ||
            v.sizes().slice(2) != in.x.sizes().slice(2)) {
            fail(fmt::format("vace_context must be [{}, {}, {}, {}, {}], got {}", b, cfg_.vace_in_dim, in.x.size(2),
                             in.x.size(3), in.x.size(4), v.defined() ? c10::str(v.sizes()) : "nothing"));
        }
    }
    if (cfg_.has_image_input() && !cfg_.is_vace() && !in.clip_fea.defined()) fail("i2v/flf2v needs clip_fea and y");
}

int64_t WanModelImpl::merged_text_rows(const torch::Tensor& context) const {
    // Only where the bias is exact: fp32/fp64 attention (a bf16 mask would round log(count)).
    if (!merge_text_padding_ || img_emb) return -1;
    const auto& cross = *blocks->ptr<WanAttentionBlockImpl>(0)->cross_attn;
    const auto dtype = cross.v->weight.scalar_type();
    if ((dtype != c10::kFloat && dtype != c10::kDouble) || context.scalar_type() != dtype ||
        compat::AutocastGuard::is_enabled(context.device().type())) {
        return -1;
    }
    const auto nonzero_rows = context.ne(0).any(2).any(0).nonzero();  // [n, 1] row indices
    const int64_t kept = nonzero_rows.numel() == 0 ? 0 : nonzero_rows.max().item<int64_t>() + 1;
    return cfg_.text_len - kept >= 2 ? kept : -1;
}

torch::Tensor WanModelImpl::embed_tokens(PatchEmbed& embed, const torch::Tensor& video, int64_t seq_len) {
    // [B, L, D], contiguous: a transposed layout would follow x through every residual add,
    // and each Linear on it would run as a strided matmul plus a separate bias pass.
    auto tokens = embed(video).flatten(2).transpose(1, 2).contiguous();
    const int64_t l = tokens.size(1);
    if (seq_len > l) {
        tokens = torch::cat({tokens, tokens.new_zeros({tokens.size(0), seq_len - l, tokens.size(2)})}, 1);
    }
    return tokens;
}

torch::Tensor WanModelImpl::run_block(WanAttentionBlockImpl& block, const torch::Tensor& x, const BlockArgs& a,
                                      const CrossKV* cross_kv) {
    if (!grad_checkpointing_ || !torch::GradMode::is_enabled()) {
        return block.forward(x, a.e0, a.context, a.rope, a.key_mask, a.context_bias, cross_kv);
    }
    // Captured by value: backward runs after this forward's locals are gone. Precomputed
    // cross K/V come from frozen weights (no grad): constants of the recomputation.
    const auto fn = [&block, rope = a.rope, mask = a.key_mask, bias = a.context_bias,
                     kv = cross_kv ? std::optional<CrossKV>(*cross_kv)
                                   : std::nullopt](const std::vector<torch::Tensor>& in) {
        return std::vector<torch::Tensor>{block.forward(in[0], in[1], in[2], rope, mask, bias, kv ? &*kv : nullptr)};
    };
    return checkpoint(fn, {x, a.e0, a.context})[0];
}

torch::Tensor WanModelImpl::unpatchify(const torch::Tensor& x, const std::array<int64_t, 3>& g) const {
    // x [B, seq_len, pt·ph·pw·C] -> [B, C, f·pt, h·ph, w·pw]; features ordered (pt, ph, pw, c)
    const auto& p = cfg_.patch_size;
    const int64_t b = x.size(0), c = cfg_.out_dim;
    return x.narrow(1, 0, g[0] * g[1] * g[2])
        .reshape({b, g[0], g[1], g[2], p[0], p[1], p[2], c})
        .permute({0, 7, 1, 4, 2, 5, 3, 6})
        .reshape({b, c, g[0] * p[0], g[1] * p[1], g[2] * p[2]});
}

torch::Tensor WanModelImpl::forward(const WanInputs& in) { return forward(in, *prelude(in)); }

std::shared_ptr<const WanPrelude> WanModelImpl::prelude(const WanInputs& in, const PreludeOptions& options) {
    // x [B, in_dim, F, H, W], t [B], context [B, L, text_dim]
    check_inputs(in);
    const auto device = patch_embedding->weight.device();
    auto pre = std::make_shared<WanPrelude>();
    auto& p = *pre;
    p.batch = in.x.size(0);
    const auto video = in.y.defined() ? torch::cat({in.x, in.y}, 1) : in.x;
    for (int i = 0; i < 3; ++i) p.grid[i] = in.x.size(2 + i) / cfg_.patch_size[i];
    const int64_t tokens = p.grid[0] * p.grid[1] * p.grid[2];
    p.seq_len = in.seq_len < 0 ? tokens : in.seq_len;
    if (p.seq_len < tokens) {
        throw DataError(fmt::format("WanModel input: seq_len {} is below the token count {}", p.seq_len, tokens));
    }
    p.tokens = embed_tokens(patch_embedding, video.to(device), p.seq_len);  // [B, S, D]

    p.e = time_embedding->forward(
        sinusoidal_embedding(cfg_.freq_dim, in.t.to(device), island_dtype(dtype_)));  // [B, D] fp32
    p.args.e0 = time_projection->forward(p.e).unflatten(1, {6, cfg_.dim});            // [B, 6, D]

    auto ctx = in.context.to(device);
    const int64_t kept = merged_text_rows(ctx);
    if (kept >= 0) {
        // Rows kept.. of the text_len context are all zero (padding, given or added): upstream
        // embeds and attends every one of them, and they all give the same key and value. One
        // such row with log(count) added to its score gives each query the same softmax
        // weights and output (docs/architecture.md §9, "Text padding").
        ctx = ctx.size(1) > kept ? ctx.narrow(1, 0, kept + 1)
                                 : torch::cat({ctx, ctx.new_zeros({p.batch, 1, ctx.size(2)})}, 1);
    } else if (ctx.size(1) < cfg_.text_len) {  // zero rows, embedded and attended like upstream (no mask)
        ctx = torch::cat({ctx, ctx.new_zeros({p.batch, cfg_.text_len - ctx.size(1), ctx.size(2)})}, 1);
    }
    p.args.context = text_embedding->forward(ctx);  // [B, text_len (or kept + 1), D]
    if (kept >= 0) {
        p.args.context_bias = torch::zeros({1, 1, 1, kept + 1}, p.args.context.options());
        p.args.context_bias.select(3, kept).fill_(std::log(static_cast<double>(cfg_.text_len - kept)));
    }
    if (img_emb)
        p.args.context =
            torch::cat({img_emb(in.clip_fea.to(device)).to(p.args.context.scalar_type()), p.args.context}, 1);

    p.args.rope =
        make_rope(cfg_.head_dim(), p.grid[0], p.grid[1], p.grid[2], p.seq_len, device, 10000.0, island_dtype(dtype_));
    if (p.seq_len > tokens) {
        p.args.key_mask = (torch::arange(p.seq_len, torch::TensorOptions().device(device)) < tokens)
                              .view({1, 1, 1, p.seq_len})
                              .expand({p.batch, 1, 1, p.seq_len});
    }
    if (options.hints) {
        p.hints = compute_hints(in, p);
        p.has_hints = true;
    }
    if (options.cross_kv) {
        for (int64_t i = 0; i < cfg_.num_layers; ++i) {
            p.cross_kv.push_back(
                blocks->ptr<WanAttentionBlockImpl>(i)->cross_attn->project(p.args.context, p.args.context_bias));
        }
    }
    return pre;
}

torch::Tensor WanModelImpl::forward(const WanInputs& in, const WanPrelude& p) {
    const auto hints = p.has_hints ? p.hints : compute_hints(in, p);
    std::vector<int64_t> hint_of(cfg_.num_layers, -1);
    for (std::size_t j = 0; j < cfg_.vace_layers.size(); ++j) hint_of[cfg_.vace_layers[j]] = static_cast<int64_t>(j);

    auto x = p.tokens;
    for (int64_t i = 0; i < cfg_.num_layers; ++i) {
        const CrossKV* kv = p.cross_kv.empty() ? nullptr : &p.cross_kv[i];
        x = run_block(*blocks->ptr<WanAttentionBlockImpl>(i), x, p.args, kv);
        if (!hints.empty() && hint_of[i] >= 0) x = x + hints[hint_of[i]] * in.context_scale;
    }
    x = head(x, p.e);  // [B, S, out_dim·prod(patch)] fp32
    return at_least_fp32(unpatchify(x, p.grid));
}

VaceWanModelImpl::VaceWanModelImpl(WanConfig cfg, const torch::TensorOptions& o) : WanModelImpl(std::move(cfg), o) {
    TORCH_CHECK(cfg_.is_vace(), "VaceWanModel needs vace_layers");
    vace_blocks = register_module("vace_blocks", torch::nn::ModuleList());
    for (std::size_t j = 0; j < cfg_.vace_layers.size(); ++j) {
        vace_blocks->push_back(VaceWanAttentionBlock(cfg_, static_cast<int64_t>(j), o));
    }
    vace_patch_embedding =
        register_module("vace_patch_embedding", PatchEmbed(cfg_.vace_in_dim, cfg_.dim, cfg_.patch_size, o));
}

std::vector<torch::Tensor> VaceWanModelImpl::compute_hints(const WanInputs& in, const WanPrelude& p) {
    // ref: Wan2.1 wan/modules/vace_model.py VaceWanModel.forward_vace
    auto c = embed_tokens(vace_patch_embedding, in.vace_context.to(p.tokens.device()), p.seq_len);  // [B, S, D]
    std::vector<torch::Tensor> hints;
    const auto& a = p.args;
    for (std::size_t j = 0; j < vace_blocks->size(); ++j) {
        auto& block = *vace_blocks->ptr<VaceWanAttentionBlockImpl>(j);
        if (grad_checkpointing_ && torch::GradMode::is_enabled()) {
            const auto fn = [&block, rope = a.rope, mask = a.key_mask,
                             bias = a.context_bias](const std::vector<torch::Tensor>& t) {
                auto [cc, hint] = block.forward_vace(t[0], t[1], t[2], t[3], rope, mask, bias);
                return std::vector<torch::Tensor>{cc, hint};
            };
            auto out = checkpoint(fn, {c, p.tokens, a.e0, a.context});
            c = out[0];
            hints.push_back(out[1]);
        } else {
            auto [cc, hint] = block.forward_vace(c, p.tokens, a.e0, a.context, a.rope, a.key_mask, a.context_bias);
            c = cc;
            hints.push_back(hint);
        }
    }
    return hints;
}

std::shared_ptr<WanModelImpl> make_wan_model(const WanConfig& cfg, const torch::TensorOptions& init) {
    if (cfg.is_vace()) return std::make_shared<VaceWanModelImpl>(cfg, init);
    return std::make_shared<WanModelImpl>(cfg, init);
}

}  // namespace ipa::models::wan
