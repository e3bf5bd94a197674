#include "ipa/sample/pipeline.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>

#include "ipa/core/error.h"
#include "ipa/io/safetensors.h"
#include "ipa/lora/lora.h"
#include "ipa/media/video.h"
#include "ipa/models/t5/text_encoder.h"
#include "ipa/models/vae/loader.h"
#include "ipa/models/vae/model.h"
#include "ipa/models/wan/loader.h"
#include "ipa/models/wan/model.h"
#include "ipa/models/wan/vace_context.h"

namespace ipa::sample {
namespace fs = std::filesystem;
namespace wan = models::wan;

namespace {

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The pose video as VACE frames [3, T, H, W], T = 1 + 4k.
at::Tensor load_frames(const PipelineOptions& o) {
    at::Tensor frames;
    if (o.size || o.frames > 0) {
        media::VideoReadOptions ro;
        ro.size = o.size;
        ro.max_frames = o.frames;
        frames = media::read_video(o.pose_video, ro).frames;
    } else {
        media::ReferenceVideoOptions ro;
        ro.max_area = o.max_area;
        frames = media::read_video_reference(o.pose_video, ro).frames;
    }
    const int64_t t = frames.size(1), keep = 1 + (t - 1) / 4 * 4;
    if (o.frames > 0 && (o.frames - 1) % 4 != 0) throw ConfigError(fmt::format("frames {} is not 1 + 4k", o.frames));
    if (keep < t) {
        spdlog::info("pose video: using {} of {} frames (1 + 4k)", keep, t);
        frames = frames.narrow(1, 0, keep);
    }
    if (frames.size(2) % 16 != 0 || frames.size(3) % 16 != 0) {
        throw ConfigError(fmt::format("the video size {}x{} is not a multiple of 16; pass --size HxW", frames.size(2),
                                      frames.size(3)));
    }
    return frames;
}

/// [prompt, negative] embeddings [L, text_dim] (float32, CPU).
std::pair<at::Tensor, at::Tensor> load_contexts(const PipelineOptions& o, int64_t text_dim, int64_t text_len) {
    if (!o.context_file.empty()) {
        const auto c = models::t5::load_contexts_safetensors(o.context_file, text_dim, text_len);
        if (c.size() != 2) {
            throw DataError(
                fmt::format("'{}' holds {} prompt embedding(s); ipa-sample needs two (prompt, negative "
                            "prompt: `ipa-inspect encode-prompt --prompt P --prompt N`)",
                            o.context_file.string(), c.size()));
        }
        return {c[0].to(torch::kFloat32), c[1].to(torch::kFloat32)};
    }
    if (o.text_encoder.empty() || o.tokenizer.empty()) {
        throw ConfigError("give --text-encoder and --tokenizer, or --context with precomputed embeddings");
    }
    models::t5::TextEncoderOptions to;
    to.device = o.device;
    to.text_len = text_len;  // the DiT's text_len (512 for Wan): longer prompts are truncated as upstream
    models::t5::TextEncoder te(o.text_encoder, o.tokenizer, to);
    auto c = te.encode({o.prompt, o.negative_prompt});
    return {c[0].to(torch::kCPU, torch::kFloat32), c[1].to(torch::kCPU, torch::kFloat32)};
}

}  // namespace

PipelineResult run_pipeline(const PipelineOptions& o) {
    const auto t_start = std::chrono::steady_clock::now();
    if (o.out.empty()) throw ConfigError("no output path (--out)");
    const auto cfg = wan::WanConfig::resolve(o.model);
    if (!cfg.is_vace()) throw ConfigError(fmt::format("model '{}' is not a VACE model; ipa-sample needs one", o.model));

    // 1. Inputs and VACE conditioning (VAE in fp32, as the reference).
    const auto frames = load_frames(o);
    const int64_t H = frames.size(2), W = frames.size(3);
    std::vector<at::Tensor> refs;
    if (!o.reference_image.empty()) {
        refs.push_back(media::letterbox_reference(media::read_image(o.reference_image), H, W).unsqueeze(1));
    }
    std::shared_ptr<models::vae::WanVAEImpl> vae;
    if (o.vae.empty()) {
        spdlog::warn("no --vae: a randomly initialised tiny VAE is used — fine for a smoke test, meaningless output");
        torch::manual_seed(o.seed);
        vae = std::make_shared<models::vae::WanVAEImpl>(models::vae::VaeConfig::preset("tiny"));
        vae->to(o.device);
    } else {
        vae = models::vae::load_wan_vae(o.vae, o.device, c10::kFloat);
    }
    const wan::VideoEncoder encode = [&](const at::Tensor& v) {
        return vae->encode(v.to(o.device), o.vae_tiling).cpu();
    };
    const auto vace = wan::vace_context(frames, {}, refs, encode);  // [96, n_ref + T_lat, h, w]
    spdlog::info("VACE context [{}] from {} frames at {}x{}{}", fmt::join(vace.sizes(), ", "), frames.size(1), H, W,
                 refs.empty() ? "" : " + reference image");
    if (vace.size(0) != cfg.vace_in_dim) {
        throw ConfigError(fmt::format("model '{}' takes {} VACE channels, the conditioning has {}", o.model,
                                      cfg.vace_in_dim, vace.size(0)));
    }

    // 2. Text.
    const auto [ctx, ctx_null] = load_contexts(o, cfg.text_dim, cfg.text_len);

    // 3. DiT (+ adapter).
    std::shared_ptr<wan::WanModelImpl> model;
    if (o.weights.empty()) {
        spdlog::warn("no --weights: the DiT is randomly initialised (seed {}) — a smoke test only", o.seed);
        torch::manual_seed(o.seed);
        model = wan::make_wan_model(cfg);
        model->to(o.device);
        model->set_dtype(o.dtype);
    } else {
        wan::WanLoadOptions lo;
        lo.dtype = o.dtype;
        lo.device = o.device;
        model = wan::load_wan_model(cfg, o.weights, lo);
    }
    if (!o.lora.empty()) {
        const auto mods = lora::load_adapter(*model, o.lora, /*strict=*/true);
        lora::set_lora_multiplier(*model, o.lora_multiplier);
        lora::merge_lora(*model);  // no per-step adapter cost
        spdlog::info("adapter {} merged into {} modules (multiplier {})", o.lora.string(), mods.size(),
                     o.lora_multiplier);
    }
    model->eval();

    // 4. Sample: noise [16, n_ref + T_lat, h, w], drawn in one call.
    std::vector<int64_t> shape{cfg.out_dim, vace.size(1), vace.size(2), vace.size(3)};
    const auto noise = initial_noise(shape, o.seed, o.device);
    const auto velocity = wan_velocity(*model, vace, ctx, ctx_null, o.context_scale);
    const auto sampled = sample_flow(noise, velocity, o.sampling);
    model.reset();
    auto latents = sampled.latents.cpu().narrow(1, static_cast<int64_t>(refs.size()),
                                                sampled.latents.size(1) - static_cast<int64_t>(refs.size()));
    if (!o.save_latents.empty()) io::save_safetensors(o.save_latents, {{"latents", latents.contiguous()}});

    // 5. Decode and write.
    const auto video = vae->decode(latents.to(o.device), o.vae_tiling).cpu();
    media::VideoWriteOptions wo;
    wo.fps = 16;  // Wan's output rate
    media::write_video(o.out, video, wo);
    PipelineResult r;
    r.frames = video.size(1);
    r.height = video.size(2);
    r.width = video.size(3);
    r.sample_seconds = sampled.seconds;
    r.total_seconds = since(t_start);
    return r;
}

}  // namespace ipa::sample
