#include "ipa/dist/process_group.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

// LibTorch's c10d headers are guarded by the macros its own build defines.
#ifdef IPA_WITH_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef IPA_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cmath>
#include <cstdlib>
#include <map>
#include <thread>

#include "ipa/core/error.h"
#include "ipa/core/torch_compat.h"

namespace ipa::dist {

struct ProcessGroup::Impl {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<compat::CollectiveBackend> pg;
    std::chrono::milliseconds timeout{0};
};

namespace {

std::string env_or_empty(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

/// The backend's message without LibTorch's C++ backtrace.
std::string message_of(const std::exception& e) {
    if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
    return e.what();
}

bool is_loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

}  // namespace

ProcessGroup::ProcessGroup(int rank, int world, std::string backend, std::unique_ptr<Impl> impl, int64_t bucket_bytes)
    : rank_(rank), world_(world), backend_(std::move(backend)), impl_(std::move(impl)), bucket_bytes_(bucket_bytes) {}

ProcessGroup::~ProcessGroup() = default;

std::vector<std::string> compiled_backends() {
    std::vector<std::string> out;
#ifdef IPA_WITH_GLOO
    out.emplace_back("gloo");
#endif
#ifdef IPA_WITH_NCCL
    out.emplace_back("nccl");
#endif
    return out;
}

std::unique_ptr<ProcessGroup> ProcessGroup::create(const RunContext& ctx, const DistOptions& opts) {
    if (opts.timeout_s <= 0) throw ConfigError(fmt::format("dist.timeout_s must be positive, got {}", opts.timeout_s));
    if (opts.bucket_mb <= 0)
        throw ConfigError(fmt::format("dist bucket size must be positive, got {}", opts.bucket_mb));
    const int64_t bucket_bytes = opts.bucket_mb << 20;
    if (ctx.world_size <= 1 && !opts.group_for_one) {
        return std::unique_ptr<ProcessGroup>(new ProcessGroup(0, 1, "local", nullptr, bucket_bytes));
    }
    std::string backend = opts.backend;
    if (backend == "auto") backend = ctx.device.is_cuda() ? "nccl" : "gloo";
    if (backend != "gloo" && backend != "nccl") {
        throw ConfigError(fmt::format("dist.backend '{}' is not one of auto, nccl, gloo", opts.backend));
    }
    if (backend == "nccl" && !ctx.device.is_cuda()) {
        throw ConfigError(fmt::format(
            "dist.backend nccl needs CUDA devices, but this run is on {} (model.device); NCCL is the multi-GPU "
            "backend: use dist.backend gloo (or auto) for CPU training",
            ctx.device.str()));
    }
#ifndef IPA_WITH_GLOO
    if (backend == "gloo") {
        throw DistError(
            "dist.backend gloo: this build of ipa has no Gloo (its headers were not found at configure "
            "time; install libgloo-dev or use a LibTorch that ships them)");
    }
#endif
#ifndef IPA_WITH_NCCL
    if (backend == "nccl") {
        throw DistError(
            "dist.backend nccl: this build of ipa has no NCCL (LibTorch without USE_C10D_NCCL, or built "
            "with IPA_WITH_NCCL=OFF); use dist.backend: gloo or rebuild against a CUDA LibTorch");
    }
#endif
    const std::string addr = env_or_empty("MASTER_ADDR");
    const std::string port_s = env_or_empty("MASTER_PORT");
    if (addr.empty() || port_s.empty()) {
        throw DistError(
            fmt::format("WORLD_SIZE={} but MASTER_ADDR/MASTER_PORT are not set; launch with "
                        "`torchrun --nproc-per-node N --no-python ipa-train ...` or set them",
                        ctx.world_size));
    }
    char* end = nullptr;
    const long port = std::strtol(port_s.c_str(), &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) {
        throw DistError(fmt::format("MASTER_PORT='{}' is not a TCP port", port_s));
    }
    auto impl = std::make_unique<Impl>();
    impl->timeout = std::chrono::milliseconds(opts.timeout_s * 1000);
    spdlog::info("rank {}/{}: rendezvous at {}:{} ({}; timeout {} s)", ctx.rank, ctx.world_size, addr, port, backend,
                 opts.timeout_s);
    try {
        c10d::TCPStoreOptions so;
        so.port = static_cast<uint16_t>(port);
        so.isServer = ctx.rank == 0;
        so.numWorkers = ctx.world_size;
        so.waitWorkers = true;
        so.timeout = impl->timeout;
        impl->store = c10::make_intrusive<c10d::TCPStore>(addr, so);
        // The store is shared with other users of the port's run; scope our keys.
        auto prefixed = c10::make_intrusive<c10d::PrefixStore>("ipa", impl->store);
        if (backend == "gloo") {
#ifdef IPA_WITH_GLOO
            auto go = c10d::ProcessGroupGloo::Options::create();
            go->timeout = impl->timeout;
            const std::string ifname = env_or_empty("GLOO_SOCKET_IFNAME");
            if (!ifname.empty()) {
                go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
            } else if (is_loopback(addr)) {
                go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
            } else {
                go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            }
            impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, ctx.rank, ctx.world_size, go);
#endif
        } else {
#ifdef IPA_WITH_NCCL
            auto no = c10d::ProcessGroupNCCL::Options::create();
            no->timeout = impl->timeout;
            impl->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, ctx.rank, ctx.world_size, no);
#endif
        }
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw DistError(
            fmt::format("rank {}/{}: could not open the {} process group at {}:{}: {} (waited up to {} s "
                        "for all {} ranks; are they all started, with the same MASTER_ADDR/MASTER_PORT?)",
                        ctx.rank, ctx.world_size, backend, addr, port, message_of(e), opts.timeout_s, ctx.world_size));
    }
    auto pg = std::unique_ptr<ProcessGroup>(
        new ProcessGroup(ctx.rank, ctx.world_size, backend, std::move(impl), bucket_bytes));
    pg->barrier("start-up");
    spdlog::info("rank {}/{}: process group ready ({})", ctx.rank, ctx.world_size, backend);
    return pg;
}

