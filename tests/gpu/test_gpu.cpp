// The CUDA paths: DiT/VACE parity on the GPU against the upstream fixtures (fp32 with TF32
// off, and bf16), LoRA + Flow-IPA + one trainer step on CUDA, and a one-rank NCCL
// all-reduce. Every test skips (GTEST_SKIP, reported by ctest as skipped) without CUDA.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include "ipa/core/run_context.h"
#include "ipa/core/torch_compat.h"
#include "ipa/dist/process_group.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/lora/lora.h"
#include "ipa/loss/flow_losses.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/loader.h"
#include "ipa/models/wan/model.h"
#include "ipa/train/config.h"
#include "ipa/train/trainer.h"
#include "test_util.h"
#include "wan_inputs.h"

namespace fs = std::filesystem;
using namespace ipa::models::wan;

namespace {

const fs::path kWan = fs::path(IPA_FIXTURES_DIR) / "wan";
const fs::path kSource = IPA_SOURCE_DIR;

#define IPA_REQUIRE_CUDA()                                                                       \
    do {                                                                                         \
        if (!ipa::compat::cuda_available()) GTEST_SKIP() << "no CUDA device (CPU-only machine)"; \
    } while (0)

struct Errors {
    double floor, ours;
};

/// Runs fixture `name` on CUDA in `dtype`; floor = upstream fp32 vs fp64 (CPU), ours = CUDA vs fp64.
Errors run_fixture(const std::string& name, c10::ScalarType dtype) {
    const c10::Device cuda(c10::kCUDA, 0);
    const auto cfg = WanConfig::load(kWan / (name + ".yaml"));
    auto model = make_wan_model(cfg);
    load_wan_weights(*model, ipa::io::Checkpoint::open(kWan / (name + ".weights.safetensors")));
    model->to(cuda);
    model->set_dtype(dtype);
    const auto io = ipa::io::SafetensorsFile::open(kWan / (name + ".io.safetensors"));
    torch::NoGradGuard g;
    const auto out = model->forward(ipa::test::wan_inputs_from(io, cuda)).to(torch::kCPU).to(torch::kDouble);
    const auto ref64 = io.tensor("out_f64");
    return {(io.tensor("out").to(torch::kDouble) - ref64).abs().max().item<double>(),
            (out - ref64).abs().max().item<double>()};
}

class GpuWanParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuWanParity, Fp32WithoutTf32MatchesUpstreamWithinTenTimesTheFloat64Floor) {
    IPA_REQUIRE_CUDA();
    ipa::compat::set_cuda_tf32(false);
    const auto e = run_fixture(GetParam(), torch::kFloat);
    std::printf("[gpu parity %s fp32] floor %.2e  ours(cuda) vs f64 %.2e\n", GetParam().c_str(), e.floor, e.ours);
    EXPECT_GT(e.floor, 0.0);
    // The CUDA kernels sum in other orders than the CPU ones: the same 10x-floor bound as on CPU.
    EXPECT_LT(e.ours, 10.0 * e.floor);
}

TEST_P(GpuWanParity, Bf16StaysWithinTheBf16Envelope) {
    IPA_REQUIRE_CUDA();
    const auto e = run_fixture(GetParam(), torch::kBFloat16);
    // bf16 keeps 8 significant bits (unit roundoff 2^-8 = 3.9e-3); through a few blocks of
    // bf16 GEMMs the output drifts by a few roundoffs of its scale. The bound is 8 units of
    // roundoff of the output scale, far below what a wrong op (e.g. a missing modulation) moves.
    const auto io = ipa::io::SafetensorsFile::open(kWan / (GetParam() + ".io.safetensors"));
    const double scale = io.tensor("out_f64").abs().max().item<double>();
    std::printf("[gpu parity %s bf16] max|out| %.3f  ours(cuda bf16) vs f64 %.2e\n", GetParam().c_str(), scale, e.ours);
    EXPECT_LT(e.ours, 8.0 * std::ldexp(scale, -8));
}

