#pragma once

/// The Fréchet distance between two Gaussians fitted to feature sets, as pytorch-fid
/// (mseitzer/pytorch-fid, fid_score.calculate_frechet_distance) computes FID:
///   d² = |μ1 − μ2|² + tr(Σ1) + tr(Σ2) − 2·tr(√(Σ1Σ2)),
/// with the matrix square root of scipy.linalg.sqrtm (Schur method), the retry with eps on
/// the diagonals when that root is not finite (a singular product), and the check that the
/// root's diagonal has no imaginary part above 1e-3. Everything runs in float64.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace ipa::eval {

/// Mean and covariance (np.cov, rowvar=False: divided by N − 1) of features [N, D], in float64.
struct GaussianStats {
    at::Tensor mu;     ///< [D] float64
    at::Tensor sigma;  ///< [D, D] float64
    int64_t count = 0;
};

/// Statistics of a feature set [N, D]. Throws ipa::DataError naming `set_name` when N < 2
/// (no covariance) or the features are not finite.
GaussianStats feature_statistics(const at::Tensor& features, const std::string& set_name);

/// Principal square root of a square matrix (any real or complex dtype; computed in
/// complex128): complex Schur form A = Z T Zᴴ (LAPACK zgees), then the upper-triangular
/// root R of T column by column (Björck–Hammarling; R_ij = (T_ij − Σ R_ik R_kj)/(R_ii + R_jj)),
/// X = Z R Zᴴ. Where the root does not exist (a denominator R_ii + R_jj of 0) entries become
/// inf/NaN by IEEE division, as with scipy ≥ 1.16 (older scipy filled the whole result with
/// NaN); pytorch-fid only asks whether the root is finite. Returns complex128 [n, n].
at::Tensor sqrtm(const at::Tensor& a);

struct FrechetResult {
    double distance = 0;
    bool eps_offset_used = false;  ///< the product was singular: eps was added to both diagonals
    double max_imag_diagonal = 0;  ///< largest |Im| on the root's diagonal (must be ≤ 1e-3)
};

/// Fréchet distance of two Gaussians (float64). Throws ipa::DataError on mismatched shapes
/// and, as pytorch-fid's ValueError, when the root keeps an imaginary component on its diagonal.
FrechetResult frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                               const at::Tensor& sigma2, double eps = 1e-6);

inline FrechetResult frechet_distance(const GaussianStats& a, const GaussianStats& b, double eps = 1e-6) {
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, eps);
}

}  // namespace ipa::eval
