// Parity of the C++ DiT with the official Wan2.1 PyTorch modules (fixtures written by
// scripts/gen_wan_fixtures.py from upstream model.py / vace_model.py, fp32 and fp64 runs).
//
// Tolerance: the fixture carries the upstream fp32 output and the fp64 output of the same
// upstream code. floor = max|out_fp32 − out_fp64| is the float32 rounding noise of the
// reference itself (measured 1.3e-6–1.8e-6 on these tiny DiTs, see tests/fixtures/wan/README.md).
// Our fp32 output must be within 10 × floor of the fp64 output (≈ 2e-5): tight enough that
// GELU erf-vs-tanh (3e-4), RMSNorm eps 1e-5 (1.2e-4) or a wrong context_scale fail.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/loader.h"
#include "ipa/models/wan/model.h"
#include "wan_inputs.h"

namespace fs = std::filesystem;
using namespace ipa::models::wan;

namespace {

const fs::path kWanDir = fs::path(IPA_FIXTURES_DIR) / "wan";

struct Case {
    std::string name;
};

std::vector<std::string> cases(const std::string& with_file = ".io.safetensors") {
    std::vector<std::string> out;
    if (!fs::exists(kWanDir)) return out;
    for (const auto& e : fs::directory_iterator(kWanDir)) {
        const auto n = e.path().filename().string();
        const std::string& suffix = with_file;
        if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
            out.push_back(n.substr(0, n.size() - suffix.size()));
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

using ipa::test::wan_inputs_from;

class WanParity : public ::testing::TestWithParam<std::string> {};

TEST_P(WanParity, Fp32ForwardMatchesUpstreamWithinTenTimesTheFloat64Floor) {
    const auto name = GetParam();
    const auto cfg = WanConfig::load(kWanDir / (name + ".yaml"));
    auto model = make_wan_model(cfg);
    load_wan_weights(*model, ipa::io::Checkpoint::open(kWanDir / (name + ".weights.safetensors")));
    const auto io = ipa::io::SafetensorsFile::open(kWanDir / (name + ".io.safetensors"));
    torch::NoGradGuard g;
    const auto out = model->forward(wan_inputs_from(io));
    const auto ref32 = io.tensor("out");
    const auto ref64 = io.tensor("out_f64");
    ASSERT_EQ(out.sizes(), ref32.sizes());
    const double floor = (ref32.to(torch::kDouble) - ref64).abs().max().item<double>();
    const double err64 = (out.to(torch::kDouble) - ref64).abs().max().item<double>();
    const double err32 = (out - ref32).abs().max().item<double>();
    const double scale = ref64.abs().max().item<double>();
    RecordProperty("floor", std::to_string(floor));
    RecordProperty("err_vs_f64", std::to_string(err64));
    std::printf("[parity %s] max|out|=%.3f floor(upstream fp32 vs fp64)=%.2e  ours vs fp64=%.2e  ours vs fp32=%.2e\n",
                name.c_str(), scale, floor, err64, err32);
    EXPECT_GT(floor, 0.0);
    EXPECT_LT(err64, 10.0 * std::max(floor, 1e-7))
        << "C++ fp32 forward differs from upstream beyond 10x the fp32 floor";
}

TEST_P(WanParity, Fp64ForwardMatchesUpstreamFloat64) {
    // An fp64 model computes every "fp32 island" in float64 too, so it reproduces upstream's
    // float64 run to float64 accuracy: far below the float32 floor. (This path is the
    // reference the trainer's float32 floors are measured against, see test_dist.)
    const auto name = GetParam();
    const auto cfg = WanConfig::load(kWanDir / (name + ".yaml"));
    auto model = make_wan_model(cfg);
    load_wan_weights(*model, ipa::io::Checkpoint::open(kWanDir / (name + ".weights.safetensors")));
    model->set_dtype(torch::kDouble);
    const auto io = ipa::io::SafetensorsFile::open(kWanDir / (name + ".io.safetensors"));
    torch::NoGradGuard g;
    const auto out = model->forward(wan_inputs_from(io));
    ASSERT_EQ(out.scalar_type(), torch::kDouble);
    const auto ref64 = io.tensor("out_f64");
    const double floor32 = (io.tensor("out").to(torch::kDouble) - ref64).abs().max().item<double>();
    const double err = (out - ref64).abs().max().item<double>();
    std::printf("[parity %s fp64] ours vs upstream fp64 %.2e (fp32 floor %.2e)\n", name.c_str(), err, floor32);
    EXPECT_LT(err, 1e-3 * floor32) << "the fp64 path is not float64 throughout";
}

class WanGradParity : public ::testing::TestWithParam<std::string> {};

TEST_P(WanGradParity, GradientsMatchUpstream) {
    const auto name = GetParam();
    const auto grads_file = kWanDir / (name + ".grads.safetensors");
    const auto cfg = WanConfig::load(kWanDir / (name + ".yaml"));
    auto model = make_wan_model(cfg);
    load_wan_weights(*model, ipa::io::Checkpoint::open(kWanDir / (name + ".weights.safetensors")));
    const auto io = ipa::io::SafetensorsFile::open(kWanDir / (name + ".io.safetensors"));
    const auto grads = ipa::io::SafetensorsFile::open(grads_file);
    for (bool ckpt : {false, true}) {
        model->zero_grad();
        model->set_gradient_checkpointing(ckpt);
        (model->forward(wan_inputs_from(io)) * grads.tensor("grad_out")).sum().backward();
        int checked = 0;
        for (auto& p : model->named_parameters()) {
            const auto ref = grads.tensor("grad." + p.key());
            const auto& g = p.value().grad();
            ASSERT_TRUE(g.defined()) << p.key();
            const double scale = ref.abs().max().item<double>();
            const double err = (g - ref).abs().max().item<double>();
            // fp32 gradients: relative to the tensor's largest entry.
            EXPECT_LT(err, 1e-4 * std::max(scale, 1e-3)) << p.key() << " (checkpointing " << ckpt << ")";
            ++checked;
        }
        EXPECT_EQ(checked, static_cast<int>(grads.tensors().size()) - 1);
    }
}

INSTANTIATE_TEST_SUITE_P(Upstream, WanParity, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(WanParity);
INSTANTIATE_TEST_SUITE_P(Upstream, WanGradParity, ::testing::ValuesIn(cases(".grads.safetensors")),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(WanGradParity);

}  // namespace
