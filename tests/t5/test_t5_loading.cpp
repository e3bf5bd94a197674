// Loading the encoder (Wan .pth / safetensors, Hugging Face UMT5 names), its errors, and the
// precomputed-context files.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/models/t5/loader.h"
#include "ipa/models/t5/text_encoder.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ipa::models::t5;

using ipa::test::error_of;

namespace {

const fs::path kLoadingDir = fs::path(IPA_FIXTURES_DIR) / "t5";

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)

/// The fixture's state dict as float32, Wan names.
ipa::io::NamedTensors wan_tensors() {
    const auto ckpt = ipa::io::Checkpoint::open(kLoadingDir / "tiny_umt5.pth");
    ipa::io::NamedTensors out;
    for (const auto& n : ckpt.names()) out.emplace_back(n, ckpt.get(n).to(torch::kFloat));
    return out;
}

std::string wan_to_hf(const std::string& k) {
    if (k == "token_embedding.weight") return "shared.weight";
    if (k == "norm.weight") return "encoder.final_layer_norm.weight";
    const auto dot = k.find('.', 7);
    const std::string i = k.substr(7, dot - 7), rest = k.substr(dot + 1);
    const std::string b = "encoder.block." + i + ".layer.";
    if (rest == "norm1.weight") return b + "0.layer_norm.weight";
    if (rest == "pos_embedding.embedding.weight") return b + "0.SelfAttention.relative_attention_bias.weight";
    if (rest.rfind("attn.", 0) == 0) return b + "0.SelfAttention." + rest.substr(5);
    if (rest == "norm2.weight") return b + "1.layer_norm.weight";
    if (rest == "ffn.gate.0.weight") return b + "1.DenseReluDense.wi_0.weight";
    if (rest == "ffn.fc1.weight") return b + "1.DenseReluDense.wi_1.weight";
    if (rest == "ffn.fc2.weight") return b + "1.DenseReluDense.wo.weight";
    return "??" + k;
}

torch::Tensor run(T5EncoderImpl& m) {
    torch::NoGradGuard g;
    const auto io = ipa::io::SafetensorsFile::open(kLoadingDir / "enc_b2.io.safetensors");
    return m.forward(io.tensor("ids"), io.tensor("mask"));
}

TEST(T5Loading, HuggingFaceNamesLoadToTheSameModel) {
    ipa::test::TempDir dir("t5load");
    ipa::io::NamedTensors hf;
    for (const auto& [k, v] : wan_tensors()) {
        hf.emplace_back(wan_to_hf(k), v);
        EXPECT_EQ(t5_key_to_wan(wan_to_hf(k)).value(), k);
        EXPECT_EQ(t5_key_to_wan(k).value(), k) << "Wan names pass through";
        if (k == "token_embedding.weight") hf.emplace_back("encoder.embed_tokens.weight", v);  // tied copy
    }
    hf.emplace_back("decoder.block.0.layer.0.layer_norm.weight", torch::ones({32}));  // a full model's decoder: dropped
    ipa::io::save_safetensors(dir.path / "hf.safetensors", hf);
    T5LoadOptions o;
    o.dtype = torch::kFloat;
    auto from_hf = load_t5_encoder(dir.path / "hf.safetensors", o);
    EXPECT_EQ(from_hf->config(), T5Config::tiny());
    auto from_pth = load_t5_encoder(kLoadingDir / "tiny_umt5.pth", o);
    EXPECT_TRUE(torch::equal(run(*from_hf), run(*from_pth)));
    EXPECT_EQ(t5_key_to_wan("lm_head.weight"), std::nullopt);
    EXPECT_EQ(t5_key_to_wan("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", true).value(),
              "pos_embedding.embedding.weight");
}

