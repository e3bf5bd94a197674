#include "ipa/train/trainer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "ipa/core/allocator.h"
#include "ipa/core/error.h"
#include "ipa/core/plot.h"
#include "ipa/core/progress.h"
#include "ipa/core/tensorboard.h"
#include "ipa/data/cache.h"
#include "ipa/dist/process_group.h"
#include "ipa/models/wan/loader.h"
#include "ipa/train/steps.h"
#include "run_state.h"

namespace ipa::train {
namespace fs = std::filesystem;
namespace wan = ipa::models::wan;

std::vector<std::pair<const char*, double>> StepPhases::items() const {
    return {{"data", data},     {"noise", noise},       {"prelude", prelude}, {"reference", reference},
            {"policy", policy}, {"backward", backward}, {"reduce", reduce},   {"update", update}};
}

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
    if (has_margin) j["margin"] = margin;
    auto& p = j["phase_s"] = nlohmann::json::object();
    for (const auto& [name, seconds] : phases.items()) p[name] = seconds;
    return j.dump();
}

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

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
        so.pairs = cfg.loss.kind == loss::LossKind::dpo;
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

/// Everything one training process holds between its steps.
struct Run {
    Run(const TrainConfig& c, const RunContext& x, const TrainHooks& h)
        : cfg(c), ctx(x), hooks(h), mcfg(wan::WanConfig::resolve(c.model.config)) {}
    const TrainConfig& cfg;
    const RunContext& ctx;
    const TrainHooks& hooks;
    wan::WanConfig mcfg;
    std::shared_ptr<dist::ProcessGroup> pg;
    data::CacheIndex index;
    TrainModel tm;
    std::unique_ptr<torch::optim::AdamW> optimizer;
    RunState state;
    fs::path ckpt_dir;
    std::ofstream metrics;                           // rank 0 writes metrics and checkpoints,
    std::unique_ptr<TensorBoardWriter> tensorboard;  // the TensorBoard scalars and the curves
};

/// DPO needs a pair cache; IPA and SFT train on the winners of one.
void check_cache_kind(const Run& run) {
    const auto first = data::load_cached_sample(fs::path(run.cfg.data.cache_dir) / run.index.entries[0].file);
    if (run.cfg.loss.kind == loss::LossKind::dpo && !first.is_pair()) {
        throw DataError(fmt::format(
            "loss.kind dpo needs winner/loser pairs, but the cache '{}' holds single samples; build it from "
            "`ipa-curate pairs --out pairs.csv` as data.manifest (or data.synthetic in a fresh cache_dir)",
            run.cfg.data.cache_dir));
    }
    if (run.cfg.loss.kind != loss::LossKind::dpo && first.is_pair()) {
        spdlog::info("the cache holds DPO pairs; loss.kind {} trains on their winners",
                     loss::to_string(run.cfg.loss.kind));
    }
}

/// Resumes per checkpoint.resume and opens metrics.jsonl (rank 0), dropping lines past the step.
void resume_run(Run& run, TrainResult& result) {
    fs::path from;
    run.state = resume(run.cfg, *run.tm.model, *run.optimizer, from);
    result.resumed_from = run.state.step;
    if (!from.empty() && run.state.world_size != run.pg->world_size()) {
        spdlog::warn(
            "{} was written by a run on {} rank(s), this one has {}: the data order continues "
            "differently from an uninterrupted run",
            from.string(), run.state.world_size, run.pg->world_size());
    }
    fs::create_directories(run.ckpt_dir);
    result.metrics_file = run.ckpt_dir / "metrics.jsonl";
    if (run.ctx.is_main()) {
        detail::truncate_metrics(result.metrics_file, run.state.step);
        run.metrics.open(result.metrics_file, std::ios::app);
        // A new event file per process; TensorBoard drops a file's steps that a later file
        // (a resumed run) writes again.
        run.tensorboard = std::make_unique<TensorBoardWriter>(run.ckpt_dir / "tensorboard");
    }
}

