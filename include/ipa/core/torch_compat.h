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

/// The kernel `attention` runs for these inputs: "flash", "efficient", "cudnn", "math"
/// (LibTorch ≥ 2.0 asks its own SDPA dispatcher) or "math (LibTorch 1.13)".
std::string attention_backend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
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

/// On CPU the process's peak resident set size in bytes; on CUDA the caching allocator's
/// peak of allocated bytes on that device (since start or the last reset_peak_memory); -1
/// where it cannot be measured (a CUDA device with a CPU-only build of ipa).
int64_t peak_memory_bytes(const c10::Device& device);

/// Starts a new CUDA peak-memory window (no-op on CPU, where the RSS peak cannot be reset).
void reset_peak_memory(const c10::Device& device);

/// Waits for the device's queued work (no-op on CPU); for timing.
void synchronize(const c10::Device& device);

/// Allows or forbids TF32 tensor-core maths for fp32 matmuls and convolutions on CUDA
/// (parity checks run fp32 with TF32 off).
void set_cuda_tf32(bool allowed);

/// Name and compute capability of a CUDA device ("NVIDIA H200 (sm_90)"), or "" where none.
std::string cuda_device_name(int index = 0);

/// Compute capability (major * 10 + minor) of a CUDA device; 0 where none.
int cuda_compute_capability(int index = 0);

}  // namespace ipa::compat
