// WanModel / VaceWanModel: structure, configs, key mapping, dtype policy, checkpointing.
// Parity against the upstream code lives in test_wan_parity.cpp.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/key_mapping.h"
#include "ipa/models/wan/loader.h"
#include "ipa/models/wan/model.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ipa::models::wan;

namespace {

const fs::path kFixtures = fs::path(IPA_FIXTURES_DIR) / "wan";
const fs::path kConfigs = fs::path(IPA_SOURCE_DIR) / "configs" / "models";

WanConfig tiny() { return WanConfig::preset("tiny"); }

using ipa::test::randomize;
using ipa::test::tiny_inputs;

TEST(WanConfig, ShippedConfigsLoadAndMatchPresets) {
    for (const char* name : {"wan-t2v-1.3b", "wan-t2v-14b", "vace-1.3b", "vace-14b", "tiny"}) {
        const auto from_file = WanConfig::load(kConfigs / (std::string(name) + ".yaml"));
        EXPECT_TRUE(from_file == WanConfig::preset(name)) << name;
        // YAML round trip.
        const auto again = WanConfig::from_yaml(ipa::ConfigReader::load_string(from_file.to_yaml()));
        EXPECT_TRUE(again == from_file) << name;
    }
    const auto c = WanConfig::preset("vace-14b");
    EXPECT_EQ(c.vace_layers, (std::vector<int64_t>{0, 5, 10, 15, 20, 25, 30, 35}));
    EXPECT_EQ(c.head_dim(), 128);
}

TEST(WanConfig, UnknownKeysAndBadValuesNameTheKey) {
    auto err = [](const std::string& yaml) {
        try {
            WanConfig::from_yaml(ipa::ConfigReader::load_string(yaml, "m.yaml"));
        } catch (const ipa::ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("<no error>");
    };
    EXPECT_NE(err("dim: 40\nnum_heads: 2\nheads: 3\n").find("'heads'"), std::string::npos);
    EXPECT_NE(err("dim: 40\nnum_heads: 3\n").find("not divisible"), std::string::npos);
    EXPECT_NE(err("dim: 40\nnum_heads: 2\nvace_layers: [1, 2]\n").find("must contain layer 0"), std::string::npos);
    EXPECT_NE(err("dim: 40\nnum_heads: 2\nnum_layers: 2\nvace_layers: [0, 5]\n").find("outside"), std::string::npos);
    EXPECT_NE(err("patch_size: [1, 2]\n").find("patch_size"), std::string::npos);
    EXPECT_NE(err("model_type: x2v\n").find("x2v"), std::string::npos);
    EXPECT_NE(err("dim: forty\n").find("'dim'"), std::string::npos);
    EXPECT_THROW(WanConfig::resolve("no-such-model"), ipa::ConfigError);
}

TEST(WanModel, ParameterNamesAreTheOfficialKeys) {
    auto model = make_wan_model(tiny());
    std::map<std::string, std::vector<int64_t>> keys;
    for (auto& p : model->named_parameters()) keys[p.key()] = p.value().sizes().vec();
    EXPECT_EQ(keys.at("patch_embedding.weight"), (std::vector<int64_t>{40, 16, 1, 2, 2}));
    EXPECT_EQ(keys.at("text_embedding.2.weight"), (std::vector<int64_t>{40, 40}));
    EXPECT_EQ(keys.at("time_projection.1.weight"), (std::vector<int64_t>{240, 40}));
    EXPECT_EQ(keys.at("blocks.3.ffn.2.bias"), (std::vector<int64_t>{40}));
    EXPECT_EQ(keys.at("blocks.0.modulation"), (std::vector<int64_t>{1, 6, 40}));
    EXPECT_EQ(keys.at("head.modulation"), (std::vector<int64_t>{1, 2, 40}));
    EXPECT_EQ(keys.at("head.head.weight"), (std::vector<int64_t>{64, 40}));
    EXPECT_EQ(keys.at("vace_blocks.0.before_proj.weight"), (std::vector<int64_t>{40, 40}));
    EXPECT_EQ(keys.count("vace_blocks.1.before_proj.weight"), 0u);
    EXPECT_EQ(keys.at("vace_blocks.1.after_proj.bias"), (std::vector<int64_t>{40}));
    EXPECT_EQ(keys.at("vace_patch_embedding.weight"), (std::vector<int64_t>{40, 96, 1, 2, 2}));
    EXPECT_EQ(keys.count("blocks.0.norm1.weight"), 0u);  // non-affine norms have no tensors
    EXPECT_EQ(keys.count("blocks.0.ffn.1.weight"), 0u);
    // 27 tensors per block, + after_proj per VACE block, + before_proj once.
    EXPECT_EQ(keys.size(), 4u * 27 + 2 * 27 + 2 * 2 + 2 + 2 + 4 + 4 + 2 + 3 + 2);
    EXPECT_TRUE(model->named_buffers().is_empty());  // RoPE tables are not state
}

TEST(WanModel, Vace14BKeyListMatchesUpstream) {
    const auto list = kFixtures / "vace-14b.keys.txt";
    if (!fs::exists(list)) GTEST_SKIP() << "fixture missing: " << list;
    std::map<std::string, std::string> expected;
    std::ifstream in(list);
    for (std::string line; std::getline(in, line);) {
        const auto tab = line.find('\t');
        if (tab != std::string::npos) expected[line.substr(0, tab)] = line.substr(tab + 1);
    }
    // Built on the meta device: keys and shapes without allocating 17B parameters.
    auto model =
        make_wan_model(WanConfig::load(kConfigs / "vace-14b.yaml"), torch::TensorOptions().device(torch::kMeta));
    std::map<std::string, std::string> actual;
    int64_t params = 0;
    for (auto& p : model->named_parameters()) {
        std::string shape;
        for (auto s : p.value().sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(s);
        actual[p.key()] = shape;
        params += p.value().numel();
    }
    EXPECT_EQ(actual.size(), 1331u);
    EXPECT_EQ(params, 17'337'592'896);
    EXPECT_EQ(actual, expected);
}

TEST(WanModel, ForwardShapesDtypesAndInputErrors) {
    const auto cfg = tiny();
    auto model = make_wan_model(cfg);
    randomize(*model, 1);
    torch::NoGradGuard g;
    auto in = tiny_inputs(cfg);
    const auto out = model->forward(in);
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 16, 3, 4, 6}));
    EXPECT_EQ(out.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());

    auto bad = in;
    bad.x = torch::randn({2, 15, 3, 4, 6});
    EXPECT_THROW(model->forward(bad), ipa::DataError);
    bad = in;
    bad.x = torch::randn({2, 16, 3, 5, 6});  // odd height
    EXPECT_THROW(model->forward(bad), ipa::DataError);
    bad = in;
    bad.context = torch::randn({2, cfg.text_len + 1, cfg.text_dim});
    EXPECT_THROW(model->forward(bad), ipa::DataError);
    bad = in;
    bad.vace_context = torch::Tensor();
    EXPECT_THROW(model->forward(bad), ipa::DataError);
    bad = in;
    bad.seq_len = 10;  // fewer than the 18 tokens
    EXPECT_THROW(model->forward(bad), ipa::DataError);
    bad = in;
    bad.t = torch::zeros({3});
    EXPECT_THROW(model->forward(bad), ipa::DataError);
}

TEST(WanModel, ImageToVideoUsesClipTokensAndConditioningLatents) {
    // i2v: in_dim = 16 noise + 20 conditioning channels (y), CLIP tokens through img_emb and
    // the k_img/v_img attention (no upstream fixture: img_emb is 1280-wide, see README).
    WanConfig cfg;
    cfg.model_type = "i2v";
    cfg.dim = 40;
    cfg.ffn_dim = 64;
    cfg.num_heads = 2;
    cfg.num_layers = 2;
    cfg.freq_dim = 16;
    cfg.text_dim = 24;
    cfg.text_len = 8;
    cfg.in_dim = 36;
    cfg.out_dim = 16;
    auto model = make_wan_model(cfg);
    randomize(*model, 9);
    auto keys = model->named_parameters();
    EXPECT_EQ(keys["img_emb.proj.1.weight"].sizes(), (std::vector<int64_t>{1280, 1280}));
    EXPECT_EQ(keys["img_emb.proj.3.weight"].sizes(), (std::vector<int64_t>{40, 1280}));
    EXPECT_EQ(keys["blocks.1.cross_attn.k_img.weight"].sizes(), (std::vector<int64_t>{40, 40}));
    EXPECT_TRUE(keys.contains("blocks.1.cross_attn.norm_k_img.weight"));
    torch::NoGradGuard g;
    torch::manual_seed(3);
    WanInputs in;
    in.x = torch::randn({1, 16, 2, 4, 4});
    in.y = torch::randn({1, 20, 2, 4, 4});
    in.t = torch::full({1}, 500.0);
    in.context = torch::randn({1, 5, 24});
    in.clip_fea = torch::randn({1, 257, 1280});
    const auto out = model->forward(in);
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 16, 2, 4, 4}));
    auto other = in;
    other.clip_fea = torch::randn({1, 257, 1280});
    EXPECT_GT((model->forward(other) - out).abs().max().item<float>(), 1e-4);
    other = in;
    other.y = torch::randn({1, 20, 2, 4, 4});
    EXPECT_GT((model->forward(other) - out).abs().max().item<float>(), 1e-4);
    other = in;
    other.clip_fea = torch::Tensor();
    EXPECT_THROW(model->forward(other), ipa::DataError);
}

