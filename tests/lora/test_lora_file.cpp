// ipa::lora adapter files (every accepted spelling, strict errors) and streaming
// checkpoint merging.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/lora/lora.h"
#include "ipa/models/wan/loader.h"
#include "lora_test_util.h"

using namespace ipa_test_lora;
using ipa::models::wan::load_wan_weights;

// ---- adapter files ----

TEST(LoRAFile, SaveLoadRoundTrip) {
    TempDir dir;
    auto m = base_model();
    const auto in = tiny_inputs(tiny());
    const auto cfg = small("all");
    ipa::lora::attach_lora(*m, cfg, 1);
    randomize_lora(*m, 3);
    ipa::lora::set_lora_multiplier(*m, 1.0);
    const auto y = run(*m, in);
    const auto path = dir / "adapter.safetensors";
    ipa::lora::save_adapter(path, *m, cfg, {{"step", "7"}});

    const auto main = ipa::io::SafetensorsFile::open(path);
    EXPECT_EQ(main.tensors().size(), 12u * 3);
    for (const auto& t : main.tensors()) EXPECT_EQ(t.name.rfind("diffusion_model.blocks.", 0), 0u) << t.name;
    EXPECT_TRUE(main.contains("diffusion_model.blocks.0.self_attn.q.lora_A.weight"));
    EXPECT_TRUE(main.contains("diffusion_model.blocks.3.self_attn.v.lora_B.weight"));
    const auto alpha = main.tensor("diffusion_model.blocks.0.self_attn.q.alpha");
    EXPECT_EQ(alpha.dim(), 0);
    EXPECT_EQ(alpha.scalar_type(), torch::kFloat);
    EXPECT_EQ(alpha.item<float>(), 8.0f);
    EXPECT_EQ(main.tensor("diffusion_model.blocks.0.self_attn.q.lora_B.weight").sizes(), (std::vector<int64_t>{40, 4}));
    EXPECT_EQ(main.metadata().at("rank"), "4");
    EXPECT_EQ(main.metadata().at("alpha"), "8");
    EXPECT_EQ(main.metadata().at("targets"), "self_attn.q,self_attn.k,self_attn.v");
    EXPECT_EQ(main.metadata().at("format_version"), "1");
    EXPECT_EQ(main.metadata().at("step"), "7");
    const auto vace_path = ipa::lora::vace_adapter_path(path);
    EXPECT_EQ(vace_path, dir / "adapter.vace.safetensors");
    const auto vace = ipa::io::SafetensorsFile::open(vace_path);
    EXPECT_EQ(vace.tensors().size(), 6u * 3);
    for (const auto& t : vace.tensors()) EXPECT_EQ(t.name.rfind("diffusion_model.vace_blocks.", 0), 0u) << t.name;

    auto fresh = base_model();
    const auto loaded = ipa::lora::load_adapter(*fresh, path, true);
    EXPECT_EQ(loaded.size(), 18u);
    EXPECT_TRUE(torch::equal(run(*fresh, in), y));
    for (const auto& p : fresh->named_parameters())
        EXPECT_EQ(p.value().requires_grad(), contains(p.key(), ".lora_")) << p.key();

    // Loading into existing adapters (resume) copies into the same parameter tensors.
    auto params_before = ipa::lora::lora_parameters(*fresh);
    ipa::lora::load_adapter(*fresh, path, true);
    auto params_after = ipa::lora::lora_parameters(*fresh);
    ASSERT_EQ(params_before.size(), params_after.size());
    for (std::size_t i = 0; i < params_before.size(); ++i) EXPECT_TRUE(params_before[i].is_same(params_after[i]));

    // Re-saving main-only removes the stale VACE sibling.
    auto main_only = base_model();
    ipa::lora::attach_lora(*main_only, small(), 1);
    ipa::lora::save_adapter(path, *main_only, small());
    EXPECT_FALSE(fs::exists(vace_path));
}

