// Fréchet distance and sqrtm against pytorch-fid / scipy (scripts/gen_eval_fixtures.py).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "eval_test_util.h"
#include "ipa/eval/frechet.h"
#include "test_util.h"

namespace {

using ipa::test::eval_fixture;

TEST(Frechet, SqrtmMatchesScipy) {
    const auto f = ipa::io::SafetensorsFile::open(eval_fixture("frechet.safetensors"));
    const auto a = f.tensor("sqrtm.a");
    const auto x = ipa::eval::sqrtm(a);
    const auto ref = torch::complex(f.tensor("sqrtm.real"), f.tensor("sqrtm.imag"));
    const double err = (x - ref).abs().max().item<double>();
    std::printf("sqrtm 12x12 (complex spectrum): max |X - scipy| = %.3g\n", err);
    EXPECT_LT(err, 1e-12);
    EXPECT_LT((x.matmul(x) - a.to(torch::kComplexDouble)).abs().max().item<double>(), 1e-12);
    // A nilpotent matrix has no square root: scipy's result is not finite, nor is ours.
    EXPECT_EQ(std::stoi(f.metadata().at("sqrtm.nilpotent_nonfinite")), 1);
    const auto nil = ipa::eval::sqrtm(f.tensor("sqrtm.nilpotent"));
    EXPECT_FALSE(torch::isfinite(torch::view_as_real(nil)).all().item<bool>());
}

TEST(Frechet, MatchesPytorchFid) {
    const auto f = ipa::io::SafetensorsFile::open(eval_fixture("frechet.safetensors"));
    // Bound: 10x the relative floor measured in the generator (pytorch-fid on permuted
    // dimensions), at least 1e-10.
    const double tol = std::max(10 * ipa::test::meta_double(f, "floor_fid_rel"), 1e-10);
    const auto well = ipa::eval::frechet_distance(f.tensor("well.mu1"), f.tensor("well.sigma1"), f.tensor("well.mu2"),
                                                  f.tensor("well.sigma2"));
    const double ref_well = f.tensor("well.fid").item<double>();
    EXPECT_NEAR(well.distance, ref_well, tol * ref_well);
    EXPECT_EQ(well.eps_offset_used, std::stoi(f.metadata().at("well.eps_offset_used")) != 0);

    // N = 40 < D = 64: both covariances singular.
    const auto s1 = ipa::eval::feature_statistics(f.tensor("rankdef.features1"), "generated");
    const auto s2 = ipa::eval::feature_statistics(f.tensor("rankdef.features2"), "ground truth");
    EXPECT_EQ(s1.count, 40);
    const auto rd = ipa::eval::frechet_distance(s1, s2);
    const double ref_rd = f.tensor("rankdef.fid").item<double>();
    EXPECT_NEAR(rd.distance, ref_rd, tol * ref_rd);
    EXPECT_LE(rd.max_imag_diagonal, 1e-3);
    std::printf("FID 64-d: well-conditioned %.12g (rel diff %.3g), rank-deficient %.12g (rel diff %.3g); tol %.3g\n",
                well.distance, std::abs(well.distance - ref_well) / ref_well, rd.distance,
                std::abs(rd.distance - ref_rd) / ref_rd, tol);
}

TEST(Frechet, EpsOffsetForASingularProduct) {
    // Σ1 = Σ2 = diag(1, 0, ...): the product has a repeated zero eigenvalue with a nilpotent
    // part after the shift below, so its root is not finite and eps is added to both diagonals.
    auto s1 = torch::zeros({3, 3}, torch::kFloat64);
    s1.index_put_({0, 1}, 1.0);  // not a covariance, but it exercises the branch as pytorch-fid would
    const auto mu = torch::zeros({3}, torch::kFloat64);
    const auto r = ipa::eval::frechet_distance(mu, s1, mu, torch::eye(3, torch::kFloat64));
    EXPECT_TRUE(r.eps_offset_used);
    EXPECT_TRUE(std::isfinite(r.distance));
}

TEST(Frechet, Errors) {
    EXPECT_CONTAINS(ipa::test::error_of<ipa::DataError>([] {
                        ipa::eval::feature_statistics(torch::ones({1, 8}), "generated videos");
                    }),
                    "'generated videos' has 1 sample");
    const auto mu = torch::zeros({3}, torch::kFloat64);
    EXPECT_CONTAINS(ipa::test::error_of<ipa::DataError>(
                        [&] { ipa::eval::frechet_distance(mu, torch::eye(3), torch::zeros({4}), torch::eye(4)); }),
                    "different lengths");
}

}  // namespace
