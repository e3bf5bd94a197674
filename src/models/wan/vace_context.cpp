#include "ipa/models/wan/vace_context.h"

#include <torch/torch.h>

namespace ipa::models::wan {

at::Tensor vace_encode_frames(const at::Tensor& frames, const at::Tensor& mask, const std::vector<at::Tensor>& refs,
                              const VideoEncoder& encode) {
    TORCH_CHECK(frames.dim() == 4 && frames.size(0) == 3, "VACE frames must be [3, T, H, W], got ", frames.sizes());
    at::Tensor latent;
    if (!mask.defined()) {
        latent = encode(frames);
    } else {
        TORCH_CHECK(mask.dim() == 4 && mask.sizes().slice(1) == frames.sizes().slice(1),
                    "VACE mask must be [C, T, H, W] like the frames ", frames.sizes(), ", got ", mask.sizes());
        const auto m = torch::where(mask > 0.5, 1.0, 0.0).to(frames.scalar_type());
        const auto inactive = frames * (1 - m) + 0 * m;  // masked-out pixels become 0 (mid-gray)
        const auto reactive = frames * m + 0 * (1 - m);
        latent = torch::cat({encode(inactive), encode(reactive)}, 0);
    }
    if (refs.empty()) return latent;
    std::vector<at::Tensor> parts;
    for (const auto& r : refs) {
        TORCH_CHECK(r.dim() == 4 && r.size(0) == 3 && r.size(1) == 1 && r.sizes().slice(2) == frames.sizes().slice(2),
                    "a VACE reference image must be [3, 1, H, W] with the frames' H, W ", frames.sizes(), ", got ",
                    r.sizes());
        auto z = encode(r);  // [16, 1, h, w]
        TORCH_CHECK(z.size(1) == 1, "a reference image must encode to one latent frame, got ", z.sizes());
        if (mask.defined()) z = torch::cat({z, torch::zeros_like(z)}, 0);
        parts.push_back(z);
    }
    parts.push_back(latent);
    return torch::cat(parts, 1);
}

at::Tensor vace_encode_masks(const at::Tensor& mask, int64_t n_ref) {
    TORCH_CHECK(mask.dim() == 4, "VACE mask must be [C, T, H, W], got ", mask.sizes());
    const int64_t depth = mask.size(1), H = mask.size(2), W = mask.size(3);
    TORCH_CHECK(H % 16 == 0 && W % 16 == 0, "VACE needs H and W divisible by 16, got ", H, "x", W);
    const int64_t h = 2 * (H / 16), w = 2 * (W / 16), t_lat = (depth + 3) / 4;
    // 8×8 pixel-unshuffle: channel = py·8 + px.
    auto m = mask[0].reshape({depth, h, 8, w, 8}).permute({2, 4, 0, 1, 3}).reshape({64, depth, h, w});
    // F.interpolate(mode='nearest-exact') in time: the ATen op itself (1.13's C++ functional
    // wrapper warns about align_corners for this mode).
    m = at::_upsample_nearest_exact3d(m.unsqueeze(0), {t_lat, h, w}, c10::nullopt, c10::nullopt, c10::nullopt)
            .squeeze(0);  // [64, T_lat, h, w]; picks frames 1, 5, … (never frame 0)
    if (n_ref > 0) m = torch::cat({torch::zeros({64, n_ref, h, w}, m.options()), m}, 1);
    return m;
}

at::Tensor vace_context(const at::Tensor& frames, const at::Tensor& mask, const std::vector<at::Tensor>& refs,
                        const VideoEncoder& encode) {
    const auto m = mask.defined() ? mask : torch::ones_like(frames);
    const auto z = vace_encode_frames(frames, m, refs, encode);
    const auto mm = vace_encode_masks(m, static_cast<int64_t>(refs.size()));
    TORCH_CHECK(z.sizes().slice(1) == mm.sizes().slice(1), "VACE latents ", z.sizes(), " and mask ", mm.sizes(),
                " disagree (frame count not 1 + 4k?)");
    return torch::cat({z, mm.to(z.scalar_type())}, 0);
}

}  // namespace ipa::models::wan
