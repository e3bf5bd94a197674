// ipa::lora: config and target matching, attaching, run-time control, the IPA reference
// adapter and merging. Adapter files and checkpoint merging: test_lora_file.cpp.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/lora/lora.h"
#include "lora_test_util.h"

using namespace ipa_test_lora;

// ---- configuration and targets ----

TEST(LoRAConfig, FromYamlReadsValidatesAndRejectsUnknownKeys) {
    const auto d = LoRAConfig::from_yaml(ipa::ConfigReader::load_string("init_from: null\n"));
    EXPECT_EQ(d.rank, 128);
    EXPECT_DOUBLE_EQ(d.alpha, 128.0);
    EXPECT_EQ(d.targets, (std::vector<std::string>{"self_attn.q", "self_attn.k", "self_attn.v"}));
    EXPECT_EQ(d.blocks, "main");

    const auto c = LoRAConfig::from_yaml(ipa::ConfigReader::load_string(
        "rank: 16\nalpha: 8\ntargets: [self_attn.q, cross_attn.o]\nblocks: all\ninit_from: a.safetensors\n"));
    EXPECT_EQ(c.rank, 16);
    EXPECT_DOUBLE_EQ(c.alpha, 8.0);
    EXPECT_EQ(c.targets, (std::vector<std::string>{"self_attn.q", "cross_attn.o"}));
    EXPECT_EQ(c.blocks, "all");

    auto err = [](const std::string& yaml) {
        return error_of([&] { LoRAConfig::from_yaml(ipa::ConfigReader::load_string(yaml, "run.yaml")); });
    };
    EXPECT_TRUE(contains(err("ranks: 4\n"), "ranks")) << err("ranks: 4\n");
    EXPECT_TRUE(contains(err("rank: 0\n"), "rank must be positive"));
    EXPECT_TRUE(contains(err("alpha: -1\n"), "alpha"));
    EXPECT_TRUE(contains(err("blocks: both\n"), "main, vace or all"));
    EXPECT_TRUE(contains(err("targets: []\n"), "targets is empty"));
    EXPECT_TRUE(contains(err("targets: [self_attn.q, self_attn.q]\n"), "twice"));
    EXPECT_THROW(LoRAConfig::from_yaml(ipa::ConfigReader::load_string("rank: four\n")), ipa::ConfigError);
}

TEST(LoRATargets, DefaultIsMainSelfAttentionQKV) {
    auto m = make_wan_model(tiny());
    const auto names = ipa::lora::match_targets(*m, LoRAConfig{});
    ASSERT_EQ(names.size(), 12u);  // 4 blocks x q, k, v
    for (const auto& n : names) {
        EXPECT_EQ(n.rfind("blocks.", 0), 0u) << n;
        EXPECT_TRUE(contains(n, ".self_attn.")) << n;
    }
    EXPECT_EQ(names.front(), "blocks.0.self_attn.q");
}

