// pytorch-fid's InceptionV3([3]) features from a seeded state dict saved by torch.save
// (scripts/gen_eval_fixtures.py), against the float64 run of pytorch-fid's own module.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "eval_test_util.h"
#include "ipa/eval/inception.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/pth.h"
#include "test_util.h"

namespace {

using ipa::test::eval_fixture;

TEST(Inception, FeaturesMatchPytorchFid) {
    torch::NoGradGuard ng;
    ipa::eval::FidInceptionV3 net;
    ipa::eval::load_inception(net, eval_fixture("inception_seeded.pth"));
    const auto f = ipa::io::SafetensorsFile::open(eval_fixture("inception_features.safetensors"));
    // Bound: 10x the float32-vs-float64 floor of pytorch-fid's own module (relative to the
    // largest feature), measured by the generator.
    const double tol = 10 * ipa::test::meta_double(f, "floor_f32_rel");
    for (const std::string name : {"batch", "odd"}) {
        const auto x = f.tensor(name + ".images").to(torch::kFloat32).div(255);  // ToTensor()
        const auto ref = f.tensor(name + ".features");
        const auto got = net->forward(x).to(torch::kFloat64);
        ASSERT_EQ(got.sizes(), ref.sizes());
        const double rel = ((got - ref).abs().max() / ref.abs().max()).item<double>();
        std::printf("Inception %s: max |f32 - pytorch-fid f64| / max |f| = %.3g (floor %.3g, bound %.3g)\n",
                    name.c_str(), rel, ipa::test::meta_double(f, "floor_f32_rel"), tol);
        EXPECT_LT(rel, tol) << name;
        EXPECT_GT(ref.abs().max().item<double>(), 0.1);  // a real signal, not all zeros
    }
    // The float64 module reproduces the reference to the float64 floor.
    net->to(torch::kFloat64);
    const auto x = f.tensor("batch.images").to(torch::kFloat64).div(255);
    const auto ref = f.tensor("batch.features");
    EXPECT_LT(((net->forward(x) - ref).abs().max() / ref.abs().max()).item<double>(), 1e-12);
}

TEST(Inception, StrictKeysNameTheProblem) {
    const auto pth = ipa::io::PthFile::open(eval_fixture("inception_seeded.pth"));
    ipa::io::NamedTensors t;
    for (const auto& [k, v] : pth.tensors()) {
        if (k == "Mixed_6c.branch7x7_2.conv.weight") continue;             // missing
        if (k.find("num_batches_tracked") != std::string::npos) continue;  // allowed to be absent
        t.emplace_back(k, v);
    }
    t.emplace_back("AuxLogits.fc.weight", torch::zeros({2}));  // unexpected
    ipa::eval::FidInceptionV3 net;
    const auto msg = ipa::test::error_of<ipa::CheckpointError>(
        [&] { ipa::eval::load_inception(net, ipa::io::Checkpoint::from_tensors(t, "bad.pth")); });
    EXPECT_CONTAINS(msg, "Mixed_6c.branch7x7_2.conv.weight");
    EXPECT_CONTAINS(msg, "AuxLogits.fc.weight");
    EXPECT_CONTAINS(msg, "bad.pth");
}

}  // namespace
