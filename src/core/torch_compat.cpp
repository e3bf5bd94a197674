#include "ipa/core/torch_compat.h"

#include <ATen/autocast_mode.h>
#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cmath>

#include "ipa/build_config.h"
#if IPA_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace ipa::compat {

std::string torch_version() {
    return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
           std::to_string(TORCH_VERSION_PATCH);
}

at::Tensor attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const c10::optional<at::Tensor>& attn_mask) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    auto scores = at::matmul(q, k.transpose(-2, -1)) * scale;  // [B, H, Lq, Lk]
    if (attn_mask.has_value() && attn_mask->defined()) {
        if (attn_mask->scalar_type() == at::kBool) {
            scores = scores.masked_fill(attn_mask->logical_not(), -std::numeric_limits<double>::infinity());
        } else {
            scores = scores + *attn_mask;
        }
    }
    return at::matmul(at::softmax(scores, -1), v);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const c10::optional<at::Tensor>& attn_mask) {
#if TORCH_VERSION_MAJOR >= 2
    return at::scaled_dot_product_attention(q, k, v, attn_mask);
#else
    // 1.13's private SDPA: bool masks are supported by its math path, but it computes
    // the softmax in the input dtype; that matches the 2.x CPU math path.
    return std::get<0>(at::_scaled_dot_product_attention(q, k, v, attn_mask));
#endif
}

std::string attention_backend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const c10::optional<at::Tensor>& attn_mask) {
#if TORCH_VERSION_MAJOR >= 2
    switch (at::_fused_sdp_choice(q, k, v, attn_mask)) {
        case 0:
            return "math";
        case 1:
            return "flash";
        case 2:
            return "efficient";
        case 3:
            return "cudnn";
        default:
            return "other";
    }
#else
    (void)q, (void)k, (void)v, (void)attn_mask;
    return "math (LibTorch 1.13)";
#endif
}

AutocastGuard::AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled)
    : device_(device), prev_enabled_(is_enabled(device)), prev_dtype_(AutocastGuard::dtype(device)) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(device, enabled);
    at::autocast::set_autocast_dtype(device, dtype);
#else
    if (device == c10::DeviceType::CUDA) {
        at::autocast::set_enabled(enabled);
        at::autocast::set_autocast_gpu_dtype(dtype);
    } else {
        at::autocast::set_cpu_enabled(enabled);
        at::autocast::set_autocast_cpu_dtype(dtype);
    }
#endif
    at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(device_, prev_enabled_);
    at::autocast::set_autocast_dtype(device_, prev_dtype_);
#else
    if (device_ == c10::DeviceType::CUDA) {
        at::autocast::set_enabled(prev_enabled_);
        at::autocast::set_autocast_gpu_dtype(prev_dtype_);
    } else {
        at::autocast::set_cpu_enabled(prev_enabled_);
        at::autocast::set_autocast_cpu_dtype(prev_dtype_);
    }
#endif
}

bool AutocastGuard::is_enabled(c10::DeviceType device) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    return at::autocast::is_autocast_enabled(device);
#else
    return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

c10::ScalarType AutocastGuard::dtype(c10::DeviceType device) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    return at::autocast::get_autocast_dtype(device);
#else
    return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                           : at::autocast::get_autocast_cpu_dtype();
#endif
}

bool cuda_available() { return torch::cuda::is_available(); }

int64_t peak_memory_bytes(const c10::Device& device) {
    if (device.is_cuda()) {
#if IPA_WITH_CUDA
        const auto index = device.has_index() ? device.index() : c10::cuda::current_device();
        const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
        return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
#else
        return -1;
#endif
    }
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

void reset_peak_memory(const c10::Device& device) {
#if IPA_WITH_CUDA
    if (device.is_cuda()) {
        c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index()
                                                                           : c10::cuda::current_device());
    }
#else
    (void)device;
#endif
}

void synchronize(const c10::Device& device) {
#if IPA_WITH_CUDA
    if (device.is_cuda()) c10::cuda::device_synchronize();
#else
    (void)device;
#endif
}

void set_cuda_tf32(bool allowed) {
    at::globalContext().setAllowTF32CuBLAS(allowed);
    at::globalContext().setAllowTF32CuDNN(allowed);
}

int cuda_compute_capability(int index) {
#if IPA_WITH_CUDA
    if (!cuda_available()) return 0;
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return 0;
    return prop.major * 10 + prop.minor;
#else
    (void)index;
    return 0;
#endif
}

std::string cuda_device_name(int index) {
#if IPA_WITH_CUDA
    if (!cuda_available()) return "";
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return "";
    return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
#else
    (void)index;
    return "";
#endif
}

}  // namespace ipa::compat