std::vector<std::string> fixture_cases() {
    std::vector<std::string> out;
    for (const auto& n : {"t2v_b2", "t2v_seqpad_nonorm", "vace_b2", "vace_seqpad"}) {
        if (fs::exists(kWan / (std::string(n) + ".io.safetensors"))) out.emplace_back(n);
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Upstream, GpuWanParity, ::testing::ValuesIn(fixture_cases()),
                         [](const auto& info) { return info.param; });

TEST(Gpu, LoraFlowIpaStepTrainsOnCuda) {
    IPA_REQUIRE_CUDA();
    ipa::test::TempDir dir("ipa_gpu");
    for (const auto* dtype : {"fp32", "bf16"}) {
        const auto run = dir.path / (std::string("run-") + dtype);
        const auto cfg = ipa::train::TrainConfig::load(
            kSource / "configs/train/tiny-cpu.yaml",
            {"model.config=" + (kSource / "configs/models/tiny.yaml").string(), "model.device=cuda",
             std::string("model.dtype=") + dtype, "data.cache_dir=" + (dir.path / "cache").string(),
             "checkpoint.dir=" + run.string(), "train.steps=3", "train.grad_checkpointing=true"});
        ipa::RunContext ctx;
        ctx.device = c10::Device(c10::kCUDA, 0);
        ipa::train::TrainHooks hooks;
        hooks.progress = false;
        const auto r = ipa::train::run_training(cfg, ctx, hooks);
        ASSERT_EQ(r.final_step, 3) << dtype;
        ASSERT_EQ(r.history.size(), 3u) << dtype;
        for (const auto& m : r.history) {
            EXPECT_TRUE(std::isfinite(m.loss)) << dtype;
            EXPECT_GT(m.grad_norm, 0.0) << dtype << ": no gradient reached the adapter";
        }
        const auto adapter = ipa::io::SafetensorsFile::open(r.last_checkpoint / "adapter.safetensors");
        double max_b = 0;
        for (const auto& info : adapter.tensors()) {
            if (info.name.find("lora_B") != std::string::npos) {
                max_b = std::max(max_b, adapter.tensor(info.name).abs().max().item<double>());
            }
        }
        EXPECT_GT(max_b, 0.0) << dtype << ": the adapter did not move";
        EXPECT_GT(ipa::compat::peak_memory_bytes(ctx.device), 0) << "CUDA peak memory is measured";
    }
}

TEST(Gpu, OneRankNcclAllReduce) {
    IPA_REQUIRE_CUDA();
    ipa::RunContext ctx;
    ctx.device = c10::Device(c10::kCUDA, 0);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", std::to_string(29500 + (getpid() % 2000)).c_str(), 1);
    ipa::dist::DistOptions o;
    o.backend = "nccl";
    o.timeout_s = 60;
    o.group_for_one = true;
    std::unique_ptr<ipa::dist::ProcessGroup> pg;
    try {
        pg = ipa::dist::ProcessGroup::create(ctx, o);
    } catch (const ipa::DistError& e) {
        if (std::string(e.what()).find("has no NCCL") != std::string::npos) {
            GTEST_SKIP() << "this build has no NCCL (configure with -DIPA_WITH_NCCL=ON)";
        }
        throw;
    }
    ASSERT_EQ(pg->backend(), "nccl");
    auto a = torch::arange(1000, torch::TensorOptions().dtype(torch::kFloat).device(ctx.device));
    auto b = torch::full({3, 7}, 2.5, torch::TensorOptions().dtype(torch::kBFloat16).device(ctx.device));
    const auto a0 = a.clone(), b0 = b.clone();
    pg->all_reduce_mean({a, b}, "gpu self-test");
    EXPECT_TRUE(torch::equal(a, a0));  // the mean over one rank is the tensor itself
    EXPECT_TRUE(torch::equal(b, b0));
    EXPECT_EQ(pg->all_reduce_sum({1.5, -2.0}, "gpu self-test sum"), (std::vector<double>{1.5, -2.0}));
    pg->barrier("gpu self-test barrier");
}

TEST(Gpu, NcclOnCpuIsAConfigError) {
    // Runs everywhere: asking for NCCL on a CPU run is refused before any rendezvous.
    ipa::RunContext ctx;
    ctx.world_size = 2;
    ipa::dist::DistOptions o;
    o.backend = "nccl";
    try {
        ipa::dist::ProcessGroup::create(ctx, o);
        FAIL() << "expected a ConfigError";
    } catch (const ipa::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("needs CUDA devices"), std::string::npos) << e.what();
    }
}

}  // namespace