TEST(LoRATargets, BareNamesAreAmbiguousAndBlocksSelect) {
    auto m = make_wan_model(tiny());
    auto cfg = small();
    cfg.targets = {"q"};
    const auto e = error_of([&] { ipa::lora::match_targets(*m, cfg); });
    EXPECT_TRUE(contains(e, "ambiguous target 'q'")) << e;
    EXPECT_TRUE(contains(e, "self_attn.q") && contains(e, "cross_attn.q")) << e;
    EXPECT_THROW(ipa::lora::attach_lora(*m, cfg, 1), ipa::ConfigError);
    EXPECT_TRUE(ipa::lora::adapted_modules(*m).empty());

    cfg.targets = {"cross_attn.q"};
    auto names = ipa::lora::match_targets(*m, cfg);
    ASSERT_EQ(names.size(), 4u);
    for (const auto& n : names) EXPECT_TRUE(contains(n, ".cross_attn.q")) << n;

    cfg.targets = {"self_attn.q", "self_attn.k", "self_attn.v"};
    cfg.blocks = "vace";
    names = ipa::lora::match_targets(*m, cfg);
    ASSERT_EQ(names.size(), 6u);  // 2 VACE blocks
    for (const auto& n : names) EXPECT_EQ(n.rfind("vace_blocks.", 0), 0u) << n;
    cfg.blocks = "all";
    EXPECT_EQ(ipa::lora::match_targets(*m, cfg).size(), 18u);

    // A bare name that names one layer inside a block is fine.
    cfg.targets = {"after_proj"};
    cfg.blocks = "vace";
    EXPECT_EQ(ipa::lora::match_targets(*m, cfg),
              (std::vector<std::string>{"vace_blocks.0.after_proj", "vace_blocks.1.after_proj"}));

    cfg.targets = {"self_attn.q", "self_attn.qq"};
    cfg.blocks = "main";
    EXPECT_TRUE(contains(error_of([&] { ipa::lora::match_targets(*m, cfg); }), "'self_attn.qq' matches no Linear"));

    auto plain_cfg = tiny();
    plain_cfg.vace_layers.clear();
    plain_cfg.model_type = "t2v";
    auto plain = make_wan_model(plain_cfg);
    cfg.targets = {"self_attn.q"};
    cfg.blocks = "vace";
    const auto e2 = error_of([&] { ipa::lora::attach_lora(*plain, cfg, 1); });
    EXPECT_TRUE(contains(e2, "self_attn.q") && contains(e2, "vace_blocks")) << e2;
}

// ---- attaching and control ----

