// bench_gpu: the numbers of the GPU check (scripts/gpu-check.sh), on random weights made on
// the device (no download):
//   vae      Wan 2.1 VAE decode of --vae-latent-frames latent frames (fp32, as the reference)
//   forward  one DiT forward (no grad) at the full shape
//   train    one IPA + HALO training step: QKV LoRA, gradient checkpointing, phases timed
//            (reference forward, policy forward, backward, optimizer), median of --iters
//            after --warmup
//   sample   one UniPC sampling step with classifier-free guidance (two forwards + solver)
// Default shape: VACE-14B at 480x832, 81 frames + the reference frame = latents
// 16 x 22 x 60 x 104 = 34,320 tokens. Writes a markdown table and a JSON report.
//   bench_gpu --model vace-14b --device cuda --dtype bf16 --json out.json --markdown out.md
//   bench_gpu --model tiny --device cpu --latent 3 8 8 --iters 1 --warmup 0 --vae tiny   # smoke test

#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "ipa/build_config.h"
#include "ipa/core/error.h"
#include "ipa/core/logging.h"
#include "ipa/core/run_context.h"
#include "ipa/core/torch_compat.h"
#include "ipa/flow/sampler.h"
#include "ipa/lora/lora.h"
#include "ipa/loss/flow_losses.h"
#include "ipa/models/vae/config.h"
#include "ipa/models/vae/model.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/model.h"

namespace wan = ipa::models::wan;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    std::string model = "vace-14b";
    std::vector<int64_t> latent{22, 60, 104};  ///< latent frames (incl. reference), height, width
    int64_t ref_frames = 1;
    int64_t context_len = 128;
    int64_t rank = 128;
    int warmup = 1, iters = 3;
    std::string dtype = "bf16", device = "cuda", vae = "wan2.1";
    int64_t vae_latent_frames = 21;
    bool grad_checkpointing = true;
    std::vector<std::string> what{"vae", "forward", "train", "sample"};
    std::string json, markdown;
};

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double gib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

