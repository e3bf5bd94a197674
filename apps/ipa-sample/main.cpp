// ipa-sample: reference image + pose video (+ prompt) -> animated video with a VACE model
// (optionally with an IPA adapter), by reverse flow matching (UniPC, CFG), as the
// official Wan VACE pipeline.
//   ipa-sample --model vace-14b --weights /models/Wan2.1-VACE-14B --lora runs/ipa/latest/adapter.safetensors
//              --vae .../Wan2.1_VAE.pth --text-encoder .../models_t5_umt5-xxl-enc-bf16.pth
//              --tokenizer .../google/umt5-xxl --pose pose.mp4 --ref ref.png --prompt "a woman dancing" --out out.mp4

#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "ipa/core/error.h"
#include "ipa/core/logging.h"
#include "ipa/core/run_context.h"
#include "ipa/sample/pipeline.h"

int main(int argc, char** argv) {
    CLI::App app{"ipa-sample: reference image + pose video -> animated video (Wan VACE, reverse flow matching)"};
    ipa::sample::PipelineOptions o;
    std::string log_level = "info", dtype = "bf16", device = "auto", sampler = "unipc", size, weights, lora, vae, te,
                tok, ctx, pose, ref, out, latents;
    bool tiled = false, no_progress = false;
    app.add_option("--model", o.model, "model YAML or preset (vace-14b, vace-1.3b, tiny)");
    app.add_option("--weights", weights, "DiT weights: release dir, shard index or file (omit: random, smoke test)");
    app.add_option("--lora", lora, "IPA/LoRA adapter (.safetensors; a .vace sibling is included)");
    app.add_option("--lora-multiplier", o.lora_multiplier, "adapter strength");
    app.add_option("--vae", vae, "Wan2.1_VAE.pth (omit: random tiny VAE, smoke test)");
    app.add_option("--text-encoder", te, "models_t5_umt5-xxl-enc-bf16.pth");
    app.add_option("--tokenizer", tok, "google/umt5-xxl folder");
    app.add_option("--context", ctx,
                   "precomputed embeddings instead (ipa-inspect encode-prompt --prompt P --prompt N)");
    app.add_option("--pose", pose, "pose video (VACE control frames)")->required();
    app.add_option("--ref", ref, "reference image (letterboxed on white)");
    app.add_option("--prompt", o.prompt, "prompt");
    app.add_option("--negative-prompt", o.negative_prompt, "negative prompt (default: Wan's)");
    app.add_option("--frames", o.frames, "frames to generate (1 + 4k; default: from the video, <= 81 at 480p)");
    app.add_option("--size", size, "HxW, multiples of 16 (default: from the video's aspect and --max-area)");
    app.add_option("--max-area", o.max_area, "target H*W when --size is not given");
    app.add_option("--sampler", sampler, "unipc | dpm++ | euler");
    app.add_option("--steps", o.sampling.sampler.steps, "sampling steps");
    app.add_option("--shift", o.sampling.sampler.shift, "sigma shift");
    app.add_option("--guide-scale", o.sampling.guide_scale, "classifier-free guidance scale");
    app.add_option("--context-scale", o.context_scale, "VACE hint scale");
    app.add_option("--seed", o.seed, "noise seed");
    app.add_option("--dtype", dtype, "DiT dtype: bf16 | fp32");
    app.add_option("--device", device, "cpu | cuda[:N] | auto");
    app.add_flag("--tiled-vae", tiled, "VAE in spatial tiles (less memory)");
    app.add_option("--out", out, "output video (.mp4) or PNG frame directory")->required();
    app.add_option("--save-latents", latents, "also write the sampled latents (safetensors)");
    app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
    app.add_flag("--no-progress", no_progress, "log lines instead of a progress bar");
    CLI11_PARSE(app, argc, argv);
    try {
        ipa::log::init(0, log_level);
        ipa::init_torch_threads();
        o.weights = weights;
        o.lora = lora;
        o.vae = vae;
        o.text_encoder = te;
        o.tokenizer = tok;
        o.context_file = ctx;
        o.pose_video = pose;
        o.reference_image = ref;
        o.out = out;
        o.save_latents = latents;
        o.dtype = ipa::parse_dtype(dtype);
        o.device = ipa::parse_device(device);
        o.sampling.sampler.kind = ipa::flow::parse_sampler(sampler);
        o.sampling.progress = !no_progress;
        o.vae_tiling.enabled = tiled;
        if (!size.empty()) {
            int64_t h = 0, w = 0;
            char x = 0;
            std::istringstream in(size);
            if (!(in >> h >> x >> w) || x != 'x' || h <= 0 || w <= 0 || !in.eof()) {
                throw ipa::ConfigError("--size '" + size + "' is not HxW (e.g. 480x832)");
            }
            o.size = std::make_pair(h, w);
        }
        const auto r = ipa::sample::run_pipeline(o);
        std::printf("wrote %s: %lld frames at %lldx%lld (sampling %.1f s, total %.1f s)\n", out.c_str(),
                    static_cast<long long>(r.frames), static_cast<long long>(r.height), static_cast<long long>(r.width),
                    r.sample_seconds, r.total_seconds);
        return 0;
    } catch (const std::exception& e) {
        return ipa::report_cli_error("ipa-sample", e);
    }
}
