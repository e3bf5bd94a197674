// VACE conditioning against the official WanVace.vace_encode_frames / vace_encode_masks /
// vace_latent (tests/fixtures/vace_context, scripts/gen_vace_context_fixtures.py).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "ipa/io/safetensors.h"
#include "ipa/models/wan/vace_context.h"

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using namespace ipa::models::wan;

namespace {

/// The deterministic VAE stand-in of the fixture script (same arithmetic).
at::Tensor fake_encode(const at::Tensor& v) {
    const int64_t t = v.size(1);
    std::vector<at::Tensor> groups{v.narrow(1, 0, 1).mean(1)};
    for (int64_t k = 0; k < (t - 1) / 4; ++k) groups.push_back(v.narrow(1, 1 + 4 * k, 4).mean(1));
    const auto g = F::avg_pool2d(torch::stack(groups, 1), F::AvgPool2dFuncOptions(8));
    std::vector<at::Tensor> ch;
    for (int64_t c = 0; c < 16; ++c) ch.push_back((0.5 + 0.1 * c) * g[c % 3] + 0.01 * c);
    return torch::stack(ch);
}

TEST(VaceContext, MatchesTheOfficialAssembly) {
    const auto f = ipa::io::SafetensorsFile::open(fs::path(IPA_FIXTURES_DIR) / "vace_context/vace_context.safetensors");
    for (const auto& [name, n_ref] : {std::pair{"pose_ref", 1}, std::pair{"soft_mask", 0}, std::pair{"two_refs", 2}}) {
        const std::string p = name;
        const auto frames = f.tensor(p + ".frames");
        const auto mask = f.contains(p + ".mask") ? f.tensor(p + ".mask") : torch::ones_like(frames);
        std::vector<at::Tensor> refs;
        for (int i = 0; i < n_ref; ++i) refs.push_back(f.tensor(p + ".ref" + std::to_string(i)));
        const auto expect = f.tensor(p + ".vace_context");
        const auto got = vace_context(frames, mask, refs, fake_encode);
        ASSERT_EQ(got.sizes(), expect.sizes()) << name;
        EXPECT_LT((got - expect).abs().max().item<double>(), 1e-6) << name;
    }
}

TEST(VaceContext, MaskFramesArePickedAsTheReferenceDoes) {
    // nearest-exact in time never picks frame 0 and is not evenly spaced (docs/wan-vace.md §4.3).
    for (const auto& [T, picks] :
         {std::pair<int64_t, std::vector<int64_t>>{17, {1, 5, 8, 11, 15}},
          std::pair<int64_t, std::vector<int64_t>>{
              81, {1, 5, 9, 13, 17, 21, 25, 28, 32, 36, 40, 44, 48, 52, 55, 59, 63, 67, 71, 75, 79}}}) {
        auto mask = torch::arange(T, torch::kFloat32).view({1, T, 1, 1}).expand({1, T, 16, 16}).contiguous();
        const auto m = vace_encode_masks(mask, 1);
        ASSERT_EQ(m.sizes(), (std::vector<int64_t>{64, 1 + static_cast<int64_t>(picks.size()), 2, 2}));
        EXPECT_EQ(m.select(1, 0).abs().sum().item<float>(), 0.0f);  // the reference frame
        for (std::size_t k = 0; k < picks.size(); ++k) {
            EXPECT_EQ(m[0][1 + static_cast<int64_t>(k)][0][0].item<float>(), static_cast<float>(picks[k]))
                << T << " " << k;
        }
    }
}

TEST(VaceContext, PixelUnshuffleChannelOrderIsRowThenColumn) {
    auto mask = torch::zeros({1, 1, 16, 16});
    mask[0][0][3][5] = 1;   // block (0, 0), py 3, px 5 -> channel 29
    mask[0][0][9][12] = 1;  // block (1, 1), py 1, px 4 -> channel 12
    const auto m = vace_encode_masks(mask, 0);
    EXPECT_EQ(m.sum().item<float>(), 2.0f);
    EXPECT_EQ(m[29][0][0][0].item<float>(), 1.0f);
    EXPECT_EQ(m[12][0][1][1].item<float>(), 1.0f);
}

TEST(VaceContext, BadShapesAreRejected) {
    const auto frames = torch::zeros({3, 5, 16, 24});  // W not a multiple of 16
    EXPECT_THROW(vace_context(frames, {}, {}, fake_encode), c10::Error);
    EXPECT_THROW(vace_encode_frames(torch::zeros({3, 5, 16, 16}), torch::ones({1, 4, 16, 16}), {}, fake_encode),
                 c10::Error);
    EXPECT_THROW(vace_encode_frames(torch::zeros({3, 5, 16, 16}), {}, {torch::zeros({3, 2, 16, 16})}, fake_encode),
                 c10::Error);
}

}  // namespace
