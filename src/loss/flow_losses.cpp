#include "ipa/loss/flow_losses.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

#include "ipa/core/error.h"

namespace ipa::loss {

namespace {

void check_beta(double beta, const char* where) {
    if (!std::isfinite(beta) || beta <= 0.0) {
        std::ostringstream m;
        m << where << ": beta must be finite and > 0, got " << beta;
        throw ConfigError(m.str());
    }
}

void check_per_sample(const at::Tensor& t, const at::Tensor& like, const char* name, const char* where) {
    TORCH_CHECK(t.defined(), where, ": ", name, " is undefined");
    TORCH_CHECK(t.dim() == 1 && t.size(0) == like.size(0), where, ": ", name, " must be [B] = [", like.size(0),
                "], got ", t.sizes());
}

// scale·w(t)·x with w(t) = (1 - t)² (or 1), evaluated in the README's order
// ((0.5·β)·(1 - t)²)·x. t is moved to x's device and dtype.  [B]
at::Tensor scale_by_time(const at::Tensor& x, const at::Tensor& sigma, double scale, bool time_weight) {
    if (!time_weight) return x * scale;
    const at::Tensor t = sigma.to(x.device(), x.scalar_type());
    return (1.0 - t).pow(2).mul(scale) * x;
}

}  // namespace

at::Tensor halo_weights(const at::Tensor& hand_mask, int64_t ref_frames, double hand_weight,
                        const at::IntArrayRef latent_shape) {
    if (!hand_mask.defined()) return {};
    if (!std::isfinite(hand_weight) || hand_weight < 0.0) {
        std::ostringstream m;
        m << "halo_weights: hand_weight must be finite and >= 0, got " << hand_weight;
        throw ConfigError(m.str());
    }
    if (latent_shape.size() != 5) {
        throw DataError(c10::str("halo_weights: latent shape must be [B, C, T, H, W], got ", latent_shape));
    }
    const int64_t b = latent_shape[0], t = latent_shape[2], h = latent_shape[3], w = latent_shape[4];
    if (ref_frames < 0 || ref_frames > t) {
        throw DataError(c10::str("halo_weights: ref_frames must be in [0, T = ", t, "] for latent shape ", latent_shape,
                                 ", got ", ref_frames));
    }
    const int64_t tv = t - ref_frames;
    at::Tensor m = hand_mask;
    if (m.dim() == 4) m = m.unsqueeze(1);  // [B, T_video, H, W] -> [B, 1, T_video, H, W]
    const std::vector<int64_t> want{b, 1, tv, h, w};
    if (m.dim() != 5 || m.sizes() != at::IntArrayRef(want)) {
        throw DataError(c10::str("halo_weights: hand mask must be [B, 1, T_video, H, W] = ", at::IntArrayRef(want),
                                 " (or [B, T_video, H, W]) for latent shape ", latent_shape, " with ref_frames ",
                                 ref_frames, ", got ", hand_mask.sizes(),
                                 "; hint: the mask covers the latent frames after the reference frame(s)"));
    }
    // w = 1 + (hw - 1)·clamp(M, 0, 1) on video frames.  [B, 1, T_video, H, W]
    const at::Tensor video = m.to(at::kFloat).clamp(0.0, 1.0).mul_(hand_weight - 1.0).add_(1.0);
    if (ref_frames == 0) return video;
    const at::Tensor ref = at::ones({b, 1, ref_frames, h, w}, video.options());
    return at::cat({ref, video}, 2);  // [B, 1, T, H, W]
}

at::Tensor weighted_error(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& weights) {
    TORCH_CHECK(pred.defined() && target.defined(), "weighted_error: undefined pred or target");
    TORCH_CHECK(pred.dim() >= 2, "weighted_error: pred must be [B, ...] with at least 2 dims, got ", pred.sizes());
    TORCH_CHECK(pred.sizes() == target.sizes(), "weighted_error: target must have pred's shape ", pred.sizes(),
                ", got ", target.sizes());
    const bool dbl = pred.scalar_type() == at::kDouble || target.scalar_type() == at::kDouble ||
                     (weights.defined() && weights.scalar_type() == at::kDouble);
    const auto dt = dbl ? at::kDouble : at::kFloat;
    at::Tensor se = (pred.to(dt) - target.to(dt)).pow(2);  // [B, C, T, H, W]
    if (weights.defined()) {
        bool ok = weights.dim() == pred.dim();
        for (int64_t i = 0; ok && i < pred.dim(); ++i) ok = weights.size(i) == 1 || weights.size(i) == pred.size(i);
        TORCH_CHECK(ok, "weighted_error: weights must broadcast to pred's shape ", pred.sizes(),
                    " with the same number of dims, got ", weights.sizes());
        se = se * weights.to(se.device(), dt);
    }
    return se.flatten(1).mean(1);  // [B]
}

IpaTerms flow_ipa_loss(const at::Tensor& err_theta, const at::Tensor& err_ref, const at::Tensor& sigma, double beta,
                       bool time_weight) {
    check_beta(beta, "flow_ipa_loss");
    TORCH_CHECK(err_theta.defined() && err_theta.dim() == 1, "flow_ipa_loss: err_theta must be [B], got ",
                err_theta.defined() ? err_theta.sizes() : at::IntArrayRef{});
    check_per_sample(err_ref, err_theta, "err_ref", "flow_ipa_loss");
    check_per_sample(sigma, err_theta, "sigma", "flow_ipa_loss");

    const at::Tensor ref = err_ref.detach().to(err_theta.device(), err_theta.scalar_type());
    const at::Tensor gap = ref - err_theta;                                        // [B]
    const at::Tensor logits = scale_by_time(gap, sigma, 0.5 * beta, time_weight);  // [B]
    IpaTerms out;
    out.loss = at::log_sigmoid(logits).neg().mean();
    out.gap = gap.detach();
    out.err_theta = err_theta.detach();
    out.err_ref = ref;
    out.logits = logits.detach();
    out.reward_accuracy = out.gap.gt(0).to(err_theta.scalar_type()).mean();
    return out;
}

at::Tensor flow_sft_loss(const at::Tensor& err_theta) {
    TORCH_CHECK(err_theta.defined() && err_theta.dim() == 1 && err_theta.numel() > 0,
                "flow_sft_loss: err_theta must be a non-empty [B]");
    return err_theta.mean();
}

DpoTerms flow_dpo_loss(const at::Tensor& err_theta_w, const at::Tensor& err_ref_w, const at::Tensor& err_theta_l,
                       const at::Tensor& err_ref_l, const at::Tensor& sigma, double beta, bool time_weight) {
    check_beta(beta, "flow_dpo_loss");
    TORCH_CHECK(err_theta_w.defined() && err_theta_w.dim() == 1, "flow_dpo_loss: err_theta_w must be [B], got ",
                err_theta_w.defined() ? err_theta_w.sizes() : at::IntArrayRef{});
    check_per_sample(err_ref_w, err_theta_w, "err_ref_w", "flow_dpo_loss");
    check_per_sample(err_theta_l, err_theta_w, "err_theta_l", "flow_dpo_loss");
    check_per_sample(err_ref_l, err_theta_w, "err_ref_l", "flow_dpo_loss");
    check_per_sample(sigma, err_theta_w, "sigma", "flow_dpo_loss");

    const auto dev = err_theta_w.device();
    const auto dt = err_theta_w.scalar_type();
    const at::Tensor ref_w = err_ref_w.detach().to(dev, dt);
    const at::Tensor ref_l = err_ref_l.detach().to(dev, dt);
    // ref: DiffusionDPO train.py: inside_term = -0.5·β·(model_diff - ref_diff)
    const at::Tensor model_diff = err_theta_w - err_theta_l.to(dev, dt);                              // [B]
    const at::Tensor ref_diff = ref_w - ref_l;                                                        // [B]
    const at::Tensor logits = scale_by_time(model_diff - ref_diff, sigma, -0.5 * beta, time_weight);  // [B]
    DpoTerms out;
    out.loss = at::log_sigmoid(logits).neg().mean();
    out.gap_w = (ref_w - err_theta_w).detach();
    out.gap_l = (ref_l - err_theta_l.to(dev, dt)).detach();
    out.logits = logits.detach();
    out.reward_accuracy = out.logits.gt(0).to(dt).mean();
    return out;
}

LossKind parse_loss_kind(const std::string& name) {
    if (name == "ipa") return LossKind::ipa;
    if (name == "sft") return LossKind::sft;
    if (name == "dpo") return LossKind::dpo;
    throw ConfigError("unknown loss kind '" + name + "'; allowed: 'ipa', 'sft', 'dpo'");
}

const char* to_string(LossKind kind) {
    switch (kind) {
        case LossKind::ipa:
            return "ipa";
        case LossKind::sft:
            return "sft";
        case LossKind::dpo:
            return "dpo";
    }
    return "?";
}

}  // namespace ipa::loss