/// Times `fn` (synchronised) `warmup + iters` times; returns the `iters` timings.
template <class F>
std::vector<double> timed(const c10::Device& dev, int warmup, int iters, F&& fn) {
    std::vector<double> out;
    for (int i = 0; i < warmup + iters; ++i) {
        ipa::compat::synchronize(dev);
        const auto t0 = Clock::now();
        fn();
        ipa::compat::synchronize(dev);
        if (i >= warmup) out.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    return out;
}

/// Multiply-add FLOPs of one DiT forward: every Linear of the blocks on its tokens, plus
/// self-attention (QKᵀ and AV: 4·L²·dim per block) and cross-attention (4·L·Lc·dim).
double forward_flops(const wan::WanConfig& cfg, int64_t tokens, int64_t context_len) {
    const double d = static_cast<double>(cfg.dim), f = static_cast<double>(cfg.ffn_dim);
    const double linear_per_block = 4 * d * d /*self qkvo*/ + 4 * d * d /*cross qkvo*/ + 2 * d * f /*ffn*/;
    double blocks = static_cast<double>(cfg.num_layers);
    if (cfg.is_vace()) blocks += static_cast<double>(cfg.vace_layers.size());
    const double L = static_cast<double>(tokens), Lc = static_cast<double>(context_len);
    return blocks * (2 * L * linear_per_block + 4 * L * L * d + 4 * L * Lc * d);
}

nlohmann::json bench_vae(const Options& o, const c10::Device& dev) {
    const auto cfg = ipa::models::vae::VaeConfig::preset(o.vae);
    auto vae = ipa::models::vae::WanVAE(cfg, torch::TensorOptions().device(dev));
    const auto z =
        torch::randn({1, cfg.z_dim, o.vae_latent_frames, o.latent[1], o.latent[2]}, torch::TensorOptions().device(dev));
    ipa::compat::reset_peak_memory(dev);
    const auto t = timed(dev, std::min(o.warmup, 1), std::max(1, std::min(o.iters, 2)), [&] { vae->decode(z); });
    nlohmann::json j;
    j["latent"] = {o.vae_latent_frames, o.latent[1], o.latent[2]};
    j["frames_out"] = 1 + 4 * (o.vae_latent_frames - 1);
    j["decode_s"] = median(t);
    j["peak_gib"] = gib(ipa::compat::peak_memory_bytes(dev));
    return j;
}

struct DiT {
    wan::WanConfig cfg;
    std::shared_ptr<wan::WanModelImpl> model;
    wan::WanInputs in;
    int64_t tokens = 0;
};

DiT make_dit(const Options& o, const c10::Device& dev, c10::ScalarType dtype) {
    DiT d;
    d.cfg = wan::WanConfig::resolve(o.model);
    // Random weights made where they run; bf16 straight away (a 14B model in fp32 would
    // need 69 GB before the cast), then the reference's fp32 islands.
    auto init = torch::TensorOptions().device(dev).dtype(dev.is_cuda() ? dtype : torch::kFloat);
    torch::manual_seed(0);
    d.model = wan::make_wan_model(d.cfg, init);
    d.model->set_dtype(dtype);
    d.model->set_gradient_checkpointing(o.grad_checkpointing);
    const auto f32 = torch::TensorOptions().device(dev);
    const int64_t F = o.latent[0], H = o.latent[1], W = o.latent[2];
    d.in.x = torch::randn({1, d.cfg.in_dim, F, H, W}, f32);
    d.in.t = torch::full({1}, 500.0, f32);
    d.in.context = torch::randn({1, o.context_len, d.cfg.text_dim}, f32);
    if (d.cfg.is_vace()) {
        const int64_t vc = d.cfg.vace_in_dim > 0 ? d.cfg.vace_in_dim : d.cfg.in_dim;
        d.in.vace_context = torch::randn({1, vc, F, H, W}, f32);
    }
    d.tokens = F / d.cfg.patch_size[0] * (H / d.cfg.patch_size[1]) * (W / d.cfg.patch_size[2]);
    return d;
}

nlohmann::json bench_forward(const Options& o, DiT& d, const c10::Device& dev) {
    torch::NoGradGuard g;
    d.model->eval();
    ipa::compat::reset_peak_memory(dev);
    const auto t = timed(dev, o.warmup, o.iters, [&] { d.model->forward(d.in); });
    const double s = median(t);
    const double flops = forward_flops(d.cfg, d.tokens, o.context_len);
    return {{"s", s},
            {"tokens_per_s", d.tokens / s},
            {"tflops", flops / s / 1e12},
            {"peak_gib", gib(ipa::compat::peak_memory_bytes(dev))}};
}

nlohmann::json bench_train(const Options& o, DiT& d, const c10::Device& dev) {
    ipa::lora::LoRAConfig lc;
    lc.rank = o.rank;
    lc.alpha = static_cast<double>(o.rank);
    const auto adapted = ipa::lora::attach_lora(*d.model, lc, 0);
    auto params = ipa::lora::lora_parameters(*d.model);
    torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-4).weight_decay(0.0));
    d.model->train();
    const auto f32 = torch::TensorOptions().device(dev);
    const auto target = torch::randn_like(d.in.x);
    const int64_t F = o.latent[0], H = o.latent[1], W = o.latent[2];
    const auto hand = (torch::rand({1, 1, F - o.ref_frames, H, W}, f32) > 0.9).to(torch::kFloat);
    const auto weights = ipa::loss::halo_weights(hand, o.ref_frames, 10.0, d.in.x.sizes());
    const auto sigma = torch::full({1}, 0.5, f32);
    std::vector<double> ref_s, pol_s, bwd_s, opt_s, total_s;
    ipa::compat::reset_peak_memory(dev);
    double loss_value = 0;
    for (int i = 0; i < o.warmup + o.iters; ++i) {
        auto lap = [&, t = Clock::now()]() mutable {
            ipa::compat::synchronize(dev);
            const auto now = Clock::now();
            const double s = std::chrono::duration<double>(now - t).count();
            t = now;
            return s;
        };
        const auto t0 = Clock::now();
        at::Tensor err_ref;
        {
            torch::NoGradGuard ng;
            ipa::lora::ReferenceMode reference(*d.model);
            err_ref = ipa::loss::weighted_error(d.model->forward(d.in), target, weights);
        }
        const double a = lap();
        const auto err = ipa::loss::weighted_error(d.model->forward(d.in), target, weights);
        const auto terms = ipa::loss::flow_ipa_loss(err, err_ref, sigma, 600.0, true);
        const double b = lap();
        terms.loss.backward();
        const double c = lap();
        torch::nn::utils::clip_grad_norm_(params, 1.0);
        opt.step();
        opt.zero_grad();
        const double e = lap();
        loss_value = terms.loss.item<double>();
        if (i >= o.warmup) {
            ref_s.push_back(a);
            pol_s.push_back(b);
            bwd_s.push_back(c);
            opt_s.push_back(e);
            total_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        }
    }
    const double s = median(total_s);
    const double fwd = forward_flops(d.cfg, d.tokens, o.context_len);
    nlohmann::json j{{"step_s", s},
                     {"reference_forward_s", median(ref_s)},
                     {"policy_forward_s", median(pol_s)},
                     {"backward_s", median(bwd_s)},
                     {"optimizer_s", median(opt_s)},
                     {"tokens_per_s", d.tokens / s},
                     // Useful work: reference + policy forward + backward (input gradients,
                     // frozen base ≈ one forward); the checkpoint recompute is not counted.
                     {"tflops", 3 * fwd / s / 1e12},
                     {"peak_gib", gib(ipa::compat::peak_memory_bytes(dev))},
                     {"lora_modules", adapted.size()},
                     {"lora_params_m", ipa::lora::count_lora_parameters(*d.model) / 1e6},
                     {"loss", loss_value}};
    ipa::lora::detach_lora(*d.model);
    return j;
}

