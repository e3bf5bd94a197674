#include "ipa/models/wan/layers.h"

#include <torch/torch.h>

#include <cmath>

#include "ipa/models/wan/numerics.h"

namespace ipa::models::wan {
namespace F = torch::nn::functional;

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, const torch::TensorOptions& o)
    : in_features(in), out_features(out) {
    // nn.Linear's default init (kaiming-uniform a=√5, uniform bias): real weights are loaded.
    weight = register_parameter("weight", torch::empty({out, in}, o));
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
    if (with_bias) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(in));
        bias = register_parameter("bias", torch::empty({out}, o).uniform_(-bound, bound));
    }
}

torch::Tensor LinearImpl::forward_base(const torch::Tensor& x) {
    return F::linear(x.to(weight.scalar_type()), weight, bias);
}

LoRAFactorImpl::LoRAFactorImpl(int64_t out, int64_t in, const torch::TensorOptions& o) {
    weight = register_parameter("weight", torch::zeros({out, in}, o));
}

void LinearImpl::attach_lora(int64_t rank, double alpha) {
    TORCH_CHECK(rank > 0, "LoRA rank must be positive, got ", rank);
    TORCH_CHECK(!lora_.merged, "attach_lora: the current adapter is merged into the weight; unmerge first");
    // fp32 adapters (fp64 on an fp64 model), whatever the base dtype.
    const auto o = weight.options().dtype(island_dtype(weight.scalar_type()));
    LoRAFactor a(rank, in_features, o);
    LoRAFactor b(out_features, rank, o);
    if (has_lora()) {
        lora_A_ = replace_module("lora_A", a);
        lora_B_ = replace_module("lora_B", b);
    } else {
        lora_A_ = register_module("lora_A", a);
        lora_B_ = register_module("lora_B", b);
    }
    lora_ = LoRAState{};
    lora_.alpha = alpha;
    lora_.enabled = true;
    update_lora_scale();
}

void LinearImpl::detach_lora() {
    if (!has_lora()) return;
    TORCH_CHECK(!lora_.merged, "detach_lora: the adapter is merged into the weight; unmerge first");
    unregister_module("lora_A");
    unregister_module("lora_B");
    lora_A_ = nullptr;
    lora_B_ = nullptr;
    lora_ = LoRAState{};
}

void LinearImpl::update_lora_scale() {
    lora_.scale = has_lora() ? lora_.multiplier * lora_.alpha / static_cast<double>(lora_rank()) : 0.0;
}

torch::Tensor LinearImpl::lora_A_weight() const { return has_lora() ? lora_A_->weight : torch::Tensor(); }

torch::Tensor LinearImpl::lora_B_weight() const { return has_lora() ? lora_B_->weight : torch::Tensor(); }

void LinearImpl::set_lora_alpha(double alpha) {
    lora_.alpha = alpha;
    update_lora_scale();
}

void LinearImpl::set_lora_multiplier(double multiplier) {
    TORCH_CHECK(std::isfinite(multiplier), "LoRA multiplier must be finite, got ", multiplier);
    lora_.multiplier = multiplier;
    update_lora_scale();
}

void LinearImpl::set_lora_enabled(bool enabled) {
    TORCH_CHECK(!(enabled && lora_.merged), "the adapter is merged into the weight; unmerge first");
    lora_.enabled = enabled;
}

void LinearImpl::snapshot_reference() {
    TORCH_CHECK(!lora_.merged, "snapshot_reference: the adapter is merged into the weight; unmerge first");
    torch::NoGradGuard no_grad;
    if (has_lora() && lora_.enabled && lora_.scale != 0.0) {
        lora_.ref_A = lora_A_->weight.detach().clone();
        lora_.ref_B = lora_B_->weight.detach().clone();
        lora_.ref_scale = lora_.scale;
    } else {
        clear_reference();
    }
}

void LinearImpl::clear_reference() {
    lora_.ref_A = lora_.ref_B = torch::Tensor();
    lora_.ref_scale = 0.0;
}

int64_t LinearImpl::reference_bytes() const {
    return has_reference() ? static_cast<int64_t>(lora_.ref_A.nbytes() + lora_.ref_B.nbytes()) : 0;
}

bool LinearImpl::set_reference_mode(bool on) {
    TORCH_CHECK(!(on && lora_.merged),
                "the adapter is merged into the base weight, so the reference cannot be computed; unmerge first");
    const bool previous = lora_.ref_mode;
    lora_.ref_mode = on;
    return previous;
}

