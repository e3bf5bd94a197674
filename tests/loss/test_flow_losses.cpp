// HALO weights, weighted error, Flow-IPA, SFT and Flow-DPO (ipa::loss).
//
// Literal expected numbers below were produced once with /usr/bin/python3 (torch 1.13,
// float32) by evaluating the official IPA README snippet (docs/pose-hands.md §3) and the
// Diffusion-DPO train.py formula on the same tensors:
//   logits = 0.5*beta*(1-t)**2*(ref_err-model_err); loss = -F.logsigmoid(logits).mean()
//   inside = -0.5*beta*((mw-ml)-(rw-rl));           loss = -F.logsigmoid(inside).mean()
// with gradients from loss.backward(); regenerate with scripts/loss_reference_numbers.py.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "ipa/core/error.h"
#include "ipa/loss/flow_losses.h"

namespace {

using ipa::loss::flow_dpo_loss;
using ipa::loss::flow_ipa_loss;
using ipa::loss::halo_weights;
using ipa::loss::weighted_error;

at::Tensor f32(std::vector<float> v) { return torch::tensor(v); }

void expect_values(const at::Tensor& got, const std::vector<double>& want, double rtol, double atol, const char* what) {
    ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size())) << what;
    const auto g = got.to(at::kDouble).contiguous().view({-1});
    for (size_t i = 0; i < want.size(); ++i) {
        const double x = g[static_cast<int64_t>(i)].item<double>();
        EXPECT_NEAR(x, want[i], atol + rtol * std::abs(want[i])) << what << "[" << i << "]";
    }
}

// The README snippet, written out independently of the library (HALO + error + IPA).
at::Tensor snippet_error(const at::Tensor& pred, const at::Tensor& target, const at::Tensor& mask, double hw) {
    auto se = (pred.to(at::kFloat) - target.to(at::kFloat)).pow(2);
    const auto vw = 1 + (hw - 1) * mask.clamp(0, 1);
    se = at::cat({se.slice(2, 0, 1), se.slice(2, 1) * vw}, 2);
    return se.flatten(1).mean(1);
}
at::Tensor snippet_ipa_loss(const at::Tensor& model_err, const at::Tensor& ref_err, const at::Tensor& t, double beta) {
    const auto logits = 0.5 * beta * (1 - t).pow(2) * (ref_err - model_err);
    return -at::log_sigmoid(logits).mean();
}

// ---------------------------------------------------------------- (a) HALO weights

TEST(HaloWeights, ExactValuesOnHandMadeMask) {
    // latents [B=1, C=2, T=1+2, H=2, W=2]; mask [1, 1, 2, 2, 2] with hard, soft and
    // out-of-range values.
    const auto mask = f32({1.0f, 0.0f, 0.5f, 0.0f,     // video frame 0
                           -0.3f, 1.7f, 0.25f, 1.0f})  // video frame 1
                          .view({1, 1, 2, 2, 2});
    const double hw = 10.0;
    const auto w = halo_weights(mask, 1, hw, {1, 2, 3, 2, 2});
    EXPECT_EQ(w.sizes(), at::IntArrayRef({1, 1, 3, 2, 2}));
    EXPECT_EQ(w.scalar_type(), at::kFloat);
    expect_values(w,
                  {1, 1, 1, 1,        // reference frame stays 1
                   10, 1, 5.5, 1,     // hand = hw, soft 0.5 -> 1 + (hw-1)/2
                   1, 10, 3.25, 10},  // -0.3 -> 0 -> 1, 1.7 -> 1 -> hw, 0.25 -> 3.25
                  0, 0, "halo hw=10");

    // hand_weight 11 = the paper's W = 1 + λM with λ = 10.
    expect_values(halo_weights(mask, 1, 11.0, {1, 2, 3, 2, 2}).select(2, 1), {11, 1, 6, 1}, 0, 0, "hw=11");
    // hand_weight < 1 down-weights, 1 is a no-op.
    EXPECT_TRUE(at::equal(halo_weights(mask, 1, 1.0, {1, 2, 3, 2, 2}), torch::ones({1, 1, 3, 2, 2})));
    expect_values(halo_weights(mask, 1, 0.0, {1, 2, 3, 2, 2}).select(2, 1), {0, 1, 0.5, 1}, 0, 0, "hw=0");
}

