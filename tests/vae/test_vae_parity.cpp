// Parity of the C++ Wan 2.1 VAE with the official upstream module (fixtures written by
// scripts/gen_vae_fixtures.py from Wan2.1 wan/modules/vae.py WanVAE_, float32 and float64 runs).
//
// Tolerance: each fixture carries the upstream float32 output `out`, the float64 output
// `out_f64` of the same code, and floor = max|out − out_f64| (the float32 noise of the
// reference, 1.6e-7 – 3.7e-6 here, see tests/fixtures/vae/README.md). Our float32 output must
// be within 10 × floor of both.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "vae_test_util.h"

namespace fs = std::filesystem;
using namespace ipa::models::vae;
using namespace ipa::test::vae;

namespace {

struct Case {
    std::string name;
    bool encode;
    std::vector<int64_t> shape;
    uint32_t seed;
};

// Mirrors CASES in scripts/gen_vae_fixtures.py (inputs are regenerated, not stored).
std::vector<Case> cases() {
    return {
        {"enc_t1_16x24", true, {1, 3, 1, 16, 24}, 11},    {"enc_t5_16x24", true, {1, 3, 5, 16, 24}, 12},
        {"enc_t9_24x40", true, {1, 3, 9, 24, 40}, 13},    {"enc_t17_16x24", true, {1, 3, 17, 16, 24}, 14},
        {"enc_b2_t5_16x16", true, {2, 3, 5, 16, 16}, 15}, {"dec_t1_24x40", false, {1, 16, 1, 3, 5}, 21},
        {"dec_t4_16x24", false, {1, 16, 4, 2, 3}, 22},    {"dec_t5_16x16", false, {1, 16, 5, 2, 2}, 23},
        {"dec_b2_t2_16x16", false, {2, 16, 2, 2, 2}, 24},
    };
}

at::Tensor case_input(const Case& c) {
    auto x = det_uniform(c.shape, c.seed);
    return c.encode ? x : 2.0 * x;
}

// One case: ours vs upstream fp32 and fp64 within 10 × floor (printed per case).
void check_case(const Case& c) {
    SCOPED_TRACE(c.name);
    const auto io = ipa::io::SafetensorsFile::open(fixture_dir() / (c.name + ".safetensors"));
    auto vae = tiny_vae();
    const auto x = case_input(c);
    const auto ref32 = io.tensor("out");
    const auto ref64 = io.tensor("out_f64");
    const double floor = io.tensor("floor").item<double>();
    // upstream decode output is before WanVAE's clamp: compare the raw decoder first
    const auto ours = c.encode ? vae->encode(x) : [&] {
        torch::NoGradGuard g;
        return vae->decode_raw(vae->denormalize_latents(x));
    }();
    ASSERT_EQ(ours.sizes(), ref32.sizes());
    ASSERT_EQ(ours.scalar_type(), torch::kFloat);
    const double err32 = max_abs_diff(ours, ref32), err64 = max_abs_diff(ours, ref64);
    std::printf("[vae parity %s] max|out|=%.3f floor=%.2e ours-vs-fp32=%.2e ours-vs-fp64=%.2e (%.1fx floor)\n",
                c.name.c_str(), ref64.abs().max().item<double>(), floor, err32, err64, err64 / floor);
    ::testing::Test::RecordProperty(c.name + ".floor", std::to_string(floor));
    ::testing::Test::RecordProperty(c.name + ".err_vs_f32", std::to_string(err32));
    EXPECT_GT(floor, 0.0);
    EXPECT_LT(err32, 10.0 * floor) << "C++ fp32 differs from upstream fp32 beyond 10x the float64 floor";
    EXPECT_LT(err64, 10.0 * floor) << "C++ fp32 differs from upstream fp64 beyond 10x the float64 floor";
    if (!c.encode) {  // the public decode = the same numbers clamped to [-1, 1] (WanVAE.decode)
        const auto clamped = vae->decode(x);
        EXPECT_LT(max_abs_diff(clamped, ref32.clamp(-1, 1)), 10.0 * floor);
        EXPECT_LE(clamped.abs().max().item<double>(), 1.0);
        EXPECT_GT(ref32.abs().max().item<double>(), 1.0) << "fixture should exercise the clamp";
    }
}

// 1, 5, 9, 17 frames (chunk boundaries 1 | 4 | 4 | 4), 16x24 and 24x40, batch 2.
TEST(VaeParity, EncodeMatchesUpstreamWithinTenTimesTheFloat64Floor) {
    for (const auto& c : cases()) {
        if (c.encode) check_case(c);
    }
}

// 1, 2, 4 (first temporal upsampler fully exercised), 5 latent frames, batch 2.
TEST(VaeParity, DecodeMatchesUpstreamWithinTenTimesTheFloat64Floor) {
    for (const auto& c : cases()) {
        if (!c.encode) check_case(c);
    }
}

TEST(VaeParityFixtures, GeneratorMatchesThePythonOne) {
    for (const auto& c : cases()) {
        const auto io = ipa::io::SafetensorsFile::open(fixture_dir() / (c.name + ".safetensors"));
        if (!io.contains("input")) continue;
        EXPECT_TRUE(torch::equal(case_input(c), io.tensor("input"))) << c.name;
        EXPECT_GT(io.tensor("input").abs().max().item<double>(), 0.9) << c.name;
    }
}

TEST(VaeParityFixtures, Bf16RunsCloseToFp32) {
    auto vae32 = tiny_vae();
    auto vae16 = load_wan_vae(fixture_dir() / "tiny.weights.pth", torch::kCPU, torch::kBFloat16);
    EXPECT_EQ(vae16->dtype(), torch::kBFloat16);
    const auto video = det_uniform({1, 3, 5, 16, 24}, 12);
    const auto a = vae32->encode(video), b = vae16->encode(video);
    ASSERT_EQ(b.scalar_type(), torch::kFloat);
    const double err = max_abs_diff(a, b), scale = a.abs().max().item<double>();
    std::printf("[vae bf16] encode max|fp32|=%.3f max|bf16 - fp32|=%.3e\n", scale, err);
    EXPECT_GT(err, 0.0);
    EXPECT_LT(err, 0.1 * scale);
}

// The real config's parameter names and shapes equal those of upstream WanVAE_(dim=96, …)
// (wan2.1-vae.keys.txt, 194 tensors as Appendix A of the spec), built on the meta device.
TEST(VaeRealConfig, KeysAndShapesEqualUpstream) {
    const WanVAEImpl vae(VaeConfig::preset("wan2.1"), torch::TensorOptions().device(torch::kMeta));
    std::vector<std::string> ours;
    int64_t n_params = 0;
    for (const auto& p : vae.named_parameters()) {
        std::ostringstream s;
        s << p.key() << '\t';
        for (int64_t i = 0; i < p.value().dim(); ++i) s << (i ? "," : "") << p.value().size(i);
        ours.push_back(s.str());
        n_params += p.value().numel();
        EXPECT_TRUE(p.value().is_meta());
    }
    std::sort(ours.begin(), ours.end());
    std::ifstream f(fixture_dir() / "wan2.1-vae.keys.txt");
    ASSERT_TRUE(f) << "missing wan2.1-vae.keys.txt";
    std::vector<std::string> want;
    for (std::string line; std::getline(f, line);) want.push_back(line);
    EXPECT_EQ(want.size(), 194u);
    EXPECT_EQ(ours, want);
    EXPECT_EQ(n_params, 126892531);
}

}  // namespace
