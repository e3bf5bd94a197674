#include "ipa/models/wan/rope.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "ipa/core/error.h"
#include "ipa/models/wan/numerics.h"

namespace ipa::models::wan {

RopeTable make_rope(int64_t head_dim, int64_t f, int64_t h, int64_t w, int64_t seq_len, const c10::Device& device,
                    double theta, c10::ScalarType dtype) {
    const int64_t c = head_dim / 2;
    const int64_t c_hw = c / 3;
    const int64_t c_t = c - 2 * c_hw;
    if (f > 1024 || h > 1024 || w > 1024) {
        throw DataError(fmt::format("token grid {}x{}x{} exceeds the RoPE table length 1024", f, h, w));
    }
    const auto opt = torch::TensorOptions().dtype(torch::kDouble);
    // Per-axis frequencies θ^(−2j/d_axis), d_axis = 2·channels.
    auto freqs = [&](int64_t channels) {
        return torch::pow(theta, -torch::arange(channels, opt) * 2.0 / static_cast<double>(2 * channels));
    };
    const auto ang_t = torch::arange(f, opt).unsqueeze(1) * freqs(c_t).unsqueeze(0);   // [f, c_t]
    const auto ang_h = torch::arange(h, opt).unsqueeze(1) * freqs(c_hw).unsqueeze(0);  // [h, c_hw]
    const auto ang_w = torch::arange(w, opt).unsqueeze(1) * freqs(c_hw).unsqueeze(0);  // [w, c_hw]
    const auto angles = torch::cat({ang_t.view({f, 1, 1, c_t}).expand({f, h, w, c_t}),
                                    ang_h.view({1, h, 1, c_hw}).expand({f, h, w, c_hw}),
                                    ang_w.view({1, 1, w, c_hw}).expand({f, h, w, c_hw})},
                                   -1)
                            .reshape({f * h * w, 1, c});  // [L, 1, c]
    auto cos = torch::ones({seq_len, 1, c}, opt);
    auto sin = torch::zeros({seq_len, 1, c}, opt);
    cos.narrow(0, 0, f * h * w).copy_(angles.cos());
    sin.narrow(0, 0, f * h * w).copy_(angles.sin());
    return {cos.to(device, dtype), sin.to(device, dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTable& rope) {
    const auto sizes = x.sizes().vec();  // [B, L, H, D]
    auto pairs = at_least_fp32(x).reshape({sizes[0], sizes[1], sizes[2], sizes[3] / 2, 2});
    const auto re = pairs.select(-1, 0);  // [B, L, H, D/2]
    const auto im = pairs.select(-1, 1);
    const auto out_re = re * rope.cos - im * rope.sin;
    const auto out_im = re * rope.sin + im * rope.cos;
    return torch::stack({out_re, out_im}, -1).reshape(sizes);
}

}  // namespace ipa::models::wan