TEST(HaloWeights, LayoutsRefFramesAndDtypes) {
    const auto mask5 = torch::ones({2, 1, 3, 2, 2}, at::kBool);
    const auto mask4 = torch::ones({2, 3, 2, 2}, at::kByte);
    const auto a = halo_weights(mask5, 1, 4.0, {2, 16, 4, 2, 2});
    const auto b = halo_weights(mask4, 1, 4.0, {2, 16, 4, 2, 2});
    EXPECT_TRUE(at::equal(a, b));
    EXPECT_EQ(a.select(2, 0).sum().item<float>(), 2 * 4.0f * 1.0f);  // ref frame ones
    EXPECT_EQ(a.slice(2, 1).sum().item<float>(), 2 * 12 * 4.0f);     // every video voxel = 4
    // No reference prefix: every frame is a video frame.
    const auto c = halo_weights(torch::ones({2, 1, 4, 2, 2}), 0, 4.0, {2, 16, 4, 2, 2});
    EXPECT_TRUE(at::equal(c, torch::full({2, 1, 4, 2, 2}, 4.0f)));
    // Two reference frames.
    const auto d = halo_weights(torch::ones({2, 1, 2, 2, 2}), 2, 4.0, {2, 16, 4, 2, 2});
    EXPECT_TRUE(at::equal(d.slice(2, 0, 2), torch::ones({2, 1, 2, 2, 2})));
    EXPECT_TRUE(at::equal(d.slice(2, 2), torch::full({2, 1, 2, 2, 2}, 4.0f)));
    // Undefined mask: undefined weights (= all ones).
    EXPECT_FALSE(halo_weights(at::Tensor(), 1, 10.0, {2, 16, 4, 2, 2}).defined());
}

TEST(HaloWeights, ShapeErrorsNameExpectedAndGot) {
    auto msg_of = [](const at::Tensor& m, int64_t ref, std::vector<int64_t> shape) -> std::string {
        try {
            halo_weights(m, ref, 10.0, shape);
        } catch (const ipa::DataError& e) {
            return e.what();
        }
        return "<no DataError>";
    };
    // T_video = 4 - 1 = 3 expected, mask has 4 frames.
    auto msg = msg_of(torch::ones({2, 1, 4, 2, 2}), 1, {2, 16, 4, 2, 2});
    EXPECT_NE(msg.find("[2, 1, 3, 2, 2]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 1, 4, 2, 2]"), std::string::npos) << msg;
    msg = msg_of(torch::ones({2, 3, 2, 3}), 1, {2, 16, 4, 2, 2});  // wrong W, 4-D layout
    EXPECT_NE(msg.find("[2, 3, 2, 3]"), std::string::npos) << msg;
    msg = msg_of(torch::ones({1, 1, 3, 2, 2}), 1, {2, 16, 4, 2, 2});  // wrong B
    EXPECT_NE(msg.find("[1, 1, 3, 2, 2]"), std::string::npos) << msg;
    msg = msg_of(torch::ones({2, 2, 3, 2, 2}), 1, {2, 16, 4, 2, 2});  // 2 mask channels
    EXPECT_NE(msg.find("[2, 2, 3, 2, 2]"), std::string::npos) << msg;
    msg = msg_of(torch::ones({2, 1, 3, 2, 2}), 5, {2, 16, 4, 2, 2});  // ref_frames > T
    EXPECT_NE(msg.find("ref_frames"), std::string::npos) << msg;
    msg = msg_of(torch::ones({2, 1, 3, 2, 2}), 1, {2, 16, 4, 2});  // not [B, C, T, H, W]
    EXPECT_NE(msg.find("[2, 16, 4, 2]"), std::string::npos) << msg;
    EXPECT_THROW(halo_weights(torch::ones({2, 1, 3, 2, 2}), 1, -1.0, {2, 16, 4, 2, 2}), ipa::ConfigError);
}

