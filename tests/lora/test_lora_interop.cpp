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
//  * VACE blocks: an ipa adapter on the main and the VACE blocks (save_adapter's two files),
//    which diffusers' loader refuses (the generator records it), and the same factors as
//    diffusers' own save_lora_weights wrote them (alpha only in `lora_adapter_metadata`), which
//    WanVACEPipeline.load_lora_weights loads: both load into ipa and give diffusers' output,
//    and convert_adapter(..., Diffusers) writes diffusers' file (same tensors, same LoraConfig).
//  * bfloat16 peer files: a diffusers/peft adapter cast to bf16 before saving (alpha 8 ≠ rank 4,
//    in the metadata only), and a DiffSynth VACE LoRA (`lora_base_model="vace"`) trained in
//    bf16 by its own training module; both load with their factors widened exactly.
//  * The DiffSynth LoRAs come from real optimiser steps of DiffSynth's training module.
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
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/lora/lora.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/key_mapping.h"
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
const fs::path kDiffusersVace = fs::path(IPA_FIXTURES_DIR) / "diffusers" / "wan_vace";

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
std::shared_ptr<WanModelImpl> diffusers_model(const fs::path& folder) {
    const auto ckpt = ipa::io::Checkpoint::open(folder);
    auto m = make_wan_model(WanConfig::detect(ckpt));
    load_wan_weights(*m, ckpt);  // strict
    return m;
}
std::shared_ptr<WanModelImpl> diffusers_t2v() { return diffusers_model(kDiffusersT2V); }
std::shared_ptr<WanModelImpl> diffusers_vace() { return diffusers_model(kDiffusersVace); }