torch::Tensor LinearImpl::merged_delta(double scale) const {
    // ref: PEFT LoraLayer.get_delta_weight (B @ A · scale)
    return torch::mm(lora_B_->weight.to(torch::kFloat), lora_A_->weight.to(torch::kFloat)) * scale;  // [out, in]
}

bool LinearImpl::merge_lora() {
    if (!has_lora() || lora_.merged || !lora_.enabled) return false;
    torch::NoGradGuard no_grad;
    const auto delta = merged_delta(lora_.scale);
    weight.copy_((weight.to(torch::kFloat) + delta.to(weight.device())).to(weight.scalar_type()));
    lora_.merged = true;
    lora_.merged_scale = lora_.scale;
    lora_.enabled = false;
    return true;
}

void LinearImpl::unmerge_lora() {
    if (!lora_.merged) return;
    torch::NoGradGuard no_grad;
    const auto delta = merged_delta(lora_.merged_scale);
    weight.copy_((weight.to(torch::kFloat) - delta.to(weight.device())).to(weight.scalar_type()));
    lora_.merged = false;
    lora_.merged_scale = 0.0;
    lora_.enabled = true;
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
    // x [..., in] -> [..., out]; adapter: [..., in] -> [..., r] -> [..., out]
    auto y = forward_base(x);
    if (!has_lora()) return y;
    torch::Tensor a, b;
    double scale = 0.0;
    if (lora_.ref_mode) {
        if (!lora_.ref_A.defined()) return y;
        if (lora_.ref_A.device() != weight.device()) {  // the model moved after the snapshot
            lora_.ref_A = lora_.ref_A.to(weight.device());
            lora_.ref_B = lora_.ref_B.to(weight.device());
        }
        a = lora_.ref_A;
        b = lora_.ref_B;
        scale = lora_.ref_scale;
    } else {
        if (!lora_.enabled) return y;
        a = lora_A_->weight;
        b = lora_B_->weight;
        scale = lora_.scale;
    }
    if (scale == 0.0) return y;
    // Adapter in its own (fp32) dtype; the sum is cast back to the base output dtype.
    const auto delta = F::linear(F::linear(x.to(a.scalar_type()), a), b) * scale;
    return (y.to(delta.scalar_type()) + delta).to(y.scalar_type());
}

PatchEmbedImpl::PatchEmbedImpl(int64_t in, int64_t out, std::array<int64_t, 3> p, const torch::TensorOptions& o)
    : patch(p) {
    weight = register_parameter("weight", torch::empty({out, in, p[0], p[1], p[2]}, o));
    torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
    const double bound = 1.0 / std::sqrt(static_cast<double>(in * p[0] * p[1] * p[2]));
    bias = register_parameter("bias", torch::empty({out}, o).uniform_(-bound, bound));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
    return F::conv3d(x.to(weight.scalar_type()), weight,
                     F::Conv3dFuncOptions().bias(bias).stride({patch[0], patch[1], patch[2]}));
}

WanRMSNormImpl::WanRMSNormImpl(int64_t dim, double eps_, const torch::TensorOptions& o) : eps(eps_) {
    weight = register_parameter("weight", torch::ones({dim}, o));
}

torch::Tensor WanRMSNormImpl::forward(const torch::Tensor& x) {
    const auto xf = at_least_fp32(x);
    const auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
    return normed.to(x.scalar_type()) * weight;
}

WanLayerNormImpl::WanLayerNormImpl(int64_t dim_, double eps_, bool affine, const torch::TensorOptions& o)
    : dim(dim_), eps(eps_) {
    if (affine) {
        weight = register_parameter("weight", torch::ones({dim}, o));
        bias = register_parameter("bias", torch::zeros({dim}, o));
    }
}

torch::Tensor WanLayerNormImpl::forward(const torch::Tensor& x) {
    auto opts = F::LayerNormFuncOptions({dim}).eps(eps);
    const auto xf = at_least_fp32(x);
    if (weight.defined()) opts = opts.weight(weight.to(xf.scalar_type())).bias(bias.to(xf.scalar_type()));
    return F::layer_norm(xf, opts).to(x.scalar_type());
}

torch::Tensor gelu_tanh(const torch::Tensor& x) { return torch::gelu(x, "tanh"); }

}  // namespace ipa::models::wan