TEST(T5Loading, StrictErrorsNameTheFileAndTheKeys) {
    ipa::test::TempDir dir("t5load");
    auto tensors = wan_tensors();
    // missing key
    ipa::io::NamedTensors missing;
    for (const auto& kv : tensors) {
        if (kv.first != "blocks.1.ffn.fc1.weight") missing.push_back(kv);
    }
    ipa::io::save_safetensors(dir.path / "missing.safetensors", missing);
    auto msg = error_of([&] { load_t5_encoder(dir.path / "missing.safetensors"); });
    EXPECT_HAS(msg, (dir.path / "missing.safetensors").string());
    EXPECT_HAS(msg, "missing from the checkpoint");
    EXPECT_HAS(msg, "blocks.1.ffn.fc1.weight");
    // wrong shape
    ipa::io::NamedTensors bad = tensors;
    for (auto& kv : bad) {
        if (kv.first == "blocks.0.attn.k.weight") kv.second = torch::zeros({32, 31});
    }
    ipa::io::save_safetensors(dir.path / "shape.safetensors", bad);
    msg = error_of([&] { load_t5_encoder(dir.path / "shape.safetensors"); });
    EXPECT_HAS(msg, (dir.path / "shape.safetensors").string());
    EXPECT_HAS(msg, "blocks.0.attn.k.weight: module [32, 32], checkpoint [32, 31]");
    // unexpected key with a given config
    ipa::io::NamedTensors extra = tensors;
    extra.emplace_back("blocks.0.attn.extra.weight", torch::zeros({2}));
    ipa::io::save_safetensors(dir.path / "extra.safetensors", extra);
    T5LoadOptions o;
    o.config = T5Config::tiny();
    msg = error_of([&] { load_t5_encoder(dir.path / "extra.safetensors", o); });
    EXPECT_HAS(msg, "unexpected in the checkpoint");
    EXPECT_HAS(msg, "blocks.0.attn.extra.weight");
    // truncated .pth
    const auto trunc = dir.path / "truncated.pth";
    fs::copy_file(kLoadingDir / "tiny_umt5.pth", trunc);
    fs::resize_file(trunc, fs::file_size(trunc) / 2);
    msg = error_of([&] { load_t5_encoder(trunc); });
    EXPECT_HAS(msg, trunc.string());
    // not there / not a checkpoint / not a T5
    msg = error_of([&] { load_t5_encoder(dir.path / "models_t5_umt5-xxl-enc-bf16.pth"); });
    EXPECT_HAS(msg, "does not exist");
    EXPECT_HAS(msg, "models_t5_umt5-xxl-enc-bf16.pth");
    std::ofstream(dir.path / "text.safetensors") << "hello";
    msg = error_of([&] { load_t5_encoder(dir.path / "text.safetensors"); });
    EXPECT_HAS(msg, (dir.path / "text.safetensors").string());
    ipa::io::save_safetensors(dir.path / "other.safetensors", {{"head.weight", torch::zeros({2, 2})}});
    msg = error_of([&] { load_t5_encoder(dir.path / "other.safetensors"); });
    EXPECT_HAS(msg, "is not a T5 encoder checkpoint");
    EXPECT_HAS(msg, (dir.path / "other.safetensors").string());
    o = {};
    o.dtype = torch::kInt;
    EXPECT_HAS(error_of([&] { load_t5_encoder(kLoadingDir / "tiny_umt5.pth", o); }), "not supported");
}

