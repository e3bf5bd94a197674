#pragma once

// Every LibTorch-version difference lives here; nothing else tests TORCH_VERSION_*.
// Supported: Debian's LibTorch 1.13 (CPU) and LibTorch 2.x (CPU/CUDA).

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>
#include <torch/version.h>

#include <string>

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace ipa::compat {

/// "1.13.0" etc.
std::string torch_version();

/// True when this LibTorch has the public fused `scaled_dot_product_attention` (≥ 2.0).
constexpr bool kHasFusedSDPA = TORCH_VERSION_MAJOR >= 2;

/// Scaled dot-product attention in [B, H, L, D] layout. `attn_mask` is boolean
/// (true = attend) broadcastable to [B, H, Lq, Lk], or additive float. On ≥ 2.0 this
/// is the fused SDPA (flash / memory-efficient on CUDA); on 1.13 the math kernel.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const c10::optional<at::Tensor>& attn_mask = c10::nullopt);

/// Plain softmax(QKᵀ/√d)V, for tests and as the portable fallback.
at::Tensor attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const c10::optional<at::Tensor>& attn_mask = c10::nullopt);

/// RAII autocast scope for one device type (CPU or CUDA): saves the previous state,
/// enables autocast with `dtype`, and restores everything on destruction.
class AutocastGuard {
public:
    AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled = true);
    ~AutocastGuard();
    AutocastGuard(const AutocastGuard&) = delete;
    AutocastGuard& operator=(const AutocastGuard&) = delete;

    static bool is_enabled(c10::DeviceType device);
    static c10::ScalarType dtype(c10::DeviceType device);

private:
    c10::DeviceType device_;
    bool prev_enabled_;
    c10::ScalarType prev_dtype_;
};

/// The c10d class that ProcessGroupGloo/NCCL derive from and that carries the
/// collectives: `ProcessGroup` on 1.13, `Backend` on 2.x.
#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

/// Whether a CUDA device is usable at run time.
bool cuda_available();

/// On CPU the process's peak resident set size in bytes; -1 where it is not measured yet
/// (CUDA: the caching-allocator stats need c10_cuda, which a CPU LibTorch lacks).
int64_t peak_memory_bytes(const c10::Device& device);

}  // namespace ipa::compat
