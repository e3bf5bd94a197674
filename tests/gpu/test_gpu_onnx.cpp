// DWPose's two networks on CUDA (`ipa-curate pose --device cuda`): the synthetic YOLOX-L- and
// DWPose-L-structured fixture models (tests/fixtures/dwpose) through ipa's ONNX interpreter
// on the GPU (fp32, TF32 off) against the same graph in float64 on the CPU, within 10x the
// CPU float32 run's own error. Skipped, and reported as skipped, without CUDA.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "ipa/core/torch_compat.h"
#include "ipa/pose/onnx.h"

namespace {

namespace fs = std::filesystem;
using ipa::pose::onnx::Model;

const fs::path kDir = fs::path(IPA_FIXTURES_DIR) / "dwpose";

/// max |a - b| over every output.
double max_diff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        d = std::max(
            d, (a[i].to(at::kCPU).to(at::kDouble) - b[i].to(at::kCPU).to(at::kDouble)).abs().max().item<double>());
    return d;
}

class GpuOnnx : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuOnnx, CudaFp32MatchesFloat64WithinTenTimesTheCpuFp32Error) {
    if (!ipa::compat::cuda_available()) GTEST_SKIP() << "no CUDA device (CPU-only machine)";
    ipa::compat::set_cuda_tf32(false);
    const Model cpu = Model::load(kDir / GetParam());
    const auto& shape = cpu.inputs().at(0).shape;
    torch::manual_seed(7);
    // An image-like input in DWPose's normalised range.
    const at::Tensor x = torch::rand({1, 3, shape[2], shape[3]}) * 4.0 - 2.0;
    const auto ref = cpu.to(at::kDouble).run({x.to(at::kDouble)});
    const auto out32 = cpu.run({x});
    const Model gpu = cpu.to(c10::Device(c10::kCUDA, 0));
    EXPECT_TRUE(gpu.device().is_cuda());
    const auto outg = gpu.run({x});  // a CPU input is moved to the model's device
    ASSERT_EQ(outg.size(), ref.size());
    for (const auto& t : outg) EXPECT_TRUE(t.is_cuda());
    const double floor = max_diff(out32, ref), ours = max_diff(outg, ref);
    std::cout << "[gpu onnx] " << GetParam() << ": CUDA fp32 vs float64 " << ours << ", CPU fp32 vs float64 " << floor
              << "\n";
    EXPECT_LE(ours, 10 * floor + 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Dwpose, GpuOnnx, ::testing::Values("det.onnx", "pose.onnx"));

}  // namespace
