#pragma once

// The dtype of the DiT's "fp32 islands" (norms, modulation, RoPE, time embedding, head):
// float32 in fp32 and bf16 models, float64 in an fp64 model (a float64 run of the same
// code is the reference that float32 floors are measured against).

#include <ATen/core/Tensor.h>

namespace ipa::models::wan {

/// x in float32, or unchanged when it is float64.
inline at::Tensor at_least_fp32(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? x : x.to(at::kFloat); }

/// The islands' dtype for a model computing in `dtype`.
inline c10::ScalarType island_dtype(c10::ScalarType dtype) { return dtype == at::kDouble ? at::kDouble : at::kFloat; }

}  // namespace ipa::models::wan
