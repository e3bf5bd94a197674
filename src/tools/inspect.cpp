#include "ipa/tools/inspect.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <map>

#include "ipa/core/error.h"
#include "ipa/core/run_context.h"
#include "ipa/core/torch_compat.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/io/summary.h"
#include "ipa/models/wan/key_mapping.h"
#include "ipa/models/wan/loader.h"

namespace ipa::tools {
namespace wan = ipa::models::wan;

namespace {

wan::WanConfig config_for(const std::string& model_config, const io::Checkpoint& ckpt) {
    if (model_config == "auto") {
        auto cfg = wan::WanConfig::detect(ckpt);
        spdlog::info("detected model config from weight shapes:\n{}", cfg.to_yaml());
        return cfg;
    }
    return wan::WanConfig::resolve(model_config);
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

std::string check_weights(const std::string& model_config, const std::filesystem::path& weights, c10::ScalarType dtype,
                          bool strict) {
    const auto ckpt = io::Checkpoint::open(weights);
    const auto cfg = config_for(model_config, ckpt);
    // Names and shapes are checked on a meta-device model: no memory, even for 14B.
    auto model = wan::make_wan_model(cfg, torch::TensorOptions().device(torch::kMeta));
    model->set_dtype(dtype);
    int64_t params = 0;
    for (const auto& p : model->parameters()) params += p.numel();
    io::LoadOptions lo;
    lo.strict = strict;
    lo.dry_run = true;
    lo.key_map = wan::to_original_key;
    lo.allow_missing = [](const std::string& k) { return k.find(".lora_") != std::string::npos; };
    const auto report = io::load_state_dict(*model, ckpt, lo);
    std::map<std::string, int64_t> stored;
    for (const auto& e : ckpt.entries()) stored[e.dtype] += 1;
    std::string dtypes;
    for (const auto& [d, n] : stored) dtypes += fmt::format("{}{} x{}", dtypes.empty() ? "" : ", ", d, n);
    std::string out =
        fmt::format("{}: {} tensors ({}, {} key names) match {} ({} layers, dim {}, {}{}), {} parameters ({:.3f} B)\n",
                    weights.string(), report.loaded.size(), dtypes, wan::detect_key_format(ckpt),
                    cfg.is_vace() ? "VaceWanModel" : "WanModel", cfg.num_layers, cfg.dim, cfg.model_type,
                    cfg.is_vace() ? fmt::format(", {} VACE blocks", cfg.vace_layers.size()) : "", params, params / 1e9);
    if (!report.ok()) out += report.describe();
    return out;
}

std::string forward_file(const std::string& model_config, const std::filesystem::path& weights,
                         const std::filesystem::path& inputs, const std::filesystem::path& output,
                         c10::ScalarType dtype, const c10::Device& device) {
    const auto ckpt = io::Checkpoint::open(weights);
    const auto cfg = config_for(model_config, ckpt);
    auto model = wan::make_wan_model(cfg);
    wan::WanLoadOptions lo;
    lo.dtype = dtype;
    lo.device = device;
    wan::load_wan_weights(*model, ckpt, lo);
    model->eval();

    const auto in_file = io::SafetensorsFile::open(inputs);
    auto need = [&](const std::string& name) {
        if (!in_file.contains(name)) {
            throw DataError(
                fmt::format("inputs '{}' have no tensor '{}' (expected x, t, context[, vace_context, "
                            "seq_len, context_scale])",
                            inputs.string(), name));
        }
        return in_file.tensor(name).to(device);
    };
    wan::WanInputs in;
    in.x = need("x").to(torch::kFloat);
    in.t = need("t").to(torch::kFloat);
    in.context = need("context").to(torch::kFloat);
    if (in_file.contains("vace_context")) in.vace_context = need("vace_context").to(torch::kFloat);
    if (in_file.contains("seq_len")) in.seq_len = need("seq_len").item<int64_t>();
    if (in_file.contains("context_scale")) in.context_scale = need("context_scale").item<double>();
    torch::NoGradGuard no_grad;
    const double t0 = now_s();
    const auto out = model->forward(in);
    const double dt = now_s() - t0;
    io::save_safetensors(output, {{"out", out.cpu()}},
                         {{"model", model_config}, {"weights", weights.string()}, {"dtype", dtype_name(dtype)}});
    std::string line = fmt::format("wrote out {} to {} ({:.3f} s, max|out| {:.4g})", c10::str(out.sizes()),
                                   output.string(), dt, out.abs().max().item<double>());
    if (in_file.contains("out")) {  // inputs that carry a reference output: report the difference
        const auto ref = in_file.tensor("out").to(torch::kFloat);
        if (ref.sizes() == out.sizes()) {
            line += fmt::format("; max|out - reference out| = {:.3g}", (out.cpu() - ref).abs().max().item<double>());
        }
    }
    return line;
}

std::string bench_forward(const BenchForwardOptions& o) {
    auto cfg = wan::WanConfig::resolve(o.model);
    if (o.layers > 0) {
        cfg.num_layers = o.layers;
        std::vector<int64_t> kept;
        for (auto l : cfg.vace_layers) {
            if (l < o.layers) kept.push_back(l);
        }
        cfg.vace_layers = kept;
        if (kept.empty()) cfg.model_type = "t2v";
    }
    torch::manual_seed(0);
    auto model = wan::make_wan_model(cfg, torch::TensorOptions().device(o.device));
    model->set_dtype(o.dtype);
    model->set_gradient_checkpointing(o.grad_checkpointing);
    const auto opt = torch::TensorOptions().device(o.device);
    wan::WanInputs in;
    in.x = torch::randn({o.batch, cfg.in_dim, o.frames, o.height, o.width}, opt);
    in.t = torch::full({o.batch}, 500.0, opt);
    in.context = torch::randn({o.batch, cfg.text_len, cfg.text_dim}, opt);
    if (cfg.is_vace()) in.vace_context = torch::randn({o.batch, cfg.vace_in_dim, o.frames, o.height, o.width}, opt);
    const int64_t tokens =
        o.batch * o.frames / cfg.patch_size[0] * (o.height / cfg.patch_size[1]) * (o.width / cfg.patch_size[2]);
    auto sync = [&] {
        if (o.device.is_cuda()) torch::cuda::synchronize();
    };
    auto time_it = [&](auto&& fn) {
        for (int i = 0; i < o.warmup; ++i) fn();
        sync();
        double best = 1e300, total = 0;
        for (int i = 0; i < o.iters; ++i) {
            const double t0 = now_s();
            fn();
            sync();
            const double dt = now_s() - t0;
            best = std::min(best, dt);
            total += dt;
        }
        return std::make_pair(best, total / std::max(1, o.iters));
    };
    const auto fwd = time_it([&] {
        torch::NoGradGuard g;
        model->forward(in);
    });
    std::pair<double, double> fb{0, 0};
    if (o.backward) {
        fb = time_it([&] {
            model->zero_grad();
            model->forward(in).pow(2).mean().backward();
        });
    }
    int64_t params = 0;
    for (const auto& p : model->parameters()) params += p.numel();
    std::string out = fmt::format(
        "model {} ({} layers, dim {}, {} params), {} tokens (batch {}, latent {}x{}x{}), {} on {}, torch {}, {} "
        "threads\n",
        o.model, cfg.num_layers, cfg.dim, params, tokens, o.batch, o.frames, o.height, o.width, dtype_name(o.dtype),
        o.device.str(), compat::torch_version(), torch::get_num_threads());
    out += fmt::format("forward            best {:9.4f} s  mean {:9.4f} s  {:10.1f} tokens/s\n", fwd.first, fwd.second,
                       tokens / fwd.first);
    if (o.backward) {
        out += fmt::format("forward+backward   best {:9.4f} s  mean {:9.4f} s  {:10.1f} tokens/s{}\n", fb.first,
                           fb.second, tokens / fb.first, o.grad_checkpointing ? "  (gradient checkpointing)" : "");
    }
    const auto peak = compat::peak_memory_bytes(o.device);
    out += fmt::format("peak memory        {}\n", peak >= 0 ? io::format_bytes(static_cast<double>(peak))
                                                            : std::string("n/a on this device (not measured yet)"));
    return out;
}

}  // namespace ipa::tools