// The config the script passes to DiffSynth's WanModel (official names; the head count is not
// in the weights, so it is spelled out here as in test_diffusers_parity's expected()).
WanConfig diffsynth_t2v_config() {
    WanConfig c;
    c.dim = 40;
    c.num_heads = 2;
    c.in_dim = 4;
    c.out_dim = 4;
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

// The script's DS_VACE_CONFIG: DiffSynth's WanModel + VaceWanModel, state dicts side by side.
std::shared_ptr<WanModelImpl> diffsynth_vace() {
    auto c = diffsynth_t2v_config();
    c.model_type = "vace";
    c.dim = 24;
    c.ffn_dim = 16;
    c.num_layers = 3;
    c.vace_layers = {0, 2};
    c.vace_in_dim = 6;
    auto m = make_wan_model(c);
    load_wan_weights(*m, ipa::io::Checkpoint::open(kDir / "diffsynth_vace.base.safetensors"));  // strict
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

std::vector<std::string> qkv_of(const std::string& stack, int64_t blocks) {
    std::vector<std::string> v;
    for (int64_t i = 0; i < blocks; ++i)
        for (const char* p : {"q", "k", "v"}) v.push_back(stack + "." + std::to_string(i) + ".self_attn." + p);
    return v;
}

std::set<std::string> names_of(const ipa::io::SafetensorsFile& f) {
    std::set<std::string> s;
    for (const auto& t : f.tensors()) s.insert(t.name);
    return s;
}

// Same names, dtypes, shapes and bits.
void expect_same_tensors(const fs::path& ours_path, const fs::path& theirs_path) {
    const auto ours = ipa::io::SafetensorsFile::open(ours_path);
    const auto theirs = ipa::io::SafetensorsFile::open(theirs_path);
    ASSERT_EQ(names_of(ours), names_of(theirs)) << ours_path << " vs " << theirs_path;
    for (const auto& t : theirs.tensors()) {
        const auto* o = ours.find(t.name);
        ASSERT_NE(o, nullptr) << t.name;
        EXPECT_EQ(o->dtype, t.dtype) << t.name;
        EXPECT_EQ(o->shape, t.shape) << t.name;
        EXPECT_TRUE(torch::equal(ours.tensor(t.name), theirs.tensor(t.name))) << t.name;
    }
}

// Every adapted Linear has this rank and alpha.
void expect_rank_alpha(WanModelImpl& m, int64_t rank, double alpha) {
    for (const auto& item : m.named_modules()) {
        if (auto* lin = item.value()->as<LinearImpl>(); lin && lin->has_lora()) {
            EXPECT_EQ(lin->lora_rank(), rank) << item.key();
            EXPECT_EQ(lin->lora_alpha(), alpha) << item.key();
        }
    }
}

std::string dtype_of_all(const ipa::io::SafetensorsFile& f) {
    std::set<std::string> d;
    for (const auto& t : f.tensors()) d.insert(std::string(c10::toString(f.tensor(t.name).scalar_type())));
    std::string out;
    for (const auto& x : d) out += (out.empty() ? "" : ",") + x;
    return out;
}

nlohmann::json peft_config_of(const fs::path& path) {
    const auto f = ipa::io::SafetensorsFile::open(path);
    EXPECT_TRUE(f.metadata().count("lora_adapter_metadata")) << path;
    return nlohmann::json::parse(f.metadata().at("lora_adapter_metadata"));
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

// ---- VACE blocks: ipa <-> diffusers ----

TEST(LoRAInterop, IpaVaceAdapterGivesDiffusersVaceOutput) {
    REQUIRE_FIXTURE(kDir / "ipa_vace.safetensors");
    REQUIRE_FIXTURE(kDir / "ipa_vace.vace.safetensors");
    REQUIRE_FIXTURE(kDir / "ipa_vace.io.safetensors");
    REQUIRE_FIXTURE(kDiffusersVace);
    auto m = diffusers_vace();
    // save_adapter's pair: the main file, and the VACE blocks in the sibling, read together.
    const auto loaded = ipa::lora::load_adapter(*m, kDir / "ipa_vace.safetensors", /*strict=*/true);
    auto want = qkv_of("blocks", 4);
    for (const auto& v : qkv_of("vace_blocks", 2)) want.push_back(v);
    EXPECT_EQ(sorted(loaded), sorted(want));
    expect_rank_alpha(*m, kRank, kAlpha);
    const auto c = compare(*m, "ipa_vace.io.safetensors", "ipa VACE -> diffusers VACE");
    EXPECT_TRUE(ipa::test::within_recorded_floor(c.err, c.floor, kFactor));
    EXPECT_GT(c.err_base, 100 * kFactor * c.floor);

    // save_adapter writes that pair again, bit for bit.
    ipa::lora::LoRAConfig cfg;
    cfg.rank = kRank;
    cfg.alpha = kAlpha;
    cfg.blocks = "all";
    TempDir dir;
    ipa::lora::save_adapter(dir / "ours.safetensors", *m, cfg);
    expect_same_tensors(dir / "ours.safetensors", kDir / "ipa_vace.safetensors");
    expect_same_tensors(dir / "ours.vace.safetensors", kDir / "ipa_vace.vace.safetensors");
}

TEST(LoRAInterop, DiffusersOwnVaceFileLoadsWithItsMetadataAlpha) {
    REQUIRE_FIXTURE(kDir / "diffusers_vace.safetensors");
    REQUIRE_FIXTURE(kDir / "ipa_vace.io.safetensors");
    REQUIRE_FIXTURE(kDiffusersVace);
    // diffusers' spelling: transformer.<diffusers module>.lora_A/B.weight, no alpha tensor.
    for (const auto& name : names_of(ipa::io::SafetensorsFile::open(kDir / "diffusers_vace.safetensors"))) {
        EXPECT_TRUE(name.rfind("transformer.", 0) == 0) << name;
        EXPECT_EQ(name.find(".alpha"), std::string::npos) << name;
    }
    auto m = diffusers_vace();
    const auto loaded = ipa::lora::load_adapter(*m, kDir / "diffusers_vace.safetensors", /*strict=*/true);
    EXPECT_EQ(loaded.size(), 18u);
    expect_rank_alpha(*m, kRank, kAlpha);  // lora_alpha 6 from lora_adapter_metadata, not = rank
    const auto c = compare(*m, "ipa_vace.io.safetensors", "diffusers' own VACE file -> ipa");
    EXPECT_TRUE(ipa::test::within_recorded_floor(c.err, c.floor, kFactor));
}

TEST(LoRAInterop, ConvertToDiffusersWritesTheFileDiffusersSaves) {
    REQUIRE_FIXTURE(kDir / "ipa_vace.safetensors");
    REQUIRE_FIXTURE(kDir / "diffusers_vace.safetensors");
    REQUIRE_FIXTURE(kDir / "ipa_vace.io.safetensors");
    REQUIRE_FIXTURE(kDiffusersVace);
    TempDir dir;
    const auto out = dir / "for_diffusers.safetensors";
    const auto written =
        ipa::lora::convert_adapter(kDir / "ipa_vace.safetensors", out, ipa::lora::parse_adapter_spelling("diffusers"));
    ASSERT_EQ(written, std::vector<fs::path>{out});  // one file: diffusers loads one
    expect_same_tensors(out, kDir / "diffusers_vace.safetensors");

    // The LoraConfig fields diffusers reads: same r and lora_alpha; target_modules = the full
    // names of the adapted modules, each of them selected by diffusers' own (suffix) targets.
    const auto ours = peft_config_of(out);
    const auto theirs = peft_config_of(kDir / "diffusers_vace.safetensors");
    EXPECT_EQ(ours.at("transformer.r"), theirs.at("transformer.r"));
    EXPECT_EQ(ours.at("transformer.lora_alpha").get<double>(), theirs.at("transformer.lora_alpha").get<double>());
    EXPECT_TRUE(ours.at("transformer.alpha_pattern").empty());
    EXPECT_TRUE(ours.at("transformer.rank_pattern").empty());
    std::set<std::string> modules;
    for (const auto& name : names_of(ipa::io::SafetensorsFile::open(out))) {
        const auto end = name.find(".lora_");
        modules.insert(name.substr(std::string("transformer.").size(), end - std::string("transformer.").size()));
    }
    const auto targets = ours.at("transformer.target_modules").get<std::vector<std::string>>();
    EXPECT_EQ(std::set<std::string>(targets.begin(), targets.end()), modules);
    for (const auto& mod : modules) {
        bool selected = false;
        for (const auto& t : theirs.at("transformer.target_modules").get<std::vector<std::string>>())
            selected = selected || mod == t ||
                       (mod.size() > t.size() && mod.compare(mod.size() - t.size(), t.size(), t) == 0 &&
                        mod[mod.size() - t.size() - 1] == '.');
        EXPECT_TRUE(selected) << mod;
    }

    // And back: the converted file loads into ipa with the same output.
    auto m = diffusers_vace();
    EXPECT_EQ(ipa::lora::load_adapter(*m, out, /*strict=*/true).size(), 18u);
    expect_rank_alpha(*m, kRank, kAlpha);
    const auto c = compare(*m, "ipa_vace.io.safetensors", "convert-lora --to diffusers -> ipa");
    EXPECT_TRUE(ipa::test::within_recorded_floor(c.err, c.floor, kFactor));
}

TEST(LoRAInterop, DiffusersModuleNamesAreTheInverseOfTheKeyMapping) {
    REQUIRE_FIXTURE(kDiffusersVace);
    // Every Linear of the VACE model (main blocks, VACE blocks, embeddings, head): its
    // diffusers name is a weight of diffusers' own checkpoint, and maps back to it.
    const auto ckpt = ipa::io::Checkpoint::open(kDiffusersVace);
    const auto names = ckpt.names();
    const std::set<std::string> diffusers_keys(names.begin(), names.end());
    auto m = diffusers_vace();
    int linears = 0;
    for (const auto& item : m->named_modules()) {
        if (!item.value()->as<LinearImpl>()) continue;
        ++linears;
        const auto d = ipa::lora::to_diffusers_module(item.key());
        ASSERT_TRUE(d.has_value()) << item.key();
        EXPECT_TRUE(diffusers_keys.count(*d + ".weight")) << item.key() << " -> " << *d;
        EXPECT_EQ(ipa::models::wan::to_original_key(*d + ".weight"), item.key() + ".weight");
    }
    EXPECT_GT(linears, 60);
    EXPECT_FALSE(ipa::lora::to_diffusers_module("blocks.0.norm3").has_value());
    EXPECT_THROW(ipa::lora::parse_adapter_spelling("kohya"), ipa::ConfigError);
}

TEST(LoRAInterop, ConvertToComfyUIWritesTheKohyaSpelling) {
    REQUIRE_FIXTURE(kDir / "ipa_t2v.safetensors");
    REQUIRE_FIXTURE(kDir / "comfy_t2v.safetensors");
    TempDir dir;
    const auto out = dir / "comfy.safetensors";
    ipa::lora::convert_adapter(kDir / "ipa_t2v.safetensors", out, ipa::lora::AdapterSpelling::ComfyUI);
    expect_same_tensors(out, kDir / "comfy_t2v.safetensors");
}

TEST(LoRAInterop, BadDiffusersMetadataIsAClearError) {
    REQUIRE_FIXTURE(kDiffusersT2V);
    TempDir dir;
    const auto A = torch::randn({4, 40}), B = torch::randn({40, 4});
    const ipa::io::NamedTensors t{{"transformer.blocks.0.attn1.to_q.lora_A.weight", A},
                                  {"transformer.blocks.0.attn1.to_q.lora_B.weight", B}};
    auto expect_error = [&](const std::string& json, const std::string& what) {
        const auto path = dir / "bad.safetensors";
        ipa::io::save_safetensors(path, t, {{"lora_adapter_metadata", json}});
        auto m = diffusers_t2v();
        try {
            ipa::lora::load_adapter(*m, path, /*strict=*/true);
            ADD_FAILURE() << "no error for " << json;
        } catch (const ipa::CheckpointError& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find("lora_adapter_metadata"), std::string::npos) << msg;
            EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
            EXPECT_NE(msg.find(what), std::string::npos) << msg;
        }
    };
    expect_error("{not json", "not JSON");
    expect_error(R"({"transformer.lora_alpha": 8, "transformer.use_rslora": true})", "use_rslora");
    expect_error(R"({"transformer.lora_alpha": "eight"})", "transformer.lora_alpha");
    // A good one: alpha_pattern wins over lora_alpha for the module it names.
    ipa::io::save_safetensors(
        dir / "good.safetensors", t,
        {{"lora_adapter_metadata",
          R"({"transformer.r": 4, "transformer.lora_alpha": 8, "transformer.alpha_pattern": {"blocks.0.attn1.to_q": 2}})"}});
    auto m = diffusers_t2v();
    ipa::lora::load_adapter(*m, dir / "good.safetensors", /*strict=*/true);
    expect_rank_alpha(*m, 4, 2.0);
}

// ---- bfloat16 peer files ----

TEST(LoRAInterop, DiffusersBf16FileGivesDiffusersOutput) {
    REQUIRE_FIXTURE(kDir / "diffusers_t2v_bf16.safetensors");
    REQUIRE_FIXTURE(kDir / "diffusers_t2v_bf16.io.safetensors");
    REQUIRE_FIXTURE(kDiffusersT2V);
    EXPECT_EQ(dtype_of_all(ipa::io::SafetensorsFile::open(kDir / "diffusers_t2v_bf16.safetensors")), "BFloat16");
    auto m = diffusers_t2v();
    const auto loaded = ipa::lora::load_adapter(*m, kDir / "diffusers_t2v_bf16.safetensors", /*strict=*/true);
    EXPECT_EQ(loaded.size(), 16u);  // to_q/k/v/to_out.0 of attn1 and attn2 in 2 blocks
    expect_rank_alpha(*m, 4, 8.0);  // peft lora_alpha 8, from the metadata only
    const auto c = compare(*m, "diffusers_t2v_bf16.io.safetensors", "diffusers bf16 file -> ipa");
    EXPECT_TRUE(ipa::test::within_recorded_floor(c.err, c.floor, kFactor));
    // The bound is far below what the bf16 rounding of the factors moves the output (the
    // generator's float64 run of the adapter before its bf16 cast): a loader that rounded or
    // re-scaled the factors differently would fail.
    const auto io = ipa::io::SafetensorsFile::open(kDir / "diffusers_t2v_bf16.io.safetensors");
    const double rounding = (io.tensor("out_unrounded_f64") - io.tensor("out_f64")).abs().max().item<double>();
    std::printf("[lora interop bf16] bf16 rounding of the factors moves the output by %.2e (bound %.2e)\n", rounding,
                kFactor * c.floor);
    EXPECT_GT(rounding, 100 * kFactor * c.floor);

    // DiffSynth's spelling folds alpha/rank = 2 into lora_A: exact in bf16, same output.
    TempDir dir;
    ipa::lora::convert_adapter(kDir / "diffusers_t2v_bf16.safetensors", dir / "ds.safetensors",
                               ipa::lora::AdapterSpelling::DiffSynth);
    EXPECT_EQ(dtype_of_all(ipa::io::SafetensorsFile::open(dir / "ds.safetensors")), "BFloat16");
    auto m2 = diffusers_t2v();
    ipa::lora::load_adapter(*m2, dir / "ds.safetensors", /*strict=*/true);
    expect_rank_alpha(*m2, 4, 4.0);
    const auto c2 = compare(*m2, "diffusers_t2v_bf16.io.safetensors", "diffusers bf16 -> diffsynth spelling -> ipa");
    EXPECT_TRUE(ipa::test::within_recorded_floor(c2.err, c2.floor, kFactor));
}

TEST(LoRAInterop, DiffSynthVaceLoRATrainedInBf16GivesDiffSynthOutput) {
    REQUIRE_FIXTURE(kDir / "diffsynth_vace.base.safetensors");
    REQUIRE_FIXTURE(kDir / "diffsynth_vace.safetensors");
    REQUIRE_FIXTURE(kDir / "diffsynth_vace.io.safetensors");
    const auto file = ipa::io::SafetensorsFile::open(kDir / "diffsynth_vace.safetensors");
    EXPECT_EQ(dtype_of_all(file), "BFloat16");
    std::vector<std::string> modules;
    for (int64_t i = 0; i < 2; ++i)
        for (const char* p : {"cross_attn.k", "cross_attn.o", "cross_attn.q", "cross_attn.v", "ffn.0", "ffn.2",
                              "self_attn.k", "self_attn.o", "self_attn.q", "self_attn.v"})
            modules.push_back("vace_blocks." + std::to_string(i) + "." + p);
    std::set<std::string> want;
    for (const auto& mod : modules) {
        want.insert(mod + ".lora_A.default.weight");
        want.insert(mod + ".lora_B.default.weight");
    }
    EXPECT_EQ(names_of(file), want);  // --remove_prefix_in_ckpt pipe.vace.

    auto m = diffsynth_vace();
    const auto loaded = ipa::lora::load_adapter(*m, kDir / "diffsynth_vace.safetensors", /*strict=*/true);
    EXPECT_EQ(sorted(loaded), modules);
    expect_rank_alpha(*m, kRank, static_cast<double>(kRank));
    const auto c = compare(*m, "diffsynth_vace.io.safetensors", "DiffSynth VACE (bf16) -> ipa");
    EXPECT_TRUE(ipa::test::within_recorded_floor(c.err, c.floor, kFactor));
    EXPECT_GT(c.err_base, 100 * kFactor * c.floor);

    // convert-lora --to diffsynth writes DiffSynth's own file again: VACE blocks in the sibling
    // (for pipe.vace), same bits; the main-block file (for pipe.dit) has no tensors.
    TempDir dir;
    const auto written = ipa::lora::convert_adapter(kDir / "diffsynth_vace.safetensors", dir / "back.safetensors",
                                                    ipa::lora::AdapterSpelling::DiffSynth);
    ASSERT_EQ(written, (std::vector<fs::path>{dir / "back.safetensors", dir / "back.vace.safetensors"}));
    EXPECT_TRUE(ipa::io::SafetensorsFile::open(dir / "back.safetensors").tensors().empty());
    expect_same_tensors(dir / "back.vace.safetensors", kDir / "diffsynth_vace.safetensors");
    // ... and the pair, named by its main file, loads into ipa again.
    auto m2 = diffsynth_vace();
    EXPECT_EQ(sorted(ipa::lora::load_adapter(*m2, dir / "back.safetensors", /*strict=*/true)), modules);
}

TEST(LoRAInterop, DiffSynthFilesComeFromTraining) {
    // lora_B is zero when peft injects it: non-zero factors mean DiffSynth's optimiser ran.
    for (const char* name : {"diffsynth_t2v.safetensors", "diffsynth_vace.safetensors"}) {
        REQUIRE_FIXTURE(kDir / name);
        const auto f = ipa::io::SafetensorsFile::open(kDir / name);
        for (const auto& t : f.tensors()) {
            if (t.name.find(".lora_B.") != std::string::npos) {
                EXPECT_GT(f.tensor(t.name).abs().max().item<double>(), 0.0) << name << ": " << t.name;
            }
        }
    }
}

// ---- float64: the same function as each peer's float64 run ----

enum class Base { DiffusersT2V, DiffSynthT2V, DiffusersVace, DiffSynthVace };

struct Fp64Case {
    std::string name, adapter, io;
    Base base;
};

std::shared_ptr<WanModelImpl> model_for(Base b) {
    switch (b) {
        case Base::DiffusersT2V:
            return diffusers_t2v();
        case Base::DiffSynthT2V:
            return diffsynth_t2v();
        case Base::DiffusersVace:
            return diffusers_vace();
        case Base::DiffSynthVace:
            return diffsynth_vace();
    }
    return nullptr;
}

fs::path base_fixture(Base b) {
    switch (b) {
        case Base::DiffusersT2V:
            return kDiffusersT2V;
        case Base::DiffSynthT2V:
            return kDir / "diffsynth_t2v.base.safetensors";
        case Base::DiffusersVace:
            return kDiffusersVace;
        case Base::DiffSynthVace:
            return kDir / "diffsynth_vace.base.safetensors";
    }
    return {};
}

void PrintTo(const Fp64Case& c, std::ostream* os) { *os << c.name; }

class LoRAInteropFp64 : public ::testing::TestWithParam<Fp64Case> {};

TEST_P(LoRAInteropFp64, Fp64ForwardMatchesThePeersFloat64Run) {
    const auto& p = GetParam();
    REQUIRE_FIXTURE(kDir / p.adapter);
    REQUIRE_FIXTURE(kDir / p.io);
    REQUIRE_FIXTURE(base_fixture(p.base));
    auto m = model_for(p.base);
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
    ::testing::Values(
        Fp64Case{"ipa_to_diffusers", "ipa_t2v.safetensors", "ipa_t2v.io.safetensors", Base::DiffusersT2V},
        Fp64Case{"comfyui", "comfy_t2v.safetensors", "comfy_t2v.io.safetensors", Base::DiffusersT2V},
        Fp64Case{"diffsynth", "diffsynth_t2v.safetensors", "diffsynth_t2v.io.safetensors", Base::DiffSynthT2V},
        Fp64Case{"ipa_vace_to_diffusers", "ipa_vace.safetensors", "ipa_vace.io.safetensors", Base::DiffusersVace},
        Fp64Case{"diffusers_vace", "diffusers_vace.safetensors", "ipa_vace.io.safetensors", Base::DiffusersVace},
        Fp64Case{"diffusers_bf16", "diffusers_t2v_bf16.safetensors", "diffusers_t2v_bf16.io.safetensors",
                 Base::DiffusersT2V},
        Fp64Case{"diffsynth_vace_bf16", "diffsynth_vace.safetensors", "diffsynth_vace.io.safetensors",
                 Base::DiffSynthVace}),
    [](const auto& info) { return info.param.name; });

}  // namespace
