#include "ipa/train/trainer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/data/cache.h"
#include "ipa/dist/process_group.h"
#include "ipa/models/wan/loader.h"
#include "run_state.h"

namespace ipa::train {
namespace fs = std::filesystem;
namespace wan = ipa::models::wan;

std::string StepMetrics::to_json() const {
    nlohmann::json j{{"step", step},
                     {"loss", loss},
                     {"gap", gap},
                     {"err_theta", err_theta},
                     {"err_ref", err_ref},
                     {"reward_accuracy", reward_accuracy},
                     {"grad_norm", grad_norm},
                     {"lr", lr},
                     {"samples_per_s", samples_per_s},
                     {"tokens_per_s", tokens_per_s},
                     {"step_time_s", step_time_s},
                     {"bad_steps", bad_steps}};
    return j.dump();
}

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double learning_rate(const OptimSection& o, int64_t step /*1-based*/, int64_t total) {
    if (o.warmup_steps > 0 && step <= o.warmup_steps) return o.lr * static_cast<double>(step) / o.warmup_steps;
    if (o.schedule == "cosine") {
        const double span = std::max<int64_t>(1, total - o.warmup_steps);
        const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
        return o.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
    }
    return o.lr;
}

/// Noise and timestep of one sample come from their own generator, keyed by the sample's
/// place in the global batch (rank-major), so a run on N ranks with batch b draws exactly
/// what one rank with batch N·b draws — and resuming needs no generator state.
at::Generator sample_generator(uint64_t seed, int64_t step, int64_t micro, int64_t slot) {
    auto mix = [](uint64_t x) {  // splitmix64 finaliser
        x += 0x9E3779B97F4A7C15ull;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        return x ^ (x >> 31);
    };
    uint64_t h = mix(seed);
    for (const auto v : {step, micro, slot}) h = mix(h ^ static_cast<uint64_t>(v));
    return at::detail::createCPUGenerator(h);
}

/// Opens the cache, building a synthetic one when asked and the directory is empty.
data::CacheIndex open_cache_local(const TrainConfig& cfg, const wan::WanConfig& mcfg) {
    const fs::path dir = cfg.data.cache_dir;
    std::error_code ec;
    if (fs::exists(dir / "index.json", ec)) return data::CacheIndex::read(dir);
    const bool empty = !fs::exists(dir, ec) || fs::is_empty(dir, ec);
    if (empty && cfg.data.synthetic > 0) {
        data::SyntheticOptions so;
        so.samples = cfg.data.synthetic;
        so.latent_channels = mcfg.out_dim;
        so.vace_channels = mcfg.is_vace() ? mcfg.vace_in_dim : 0;
        so.text_dim = mcfg.text_dim;
        so.text_len = std::min<int64_t>(6, mcfg.text_len);
        so.seed = cfg.train.seed;
        so.video_frames = 1 + (cfg.data.frames - 1) / 4;  // Wan VAE: 4k+1 frames -> k+1 latent frames
        so.height = cfg.data.size[0] / 8;
        so.width = cfg.data.size[1] / 8;
        spdlog::info("building a synthetic cache of {} samples in {}", so.samples, dir.string());
        return data::make_synthetic_cache(dir, so);
    }
    if (empty) {
        throw DataError(
            fmt::format("training cache '{}' is empty or missing; set data.manifest to build it from a "
                        "curated manifest (or data.synthetic: N for a synthetic run)",
                        dir.string()));
    }
    return data::CacheIndex::scan(dir);
}

/// Runs `fn` on rank 0 only; every rank returns when it is done, and every rank throws if
/// it failed (rank 0 rethrows its own error, the others say where to look).
void on_main_rank(dist::ProcessGroup& pg, const std::string& what, const std::function<void()>& fn) {
    std::exception_ptr error;
    if (pg.rank() == 0) {
        try {
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    }
    const double failed = pg.world_size() > 1 ? pg.all_reduce_sum({error ? 1.0 : 0.0}, what)[0] : 0.0;
    if (error) std::rethrow_exception(error);
    if (failed > 0) throw Error(fmt::format("rank 0 failed at '{}'; its log says why", what));
}

/// Opens the training cache. With data.manifest: every rank builds its share of what is
/// missing or stale, then rank 0 writes the index. Otherwise rank 0 opens (or builds a
/// synthetic) cache while the others wait, then all read it.
data::CacheIndex open_cache(const TrainConfig& cfg, const wan::WanConfig& mcfg, dist::ProcessGroup& pg,
                            const TrainHooks& hooks) {
    if (!cfg.data.manifest.empty()) {
        if (!hooks.build_cache_shard || !hooks.write_cache_index) {
            throw ConfigError(
                "data.manifest is set, but this program cannot build training caches (ipa-train can); "
                "unset data.manifest to train on an existing cache_dir");
        }
        std::exception_ptr error;
        try {
            hooks.build_cache_shard();
        } catch (...) {
            error = std::current_exception();
        }
        const int failed =
            pg.wait_all("training cache built", error != nullptr, static_cast<double>(cfg.data.build_timeout_s));
        if (error) std::rethrow_exception(error);
        if (failed > 0) {
            throw DataError(
                fmt::format("{} rank(s) failed to build their share of the cache; their logs say why", failed));
        }
        on_main_rank(pg, "training cache index", [&] { hooks.write_cache_index(); });
        return data::CacheIndex::read(cfg.data.cache_dir);
    }
    if (pg.world_size() == 1) return open_cache_local(cfg, mcfg);
    on_main_rank(pg, "training cache ready", [&] { open_cache_local(cfg, mcfg); });
    return data::CacheIndex::read(cfg.data.cache_dir);
}

struct MicroResult {
    at::Tensor loss, gap, err_theta, err_ref, reward_accuracy;
    int64_t samples = 0, tokens = 0;
};

}  // namespace

TrainResult run_training(const TrainConfig& cfg, const RunContext& ctx, const TrainHooks& hooks) {
    if (cfg.loss.kind == loss::LossKind::dpo) {
        throw ConfigError(
            "loss.kind 'dpo' needs winner/loser pairs, which the training cache does not hold yet; "
            "use ipa or sft");
    }
    TrainResult result;
    const auto device = ctx.device;
    const auto dtype = parse_dtype(cfg.model.dtype);
    const auto mcfg = wan::WanConfig::resolve(cfg.model.config);
    dist::DistOptions dopt;
    dopt.backend = cfg.dist.backend;
    dopt.timeout_s = cfg.dist.timeout_s;
    const auto pg = dist::ProcessGroup::create(ctx, dopt);
    pg->check_same(std::hash<std::string>{}(cfg.to_yaml()), "the resolved training config");

    // Data first (building the cache loads the VAE and text encoder; the DiT comes after).
    const auto index = open_cache(cfg, mcfg, *pg, hooks);
    if (index.entries.empty()) throw DataError(fmt::format("training cache '{}' has no samples", cfg.data.cache_dir));
    const int64_t n = static_cast<int64_t>(index.entries.size());
    spdlog::info("{} cached samples in {}", n, cfg.data.cache_dir);
    result.cached_samples = n;
    if (hooks.cache_only) return result;

    // Model: base frozen, adapter attached (fp32), optional initial adapter = reference.
    torch::manual_seed(cfg.train.seed);
    std::shared_ptr<wan::WanModelImpl> model;
    if (cfg.model.checkpoint.empty()) {
        spdlog::warn(
            "model.checkpoint is empty: the base model is randomly initialised (seed {}) — fine for the tiny "
            "demo, meaningless for real training",
            cfg.train.seed);
        model = wan::make_wan_model(mcfg);
        model->to(device);
        model->set_dtype(dtype);
    } else {
        wan::WanLoadOptions lo;
        lo.dtype = dtype;
        lo.device = device;
        model = wan::load_wan_model(mcfg, cfg.model.checkpoint, lo);
    }
    model->set_gradient_checkpointing(cfg.train.grad_checkpointing);
    const auto adapted = lora::attach_lora(*model, cfg.lora, cfg.train.seed);
    if (!cfg.lora_init_from.empty()) {
        lora::load_adapter(*model, cfg.lora_init_from, /*strict=*/true);
        lora::snapshot_reference(*model);
        spdlog::info("initial adapter {} loaded; its frozen copy is the reference", cfg.lora_init_from);
    }
    auto params = lora::lora_parameters(*model);
    int64_t n_train = 0, n_base = 0;
    for (const auto& p : params) n_train += p.numel();
    for (const auto& p : model->parameters()) n_base += p.requires_grad() ? 0 : p.numel();
    spdlog::info(
        "model {} ({} layers, dim {}), {:.3f} M frozen base params, LoRA rank {} on {} modules: {:.3f} M "
        "trainable",
        cfg.model.config, mcfg.num_layers, mcfg.dim, n_base / 1e6, cfg.lora.rank, adapted.size(), n_train / 1e6);

    torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(cfg.optim.lr)
                                              .betas({cfg.optim.betas[0], cfg.optim.betas[1]})
                                              .eps(cfg.optim.eps)
                                              .weight_decay(cfg.optim.weight_decay));

