// Loading Wan 2.1 VAE weights: key spellings (original, prefixed, diffusers), strict errors
// that name the file and every bad key, truncated files, config detection and YAML configs.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <regex>

#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "vae_test_util.h"

namespace fs = std::filesystem;
using namespace ipa::models::vae;
using namespace ipa::test::vae;

namespace {

ipa::io::NamedTensors state_of(const WanVAEImpl& m) {
    ipa::io::NamedTensors out;
    for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach().clone());
    return out;
}

// Original -> diffusers AutoencoderKLWan names (docs/wan-vace.md §8.3), written independently of the
// loader's reverse map; decoder up blocks hold num_res_blocks + 1 = 3 resnets + 1 upsampler.
std::string to_diffusers(std::string k) {
    auto inner = [](std::string s) {
        s = std::regex_replace(s, std::regex(R"(^residual\.0\.)"), "norm1.");
        s = std::regex_replace(s, std::regex(R"(^residual\.2\.)"), "conv1.");
        s = std::regex_replace(s, std::regex(R"(^residual\.3\.)"), "norm2.");
        s = std::regex_replace(s, std::regex(R"(^residual\.6\.)"), "conv2.");
        return std::regex_replace(s, std::regex(R"(^shortcut\.)"), "conv_shortcut.");
    };
    std::smatch m;
    if (std::regex_match(k, m, std::regex(R"(conv1\.(.*))"))) return "quant_conv." + m[1].str();
    if (std::regex_match(k, m, std::regex(R"(conv2\.(.*))"))) return "post_quant_conv." + m[1].str();
    if (std::regex_match(k, m, std::regex(R"((encoder|decoder)\.conv1\.(.*))")))
        return m[1].str() + ".conv_in." + m[2].str();
    if (std::regex_match(k, m, std::regex(R"((encoder|decoder)\.head\.0\.(.*))")))
        return m[1].str() + ".norm_out." + m[2].str();
    if (std::regex_match(k, m, std::regex(R"((encoder|decoder)\.head\.2\.(.*))")))
        return m[1].str() + ".conv_out." + m[2].str();
    if (std::regex_match(k, m, std::regex(R"((encoder|decoder)\.middle\.1\.(.*))"))) {
        return m[1].str() + ".mid_block.attentions.0." + m[2].str();
    }
    if (std::regex_match(k, m, std::regex(R"((encoder|decoder)\.middle\.([02])\.(.*))"))) {
        return m[1].str() + ".mid_block.resnets." + (m[2].str() == "0" ? "0." : "1.") + inner(m[3].str());
    }
    if (std::regex_match(k, m, std::regex(R"(encoder\.downsamples\.(\d+)\.(.*))"))) {
        return "encoder.down_blocks." + m[1].str() + "." + inner(m[2].str());
    }
    if (std::regex_match(k, m, std::regex(R"(decoder\.upsamples\.(\d+)\.(.*))"))) {
        const int n = std::stoi(m[1].str());
        const auto block = "decoder.up_blocks." + std::to_string(n / 4) + ".";
        if (n % 4 == 3) return block + "upsamplers.0." + m[2].str();
        return block + "resnets." + std::to_string(n % 4) + "." + inner(m[2].str());
    }
    return k;
}

