#include "ipa/core/run_context.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <cstdlib>
#include <thread>

#include "ipa/core/error.h"
#include "ipa/core/torch_compat.h"

namespace ipa {
namespace {

std::optional<int> env_int(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return std::nullopt;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    if (*end != '\0' || x < 0 || x > 1'000'000) {
        throw DistError(fmt::format("environment variable {}='{}' is not a valid rank/size", name, v));
    }
    return static_cast<int>(x);
}

}  // namespace

RunContext RunContext::from_env() {
    RunContext ctx;
    struct Scheme {
        const char* rank;
        const char* world;
        const char* local;
    };
    const Scheme schemes[] = {
        {"RANK", "WORLD_SIZE", "LOCAL_RANK"},
        {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    };
    for (const auto& s : schemes) {
        const auto rank = env_int(s.rank);
        const auto world = env_int(s.world);
        if (!rank && !world) continue;
        if (!rank || !world) {
            throw DistError(fmt::format("{} and {} must be set together", s.rank, s.world));
        }
        if (*world < 1 || *rank >= *world) {
            throw DistError(fmt::format("{}={} is not below {}={}", s.rank, *rank, s.world, *world));
        }
        ctx.rank = *rank;
        ctx.world_size = *world;
        ctx.local_rank = env_int(s.local).value_or(*rank);
        break;
    }
    return ctx;
}

int init_torch_threads() {
    int n = 0;
    if (const char* v = std::getenv("OMP_NUM_THREADS"); v && *v) n = std::atoi(v);
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(n);
    return n;
}

c10::ScalarType parse_dtype(const std::string& name) {
    if (name == "fp32" || name == "float32" || name == "float") return c10::kFloat;
    if (name == "bf16" || name == "bfloat16") return c10::kBFloat16;
    if (name == "fp16" || name == "float16" || name == "half") return c10::kHalf;
    if (name == "fp64" || name == "float64" || name == "double") return c10::kDouble;
    throw ConfigError(fmt::format("dtype '{}' is not one of fp32, bf16, fp16, fp64", name));
}

std::string dtype_name(c10::ScalarType dtype) {
    switch (dtype) {
        case c10::kFloat:
            return "fp32";
        case c10::kBFloat16:
            return "bf16";
        case c10::kHalf:
            return "fp16";
        case c10::kDouble:
            return "fp64";
        default:
            return c10::toString(dtype);
    }
}

c10::Device parse_device(const std::string& name) {
    if (name == "auto") return compat::cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
    try {
        return c10::Device(name);
    } catch (const std::exception&) {
        throw ConfigError(fmt::format("device '{}' is not one of cpu, cuda, cuda:N, auto", name));
    }
}

}  // namespace ipa
