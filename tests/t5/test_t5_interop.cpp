// Interop with transformers: a tiny UMT5EncoderModel folder as transformers' own
// save_pretrained writes it (config.json + model.safetensors, Hugging Face key names, tied
// `shared.weight`), with transformers' own last_hidden_state (scripts/gen_interop_fixtures.py,
// tests/fixtures/interop/README.md). The config has d_kv · heads ≠ d_model and
// relative_attention_max_distance 20, which only config.json can tell.
//
// Tolerance: floor = max|transformers fp32 − transformers fp64| over the true-length rows; ours
// (fp32) must be within 10 × floor of transformers' float64 output.

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/models/t5/config.h"
#include "ipa/models/t5/loader.h"
#include "ipa/models/t5/text_encoder.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ipa::models::t5;

namespace {

const fs::path kInteropDir = fs::path(IPA_FIXTURES_DIR) / "interop";
const fs::path kFolder = kInteropDir / "umt5_transformers";

T5Config expected_config() {
    T5Config c;
    c.vocab = 608;
    c.dim = 32;
    c.dim_attn = 36;  // d_kv 12 x 3 heads
    c.dim_ffn = 48;
    c.num_heads = 3;
    c.num_layers = 3;
    c.num_buckets = 32;
    c.max_dist = 20;  // from config.json
    c.shared_pos = false;
    c.eps = 1e-6;
    return c;
}

std::shared_ptr<T5EncoderImpl> load_fp32() {
    T5LoadOptions o;
    o.dtype = torch::kFloat;
    return load_t5_encoder(kFolder, o);
}

double rows_floor_check(const at::Tensor& ours, const at::Tensor& ref32, const at::Tensor& ref64,
                        const std::string& label) {
    const double floor = (ref32.to(torch::kDouble) - ref64).abs().max().item<double>();
    const double err = (ours.to(torch::kDouble) - ref64).abs().max().item<double>();
    std::printf("[transformers umt5 %s] max|ref|=%.3f floor=%.2e ours vs fp64=%.2e\n", label.c_str(),
                ref64.abs().max().item<double>(), floor, err);
    EXPECT_GT(floor, 0.0) << label;
    EXPECT_LT(err, 10.0 * floor) << label << ": beyond 10x transformers' fp32 floor";
    return err;
}

TEST(T5Interop, SavePretrainedFolderIsDetectedFromShapesAndConfigJson) {
    const auto ckpt = ipa::io::Checkpoint::open(kFolder);
    ASSERT_TRUE(ckpt.contains("shared.weight"));
    const auto cfg = T5Config::detect(ckpt);
    EXPECT_EQ(cfg, expected_config()) << cfg.describe();
    auto model = load_fp32();
    EXPECT_EQ(model->config(), expected_config());
}

TEST(T5InteropParity, EncoderWithAttentionMaskMatchesTransformers) {
    const auto io = ipa::io::SafetensorsFile::open(kInteropDir / "umt5_ids.io.safetensors");
    auto model = load_fp32();
    torch::NoGradGuard g;
    const auto mask = io.tensor("mask");
    const auto out = model->forward(io.tensor("ids"), mask);
    for (int64_t i = 0; i < mask.size(0); ++i) {
        const int64_t n = mask[i].sum().item<int64_t>();
        auto rows = [&](const at::Tensor& t) { return t[i].narrow(0, 0, n); };
        rows_floor_check(
            rows(out), rows(io.tensor("out")), rows(io.tensor("out_f64")),
            "ids sample " + std::to_string(i) + " (" + std::to_string(n) + " of " + std::to_string(mask.size(1)) + ")");
    }
}

// The diffusers WanPipeline call: prompts tokenized to 512 with a mask by the transformers fast
// tokenizer of tests/fixtures/t5/spiece.model, encoded, trimmed to the true lengths.
TEST(T5InteropParity, TextEncoderPathMatchesTransformersTrimmedToTrueLengths) {
    const auto io = ipa::io::SafetensorsFile::open(kInteropDir / "umt5_prompts.io.safetensors");
    const auto prompts = nlohmann::json::parse(io.metadata().at("prompts")).get<std::vector<std::string>>();
    for (bool trim : {false, true}) {
        TextEncoderOptions o;
        o.dtype = torch::kFloat;
        o.trim_padding = trim;
        TextEncoder enc(kFolder, fs::path(IPA_FIXTURES_DIR) / "t5", o);
        const auto batch = enc.tokenizer()(prompts);
        const auto outs = enc.encode(prompts);
        ASSERT_EQ(outs.size(), prompts.size());
        for (std::size_t i = 0; i < prompts.size(); ++i) {
            const auto k = std::to_string(i);
            const auto ids = io.tensor("ids." + k);
            EXPECT_TRUE(torch::equal(batch.ids[i].narrow(0, 0, ids.size(0)), ids)) << "prompt " << i;
            ASSERT_EQ(outs[i].size(0), ids.size(0)) << "prompt " << i;
            rows_floor_check(outs[i], io.tensor("out." + k), io.tensor("out_f64." + k),
                             "prompt " + k + (trim ? " trimmed" : " full 512"));
        }
    }
}

TEST(T5Interop, ConfigJsonContradictionsAreErrorsNamingTheFile) {
    const auto tmp = fs::temp_directory_path() / ("ipa_t5_interop_" + std::to_string(::getpid()));
    fs::remove_all(tmp);
    fs::copy(kFolder, tmp);
    const auto config = tmp / "config.json";
    std::string text;
    {
        std::ifstream in(config);
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto detect_with = [&](const std::string& from, const std::string& to) {
        auto t = text;
        const auto at = t.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos) t.replace(at, from.size(), to);
        std::ofstream(config) << t;
        return ipa::test::error_of<ipa::CheckpointError>([&] { T5Config::detect(ipa::io::Checkpoint::open(tmp)); });
    };
    auto msg = detect_with("\"num_heads\": 3", "\"num_heads\": 4");
    EXPECT_CONTAINS(msg, config.string());
    EXPECT_CONTAINS(msg, "num_heads 4 != 3");
    msg = detect_with("\"dense_act_fn\": \"gelu_new\"", "\"dense_act_fn\": \"relu\"");
    EXPECT_CONTAINS(msg, "gated-gelu / relu");
    // Without config.json the shapes alone give the default max distance (128), not 20.
    fs::remove(config);
    EXPECT_EQ(T5Config::detect(ipa::io::Checkpoint::open(tmp)).max_dist, 128);
    fs::remove_all(tmp);
}

}  // namespace