TEST(LoRAFile, AcceptsEverySpelling) {
    TempDir dir;
    torch::manual_seed(5);
    const auto a_q = torch::randn({3, 40}), b_q = torch::randn({40, 3});
    const auto a_k = torch::randn({3, 40}), b_k = torch::randn({40, 3});
    int n = 0;
    for (const std::string prefix : {"", "diffusion_model.", "model.diffusion_model."}) {
        for (const auto& [down, up] :
             std::vector<std::pair<std::string, std::string>>{{"lora_A.weight", "lora_B.weight"},
                                                              {"lora_down.weight", "lora_up.weight"},
                                                              {"lora_A.default.weight", "lora_B.default.weight"}}) {
            const auto path = dir / ("a" + std::to_string(n++) + ".safetensors");
            ipa::io::save_safetensors(path, {{prefix + "blocks.1.self_attn.q." + down, a_q},
                                             {prefix + "blocks.1.self_attn.q." + up, b_q},
                                             {prefix + "blocks.1.self_attn.k." + down, a_k.to(torch::kBFloat16)},
                                             {prefix + "blocks.1.self_attn.k." + up, b_k.to(torch::kBFloat16)}});
            auto m = base_model();
            const auto loaded = ipa::lora::load_adapter(*m, path, true);
            EXPECT_EQ(loaded, (std::vector<std::string>{"blocks.1.self_attn.k", "blocks.1.self_attn.q"})) << path;
            const auto q = linear(*m, "blocks.1.self_attn.q");
            ASSERT_TRUE(q->has_lora());
            EXPECT_TRUE(torch::equal(q->lora_A_weight(), a_q));
            EXPECT_TRUE(torch::equal(q->lora_B_weight(), b_q));
            EXPECT_EQ(linear(*m, "blocks.1.self_attn.k")->lora_A_weight().scalar_type(), torch::kFloat);
            EXPECT_DOUBLE_EQ(q->lora_alpha(), 3.0);  // no alpha: alpha = rank
            EXPECT_DOUBLE_EQ(q->lora_scale(), 1.0);
            EXPECT_FALSE(linear(*m, "blocks.0.self_attn.q")->has_lora());
        }
    }
    // Alpha from metadata; diffusers module names; kohya/musubi names with .alpha.
    const auto meta = dir / "meta.safetensors";
    ipa::io::save_safetensors(meta,
                              {{"transformer.blocks.2.attn1.to_v.lora_A.weight", a_q},
                               {"transformer.blocks.2.attn1.to_v.lora_B.weight", b_q}},
                              {{"alpha", "6"}});
    auto m = base_model();
    EXPECT_EQ(ipa::lora::load_adapter(*m, meta, true), (std::vector<std::string>{"blocks.2.self_attn.v"}));
    EXPECT_DOUBLE_EQ(linear(*m, "blocks.2.self_attn.v")->lora_scale(), 2.0);
    const auto kohya = dir / "kohya.safetensors";
    ipa::io::save_safetensors(kohya, {{"lora_unet_blocks_3_self_attn_o.lora_down.weight", a_q},
                                      {"lora_unet_blocks_3_self_attn_o.lora_up.weight", b_q},
                                      {"lora_unet_blocks_3_self_attn_o.alpha", torch::scalar_tensor(1.5)}});
    EXPECT_EQ(ipa::lora::load_adapter(*m, kohya, true), (std::vector<std::string>{"blocks.3.self_attn.o"}));
    EXPECT_DOUBLE_EQ(linear(*m, "blocks.3.self_attn.o")->lora_scale(), 0.5);

    // A different rank replaces the existing adapter.
    ipa::lora::attach_lora(*m, small(), 1);
    ipa::lora::load_adapter(*m, meta, true);
    EXPECT_EQ(linear(*m, "blocks.2.self_attn.v")->lora_rank(), 3);
    EXPECT_EQ(linear(*m, "blocks.2.self_attn.q")->lora_rank(), 4);
}

TEST(LoRAFile, StrictErrorsListEveryProblem) {
    TempDir dir;
    torch::manual_seed(5);
    const auto path = dir / "bad.safetensors";
    ipa::io::save_safetensors(path,
                              {
                                  {"diffusion_model.blocks.99.self_attn.q.lora_A.weight", torch::randn({2, 40})},
                                  {"diffusion_model.blocks.99.self_attn.q.lora_B.weight", torch::randn({40, 2})},
                                  {"diffusion_model.blocks.0.self_attn.q.lora_A.weight", torch::randn({2, 41})},
                                  {"diffusion_model.blocks.0.self_attn.q.lora_B.weight", torch::randn({40, 2})},
                                  {"diffusion_model.blocks.0.self_attn.k.lora_A.weight", torch::randn({2, 40})},
                                  {"diffusion_model.blocks.0.self_attn.q.lora_magnitude_vector", torch::randn({40})},
                                  {"diffusion_model.blocks.1.self_attn.v.lora_A.weight", torch::randn({2, 40})},
                                  {"diffusion_model.blocks.1.self_attn.v.lora_B.weight", torch::randn({40, 2})},
                              });
    auto m = base_model();
    std::string e;
    try {
        ipa::lora::load_adapter(*m, path, true);
    } catch (const ipa::CheckpointError& err) {
        e = err.what();
    }
    EXPECT_TRUE(contains(e, "4 problems")) << e;
    EXPECT_TRUE(contains(e, "blocks.99.self_attn.q") && contains(e, "no Linear layer")) << e;
    EXPECT_TRUE(contains(e, "blocks.0.self_attn.q") && contains(e, "[2, 41]")) << e;
    EXPECT_TRUE(contains(e, "blocks.0.self_attn.k") && contains(e, "lora_B (lora_up) missing")) << e;
    EXPECT_TRUE(contains(e, "lora_magnitude_vector")) << e;
    EXPECT_TRUE(ipa::lora::adapted_modules(*m).empty());

    EXPECT_EQ(ipa::lora::load_adapter(*m, path, false), (std::vector<std::string>{"blocks.1.self_attn.v"}));

    const auto garbage = dir / "garbage.safetensors";
    std::ofstream(garbage) << "this is not a safetensors file at all";
    const auto g = error_of([&] { ipa::lora::load_adapter(*m, garbage, true); });
    EXPECT_TRUE(contains(g, "garbage.safetensors")) << g;
    EXPECT_THROW(ipa::lora::load_adapter(*m, garbage, false), ipa::CheckpointError);
    EXPECT_THROW(ipa::lora::load_adapter(*m, dir / "missing.safetensors", true), ipa::Error);
    const auto empty = dir / "empty.safetensors";
    ipa::io::save_safetensors(empty, {{"something.else", torch::ones({1})}});
    EXPECT_THROW(ipa::lora::load_adapter(*m, empty, false), ipa::CheckpointError);
    EXPECT_THROW(ipa::lora::save_adapter(dir / "x.safetensors", *base_model(), small()), ipa::Error);
}