// ---------------------------------------------------------------- (b) weighted error

TEST(WeightedError, HandComputation) {
    // pred [B=1, C=1, T=2, H=1, W=2] = [[1, 2], [3, 4]], target 0 -> se = 1, 4, 9, 16.
    const auto pred = f32({1, 2, 3, 4}).view({1, 1, 2, 1, 2});
    const auto target = torch::zeros_like(pred);
    expect_values(weighted_error(pred, target, at::Tensor()), {30.0 / 4}, 0, 0, "unweighted");
    // Mask on the last video pixel, hw = 10: w = 1, 1 | 1, 10 -> (1 + 4 + 9 + 160) / 4 = 43.5.
    // Plain mean, not (Σ w·se) / Σ w = 174 / 13.
    const auto w = halo_weights(f32({0, 1}).view({1, 1, 1, 1, 2}), 1, 10.0, pred.sizes());
    expect_values(weighted_error(pred, target, w), {43.5}, 0, 0, "halo");

    // B = 2, C = 2: the weights broadcast over C; each sample its own mean.
    const auto p2 = f32({1, 1, 2, 2, 0, 0, 0, 0}).view({2, 2, 2, 1, 1});  // sample 0: c0 [1,1], c1 [2,2]
    const auto t2 = f32({0, 0, 0, 0, 1, 3, 0, 1}).view({2, 2, 2, 1, 1});  // sample 1: se c0 [1,9], c1 [0,1]
    const auto w2 = f32({1, 3, 1, 2}).view({2, 1, 2, 1, 1});
    // sample 0: (1·1 + 3·1 + 1·4 + 3·4) / 4 = 20 / 4 = 5
    // sample 1: (1·1 + 2·9 + 1·0 + 2·1) / 4 = 21 / 4 = 5.25
    const auto e2 = weighted_error(p2, t2, w2);
    EXPECT_EQ(e2.sizes(), at::IntArrayRef({2}));
    expect_values(e2, {5.0, 5.25}, 0, 0, "broadcast");
}

TEST(WeightedError, ComputesInFloat32AndChecksShapes) {
    const auto pred = torch::full({1, 1, 1, 1, 2}, 1.0f, at::kBFloat16);
    const auto target = torch::full({1, 1, 1, 1, 2}, 1.0f + 1.0f / 64, at::kBFloat16);
    const auto e = weighted_error(pred, target, at::Tensor());
    EXPECT_EQ(e.scalar_type(), at::kFloat);
    EXPECT_FLOAT_EQ(e.item<float>(), 1.0f / 4096);  // (1/64)², not bf16-rounded
    EXPECT_EQ(weighted_error(pred.to(at::kDouble), target, at::Tensor()).scalar_type(), at::kDouble);

    EXPECT_THROW(weighted_error(torch::zeros({2, 3}), torch::zeros({2, 4}), at::Tensor()), c10::Error);
    EXPECT_THROW(weighted_error(torch::zeros({2, 3, 4}), torch::zeros({2, 3, 4}), torch::ones({2, 4})), c10::Error);
    EXPECT_THROW(weighted_error(torch::zeros({2, 3, 4}), torch::zeros({2, 3, 4}), torch::ones({2, 3, 2})), c10::Error);
}

// ---------------------------------------------------------------- (c) Flow-IPA

// python: et=[0.10,0.25,0.40,0.05] (requires_grad), er=[0.12,0.20,0.40,0.30], t=[0.1,0.5,0.9,0.0],
// beta=600; logits, loss = snippet; loss.backward() -> et.grad. time_weight off == t = 0.
const std::vector<float> kErrTheta{0.10f, 0.25f, 0.40f, 0.05f};
const std::vector<float> kErrRef{0.12f, 0.20f, 0.40f, 0.30f};
const std::vector<float> kT{0.1f, 0.5f, 0.9f, 0.0f};

