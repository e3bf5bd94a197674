// The trainer's named steps: the shared reference/policy work is bitwise exact, Flow-DPO
// from pairs trains and resumes exactly, samples are validated once.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "ipa/core/error.h"
#include "ipa/data/cache.h"
#include "ipa/io/safetensors.h"
#include "ipa/lora/lora.h"
#include "ipa/train/config.h"
#include "ipa/train/steps.h"
#include "ipa/train/trainer.h"
#include "train_test_util.h"

namespace fs = std::filesystem;
using namespace ipa::train;
namespace wan = ipa::models::wan;

namespace {

using ipa::test::kSourceDir;
using ipa::test::quiet;
using ipa::test::tiny_config;

struct StepsDir : ipa::test::TempDir {
    StepsDir() : ipa::test::TempDir("ipa_steps") {}
};

/// A synthetic pair cache of the tiny config's sizes.
ipa::data::CacheIndex pair_cache(const fs::path& dir, const TrainConfig& cfg, bool pairs = true) {
    const auto mcfg = wan::WanConfig::resolve(cfg.model.config);
    ipa::data::SyntheticOptions so;
    so.samples = 4;
    so.latent_channels = mcfg.out_dim;
    so.vace_channels = mcfg.vace_in_dim;
    so.text_dim = mcfg.text_dim;
    so.video_frames = 1 + (cfg.data.frames - 1) / 4;
    so.height = cfg.data.size[0] / 8;
    so.width = cfg.data.size[1] / 8;
    so.pairs = pairs;
    return ipa::data::make_synthetic_cache(dir, so);
}

/// The model of `cfg` with a non-zero adapter (so reference and policy differ) and,
/// optionally, a different initial adapter as the reference.
TrainModel model_with_adapter(const TrainConfig& cfg) {
    auto tm = build_model(cfg, wan::WanConfig::resolve(cfg.model.config), c10::kCPU);
    torch::NoGradGuard no_grad;
    auto gen = at::detail::createCPUGenerator(7);
    for (auto& [name, p] : ipa::lora::named_lora_parameters(*tm.model)) {
        if (name.find("lora_B") != std::string::npos) p.copy_(torch::randn(p.sizes(), gen) * 0.05);
    }
    return tm;
}

struct StepOutcome {
    MicroResult r;
    std::vector<at::Tensor> grads;
};

StepOutcome one_micro_step(const TrainConfig& cfg, const ipa::data::Batch& batch, bool share) {
    auto tm = model_with_adapter(cfg);
    tm.model->train();
    NoiseOptions no;
    no.seed = 3;
    no.step = 1;
    no.pairs = cfg.loss.kind == ipa::loss::LossKind::dpo;
    no.hand_weight = cfg.loss.hand_weight;
    const auto nb = noise_batch(batch, no);
    StepOutcome out;
    out.r = micro_step(tm, nb, cfg.loss, 1, share);
    for (const auto& p : tm.params) out.grads.push_back(p.grad().clone());
    return out;
}

void expect_bitwise(const StepOutcome& a, const StepOutcome& b, const std::string& what) {
    EXPECT_TRUE(torch::equal(a.r.loss, b.r.loss))
        << what << ": " << a.r.loss.item<double>() << " vs " << b.r.loss.item<double>();
    EXPECT_TRUE(torch::equal(a.r.err_theta, b.r.err_theta)) << what;
    if (a.r.err_ref.defined()) {
        EXPECT_TRUE(torch::equal(a.r.err_ref, b.r.err_ref)) << what;
    }
    ASSERT_EQ(a.grads.size(), b.grads.size());
    for (std::size_t i = 0; i < a.grads.size(); ++i) EXPECT_TRUE(torch::equal(a.grads[i], b.grads[i])) << what << i;
}

}  // namespace

TEST(TrainSteps, SharedReferenceWorkIsBitwiseExact) {
    StepsDir dir;
    // Every combination that changes what may be shared: loss kind, checkpointing, where the
    // adapters sit (main only: embeddings + hints + cross K/V shared; all: hints recomputed;
    // cross-attention targets: K/V recomputed).
    struct Case {
        std::vector<std::string> overrides;
        bool expect_hints, expect_kv;
    };
    const std::vector<Case> cases{
        {{"loss.kind=ipa"}, true, true},
        {{"loss.kind=ipa", "train.grad_checkpointing=true"}, true, true},
        {{"loss.kind=dpo", "train.grad_checkpointing=true"}, true, true},
        {{"loss.kind=ipa", "lora.blocks=all"}, false, true},
        {{"loss.kind=dpo", "lora.targets=[self_attn.q, cross_attn.k]"}, true, false},
    };
    const auto base = tiny_config(dir.path, 1);
    pair_cache(dir.path / "cache", base);
    std::vector<ipa::data::CachedSample> samples;
    for (const char* id : {"synth-0000", "synth-0001"})
        samples.push_back(ipa::data::load_cached_sample(dir.path / "cache" / (std::string(id) + ".safetensors")));
    const auto batch = ipa::data::collate(samples);
    for (const auto& c : cases) {
        const auto cfg = tiny_config(dir.path, 1, c.overrides);
        const auto tm = build_model(cfg, wan::WanConfig::resolve(cfg.model.config), c10::kCPU);
        EXPECT_TRUE(tm.share_prelude);
        EXPECT_EQ(tm.shared.hints, c.expect_hints) << c.overrides.back();
        EXPECT_EQ(tm.shared.cross_kv, c.expect_kv) << c.overrides.back();
        const auto shared = one_micro_step(cfg, batch, /*share=*/true);
        const auto separate = one_micro_step(cfg, batch, /*share=*/false);
        expect_bitwise(shared, separate, c.overrides.back());
        EXPECT_GT(shared.r.loss.item<double>(), 0.0);
    }
}