// ---- merging into a checkpoint ----

TEST(LoRAMergeCheckpoint, MergedCheckpointEqualsBasePlusAdapter) {
    TempDir dir;
    auto m = base_model();
    const auto in = tiny_inputs(tiny());
    ipa::io::NamedTensors base;
    for (const auto& p : m->named_parameters()) base.emplace_back(p.key(), p.value().detach().clone());
    ipa::io::save_safetensors(dir / "base.safetensors", base);
    ipa::lora::attach_lora(*m, small("all"), 1);
    randomize_lora(*m, 3);
    ipa::lora::save_adapter(dir / "adapter.safetensors", *m, small("all"));

    for (const double mult : {1.0, 0.5}) {
        ipa::lora::set_lora_multiplier(*m, mult);
        const auto y = run(*m, in);
        const auto out = dir / "merged.safetensors";
        ipa::lora::merge_lora_checkpoint(dir / "base.safetensors", dir / "adapter.safetensors", out, mult);
        const auto merged = ipa::io::Checkpoint::open(out);
        const auto original = ipa::io::Checkpoint::open(dir / "base.safetensors");
        ASSERT_EQ(merged.names(), original.names());
        EXPECT_TRUE(
            torch::equal(merged.get("blocks.0.cross_attn.q.weight"), original.get("blocks.0.cross_attn.q.weight")));
        EXPECT_FALSE(
            torch::equal(merged.get("blocks.0.self_attn.q.weight"), original.get("blocks.0.self_attn.q.weight")));
        EXPECT_FALSE(torch::equal(merged.get("vace_blocks.1.self_attn.k.weight"),
                                  original.get("vace_blocks.1.self_attn.k.weight")));
        auto fresh = make_wan_model(tiny());
        load_wan_weights(*fresh, merged);
        const auto y_merged = run(*fresh, in);
        EXPECT_TRUE(torch::allclose(y_merged, y, 1e-4, 1e-5)) << mult << ": " << (y_merged - y).abs().max();
    }

    // bf16 base (ComfyUI-style prefix): dtypes and keys kept, untouched tensors bit-identical.
    ipa::io::NamedTensors base16;
    for (const auto& [k, t] : base) base16.emplace_back("model.diffusion_model." + k, t.to(torch::kBFloat16));
    ipa::io::save_safetensors(dir / "base16.safetensors", base16);
    ipa::lora::merge_lora_checkpoint(dir / "base16.safetensors", dir / "adapter.safetensors", dir / "m16.safetensors",
                                     1.0);
    const auto m16 = ipa::io::SafetensorsFile::open(dir / "m16.safetensors");
    ASSERT_EQ(m16.tensors().size(), base16.size());
    const auto w = m16.tensor("model.diffusion_model.blocks.2.self_attn.v.weight");
    EXPECT_EQ(w.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(
        m16.tensor("model.diffusion_model.head.head.weight"),
        ipa::io::SafetensorsFile::open(dir / "base16.safetensors").tensor("model.diffusion_model.head.head.weight")));
    const auto lin = linear(*m, "blocks.2.self_attn.v");
    const auto expected = (lin->weight.detach().to(torch::kBFloat16).to(torch::kFloat) +
                           lin->lora_B_weight().detach().mm(lin->lora_A_weight().detach()) * 2.0)
                              .to(torch::kBFloat16);
    EXPECT_TRUE(torch::equal(w, expected));

    // An adapter that does not fit the base is an error naming the module.
    auto other_cfg = tiny();
    other_cfg.dim = 60;
    other_cfg.num_heads = 3;
    auto other = make_wan_model(other_cfg);
    ipa::lora::attach_lora(*other, small(), 1);
    ipa::lora::save_adapter(dir / "other.safetensors", *other, small());
    const auto e = error_of([&] {
        ipa::lora::merge_lora_checkpoint(dir / "base.safetensors", dir / "other.safetensors", dir / "bad.safetensors",
                                         1.0);
    });
    EXPECT_TRUE(contains(e, "blocks.0.self_attn.q") && contains(e, "do not fit")) << e;
    EXPECT_FALSE(fs::exists(dir / "bad.safetensors"));
}