TEST(WanModel, PaddingTokensDoNotChangeTheOutput) {
    const auto cfg = tiny();
    auto model = make_wan_model(cfg);
    randomize(*model, 2);
    torch::NoGradGuard g;
    auto in = tiny_inputs(cfg);
    const auto ref = model->forward(in);
    in.seq_len = 18 + 7;
    const auto padded = model->forward(in);
    EXPECT_LT((ref - padded).abs().max().item<float>(), 1e-5);
}

TEST(WanModel, MergedTextPaddingEqualsAttendingEveryPaddingRow) {
    // Upstream pads the prompt with zero rows to text_len and attends all of them; ipa attends
    // one of them with a log(count) score bias. Same outputs and gradients up to rounding.
    for (const auto dtype : {torch::kDouble, torch::kFloat}) {
        const auto cfg = tiny();  // VACE, text_len 16
        auto model = make_wan_model(cfg);
        randomize(*model, 12);
        model->to(dtype);
        auto in = tiny_inputs(cfg);
        in.x = in.x.to(dtype);
        in.vace_context = in.vace_context.to(dtype);
        // Sample 1's prompt is 3 rows long, given padded with zeros to 7 rows (as a cache stores it).
        in.context = torch::cat({in.context, torch::zeros({2, 2, cfg.text_dim})}, 1).to(dtype);
        in.context[1].narrow(0, 3, 4).zero_();
        ASSERT_TRUE(model->merge_text_padding());
        EXPECT_EQ(model->prelude(in)->args.context.size(1), 5 + 1);  // 5 rows kept + one padding row
        const auto cot = torch::randn({2, cfg.out_dim, 3, 4, 6}, torch::TensorOptions().dtype(dtype));
        auto run = [&](bool merge) {
            model->zero_grad();
            model->set_merge_text_padding(merge);
            const auto out = model->forward(in);
            (out * cot).sum().backward();
            std::map<std::string, torch::Tensor> grads;
            for (auto& p : model->named_parameters()) grads[p.key()] = p.value().grad().clone();
            return std::make_pair(out.detach(), grads);
        };
        const auto [out_rows, g_rows] = run(false);
        const auto [out_merged, g_merged] = run(true);
        EXPECT_EQ(model->prelude(in)->args.context.size(1), 6);
        // Rounding only: float64 ~1e-15 relative, float32 ~1e-7 (the summation order differs).
        const double tol = dtype == torch::kDouble ? 1e-14 : 2e-6;
        const double rel = ((out_merged - out_rows).abs().max() / out_rows.abs().max()).item<double>();
        EXPECT_LT(rel, tol) << "output, " << c10::toString(dtype);
        double worst = 0;
        for (const auto& [name, g] : g_rows) {
            const double scale = g.abs().max().item<double>();
            if (scale == 0) continue;
            const double e = (g_merged.at(name) - g).abs().max().item<double>() / scale;
            worst = std::max(worst, e);
            EXPECT_LT(e, 10 * tol) << name << ", " << c10::toString(dtype);
        }
        std::cout << "[merged text padding " << c10::toString(dtype) << "] output rel " << rel
                  << ", worst gradient rel " << worst << "\n";
    }
    // Off where the log(count) bias would be rounded (bf16 attention), and with nothing to merge.
    const auto cfg = tiny();
    auto model = make_wan_model(cfg);
    randomize(*model, 13);
    torch::NoGradGuard g;
    auto in = tiny_inputs(cfg);
    model->set_dtype(torch::kBFloat16);
    EXPECT_EQ(model->prelude(in)->args.context.size(1), cfg.text_len);
    EXPECT_FALSE(model->prelude(in)->args.context_bias.defined());
    model->set_dtype(torch::kFloat);
    in.context = torch::randn({2, cfg.text_len - 1, cfg.text_dim});  // one padding row: kept as is
    EXPECT_EQ(model->prelude(in)->args.context.size(1), cfg.text_len);
}

