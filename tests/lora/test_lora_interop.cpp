// LoRA portability against the peers' own Python code (scripts/gen_lora_interop_fixtures.py,
// tests/fixtures/lora_interop/README.md):
//
//  * ipa -> diffusers: an adapter in exactly save_adapter's spelling, which diffusers'
//    WanPipeline.load_lora_weights read into the tiny diffusers t2v transformer
//    (tests/fixtures/diffusers/wan_t2v); diffusers' forward with the adapter is the reference.
//    The other direction of the same file: save_adapter of the factors writes the same keys,
//    dtypes, shapes and alpha as the file diffusers read.
//  * DiffSynth-Studio -> ipa: a tiny DiffSynth WanModel (official key names) with LoRA injected
//    by DiffSynth's training module (its default targets q,k,v,o,ffn.0,ffn.2, alpha = rank),
//    saved by its ModelLogger, loaded back by its pipeline's load_lora; its forward is the
//    reference.
//  * ComfyUI/kohya spelling (lora_down/lora_up/alpha) of the factors of the first case; the
//    reference is the merge W + (alpha/r)·up·down applied by the script to diffusers' weights
//    (ComfyUI's documented rule, not ComfyUI's code).
//
// Tolerance, as in tests/models/test_diffusers_parity.cpp: floor = max|peer fp32 − peer fp64|
// (the peer's own float32 noise, recorded in the fixture); ipa's fp32 forward with the adapter
// must be within 10 × floor of the peer's float64 output, and ipa's fp64 forward within
// 1e-3 × floor of it (measured ~2e-14: the same function).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/lora/lora.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/loader.h"
#include "ipa/models/wan/model.h"
#include "lora_test_util.h"
#include "numeric_bounds.h"
#include "wan_inputs.h"

using namespace ipa_test_lora;
using ipa::models::wan::load_wan_weights;