/// One optimizer step: grad_accum micro steps, the reduction over ranks, the update.
StepMetrics train_step(Run& run, SampleStream& stream, int64_t step) {
    const auto& cfg = run.cfg;
    const double t0 = now_s();
    PhaseClock clock(run.ctx.device);
    run.optimizer->zero_grad();
    StepMetrics m;
    m.step = step;
    m.has_margin = cfg.loss.kind == loss::LossKind::dpo;
    int64_t samples = 0, tokens = 0;
    NoiseOptions no;
    no.seed = cfg.train.seed;
    no.step = step;
    no.rank = run.ctx.rank;
    no.pairs = m.has_margin;
    no.timesteps = cfg.timesteps;
    no.hand_weight = cfg.loss.hand_weight;
    no.patch = run.mcfg.patch_size;
    no.device = run.ctx.device;
    const double k = 1.0 / static_cast<double>(cfg.train.grad_accum);
    for (int64_t a = 0; a < cfg.train.grad_accum; ++a) {
        no.micro = a;
        const auto batch = stream.next_batch(cfg.train.batch_size);
        m.phases.data += clock.lap();
        const auto nb = noise_batch(batch, no);
        m.phases.noise += clock.lap();
        const auto r = micro_step(run.tm, nb, cfg.loss, cfg.train.grad_accum, /*share=*/true, &m.phases);
        clock.lap();  // micro_step timed its own phases
        auto add = [k](double& into, const at::Tensor& v) { into += v.defined() ? v.item<double>() * k : 0.0; };
        add(m.loss, r.loss);
        add(m.err_theta, r.err_theta);
        add(m.gap, r.gap);
        add(m.err_ref, r.err_ref);
        add(m.reward_accuracy, r.reward_accuracy);
        add(m.margin, r.margin);
        samples += r.samples;
        tokens += r.tokens;
        m.phases.backward += clock.lap();  // the metrics' device-to-host copies wait for it
    }
    reduce_step(*run.pg, run.tm.params, m, samples, tokens);
    m.phases.reduce = clock.lap();
    apply_update(cfg, run.tm.params, *run.optimizer, step, m, run.state);
    m.phases.update = clock.lap();
    run.state.step = step;
    m.bad_steps = run.state.bad_steps;
    m.step_time_s = now_s() - t0;
    m.samples_per_s = samples / m.step_time_s;
    m.tokens_per_s = tokens / m.step_time_s;
    return m;
}

/// train_step under the operator profiler; each rank writes its Chrome trace.
StepMetrics profiled_step(Run& run, SampleStream& stream, int64_t step) {
    const auto dir = run.ckpt_dir / "profile";
    fs::create_directories(dir);
    const auto file = dir / (run.ctx.world_size > 1 ? fmt::format("step-{}.rank-{}.trace.json", step, run.ctx.rank)
                                                    : fmt::format("step-{}.trace.json", step));
    StepMetrics m;
    {
        torch::autograd::profiler::RecordProfile profile(file.string());
        m = train_step(run, stream, step);
    }
    spdlog::info("step {}: operator profile written to {} (open in chrome://tracing or ui.perfetto.dev)", step,
                 file.string());
    return m;
}

/// Rank 0: the metrics line, and the log line every train.log_every steps.
void log_step(Run& run, const StepMetrics& m) {
    if (!run.ctx.is_main()) return;
    run.metrics << m.to_json() << "\n";
    run.metrics.flush();
    std::vector<std::pair<std::string, double>> scalars{{"train/loss", m.loss},
                                                        {"train/gap", m.gap},
                                                        {"train/err_theta", m.err_theta},
                                                        {"train/err_ref", m.err_ref},
                                                        {"train/reward_accuracy", m.reward_accuracy},
                                                        {"train/grad_norm", m.grad_norm},
                                                        {"train/lr", m.lr},
                                                        {"perf/samples_per_s", m.samples_per_s},
                                                        {"perf/tokens_per_s", m.tokens_per_s}};
    if (m.has_margin) scalars.emplace_back("train/margin", m.margin);
    for (const auto& [name, seconds] : m.phases.items()) scalars.emplace_back(fmt::format("time/{}_s", name), seconds);
    run.tensorboard->add_scalars(m.step, scalars);
    if (m.step % run.cfg.train.log_every != 0 && m.step != run.cfg.train.steps) return;
    const auto margin = m.has_margin ? fmt::format(" margin {:+.3e}", m.margin) : std::string();
    spdlog::info(
        "step {}/{} loss {:.5f} gap {:+.3e}{} err_theta {:.5f} err_ref {:.5f} acc {:.2f} grad_norm {:.3e} lr "
        "{:.2e} {:.2f} samples/s",
        m.step, run.cfg.train.steps, m.loss, m.gap, margin, m.err_theta, m.err_ref, m.reward_accuracy, m.grad_norm,
        m.lr, m.samples_per_s);
}

