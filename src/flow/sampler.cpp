#include "ipa/flow/sampler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "ipa/core/error.h"

namespace ipa::flow {
namespace {

constexpr double kTrainTimesteps = 1000.0;

/// numpy.linspace(start, stop, num) in float64: start + i·step, the last value exactly `stop`.
std::vector<double> linspace(double start, double stop, int64_t num) {
    std::vector<double> v(static_cast<std::size_t>(num));
    const double step = (stop - start) / static_cast<double>(num - 1);
    for (int64_t i = 0; i < num; ++i) v[i] = start + static_cast<double>(i) * step;
    if (num > 1) v.back() = stop;
    return v;
}

/// The float32 scalars of the reference solvers are 0-dim float32 tensors; computing them
/// with the same LibTorch kernels keeps every rounding identical.
struct Scalars {
    at::Tensor sigma, alpha, lambda;
};

class ScheduledSampler : public FlowSampler {
protected:
    ScheduledSampler(const std::vector<double>& sigmas_f64, bool integer_timesteps) {
        for (const double s : sigmas_f64) {
            timesteps_.push_back(integer_timesteps ? std::trunc(s * kTrainTimesteps) : s * kTrainTimesteps);
            sigmas_.push_back(static_cast<float>(s));
        }
        sigmas_.push_back(0.0f);
        sigma_t_ = torch::tensor(sigmas_, torch::kFloat32);
        if (integer_timesteps && timesteps_.size() > 1 && timesteps_[0] == timesteps_[1]) {
            spdlog::warn(
                "sampler: the first two timesteps are both {}; the reference code would start at its second "
                "step (and overrun its schedule) — this run starts at the first",
                timesteps_[0]);
        }
    }
    /// σ_k, α_k = 1 − σ_k, λ_k = ln α_k − ln σ_k (λ = +inf at σ = 0), float32.
    Scalars at_(int64_t k) const {
        Scalars s;
        s.sigma = sigma_t_.select(0, k);
        s.alpha = 1.0 - s.sigma;
        s.lambda = torch::log(s.alpha) - torch::log(s.sigma);
        return s;
    }
    void check_(const at::Tensor& v, const at::Tensor& x) const {
        TORCH_CHECK(index_ < num_steps(), "sampler: step ", index_ + 1, " of a ", num_steps(), "-step schedule");
        TORCH_CHECK(v.sizes() == x.sizes(), "sampler: velocity ", v.sizes(), " and sample ", x.sizes(), " differ");
    }
    /// Data prediction m = x − σ_i·v (the reference's convert_model_output for flow_prediction).
    at::Tensor data_prediction_(const at::Tensor& v, const at::Tensor& x) const { return x - at_(index_).sigma * v; }
    at::Tensor sigma_t_;  ///< float32 [N + 1]
};

// ref: wan/utils/fm_solvers_unipc.py FlowUniPCMultistepScheduler (predict_x0, bh2, order 2)
class UniPCSampler final : public ScheduledSampler {
public:
    explicit UniPCSampler(const SamplerOptions& o)
        : ScheduledSampler(sampler_sigmas(SamplerKind::unipc, o.steps, o.shift), /*integer_timesteps=*/true) {}

