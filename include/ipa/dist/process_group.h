#pragma once

// Data-parallel communication for training (docs/architecture.md §8): a c10d process group over
// all ranks, Gloo on CPU and NCCL on CUDA (where the LibTorch build has it), rendezvous
// through a TCPStore at MASTER_ADDR:MASTER_PORT (as set by `torchrun --no-python`).
// With world size 1 every collective is a no-op and nothing is opened.

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ipa/core/run_context.h"

namespace ipa::dist {

struct DistOptions {
    std::string backend = "auto";  ///< auto (nccl on CUDA, gloo on CPU) | nccl | gloo
    int64_t timeout_s = 600;       ///< bound on rendezvous and on every collective
    int64_t bucket_mb = 25;        ///< gradient all-reduce bucket size
    /// Open a real c10d group even at world size 1 (a self-test of the backend, e.g. NCCL
    /// on one GPU); by default world size 1 is a local no-op group.
    bool group_for_one = false;
};

/// The c10d backends this build of ipa can open ("gloo", "nccl").
std::vector<std::string> compiled_backends();

/// One process group per run. Every collective names what it was for; a failure (a rank
/// died, hung past the timeout, or disagrees) is a DistError that says which collective,
/// this rank, and the backend's own message.
class ProcessGroup {
public:
    /// Opens the group described by `ctx` (rank, world size, device). World size 1: a
    /// local no-op group. Needs MASTER_ADDR and MASTER_PORT otherwise.
    static std::unique_ptr<ProcessGroup> create(const RunContext& ctx, const DistOptions& opts);
    ~ProcessGroup();
    ProcessGroup(const ProcessGroup&) = delete;
    ProcessGroup& operator=(const ProcessGroup&) = delete;

    int rank() const { return rank_; }
    int world_size() const { return world_; }
    /// "local" (world 1), "gloo" or "nccl".
    const std::string& backend() const { return backend_; }

    /// Averages the tensors in place across ranks. They are packed into flat buckets of at
    /// most `bucket_mb` per dtype and device, so one call is a few collectives, not one per
    /// tensor. Every rank must pass the same defined tensors (shapes, dtypes, order).
    void all_reduce_mean(const std::vector<at::Tensor>& tensors, const std::string& what);

    /// Element-wise sum of `values` over ranks (float64), e.g. metrics or flags.
    std::vector<double> all_reduce_sum(const std::vector<double>& values, const std::string& what);

    /// DistError on every rank unless all ranks pass the same value (e.g. a hash of the
    /// resolved config), so mismatched launches fail at start, not mid-run.
    void check_same(uint64_t value, const std::string& what);

    /// Returns when every rank has reached the same barrier.
    void barrier(const std::string& what);

    /// A barrier for long work of uneven length (e.g. building the training cache): waits
    /// through the rendezvous store up to `timeout_s` (not dist.timeout_s), polling. Each rank
    /// says whether its work failed; returns how many ranks failed (on every rank). DistError
    /// naming `what` and the ranks that have arrived when the time runs out.
    int wait_all(const std::string& what, bool failed, double timeout_s);

private:
    struct Impl;
    ProcessGroup(int rank, int world, std::string backend, std::unique_ptr<Impl> impl, int64_t bucket_bytes);
    [[noreturn]] void fail_(const std::string& what, const std::exception& e) const;

    int rank_ = 0;
    int world_ = 1;
    std::string backend_ = "local";
    std::unique_ptr<Impl> impl_;
    int64_t bucket_bytes_ = 0;
    int64_t waits_ = 0;  ///< wait_all calls so far (the same sequence on every rank)
};

}  // namespace ipa::dist