nlohmann::json bench_sample(const Options& o, DiT& d, const c10::Device& dev) {
    torch::NoGradGuard g;
    d.model->eval();
    ipa::flow::SamplerOptions so;  // UniPC, 50 steps, shift 16 (the VACE default)
    auto sampler = ipa::flow::make_sampler(so);
    auto uncond = d.in;
    uncond.context = torch::randn_like(d.in.context);
    auto x = d.in.x.clone();
    ipa::compat::reset_peak_memory(dev);
    const auto t = timed(dev, o.warmup, o.iters, [&] {
        auto cond = d.in;
        cond.x = x;
        uncond.x = x;
        cond.t = uncond.t = torch::full({1}, sampler->timestep(sampler->step_index()), d.in.t.options());
        const auto v = ipa::flow::guide(d.model->forward(cond), d.model->forward(uncond), 5.0);
        x = sampler->step(v, x);
    });
    return {{"step_s", median(t)}, {"peak_gib", gib(ipa::compat::peak_memory_bytes(dev))}};
}

std::string markdown(const nlohmann::json& r) {
    std::string m =
        fmt::format("# ipa GPU benchmark\n\n{} · LibTorch {} · model {} · latents {} ({} tokens) · {}\n\n",
                    r["device"].get<std::string>(), r["torch"].get<std::string>(), r["model"].get<std::string>(),
                    r["latent"].dump(), r["tokens"].get<int64_t>(), r["dtype"].get<std::string>());
    m += "| what | time | tokens/s | TFLOP/s | peak memory |\n|---|---|---|---|---|\n";
    auto row = [&](const char* name, const nlohmann::json& j, const char* key) {
        m += fmt::format("| {} | {:.3f} s | {} | {} | {:.1f} GiB |\n", name, j[key].get<double>(),
                         j.contains("tokens_per_s") ? fmt::format("{:.0f}", j["tokens_per_s"].get<double>()) : "–",
                         j.contains("tflops") ? fmt::format("{:.0f}", j["tflops"].get<double>()) : "–",
                         j["peak_gib"].get<double>());
    };
    if (r.contains("forward")) row("DiT forward (no grad)", r["forward"], "s");
    if (r.contains("train")) {
        const auto& t = r["train"];
        row("IPA + HALO step (LoRA, checkpointing)", t, "step_s");
        m += fmt::format(
            "| · reference forward | {:.3f} s | | | |\n| · policy forward | {:.3f} s | | | |\n"
            "| · backward | {:.3f} s | | | |\n| · optimizer | {:.3f} s | | | |\n",
            t["reference_forward_s"].get<double>(), t["policy_forward_s"].get<double>(), t["backward_s"].get<double>(),
            t["optimizer_s"].get<double>());
    }
    if (r.contains("sample")) row("UniPC step with CFG (2 forwards)", r["sample"], "step_s");
    if (r.contains("vae")) row("VAE decode (fp32)", r["vae"], "decode_s");
    return m;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bench_gpu: DiT forward, IPA training step, sampling step and VAE decode on random weights"};
    Options o;
    app.add_option("--model", o.model, "model preset or YAML (vace-14b, vace-1.3b, tiny, ...)");
    app.add_option("--latent", o.latent, "latent frames (incl. reference), height, width")->expected(3);
    app.add_option("--ref-frames", o.ref_frames, "reference latent frames (HALO weighs them 1)");
    app.add_option("--context-len", o.context_len, "text tokens");
    app.add_option("--rank", o.rank, "LoRA rank (QKV of the main blocks)");
    app.add_option("--warmup", o.warmup);
    app.add_option("--iters", o.iters);
    app.add_option("--dtype", o.dtype, "bf16 | fp32");
    app.add_option("--device", o.device, "cuda | cpu");
    app.add_option("--vae", o.vae, "VAE preset (wan2.1 | tiny)");
    app.add_option("--vae-latent-frames", o.vae_latent_frames, "latent frames to decode");
    app.add_flag("!--no-grad-checkpointing", o.grad_checkpointing);
    app.add_option("--what", o.what, "vae forward train sample")->delimiter(',');
    app.add_option("--json", o.json, "write the results as JSON");
    app.add_option("--markdown", o.markdown, "write the results as a markdown table");
    CLI11_PARSE(app, argc, argv);
    try {
        ipa::log::init(0, "warn");
        ipa::init_torch_threads();
        const auto dev = ipa::parse_device(o.device);
        if (dev.is_cuda() && !ipa::compat::cuda_available()) {
            throw ipa::ConfigError("--device cuda, but no CUDA device is usable here (" +
                                   std::string(IPA_WITH_CUDA ? "none found" : "this is a CPU-only LibTorch") + ")");
        }
        const auto dtype = ipa::parse_dtype(o.dtype);
        nlohmann::json r;
        r["device"] = dev.is_cuda() ? ipa::compat::cuda_device_name(dev.has_index() ? dev.index() : 0) : "CPU";
        r["torch"] = ipa::compat::torch_version();
        r["model"] = o.model;
        r["dtype"] = o.dtype;
        r["latent"] = o.latent;
        auto has = [&](const char* w) { return std::find(o.what.begin(), o.what.end(), w) != o.what.end(); };
        if (has("vae")) {
            r["vae"] = bench_vae(o, dev);
            std::cerr << "vae: " << r["vae"].dump() << "\n";
        }
        if (has("forward") || has("train") || has("sample")) {
            auto d = make_dit(o, dev, dtype);
            r["tokens"] = d.tokens;
            r["params_b"] = [&] {
                double n = 0;
                for (const auto& p : d.model->parameters()) n += static_cast<double>(p.numel());
                return n / 1e9;
            }();
            if (has("forward")) {
                r["forward"] = bench_forward(o, d, dev);
                std::cerr << "forward: " << r["forward"].dump() << "\n";
            }
            if (has("train")) {
                r["train"] = bench_train(o, d, dev);
                std::cerr << "train: " << r["train"].dump() << "\n";
            }
            if (has("sample")) {
                r["sample"] = bench_sample(o, d, dev);
                std::cerr << "sample: " << r["sample"].dump() << "\n";
            }
        } else {
            r["tokens"] = 0;
        }
        const auto md = markdown(r);
        std::cout << md;
        if (!o.json.empty()) std::ofstream(o.json) << r.dump(2) << "\n";
        if (!o.markdown.empty()) std::ofstream(o.markdown) << md;
        return 0;
    } catch (const std::exception& e) {
        return ipa::report_cli_error("bench_gpu", e);
    }
}