/// A checkpoint when one is due (every rank waits for it; a failed save stops every rank),
/// else a barrier when the run stops here. Returns the checkpoint written, if any.
fs::path checkpoint_step(Run& run, int64_t step, bool stopping) {
    if (step % run.cfg.checkpoint.every == 0 || step == run.cfg.train.steps) {
        run.state.world_size = run.pg->world_size();
        on_main_rank(*run.pg, fmt::format("checkpoint step {}", step), [&] {
            detail::save_checkpoint(run.ckpt_dir, run.state, *run.tm.model, run.cfg, *run.optimizer,
                                    run.cfg.checkpoint.keep);
            try {  // a picture must never stop a run
                plot::write_training_curves(run.ckpt_dir / "metrics.jsonl", run.ckpt_dir / "curves.png");
            } catch (const std::exception& e) {
                spdlog::warn("curves.png not redrawn: {}", e.what());
            }
        });
        return run.ckpt_dir / fmt::format("step-{:06d}", step);
    }
    if (stopping) run.pg->barrier(fmt::format("stop at step {}", step));  // all ranks agree on the step
    return {};
}

}  // namespace

TrainResult run_training(const TrainConfig& cfg, const RunContext& ctx, const TrainHooks& hooks) {
    TrainResult result;
    Run run(cfg, ctx, hooks);
    dist::DistOptions dopt;
    dopt.backend = cfg.dist.backend;
    dopt.timeout_s = cfg.dist.timeout_s;
    run.pg = dist::ProcessGroup::create(ctx, dopt);
    run.pg->check_same(std::hash<std::string>{}(cfg.to_yaml()), "the resolved training config");

    // Data first (building the cache loads the VAE and text encoder; the DiT comes after).
    run.index = open_cache(cfg, run.mcfg, *run.pg, hooks);
    if (run.index.entries.empty())
        throw DataError(fmt::format("training cache '{}' has no samples", cfg.data.cache_dir));
    result.cached_samples = static_cast<int64_t>(run.index.entries.size());
    spdlog::info("{} cached samples in {}", result.cached_samples, cfg.data.cache_dir);
    if (hooks.cache_only) return result;
    check_cache_kind(run);

    spdlog::info("host allocator: {}; idle threads: {}", host_allocator(), thread_settings());
    run.tm = build_model(cfg, run.mcfg, ctx.device);
    run.optimizer = make_optimizer(cfg.optim, run.tm.params);
    run.ckpt_dir = cfg.checkpoint.dir;
    resume_run(run, result);
    spdlog::info("resolved config:\n{}", cfg.to_yaml());

    SampleStream stream(run.index, cfg.data.cache_dir, cfg.train.seed, ctx.rank, ctx.world_size, run.state);
    ProgressOptions popt;
    popt.unit = "step";
    popt.mode = hooks.progress ? ProgressOptions::Mode::automatic : ProgressOptions::Mode::silent;
    Progress bar("train", cfg.train.steps - run.state.step, popt);
    run.tm.model->train();
    while (run.state.step < cfg.train.steps) {
        const int64_t step = run.state.step + 1;
        const auto m = hooks.profile_step == step ? profiled_step(run, stream, step) : train_step(run, stream, step);
        result.history.push_back(m);
        log_step(run, m);
        const bool stop = hooks.stop_after_step > 0 && step >= hooks.stop_after_step;
        const auto written = checkpoint_step(run, step, stop || step == cfg.train.steps);
        if (!written.empty()) result.last_checkpoint = written;
        bar.advance(1, m.has_margin ? fmt::format("loss={:.4f} margin={:+.2e}", m.loss, m.margin)
                                    : fmt::format("loss={:.4f} gap={:+.2e}", m.loss, m.gap));
        if (stop) break;
    }
    bar.finish();
    result.final_step = run.state.step;
    if (result.last_checkpoint.empty()) result.last_checkpoint = find_latest_checkpoint(run.ckpt_dir);
    return result;
}

}  // namespace ipa::train