TEST(TrainSteps, DpoOnPairsRaisesTheMarginAndResumesExactly) {
    StepsDir a, b;
    const std::vector<std::string> dpo{"loss.kind=dpo", "loss.beta=2000", "optim.lr=2e-3"};
    auto cfg = tiny_config(a.path, 30, dpo);
    const auto r = run_training(cfg, ipa::RunContext{}, quiet());
    ASSERT_EQ(r.history.size(), 30u);
    auto mean = [&](std::size_t from, std::size_t to, auto field) {
        double s = 0;
        for (std::size_t i = from; i < to; ++i) s += field(r.history[i]);
        return s / static_cast<double>(to - from);
    };
    EXPECT_NEAR(r.history[0].margin, 0.0, 1e-6);  // adapter starts at zero: policy == reference
    EXPECT_NEAR(r.history[0].loss, std::log(2.0), 1e-4);
    const double margin_first = mean(0, 10, [](const StepMetrics& m) { return m.margin; });
    const double margin_last = mean(20, 30, [](const StepMetrics& m) { return m.margin; });
    EXPECT_GT(margin_last, margin_first);
    EXPECT_GT(margin_last, 0.0);
    EXPECT_GT(mean(20, 30, [](const StepMetrics& m) { return m.reward_accuracy; }), 0.5);
    EXPECT_LT(mean(20, 30, [](const StepMetrics& m) { return m.loss; }), std::log(2.0));
    std::ifstream metrics(r.metrics_file);
    std::string line;
    std::getline(metrics, line);
    EXPECT_NE(line.find("\"margin\""), std::string::npos) << line;

    // Interrupted after step 3 and resumed: the same adapter as 6 uninterrupted steps.
    auto six = tiny_config(a.path / "six", 6, dpo);
    six.checkpoint.every = 3;
    run_training(six, ipa::RunContext{}, quiet());
    auto cut = tiny_config(b.path, 6, dpo);
    cut.checkpoint.every = 3;
    auto hooks = quiet();
    hooks.stop_after_step = 3;
    EXPECT_EQ(run_training(cut, ipa::RunContext{}, hooks).final_step, 3);
    EXPECT_EQ(run_training(cut, ipa::RunContext{}, quiet()).resumed_from, 3);
    const auto fa = ipa::io::SafetensorsFile::open(a.path / "six/run/step-000006/adapter.safetensors");
    const auto fb = ipa::io::SafetensorsFile::open(b.path / "run/step-000006/adapter.safetensors");
    ASSERT_EQ(fa.tensors().size(), fb.tensors().size());
    for (const auto& t : fa.tensors()) EXPECT_TRUE(torch::equal(fa.tensor(t.name), fb.tensor(t.name))) << t.name;
}

TEST(TrainSteps, DpoNeedsPairsAndOtherLossesTrainOnWinners) {
    StepsDir dir;
    auto cfg = tiny_config(dir.path, 2, {"loss.kind=dpo"});
    pair_cache(dir.path / "cache", cfg, /*pairs=*/false);
    try {
        run_training(cfg, ipa::RunContext{}, quiet());
        FAIL() << "expected a DataError";
    } catch (const ipa::DataError& e) {
        EXPECT_NE(std::string(e.what()).find("ipa-curate pairs"), std::string::npos) << e.what();
    }
    StepsDir pairs;
    auto ipa_cfg = tiny_config(pairs.path, 2, {"loss.kind=ipa"});
    pair_cache(pairs.path / "cache", ipa_cfg);
    EXPECT_EQ(run_training(ipa_cfg, ipa::RunContext{}, quiet()).final_step, 2);
}

TEST(TrainSteps, SampleStreamValidatesEachFileOnceAndContinuesTheOrder) {
    StepsDir dir;
    const auto cfg = tiny_config(dir.path, 1);
    const auto index = pair_cache(dir.path / "cache", cfg, false);
    RunState state;
    SampleStream stream(index, dir.path / "cache", 5, 0, 1, state);
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(stream.next().id);
    EXPECT_EQ(state.epoch, 1);
    EXPECT_EQ(state.position, 2);
    const auto order0 = ipa::data::epoch_order(4, 5, 0), order1 = ipa::data::epoch_order(4, 5, 1);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(ids[i], index.entries[order0[i]].id);
    for (int i = 0; i < 2; ++i) EXPECT_EQ(ids[4 + i], index.entries[order1[i]].id);
    // A value check runs at the first draw only: a file already drawn is shape-checked later.
    auto s = ipa::data::load_cached_sample(dir.path / "cache" / index.entries[order1[2]].file);
    s.context[0][0] = std::numeric_limits<float>::quiet_NaN();
    ipa::io::save_safetensors(
        dir.path / "cache" / index.entries[order1[2]].file,
        {{"latents", s.latents}, {"context", s.context}, {"vace_context", s.vace_context}, {"hand_mask", s.hand_mask}},
        s.meta);
    EXPECT_NO_THROW(stream.next());
    RunState fresh;
    fresh.epoch = 1;
    fresh.position = 2;
    SampleStream again(index, dir.path / "cache", 5, 0, 1, fresh);
    EXPECT_THROW(again.next(), ipa::DataError);  // a new process validates it
}