    at::Tensor step(const at::Tensor& velocity, const at::Tensor& sample) override {
        check_(velocity, sample);
        const int64_t i = index_;
        const auto x = sample.to(torch::kFloat32);
        const auto m = data_prediction_(velocity.to(torch::kFloat32), x);  // from the uncorrected sample
        at::Tensor corrected = x;
        if (i > 0 && last_sample_.defined()) corrected = corrector_(m, this_order_);
        m_prev2_ = m_prev1_;  // history of data predictions: [m_{i-1}, m_i]
        m_prev1_ = m;
        int64_t order = std::min<int64_t>(2, num_steps() - i);  // lower_order_final
        order = std::min(order, lower_order_nums_ + 1);         // warm-up
        this_order_ = order;
        last_sample_ = corrected;
        auto next = predictor_(corrected, order);
        lower_order_nums_ = std::min<int64_t>(lower_order_nums_ + 1, 2);
        ++index_;
        return next;
    }

private:
    /// UniP-p: x_{i+1} from the corrected x̃_i and the history m_i (, m_{i-1}).
    at::Tensor predictor_(const at::Tensor& x, int64_t order) const {
        const int64_t i = index_;
        const auto t = at_(i + 1), s0 = at_(i);
        const auto h = t.lambda - s0.lambda;
        const auto& m0 = m_prev1_;
        const auto hh = -h;
        const auto h_phi_1 = torch::expm1(hh);
        const auto B_h = torch::expm1(hh);  // bh2
        auto x_t = (t.sigma / s0.sigma) * x - (t.alpha * h_phi_1) * m0;
        if (order == 2) {
            const auto si = at_(i - 1);
            const auto rk = (si.lambda - s0.lambda) / h;
            const auto D1 = (m_prev2_ - m0) / rk;
            const auto pred_res = 0.5 * D1;  // ρ_p = 0.5 for order 2
            x_t = x_t - (t.alpha * B_h) * pred_res;
        }
        return x_t;
    }

    /// UniC-p: corrects the previous step's output with the new data prediction m_t.
    at::Tensor corrector_(const at::Tensor& m_t, int64_t order) const {
        const int64_t i = index_;
        const auto t = at_(i), s0 = at_(i - 1);
        const auto h = t.lambda - s0.lambda;
        const auto& m0 = m_prev1_;  // m_{i-1}
        const auto& x = last_sample_;
        at::Tensor D1, rk;
        if (order == 2) {
            const auto si = at_(i - 2);
            rk = (si.lambda - s0.lambda) / h;
            D1 = (m_prev2_ - m0) / rk;
        }
        const auto hh = -h;
        const auto h_phi_1 = torch::expm1(hh);
        auto h_phi_k = h_phi_1 / hh - 1.0;
        const auto B_h = torch::expm1(hh);
        at::Tensor rhos;
        if (order == 1) {
            rhos = torch::full({1}, 0.5, torch::kFloat32);
        } else {
            // R = [[1, 1], [r, 1]], b_k = h_phi_k · k! / B_h  (k = 1, 2)
            const auto rks = torch::stack({rk, torch::ones({}, torch::kFloat32)});
            std::vector<at::Tensor> R, b;
            double factorial = 1.0;
            for (int64_t k = 1; k <= order; ++k) {
                R.push_back(torch::pow(rks, static_cast<double>(k - 1)));
                b.push_back(h_phi_k * factorial / B_h);
                factorial *= static_cast<double>(k + 1);
                h_phi_k = h_phi_k / hh - 1.0 / factorial;
            }
            rhos = at::linalg_solve(torch::stack(R), torch::stack(b));
        }
        const auto x_t_ = (t.sigma / s0.sigma) * x - (t.alpha * h_phi_1) * m0;
        const auto D1_t = m_t - m0;
        at::Tensor inner = rhos[-1] * D1_t;
        if (order == 2) inner = rhos[0] * D1 + inner;  // corr_res + ρ_last·D1_t
        return x_t_ - (t.alpha * B_h) * inner;
    }

    at::Tensor m_prev1_, m_prev2_, last_sample_;
    int64_t lower_order_nums_ = 0;
    int64_t this_order_ = 1;
};

// ref: wan/utils/fm_solvers.py FlowDPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint)
class DPMPPSampler final : public ScheduledSampler {
public:
    explicit DPMPPSampler(const SamplerOptions& o)
        : ScheduledSampler(sampler_sigmas(SamplerKind::dpmpp, o.steps, o.shift), /*integer_timesteps=*/true) {}

