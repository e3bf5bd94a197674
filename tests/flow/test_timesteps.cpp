// Flow-matching timesteps and noising (ipa::flow).

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <string>

#include "ipa/core/error.h"
#include "ipa/flow/timesteps.h"

namespace {

using ipa::flow::TimestepOptions;
using ipa::flow::TimestepSampling;

at::Generator gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

std::string config_error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const ipa::ConfigError& e) {
        return e.what();
    }
    return "<no ConfigError>";
}

double sample_median(const at::Tensor& x) {
    return std::get<0>(x.to(at::kDouble).sort()).select(0, x.size(0) / 2).item<double>();
}

constexpr int64_t kN = 20000;

TEST(Timesteps, ParseSampling) {
    EXPECT_EQ(ipa::flow::parse_timestep_sampling("uniform"), TimestepSampling::uniform);
    EXPECT_EQ(ipa::flow::parse_timestep_sampling("logit_normal"), TimestepSampling::logit_normal);
    EXPECT_EQ(ipa::flow::parse_timestep_sampling("shifted"), TimestepSampling::shifted);
    EXPECT_STREQ(ipa::flow::to_string(TimestepSampling::logit_normal), "logit_normal");
    const auto msg = config_error_of([] { ipa::flow::parse_timestep_sampling("lognorm"); });
    EXPECT_NE(msg.find("'lognorm'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("uniform"), std::string::npos) << msg;
    EXPECT_NE(msg.find("logit_normal"), std::string::npos) << msg;
    EXPECT_NE(msg.find("shifted"), std::string::npos) << msg;
}

TEST(Timesteps, OptionsCheck) {
    TimestepOptions o;
    EXPECT_NO_THROW(o.check());
    o.shift = 3.0;  // unused by 'uniform': rejected, not silently ignored
    EXPECT_NE(config_error_of([&] { o.check(); }).find("shift 3"), std::string::npos);
    o.sampling = TimestepSampling::shifted;
    EXPECT_NO_THROW(o.check());
    o.shift = 0.0;
    EXPECT_NE(config_error_of([&] { o.check(); }).find("shift"), std::string::npos);
    o.shift = 1.0;
    o.min_sigma = 0.7;
    o.max_sigma = 0.2;
    EXPECT_NE(config_error_of([&] { o.check(); }).find("min_sigma 0.7"), std::string::npos);
    o.min_sigma = 0.0;
    o.max_sigma = 1.5;
    EXPECT_NE(config_error_of([&] { o.check(); }).find("max_sigma 1.5"), std::string::npos);
    o = TimestepOptions{};
    o.sampling = TimestepSampling::logit_normal;
    o.logit_std = 0.0;
    EXPECT_NE(config_error_of([&] { o.check(); }).find("logit_std"), std::string::npos);
    EXPECT_THROW(ipa::flow::sample_sigmas(4, o, gen(0)), ipa::ConfigError);
}

TEST(Timesteps, ReproducibleGivenSeed) {
    for (auto sampling : {TimestepSampling::uniform, TimestepSampling::logit_normal, TimestepSampling::shifted}) {
        TimestepOptions o;
        o.sampling = sampling;
        if (sampling == TimestepSampling::shifted) o.shift = 5.0;
        const auto a = ipa::flow::sample_sigmas(64, o, gen(1234));
        const auto b = ipa::flow::sample_sigmas(64, o, gen(1234));
        const auto c = ipa::flow::sample_sigmas(64, o, gen(1235));
        EXPECT_EQ(a.scalar_type(), at::kFloat);
        EXPECT_EQ(a.sizes(), at::IntArrayRef({64}));
        EXPECT_TRUE(a.device().is_cpu());
        EXPECT_TRUE(at::equal(a, b)) << ipa::flow::to_string(sampling);
        EXPECT_FALSE(at::equal(a, c)) << ipa::flow::to_string(sampling);
        // One generator advances: two draws from it differ.
        auto g = gen(7);
        EXPECT_FALSE(at::equal(ipa::flow::sample_sigmas(16, o, g), ipa::flow::sample_sigmas(16, o, g)));
    }
    EXPECT_EQ(ipa::flow::sample_sigmas(0, TimestepOptions{}, gen(0)).numel(), 0);
}

TEST(Timesteps, UniformStatistics) {
    const auto s = ipa::flow::sample_sigmas(kN, TimestepOptions{}, gen(11));
    EXPECT_GE(s.min().item<float>(), 0.0f);
    EXPECT_LE(s.max().item<float>(), 1.0f);
    // mean 0.5, sd of the mean 0.289/sqrt(20000) = 0.002
    EXPECT_NEAR(s.mean().item<double>(), 0.5, 0.01);
    EXPECT_NEAR(sample_median(s), 0.5, 0.015);
    EXPECT_NEAR(s.lt(0.25).to(at::kDouble).mean().item<double>(), 0.25, 0.015);
}

TEST(Timesteps, LogitNormalStatistics) {
    TimestepOptions o;
    o.sampling = TimestepSampling::logit_normal;
    const auto s = ipa::flow::sample_sigmas(kN, o, gen(12));
    EXPECT_GT(s.min().item<float>(), 0.0f);
    EXPECT_LT(s.max().item<float>(), 1.0f);
    EXPECT_NEAR(sample_median(s), 0.5, 0.015);
    // logit(σ) ~ N(0, 1)
    const auto z = at::logit(s.to(at::kDouble));
    EXPECT_NEAR(z.mean().item<double>(), 0.0, 0.03);
    EXPECT_NEAR(z.std().item<double>(), 1.0, 0.03);

    o.logit_mean = 0.5;
    o.logit_std = 0.7;
    const auto z2 = at::logit(ipa::flow::sample_sigmas(kN, o, gen(13)).to(at::kDouble));
    EXPECT_NEAR(z2.mean().item<double>(), 0.5, 0.03);
    EXPECT_NEAR(z2.std().item<double>(), 0.7, 0.03);
}

TEST(Timesteps, ShiftedStatistics) {
    TimestepOptions o;
    o.sampling = TimestepSampling::shifted;
    o.shift = 3.0;
    const auto s = ipa::flow::sample_sigmas(kN, o, gen(14));
    EXPECT_GE(s.min().item<float>(), 0.0f);
    EXPECT_LE(s.max().item<float>(), 1.0f);
    EXPECT_NEAR(sample_median(s), 0.75, 0.015);  // shift(0.5, 3)

    // logit-normal + shift: the median moves to shift(0.5, 3) as well.
    o.sampling = TimestepSampling::logit_normal;
    EXPECT_NEAR(sample_median(ipa::flow::sample_sigmas(kN, o, gen(15))), 0.75, 0.015);
}

TEST(Timesteps, RangeTruncatesKeepingTheShape) {
    TimestepOptions o;
    o.min_sigma = 0.2;
    o.max_sigma = 0.6;
    auto s = ipa::flow::sample_sigmas(kN, o, gen(16));
    EXPECT_GE(s.min().item<float>(), 0.2f);
    EXPECT_LE(s.max().item<float>(), 0.6f);
    EXPECT_NEAR(s.mean().item<double>(), 0.4, 0.005);

    // shifted, s = 3, range [0.3, 0.9]: u ∈ [unshift(0.3), unshift(0.9)] = [0.125, 0.75],
    // median u = 0.4375, shift(0.4375, 3) = 1.3125 / 1.875 = 0.7.
    o.sampling = TimestepSampling::shifted;
    o.shift = 3.0;
    o.min_sigma = 0.3;
    o.max_sigma = 0.9;
    s = ipa::flow::sample_sigmas(kN, o, gen(17));
    EXPECT_GE(s.min().item<float>(), 0.3f);
    EXPECT_LE(s.max().item<float>(), 0.9f);
    EXPECT_NEAR(sample_median(s), 0.7, 0.01);

    o = TimestepOptions{};
    o.sampling = TimestepSampling::logit_normal;
    o.min_sigma = 0.4;
    o.max_sigma = 0.6;
    s = ipa::flow::sample_sigmas(kN, o, gen(18));
    EXPECT_GE(s.min().item<float>(), 0.4f);
    EXPECT_LE(s.max().item<float>(), 0.6f);
    EXPECT_NEAR(sample_median(s), 0.5, 0.006);

    o.min_sigma = o.max_sigma = 0.25;  // degenerate range: constant
    EXPECT_TRUE(at::allclose(ipa::flow::sample_sigmas(8, o, gen(19)), at::full({8}, 0.25f)));
}

TEST(Timesteps, ShiftFormulaExact) {
    const auto sigma = torch::tensor({0.0, 0.2, 0.5, 0.75, 1.0}, at::kDouble);
    // σ' = sσ / (1 + (s - 1)σ)
    const auto s3 = ipa::flow::shift_sigma(sigma, 3.0);
    const double want3[] = {0.0, 0.6 / 1.4, 0.75, 2.25 / 2.5, 1.0};
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(s3[i].item<double>(), want3[i], 1e-15) << i;
    EXPECT_DOUBLE_EQ(s3[2].item<double>(), 0.75);  // σ = 0.5, s = 3
    const auto s5 = ipa::flow::shift_sigma(sigma, 5.0);
    EXPECT_NEAR(s5[1].item<double>(), 5.0 / 9.0, 1e-15);  // 1 / 1.8
    EXPECT_NEAR(s5[2].item<double>(), 5.0 / 6.0, 1e-15);
    EXPECT_TRUE(at::equal(ipa::flow::shift_sigma(sigma, 1.0), sigma));
    const auto half = ipa::flow::shift_sigma(sigma, 0.5);  // s < 1 moves sigmas down
    EXPECT_NEAR(half[2].item<double>(), 0.25 / 0.75, 1e-15);
    EXPECT_THROW(ipa::flow::shift_sigma(sigma, -1.0), c10::Error);
    EXPECT_FLOAT_EQ(ipa::flow::sigma_to_timestep(torch::tensor({0.5f}))[0].item<float>(), 500.0f);
}

TEST(Timesteps, AddNoiseExact) {
    const auto x0 = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({2, 2});
    const auto eps = torch::tensor({0.0f, 1.0f, 1.0f, 0.0f}).view({2, 2});
    const auto sigma = torch::tensor({0.25f, 0.5f});
    const auto out = ipa::flow::add_noise(x0, eps, sigma);
    // row 0: 0.75·[1, 2] + 0.25·[0, 1] = [0.75, 1.75]; row 1: 0.5·[3, 4] + 0.5·[1, 0] = [2, 2]
    EXPECT_TRUE(at::equal(out.x_t, torch::tensor({0.75f, 1.75f, 2.0f, 2.0f}).view({2, 2}))) << out.x_t;
    EXPECT_TRUE(at::equal(out.target, torch::tensor({-1.0f, -1.0f, -2.0f, -4.0f}).view({2, 2}))) << out.target;

    // 5-D latents: sigma broadcasts over C, T, H, W; σ = 0 gives x0, σ = 1 gives ε.
    const auto a = torch::arange(2 * 3 * 2 * 2 * 2, at::kDouble).view({2, 3, 2, 2, 2});
    const auto e = a.mul(-0.5).add(3.0);
    const auto o5 = ipa::flow::add_noise(a, e, torch::tensor({0.0, 1.0}, at::kDouble));
    EXPECT_EQ(o5.x_t.scalar_type(), at::kDouble);
    EXPECT_TRUE(at::equal(o5.x_t[0], a[0]));
    EXPECT_TRUE(at::equal(o5.x_t[1], e[1]));
    EXPECT_TRUE(at::equal(o5.target, e - a));
    // Interpolates linearly: x_t = x0 + σ·v.
    const auto mid = ipa::flow::add_noise(a, e, torch::tensor({0.3, 0.6}, at::kDouble));
    EXPECT_TRUE(at::allclose(mid.x_t, a + torch::tensor({0.3, 0.6}, at::kDouble).view({2, 1, 1, 1, 1}) * mid.target));
}

TEST(Timesteps, AddNoiseDtypesAndErrors) {
    const auto x0 = torch::ones({2, 4, 3}, at::kBFloat16);
    const auto eps = torch::zeros({2, 4, 3}, at::kBFloat16);
    const auto out = ipa::flow::add_noise(x0, eps, torch::tensor({0.5f, 0.25f}));
    EXPECT_EQ(out.x_t.scalar_type(), at::kBFloat16);  // model input keeps the latent dtype
    EXPECT_EQ(out.target.scalar_type(), at::kFloat);  // target stays float32 for the loss
    EXPECT_FLOAT_EQ(out.x_t[1][0][0].item<float>(), 0.75f);

    EXPECT_THROW(ipa::flow::add_noise(x0, torch::zeros({2, 4, 2}), torch::tensor({0.5f, 0.5f})), c10::Error);
    try {
        ipa::flow::add_noise(x0, eps, torch::tensor({0.5f, 0.5f, 0.5f}));
        ADD_FAILURE() << "no error";
    } catch (const c10::Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("[2]"), std::string::npos) << msg;
        EXPECT_NE(msg.find("[3]"), std::string::npos) << msg;
    }
}

}  // namespace