TEST(WanModel, Bf16ModeKeepsTheReferenceFp32Islands) {
    const auto cfg = tiny();
    auto model = make_wan_model(cfg);
    randomize(*model, 3);
    torch::NoGradGuard g;
    const auto in = tiny_inputs(cfg);
    const auto ref = model->forward(in);
    model->set_dtype(torch::kBFloat16);
    auto params = model->named_parameters();
    EXPECT_EQ(params["blocks.0.self_attn.q.weight"].scalar_type(), torch::kBFloat16);
    EXPECT_EQ(params["blocks.0.ffn.0.weight"].scalar_type(), torch::kBFloat16);
    EXPECT_EQ(params["patch_embedding.weight"].scalar_type(), torch::kBFloat16);
    EXPECT_EQ(params["vace_blocks.0.before_proj.weight"].scalar_type(), torch::kBFloat16);
    EXPECT_EQ(params["blocks.0.modulation"].scalar_type(), torch::kFloat);
    EXPECT_EQ(params["blocks.0.self_attn.norm_q.weight"].scalar_type(), torch::kFloat);
    EXPECT_EQ(params["blocks.0.norm3.weight"].scalar_type(), torch::kFloat);
    EXPECT_EQ(params["time_embedding.0.weight"].scalar_type(), torch::kFloat);
    EXPECT_EQ(params["time_projection.1.weight"].scalar_type(), torch::kFloat);
    EXPECT_EQ(params["head.head.weight"].scalar_type(), torch::kFloat);
    const auto out = model->forward(in);
    EXPECT_EQ(out.scalar_type(), torch::kFloat);
    const double rel = ((out - ref).norm() / ref.norm()).item<double>();
    EXPECT_LT(rel, 3e-2) << "bf16 relative error";
    EXPECT_GT(rel, 0.0);  // bf16 really ran
}

