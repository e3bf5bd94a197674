// The sampling loop: analytic velocity fields (where the exact answer is known), CFG,
// the DiT closure, seeded noise.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipa/core/error.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/model.h"
#include "ipa/sample/sampling.h"
#include "test_util.h"

using namespace ipa;

namespace {

sample::SamplingOptions options(flow::SamplerKind kind, int64_t steps, double guide) {
    sample::SamplingOptions o;
    o.sampler.kind = kind;
    o.sampler.steps = steps;
    o.sampler.shift = 5.0;
    o.guide_scale = guide;
    o.progress = false;
    return o;
}

class StraightPath : public ::testing::TestWithParam<flow::SamplerKind> {};

TEST_P(StraightPath, EverySamplerLandsOnTheDataOfAStraightFlow) {
    // x_σ = (1−σ)x₀ + σε has the constant velocity ε − x₀; every solver must end at x₀.
    torch::manual_seed(3);
    const auto x0 = torch::randn({4, 3, 2, 2}), noise = torch::randn({4, 3, 2, 2});
    const auto v = noise - x0;
    const auto o = options(GetParam(), 12, 5.0);
    // Start on the path at the schedule's first σ (UniPC starts at σ(0.999) < 1, as upstream).
    const double s0 = flow::make_sampler(o.sampler)->sigmas()[0];
    const auto start = (1 - s0) * x0 + s0 * noise;
    const auto r = sample::sample_flow(
        start, [&](const at::Tensor&, double, bool) { return v; }, o);
    EXPECT_LT((r.latents - x0).abs().max().item<double>(), 2e-5) << flow::to_string(GetParam());
    EXPECT_EQ(r.timesteps.size(), 12u);
}

INSTANTIATE_TEST_SUITE_P(Samplers, StraightPath,
                         ::testing::Values(flow::SamplerKind::unipc, flow::SamplerKind::dpmpp,
                                           flow::SamplerKind::euler),
                         [](const auto& info) {
                             return std::string(info.param == flow::SamplerKind::dpmpp ? "dpmpp"
                                                                                       : flow::to_string(info.param));
                         });

TEST(Sampling, GuidanceCombinesTheTwoPassesAsTheReference) {
    // Euler with constant velocities: x_N = noise + Σ dσ·v = noise − (v_u + g(v_c − v_u)).
    const auto noise = torch::ones({2, 1, 1, 1});
    const auto vc = torch::full({2, 1, 1, 1}, 0.5f), vu = torch::full({2, 1, 1, 1}, -0.25f);
    int calls_u = 0;
    const auto r = sample::sample_flow(
        noise,
        [&](const at::Tensor&, double, bool cond) {
            calls_u += !cond;
            return cond ? vc : vu;
        },
        options(flow::SamplerKind::euler, 4, 3.0));
    EXPECT_NEAR(r.latents[0].item<float>(), 1.0f - (-0.25f + 3.0f * 0.75f), 1e-6);
    EXPECT_EQ(calls_u, 4);
    calls_u = 0;
    sample::sample_flow(
        noise,
        [&](const at::Tensor&, double, bool cond) {
            calls_u += !cond;
            return vc;
        },
        options(flow::SamplerKind::euler, 4, 1.0));
    EXPECT_EQ(calls_u, 0) << "guide scale 1 needs no unconditional pass";
}

TEST(Sampling, DivergenceIsAnErrorNamingTheStep) {
    const auto noise = torch::ones({1, 1, 1, 1});
    try {
        sample::sample_flow(
            noise, [](const at::Tensor& x, double, bool) { return x * INFINITY; },
            options(flow::SamplerKind::unipc, 5, 1.0));
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("step 1"), std::string::npos) << e.what();
    }
}

TEST(Sampling, NoiseIsSeeded) {
    const auto a = sample::initial_noise({16, 2, 3, 4}, 7, c10::kCPU),
               b = sample::initial_noise({16, 2, 3, 4}, 7, c10::kCPU);
    const auto c = sample::initial_noise({16, 2, 3, 4}, 8, c10::kCPU);
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_FALSE(torch::equal(a, c));
    EXPECT_EQ(a.scalar_type(), torch::kFloat32);
}

TEST(Sampling, TheDiTClosureRunsOneSampleWithEitherPrompt) {
    const auto cfg = models::wan::WanConfig::resolve("tiny");
    auto model = models::wan::make_wan_model(cfg);
    test::randomize(*model, 11);
    model->eval();
    torch::manual_seed(5);
    const auto x = torch::randn({cfg.in_dim, 2, 4, 4});
    const auto vace = torch::randn({cfg.vace_in_dim, 2, 4, 4});
    const auto ctx = torch::randn({5, cfg.text_dim}), neg = torch::randn({3, cfg.text_dim});
    const auto v = sample::wan_velocity(*model, vace, ctx, neg, 0.8);
    const auto vc = v(x, 900.0, true), vu = v(x, 900.0, false);
    models::wan::WanInputs in;
    in.x = x.unsqueeze(0);
    in.t = torch::full({1}, 900.0);
    in.context = ctx.unsqueeze(0);
    in.vace_context = vace.unsqueeze(0);
    in.context_scale = 0.8;
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::allclose(vc, model->forward(in).squeeze(0), 0, 0));
    EXPECT_GT((vc - vu).abs().max().item<double>(), 1e-4);
    EXPECT_EQ(vc.sizes(), x.sizes());
    EXPECT_FALSE(vc.requires_grad());
    // A short full run stays finite and is reproducible.
    auto o = options(flow::SamplerKind::unipc, 3, 5.0);
    const auto noise = sample::initial_noise(x.sizes(), 1, c10::kCPU);
    const auto r1 = sample::sample_flow(noise, v, o), r2 = sample::sample_flow(noise, v, o);
    EXPECT_TRUE(torch::equal(r1.latents, r2.latents));
    EXPECT_TRUE(torch::isfinite(r1.latents).all().item<bool>());
}

}  // namespace
