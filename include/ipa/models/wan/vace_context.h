#pragma once

// The VACE conditioning input `vace_context` (docs/wan-vace.md §4.3; ref: wan/vace.py
// WanVace.vace_encode_frames / vace_encode_masks / vace_latent), for one sample:
//   channels  0–15  VAE(frames · (1 − m))   ("inactive"; reference frames: VAE(ref))
//   channels 16–31  VAE(frames · m)         ("reactive"; reference frames: zeros)
//   channels 32–95  the raw mask, 8×8 pixel-unshuffled, resized in time (nearest-exact)
// with the reference-image frames first in time. m = (mask > 0.5). A pose-driven
// animation passes the pose video as `frames`, an all-ones mask and the reference image.
// The VAE is a callback so this stays independent of how (and where) it runs.

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace ipa::models::wan {

/// Encodes one video `[3, T, H, W]` in [-1, 1] to normalised latents `[16, 1 + (T-1)/4, H/8, W/8]`.
using VideoEncoder = std::function<at::Tensor(const at::Tensor& video)>;

/// Latent part `[32, n_ref + T_lat, H/8, W/8]` (or `[16, …]` without a mask, as upstream).
/// `frames` `[3, T, H, W]`; `mask` `[Cm, T, H, W]` in [0, 1] or undefined; each reference
/// `[3, 1, H, W]` is encoded on its own.
at::Tensor vace_encode_frames(const at::Tensor& frames, const at::Tensor& mask, const std::vector<at::Tensor>& refs,
                              const VideoEncoder& encode);

/// Mask part `[64, n_ref + (T+3)/4, 2·(H/16), 2·(W/16)]` from channel 0 of `mask` (not
/// binarised); H and W must be multiples of 16.
at::Tensor vace_encode_masks(const at::Tensor& mask, int64_t n_ref);

/// Both parts concatenated on channels: `[96, n_ref + T_lat, H/8, W/8]`. An undefined
/// mask means all ones (the reference pipeline always has one).
at::Tensor vace_context(const at::Tensor& frames, const at::Tensor& mask, const std::vector<at::Tensor>& refs,
                        const VideoEncoder& encode);

}  // namespace ipa::models::wan