TEST(WanModel, GradientCheckpointingGivesIdenticalLossAndGradients) {
    const auto cfg = tiny();
    auto model = make_wan_model(cfg);
    randomize(*model, 4);
    const auto in = tiny_inputs(cfg);
    const auto cot = torch::randn({2, 16, 3, 4, 6});
    auto run = [&](bool ckpt) {
        model->zero_grad();
        model->set_gradient_checkpointing(ckpt);
        const auto loss = (model->forward(in) * cot).sum();
        loss.backward();
        std::map<std::string, torch::Tensor> grads;
        for (auto& p : model->named_parameters()) grads[p.key()] = p.value().grad().clone();
        return std::make_pair(loss.item<double>(), grads);
    };
    const auto [loss_plain, g_plain] = run(false);
    const auto [loss_ckpt, g_ckpt] = run(true);
    EXPECT_DOUBLE_EQ(loss_plain, loss_ckpt);
    for (const auto& [name, g] : g_plain) {
        ASSERT_TRUE(g_ckpt.at(name).defined()) << name;
        EXPECT_GT(g.abs().max().item<float>(), 0.0f) << name << " has a zero gradient";
        // Same math; only the fp32 summation order of gradients reaching e0/context differs.
        const float diff = (g - g_ckpt.at(name)).abs().max().item<float>();
        EXPECT_LE(diff, 1e-6f * g.abs().max().item<float>()) << name;
    }
}

TEST(WanModel, CheckpointingReachesParametersWhenNoInputNeedsGrad) {
    // LoRA-style training: everything frozen except one block's q projection.
    const auto cfg = tiny();
    auto model = make_wan_model(cfg);
    randomize(*model, 5);
    for (auto& p : model->parameters()) p.requires_grad_(false);
    auto q = model->named_parameters()["blocks.1.self_attn.q.weight"];
    q.requires_grad_(true);
    model->set_gradient_checkpointing(true);
    model->forward(tiny_inputs(cfg)).pow(2).mean().backward();
    ASSERT_TRUE(q.grad().defined());
    EXPECT_GT(q.grad().abs().sum().item<float>(), 0.0f);
}

