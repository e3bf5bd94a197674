// Safetensors load throughput against plain memcpy bandwidth on the same machine.
//
//   bench_checkpoint_load [--size-mb 2048] [--tensor-mb 64] [--dir /tmp] [--repeat 3]
//
// Writes a checkpoint of `size-mb` (bf16 tensors of `tensor-mb` each, like a DiT shard),
// then reports, best of `repeat`:
//   memcpy        copy of an equally large buffer (the bandwidth ceiling)
//   open          mmap + header parse + validation (no data touched)
//   load->bf16    open + copy every tensor into preallocated bf16 tensors (what loading
//                 a bf16 model does)
//   load->fp32    the same into fp32 tensors (dtype conversion at load)
// The file is read from the page cache (it was just written); cold-disk numbers depend on
// the disk, not on this code.

#include <fmt/format.h>
#include <torch/torch.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <vector>

#include "ipa/core/run_context.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/io/summary.h"

namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class F>
double best_of(int repeat, F&& fn) {
    double best = 1e300;
    for (int i = 0; i < repeat; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        best = std::min(best, seconds_since(t0));
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"safetensors load throughput vs memcpy"};
    int64_t size_mb = 2048, tensor_mb = 64;
    int repeat = 3;
    std::string dir = fs::temp_directory_path().string();
    app.add_option("--size-mb", size_mb, "checkpoint size in MiB");
    app.add_option("--tensor-mb", tensor_mb, "size of each tensor in MiB");
    app.add_option("--dir", dir, "where to write the temporary checkpoint");
    app.add_option("--repeat", repeat, "repetitions (best is reported)");
    CLI11_PARSE(app, argc, argv);
    ipa::init_torch_threads();

    const int64_t n_tensors = std::max<int64_t>(1, size_mb / tensor_mb);
    const int64_t elems = tensor_mb * (1 << 20) / 2;  // bf16
    const double bytes = static_cast<double>(n_tensors) * elems * 2;
    const fs::path path = fs::path(dir) / fmt::format("ipa_bench_{}.safetensors", ::getpid());
    {
        ipa::io::NamedTensors tensors;
        for (int64_t i = 0; i < n_tensors; ++i) {
            tensors.emplace_back(fmt::format("blocks.{}.ffn.0.weight", i),
                                 torch::rand({elems}, torch::kFloat).to(torch::kBFloat16));
        }
        ipa::io::save_safetensors(path, tensors);
    }
    fmt::print("checkpoint: {} tensors x {} MiB = {} ({} threads)\n", n_tensors, tensor_mb,
               ipa::io::format_bytes(bytes), torch::get_num_threads());

    std::vector<uint8_t> src(static_cast<std::size_t>(bytes), 1), dst(static_cast<std::size_t>(bytes), 0);
    const double t_memcpy = best_of(repeat, [&] { std::memcpy(dst.data(), src.data(), src.size()); });
    src = {};
    dst = {};

    const double t_open = best_of(repeat, [&] { auto ck = ipa::io::Checkpoint::open(path); });

    std::vector<torch::Tensor> bf16(n_tensors), fp32(n_tensors);
    for (int64_t i = 0; i < n_tensors; ++i) {
        bf16[i] = torch::empty({elems}, torch::kBFloat16);
    }
    const double t_bf16 = best_of(repeat, [&] {
        auto ck = ipa::io::Checkpoint::open(path);
        const auto names = ck.names();
        for (std::size_t i = 0; i < names.size(); ++i) bf16[i].copy_(ck.get(names[i]));
    });
    bf16 = {};
    for (int64_t i = 0; i < n_tensors; ++i) fp32[i] = torch::empty({elems}, torch::kFloat);
    const double t_fp32 = best_of(repeat, [&] {
        auto ck = ipa::io::Checkpoint::open(path);
        const auto names = ck.names();
        for (std::size_t i = 0; i < names.size(); ++i) fp32[i].copy_(ck.get(names[i]));
    });
    fs::remove(path);

    const double gib = bytes / double(1 << 30);
    fmt::print("{:<12} {:>10} {:>12}\n", "what", "seconds", "GiB/s (file)");
    fmt::print("{:<12} {:>10.3f} {:>12.2f}\n", "memcpy", t_memcpy, gib / t_memcpy);
    fmt::print("{:<12} {:>10.4f} {:>12}\n", "open", t_open, "-");
    fmt::print("{:<12} {:>10.3f} {:>12.2f}\n", "load->bf16", t_bf16, gib / t_bf16);
    fmt::print("{:<12} {:>10.3f} {:>12.2f}\n", "load->fp32", t_fp32, gib / t_fp32);
    fmt::print("load->bf16 runs at {:.0f}% of memcpy bandwidth\n", 100.0 * t_memcpy / t_bf16);
    return 0;
}
