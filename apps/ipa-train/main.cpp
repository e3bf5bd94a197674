// ipa-train --config run.yaml [--set section.key=value ...]
// LoRA preference post-training (Flow-IPA + HALO) of a Wan/VACE DiT on cached samples.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "ipa/build_config.h"
#include "ipa/core/error.h"
#include "ipa/core/logging.h"
#include "ipa/core/run_context.h"
#include "ipa/core/torch_compat.h"
#include "ipa/models/wan/config.h"
#if IPA_WITH_MEDIA
#include "ipa/prepare/cache_builder.h"
#endif
#include "ipa/train/config.h"
#include "ipa/train/trainer.h"

namespace {

#if IPA_WITH_MEDIA
/// The cache builder's options from the training config (data.*, model.*) and this rank.
ipa::prepare::CacheBuildOptions cache_options(const ipa::train::TrainConfig& cfg, const ipa::RunContext& ctx) {
    const auto mcfg = ipa::models::wan::WanConfig::resolve(cfg.model.config);
    ipa::prepare::CacheBuildOptions o;
    o.manifest = cfg.data.manifest;
    o.cache_dir = cfg.data.cache_dir;
    o.frames = cfg.data.frames;
    o.height = cfg.data.size.at(0);
    o.width = cfg.data.size.at(1);
    o.vae = cfg.model.vae;
    o.text_encoder = cfg.model.text_encoder;
    o.tokenizer = cfg.model.tokenizer;
    o.text_dtype = cfg.model.dtype;
    o.text_len = mcfg.text_len;
    o.text_dim = mcfg.text_dim;
    o.latent_channels = mcfg.in_dim;
    o.vace_channels = mcfg.is_vace() ? mcfg.vace_in_dim : 0;
    o.hand_masks = cfg.data.hand_masks;
    o.mask_shape = cfg.data.mask_shape;
    o.mask_padding = cfg.data.mask_padding;
    o.vae_tiling = cfg.data.vae_tiling;
    o.device = ctx.device;
    o.rank = ctx.rank;
    o.world = ctx.world_size;
    return o;
}

/// The cache builder behind data.manifest (VAE, umT5, media I/O).
void set_cache_hooks(ipa::train::TrainHooks& hooks, const ipa::train::TrainConfig& cfg, const ipa::RunContext& ctx) {
    const auto cache = cache_options(cfg, ctx);
    hooks.build_cache_shard = [cache] {
        const auto r = ipa::prepare::build_cache_shard(cache);
        spdlog::info("cache: {} rows on this rank, {} built, {} up to date ({:.1f} s)", r.rows, r.built, r.fresh,
                     r.seconds);
    };
    hooks.write_cache_index = [cache] { ipa::prepare::write_cache_index(cache); };
}
#else
/// Media-free build: no VAE / text encoder / video reading, so no cache building.
void set_cache_hooks(ipa::train::TrainHooks& hooks, const ipa::train::TrainConfig& cfg, const ipa::RunContext&) {
    if (cfg.data.manifest.empty()) return;
    throw ipa::ConfigError(
        "data.manifest is set, but this ipa-train is a media-free build (IPA_WITH_MEDIA=OFF) and cannot build "
        "the training cache; build it with a full build (ipa-train --config ... --cache-only), then train here "
        "with data.manifest unset and data.cache_dir = '" +
        cfg.data.cache_dir + "'");
}
#endif

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ipa-train: LoRA preference post-training (Flow-IPA + HALO) of a Wan/VACE DiT"};
    std::string config;
    std::vector<std::string> overrides;
    std::string log_level = "info";
    bool print_config = false, no_progress = false, cache_only = false;
    int64_t profile_step = 0;
    app.add_option("--config", config, "training config (YAML)")->required();
    app.add_option("--set", overrides, "override a key: section.key=value (repeatable)");
    app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
    app.add_flag("--print-config", print_config, "print the resolved config and exit");
    app.add_flag("--no-progress", no_progress, "no progress bar (log lines only)");
    app.add_flag("--cache-only", cache_only, "build the training cache from data.manifest, then exit");
    app.add_option("--profile-step", profile_step,
                   "record an operator profile of step N (Chrome trace in <checkpoint.dir>/profile/)")
        ->check(CLI::NonNegativeNumber);
    CLI11_PARSE(app, argc, argv);
    try {
        auto ctx = ipa::RunContext::from_env();
        ipa::log::init(ctx.rank, log_level);
        const int threads = ipa::init_torch_threads();
        const auto cfg = ipa::train::TrainConfig::load(config, overrides);
        if (print_config) {
            std::cout << cfg.to_yaml();
            return 0;
        }
        ctx.device = ipa::parse_device(cfg.model.device);
        if (ctx.device.is_cuda() && !ctx.device.has_index() && ctx.world_size > 1) {
            ctx.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(ctx.local_rank));  // one GPU per rank
        }
        ctx.seed = cfg.train.seed;
        spdlog::info("ipa-train: {} on {} ({} threads), rank {}/{}", config, ctx.device.str(), threads, ctx.rank,
                     ctx.world_size);
        ipa::train::TrainHooks hooks;
        hooks.progress = !no_progress;
        hooks.cache_only = cache_only;
        hooks.profile_step = profile_step;
        set_cache_hooks(hooks, cfg, ctx);
        const auto result = ipa::train::run_training(cfg, ctx, hooks);
        if (cache_only) {
            if (ctx.is_main()) {
                std::printf("cache ready: %lld samples in %s\n", static_cast<long long>(result.cached_samples),
                            cfg.data.cache_dir.c_str());
            }
            return 0;
        }
        if (ctx.is_main()) {
            const auto& h = result.history;
            if (h.size() >= 4) {  // learning signal at a glance: first vs last tenth of this run
                const std::size_t k = std::max<std::size_t>(1, h.size() / 10);
                auto mean = [&](std::size_t from, auto field) {
                    double s = 0;
                    for (std::size_t i = from; i < from + k; ++i) s += field(h[i]);
                    return s / static_cast<double>(k);
                };
                auto loss = [](const ipa::train::StepMetrics& m) { return m.loss; };
                auto gap = [](const ipa::train::StepMetrics& m) { return m.gap; };
                std::printf("loss %.4f -> %.4f, gap %+.3e -> %+.3e (means of the first and last %zu steps)\n",
                            mean(0, loss), mean(h.size() - k, loss), mean(0, gap), mean(h.size() - k, gap), k);
                if (h.front().has_margin) {
                    auto margin = [](const ipa::train::StepMetrics& m) { return m.margin; };
                    std::printf("DPO margin %+.3e -> %+.3e\n", mean(0, margin), mean(h.size() - k, margin));
                }
            }
            if (h.size() >= 3) {  // steady-state step time (first step excluded: allocations, caches)
                std::vector<double> t;
                for (std::size_t i = 1; i < h.size(); ++i) t.push_back(h[i].step_time_s);
                std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
                const auto peak = ipa::compat::peak_memory_bytes(ctx.device);
                std::printf("step time median %.4f s over %zu steps, peak memory %s\n", t[t.size() / 2], t.size(),
                            peak >= 0 ? (std::to_string(peak / 1048576) + " MiB").c_str() : "n/a on this device");
                std::string phases;  // the same steps' phase medians
                for (std::size_t p = 0; p < h[0].phases.items().size(); ++p) {
                    std::vector<double> v;
                    for (std::size_t i = 1; i < h.size(); ++i) v.push_back(h[i].phases.items()[p].second);
                    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
                    phases += fmt::format("{}{} {:.3f}", phases.empty() ? "" : ", ", h[0].phases.items()[p].first,
                                          v[v.size() / 2]);
                }
                std::printf("step phases (median s): %s\n", phases.c_str());
            }
            std::cout << "trained to step " << result.final_step
                      << (result.resumed_from ? " (resumed from step " + std::to_string(result.resumed_from) + ")" : "")
                      << "\nadapter: " << (result.last_checkpoint / "adapter.safetensors").string()
                      << "\nmetrics: " << result.metrics_file.string() << "\n";
        }
        return 0;
    } catch (const std::exception& e) {
        return ipa::report_cli_error("ipa-train", e);
    }
}
