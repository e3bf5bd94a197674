#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>

namespace ipa {

/// Where and how a run executes. Passed explicitly; there is no global run state.
struct RunContext {
    c10::Device device{c10::kCPU};
    c10::ScalarType dtype = c10::kFloat;  ///< compute dtype of the frozen base weights
    int rank = 0;
    int world_size = 1;
    int local_rank = 0;
    uint64_t seed = 42;

    bool is_main() const { return rank == 0; }

    /// Rank/world from the launcher's environment: torchrun's RANK, WORLD_SIZE,
    /// LOCAL_RANK; then SLURM (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID); then Open MPI
    /// (OMPI_COMM_WORLD_*). None set: a single process. Inconsistent values: DistError.
    static RunContext from_env();
};

/// LibTorch intra-op threads: OMP_NUM_THREADS when set, else one per core. Call once
/// from `main`. Returns the number used.
int init_torch_threads();

/// "fp32" | "float32" | "bf16" | "bfloat16" | "fp16" | "float16" → dtype; ConfigError otherwise.
c10::ScalarType parse_dtype(const std::string& name);
/// kFloat → "fp32", kBFloat16 → "bf16", …
std::string dtype_name(c10::ScalarType dtype);
/// "cpu", "cuda", "cuda:N", "auto" (CUDA when available) → device; ConfigError otherwise.
c10::Device parse_device(const std::string& name);

}  // namespace ipa
