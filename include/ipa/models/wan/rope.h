#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace ipa::models::wan {

/// 3D RoPE multipliers for a (f, h, w) token grid, padded to `seq_len` tokens.
/// `cos`/`sin`: [seq_len, 1, head_dim/2] in `dtype` (float32; float64 for an fp64 model),
/// computed in float64; padded tokens get cos 1, sin 0 (left
/// unrotated, as upstream). Complex channels split c − 2⌊c/3⌋ / ⌊c/3⌋ / ⌊c/3⌋ over
/// (time, height, width); each axis uses frequencies θ^(−2j/d_axis) of its own dim.
// ref: Wan2.1 wan/modules/model.py rope_params, rope_apply
struct RopeTable {
    at::Tensor cos;
    at::Tensor sin;
};

RopeTable make_rope(int64_t head_dim, int64_t f, int64_t h, int64_t w, int64_t seq_len, const c10::Device& device,
                    double theta = 10000.0, c10::ScalarType dtype = c10::kFloat);

/// Rotates interleaved pairs (2j, 2j+1) of x [B, L, H, D]; computed and returned in float32
/// (float64 when x is float64).
at::Tensor apply_rope(const at::Tensor& x, const RopeTable& rope);

}  // namespace ipa::models::wan
