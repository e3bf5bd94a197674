// ipa-train on the tiny model: config contract, learning signal, resume equivalence,
// checkpoint hygiene, bad caches, NaN guard.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/core/tensorboard.h"
#include "ipa/data/cache.h"
#include "ipa/io/safetensors.h"
#include "ipa/train/config.h"
#include "ipa/train/trainer.h"
#include "train_test_util.h"

namespace fs = std::filesystem;
using namespace ipa::train;

namespace {

using ipa::test::kSourceDir;
using ipa::test::quiet;
using ipa::test::tiny_config;

struct TrainDir : ipa::test::TempDir {
    TrainDir() : ipa::test::TempDir("ipa_train") {}
};

std::string config_error(const std::vector<std::string>& overrides) {
    try {
        TrainConfig::load(kSourceDir / "configs/train/tiny-cpu.yaml", overrides);
    } catch (const ipa::ConfigError& e) {
        return e.what();
    }
    return "<no error>";
}

TEST(TrainConfig, ShippedConfigsParseWithThePaperSettings) {
    const auto paper = TrainConfig::load(kSourceDir / "configs/train/ipa-vace-14b-8gpu.yaml");
    EXPECT_EQ(paper.lora.rank, 128);
    EXPECT_EQ(paper.lora.targets, (std::vector<std::string>{"self_attn.q", "self_attn.k", "self_attn.v"}));
    EXPECT_DOUBLE_EQ(paper.loss.beta, 600.0);
    EXPECT_DOUBLE_EQ(paper.loss.hand_weight, 10.0);
    EXPECT_EQ(paper.train.steps, 1000);
    EXPECT_EQ(paper.model.dtype, "bf16");
    const auto tiny = TrainConfig::load(kSourceDir / "configs/train/tiny-cpu.yaml");
    EXPECT_EQ(tiny.data.synthetic, 8);
    // The resolved YAML parses back to the same values.
    const auto again = TrainConfig::from_yaml(ipa::ConfigReader::load_string(paper.to_yaml(), "resolved.yaml"));
    EXPECT_EQ(again.to_yaml(), paper.to_yaml());
}

TEST(TrainConfig, OverridesAndErrorsNameTheKeyPath) {
    const auto cfg = TrainConfig::load(kSourceDir / "configs/train/tiny-cpu.yaml", {"optim.lr=5e-5", "train.steps=7"});
    EXPECT_DOUBLE_EQ(cfg.optim.lr, 5e-5);
    EXPECT_EQ(cfg.train.steps, 7);
    EXPECT_NE(config_error({"optim.lrr=1"}).find("'optim.lrr'"), std::string::npos);
    EXPECT_NE(config_error({"train.steps=-3"}).find("train.steps"), std::string::npos);
    EXPECT_NE(config_error({"loss.kind=ppo"}).find("loss.kind"), std::string::npos);
    EXPECT_NE(config_error({"loss.time_weight=t"}).find("loss.time_weight"), std::string::npos);
    EXPECT_NE(config_error({"data.size=[480, 830]"}).find("data.size"), std::string::npos);
    EXPECT_NE(config_error({"data.frames=80"}).find("4k+1"), std::string::npos);
    EXPECT_NE(config_error({"optim.schedule=linear"}).find("optim.schedule"), std::string::npos);
    EXPECT_NE(config_error({"trainer.steps=3"}).find("unknown config section 'trainer'"), std::string::npos);
    EXPECT_NE(config_error({"lora.rank=0"}).find("rank"), std::string::npos);
    EXPECT_NE(config_error({"model.dtype=fp8"}).find("model.dtype"), std::string::npos);
    EXPECT_NE(config_error({"data.mask_shape=circle"}).find("data.mask_shape"), std::string::npos);
    EXPECT_NE(config_error({"data.manifest=train.csv"}).find("data.synthetic"), std::string::npos);  // both set
    const auto curated = TrainConfig::load(kSourceDir / "configs/train/tiny-curated.yaml");
    EXPECT_EQ(curated.data.manifest, "demo-out/train.csv");
    EXPECT_EQ(curated.data.synthetic, 0);
    for (const auto& f : {curated.model.vae, curated.model.text_encoder, curated.model.tokenizer}) {
        EXPECT_TRUE(fs::exists(kSourceDir / f)) << f;  // the demo's tiny encoders are the test fixtures
    }
}

TEST(Trainer, TinyIpaRunRaisesTheGapAndLowersTheLoss) {
    TrainDir dir;
    const auto cfg = tiny_config(dir.path, 40);
    const auto r = run_training(cfg, ipa::RunContext{}, quiet());
    ASSERT_EQ(r.history.size(), 40u);
    auto mean = [&](std::size_t from, std::size_t to, auto field) {
        double s = 0;
        for (std::size_t i = from; i < to; ++i) s += field(r.history[i]);
        return s / static_cast<double>(to - from);
    };
    const double loss_first = mean(0, 10, [](const StepMetrics& m) { return m.loss; });
    const double loss_last = mean(30, 40, [](const StepMetrics& m) { return m.loss; });
    const double gap_first = mean(0, 10, [](const StepMetrics& m) { return m.gap; });
    const double gap_last = mean(30, 40, [](const StepMetrics& m) { return m.gap; });
    EXPECT_NEAR(r.history[0].gap, 0.0, 1e-6);  // adapter starts at zero: policy == reference
    EXPECT_NEAR(r.history[0].loss, std::log(2.0), 1e-4);
    EXPECT_LT(loss_last, loss_first);
    EXPECT_GT(gap_last, gap_first);
    EXPECT_GT(gap_last, 0.0);
    EXPECT_GT(mean(30, 40, [](const StepMetrics& m) { return m.reward_accuracy; }), 0.5);
    // Metrics file: one JSON line per step; adapter holds only LoRA tensors.
    std::ifstream metrics(r.metrics_file);
    int lines = 0;
    for (std::string l; std::getline(metrics, l);) ++lines;
    EXPECT_EQ(lines, 40);
    const auto adapter = ipa::io::SafetensorsFile::open(r.last_checkpoint / "adapter.safetensors");
    for (const auto& t : adapter.tensors()) {
        EXPECT_TRUE(t.name.find(".lora_") != std::string::npos || t.name.find(".alpha") != std::string::npos) << t.name;
        EXPECT_EQ(t.name.find("cross_attn"), std::string::npos) << t.name;
    }
    EXPECT_EQ(adapter.tensors().size(), 4u * 3 * 3);  // 4 blocks x q,k,v x (A, B, alpha)

    // TensorBoard: one event file, the version record then one record per step, CRCs valid.
    std::vector<fs::path> events;
    for (const auto& e : fs::directory_iterator(r.metrics_file.parent_path() / "tensorboard"))
        events.push_back(e.path());
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].filename().string().rfind("events.out.tfevents.", 0), 0u);
    std::ifstream ev(events[0], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(ev)), std::istreambuf_iterator<char>());
    std::size_t at = 0, records = 0;
    while (at + 12 <= bytes.size()) {
        uint64_t len = 0;
        uint32_t len_crc = 0, data_crc = 0;
        std::memcpy(&len, bytes.data() + at, 8);
        std::memcpy(&len_crc, bytes.data() + at + 8, 4);
        ASSERT_EQ(len_crc, ipa::tensorboard::masked_crc32c(bytes.data() + at, 8));
        ASSERT_LE(at + 12 + len + 4, bytes.size());
        std::memcpy(&data_crc, bytes.data() + at + 12 + len, 4);
        ASSERT_EQ(data_crc, ipa::tensorboard::masked_crc32c(bytes.data() + at + 12, len));
        EXPECT_TRUE(records == 0 || bytes.find("train/gap", at) < at + 12 + len);
        at += 12 + len + 4;
        ++records;
    }
    EXPECT_EQ(at, bytes.size());
    EXPECT_EQ(records, 41u);
    // The curves of metrics.jsonl, redrawn at each checkpoint.
    std::ifstream png(r.metrics_file.parent_path() / "curves.png", std::ios::binary);
    char sig[8] = {};
    png.read(sig, 8);
    EXPECT_EQ(std::string(sig + 1, 3), "PNG");
}

