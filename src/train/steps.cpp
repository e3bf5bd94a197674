#include "ipa/train/steps.h"

#include <ATen/record_function.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "ipa/core/error.h"
#include "ipa/core/torch_compat.h"
#include "ipa/dist/process_group.h"
#include "ipa/flow/timesteps.h"
#include "ipa/lora/lora.h"
#include "ipa/loss/flow_losses.h"
#include "ipa/models/wan/loader.h"
#include "run_state.h"

namespace ipa::train {
namespace fs = std::filesystem;
namespace wan = ipa::models::wan;

TrainModel build_model(const TrainConfig& cfg, const wan::WanConfig& mcfg, const c10::Device& device) {
    const auto dtype = parse_dtype(cfg.model.dtype);
    torch::manual_seed(cfg.train.seed);
    TrainModel tm;
    if (cfg.model.checkpoint.empty()) {
        spdlog::warn(
            "model.checkpoint is empty: the base model is randomly initialised (seed {}) — fine for the tiny "
            "demo, meaningless for real training",
            cfg.train.seed);
        tm.model = wan::make_wan_model(mcfg);
        tm.model->to(device);
        tm.model->set_dtype(dtype);
    } else {
        wan::WanLoadOptions lo;
        lo.dtype = dtype;
        lo.device = device;
        tm.model = wan::load_wan_model(mcfg, cfg.model.checkpoint, lo);
    }
    tm.model->set_gradient_checkpointing(cfg.train.grad_checkpointing);
    lora::attach_lora(*tm.model, cfg.lora, cfg.train.seed);
    if (!cfg.lora_init_from.empty()) {
        lora::load_adapter(*tm.model, cfg.lora_init_from, /*strict=*/true);
        lora::snapshot_reference(*tm.model);
        spdlog::info("initial adapter {} loaded; its frozen copy is the reference", cfg.lora_init_from);
    }
    tm.adapted = lora::adapted_modules(*tm.model);
    tm.share_prelude = true;
    tm.shared.cross_kv = true;
    for (const auto& name : tm.adapted) {
        const bool vace = name.rfind("vace_blocks.", 0) == 0;
        tm.share_prelude &= vace || name.rfind("blocks.", 0) == 0;
        tm.shared.hints &= !vace;
        tm.shared.cross_kv &= name.find(".cross_attn.") == std::string::npos;
    }
    tm.params = lora::lora_parameters(*tm.model);
    int64_t n_train = 0, n_base = 0;
    for (const auto& p : tm.params) n_train += p.numel();
    for (const auto& p : tm.model->parameters()) n_base += p.requires_grad() ? 0 : p.numel();
    spdlog::info(
        "model {} ({} layers, dim {}), {:.3f} M frozen base params, LoRA rank {} on {} modules: {:.3f} M "
        "trainable",
        cfg.model.config, mcfg.num_layers, mcfg.dim, n_base / 1e6, cfg.lora.rank, tm.adapted.size(), n_train / 1e6);
    return tm;
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(const OptimSection& o, const std::vector<at::Tensor>& params) {
    return std::make_unique<torch::optim::AdamW>(
        params,
        torch::optim::AdamWOptions(o.lr).betas({o.betas[0], o.betas[1]}).eps(o.eps).weight_decay(o.weight_decay));
}

double learning_rate(const OptimSection& o, int64_t step, int64_t total) {
    if (o.warmup_steps > 0 && step <= o.warmup_steps) return o.lr * static_cast<double>(step) / o.warmup_steps;
    if (o.schedule == "cosine") {
        const double span = std::max<int64_t>(1, total - o.warmup_steps);
        const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
        return o.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
    }
    return o.lr;
}

RunState resume(const TrainConfig& cfg, torch::nn::Module& model, torch::optim::AdamW& optimizer, fs::path& from) {
    from.clear();
    if (cfg.checkpoint.resume == "auto")
        from = find_latest_checkpoint(cfg.checkpoint.dir);
    else if (cfg.checkpoint.resume != "never")
        from = cfg.checkpoint.resume;
    if (from.empty()) return {};
    auto state = detail::load_checkpoint(from, model, optimizer);
    spdlog::info("resumed from {} (step {})", from.string(), state.step);
    return state;
}

SampleStream::SampleStream(const data::CacheIndex& index, fs::path cache_dir, uint64_t seed, int rank, int world,
                           RunState& state)
    : index_(index), dir_(std::move(cache_dir)), seed_(seed), rank_(rank), world_(world), state_(state) {
    order_ = data::epoch_order(static_cast<int64_t>(index_.entries.size()), seed_, state_.epoch, rank_, world_);
}

data::CachedSample SampleStream::next() {
    if (state_.position >= static_cast<int64_t>(order_.size())) {
        ++state_.epoch;
        state_.position = 0;
        order_ = data::epoch_order(static_cast<int64_t>(index_.entries.size()), seed_, state_.epoch, rank_, world_);
    }
    const auto& e = index_.entries[order_[state_.position++]];
    const bool first = validated_.insert(e.file).second;
    return data::load_cached_sample(dir_ / e.file, /*validate=*/first);
}

data::Batch SampleStream::next_batch(int64_t n) {
    std::vector<data::CachedSample> samples;
    for (int64_t i = 0; i < n; ++i) samples.push_back(next());
    return data::collate(samples);
}

namespace {

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

/// [x; x] along the batch dim (undefined stays undefined).
at::Tensor twice(const at::Tensor& x) { return x.defined() ? torch::cat({x, x}) : x; }

}  // namespace

NoisedBatch noise_batch(const data::Batch& batch, const NoiseOptions& o) {
    if (o.pairs && !batch.latents_loser.defined()) {
        throw DataError(fmt::format("loss.kind dpo needs winner/loser pairs, but cached sample '{}' has no loser",
                                    batch.ids.empty() ? "?" : batch.ids[0]));
    }
    const int64_t b = batch.latents.size(0);
    std::vector<at::Tensor> sigmas, noises;  // drawn on CPU: device-independent
    for (int64_t i = 0; i < b; ++i) {
        auto g = sample_generator(o.seed, o.step, o.micro, static_cast<int64_t>(o.rank) * b + i);
        sigmas.push_back(flow::sample_sigmas(1, o.timesteps, g));
        noises.push_back(torch::randn(batch.latents[i].sizes(), g));
    }
    NoisedBatch nb;
    nb.sigma = torch::cat(sigmas);
    auto noise = torch::stack(noises);
    auto latents = batch.latents, sigma = nb.sigma, context = batch.context, vace = batch.vace_context;
    auto mask = batch.hand_mask;
    if (o.pairs) {
        nb.pairs = b;
        latents = torch::cat({batch.latents, batch.latents_loser});
        noise = twice(noise);
        sigma = twice(sigma);
        context = twice(context);
        vace = twice(vace);
        mask = mask.defined() ? torch::cat({batch.hand_mask, batch.hand_mask_loser}) : mask;
    }
    const auto noised = flow::add_noise(latents, noise, sigma);
    nb.in.x = noised.x_t.to(o.device);
    nb.in.t = (sigma * 1000.0).to(o.device);
    nb.in.context = context.to(o.device);
    if (vace.defined()) nb.in.vace_context = vace.to(o.device);
    nb.target = noised.target.to(o.device);
    if (mask.defined() && o.hand_weight != 1.0) {
        nb.weights = loss::halo_weights(mask.to(o.device), batch.ref_frames, o.hand_weight, latents.sizes());
    }
    nb.tokens = latents.size(0) * (latents.size(2) / o.patch[0]) * (latents.size(3) / o.patch[1]) *
                (latents.size(4) / o.patch[2]);
    return nb;
}

PhaseClock::PhaseClock(c10::Device device) : device_(device) {
    compat::synchronize(device_);
    last_ = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double PhaseClock::lap() {
    compat::synchronize(device_);
    const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    const double d = now - last_;
    last_ = now;
    return d;
}

namespace {

/// Per-sample weighted errors of the reference (no grad; undefined when not needed) and the policy.
std::pair<at::Tensor, at::Tensor> errors(TrainModel& tm, const NoisedBatch& nb, bool with_ref, bool share,
                                         StepPhases& phases, PhaseClock& clock) {
    auto& model = *tm.model;
    std::shared_ptr<const wan::WanPrelude> pre;
    if (share && tm.share_prelude) {
        torch::NoGradGuard no_grad;  // nothing the prelude holds depends on the adapter
        RECORD_USER_SCOPE("phase::prelude");
        pre = model.prelude(nb.in, tm.shared);
        phases.prelude += clock.lap();
    }
    auto forward = [&] { return pre ? model.forward(nb.in, *pre) : model.forward(nb.in); };
    at::Tensor err_ref;
    if (with_ref) {
        torch::NoGradGuard no_grad;  // reference first: checkpoint recompute never sees the adapter toggled
        lora::ReferenceMode reference(model);
        RECORD_USER_SCOPE("phase::reference");
        err_ref = loss::weighted_error(forward(), nb.target, nb.weights);
        phases.reference += clock.lap();
    }
    at::Tensor err_theta;
    {
        RECORD_USER_SCOPE("phase::policy");
        err_theta = loss::weighted_error(forward(), nb.target, nb.weights);
    }
    phases.policy += clock.lap();
    return {err_ref, err_theta};
}

}  // namespace

MicroResult micro_step(TrainModel& tm, const NoisedBatch& nb, const LossSection& ls, int64_t grad_accum, bool share,
                       StepPhases* phases) {
    StepPhases local;
    StepPhases& times = phases ? *phases : local;
    PhaseClock clock(nb.in.x.device());
    const bool with_ref = ls.kind != loss::LossKind::sft;
    const auto [err_ref, err_theta] = errors(tm, nb, with_ref, share, times, clock);
    const auto sigma = nb.sigma.to(err_theta.device());
    MicroResult r;
    if (ls.kind == loss::LossKind::dpo) {
        const int64_t b = nb.pairs;
        const auto terms = loss::flow_dpo_loss(err_theta.slice(0, 0, b), err_ref.slice(0, 0, b), err_theta.slice(0, b),
                                               err_ref.slice(0, b), sigma, ls.beta, ls.time_weight);
        r.loss = terms.loss;
        r.gap = terms.gap_w.mean();
        r.margin = (terms.gap_w - terms.gap_l).mean();
        r.reward_accuracy = terms.reward_accuracy;
        r.err_theta = err_theta.slice(0, 0, b).detach().mean();
        r.err_ref = err_ref.slice(0, 0, b).mean();
        r.samples = 2 * b;
    } else if (ls.kind == loss::LossKind::ipa) {
        const auto terms = loss::flow_ipa_loss(err_theta, err_ref, sigma, ls.beta, ls.time_weight);
        r.loss = terms.loss;
        r.gap = terms.gap.mean();
        r.reward_accuracy = terms.reward_accuracy;
        r.err_theta = err_theta.detach().mean();
        r.err_ref = err_ref.mean();
        r.samples = err_theta.size(0);
    } else {
        r.loss = loss::flow_sft_loss(err_theta);
        r.err_theta = err_theta.detach().mean();
        r.samples = err_theta.size(0);
    }
    {
        RECORD_USER_SCOPE("phase::backward");
        (r.loss / static_cast<double>(grad_accum)).backward();
    }
    r.loss = r.loss.detach();
    r.tokens = nb.tokens;
    times.backward += clock.lap();
    return r;
}

void reduce_step(dist::ProcessGroup& pg, std::vector<at::Tensor>& params, StepMetrics& m, int64_t& samples,
                 int64_t& tokens) {
    if (pg.world_size() <= 1) return;
    std::vector<at::Tensor> grads;
    for (auto& p : params) {
        if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
        grads.push_back(p.grad());
    }
    pg.all_reduce_mean(grads, fmt::format("LoRA gradients, step {}", m.step));
    const auto sum = pg.all_reduce_sum({m.loss, m.err_theta, m.gap, m.err_ref, m.reward_accuracy, m.margin,
                                        static_cast<double>(samples), static_cast<double>(tokens)},
                                       fmt::format("metrics, step {}", m.step));
    const double w = pg.world_size();
    m.loss = sum[0] / w;
    m.err_theta = sum[1] / w;
    m.gap = sum[2] / w;
    m.err_ref = sum[3] / w;
    m.reward_accuracy = sum[4] / w;
    m.margin = sum[5] / w;
    samples = static_cast<int64_t>(sum[6]);
    tokens = static_cast<int64_t>(sum[7]);
}

bool apply_update(const TrainConfig& cfg, std::vector<at::Tensor>& params, torch::optim::AdamW& optimizer, int64_t step,
                  StepMetrics& m, RunState& state) {
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
        return false;
    }
    m.grad_norm = torch::nn::utils::clip_grad_norm_(
        params, cfg.optim.grad_clip > 0 ? cfg.optim.grad_clip : std::numeric_limits<double>::infinity());
    m.lr = learning_rate(cfg.optim, step, cfg.train.steps);
    for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(m.lr);
    }
    optimizer.step();
    return true;
}

}  // namespace ipa::train
