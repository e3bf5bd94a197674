#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace ipa::models {

using TensorFn = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;

/// Gradient (activation) checkpointing: runs `fn(inputs)` without keeping its activations
/// and recomputes it during backward. Gradients flow to every input that requires grad
/// and to the parameters `fn` uses (accumulated into their `.grad`, reentrant style, so
/// the outer call must be `loss.backward()`). `fn` must be deterministic and must not
/// capture tensors that require grad (pass those as inputs). All inputs must be defined.
/// Without grad mode (or when no input/parameter needs grad) it simply calls `fn`.
std::vector<at::Tensor> checkpoint(const TensorFn& fn, const std::vector<at::Tensor>& inputs);

}  // namespace ipa::models
