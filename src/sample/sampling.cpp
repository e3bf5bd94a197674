#include "ipa/sample/sampling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>

#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/models/wan/model.h"

namespace ipa::sample {

const char* const kDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，"
    "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱"
    "的背景，"
    "三条腿，背景人很多，倒着走";

at::Tensor initial_noise(at::IntArrayRef shape, uint64_t seed, c10::Device device) {
    if (device.is_cuda()) {
        // The device's default generator, seeded (as torch.Generator(device).manual_seed).
        auto gen = at::globalContext().defaultGenerator(device);
        {
            std::lock_guard<std::mutex> lock(gen.mutex());
            gen.set_current_seed(seed);
        }
        return at::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    }
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32));
}

SamplingResult sample_flow(const at::Tensor& noise, const VelocityFn& velocity, const SamplingOptions& opts) {
    if (!(opts.guide_scale >= 0)) throw ConfigError(fmt::format("guide scale must be >= 0, got {}", opts.guide_scale));
    auto solver = flow::make_sampler(opts.sampler);
    const auto t0 = std::chrono::steady_clock::now();
    ProgressOptions po;
    po.unit = "step";
    po.mode = opts.progress ? ProgressOptions::Mode::automatic : ProgressOptions::Mode::silent;
    Progress bar(fmt::format("sample ({} {})", flow::to_string(opts.sampler.kind), solver->num_steps()),
                 solver->num_steps(), po);
    at::Tensor x = noise.to(torch::kFloat32);
    for (int64_t i = 0; i < solver->num_steps(); ++i) {
        const double t = solver->timestep(i);
        const auto v_c = velocity(x, t, true);
        at::Tensor v = v_c;
        if (opts.guide_scale != 1.0) v = flow::guide(v_c, velocity(x, t, false), opts.guide_scale);
        x = solver->step(v, x);
        if (!torch::isfinite(x).all().item<bool>()) {
            throw Error(fmt::format("sampling diverged at step {} (t = {}): non-finite values", i + 1, t));
        }
        bar.advance(1, fmt::format("t={:g}", t));
    }
    bar.finish();
    SamplingResult r;
    r.latents = x;
    r.timesteps = solver->timesteps();
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

VelocityFn wan_velocity(models::wan::WanModelImpl& model, at::Tensor vace_context, at::Tensor context,
                        at::Tensor context_null, double context_scale) {
    TORCH_CHECK(context.dim() == 2 && context_null.dim() == 2, "prompt embeddings must be [L, text_dim], got ",
                context.sizes(), " and ", context_null.sizes());
    return [&model, vace_context, context, context_null, context_scale](const at::Tensor& x, double t, bool cond) {
        torch::NoGradGuard no_grad;
        const auto device = model.parameters().front().device();
        models::wan::WanInputs in;
        in.x = x.unsqueeze(0).to(device);
        in.t = torch::full({1}, t, torch::TensorOptions().dtype(torch::kFloat32).device(device));
        in.context = (cond ? context : context_null).unsqueeze(0).to(device);
        if (vace_context.defined()) in.vace_context = vace_context.unsqueeze(0).to(device);
        in.context_scale = context_scale;
        return model.forward(in).squeeze(0).to(torch::kFloat32);
    };
}

}  // namespace ipa::sample
