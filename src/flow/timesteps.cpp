#include "ipa/flow/timesteps.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "ipa/core/error.h"

namespace ipa::flow {

namespace {

// Inverse of the Wan shift: σ = σ' / (s - (s - 1)·σ').
double unshift(double sigma, double s) { return sigma / (s - (s - 1.0) * sigma); }

// CDF of the unshifted law at σ ∈ [0, 1].
double base_cdf(const TimestepOptions& o, double sigma) {
    if (o.sampling != TimestepSampling::logit_normal) return sigma;
    if (sigma <= 0.0) return 0.0;
    if (sigma >= 1.0) return 1.0;
    const double z = (std::log(sigma / (1.0 - sigma)) - o.logit_mean) / o.logit_std;
    return 0.5 * std::erfc(-z / std::sqrt(2.0));
}

at::ScalarType compute_dtype(const at::Tensor& a, const at::Tensor& b) {
    return (a.scalar_type() == at::kDouble || b.scalar_type() == at::kDouble) ? at::kDouble : at::kFloat;
}

}  // namespace

TimestepSampling parse_timestep_sampling(const std::string& name) {
    if (name == "uniform") return TimestepSampling::uniform;
    if (name == "logit_normal") return TimestepSampling::logit_normal;
    if (name == "shifted") return TimestepSampling::shifted;
    throw ConfigError("unknown timestep sampling '" + name + "'; allowed: 'uniform', 'logit_normal', 'shifted'");
}

const char* to_string(TimestepSampling sampling) {
    switch (sampling) {
        case TimestepSampling::uniform:
            return "uniform";
        case TimestepSampling::logit_normal:
            return "logit_normal";
        case TimestepSampling::shifted:
            return "shifted";
    }
    return "?";
}

void TimestepOptions::check() const {
    auto fail = [](const std::string& what) { throw ConfigError("timestep options: " + what); };
    std::ostringstream v;
    if (!std::isfinite(shift) || shift <= 0.0) {
        v << "shift must be a finite number > 0, got " << shift;
        fail(v.str());
    }
    if (!std::isfinite(logit_mean) || !std::isfinite(logit_std) || logit_std <= 0.0) {
        v << "logit_mean must be finite and logit_std finite and > 0, got mean " << logit_mean << ", std " << logit_std;
        fail(v.str());
    }
    if (!(min_sigma >= 0.0 && max_sigma <= 1.0 && min_sigma <= max_sigma)) {
        v << "need 0 <= min_sigma <= max_sigma <= 1, got min_sigma " << min_sigma << ", max_sigma " << max_sigma;
        fail(v.str());
    }
    if (sampling == TimestepSampling::uniform && shift != 1.0) {
        v << "shift " << shift << " has no effect with sampling 'uniform'; use 'shifted' (or 'logit_normal') "
          << "or set shift to 1";
        fail(v.str());
    }
}

at::Tensor sample_sigmas(int64_t batch, const TimestepOptions& opts, at::Generator gen) {
    opts.check();
    TORCH_CHECK(batch >= 0, "sample_sigmas: batch must be >= 0, got ", batch);
    const double s = opts.shift;
    // The range in unshifted space, then in CDF space.
    const double lo = base_cdf(opts, unshift(opts.min_sigma, s));
    const double hi = base_cdf(opts, unshift(opts.max_sigma, s));

    at::Tensor u = at::rand({batch}, gen, at::TensorOptions().dtype(at::kDouble));
    u = u.mul(hi - lo).add_(lo);  // U(F(lo), F(hi))

    at::Tensor sigma;
    if (opts.sampling == TimestepSampling::logit_normal) {
        // F⁻¹(u) = sigmoid(mean + std·√2·erfinv(2u - 1))
        sigma =
            at::sigmoid(at::erfinv(u.mul(2.0).sub_(1.0)).mul_(opts.logit_std * std::sqrt(2.0)).add_(opts.logit_mean));
    } else {
        sigma = u;
    }
    if (s != 1.0) sigma = shift_sigma(sigma, s);
    // Rounding in the inverse CDF may step a hair outside the range.
    return sigma.clamp_(opts.min_sigma, opts.max_sigma).to(at::kFloat);
}

at::Tensor shift_sigma(const at::Tensor& sigma, double shift) {
    TORCH_CHECK(std::isfinite(shift) && shift > 0.0, "shift_sigma: shift must be finite and > 0, got ", shift);
    return sigma.mul(shift).div_(sigma.mul(shift - 1.0).add_(1.0));
}

at::Tensor sigma_to_timestep(const at::Tensor& sigma) { return sigma.mul(1000.0); }

NoisedSample add_noise(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& sigma) {
    TORCH_CHECK(x0.defined() && noise.defined() && sigma.defined(), "add_noise: undefined input");
    TORCH_CHECK(x0.dim() >= 1, "add_noise: x0 must be [B, ...], got ", x0.sizes());
    TORCH_CHECK(noise.sizes() == x0.sizes(), "add_noise: noise must have x0's shape ", x0.sizes(), ", got ",
                noise.sizes());
    TORCH_CHECK(sigma.dim() == 1 && sigma.size(0) == x0.size(0), "add_noise: sigma must be [B] = [", x0.size(0),
                "], got ", sigma.sizes());
    const auto dt = compute_dtype(x0, noise);
    std::vector<int64_t> bshape(static_cast<size_t>(x0.dim()), 1);
    bshape[0] = x0.size(0);
    const at::Tensor s = sigma.to(x0.device(), dt).view(bshape);  // [B, 1, ..., 1]
    const at::Tensor x = x0.to(dt);
    const at::Tensor e = noise.to(dt);
    NoisedSample out;
    out.x_t = (x * (1.0 - s) + e * s).to(x0.scalar_type());
    out.target = e - x;
    return out;
}

}  // namespace ipa::flow