TEST(T5Context, WritesAndValidatesContextFiles) {
    ipa::test::TempDir dir("t5ctx");
    const auto out = dir.path / "ctx.safetensors";
    const std::vector<std::string> prompts{"A woman dances in the rain.", "色调艳丽，过曝"};
    encode_prompts_to_file(kLoadingDir / "tiny_umt5.pth", kLoadingDir, prompts, out, torch::kCPU, torch::kFloat);
    const auto ctx = load_contexts_safetensors(out, 32);
    ASSERT_EQ(ctx.size(), 2u);
    TextEncoderOptions o;
    o.dtype = torch::kFloat;
    TextEncoder enc(kLoadingDir / "tiny_umt5.pth", kLoadingDir, o);
    for (std::size_t i = 0; i < 2; ++i) {
        const auto ref = enc.encode({prompts[i]})[0];
        EXPECT_TRUE(torch::equal(ctx[i], ref)) << i;
        EXPECT_EQ(ctx[i].size(0), enc.tokenizer().encode(prompts[i]).size());
    }
    const auto meta = ipa::io::SafetensorsFile::open(out).metadata();
    EXPECT_EQ(meta.at("prompt.1"), prompts[1]);
    EXPECT_EQ(meta.at("num_prompts"), "2");
    EXPECT_EQ(meta.at("format"), "ipa.t5_context");
    EXPECT_HAS(error_of([&] { load_context_safetensors(out, 32); }), "holds 2 prompts");

    // one prompt -> `context` [L, dim]
    const auto one = dir.path / "one.safetensors";
    encode_prompts_to_file(kLoadingDir / "tiny_umt5.pth", kLoadingDir, {prompts[0]}, one, torch::kCPU,
                           torch::kBFloat16);
    const auto c1 = load_context_safetensors(one, 32);
    EXPECT_EQ(c1.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(c1.size(0), 9);  // 8 pieces + EOS (fixture tokenizer)
    EXPECT_TRUE(ipa::io::SafetensorsFile::open(one).contains("context"));

    auto write = [&](const std::string& name, ipa::io::NamedTensors t) {
        ipa::io::save_safetensors(dir.path / name, t);
        return dir.path / name;
    };
    auto nan = torch::zeros({3, 32});
    nan[1][2] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_HAS(error_of([&] {
                   load_context_safetensors(write("wrongdim.st", {{"context", torch::zeros({3, 16})}}), 32);
               }),
               "has 16 columns, the model expects dim 32");
    EXPECT_HAS(error_of([&] {
                   load_context_safetensors(write("3d.st", {{"context", torch::zeros({1, 3, 32})}}), 32);
               }),
               "expected [L, dim]");
    EXPECT_HAS(error_of([&] {
                   load_context_safetensors(write("long.st", {{"context", torch::zeros({513, 32})}}), 32);
               }),
               "has 513 rows, expected 1..512");
    EXPECT_HAS(error_of([&] { load_context_safetensors(write("nan.st", {{"context", nan}}), 32); }), "NaN or Inf");
    EXPECT_HAS(error_of([&] {
                   load_context_safetensors(write("int.st", {{"context", torch::zeros({3, 32}, torch::kInt)}}), 32);
               }),
               "expected F32, BF16 or F16");
    const auto wrongkey = write("key.st", {{"text", torch::zeros({3, 32})}});
    auto msg = error_of([&] { load_context_safetensors(wrongkey, 32); });
    EXPECT_HAS(msg, "has no tensor 'context.0'");
    EXPECT_HAS(msg, wrongkey.string());
    EXPECT_HAS(error_of([&] { load_context_safetensors(dir.path / "absent.safetensors"); }), "does not exist");
    std::ofstream(dir.path / "junk.safetensors") << "junk";
    EXPECT_HAS(error_of([&] { load_context_safetensors(dir.path / "junk.safetensors"); }),
               "not a readable safetensors");
}

}  // namespace

namespace {

TEST(T5Config, ValidationPresetsAndVocabularyCheck) {
    EXPECT_EQ(T5Config::preset("umt5-xxl"), T5Config::umt5_xxl());
    EXPECT_EQ(T5Config::umt5_xxl().head_dim(), 64);
    EXPECT_HAS(error_of([] { T5Config::preset("t5-base"); }), "unknown T5 preset 't5-base'");
    auto c = T5Config::tiny();
    c.num_heads = 5;
    EXPECT_HAS(error_of([&] { c.validate(); }), "dim_attn 32 is not divisible by num_heads 5");
    c = T5Config::tiny();
    c.num_buckets = 30;
    EXPECT_HAS(error_of([&] { c.validate(); }), "num_buckets 30 must be a multiple of 4");
    auto small = T5Config::tiny();
    small.vocab = 100;  // the fixture tokenizer has 600 pieces
    auto m = std::make_shared<T5EncoderImpl>(small);
    EXPECT_HAS(error_of([&] { TextEncoder(m, T5Tokenizer::load(kLoadingDir)); }), "embeds only 100 ids");
}

}  // namespace