    at::Tensor step(const at::Tensor& velocity, const at::Tensor& sample) override {
        check_(velocity, sample);
        const int64_t i = index_, n = num_steps();
        const auto x = sample.to(torch::kFloat32);
        const auto m = data_prediction_(velocity.to(torch::kFloat32), x);
        m_prev2_ = m_prev1_;
        m_prev1_ = m;
        const bool final_first_order = i == n - 1;  // final_sigmas_type "zero"
        at::Tensor next;
        const auto t = at_(i + 1), s0 = at_(i);
        if (lower_order_nums_ < 1 || final_first_order) {
            const auto h = t.lambda - s0.lambda;
            next = (t.sigma / s0.sigma) * x - (t.alpha * (torch::exp(-h) - 1.0)) * m;
        } else {
            const auto s1 = at_(i - 1);
            const auto h = t.lambda - s0.lambda, h_0 = s0.lambda - s1.lambda;
            const auto r0 = h_0 / h;
            const auto& D0 = m_prev1_;
            const auto D1 = (1.0 / r0) * (m_prev1_ - m_prev2_);
            const auto a = t.alpha * (torch::exp(-h) - 1.0);
            next = (t.sigma / s0.sigma) * x - a * D0 - (0.5 * a) * D1;
        }
        lower_order_nums_ = std::min<int64_t>(lower_order_nums_ + 1, 2);
        ++index_;
        return next;
    }

private:
    at::Tensor m_prev1_, m_prev2_;
    int64_t lower_order_nums_ = 0;
};

class EulerSampler final : public ScheduledSampler {
public:
    explicit EulerSampler(const SamplerOptions& o)
        : ScheduledSampler(sampler_sigmas(SamplerKind::euler, o.steps, o.shift), /*integer_timesteps=*/false) {}

    at::Tensor step(const at::Tensor& velocity, const at::Tensor& sample) override {
        check_(velocity, sample);
        const auto dt = sigma_t_.select(0, index_ + 1) - sigma_t_.select(0, index_);
        ++index_;
        return sample.to(torch::kFloat32) + velocity.to(torch::kFloat32) * dt;
    }
};

}  // namespace

SamplerKind parse_sampler(const std::string& name) {
    if (name == "unipc") return SamplerKind::unipc;
    if (name == "dpm++" || name == "dpmpp") return SamplerKind::dpmpp;
    if (name == "euler") return SamplerKind::euler;
    throw ConfigError(fmt::format("sampler '{}' is not one of unipc, dpm++, euler", name));
}

const char* to_string(SamplerKind kind) {
    switch (kind) {
        case SamplerKind::unipc:
            return "unipc";
        case SamplerKind::dpmpp:
            return "dpm++";
        case SamplerKind::euler:
            return "euler";
    }
    return "?";
}

std::vector<double> sampler_sigmas(SamplerKind kind, int64_t steps, double shift) {
    if (steps < 1) throw ConfigError(fmt::format("sampling steps must be positive, got {}", steps));
    if (!(shift > 0)) throw ConfigError(fmt::format("sampling shift must be positive, got {}", shift));
    // UniPC starts from its training schedule's σ_max = float32(0.999); the others from 1.
    const double start = kind == SamplerKind::unipc ? static_cast<double>(0.999f) : 1.0;
    auto s = linspace(start, 0.0, steps + 1);
    s.pop_back();
    for (auto& v : s) v = shift * v / (1.0 + (shift - 1.0) * v);
    return s;
}

std::unique_ptr<FlowSampler> make_sampler(const SamplerOptions& opts) {
    switch (opts.kind) {
        case SamplerKind::unipc:
            return std::make_unique<UniPCSampler>(opts);
        case SamplerKind::dpmpp:
            return std::make_unique<DPMPPSampler>(opts);
        case SamplerKind::euler:
            return std::make_unique<EulerSampler>(opts);
    }
    throw ConfigError("unknown sampler");
}

at::Tensor guide(const at::Tensor& v_cond, const at::Tensor& v_uncond, double scale) {
    const auto u = v_uncond.to(torch::kFloat32);
    return u + scale * (v_cond.to(torch::kFloat32) - u);
}

}  // namespace ipa::flow