void ProcessGroup::fail_(const std::string& what, const std::exception& e) const {
    throw DistError(
        fmt::format("rank {}/{}: collective '{}' ({}) failed: {} — another rank probably died, hung past "
                    "dist.timeout_s ({} s) or reached a different point of the run",
                    rank_, world_, what, backend_, message_of(e), impl_ ? impl_->timeout.count() / 1000 : 0));
}

void ProcessGroup::all_reduce_mean(const std::vector<at::Tensor>& tensors, const std::string& what) {
    if (!impl_) return;  // local group (world size 1)
    // Buckets: consecutive tensors of one dtype/device up to bucket_bytes_ (a larger tensor is its own bucket).
    std::vector<std::vector<at::Tensor>> buckets;
    int64_t bytes = 0;
    for (const auto& t : tensors) {
        TORCH_CHECK(t.defined(), "all_reduce_mean(", what, "): undefined tensor");
        const int64_t b = t.numel() * static_cast<int64_t>(t.element_size());
        const bool same = !buckets.empty() && buckets.back().front().scalar_type() == t.scalar_type() &&
                          buckets.back().front().device() == t.device();
        if (buckets.empty() || !same || bytes + b > bucket_bytes_) {
            buckets.emplace_back();
            bytes = 0;
        }
        buckets.back().push_back(t);
        bytes += b;
    }
    try {
        for (auto& bucket : buckets) {
            std::vector<at::Tensor> flat_parts;
            flat_parts.reserve(bucket.size());
            for (const auto& t : bucket) flat_parts.push_back(t.detach().reshape({-1}));
            std::vector<at::Tensor> io{torch::cat(flat_parts)};
            impl_->pg->allreduce(io)->wait(impl_->timeout);
            io[0].div_(static_cast<double>(world_));
            int64_t off = 0;
            torch::NoGradGuard ng;
            for (auto& t : bucket) {
                t.copy_(io[0].narrow(0, off, t.numel()).view(t.sizes()));
                off += t.numel();
            }
        }
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        fail_(what, e);
    }
}

std::vector<double> ProcessGroup::all_reduce_sum(const std::vector<double>& values, const std::string& what) {
    if (!impl_ || values.empty()) return values;
    auto t = torch::tensor(values, torch::kFloat64);
    if (backend_ == "nccl") t = t.to(torch::kCUDA);
    try {
        std::vector<at::Tensor> io{t};
        impl_->pg->allreduce(io)->wait(impl_->timeout);
        t = io[0].cpu();
    } catch (const std::exception& e) {
        fail_(what, e);
    }
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

void ProcessGroup::check_same(uint64_t value, const std::string& what) {
    if (!impl_) return;  // local group (world size 1)
    // Sums of 44-bit values stay exact in float64 for up to 512 ranks.
    const double v = static_cast<double>(value & ((uint64_t{1} << 44) - 1));
    const auto sum = all_reduce_sum({v, v * v / 1e13}, "agree on " + what);
    const double w = world_;
    if (sum[0] != w * v || std::abs(sum[1] - w * v * v / 1e13) > 1e-6 * std::abs(sum[1])) {
        throw DistError(fmt::format("rank {}/{}: the ranks disagree on {}; start every rank with the same arguments",
                                    rank_, world_, what));
    }
}

void ProcessGroup::barrier(const std::string& what) {
    if (!impl_) return;  // local group (world size 1)
    // An all-reduce of one number instead of c10d's barrier: same on every backend and
    // bounded by the same timeout.
    all_reduce_sum({1.0}, "barrier: " + what);
}

int ProcessGroup::wait_all(const std::string& what, bool failed, double timeout_s) {
    if (!impl_) return failed ? 1 : 0;
    const std::string key = fmt::format("ipa/wait/{}", waits_++);
    try {
        impl_->store->add(key + "/failed", failed ? 1 : 0);
        impl_->store->add(key + "/arrived", 1);
        const auto start = std::chrono::steady_clock::now();
        auto wait_for = [&](const std::string& counter, double limit_s) {
            for (int64_t n = 0;;) {
                n = impl_->store->add(key + counter, 0);
                if (n >= world_) return;
                const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                if (waited > limit_s) {
                    throw DistError(fmt::format("rank {}/{}: waited {:.0f} s at '{}' and only {} of {} ranks arrived",
                                                rank_, world_, waited, what, n, world_));
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(waited < 10 ? 50 : 500));
            }
        };
        wait_for("/arrived", timeout_s);
        const auto failed = static_cast<int>(impl_->store->add(key + "/failed", 0));
        // Rank 0 hosts the store: it leaves only after every rank has read the count, so a
        // rank that exits on failure right after this call never cuts the others off.
        impl_->store->add(key + "/read", 1);
        if (rank_ == 0) wait_for("/read", timeout_s + static_cast<double>(impl_->timeout.count()) / 1000.0);
        return failed;
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        fail_(what, e);
    }
}

}  // namespace ipa::dist