    // Resume.
    const fs::path ckpt_dir = cfg.checkpoint.dir;
    detail::RunState state;
    fs::path resume_from;
    if (cfg.checkpoint.resume == "auto")
        resume_from = find_latest_checkpoint(ckpt_dir);
    else if (cfg.checkpoint.resume != "never")
        resume_from = cfg.checkpoint.resume;
    if (!resume_from.empty()) {
        state = detail::load_checkpoint(resume_from, *model, optimizer);
        result.resumed_from = state.step;
        spdlog::info("resumed from {} (step {})", resume_from.string(), state.step);
        if (state.world_size != pg->world_size()) {
            spdlog::warn(
                "{} was written by a run on {} rank(s), this one has {}: the data order continues "
                "differently from an uninterrupted run",
                resume_from.string(), state.world_size, pg->world_size());
        }
    }
    fs::create_directories(ckpt_dir);
    result.metrics_file = ckpt_dir / "metrics.jsonl";
    std::ofstream metrics;  // rank 0 writes metrics and checkpoints
    if (ctx.is_main()) {
        detail::truncate_metrics(result.metrics_file, state.step);
        metrics.open(result.metrics_file, std::ios::app);
    }
    spdlog::info("resolved config:\n{}", cfg.to_yaml());

    auto order = data::epoch_order(n, cfg.train.seed, state.epoch, ctx.rank, ctx.world_size);
    auto next_sample = [&]() {
        if (state.position >= static_cast<int64_t>(order.size())) {
            ++state.epoch;
            state.position = 0;
            order = data::epoch_order(n, cfg.train.seed, state.epoch, ctx.rank, ctx.world_size);
        }
        const auto& e = index.entries[order[state.position++]];
        return data::load_cached_sample(fs::path(cfg.data.cache_dir) / e.file);
    };

