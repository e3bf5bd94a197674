// ipa-inspect: look inside checkpoints, adapters and tensors; run one model forward.
//   ipa-inspect keys PATH [--grep S] [--json] [--totals]
//   ipa-inspect check --model CFG|auto --weights PATH [--dtype fp32|bf16] [--non-strict]
//   ipa-inspect forward --model CFG --weights W --inputs IN.safetensors --out OUT.safetensors
//   ipa-inspect merge-lora --weights W --lora ADAPTER --out MERGED.safetensors [--multiplier 1]
//   ipa-inspect convert-lora --lora ADAPTER --to diffusers|comfyui|diffsynth|ipa --out OUT.safetensors
//   ipa-inspect bench-forward [--model tiny] [--latent F H W] [--layers N] [--dtype] [--iters]
//   ipa-inspect vae --vae W (--encode video.mp4|IN.safetensors | --decode LAT.safetensors) --out OUT [--tiled]
//   ipa-inspect encode-prompt --text-encoder T --tokenizer DIR --prompt "..." [--prompt ...] --out E.safetensors

#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "ipa/build_config.h"
#include "ipa/core/allocator.h"
#include "ipa/core/error.h"
#include "ipa/core/logging.h"
#include "ipa/core/run_context.h"
#include "ipa/core/torch_compat.h"
#include "ipa/dist/process_group.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/summary.h"
#include "ipa/lora/lora.h"
#include "ipa/tools/inspect.h"
#include "ipa/tools/vae_tools.h"  // declarations only; defined in ipa_media_tools (IPA_WITH_MEDIA)
#if IPA_WITH_MEDIA
#include "ipa/models/t5/text_encoder.h"
#endif