TEST(FlowIpa, MatchesOfficialSnippetNumbers) {
    const auto et = f32(kErrTheta).requires_grad_(true);
    const auto terms = flow_ipa_loss(et, f32(kErrRef), f32(kT), 600.0, true);
    EXPECT_EQ(terms.loss.dim(), 0);
    // python: logits [4.85999870300293, -3.749999761581421, 0.0, 75.0], loss 1.11852837
    expect_values(terms.logits, {4.85999870300293, -3.749999761581421, 0.0, 75.0}, 1e-6, 1e-6, "logits");
    EXPECT_NEAR(terms.loss.item<double>(), 1.11852837, 1e-6);
    expect_values(terms.gap, {0.02, -0.05, 0.0, 0.25}, 0, 1e-6, "gap");
    expect_values(terms.err_theta, {0.10, 0.25, 0.40, 0.05}, 0, 1e-7, "err_theta");
    expect_values(terms.err_ref, {0.12, 0.20, 0.40, 0.30}, 0, 1e-7, "err_ref");
    EXPECT_DOUBLE_EQ(terms.reward_accuracy.item<double>(), 0.5);  // gap > 0 for samples 0 and 3; 0 is not > 0

    // Independent evaluation of the snippet formula in C++.
    EXPECT_NEAR(terms.loss.item<double>(),
                snippet_ipa_loss(f32(kErrTheta), f32(kErrRef), f32(kT), 600.0).item<double>(), 1e-6);

    // python et.grad: [0.4672212600708008, 18.31917381286621, 0.3750001788139343, 2.00897767987735e-31]
    terms.loss.backward();
    expect_values(et.grad(), {0.4672212600708008, 18.31917381286621, 0.3750001788139343, 0.0}, 1e-5, 1e-12, "grad");
    // Analytic: d loss / d err_θ_i = -(1/B)·σ(-logit_i)·∂logit_i/∂err_θ_i = (1/B)·(β/2)(1-t_i)²·σ(-logit_i) > 0
    // (raising the model's error raises the loss).
    const auto analytic = (1 - f32(kT)).pow(2) * 300.0 * at::sigmoid(-terms.logits) / 4.0;
    EXPECT_TRUE(at::allclose(et.grad(), analytic, 1e-5, 1e-12)) << et.grad() << analytic;
}

TEST(FlowIpa, TimeWeightOff) {
    const auto et = f32(kErrTheta).requires_grad_(true);
    const auto terms = flow_ipa_loss(et, f32(kErrRef), f32(kT), 600.0, false);
    // python (t = 0): logits [5.999998569488525, -14.999999046325684, 0.0, 75.0], loss 3.92390537
    expect_values(terms.logits, {5.999998569488525, -14.999999046325684, 0.0, 75.0}, 1e-6, 1e-6, "logits");
    EXPECT_NEAR(terms.loss.item<double>(), 3.92390537, 1e-6);
    terms.loss.backward();
    // python et.grad: [0.18544700741767883, 74.9999771118164, 37.5, 2.00897767987735e-31]
    expect_values(et.grad(), {0.18544700741767883, 74.9999771118164, 37.5, 0.0}, 1e-5, 1e-12, "grad");
}

TEST(FlowIpa, GradientOnlyToErrTheta) {
    const auto et = f32(kErrTheta).requires_grad_(true);
    const auto er = f32(kErrRef).requires_grad_(true);
    const auto terms = flow_ipa_loss(et, er, f32(kT), 600.0, true);
    terms.loss.backward();
    EXPECT_TRUE(et.grad().defined());
    EXPECT_FALSE(er.grad().defined());  // err_ref is detached: a constant
    EXPECT_FALSE(terms.gap.requires_grad());
    EXPECT_FALSE(terms.logits.requires_grad());
    EXPECT_FALSE(terms.err_theta.requires_grad());
    EXPECT_FALSE(terms.err_ref.requires_grad());
}

