#include "ipa/tools/vae_tools.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>

#include "ipa/core/error.h"
#include "ipa/io/safetensors.h"
#include "ipa/media/video.h"
#include "ipa/models/vae/loader.h"
#include "ipa/models/vae/model.h"

namespace ipa::tools {
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool is_safetensors(const fs::path& p) { return p.extension() == ".safetensors"; }

at::Tensor tensor_from(const fs::path& file, const std::string& name, int64_t channels) {
    const auto f = io::SafetensorsFile::open(file);
    if (!f.contains(name)) {
        throw DataError(
            fmt::format("'{}' has no tensor '{}' (it holds {} tensors)", file.string(), name, f.tensors().size()));
    }
    auto t = f.tensor(name).to(torch::kFloat32).clone();
    if (t.dim() != 4 || t.size(0) != channels) {
        throw DataError(fmt::format("'{}': '{}' must be [{}, T, H, W], got [{}]", file.string(), name, channels,
                                    fmt::join(t.sizes(), ", ")));
    }
    return t;
}

}  // namespace

std::string vae_encode_file(const fs::path& vae_path, const fs::path& input, const fs::path& out,
                            const VaeFileOptions& o) {
    at::Tensor video;
    if (is_safetensors(input)) {
        video = tensor_from(input, "video", 3);
    } else {
        media::VideoReadOptions ro;
        ro.size = o.size;
        video = media::read_video(input, ro).frames;
    }
    int64_t t = video.size(1);
    const int64_t keep = o.frames > 0 ? o.frames : 1 + (t - 1) / 4 * 4;
    if ((keep - 1) % 4 != 0) throw ConfigError(fmt::format("--frames {} is not 1 + 4k", keep));
    if (keep > t) throw DataError(fmt::format("'{}' has {} frames, {} asked for", input.string(), t, keep));
    if (keep < t) spdlog::info("using the first {} of {} frames (the VAE takes 1 + 4k)", keep, t);
    video = video.narrow(1, 0, keep);
    const auto t0 = std::chrono::steady_clock::now();
    auto vae = models::vae::load_wan_vae(vae_path, o.device, o.dtype);
    const double load_s = seconds_since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    const auto z = vae->encode(video.to(o.device), o.tiling).cpu();
    const double enc_s = seconds_since(t1);
    io::save_safetensors(out, {{"latents", z}},
                         {{"source", input.string()},
                          {"vae", vae_path.string()},
                          {"video_shape", fmt::format("{}", fmt::join(video.sizes(), "x"))},
                          {"tiled", o.tiling.enabled ? "true" : "false"}});
    return fmt::format("encoded [{}] -> latents [{}] in {:.2f} s (load {:.2f} s) -> {}", fmt::join(video.sizes(), ", "),
                       fmt::join(z.sizes(), ", "), enc_s, load_s, out.string());
}

std::string vae_decode_file(const fs::path& vae_path, const fs::path& input, const fs::path& out,
                            const VaeFileOptions& o) {
    const auto z = tensor_from(input, "latents", 16);
    const auto t0 = std::chrono::steady_clock::now();
    auto vae = models::vae::load_wan_vae(vae_path, o.device, o.dtype);
    const double load_s = seconds_since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    const auto video = vae->decode(z.to(o.device), o.tiling).cpu();
    const double dec_s = seconds_since(t1);
    if (is_safetensors(out)) {
        io::save_safetensors(out, {{"video", video}}, {{"source", input.string()}, {"vae", vae_path.string()}});
    } else {
        media::VideoWriteOptions wo;
        wo.fps = o.fps;
        media::write_video(out, video, wo);
    }
    return fmt::format("decoded latents [{}] -> video [{}] in {:.2f} s (load {:.2f} s) -> {}",
                       fmt::join(z.sizes(), ", "), fmt::join(video.sizes(), ", "), dec_s, load_s, out.string());
}

}  // namespace ipa::tools