    const bool with_ref = cfg.loss.kind == loss::LossKind::ipa;
    auto micro_step = [&](int64_t step, int64_t micro) -> MicroResult {
        std::vector<data::CachedSample> samples;
        for (int64_t i = 0; i < cfg.train.batch_size; ++i) samples.push_back(next_sample());
        const auto batch = data::collate(samples);
        const int64_t b = batch.latents.size(0);
        // One noise and one t per sample for the policy and the reference pass (drawn on CPU:
        // device-independent), from the sample's own generator (see sample_generator).
        std::vector<at::Tensor> sigmas, noises;
        for (int64_t i = 0; i < b; ++i) {
            auto g = sample_generator(cfg.train.seed, step, micro, static_cast<int64_t>(ctx.rank) * b + i);
            sigmas.push_back(flow::sample_sigmas(1, cfg.timesteps, g));
            noises.push_back(torch::randn(batch.latents[i].sizes(), g));
        }
        const auto sigma = torch::cat(sigmas);
        const auto noise = torch::stack(noises);
        const auto noised = flow::add_noise(batch.latents, noise, sigma);
        wan::WanInputs in;
        in.x = noised.x_t.to(device);
        in.t = (sigma * 1000.0).to(device);
        in.context = batch.context.to(device);
        if (batch.vace_context.defined()) in.vace_context = batch.vace_context.to(device);
        const auto target = noised.target.to(device);
        at::Tensor weights;
        if (batch.hand_mask.defined() && cfg.loss.hand_weight != 1.0) {
            weights = loss::halo_weights(batch.hand_mask.to(device), batch.ref_frames, cfg.loss.hand_weight,
                                         batch.latents.sizes());
        }
        MicroResult r;
        at::Tensor err_ref;
        if (with_ref) {
            torch::NoGradGuard no_grad;  // reference first: checkpoint recompute never sees the adapter toggled
            lora::ReferenceMode reference(*model);
            err_ref = loss::weighted_error(model->forward(in), target, weights);
        }
        const auto err_theta = loss::weighted_error(model->forward(in), target, weights);
        if (with_ref) {
            const auto terms =
                loss::flow_ipa_loss(err_theta, err_ref, sigma.to(device), cfg.loss.beta, cfg.loss.time_weight);
            r.loss = terms.loss;
            r.gap = terms.gap.mean();
            r.err_ref = err_ref.mean();
            r.reward_accuracy = terms.reward_accuracy;
        } else {
            r.loss = loss::flow_sft_loss(err_theta);
        }
        r.err_theta = err_theta.mean();
        (r.loss / static_cast<double>(cfg.train.grad_accum)).backward();
        r.samples = b;
        r.tokens = b * batch.latents.size(2) / mcfg.patch_size[0] * (batch.latents.size(3) / mcfg.patch_size[1]) *
                   (batch.latents.size(4) / mcfg.patch_size[2]);
        return r;
    };