TEST(FlowIpa, EndToEndWithHaloMatchesSnippet) {
    // python: B,C,T,H,W = 2,2,3,2,3; k = arange(72).float().reshape(...);
    //   pred = sin(0.37k); target = 0.5cos(0.11k); ref_pred = sin(0.37k + 0.05);
    //   mask = remainder(arange(24).float().reshape(2,1,2,2,3), 7)/4 - 0.25; hw = 10; t = [0.3, 0.8]
    const auto k = torch::arange(72, at::kFloat).view({2, 2, 3, 2, 3});
    const auto pred = at::sin(0.37 * k).requires_grad_(true);
    const auto target = 0.5 * at::cos(0.11 * k);
    const auto ref_pred = at::sin(0.37 * k + 0.05);
    const auto mask = at::remainder(torch::arange(24, at::kFloat).view({2, 1, 2, 2, 3}), 7) / 4 - 0.25;
    const auto t = f32({0.3f, 0.8f});

    const auto w = halo_weights(mask, 1, 10.0, pred.sizes());
    const auto model_err = weighted_error(pred, target, w);
    const auto ref_err = weighted_error(ref_pred, target, w);
    // python: model_err [1.454023003578186, 2.5632214546203613], ref_err [1.5167187452316284, 2.524603843688965]
    expect_values(model_err, {1.454023003578186, 2.5632214546203613}, 1e-5, 0, "model_err");
    expect_values(ref_err, {1.5167187452316284, 2.524603843688965}, 1e-5, 0, "ref_err");
    // python: unweighted per-sample error [0.4772028923034668, 0.699968159198761]
    expect_values(weighted_error(pred, target, at::Tensor()), {0.4772028923034668, 0.699968159198761}, 1e-5, 0,
                  "plain");
    EXPECT_TRUE(at::allclose(model_err, snippet_error(pred, target, mask, 10.0), 1e-6, 0));

    const auto terms = flow_ipa_loss(model_err, ref_err, t, 600.0, true);
    // python: logits [9.21627426147461, -0.4634113013744354], loss 0.475779593
    expect_values(terms.logits, {9.21627426147461, -0.4634113013744354}, 1e-4, 1e-5, "logits");
    EXPECT_NEAR(terms.loss.item<double>(), 0.475779593, 1e-5);
    EXPECT_DOUBLE_EQ(terms.reward_accuracy.item<double>(), 0.5);
    EXPECT_NEAR(terms.loss.item<double>(), snippet_ipa_loss(model_err, ref_err, t, 600.0).item<double>(), 1e-6);

    // The gradient reaches pred and matches autograd through the snippet.
    terms.loss.backward();
    const auto g_lib = pred.grad().clone();
    pred.mutable_grad().zero_();
    snippet_ipa_loss(snippet_error(pred, target, mask, 10.0), snippet_error(ref_pred, target, mask, 10.0), t, 600.0)
        .backward();
    EXPECT_GT(g_lib.abs().sum().item<double>(), 0.0);
    EXPECT_TRUE(at::allclose(g_lib, pred.grad(), 1e-5, 1e-7));
}