void expect_same_weights(const WanVAEImpl& a, const WanVAEImpl& b) {
    const auto pa = a.named_parameters(), pb = b.named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

TEST(VaeLoader, OriginalPrefixedAndDiffusersSpellingsLoadTheSameWeights) {
    TempDir tmp;
    auto ref = tiny_vae();
    const auto sd = state_of(*ref);
    struct Variant {
        std::string file, format, prefix;
        std::function<std::string(const std::string&)> rename;
        ipa::io::NamedTensors extra;  // keys of other components in the same file
    };
    const std::vector<Variant> variants = {
        {"original.safetensors", "original", "", [](const std::string& k) { return k; }, {}},
        {"comfy.safetensors",
         "original",
         "first_stage_model.",
         [](const std::string& k) { return "first_stage_model." + k; },
         {{"model.diffusion_model.blocks.0.ffn.0.weight", torch::zeros({2, 2})}}},
        {"vae.safetensors", "original", "vae.", [](const std::string& k) { return "vae." + k; }, {}},
        {"diffusers.safetensors", "diffusers", "", to_diffusers, {}},
        {"diffsynth_diffusers.safetensors",
         "diffusers",
         "model.",
         [](const std::string& k) { return "model." + to_diffusers(k); },
         {}},
    };
    for (const auto& v : variants) {
        ipa::io::NamedTensors renamed = v.extra;
        for (const auto& [k, t] : sd) renamed.emplace_back(v.rename(k), t);
        ipa::io::save_safetensors(tmp.path / v.file, renamed);
        const auto ckpt = ipa::io::Checkpoint::open(tmp.path / v.file);
        const VaeKeyMap map(ckpt);
        EXPECT_EQ(map.format(), v.format) << v.file;
        EXPECT_EQ(map.prefix(), v.prefix) << v.file;
        EXPECT_EQ(VaeConfig::detect(ckpt), VaeConfig::preset("tiny")) << v.file;
        auto loaded = load_wan_vae(tmp.path / v.file);
        expect_same_weights(*loaded, *ref);
    }
    // and the model computes the same thing after a diffusers round trip
    auto from_diffusers = load_wan_vae(tmp.path / "diffusers.safetensors");
    const auto video = det_uniform({3, 1, 16, 16}, 41);
    EXPECT_TRUE(torch::equal(from_diffusers->encode(video), ref->encode(video)));
}

TEST(VaeLoader, StrictErrorListsEveryBadKeyAndNamesTheFile) {
    TempDir tmp;
    auto sd = state_of(*tiny_vae());
    ipa::io::NamedTensors broken;
    for (auto& [k, t] : sd) {
        if (k == "decoder.head.2.bias") continue;                                   // missing
        if (k == "encoder.middle.1.proj.weight") t = torch::zeros({16, 16, 3, 3});  // wrong shape
        broken.emplace_back(k, t);
    }
    broken.emplace_back("decoder.head.3.weight", torch::zeros({3}));  // unexpected
    const auto file = tmp.path / "broken.safetensors";
    ipa::io::save_safetensors(file, broken);
    const auto msg = error_of([&] { load_wan_vae(file, torch::kCPU, torch::kFloat, VaeConfig::preset("tiny")); });
    EXPECT_CONTAINS(msg, file.string());
    EXPECT_CONTAINS(msg, "missing from the checkpoint (1)");
    EXPECT_CONTAINS(msg, "decoder.head.2.bias");
    EXPECT_CONTAINS(msg, "unexpected in the checkpoint (1)");
    EXPECT_CONTAINS(msg, "decoder.head.3.weight");
    EXPECT_CONTAINS(msg, "encoder.middle.1.proj.weight: module [16, 16, 1, 1], checkpoint [16, 16, 3, 3]");
    EXPECT_THROW(load_wan_vae(file, torch::kCPU, torch::kFloat, VaeConfig::preset("tiny")), ipa::CheckpointError);
}

TEST(VaeLoader, WrongConfigIsAShapeError) {
    VaeConfig wide = VaeConfig::preset("tiny");
    wide.dim = 8;
    const auto msg =
        error_of([&] { load_wan_vae(fixture_dir() / "tiny.weights.pth", torch::kCPU, torch::kFloat, wide); });
    EXPECT_CONTAINS(msg, "tiny.weights.pth");
    EXPECT_CONTAINS(msg, "shape mismatch (188)");
}

TEST(VaeLoader, BadFilesAreCheckpointErrorsNamingTheFile) {
    TempDir tmp;
    for (const auto& name : {std::string("tiny.weights.pth"), std::string("enc_t1_16x24.safetensors")}) {
        const auto src = fixture_dir() / name, dst = tmp.path / ("cut_" + name);
        fs::copy_file(src, dst);
        fs::resize_file(dst, fs::file_size(src) / 2);
        const auto msg = error_of([&] { load_wan_vae(dst); });
        EXPECT_CONTAINS(msg, dst.string());
        EXPECT_THROW(load_wan_vae(dst), ipa::CheckpointError) << name;
    }
    EXPECT_THROW(load_wan_vae(tmp.path / "absent.pth"), ipa::CheckpointError);
    // not a Wan VAE at all
    ipa::io::save_safetensors(tmp.path / "dit.safetensors", {{"blocks.0.ffn.0.weight", torch::zeros({2, 2})}});
    const auto msg = error_of([&] { load_wan_vae(tmp.path / "dit.safetensors"); });
    EXPECT_CONTAINS(msg, "dit.safetensors");
    EXPECT_CONTAINS(msg, "not a Wan 2.1 VAE");
}

TEST(VaeConfigTest, PresetsYamlAndValidation) {
    const auto real = VaeConfig::preset("wan2.1");
    EXPECT_EQ(real.dim, 96);
    EXPECT_EQ(real.temperal_downsample, (std::vector<bool>{false, true, true}));
    EXPECT_EQ(real.temporal_stride(), 4);
    EXPECT_EQ(real.spatial_stride(), 8);
    const auto back = VaeConfig::from_yaml(ipa::ConfigReader::load_string(real.to_yaml()));
    EXPECT_EQ(back.dim_mult, real.dim_mult);
    EXPECT_EQ(back.temperal_downsample, real.temperal_downsample);
    EXPECT_EQ(back.latent_mean.size(), 16u);
    EXPECT_NEAR(back.latent_std[8], 3.2687, 1e-12);

    const auto tiny =
        VaeConfig::from_yaml(ipa::ConfigReader::load_string("dim: 4\ntemperal_downsample: [false, true, true]\n"));
    EXPECT_EQ(tiny, VaeConfig::preset("tiny"));
    EXPECT_CONTAINS(error_of([] { VaeConfig::from_yaml(ipa::ConfigReader::load_string("dims: 4\n")); }), "dims");
    EXPECT_CONTAINS(
        error_of([] { VaeConfig::from_yaml(ipa::ConfigReader::load_string("temperal_downsample: [true]\n")); }),
        "temperal_downsample has 1 flags");
    EXPECT_CONTAINS(error_of([] { VaeConfig::from_yaml(ipa::ConfigReader::load_string("temperal_downsample: 3\n")); }),
                    "list of booleans");
    EXPECT_CONTAINS(error_of([] { VaeConfig::from_yaml(ipa::ConfigReader::load_string("z_dim: 4\n")); }),
                    "latent_mean/latent_std have 0/0 values");
    EXPECT_CONTAINS(error_of([] { VaeConfig::preset("sd"); }), "unknown VAE preset 'sd'");
}

}  // namespace
