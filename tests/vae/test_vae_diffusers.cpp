// Interop with diffusers: a tiny AutoencoderKLWan folder as diffusers' own save_pretrained
// writes it (config.json with non-official latents_mean / latents_std and z_dim 8, shard index,
// 2 shards, diffusers key names), with diffusers' own encode / decode outputs
// (scripts/gen_interop_fixtures.py, tests/fixtures/interop/README.md).
//
// Calls compared (as the diffusers Wan / VACE pipelines make them):
//   encode: latent_dist.mode() = mu  vs ipa encode_moments()[:z_dim]; pipeline-normalised
//           (mu − mean) · (1/std)     vs ipa encode();
//   decode: decode(z / (1/std) + mean) (clamped) vs ipa decode(z); unclamped vs ipa decode_raw.
// Tolerance: floor = max|diffusers fp32 − diffusers fp64| of each output; ours (fp32) must be
// within 10 × floor of diffusers' float64 output.

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "vae_test_util.h"

namespace fs = std::filesystem;
using namespace ipa::models::vae;
using ipa::test::error_of;

namespace {

const fs::path kDir = fs::path(IPA_FIXTURES_DIR) / "interop";
const fs::path kFolder = kDir / "vae_diffusers";

std::shared_ptr<WanVAEImpl> diffusers_vae() {
    static auto model = load_wan_vae(kFolder);  // detected: shapes + config.json
    return model;
}

// max|ours − ref_f64| < 10 × max|ref − ref_f64|; prints both.
void expect_within_floor(const at::Tensor& ours, const ipa::io::SafetensorsFile& io, const std::string& key,
                         const std::string& label) {
    const auto ref32 = io.tensor(key);
    const auto ref64 = io.tensor(key + "_f64");
    ASSERT_EQ(ours.sizes(), ref64.sizes()) << label;
    const double floor = (ref32.to(torch::kDouble) - ref64).abs().max().item<double>();
    const double err = (ours.to(torch::kDouble) - ref64).abs().max().item<double>();
    std::printf("[diffusers vae %s %s] max|ref|=%.3f floor=%.2e ours vs fp64=%.2e\n", label.c_str(), key.c_str(),
                ref64.abs().max().item<double>(), floor, err);
    EXPECT_GT(floor, 0.0) << label << " " << key;
    EXPECT_LT(err, 10.0 * floor) << label << " " << key << ": beyond 10x diffusers' fp32 floor";
}

std::string read_text(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

TEST(VaeDiffusers, SavePretrainedFolderIsDetectedWithItsLatentStatistics) {
    const auto ckpt = ipa::io::Checkpoint::open(kFolder);
    EXPECT_EQ(ckpt.files().size(), 2u);
    EXPECT_EQ(VaeKeyMap(ckpt).format(), "diffusers");
    const auto cfg = VaeConfig::detect(ckpt);
    EXPECT_EQ(cfg.dim, 4);
    EXPECT_EQ(cfg.z_dim, 8);
    EXPECT_EQ(cfg.dim_mult, (std::vector<int64_t>{1, 2, 2, 2}));
    EXPECT_EQ(cfg.num_res_blocks, 2);
    EXPECT_EQ(cfg.temperal_downsample, (std::vector<bool>{false, true, true}));
    EXPECT_TRUE(cfg.attn_scales.empty());
    ASSERT_EQ(cfg.latent_mean.size(), 8u);
    EXPECT_DOUBLE_EQ(cfg.latent_mean[0], -0.3395);  // config.json, not Wan 2.1's statistics
    EXPECT_DOUBLE_EQ(cfg.latent_std[1], 2.0002);

    WanVAEImpl model(cfg);
    const auto report = load_vae_weights(model, ckpt);  // strict
    EXPECT_TRUE(report.ok());
    EXPECT_EQ(report.loaded.size(), ckpt.size());
    EXPECT_EQ(report.loaded.size(), model.named_parameters().size());
}

class VaeDiffusersEncodeParity : public ::testing::TestWithParam<std::string> {};
class VaeDiffusersDecodeParity : public ::testing::TestWithParam<std::string> {};

TEST_P(VaeDiffusersEncodeParity, EncodeMatchesDiffusersWithinTenTimesTheFloat64Floor) {
    const auto io = ipa::io::SafetensorsFile::open(kDir / ("vae_" + GetParam() + ".io.safetensors"));
    auto vae = diffusers_vae();
    const auto video = io.tensor("video");
    torch::NoGradGuard g;
    const auto mu = vae->encode_moments(video).narrow(1, 0, vae->config().z_dim);
    expect_within_floor(mu, io, "mu", GetParam());
    expect_within_floor(vae->encode(video), io, "latents", GetParam());
}

TEST_P(VaeDiffusersDecodeParity, DecodeMatchesDiffusersWithinTenTimesTheFloat64Floor) {
    const auto io = ipa::io::SafetensorsFile::open(kDir / ("vae_" + GetParam() + ".io.safetensors"));
    auto vae = diffusers_vae();
    const auto z = io.tensor("z");
    torch::NoGradGuard g;
    expect_within_floor(vae->decode(z), io, "out", GetParam());
    expect_within_floor(vae->decode_raw(vae->denormalize_latents(z)), io, "raw", GetParam());
}

INSTANTIATE_TEST_SUITE_P(Diffusers, VaeDiffusersEncodeParity, ::testing::Values("enc_t9_16x24", "enc_b2_t5_16x16"),
                         [](const auto& info) { return std::string(info.param); });
INSTANTIATE_TEST_SUITE_P(Diffusers, VaeDiffusersDecodeParity, ::testing::Values("dec_t4_1x2", "dec_b2_t2_1x2"),
                         [](const auto& info) { return std::string(info.param); });

// config.json variants that this VAE does not implement, or that contradict the weights, are
// errors naming the file and the field.
TEST(VaeDiffusers, ConfigJsonContradictionsAreErrorsNamingTheFileAndField) {
    const auto tmp = fs::temp_directory_path() / ("ipa_vae_diffusers_" + std::to_string(::getpid()));
    fs::remove_all(tmp);
    fs::copy(kFolder, tmp);
    const auto config = tmp / "config.json";
    const auto text = read_text(config);
    auto with = [&](const std::string& from, const std::string& to) {
        auto t = text;
        const auto at = t.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos) t.replace(at, from.size(), to);
        std::ofstream(config) << t;
        return error_of<ipa::CheckpointError>([&] { VaeConfig::detect(ipa::io::Checkpoint::open(tmp)); });
    };
    auto expect_error = [&](const std::string& from, const std::string& to, const std::string& needle) {
        const auto msg = with(from, to);
        EXPECT_CONTAINS(msg, config.string());
        EXPECT_CONTAINS(msg, needle);
    };
    expect_error("\"is_residual\": false", "\"is_residual\": true", "is_residual true");
    expect_error("\"patch_size\": null", "\"patch_size\": 2", "patch_size 2");
    expect_error("\"attn_scales\": []", "\"attn_scales\": [1.0]", "up-block attention");
    expect_error("\"latents_mean\": [", "\"latents_mean\": [0.5, ", "latents_mean/latents_std have 9/8 values");
    expect_error("\"base_dim\": 4", "\"base_dim\": 8", "base_dim 8");
    // Without config.json: z_dim 8 has no known statistics.
    fs::remove(config);
    const auto msg = error_of<ipa::CheckpointError>([&] { VaeConfig::detect(ipa::io::Checkpoint::open(tmp)); });
    EXPECT_CONTAINS(msg, "z_dim 8");
    fs::remove_all(tmp);
}

}  // namespace