TEST(FlowIpa, RewardAccuracyAndArgumentChecks) {
    const auto t = torch::zeros({4});
    auto acc = [&](std::vector<float> et, std::vector<float> er) {
        return flow_ipa_loss(f32(et), f32(er), t, 600.0, true).reward_accuracy.item<double>();
    };
    EXPECT_DOUBLE_EQ(acc({1, 1, 1, 1}, {2, 2, 2, 2}), 1.0);
    EXPECT_DOUBLE_EQ(acc({1, 1, 1, 1}, {0, 0, 0, 0}), 0.0);
    EXPECT_DOUBLE_EQ(acc({1, 1, 1, 1}, {2, 0, 1, 3}), 0.5);
    // Equal errors: logits 0, loss log 2.
    EXPECT_NEAR(flow_ipa_loss(f32({1, 2}), f32({1, 2}), f32({0.3f, 0.6f}), 600.0, true).loss.item<double>(),
                std::log(2.0), 1e-7);

    EXPECT_THROW(flow_ipa_loss(f32({1, 2}), f32({1, 2, 3}), f32({0, 0}), 600.0, true), c10::Error);
    EXPECT_THROW(flow_ipa_loss(f32({1, 2}), f32({1, 2}), f32({0}), 600.0, true), c10::Error);
    EXPECT_THROW(flow_ipa_loss(f32({1, 2}), f32({1, 2}), f32({0, 0}), 0.0, true), ipa::ConfigError);
    EXPECT_THROW(flow_ipa_loss(f32({1, 2}), f32({1, 2}), f32({0, 0}), NAN, true), ipa::ConfigError);
}

TEST(FlowIpa, LargeBetaIsStable) {
    // |logits| = 1e4: logsigmoid must neither overflow nor lose the gradient.
    const auto et = f32({0.0f, 1.0f, 0.5f}).requires_grad_(true);
    const auto er = f32({1.0f, 0.0f, 0.5f});
    const auto terms = flow_ipa_loss(et, er, f32({0, 0, 0}), 2.0e4, true);
    expect_values(terms.logits, {1e4, -1e4, 0}, 0, 0, "logits");
    // -logsigmoid(1e4) = 0, -logsigmoid(-1e4) = 1e4, -logsigmoid(0) = log 2
    EXPECT_NEAR(terms.loss.item<double>(), (1e4 + std::log(2.0)) / 3, 1e-2);
    terms.loss.backward();
    EXPECT_TRUE(at::isfinite(et.grad()).all().item<bool>()) << et.grad();
    // d/d err_θ = (β/2)·σ(-logit)/B: 0, 1e4/3, 1e4·0.5/3
    expect_values(et.grad(), {0.0, 1e4 / 3, 5e3 / 3}, 1e-6, 1e-6, "grad");

    const auto huge = flow_ipa_loss(f32({0, 1}), f32({1, 0}), f32({0.5f, 0.5f}), 1e12, true);
    EXPECT_TRUE(std::isfinite(huge.loss.item<double>()));
}

// ---------------------------------------------------------------- SFT

TEST(FlowSft, IsTheMean) {
    const auto e = f32({1.0f, 2.0f, 6.0f}).requires_grad_(true);
    const auto l = ipa::loss::flow_sft_loss(e);
    EXPECT_FLOAT_EQ(l.item<float>(), 3.0f);
    l.backward();
    expect_values(e.grad(), {1.0 / 3, 1.0 / 3, 1.0 / 3}, 1e-7, 0, "grad");
}

// ---------------------------------------------------------------- (d) Flow-DPO