TEST(Trainer, ResumeReproducesTheUninterruptedRun) {
    TrainDir a, b;
    auto cfg_a = tiny_config(a.path, 6);
    cfg_a.checkpoint.every = 3;
    cfg_a.optim.schedule = "cosine";  // the schedule must continue, not restart
    cfg_a.optim.warmup_steps = 2;
    run_training(cfg_a, ipa::RunContext{}, quiet());

    auto cfg_b = cfg_a;
    cfg_b.data.cache_dir = (b.path / "cache").string();
    cfg_b.checkpoint.dir = (b.path / "run").string();
    auto hooks = quiet();
    hooks.stop_after_step = 3;  // "crash" after the step-3 checkpoint
    const auto first = run_training(cfg_b, ipa::RunContext{}, hooks);
    EXPECT_EQ(first.final_step, 3);
    const auto second = run_training(cfg_b, ipa::RunContext{}, quiet());
    EXPECT_EQ(second.resumed_from, 3);
    EXPECT_EQ(second.final_step, 6);

    const auto fa = ipa::io::SafetensorsFile::open(a.path / "run/step-000006/adapter.safetensors");
    const auto fb = ipa::io::SafetensorsFile::open(b.path / "run/step-000006/adapter.safetensors");
    ASSERT_EQ(fa.tensors().size(), fb.tensors().size());
    for (const auto& t : fa.tensors()) {
        EXPECT_TRUE(torch::equal(fa.tensor(t.name), fb.tensor(t.name))) << t.name;
    }
    // metrics.jsonl has each step exactly once.
    std::ifstream metrics(b.path / "run/metrics.jsonl");
    int lines = 0;
    for (std::string l; std::getline(metrics, l);) ++lines;
    EXPECT_EQ(lines, 6);
}

