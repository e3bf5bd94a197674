// Wall time and peak memory of the Wan 2.1 VAE (real size: dim 96, 127 M parameters, random
// weights) encoding / decoding a 17-frame 480x832 clip, untiled and tiled.
//
//   bench_vae [--frames 17] [--height 480] [--width 832] [--tile 30,52] [--stride 15,26]
//             [--device cpu] [--dtype fp32] [--out DIR]
//
// Each of the four phases (encode, decode) × (untiled, tiled) runs in its own child process
// (this program re-executed with --phase), so that its peak resident memory is its own:
// peak = VmHWM of /proc/self/status at the end of the phase, which includes the weights
// (0.5 GB fp32) and the input/output tensors; `base` is VmRSS right before the timed call.
// `cpu` is the user + system CPU time of the call (getrusage): on a shared machine it is
// the steadier number, wall time includes waiting for the cores.
// The children write their outputs to DIR; the parent reports max/mean |tiled − untiled|.
// Tile sizes are in latents (DiffSynth-Studio's Wan pipeline default 30x52, stride 15x26).

#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

#include "ipa/core/run_context.h"
#include "ipa/io/safetensors.h"
#include "ipa/models/vae/model.h"

namespace fs = std::filesystem;
using namespace ipa::models::vae;

namespace {

// A "VmHWM:" / "VmRSS:" line of /proc/self/status in MiB (-1 where unavailable).
double proc_status_mib(const std::string& field) {
    std::ifstream f("/proc/self/status");
    for (std::string line; std::getline(f, line);) {
        if (line.rfind(field + ":", 0) == 0) {
            std::istringstream s(line.substr(field.size() + 1));
            double kb = 0;
            s >> kb;
            return kb / 1024.0;
        }
    }
    return -1.0;
}

// User + system CPU seconds of this process so far.
double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Options {
    int64_t frames = 17, height = 480, width = 832;
    std::vector<int64_t> tile{30, 52}, stride{15, 26};
    std::string device = "cpu", dtype = "fp32", out_dir, phase;
    bool tiled = false;
};

VaeTiling tiling_of(const Options& o) {
    VaeTiling t;
    t.enabled = o.tiled;
    t.tile_h = o.tile.at(0);
    t.tile_w = o.tile.at(1);
    t.stride_h = o.stride.at(0);
    t.stride_w = o.stride.at(1);
    return t;
}

std::string output_file(const Options& o, const std::string& phase, bool tiled) {
    return (fs::path(o.out_dir) / fmt::format("{}_{}.safetensors", phase, tiled ? "tiled" : "untiled")).string();
}

// One phase in this process; prints one result line.
int run_phase(const Options& o) {
    const auto device = ipa::parse_device(o.device);
    const auto dtype = ipa::parse_dtype(o.dtype);
    torch::manual_seed(0);  // the same random weights in every phase
    WanVAE vae(VaeConfig::preset("wan2.1"));
    vae->to(device, dtype);
    vae->eval();
    const int64_t lat_t = 1 + (o.frames - 1) / 4, lat_h = o.height / 8, lat_w = o.width / 8;
    at::Tensor input;
    torch::manual_seed(1);
    if (o.phase == "encode") {
        input = torch::rand({3, o.frames, o.height, o.width}) * 2 - 1;  // [3, T, H, W] in [-1, 1)
    } else {
        input = torch::randn({16, lat_t, lat_h, lat_w});  // normalised latents
    }
    input = input.to(device);
    const double base = proc_status_mib("VmRSS");
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = cpu_seconds();
    const auto out = o.phase == "encode" ? vae->encode(input, tiling_of(o)) : vae->decode(input, tiling_of(o));
    if (device.is_cuda()) torch::cuda::synchronize();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds() - cpu0;
    const double peak = proc_status_mib("VmHWM");
    std::string shape;
    for (auto s : out.sizes()) shape += (shape.empty() ? "" : "x") + std::to_string(s);
    fmt::print(
        "{:<7} {:<8} in {:>16}  out {:>16}  wall {:8.1f} s  cpu {:8.1f} s  base RSS {:7.0f} MiB  peak RSS "
        "(VmHWM) {:7.0f} MiB\n",
        o.phase, o.tiled ? "tiled" : "untiled", fmt::format("{}", fmt::join(input.sizes(), "x")), shape, wall, cpu,
        base, peak);
    std::fflush(stdout);
    if (!o.out_dir.empty()) ipa::io::save_safetensors(output_file(o, o.phase, o.tiled), {{"out", out.cpu()}});
    return 0;
}

int run_child(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
        execv("/proc/self/exe", argv.data());
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Wan 2.1 VAE encode/decode wall time and peak memory"};
    Options o;
    app.add_option("--frames", o.frames, "video frames (1 + 4k)");
    app.add_option("--height", o.height, "pixels (multiple of 8)");
    app.add_option("--width", o.width, "pixels (multiple of 8)");
    app.add_option("--tile", o.tile, "tile h,w in latents")->delimiter(',')->expected(2);
    app.add_option("--stride", o.stride, "tile stride h,w in latents")->delimiter(',')->expected(2);
    app.add_option("--device", o.device, "cpu | cuda[:N]");
    app.add_option("--dtype", o.dtype, "fp32 | bf16");
    app.add_option("--out", o.out_dir, "directory for the outputs (default: a temporary one)");
    app.add_option("--phase", o.phase, "run one phase in this process: encode | decode")
        ->check(CLI::IsMember({"encode", "decode"}));
    app.add_flag("--tiled", o.tiled, "with --phase: tiled");
    CLI11_PARSE(app, argc, argv);
    try {
        const int threads = ipa::init_torch_threads();
        if (!o.phase.empty()) return run_phase(o);

        const bool own_dir = o.out_dir.empty();
        if (own_dir) o.out_dir = (fs::temp_directory_path() / fmt::format("bench_vae_{}", getpid())).string();
        fs::create_directories(o.out_dir);
        fmt::print(
            "bench_vae: Wan 2.1 VAE (dim 96, random weights), {} frames {}x{}, {} {}, {} threads; tiles {}x{} "
            "stride {}x{} (latents). Each row is a separate process.\n",
            o.frames, o.height, o.width, o.device, o.dtype, threads, o.tile[0], o.tile[1], o.stride[0], o.stride[1]);
        std::fflush(stdout);
        for (const std::string phase : {"encode", "decode"}) {
            for (bool tiled : {false, true}) {
                std::vector<std::string> args{argv[0],
                                              "--phase",
                                              phase,
                                              "--frames",
                                              std::to_string(o.frames),
                                              "--height",
                                              std::to_string(o.height),
                                              "--width",
                                              std::to_string(o.width),
                                              "--device",
                                              o.device,
                                              "--dtype",
                                              o.dtype,
                                              "--out",
                                              o.out_dir,
                                              "--tile",
                                              fmt::format("{},{}", o.tile[0], o.tile[1]),
                                              "--stride",
                                              fmt::format("{},{}", o.stride[0], o.stride[1])};
                if (tiled) args.push_back("--tiled");
                if (const int rc = run_child(args); rc != 0) {
                    fmt::print(stderr, "bench_vae: phase {} ({}) failed with status {}\n", phase,
                               tiled ? "tiled" : "untiled", rc);
                    return rc;
                }
            }
            const auto a =
                ipa::io::SafetensorsFile::open(output_file(o, phase, false)).tensor("out").to(torch::kDouble);
            const auto b = ipa::io::SafetensorsFile::open(output_file(o, phase, true)).tensor("out").to(torch::kDouble);
            fmt::print(
                "{:<7} tiled vs untiled: max |diff| {:.3e}, mean |diff| {:.3e} (max |untiled| {:.3f}, mean {:.3f})\n",
                phase, (a - b).abs().max().item<double>(), (a - b).abs().mean().item<double>(),
                a.abs().max().item<double>(), a.abs().mean().item<double>());
        }
        if (own_dir) fs::remove_all(o.out_dir);
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_vae: {}\n", e.what());
        return 1;
    }
    return 0;
}