TEST(LoRAAttach, KeysShapesInitFreezingAndDtype) {
    auto m = base_model();
    const auto in = tiny_inputs(tiny());
    const auto y_base = run(*m, in);
    std::set<std::string> base_keys;
    for (const auto& p : m->named_parameters()) base_keys.insert(p.key());

    torch::manual_seed(123);
    const auto expected_draw = torch::rand({3});
    torch::manual_seed(123);
    const auto names = ipa::lora::attach_lora(*m, small(), 5);
    EXPECT_TRUE(torch::equal(torch::rand({3}), expected_draw)) << "attach_lora must not consume the global RNG";
    EXPECT_EQ(names.size(), 12u);

    std::set<std::string> lora_keys;
    for (const auto& p : m->named_parameters()) {
        const bool is_lora = contains(p.key(), ".lora_");
        EXPECT_EQ(p.value().requires_grad(), is_lora) << p.key();
        if (is_lora) {
            lora_keys.insert(p.key());
            EXPECT_EQ(p.value().scalar_type(), torch::kFloat);
        } else {
            EXPECT_TRUE(base_keys.count(p.key())) << "base key changed: " << p.key();
        }
    }
    EXPECT_EQ(lora_keys.size(), 24u);
    const auto params = m->named_parameters();
    ASSERT_TRUE(params.contains("blocks.0.self_attn.q.lora_A.weight"));
    EXPECT_EQ(params["blocks.0.self_attn.q.lora_A.weight"].sizes(), (std::vector<int64_t>{4, 40}));
    EXPECT_EQ(params["blocks.0.self_attn.q.lora_B.weight"].sizes(), (std::vector<int64_t>{40, 4}));
    EXPECT_TRUE(params.contains("blocks.0.self_attn.q.weight"));
    EXPECT_FALSE(params.contains("blocks.0.cross_attn.q.lora_A.weight"));
    EXPECT_EQ(ipa::lora::count_lora_parameters(*m), 12 * (4 * 40 + 40 * 4));
    EXPECT_EQ(ipa::lora::lora_parameters(*m).size(), 24u);
    EXPECT_EQ(ipa::lora::named_lora_parameters(*m).front().first, "blocks.0.self_attn.q.lora_A.weight");

    // PEFT init: A ~ U(±1/√in), B = 0, scale alpha/r; a zero B leaves the output unchanged.
    const auto q = linear(*m, "blocks.0.self_attn.q");
    ASSERT_TRUE(q && q->has_lora());
    const auto a = q->lora_A_weight();
    EXPECT_LE(a.abs().max().item<double>(), 1.0 / std::sqrt(40.0));
    EXPECT_GT(a.abs().max().item<double>(), 0.5 / std::sqrt(40.0));
    const double uniform_std = 1.0 / std::sqrt(40.0 * 3.0);
    EXPECT_NEAR(a.std().item<double>(), uniform_std, 0.15 * uniform_std);
    EXPECT_EQ(q->lora_B_weight().count_nonzero().item<int64_t>(), 0);
    EXPECT_DOUBLE_EQ(q->lora_scale(), 2.0);
    EXPECT_TRUE(torch::equal(run(*m, in), y_base));

    // Seeded: same seed, same A; another seed, another A.
    auto m2 = base_model();
    ipa::lora::attach_lora(*m2, small(), 5);
    EXPECT_TRUE(torch::equal(linear(*m2, "blocks.3.self_attn.v")->lora_A_weight(),
                             linear(*m, "blocks.3.self_attn.v")->lora_A_weight()));
    auto m3 = base_model();
    ipa::lora::attach_lora(*m3, small(), 6);
    EXPECT_FALSE(torch::equal(linear(*m3, "blocks.0.self_attn.q")->lora_A_weight(), a));

    // bf16 model: adapters stay fp32.
    m->set_dtype(torch::kBFloat16);
    EXPECT_EQ(q->weight.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(q->lora_A_weight().scalar_type(), torch::kFloat);
    EXPECT_EQ(q->lora_B_weight().scalar_type(), torch::kFloat);
}

TEST(LoRAAttach, GradientsReachOnlyTheAdapter) {
    auto m = base_model();
    ipa::lora::attach_lora(*m, small(), 1);
    randomize_lora(*m, 3);
    m->forward(tiny_inputs(tiny())).pow(2).mean().backward();
    for (const auto& p : m->named_parameters()) {
        if (contains(p.key(), ".lora_")) {
            ASSERT_TRUE(p.value().grad().defined()) << p.key();
            EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
        } else {
            EXPECT_FALSE(p.value().grad().defined()) << p.key();
        }
    }
}

TEST(LoRAControl, EnableAndMultiplier) {
    auto m = base_model();
    const auto in = tiny_inputs(tiny());
    const auto y_base = run(*m, in);
    ipa::lora::attach_lora(*m, small(), 1);
    randomize_lora(*m, 3);
    const auto y_lora = run(*m, in);
    EXPECT_GT((y_lora - y_base).abs().max().item<double>(), 1e-3);

    ipa::lora::set_lora_enabled(*m, false);
    EXPECT_TRUE(torch::equal(run(*m, in), y_base));
    ipa::lora::set_lora_enabled(*m, true);
    EXPECT_TRUE(torch::equal(run(*m, in), y_lora));
    ipa::lora::set_lora_multiplier(*m, 0.0);
    EXPECT_TRUE(torch::equal(run(*m, in), y_base));

    // One layer against the formula: y = xWᵀ + b + mult·(alpha/r)·x Aᵀ Bᵀ.
    ipa::lora::set_lora_multiplier(*m, 2.0);
    const auto q = linear(*m, "blocks.1.self_attn.k");
    EXPECT_DOUBLE_EQ(q->lora_scale(), 2.0 * 8.0 / 4.0);
    const auto x = torch::randn({3, 40});
    torch::NoGradGuard g;
    const auto expected =
        torch::addmm(q->bias, x, q->weight.t()) + 4.0 * x.mm(q->lora_A_weight().t()).mm(q->lora_B_weight().t());
    EXPECT_TRUE(torch::allclose(q->forward(x), expected, 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(q->forward_base(x), torch::addmm(q->bias, x, q->weight.t()), 1e-6, 1e-6));
}

// ---- reference adapter (IPA) ----

TEST(LoRAReference, AdapterOffIsExactlyTheBaseModel) {
    auto m = base_model();
    const auto in = tiny_inputs(tiny());
    auto plain = base_model();  // the same base weights, never adapted
    const auto y_plain = run(*plain, in);
    ipa::lora::attach_lora(*m, small("all"), 1);
    randomize_lora(*m, 3);
    const auto y_lora = run(*m, in);
    ASSERT_FALSE(torch::allclose(y_lora, y_plain));
    {
        ipa::lora::ReferenceMode ref(*m);
        EXPECT_TRUE(torch::equal(run(*m, in), y_plain));
        {
            ipa::lora::ReferenceMode nested(*m);
            EXPECT_TRUE(torch::equal(run(*m, in), y_plain));
        }
        EXPECT_TRUE(torch::equal(run(*m, in), y_plain));
    }
    EXPECT_TRUE(torch::equal(run(*m, in), y_lora));

    // bf16 too.
    m->set_dtype(torch::kBFloat16);
    plain->set_dtype(torch::kBFloat16);
    ipa::lora::ReferenceMode ref(*m);
    EXPECT_TRUE(torch::equal(run(*m, in), run(*plain, in)));
}

TEST(LoRAReference, SnapshotStaysFrozenAndSharesTheBase) {
    auto m = base_model();
    const auto in = tiny_inputs(tiny());
    const int64_t base_bytes = param_bytes(*m);
    ipa::lora::attach_lora(*m, small("all"), 1);
    randomize_lora(*m, 3);
    const int64_t lora_bytes = ipa::lora::count_lora_parameters(*m) * 4;
    ipa::lora::snapshot_reference(*m);
    const auto y_snap = run(*m, in);

    // One copy of the base: the reference adds exactly one adapter's bytes.
    EXPECT_EQ(ipa::lora::reference_bytes(*m), lora_bytes);
    EXPECT_EQ(param_bytes(*m) + ipa::lora::reference_bytes(*m), base_bytes + 2 * lora_bytes);
    const auto q = linear(*m, "blocks.2.self_attn.q");
    EXPECT_NE(q->reference_A().data_ptr(), q->lora_A_weight().data_ptr());
    EXPECT_FALSE(q->reference_A().requires_grad());
    for (const auto& p : m->named_parameters()) EXPECT_FALSE(contains(p.key(), "ref_")) << p.key();
    for (const auto& b : m->named_buffers()) EXPECT_FALSE(contains(b.key(), "ref")) << b.key();

    // Train the adapter (here: change it); the reference still gives the snapshot output.
    {
        torch::NoGradGuard g;
        for (auto& t : ipa::lora::lora_parameters(*m)) t.add_(torch::randn_like(t) * 0.1);
    }
    ipa::lora::set_lora_multiplier(*m, 1.5);
    const auto y_trained = run(*m, in);
    EXPECT_GT((y_trained - y_snap).abs().max().item<double>(), 1e-3);
    {
        ipa::lora::ReferenceMode ref(*m);
        EXPECT_TRUE(torch::equal(run(*m, in), y_snap));
    }
    EXPECT_TRUE(torch::equal(run(*m, in), y_trained));

    ipa::lora::clear_reference(*m);
    EXPECT_EQ(ipa::lora::reference_bytes(*m), 0);
    ipa::lora::ReferenceMode ref(*m);
    EXPECT_TRUE(torch::equal(run(*m, in), run(*base_model(), in)));
}

// ---- merging ----

TEST(LoRAMerge, MergedMatchesUnmergedAndUnmergeRestores) {
    auto m = base_model();
    const auto in = tiny_inputs(tiny());
    ipa::lora::attach_lora(*m, small("all"), 1);
    randomize_lora(*m, 3);
    const auto y_lora = run(*m, in);
    const auto q = linear(*m, "vace_blocks.1.self_attn.v");
    const auto w0 = q->weight.clone();

    ipa::lora::merge_lora(*m);
    EXPECT_TRUE(q->lora_merged());
    EXPECT_FALSE(q->lora_enabled());
    EXPECT_FALSE(torch::allclose(q->weight, w0));
    const auto y_merged = run(*m, in);
    EXPECT_TRUE(torch::allclose(y_merged, y_lora, 1e-4, 1e-5)) << (y_merged - y_lora).abs().max();
    EXPECT_THROW(ipa::lora::ReferenceMode ref(*m), ipa::Error);
    EXPECT_THROW(ipa::lora::set_lora_enabled(*m, true), ipa::Error);
    ipa::lora::merge_lora(*m);  // idempotent
    EXPECT_TRUE(torch::allclose(run(*m, in), y_merged, 0, 0));

    ipa::lora::unmerge_lora(*m);
    EXPECT_FALSE(q->lora_merged());
    EXPECT_TRUE(q->lora_enabled());
    EXPECT_TRUE(torch::allclose(q->weight, w0, 0, 1e-6)) << (q->weight - w0).abs().max();
    EXPECT_TRUE(torch::allclose(run(*m, in), y_lora, 1e-4, 1e-5));

    // bf16 base: the merge is stored in bf16.
    m->set_dtype(torch::kBFloat16);
    const auto y16 = run(*m, in);
    ipa::lora::merge_lora(*m);
    EXPECT_EQ(q->weight.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::allclose(run(*m, in), y16, 0.05, 0.05));
}

// The adapter state of a Linear changes only through its methods, which keep the
// invariants: a merged adapter is not re-attached, enabled, snapshot or used as the
// reference; a snapshot goes with its adapter; attaching resets the multiplier.
TEST(LoRAState, InvariantsHeldByTheLinear) {
    ipa::models::wan::Linear lin(6, 4);
    EXPECT_FALSE(lin->has_lora());
    EXPECT_EQ(lin->lora_scale(), 0.0);
    lin->attach_lora(2, 4.0);
    EXPECT_TRUE(lin->lora_enabled());
    EXPECT_DOUBLE_EQ(lin->lora_scale(), 2.0);
    lin->set_lora_multiplier(0.5);
    EXPECT_DOUBLE_EQ(lin->lora_scale(), 1.0);
    {
        torch::NoGradGuard g;
        lin->lora_B_weight().fill_(0.1);
        lin->lora_A_weight().fill_(0.2);
    }
    lin->snapshot_reference();
    EXPECT_TRUE(lin->has_reference());
    EXPECT_GT(lin->reference_bytes(), 0);
    const auto x = torch::randn({3, 6});
    const auto adapted = lin->forward(x);
    EXPECT_TRUE(lin->merge_lora());
    EXPECT_TRUE(lin->lora_merged());
    EXPECT_FALSE(lin->lora_enabled());
    EXPECT_FALSE(lin->merge_lora());  // already merged: nothing to do
    EXPECT_TRUE(torch::allclose(lin->forward(x), adapted, 1e-5, 1e-6));
    EXPECT_THROW(lin->set_lora_enabled(true), c10::Error);
    EXPECT_THROW(lin->set_reference_mode(true), c10::Error);
    EXPECT_THROW(lin->snapshot_reference(), c10::Error);
    EXPECT_THROW(lin->attach_lora(2, 2.0), c10::Error);
    EXPECT_THROW(lin->detach_lora(), c10::Error);
    lin->unmerge_lora();
    EXPECT_TRUE(lin->lora_enabled());
    EXPECT_TRUE(torch::allclose(lin->forward(x), adapted, 1e-5, 1e-6));
    EXPECT_FALSE(lin->set_reference_mode(true));  // returns the previous mode
    EXPECT_TRUE(lin->set_reference_mode(false));
    lin->attach_lora(3, 3.0);  // a new adapter: fresh state, no snapshot, multiplier 1
    EXPECT_FALSE(lin->has_reference());
    EXPECT_DOUBLE_EQ(lin->lora_multiplier(), 1.0);
    EXPECT_DOUBLE_EQ(lin->lora_scale(), 1.0);
    lin->detach_lora();
    EXPECT_FALSE(lin->has_lora());
    EXPECT_EQ(lin->reference_bytes(), 0);
}