TEST(Trainer, CheckpointsAreAtomicAndPruned) {
    TrainDir dir;
    auto cfg = tiny_config(dir.path, 4);
    cfg.checkpoint.every = 1;
    cfg.checkpoint.keep = 2;
    run_training(cfg, ipa::RunContext{}, quiet());
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir.path / "run")) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"curves.png", "latest", "metrics.jsonl", "step-000003", "step-000004",
                                               "tensorboard"}));
    EXPECT_EQ(fs::read_symlink(dir.path / "run/latest"), "step-000004");
    EXPECT_EQ(find_latest_checkpoint(dir.path / "run"), dir.path / "run/step-000004");
    for (const char* f : {"adapter.safetensors", "optimizer.pt", "trainer_state.json", "config.yaml"}) {
        EXPECT_TRUE(fs::exists(dir.path / "run/step-000004" / f)) << f;
    }
    // A half-written checkpoint (no trainer_state.json) is never picked.
    fs::create_directories(dir.path / "run/step-000009");
    EXPECT_EQ(find_latest_checkpoint(dir.path / "run"), dir.path / "run/step-000004");
}

// Where each step's time went (metrics.jsonl phase_s), and one step under the operator
// profiler as a Chrome trace with the phases as ranges.
TEST(Trainer, PhasesAreTimedAndAStepCanBeProfiled) {
    for (const auto* kind : {"ipa", "sft"}) {
        TrainDir dir;
        auto cfg = tiny_config(dir.path, 3);
        cfg.loss.kind = ipa::loss::parse_loss_kind(kind);
        auto hooks = quiet();
        hooks.profile_step = 2;
        const auto r = run_training(cfg, ipa::RunContext{}, hooks);
        ASSERT_EQ(r.history.size(), 3u);
        for (const auto& m : r.history) {
            const auto& p = m.phases;
            EXPECT_GT(p.prelude, 0.0) << kind;  // tiny: adapters on the main blocks only
            EXPECT_EQ(p.reference > 0.0, std::string(kind) == "ipa") << kind;
            EXPECT_GT(p.policy, 0.0) << kind;
            EXPECT_GT(p.backward, 0.0) << kind;
            EXPECT_GT(p.update, 0.0) << kind;
            double sum = 0;
            for (const auto& [name, seconds] : p.items()) {
                EXPECT_GE(seconds, 0.0) << name;
                sum += seconds;
            }
            EXPECT_LE(sum, m.step_time_s * 1.0001) << kind;
            EXPECT_GT(sum, 0.5 * m.step_time_s) << kind;  // the phases are the step (less zero_grad)
        }
        std::ifstream metrics(r.metrics_file);
        std::string line;
        std::getline(metrics, line);
        EXPECT_NE(line.find("\"phase_s\":{\"backward\":"), std::string::npos) << line;

        const auto trace = dir.path / "run/profile/step-2.trace.json";
        ASSERT_TRUE(fs::exists(trace));
        EXPECT_FALSE(fs::exists(dir.path / "run/profile/step-1.trace.json"));
        std::ifstream in(trace);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        EXPECT_EQ(text.find_first_not_of(" \n"), text.find('['));  // a JSON array of events
        for (const std::string phase : {"policy", "backward"}) {
            EXPECT_NE(text.find("\"phase::" + phase + "\""), std::string::npos) << phase;
        }
        EXPECT_EQ(text.find("\"phase::reference\"") != std::string::npos, std::string(kind) == "ipa");
        EXPECT_NE(text.find("\"aten::mm\""), std::string::npos);
    }
}