namespace {

int fail(const std::exception& e) { return ipa::report_cli_error("ipa-inspect", e); }

std::string version_report() {
    std::ostringstream o;
    const auto q = torch::randn({1, 2, 64, 32});
    const auto mask = torch::ones({1, 1, 1, 64}, torch::kBool);
    std::string backends;
    for (const auto& b : ipa::dist::compiled_backends()) backends += (backends.empty() ? "" : ", ") + b;
    o << "ipa " << IPA_VERSION << "\n"
      << "LibTorch " << ipa::compat::torch_version() << (IPA_WITH_CUDA ? " (CUDA build)" : " (CPU build)") << "\n"
      << "CUDA device: "
      << (ipa::compat::cuda_available() ? ipa::compat::cuda_device_name(0) : std::string("none usable")) << "\n"
      << "attention on CPU (fp32, key-padding mask): " << ipa::compat::attention_backend(q, q, q, mask) << "\n"
      << "process groups: " << (backends.empty() ? std::string("none (single process only)") : backends) << "\n"
      << "media parts (OpenCV, SentencePiece): " << (IPA_WITH_MEDIA ? "yes" : "no (IPA_WITH_MEDIA=OFF)") << "\n"
      << "host allocator: " << ipa::host_allocator() << " (built for: " << IPA_HOST_ALLOCATOR << ")\n"
      << "idle threads: " << ipa::thread_settings() << "\n";
    return o.str();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ipa-inspect: look inside checkpoints, adapters and tensors"};
    app.require_subcommand(1);
    std::string log_level = "warn";
    app.add_option("--log-level", log_level, "trace|debug|info|warn|error");

    auto* version = app.add_subcommand("version",
                                       "Print what this build contains (LibTorch, CUDA, attention "
                                       "kernel, process groups, media parts)");

    std::string keys_path;
    ipa::io::KeyListOptions keys_opts;
    auto* keys = app.add_subcommand("keys",
                                    "List tensors (name, dtype, shape) and totals of a checkpoint: a .safetensors "
                                    "file, a shard index, a checkpoint directory or a PyTorch .pth");
    keys->add_option("path", keys_path, "checkpoint file or directory")->required();
    keys->add_option("--grep", keys_opts.contains, "only names containing this text");
    keys->add_flag("--json", keys_opts.json, "print JSON");
    keys->add_flag("--totals", keys_opts.totals_only, "print only the totals");

    std::string model_cfg = "auto", weights, dtype = "fp32", device = "cpu", inputs, output;
    bool non_strict = false;
    auto* check = app.add_subcommand("check",
                                     "Check that weights load into a model config (names and shapes, "
                                     "strict); no memory is allocated for the model");
    check->add_option("--model", model_cfg, "model YAML, preset name, or auto (detect from shapes)");
    check->add_option("--weights", weights, "weights: file, shard index or release directory")->required();
    check->add_option("--dtype", dtype, "fp32 | bf16");
    check->add_flag("--non-strict", non_strict, "report problems instead of failing");

    auto* forward = app.add_subcommand("forward",
                                       "One DiT forward on saved tensors (x, t, context, "
                                       "[vace_context, seq_len, context_scale]) -> out");
    forward->add_option("--model", model_cfg, "model YAML, preset name, or auto");
    forward->add_option("--weights", weights, "weights")->required();
    forward->add_option("--inputs", inputs, "input tensors (safetensors)")->required();
    forward->add_option("--out", output, "output safetensors (tensor 'out')")->required();
    forward->add_option("--dtype", dtype, "fp32 | bf16");
    forward->add_option("--device", device, "cpu | cuda[:N] | auto");

    std::string lora_path;
    double multiplier = 1.0;
    auto* merge = app.add_subcommand("merge-lora",
                                     "Write base weights with a LoRA adapter merged in (tensor by "
                                     "tensor; same keys and dtypes as the base)");
    merge->add_option("--weights", weights, "base weights: file, shard index or release directory")->required();
    merge->add_option("--lora", lora_path, "adapter (.safetensors; a .vace.safetensors sibling is included)")
        ->required();
    merge->add_option("--out", output, "merged safetensors file")->required();
    merge->add_option("--multiplier", multiplier, "adapter strength");

    std::string spelling;
    auto* convert = app.add_subcommand("convert-lora",
                                       "Rewrite a LoRA adapter in the spelling a peer loads (diffusers' "
                                       "load_lora_weights, ComfyUI, DiffSynth-Studio's load_lora, ipa)");
    convert
        ->add_option("--lora", lora_path, "adapter in any spelling ipa reads (a .vace.safetensors sibling is included)")
        ->required();
    convert->add_option("--to", spelling, "diffusers | comfyui | diffsynth | ipa")
        ->required()
        ->check(CLI::IsMember({"diffusers", "comfyui", "diffsynth", "ipa"}));
    convert
        ->add_option("--out", output,
                     "output .safetensors (diffsynth/ipa: VACE-block adapters go to its .vace.safetensors sibling)")
        ->required();

    ipa::tools::BenchForwardOptions bench;
    std::vector<int64_t> latent{3, 16, 16};
    std::string bench_dtype = "fp32", bench_device = "cpu";
    auto* bf = app.add_subcommand("bench-forward", "Time forward and forward+backward on random weights");
    bf->add_option("--model", bench.model, "model YAML or preset");
    bf->add_option("--latent", latent, "latent frames, height, width")->expected(3);
    bf->add_option("--batch", bench.batch, "batch size");
    bf->add_option("--layers", bench.layers, "override the number of blocks (e.g. 1 block of a 14B shape)");
    bf->add_option("--dtype", bench_dtype, "fp32 | bf16");
    bf->add_option("--device", bench_device, "cpu | cuda[:N] | auto");
    bf->add_option("--iters", bench.iters, "timed iterations");
    bf->add_option("--warmup", bench.warmup, "untimed iterations");
    bf->add_flag("--grad-checkpointing", bench.grad_checkpointing, "recompute blocks in backward");
    bf->add_flag("!--no-backward", bench.backward, "time the forward only");

    std::string vae_path, encode_in, decode_in, vae_dtype = "fp32", vae_device = "cpu", vae_size;
    ipa::tools::VaeFileOptions vae_opts;
    auto* vae = app.add_subcommand("vae",
                                   "Wan VAE: encode a video (or safetensors 'video' [3,T,H,W]) to 'latents', "
                                   "or decode 'latents' to a video / PNG frames / safetensors");
    vae->add_option("--vae", vae_path, "VAE weights (Wan2.1_VAE.pth, .safetensors, diffusers/ComfyUI spellings)")
        ->required();
    auto* enc_opt = vae->add_option("--encode", encode_in, "video file, frame directory or .safetensors ('video')");
    auto* dec_opt = vae->add_option("--decode", decode_in, ".safetensors with 'latents' [16, t, h, w]");
    enc_opt->excludes(dec_opt);
    vae->add_option("--out", output, "encode: .safetensors; decode: .mp4 | frame dir | .safetensors")->required();
    vae->add_option("--frames", vae_opts.frames, "encode: frames to use (1 + 4k; default: as many as fit)");
    vae->add_option("--size", vae_size, "encode: resize + centre crop to HxW (e.g. 480x832)");
    vae->add_option("--fps", vae_opts.fps, "decode: output frame rate");
    vae->add_flag("--tiled", vae_opts.tiling.enabled, "spatial tiles with blended overlaps (less memory)");
    vae->add_option("--tile", vae_opts.tiling.tile_h, "tile size in latents (square)");
    vae->add_option("--dtype", vae_dtype, "fp32 | bf16");
    vae->add_option("--device", vae_device, "cpu | cuda[:N] | auto");

    std::string text_encoder, tokenizer, te_dtype = "bf16", te_device = "cpu";
    std::vector<std::string> prompts;
    auto* ep = app.add_subcommand("encode-prompt",
                                  "umT5: prompts -> text embeddings (safetensors 'context' [L, 4096], "
                                  "or 'context.i' for several prompts)");
    ep->add_option("--text-encoder", text_encoder, "models_t5_umt5-xxl-enc-bf16.pth (or HF UMT5 safetensors)")
        ->required();
    ep->add_option("--tokenizer", tokenizer, "the google/umt5-xxl folder (spiece.model)")->required();
    ep->add_option("--prompt", prompts, "prompt text (repeatable; each is encoded on its own)")->required();
    ep->add_option("--out", output, "output safetensors")->required();
    ep->add_option("--dtype", te_dtype, "bf16 (the reference) | fp32");
    ep->add_option("--device", te_device, "cpu | cuda[:N] | auto");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        ipa::log::init(0, log_level);
        ipa::init_torch_threads();
        if (*version) {
            std::cout << version_report();
        } else if (*keys) {
            const auto ckpt = ipa::io::Checkpoint::open(keys_path);
            std::cout << ipa::io::format_key_list(ckpt, keys_opts);
        } else if (*check) {
            std::cout << ipa::tools::check_weights(model_cfg, weights, ipa::parse_dtype(dtype), !non_strict);
        } else if (*forward) {
            std::cout << ipa::tools::forward_file(model_cfg, weights, inputs, output, ipa::parse_dtype(dtype),
                                                  ipa::parse_device(device))
                      << "\n";
        } else if (*merge) {
            ipa::lora::merge_lora_checkpoint(weights, lora_path, output, multiplier);
            std::cout << "wrote " << output << "\n";
        } else if (*convert) {
            for (const auto& f :
                 ipa::lora::convert_adapter(lora_path, output, ipa::lora::parse_adapter_spelling(spelling)))
                std::cout << "wrote " << f.string() << "\n";
        } else if (*bf) {
            bench.frames = latent[0];
            bench.height = latent[1];
            bench.width = latent[2];
            bench.dtype = ipa::parse_dtype(bench_dtype);
            bench.device = ipa::parse_device(bench_device);
            std::cout << ipa::tools::bench_forward(bench);
#if IPA_WITH_MEDIA
        } else if (*vae) {
            if (encode_in.empty() == decode_in.empty()) throw ipa::ConfigError("vae: give one of --encode or --decode");
            if (!vae_size.empty()) {
                int64_t h = 0, w = 0;
                char x = 0;
                std::istringstream in(vae_size);
                if (!(in >> h >> x >> w) || x != 'x' || h <= 0 || w <= 0 || !in.eof()) {
                    throw ipa::ConfigError("--size '" + vae_size + "' is not HxW (e.g. 480x832)");
                }
                vae_opts.size = std::make_pair(h, w);
            }
            vae_opts.tiling.tile_w = vae_opts.tiling.tile_h;
            vae_opts.tiling.stride_h = std::min(vae_opts.tiling.stride_h, vae_opts.tiling.tile_h);
            vae_opts.tiling.stride_w = std::min(vae_opts.tiling.stride_w, vae_opts.tiling.tile_w);
            vae_opts.dtype = ipa::parse_dtype(vae_dtype);
            vae_opts.device = ipa::parse_device(vae_device);
            std::cout << (encode_in.empty() ? ipa::tools::vae_decode_file(vae_path, decode_in, output, vae_opts)
                                            : ipa::tools::vae_encode_file(vae_path, encode_in, output, vae_opts))
                      << "\n";
        } else if (*ep) {
            ipa::models::t5::encode_prompts_to_file(text_encoder, tokenizer, prompts, output,
                                                    ipa::parse_device(te_device), ipa::parse_dtype(te_dtype));
            std::cout << "wrote " << prompts.size() << " prompt embedding(s) to " << output << "\n";
#else
        } else if (*vae || *ep) {
            throw ipa::ConfigError(std::string(*vae ? "vae" : "encode-prompt") +
                                   ": this build of ipa has no media support (configured with IPA_WITH_MEDIA=OFF: no "
                                   "OpenCV / SentencePiece); use a full build for the VAE and text-encoder verbs");
#endif
        }
        return 0;
    } catch (const std::exception& e) {
        return fail(e);
    }
}
