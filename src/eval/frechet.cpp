#include "ipa/eval/frechet.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <complex>
#include <vector>

#include "ipa/core/error.h"

extern "C" {
// LAPACK (column-major): complex Schur factorisation A = Z T Zᴴ.
void zgees_(const char* jobvs, const char* sort, int (*select)(const std::complex<double>*), const int* n,
            std::complex<double>* a, const int* lda, int* sdim, std::complex<double>* w, std::complex<double>* vs,
            const int* ldvs, std::complex<double>* work, const int* lwork, double* rwork, int* bwork, int* info);
}

namespace ipa::eval {
namespace {

using cd = std::complex<double>;

}  // namespace

GaussianStats feature_statistics(const at::Tensor& features, const std::string& set_name) {
    if (features.dim() != 2)
        throw DataError("FID: features of '" + set_name + "' must be [N, D], got " + c10::str(features.sizes()));
    if (features.size(0) < 2)
        throw DataError(fmt::format(
            "FID: '{}' has {} sample(s); the covariance needs at least 2 (FID is meaningful with thousands)", set_name,
            features.size(0)));
    const auto x = features.to(torch::kCPU, torch::kFloat64);
    if (!torch::isfinite(x).all().item<bool>())
        throw DataError("FID: features of '" + set_name + "' are not finite (NaN/Inf from the network?)");
    GaussianStats s;
    s.count = x.size(0);
    s.mu = x.mean(0);
    const auto c = x - s.mu;
    s.sigma = c.t().matmul(c) / double(s.count - 1);
    return s;
}

at::Tensor sqrtm(const at::Tensor& a) {
    if (a.dim() != 2 || a.size(0) != a.size(1))
        throw Error("sqrtm: expected a square matrix, got " + c10::str(a.sizes()));
    const int n = static_cast<int>(a.size(0));
    // Column-major copy of A: the row-major buffer of Aᵀ.
    auto t = a.to(torch::kCPU, torch::kComplexDouble).t().contiguous();
    auto z = torch::empty({n, n}, torch::kComplexDouble);
    std::vector<cd> w(static_cast<std::size_t>(n));
    std::vector<double> rwork(static_cast<std::size_t>(n));
    int sdim = 0, info = 0, lwork = -1;
    cd query;
    auto* tp = reinterpret_cast<cd*>(t.data_ptr());
    auto* zp = reinterpret_cast<cd*>(z.data_ptr());
    zgees_("V", "N", nullptr, &n, tp, &n, &sdim, w.data(), zp, &n, &query, &lwork, rwork.data(), nullptr, &info);
    lwork = std::max(1, static_cast<int>(query.real()));
    std::vector<cd> work(static_cast<std::size_t>(lwork));
    zgees_("V", "N", nullptr, &n, tp, &n, &sdim, w.data(), zp, &n, work.data(), &lwork, rwork.data(), nullptr, &info);
    if (info != 0) throw Error(fmt::format("sqrtm: the Schur factorisation failed (LAPACK zgees info {})", info));
    // T(i, j) = tp[i + j n] (column-major). R column by column; col j of R kept contiguous.
    std::vector<cd> r(static_cast<std::size_t>(n) * n, cd(0, 0));  // column-major
    auto T = [&](int i, int j) { return tp[static_cast<std::size_t>(i) + static_cast<std::size_t>(j) * n]; };
    auto R = [&](int i, int j) -> cd& { return r[static_cast<std::size_t>(i) + static_cast<std::size_t>(j) * n]; };
    for (int j = 0; j < n; ++j) R(j, j) = std::sqrt(T(j, j));
    // Row-major copy of R's rows for the inner sum Σ_k R(i,k) R(k,j), k = i+1 .. j-1.
    std::vector<cd> rows(static_cast<std::size_t>(n) * n, cd(0, 0));
    for (int j = 0; j < n; ++j) {
        rows[static_cast<std::size_t>(j) * n + j] = R(j, j);
        for (int i = j - 1; i >= 0; --i) {
            cd s(0, 0);
            const cd* ri = rows.data() + static_cast<std::size_t>(i) * n;
            const cd* cj = r.data() + static_cast<std::size_t>(j) * n;
            for (int k = i + 1; k < j; ++k) s += ri[k] * cj[k];
            const cd num = T(i, j) - s;
            const cd v = num / (R(i, i) + R(j, j));  // IEEE: x/0 = inf, 0/0 = NaN, as scipy ≥ 1.16
            R(i, j) = v;
            rows[static_cast<std::size_t>(i) * n + j] = v;
        }
    }
    // r is column-major R: as a row-major tensor it is Rᵀ; z is column-major Z (row-major Zᵀ).
    const auto rt = torch::from_blob(r.data(), {n, n}, torch::kComplexDouble).t();
    const auto zz = z.t();
    return zz.matmul(rt).matmul(zz.conj().t()).contiguous();
}

FrechetResult frechet_distance(const at::Tensor& mu1_in, const at::Tensor& sigma1_in, const at::Tensor& mu2_in,
                               const at::Tensor& sigma2_in, double eps) {
    const auto mu1 = mu1_in.to(torch::kCPU, torch::kFloat64).reshape({-1});
    const auto mu2 = mu2_in.to(torch::kCPU, torch::kFloat64).reshape({-1});
    const auto s1 = sigma1_in.to(torch::kCPU, torch::kFloat64);
    const auto s2 = sigma2_in.to(torch::kCPU, torch::kFloat64);
    if (mu1.size(0) != mu2.size(0))
        throw DataError(fmt::format("FID: mean vectors have different lengths ({} vs {})", mu1.size(0), mu2.size(0)));
    const int64_t d = mu1.size(0);
    if (s1.dim() != 2 || s2.dim() != 2 || s1.size(0) != d || s1.size(1) != d || s2.sizes() != s1.sizes())
        throw DataError("FID: covariances " + c10::str(s1.sizes()) + " and " + c10::str(s2.sizes()) +
                        " do not fit means of length " + std::to_string(d));
    FrechetResult res;
    auto covmean = sqrtm(s1.matmul(s2));
    if (!torch::isfinite(torch::view_as_real(covmean)).all().item<bool>()) {
        res.eps_offset_used = true;
        const auto off = torch::eye(d, torch::kFloat64) * eps;
        covmean = sqrtm((s1 + off).matmul(s2 + off));
    }
    const auto diag_imag = torch::imag(covmean.diagonal());
    res.max_imag_diagonal = diag_imag.abs().max().item<double>();
    if (!(res.max_imag_diagonal <= 1e-3)) {
        throw DataError(
            fmt::format("FID: imaginary component {} in the matrix square root (pytorch-fid refuses this too)",
                        torch::imag(covmean).abs().max().item<double>()));
    }
    const auto diff = mu1 - mu2;
    const double tr_covmean = torch::real(covmean).diagonal().sum().item<double>();
    res.distance =
        diff.dot(diff).item<double>() + s1.trace().item<double>() + s2.trace().item<double>() - 2 * tr_covmean;
    return res;
}

}  // namespace ipa::eval