TEST(Trainer, BadCachesGiveClearErrors) {
    TrainDir dir;
    auto cfg = tiny_config(dir.path, 2);
    cfg.data.synthetic = 0;
    try {
        run_training(cfg, ipa::RunContext{}, quiet());
        FAIL();
    } catch (const ipa::DataError& e) {
        EXPECT_NE(std::string(e.what()).find("empty or missing"), std::string::npos) << e.what();
    }
    ipa::data::SyntheticOptions so;
    so.samples = 2;
    so.vace_channels = 96;
    ipa::data::make_synthetic_cache(dir.path / "cache", so);
    const auto victim = dir.path / "cache/synth-0001.safetensors";
    fs::resize_file(victim, fs::file_size(victim) / 2);
    try {
        run_training(cfg, ipa::RunContext{}, quiet());
        FAIL();
    } catch (const ipa::DataError& e) {
        EXPECT_NE(std::string(e.what()).find("synth-0001.safetensors"), std::string::npos) << e.what();
    }
    fs::remove(victim);
    try {
        run_training(cfg, ipa::RunContext{}, quiet());
        FAIL();
    } catch (const ipa::DataError& e) {
        EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    }
}

TEST(Trainer, NonFiniteStepsAreSkippedThenAbort) {
    TrainDir dir;
    auto cfg = tiny_config(dir.path, 20);
    cfg.optim.lr = 1e30;  // blows the adapter up after the first update
    cfg.optim.grad_clip = 0;
    cfg.train.max_bad_steps = 2;
    try {
        run_training(cfg, ipa::RunContext{}, quiet());
        FAIL() << "expected an abort";
    } catch (const ipa::Error& e) {
        EXPECT_NE(std::string(e.what()).find("non-finite steps"), std::string::npos) << e.what();
    }
}

TEST(CacheData, EpochOrderIsASeededPermutationSplitAcrossRanks) {
    const auto o = ipa::data::epoch_order(10, 1, 0);
    auto sorted = o;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 10; ++i) EXPECT_EQ(sorted[i], i);
    EXPECT_EQ(o, ipa::data::epoch_order(10, 1, 0));
    EXPECT_NE(o, ipa::data::epoch_order(10, 1, 1));
    const auto r0 = ipa::data::epoch_order(10, 1, 0, 0, 2), r1 = ipa::data::epoch_order(10, 1, 0, 1, 2);
    EXPECT_EQ(r0.size() + r1.size(), 10u);
}

}  // namespace