// ref: DiffusionDPO train.py / flow_grpo train_sd3_dpo.py:
//   inside = -0.5*beta*((model_w - model_l) - (ref_w - ref_l)); loss = -logsigmoid(inside).mean()
// python: mw=[0.10,0.30], rw=[0.12,0.28], ml=[0.20,0.25], rl=[0.18,0.30], beta=100;
//   constant:      inside [1.9999995231628418, -3.5000011920928955], loss 1.82833982
//   w=(1-t)², t=[0.2,0.6]: inside [1.279999852180481, -0.5600001215934753], loss 0.628585577
TEST(FlowDpo, MatchesDiffusionDpoNumbers) {
    const auto mw = f32({0.10f, 0.30f}).requires_grad_(true);
    const auto ml = f32({0.20f, 0.25f}).requires_grad_(true);
    const auto rw = f32({0.12f, 0.28f}).requires_grad_(true);
    const auto rl = f32({0.18f, 0.30f}).requires_grad_(true);
    const auto t = f32({0.2f, 0.6f});
    const auto d = flow_dpo_loss(mw, rw, ml, rl, t, 100.0, false);
    expect_values(d.logits, {1.9999995231628418, -3.5000011920928955}, 1e-6, 1e-6, "logits");
    EXPECT_NEAR(d.loss.item<double>(), 1.82833982, 1e-6);
    EXPECT_DOUBLE_EQ(d.reward_accuracy.item<double>(), 0.5);
    expect_values(d.gap_w, {0.02, -0.02}, 0, 1e-6, "gap_w");
    expect_values(d.gap_l, {-0.02, 0.05}, 0, 1e-6, "gap_l");
    // logits = β/2·(gap_w - gap_l)
    EXPECT_TRUE(at::allclose(d.logits, 50.0 * (d.gap_w - d.gap_l), 1e-5, 1e-6));

    // Independent evaluation of the Diffusion-DPO formula.
    const auto inside = -0.5 * 100.0 * ((mw.detach() - ml.detach()) - (rw.detach() - rl.detach()));
    EXPECT_NEAR(d.loss.item<double>(), (-at::log_sigmoid(inside).mean()).item<double>(), 1e-7);

    // Gradients: winner error pushed down, loser error pushed up, references constant.
    // d/d errθ_w = (β/2)·σ(-inside)/B, d/d errθ_l = -(β/2)·σ(-inside)/B
    d.loss.backward();
    const auto s = at::sigmoid(-d.logits) * 50.0 / 2.0;
    EXPECT_TRUE(at::allclose(mw.grad(), s, 1e-5, 1e-7)) << mw.grad() << s;
    EXPECT_TRUE(at::allclose(ml.grad(), -s, 1e-5, 1e-7)) << ml.grad();
    EXPECT_FALSE(rw.grad().defined());
    EXPECT_FALSE(rl.grad().defined());

    const auto dt = flow_dpo_loss(mw, rw, ml, rl, t, 100.0, true);
    expect_values(dt.logits, {1.279999852180481, -0.5600001215934753}, 1e-6, 1e-6, "logits tw");
    EXPECT_NEAR(dt.loss.item<double>(), 0.628585577, 1e-6);
}

TEST(FlowDpo, LargeBetaIsStableAndChecksShapes) {
    const auto d = flow_dpo_loss(f32({0, 1}), f32({0, 0}), f32({1, 0}), f32({0, 0}), f32({0, 0}), 2.0e4, false);
    expect_values(d.logits, {1e4, -1e4}, 0, 0, "logits");
    EXPECT_NEAR(d.loss.item<double>(), 5e3, 1e-2);
    EXPECT_THROW(flow_dpo_loss(f32({0, 1}), f32({0, 0}), f32({1}), f32({0, 0}), f32({0, 0}), 100.0, false), c10::Error);
    EXPECT_THROW(flow_dpo_loss(f32({0, 1}), f32({0, 0}), f32({1, 0}), f32({0, 0}), f32({0, 0}), -1.0, false),
                 ipa::ConfigError);
}

// ---------------------------------------------------------------- LossKind

TEST(LossKind, Parse) {
    using ipa::loss::LossKind;
    EXPECT_EQ(ipa::loss::parse_loss_kind("ipa"), LossKind::ipa);
    EXPECT_EQ(ipa::loss::parse_loss_kind("sft"), LossKind::sft);
    EXPECT_EQ(ipa::loss::parse_loss_kind("dpo"), LossKind::dpo);
    EXPECT_STREQ(ipa::loss::to_string(LossKind::dpo), "dpo");
    try {
        ipa::loss::parse_loss_kind("kto");
        ADD_FAILURE() << "no ConfigError";
    } catch (const ipa::ConfigError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("'kto'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("'ipa', 'sft', 'dpo'"), std::string::npos) << msg;
    }
}

}  // namespace
