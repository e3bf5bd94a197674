// ipa-inspect vae: the file-level encode/decode equals the VAE on the same tensors.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipa/core/error.h"
#include "ipa/io/safetensors.h"
#include "ipa/media/video.h"
#include "ipa/models/vae/loader.h"
#include "ipa/models/vae/model.h"
#include "ipa/tools/vae_tools.h"
#include "test_util.h"

namespace fs = std::filesystem;

TEST(VaeTools, EncodeAndDecodeFilesMatchTheModel) {
    ipa::test::TempDir dir("ipa_tools");
    const fs::path weights = fs::path(IPA_FIXTURES_DIR) / "vae/tiny.weights.pth";
    torch::manual_seed(0);
    // 8-bit values so the PNG round trip is exact.
    const auto video = torch::randint(0, 256, {3, 6, 16, 24}).to(torch::kFloat32) / 127.5 - 1;
    ipa::media::write_video(dir.path / "frames", video);
    ipa::tools::VaeFileOptions o;
    const auto summary = ipa::tools::vae_encode_file(weights, dir.path / "frames", dir.path / "z.safetensors", o);
    EXPECT_NE(summary.find("[3, 5, 16, 24]"), std::string::npos) << summary;  // 6 frames -> first 5 (1 + 4k)
    auto vae = ipa::models::vae::load_wan_vae(weights);
    const auto z = ipa::io::SafetensorsFile::open(dir.path / "z.safetensors").tensor("latents");
    EXPECT_TRUE(torch::allclose(z, vae->encode(video.narrow(1, 0, 5)), 0, 0));
    ipa::tools::vae_decode_file(weights, dir.path / "z.safetensors", dir.path / "v.safetensors", o);
    const auto v = ipa::io::SafetensorsFile::open(dir.path / "v.safetensors").tensor("video");
    EXPECT_TRUE(torch::allclose(v, vae->decode(z), 0, 0));
    o.frames = 4;
    EXPECT_THROW(ipa::tools::vae_encode_file(weights, dir.path / "frames", dir.path / "x.safetensors", o),
                 ipa::ConfigError);
    ipa::io::save_safetensors(dir.path / "bad.safetensors", {{"latents", torch::zeros({4, 2, 2, 2})}});
    try {
        ipa::tools::vae_decode_file(weights, dir.path / "bad.safetensors", dir.path / "y.mp4", {});
        FAIL();
    } catch (const ipa::DataError& e) {
        EXPECT_NE(std::string(e.what()).find("bad.safetensors': 'latents' must be [16, T, H, W]"), std::string::npos)
            << e.what();
    }
}