// Original name -> diffusers name, written from the diffusers conversion table
// (independently of the loader's reverse table).
std::string to_diffusers(const std::string& k) {
    static const std::vector<std::pair<std::string, std::string>> subs = {
        {"time_embedding.0", "condition_embedder.time_embedder.linear_1"},
        {"time_embedding.2", "condition_embedder.time_embedder.linear_2"},
        {"text_embedding.0", "condition_embedder.text_embedder.linear_1"},
        {"text_embedding.2", "condition_embedder.text_embedder.linear_2"},
        {"time_projection.1", "condition_embedder.time_proj"},
        {"head.modulation", "scale_shift_table"},
        {"head.head", "proj_out"},
        {"modulation", "scale_shift_table"},
        {"ffn.0", "ffn.net.0.proj"},
        {"ffn.2", "ffn.net.2"},
        {"norm3", "norm2"},
        {"self_attn.q.", "attn1.to_q."},
        {"self_attn.k.", "attn1.to_k."},
        {"self_attn.v.", "attn1.to_v."},
        {"self_attn.o.", "attn1.to_out.0."},
        {"self_attn.norm_q", "attn1.norm_q"},
        {"self_attn.norm_k", "attn1.norm_k"},
        {"cross_attn.q.", "attn2.to_q."},
        {"cross_attn.k.", "attn2.to_k."},
        {"cross_attn.v.", "attn2.to_v."},
        {"cross_attn.o.", "attn2.to_out.0."},
        {"cross_attn.norm_q", "attn2.norm_q"},
        {"cross_attn.norm_k", "attn2.norm_k"},
        {"before_proj", "proj_in"},
        {"after_proj", "proj_out"},
    };
    std::string out = k;
    for (const auto& [from, to] : subs) {
        const auto pos = out.find(from);
        if (pos != std::string::npos) out.replace(pos, from.size(), to);
    }
    return out;
}

TEST(WanKeyMapping, DiffusersAndComfyUISpellingsLoadIntoTheSameModel) {
    const auto cfg = tiny();
    auto src = make_wan_model(cfg);
    randomize(*src, 6);
    ipa::io::NamedTensors diffusers, comfy;
    for (auto& p : src->named_parameters()) {
        diffusers.emplace_back(to_diffusers(p.key()), p.value().detach());
        comfy.emplace_back("model.diffusion_model." + p.key(), p.value().detach());
        EXPECT_EQ(to_original_key(to_diffusers(p.key())).value(), p.key());
    }
    diffusers.emplace_back("blocks.0.attn2.norm_added_q.weight", torch::ones({40}));  // ignored by diffusers too
    for (auto* state : {&diffusers, &comfy}) {
        auto dst = make_wan_model(cfg);
        const auto ck = ipa::io::Checkpoint::from_tensors(*state);
        load_wan_weights(*dst, ck);
        for (auto& p : src->named_parameters()) {
            EXPECT_TRUE(torch::equal(p.value(), dst->named_parameters()[p.key()])) << p.key();
        }
    }
    EXPECT_EQ(detect_key_format(ipa::io::Checkpoint::from_tensors(diffusers)), "diffusers");
    EXPECT_EQ(to_original_key("blocks.3.norm3.weight").value(), "blocks.3.norm3.weight");
    EXPECT_EQ(to_original_key("diffusion_model.head.head.bias").value(), "head.head.bias");
}

TEST(WanLoader, StrictLoadReportsEveryProblemAndDetectsConfig) {
    const auto cfg = tiny();
    auto src = make_wan_model(cfg);
    ipa::io::NamedTensors state;
    for (auto& p : src->named_parameters()) state.emplace_back(p.key(), p.value().detach());
    const auto detected = WanConfig::detect(ipa::io::Checkpoint::from_tensors(state));
    EXPECT_EQ(detected.dim, 40);
    EXPECT_EQ(detected.num_layers, 4);
    EXPECT_EQ(detected.vace_layers, (std::vector<int64_t>{0, 2}));
    EXPECT_EQ(detected.out_dim, 16);
    EXPECT_EQ(detected.text_dim, 32);

    state.erase(state.begin());
    state.emplace_back("blocks.9.ffn.0.weight", torch::zeros({2}));
    for (auto& [k, t] : state) {
        if (k == "head.head.weight") t = torch::zeros({32, 40});
    }
    auto dst = make_wan_model(cfg);
    try {
        load_wan_weights(*dst, ipa::io::Checkpoint::from_tensors(state, "bad.safetensors"));
        FAIL();
    } catch (const ipa::CheckpointError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("missing from the checkpoint (1)"), std::string::npos) << msg;
        EXPECT_NE(msg.find("blocks.9.ffn.0.weight"), std::string::npos) << msg;
        EXPECT_NE(msg.find("head.head.weight: module [64, 40], checkpoint [32, 40]"), std::string::npos) << msg;
    }
}

}  // namespace