    ProgressOptions popt;
    popt.unit = "step";
    popt.mode = hooks.progress ? ProgressOptions::Mode::automatic : ProgressOptions::Mode::silent;
    Progress bar("train", cfg.train.steps - state.step, popt);
    model->train();
    while (state.step < cfg.train.steps) {
        const double t0 = now_s();
        optimizer.zero_grad();
        StepMetrics m;
        int64_t samples = 0, tokens = 0;
        const int64_t step = state.step + 1;
        for (int64_t a = 0; a < cfg.train.grad_accum; ++a) {
            const auto r = micro_step(step, a);
            const double k = 1.0 / static_cast<double>(cfg.train.grad_accum);
            m.loss += r.loss.item<double>() * k;
            m.err_theta += r.err_theta.item<double>() * k;
            if (with_ref) {
                m.gap += r.gap.item<double>() * k;
                m.err_ref += r.err_ref.item<double>() * k;
                m.reward_accuracy += r.reward_accuracy.item<double>() * k;
            }
            samples += r.samples;
            tokens += r.tokens;
        }
        if (pg->world_size() > 1) {
            // Data parallel: average the LoRA gradients (and the metrics) over the ranks.
            std::vector<at::Tensor> grads;
            for (auto& p : params) {
                if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
                grads.push_back(p.grad());
            }
            pg->all_reduce_mean(grads, fmt::format("LoRA gradients, step {}", step));
            const auto sum = pg->all_reduce_sum({m.loss, m.err_theta, m.gap, m.err_ref, m.reward_accuracy,
                                                 static_cast<double>(samples), static_cast<double>(tokens)},
                                                fmt::format("metrics, step {}", step));
            const double w = pg->world_size();
            m.loss = sum[0] / w;
            m.err_theta = sum[1] / w;
            m.gap = sum[2] / w;
            m.err_ref = sum[3] / w;
            m.reward_accuracy = sum[4] / w;
            samples = static_cast<int64_t>(sum[5]);
            tokens = static_cast<int64_t>(sum[6]);
        }
        bool finite = std::isfinite(m.loss);
        for (const auto& p : params) {
            if (finite && p.grad().defined() && !torch::isfinite(p.grad()).all().item<bool>()) finite = false;
        }
        if (!finite) {
            ++state.bad_steps;
            optimizer.zero_grad();
            spdlog::warn("step {}: non-finite loss or gradient, step skipped ({} of at most {})", step, state.bad_steps,
                         cfg.train.max_bad_steps);
            if (state.bad_steps > cfg.train.max_bad_steps) {
                throw Error(
                    fmt::format("training aborted at step {}: {} non-finite steps (train.max_bad_steps = {}); "
                                "lower optim.lr or loss.beta, or check the cache for bad samples",
                                step, state.bad_steps, cfg.train.max_bad_steps));
            }
        } else {
            m.grad_norm = torch::nn::utils::clip_grad_norm_(
                params, cfg.optim.grad_clip > 0 ? cfg.optim.grad_clip : std::numeric_limits<double>::infinity());
            m.lr = learning_rate(cfg.optim, step, cfg.train.steps);
            for (auto& group : optimizer.param_groups()) {
                static_cast<torch::optim::AdamWOptions&>(group.options()).lr(m.lr);
            }
            optimizer.step();
        }
        state.step = step;
        m.step = step;
        m.bad_steps = state.bad_steps;
        m.step_time_s = now_s() - t0;
        m.samples_per_s = samples / m.step_time_s;
        m.tokens_per_s = tokens / m.step_time_s;
        result.history.push_back(m);
        if (ctx.is_main()) {
            metrics << m.to_json() << "\n";
            metrics.flush();
            if (step % cfg.train.log_every == 0 || step == cfg.train.steps) {
                spdlog::info(
                    "step {}/{} loss {:.5f} gap {:+.3e} err_theta {:.5f} err_ref {:.5f} acc {:.2f} grad_norm "
                    "{:.3e} lr {:.2e} {:.2f} samples/s",
                    step, cfg.train.steps, m.loss, m.gap, m.err_theta, m.err_ref, m.reward_accuracy, m.grad_norm, m.lr,
                    m.samples_per_s);
            }
        }
        const bool last = step == cfg.train.steps || (hooks.stop_after_step > 0 && step >= hooks.stop_after_step);
        if (step % cfg.checkpoint.every == 0 || step == cfg.train.steps) {
            state.world_size = pg->world_size();
            // No rank runs ahead of a checkpoint, and a failed save stops every rank.
            on_main_rank(*pg, fmt::format("checkpoint step {}", step), [&] {
                detail::save_checkpoint(ckpt_dir, state, *model, cfg, optimizer, cfg.checkpoint.keep);
            });
            result.last_checkpoint = ckpt_dir / fmt::format("step-{:06d}", step);
        } else if (last) {
            pg->barrier(fmt::format("stop at step {}", step));  // all ranks agree on the step before they stop
        }
        bar.advance(1, fmt::format("loss={:.4f} gap={:+.2e}", m.loss, m.gap));
        if (hooks.stop_after_step > 0 && step >= hooks.stop_after_step) break;
    }
    bar.finish();
    result.final_step = state.step;
    if (result.last_checkpoint.empty()) result.last_checkpoint = find_latest_checkpoint(ckpt_dir);
    return result;
}

}  // namespace ipa::train
