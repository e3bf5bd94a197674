// Interop with diffusers: tiny WanTransformer3DModel / WanVACETransformer3DModel folders as
// diffusers' own save_pretrained writes them (config.json + shard index + 2+ shards, diffusers
// key names), with diffusers' own forward output (scripts/gen_diffusers_fixtures.py, see
// tests/fixtures/diffusers/README.md).
//
// ipa_tools (check_weights) is not linked into test_models; the test does what
// check_weights("auto", folder, fp32, strict) does: WanConfig::detect on the folder, then a
// strict load through the Wan loader (to_original_key maps diffusers' names).
//
// Tolerance: floor = max|diffusers fp32 − diffusers fp64| (diffusers' own float32 noise,
// 3.5e-6 / 6.0e-6, mostly its float32 timestep sinusoid); ours (fp32) must be within
// 10 × floor of diffusers' float64 output (measured 4.0e-6 / 4.6e-6). ipa's fp64 path
// reproduces diffusers' float64 run to ~4e-14: the same function.

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/key_mapping.h"
#include "ipa/models/wan/loader.h"
#include "ipa/models/wan/model.h"
#include "wan_inputs.h"

namespace fs = std::filesystem;
using namespace ipa::models::wan;

namespace {

const fs::path kDiffusersDir = fs::path(IPA_FIXTURES_DIR) / "diffusers";

struct Expected {
    std::string name;
    WanConfig cfg;
    int shards;
};

// The configs the generator passes to diffusers, in ipa's field names.
std::vector<Expected> expected() {
    WanConfig t2v;
    t2v.dim = 40;  // 2 heads x head_dim 20: RoPE split 4/3/3
    t2v.num_heads = 2;
    t2v.in_dim = 4;
    t2v.out_dim = 6;
    t2v.text_dim = 24;
    t2v.freq_dim = 16;
    t2v.ffn_dim = 32;
    t2v.num_layers = 2;
    WanConfig vace = t2v;
    vace.model_type = "vace";
    vace.dim = 28;  // 2 heads x head_dim 14: RoPE split 3/2/2
    vace.out_dim = 4;
    vace.ffn_dim = 24;
    vace.num_layers = 4;
    vace.vace_layers = {0, 2};
    vace.vace_in_dim = 6;
    return {{"wan_t2v", t2v, 3}, {"wan_vace", vace, 4}};
}

using ipa::test::wan_inputs_from;

class DiffusersParity : public ::testing::TestWithParam<Expected> {};

TEST_P(DiffusersParity, SavePretrainedFolderIsDetectedAndLoadsStrictly) {
    const auto& e = GetParam();
    const auto folder = kDiffusersDir / e.name;
    const auto ckpt = ipa::io::Checkpoint::open(folder);  // the directory: its shard index
    EXPECT_EQ(static_cast<int>(ckpt.files().size()), e.shards);
    EXPECT_EQ(detect_key_format(ckpt), "diffusers");
    const auto cfg = WanConfig::detect(ckpt);
    EXPECT_EQ(cfg, e.cfg) << cfg.to_yaml();
    EXPECT_EQ(cfg.text_len, 512);

    // The check_weights("auto", folder, fp32, strict) path: names and shapes on the meta device.
    auto meta = make_wan_model(cfg, torch::TensorOptions().device(torch::kMeta));
    ipa::io::LoadOptions lo;
    lo.strict = true;
    lo.dry_run = true;
    lo.key_map = to_original_key;
    const auto dry = ipa::io::load_state_dict(*meta, ckpt, lo);
    EXPECT_TRUE(dry.ok()) << dry.describe();

    auto model = make_wan_model(cfg);
    const auto report = load_wan_weights(*model, ckpt);  // strict
    EXPECT_TRUE(report.ok());
    EXPECT_EQ(report.loaded.size(), ckpt.size());
    EXPECT_EQ(report.loaded.size(), model->named_parameters().size());
}

TEST_P(DiffusersParity, Fp32ForwardMatchesDiffusersWithinTenTimesTheFloat64Floor) {
    const auto& e = GetParam();
    const auto ckpt = ipa::io::Checkpoint::open(kDiffusersDir / e.name);
    auto model = make_wan_model(WanConfig::detect(ckpt));
    load_wan_weights(*model, ckpt);
    const auto io = ipa::io::SafetensorsFile::open(kDiffusersDir / (e.name + ".io.safetensors"));
    torch::NoGradGuard g;
    const auto out = model->forward(wan_inputs_from(io));
    const auto ref32 = io.tensor("out");
    const auto ref64 = io.tensor("out_f64");
    ASSERT_EQ(out.sizes(), ref32.sizes());
    const double floor = (ref32.to(torch::kDouble) - ref64).abs().max().item<double>();
    const double err64 = (out.to(torch::kDouble) - ref64).abs().max().item<double>();
    const double err32 = (out - ref32).abs().max().item<double>();
    std::printf(
        "[diffusers %s] max|out|=%.3f floor(diffusers fp32 vs fp64)=%.2e  ours vs diffusers fp64=%.2e  ours vs "
        "diffusers fp32=%.2e\n",
        e.name.c_str(), ref64.abs().max().item<double>(), floor, err64, err32);
    RecordProperty("floor", std::to_string(floor));
    RecordProperty("err_vs_f64", std::to_string(err64));
    EXPECT_GT(floor, 0.0);
    EXPECT_LT(err64, 10.0 * floor) << "ipa's fp32 forward differs from diffusers beyond 10x diffusers' fp32 floor";
}

TEST_P(DiffusersParity, Fp64ForwardMatchesDiffusersFloat64) {
    // diffusers' float64 run is widened (no float32 casts, sinusoid in float64), so it is the
    // same float64 function as ipa's fp64 path: they agree far below the float32 floor.
    const auto& e = GetParam();
    const auto ckpt = ipa::io::Checkpoint::open(kDiffusersDir / e.name);
    auto model = make_wan_model(WanConfig::detect(ckpt));
    load_wan_weights(*model, ckpt);
    model->set_dtype(torch::kDouble);
    const auto io = ipa::io::SafetensorsFile::open(kDiffusersDir / (e.name + ".io.safetensors"));
    torch::NoGradGuard g;
    const auto out = model->forward(wan_inputs_from(io));
    ASSERT_EQ(out.scalar_type(), torch::kDouble);
    const auto ref64 = io.tensor("out_f64");
    const double floor32 = (io.tensor("out").to(torch::kDouble) - ref64).abs().max().item<double>();
    const double err = (out - ref64).abs().max().item<double>();
    std::printf("[diffusers %s fp64] ours vs diffusers fp64 %.2e (fp32 floor %.2e)\n", e.name.c_str(), err, floor32);
    EXPECT_LT(err, 1e-3 * floor32);
}

TEST(DiffusersConfig, HeadCountComesFromConfigJsonAndMustMatchTheShapes) {
    const auto tmp = fs::temp_directory_path() / ("ipa_diffusers_cfg_" + std::to_string(::getpid()));
    fs::remove_all(tmp);
    fs::copy(kDiffusersDir / "wan_t2v", tmp);
    const auto config = tmp / "config.json";
    std::string text;
    {
        std::ifstream in(config);
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string heads = "\"num_attention_heads\": 2";
    ASSERT_NE(text.find(heads), std::string::npos) << text;

    // Without config.json the shapes alone give dim / 128 heads (here 1, not diffusers' 2).
    fs::remove(config);
    EXPECT_EQ(WanConfig::detect(ipa::io::Checkpoint::open(tmp)).num_heads, 1);

    // A config.json that contradicts the weights is an error, not a silent override.
    std::string wrong = text;
    wrong.replace(wrong.find(heads), heads.size(), "\"num_attention_heads\": 4");
    std::ofstream(config) << wrong;
    try {
        WanConfig::detect(ipa::io::Checkpoint::open(tmp));
        ADD_FAILURE() << "inconsistent config.json accepted";
    } catch (const ipa::CheckpointError& e) {
        EXPECT_NE(std::string(e.what()).find("num_attention_heads 4 x attention_head_dim 20 != dim 40"),
                  std::string::npos)
            << e.what();
    }
    std::ofstream(config) << text;
    EXPECT_EQ(WanConfig::detect(ipa::io::Checkpoint::open(tmp)).num_heads, 2);
    fs::remove_all(tmp);
}

INSTANTIATE_TEST_SUITE_P(Diffusers, DiffusersParity, ::testing::ValuesIn(expected()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
