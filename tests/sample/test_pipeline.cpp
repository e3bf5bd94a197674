// ipa-sample end to end on tiny models: tiny VACE DiT (random), the tiny VAE and umT5
// fixtures, a generated pose video and reference image.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ipa/core/error.h"
#include "ipa/io/safetensors.h"
#include "ipa/media/video.h"
#include "ipa/sample/pipeline.h"
#include "test_util.h"

namespace fs = std::filesystem;

TEST(SamplePipeline, TinyModelsProduceADeterministicVideo) {
    ipa::test::TempDir dir("ipa_pipeline");
    const fs::path fx = IPA_FIXTURES_DIR;
    torch::manual_seed(0);
    ipa::media::write_video(dir.path / "pose.mp4", torch::rand({3, 9, 32, 48}) * 2 - 1);
    ipa::media::write_image(dir.path / "ref.png", torch::rand({3, 40, 30}) * 2 - 1);
    ipa::sample::PipelineOptions o;
    o.model = "tiny";
    o.vae = fx / "vae/tiny.weights.pth";
    o.text_encoder = fx / "t5/tiny_umt5.pth";
    o.tokenizer = fx / "t5";
    o.pose_video = dir.path / "pose.mp4";
    o.reference_image = dir.path / "ref.png";
    o.prompt = "a dancer raises both hands";
    o.size = std::make_pair<int64_t, int64_t>(32, 48);
    o.sampling.sampler.steps = 3;
    o.sampling.progress = false;
    o.dtype = torch::kFloat32;
    o.out = dir.path / "out.mp4";
    o.save_latents = dir.path / "z.safetensors";
    const auto r = ipa::sample::run_pipeline(o);
    EXPECT_EQ(r.frames, 9);
    EXPECT_EQ(r.height, 32);
    EXPECT_EQ(r.width, 48);
    const auto info = ipa::media::probe_video(o.out);
    EXPECT_EQ(info.frames, 9);
    EXPECT_NEAR(info.fps, 16.0, 1e-6);
    // The reference frame is dropped: 1 + (9-1)/4 = 3 latent frames remain.
    const auto z = ipa::io::SafetensorsFile::open(o.save_latents).tensor("latents").clone();
    EXPECT_EQ(z.sizes(), (std::vector<int64_t>{16, 3, 4, 6}));
    // Same seed, same result; another seed differs.
    o.out = dir.path / "out2.mp4";
    o.save_latents = dir.path / "z2.safetensors";
    ipa::sample::run_pipeline(o);
    EXPECT_TRUE(torch::equal(z, ipa::io::SafetensorsFile::open(o.save_latents).tensor("latents")));
    o.seed = 7;
    ipa::sample::run_pipeline(o);
    EXPECT_FALSE(torch::equal(z, ipa::io::SafetensorsFile::open(o.save_latents).tensor("latents")));
}

TEST(SamplePipeline, BadInputsAreClearErrors) {
    ipa::test::TempDir dir("ipa_pipeline");
    ipa::sample::PipelineOptions o;
    o.model = "tiny";
    o.pose_video = dir.path / "missing.mp4";
    o.out = dir.path / "o.mp4";
    o.size = std::make_pair<int64_t, int64_t>(32, 48);
    try {
        ipa::sample::run_pipeline(o);
        FAIL();
    } catch (const ipa::DataError& e) {
        EXPECT_NE(std::string(e.what()).find("missing.mp4"), std::string::npos);
    }
    o.model = "wan-t2v-1.3b";
    EXPECT_THROW(ipa::sample::run_pipeline(o), ipa::ConfigError);  // not a VACE model
}