namespace {

const fs::path kDir = fs::path(IPA_FIXTURES_DIR) / "lora_interop";
const fs::path kDiffusersT2V = fs::path(IPA_FIXTURES_DIR) / "diffusers" / "wan_t2v";

constexpr double kFactor = 10.0;  // × the peer's recorded float32 floor
constexpr int64_t kRank = 4;
constexpr double kAlpha = 6.0;  // the script's alpha for the ipa and ComfyUI files

#define REQUIRE_FIXTURE(path)                                                                 \
    do {                                                                                      \
        if (!fs::exists(path))                                                                \
            GTEST_SKIP() << "fixture " << (path) << " missing: run scripts/gen_lora_interop_" \
                         << "fixtures.py (see tests/fixtures/lora_interop/README.md)";        \
    } while (0)

// The tiny diffusers t2v transformer, loaded from its save_pretrained folder like
// test_diffusers_parity (WanConfig::detect reads the head count from config.json).
std::shared_ptr<WanModelImpl> diffusers_t2v() {
    const auto ckpt = ipa::io::Checkpoint::open(kDiffusersT2V);
    auto m = make_wan_model(WanConfig::detect(ckpt));
    load_wan_weights(*m, ckpt);  // strict
    return m;
}

// The config the script passes to DiffSynth's WanModel (official names; the head count is not
// in the weights, so it is spelled out here as in test_diffusers_parity's expected()).
WanConfig diffsynth_t2v_config() {
    WanConfig c;
    c.dim = 40;
    c.num_heads = 2;
    c.in_dim = 4;
    c.out_dim = 6;
    c.text_dim = 24;
    c.freq_dim = 16;
    c.ffn_dim = 32;
    c.num_layers = 2;
    return c;
}

std::shared_ptr<WanModelImpl> diffsynth_t2v() {
    auto m = make_wan_model(diffsynth_t2v_config());
    load_wan_weights(*m, ipa::io::Checkpoint::open(kDir / "diffsynth_t2v.base.safetensors"));  // strict
    return m;
}

struct Compared {
    double floor = 0, err = 0, err_base = 0;
};

// ipa's fp32 forward of `m` (adapter loaded) vs the peer's float64 output in `io_name`; also
// the same model with its adapters disabled, to show the bound can tell an adapter's effect.
Compared compare(WanModelImpl& m, const std::string& io_name, const std::string& label) {
    const auto io = ipa::io::SafetensorsFile::open(kDir / io_name);
    const auto in = ipa::test::wan_inputs_from(io);
    const auto ref32 = io.tensor("out");
    const auto ref64 = io.tensor("out_f64");
    Compared c;
    torch::NoGradGuard g;
    const auto out = m.forward(in);
    EXPECT_EQ(out.sizes(), ref64.sizes());
    EXPECT_EQ(out.scalar_type(), torch::kFloat);
    c.floor = (ref32.to(torch::kDouble) - ref64).abs().max().item<double>();
    c.err = (out.to(torch::kDouble) - ref64).abs().max().item<double>();
    ipa::lora::set_lora_enabled(m, false);
    c.err_base = (m.forward(in).to(torch::kDouble) - ref64).abs().max().item<double>();
    ipa::lora::set_lora_enabled(m, true);
    std::printf(
        "[lora interop %s] max|out|=%.3f floor(peer fp32 vs fp64)=%.2e  ours vs peer fp64=%.2e (%.2f x floor)  "
        "adapter off=%.2e\n",
        label.c_str(), ref64.abs().max().item<double>(), c.floor, c.err, c.err / c.floor, c.err_base);
    ::testing::Test::RecordProperty("floor", std::to_string(c.floor));
    ::testing::Test::RecordProperty("err_vs_f64", std::to_string(c.err));
    return c;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

std::vector<std::string> self_attn_qkv(int64_t layers) {
    std::vector<std::string> v;
    for (int64_t i = 0; i < layers; ++i)
        for (const char* p : {"q", "k", "v"}) v.push_back("blocks." + std::to_string(i) + ".self_attn." + p);
    return v;
}

std::set<std::string> names_of(const ipa::io::SafetensorsFile& f) {
    std::set<std::string> s;
    for (const auto& t : f.tensors()) s.insert(t.name);
    return s;
}

// ---- ipa -> diffusers ----

TEST(LoRAInterop, IpaSpellingThatDiffusersReadGivesDiffusersOutput) {
    REQUIRE_FIXTURE(kDir / "ipa_t2v.safetensors");
    REQUIRE_FIXTURE(kDir / "ipa_t2v.io.safetensors");
    REQUIRE_FIXTURE(kDiffusersT2V);
    auto m = diffusers_t2v();
    const auto loaded = ipa::lora::load_adapter(*m, kDir / "ipa_t2v.safetensors", /*strict=*/true);
    EXPECT_EQ(sorted(loaded), sorted(self_attn_qkv(2)));  // file order
    EXPECT_EQ(ipa::lora::adapted_modules(*m), self_attn_qkv(2));
    for (const auto& item : m->named_modules()) {
        const auto& name = item.key();
        if (auto* lin = item.value()->as<LinearImpl>(); lin && lin->has_lora()) {
            EXPECT_EQ(lin->lora_rank(), kRank) << name;
            EXPECT_EQ(lin->lora_alpha(), kAlpha) << name;
        }
    }
    const auto c = compare(*m, "ipa_t2v.io.safetensors", "ipa -> diffusers");
    EXPECT_TRUE(ipa::test::within_recorded_floor(c.err, c.floor, kFactor));
    EXPECT_GT(c.err_base, 100 * kFactor * c.floor) << "the adapter's effect is not above the bound";
}

TEST(LoRAInterop, SaveAdapterWritesTheSpellingDiffusersRead) {
    REQUIRE_FIXTURE(kDir / "ipa_t2v.safetensors");
    REQUIRE_FIXTURE(kDiffusersT2V);
    const auto fixture = ipa::io::SafetensorsFile::open(kDir / "ipa_t2v.safetensors");
    auto m = diffusers_t2v();
    ipa::lora::load_adapter(*m, kDir / "ipa_t2v.safetensors", /*strict=*/true);
    LoRAConfig cfg;  // default targets self_attn.q/k/v, blocks main
    cfg.rank = kRank;
    cfg.alpha = kAlpha;
    TempDir dir;
    const auto path = dir / "ours.safetensors";
    ipa::lora::save_adapter(path, *m, cfg);
    EXPECT_FALSE(fs::exists(ipa::lora::vace_adapter_path(path)));
    const auto ours = ipa::io::SafetensorsFile::open(path);

    ASSERT_EQ(names_of(ours), names_of(fixture));
    for (const auto& t : fixture.tensors()) {
        const auto* o = ours.find(t.name);
        ASSERT_NE(o, nullptr) << t.name;
        EXPECT_EQ(o->dtype, t.dtype) << t.name;
        EXPECT_EQ(o->shape, t.shape) << t.name;
        // Same bits: the factors went file -> ipa -> file without arithmetic.
        EXPECT_TRUE(torch::equal(ours.tensor(t.name), fixture.tensor(t.name))) << t.name;
    }
    for (const auto& mod : self_attn_qkv(2)) {
        const auto alpha = ours.tensor("diffusion_model." + mod + ".alpha");
        EXPECT_EQ(alpha.dim(), 0) << mod;
        EXPECT_EQ(alpha.scalar_type(), torch::kFloat) << mod;
        EXPECT_EQ(alpha.item<double>(), kAlpha) << mod;
        EXPECT_EQ(ours.tensor("diffusion_model." + mod + ".lora_A.weight").sizes(), (std::vector<int64_t>{kRank, 40}));
        EXPECT_EQ(ours.tensor("diffusion_model." + mod + ".lora_B.weight").sizes(), (std::vector<int64_t>{40, kRank}));
    }
    // The metadata the fixture carries is what save_adapter writes.
    for (const auto& [k, v] : fixture.metadata()) {
        ASSERT_TRUE(ours.metadata().count(k)) << k;
        EXPECT_EQ(ours.metadata().at(k), v) << k;
    }
}

// ---- ComfyUI / kohya spelling ----

TEST(LoRAInterop, ComfyUISpellingGivesTheMergedOutput) {
    REQUIRE_FIXTURE(kDir / "comfy_t2v.safetensors");
    REQUIRE_FIXTURE(kDir / "comfy_t2v.io.safetensors");
    REQUIRE_FIXTURE(kDiffusersT2V);
    auto m = diffusers_t2v();
    const auto loaded = ipa::lora::load_adapter(*m, kDir / "comfy_t2v.safetensors", /*strict=*/true);
    EXPECT_EQ(sorted(loaded), sorted(self_attn_qkv(2)));  // file order
    const auto c = compare(*m, "comfy_t2v.io.safetensors", "ComfyUI spelling (merge rule)");
    EXPECT_TRUE(ipa::test::within_recorded_floor(c.err, c.floor, kFactor));
    EXPECT_GT(c.err_base, 100 * kFactor * c.floor);

    // Merged into the weights (ipa's merge_lora) the forward is the same function.
    ipa::lora::merge_lora(*m);
    const auto io = ipa::io::SafetensorsFile::open(kDir / "comfy_t2v.io.safetensors");
    torch::NoGradGuard g;
    const auto out = m->forward(ipa::test::wan_inputs_from(io));
    const double err_merged = (out.to(torch::kDouble) - io.tensor("out_f64")).abs().max().item<double>();
    std::printf("[lora interop ComfyUI spelling, merged] ours vs fp64=%.2e\n", err_merged);
    EXPECT_TRUE(ipa::test::within_recorded_floor(err_merged, c.floor, kFactor));
}

// ---- DiffSynth-Studio -> ipa ----

TEST(LoRAInterop, DiffSynthTrainedFileGivesDiffSynthOutput) {
    REQUIRE_FIXTURE(kDir / "diffsynth_t2v.base.safetensors");
    REQUIRE_FIXTURE(kDir / "diffsynth_t2v.safetensors");
    REQUIRE_FIXTURE(kDir / "diffsynth_t2v.io.safetensors");
    // DiffSynth's export: no prefix, peft's `.default` adapter name, no alpha (peft alpha = rank).
    const auto file = ipa::io::SafetensorsFile::open(kDir / "diffsynth_t2v.safetensors");
    std::vector<std::string> modules;
    for (int64_t i = 0; i < 2; ++i)
        for (const char* p : {"cross_attn.k", "cross_attn.o", "cross_attn.q", "cross_attn.v", "ffn.0", "ffn.2",
                              "self_attn.k", "self_attn.o", "self_attn.q", "self_attn.v"})
            modules.push_back("blocks." + std::to_string(i) + "." + p);
    std::set<std::string> want;
    for (const auto& mod : modules) {
        want.insert(mod + ".lora_A.default.weight");
        want.insert(mod + ".lora_B.default.weight");
    }
    EXPECT_EQ(names_of(file), want);

    auto m = diffsynth_t2v();
    const auto loaded = ipa::lora::load_adapter(*m, kDir / "diffsynth_t2v.safetensors", /*strict=*/true);
    EXPECT_EQ(sorted(loaded), modules);
    for (const auto& item : m->named_modules()) {
        const auto& name = item.key();
        if (auto* lin = item.value()->as<LinearImpl>(); lin && lin->has_lora()) {
            EXPECT_EQ(lin->lora_rank(), kRank) << name;
            EXPECT_EQ(lin->lora_alpha(), static_cast<double>(kRank)) << name << ": no alpha in the file = rank";
        }
    }
    const auto c = compare(*m, "diffsynth_t2v.io.safetensors", "DiffSynth -> ipa");
    EXPECT_TRUE(ipa::test::within_recorded_floor(c.err, c.floor, kFactor));
    EXPECT_GT(c.err_base, 100 * kFactor * c.floor);
}

// ---- float64: the same function as each peer's float64 run ----

struct Fp64Case {
    std::string name, adapter, io;
    bool diffsynth;
};

void PrintTo(const Fp64Case& c, std::ostream* os) { *os << c.name; }

class LoRAInteropFp64 : public ::testing::TestWithParam<Fp64Case> {};

TEST_P(LoRAInteropFp64, Fp64ForwardMatchesThePeersFloat64Run) {
    const auto& p = GetParam();
    REQUIRE_FIXTURE(kDir / p.adapter);
    REQUIRE_FIXTURE(kDir / p.io);
    REQUIRE_FIXTURE(p.diffsynth ? kDir / "diffsynth_t2v.base.safetensors" : kDiffusersT2V);
    auto m = p.diffsynth ? diffsynth_t2v() : diffusers_t2v();
    ipa::lora::load_adapter(*m, kDir / p.adapter, /*strict=*/true);
    m->set_dtype(torch::kDouble);
    const auto io = ipa::io::SafetensorsFile::open(kDir / p.io);
    torch::NoGradGuard g;
    const auto out = m->forward(ipa::test::wan_inputs_from(io));
    ASSERT_EQ(out.scalar_type(), torch::kDouble);
    const auto ref64 = io.tensor("out_f64");
    const double floor32 = (io.tensor("out").to(torch::kDouble) - ref64).abs().max().item<double>();
    const double err = (out - ref64).abs().max().item<double>();
    std::printf("[lora interop %s fp64] ours vs peer fp64 %.2e (fp32 floor %.2e)\n", p.name.c_str(), err, floor32);
    EXPECT_LT(err, 1e-3 * floor32);
}

INSTANTIATE_TEST_SUITE_P(
    Peers, LoRAInteropFp64,
    ::testing::Values(Fp64Case{"ipa_to_diffusers", "ipa_t2v.safetensors", "ipa_t2v.io.safetensors", false},
                      Fp64Case{"comfyui", "comfy_t2v.safetensors", "comfy_t2v.io.safetensors", false},
                      Fp64Case{"diffsynth", "diffsynth_t2v.safetensors", "diffsynth_t2v.io.safetensors", true}),
    [](const auto& info) { return info.param.name; });

}  // namespace
