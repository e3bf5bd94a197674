#pragma once

// Flow-matching preference losses (docs/architecture.md §6): HALO weights, the weighted
// per-sample error, Flow-IPA, plain SFT and Flow-DPO. Pure functions, no host syncs.
//
// ref: mdswyz/IPA README (docs/pose-hands.md §3), the authoritative snippet:
//   se      = (pred.float() - target.float())**2
//   w       = 1 + (hand_region_weight - 1) * mask.clamp(0, 1)        # README: 10x, not 11x
//   se      = cat([se[:, :, :1], se[:, :, 1:] * w], dim=2)           # ref latent unweighted
//   err     = se.flatten(1).mean(1)                                  # plain mean
//   logits  = 0.5 * beta * (1 - t)**2 * (ref_err - model_err)        # ref_err under no_grad
//   loss    = -F.logsigmoid(logits).mean()

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>

namespace ipa::loss {

/// HALO weights, [B, 1, T, H, W] float32 on the mask's device, for latents of
/// `latent_shape` = [B, C, T, H, W] with T = ref_frames + T_video:
///   w = 1                              on the first `ref_frames` (reference) frames,
///   w = 1 + (hand_weight - 1)·clamp(M) on the T_video video frames.
/// `hand_mask`: [B, 1, T_video, H, W] or [B, T_video, H, W], any real/bool dtype, values
/// clamped to [0, 1] (soft masks allowed). hand_weight = 10 gives the README's 10x; the
/// paper's W = 1 + λM is hand_weight = 1 + λ. Undefined mask ⇒ undefined result (all
/// ones). Shape mismatch ⇒ DataError naming expected and actual shapes; hand_weight < 0
/// or non-finite ⇒ ConfigError.
at::Tensor halo_weights(const at::Tensor& hand_mask, int64_t ref_frames, double hand_weight,
                        const at::IntArrayRef latent_shape);

/// Per-sample error [B]: mean over every non-batch element of w·(pred - target)², in
/// float32 (float64 when an input is double). Plain mean, NOT normalised by Σw. `weights`
/// may be undefined (w = 1); otherwise it must broadcast to pred's shape with the same
/// number of dims (e.g. [B, 1, T, H, W] from halo_weights).
at::Tensor weighted_error(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& weights);

/// Flow-IPA terms. Only `loss` carries autograd history; the rest are detached, for logging.
struct IpaTerms {
    at::Tensor loss;             ///< scalar, mean(-logsigmoid(logits))
    at::Tensor gap;              ///< [B] err_ref - err_theta (implicit reward; > 0 = better than ref)
    at::Tensor err_theta;        ///< [B]
    at::Tensor err_ref;          ///< [B]
    at::Tensor reward_accuracy;  ///< scalar, fraction of samples with gap > 0
    at::Tensor logits;           ///< [B] β/2·w(t)·gap
};

/// Flow-IPA: gap = err_ref - err_θ with err_ref detached (a constant), w(t) = (1 - t)²
/// when `time_weight` (else 1), logits = β/2·w(t)·gap, loss = mean(-logsigmoid(logits)).
/// err_theta, err_ref, sigma: [B]; sigma = t ∈ [0, 1] (not checked: that would sync),
/// moved to err_theta's device and dtype. β must be finite and > 0 (ConfigError).
IpaTerms flow_ipa_loss(const at::Tensor& err_theta, const at::Tensor& err_ref, const at::Tensor& sigma, double beta,
                       bool time_weight);

/// Plain flow-matching SFT loss: mean of the per-sample (weighted) errors.
at::Tensor flow_sft_loss(const at::Tensor& err_theta);

/// Flow-DPO terms. Only `loss` carries autograd history.
struct DpoTerms {
    at::Tensor loss;             ///< scalar
    at::Tensor gap_w;            ///< [B] err_ref_w - err_theta_w
    at::Tensor gap_l;            ///< [B] err_ref_l - err_theta_l
    at::Tensor reward_accuracy;  ///< scalar, fraction of pairs with logits > 0
    at::Tensor logits;           ///< [B] -β/2·w(t)·((errθ_w - errref_w) - (errθ_l - errref_l))
};

/// Diffusion-DPO / Flow-DPO on per-sample errors of winner (w) and loser (l) that share
/// noise and t:
///   logits = -β/2·w(t)·((errθ_w - errref_w) - (errθ_l - errref_l)) = β/2·w(t)·(gap_w - gap_l),
///   loss   = mean(-logsigmoid(logits)).
/// ref: SalesforceAIResearch/DiffusionDPO train.py (`scale_term = -0.5 * args.beta_dpo;
/// inside_term = scale_term * (model_diff - ref_diff); loss = -F.logsigmoid(inside_term).mean()`),
/// and yifan123/flow_grpo scripts/train_sd3_dpo.py (same form on velocity errors, constant β:
/// time_weight = false). With time_weight, w(t) = (1 - t)² as in IPA. Reference errors are
/// detached. All errors and sigma: [B].
DpoTerms flow_dpo_loss(const at::Tensor& err_theta_w, const at::Tensor& err_ref_w, const at::Tensor& err_theta_l,
                       const at::Tensor& err_ref_l, const at::Tensor& sigma, double beta, bool time_weight);

enum class LossKind { ipa, sft, dpo };

/// "ipa" | "sft" | "dpo"; anything else is a ConfigError naming the value and the allowed ones.
LossKind parse_loss_kind(const std::string& name);
const char* to_string(LossKind kind);

}  // namespace ipa::loss
