#include "ipa/train/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/core/run_context.h"

namespace ipa::train {
namespace {

[[noreturn]] void bad(const ConfigReader& sec, const std::string& key, const std::string& what) {
    throw ConfigError(fmt::format("config key '{}' ({}): {}", sec.key_path(key), sec.source(), what));
}

void positive(const ConfigReader& sec, const std::string& key, double v, bool allow_zero = false) {
    if (allow_zero ? v < 0 : v <= 0) bad(sec, key, fmt::format("must be {}, got {}", allow_zero ? ">= 0" : "> 0", v));
}

}  // namespace

TrainConfig TrainConfig::from_yaml(const ConfigReader& root) {
    TrainConfig c;
    static const std::vector<std::string> sections{"model", "lora",  "loss",       "timesteps", "data",
                                                   "optim", "train", "checkpoint", "dist"};
    for (const auto& k : root.keys()) {
        if (std::find(sections.begin(), sections.end(), k) == sections.end()) {
            throw ConfigError(
                fmt::format("unknown config section '{}' in {} (known: model, lora, loss, timesteps, "
                            "data, optim, train, checkpoint, dist)",
                            k, root.source()));
        }
    }
    {
        const auto s = root.section("model");
        c.model.config = s.get_or<std::string>("config", c.model.config);
        c.model.checkpoint = s.get_or<std::string>("checkpoint", "");
        c.model.vae = s.get_or<std::string>("vae", "");
        c.model.text_encoder = s.get_or<std::string>("text_encoder", "");
        c.model.tokenizer = s.get_or<std::string>("tokenizer", "");
        c.model.dtype = s.get_or<std::string>("dtype", c.model.dtype);
        c.model.device = s.get_or<std::string>("device", c.model.device);
        try {
            parse_dtype(c.model.dtype);
            parse_device(c.model.device);
        } catch (const ConfigError& e) {
            bad(s, "dtype/device", e.what());
        }
        s.finish();
    }
    {
        const auto s = root.section("lora");
        c.lora_init_from = s.get_or<std::string>("init_from", "");
        c.lora = lora::LoRAConfig::from_yaml(s);
        s.finish();
    }
    {
        const auto s = root.section("loss");
        try {
            c.loss.kind = loss::parse_loss_kind(s.get_or<std::string>("kind", "ipa"));
        } catch (const ConfigError& e) {
            bad(s, "kind", e.what());
        }
        c.loss.beta = s.get_or<double>("beta", c.loss.beta);
        positive(s, "beta", c.loss.beta);
        c.loss.hand_weight = s.get_or<double>("hand_weight", c.loss.hand_weight);
        if (c.loss.hand_weight < 1.0)
            bad(s, "hand_weight", fmt::format("must be >= 1 (1 = HALO off), got {}", c.loss.hand_weight));
        const auto tw = s.get_or<std::string>("time_weight", "one_minus_t_squared");
        if (tw != "one_minus_t_squared" && tw != "none")
            bad(s, "time_weight", fmt::format("'{}' is not one of one_minus_t_squared, none", tw));
        c.loss.time_weight = tw == "one_minus_t_squared";
        s.finish();
    }
    {
        const auto s = root.section("timesteps");
        try {
            c.timesteps.sampling = flow::parse_timestep_sampling(s.get_or<std::string>("sampling", "uniform"));
        } catch (const ConfigError& e) {
            bad(s, "sampling", e.what());
        }
        c.timesteps.shift = s.get_or<double>("shift", 1.0);
        positive(s, "shift", c.timesteps.shift);
        c.timesteps.logit_mean = s.get_or<double>("logit_mean", 0.0);
        c.timesteps.logit_std = s.get_or<double>("logit_std", 1.0);
        positive(s, "logit_std", c.timesteps.logit_std);
        s.finish();
    }
    {
        const auto s = root.section("data");
        c.data.manifest = s.get_or<std::string>("manifest", "");
        c.data.cache_dir = s.get_or<std::string>("cache_dir", c.data.cache_dir);
        c.data.frames = s.get_or<int64_t>("frames", c.data.frames);
        if (c.data.frames < 1 || (c.data.frames - 1) % 4 != 0)
            bad(s, "frames", fmt::format("must be 4k+1 (Wan VAE), got {}", c.data.frames));
        c.data.size = s.get_or<std::vector<int64_t>>("size", c.data.size);
        if (c.data.size.size() != 2 || c.data.size[0] % 16 || c.data.size[1] % 16 || c.data.size[0] <= 0 ||
            c.data.size[1] <= 0) {
            bad(s, "size", "must be [height, width], both positive multiples of 16");
        }
        c.data.synthetic = s.get_or<int64_t>("synthetic", 0);
        positive(s, "synthetic", static_cast<double>(c.data.synthetic), true);
        if (c.data.synthetic > 0 && !c.data.manifest.empty()) {
            bad(s, "synthetic",
                fmt::format("is {} while data.manifest is set; a run trains on one or the other", c.data.synthetic));
        }
        c.data.hand_masks = s.get_or<bool>("hand_masks", c.data.hand_masks);
        c.data.mask_shape = s.get_or<std::string>("mask_shape", c.data.mask_shape);
        if (c.data.mask_shape != "box" && c.data.mask_shape != "hull") {
            bad(s, "mask_shape", fmt::format("'{}' is not one of box, hull", c.data.mask_shape));
        }
        c.data.mask_padding = s.get_or<double>("mask_padding", c.data.mask_padding);
        positive(s, "mask_padding", c.data.mask_padding, true);
        c.data.vae_tiling = s.get_or<bool>("vae_tiling", c.data.vae_tiling);
        c.data.build_timeout_s = s.get_or<int64_t>("build_timeout_s", c.data.build_timeout_s);
        positive(s, "build_timeout_s", static_cast<double>(c.data.build_timeout_s));
        s.finish();
    }
    {
        const auto s = root.section("optim");
        c.optim.lr = s.get_or<double>("lr", c.optim.lr);
        positive(s, "lr", c.optim.lr);
        c.optim.weight_decay = s.get_or<double>("weight_decay", c.optim.weight_decay);
        positive(s, "weight_decay", c.optim.weight_decay, true);
        c.optim.betas = s.get_or<std::vector<double>>("betas", c.optim.betas);
        if (c.optim.betas.size() != 2 || c.optim.betas[0] < 0 || c.optim.betas[0] >= 1 || c.optim.betas[1] < 0 ||
            c.optim.betas[1] >= 1) {
            bad(s, "betas", "must be two values in [0, 1)");
        }
        c.optim.eps = s.get_or<double>("eps", c.optim.eps);
        positive(s, "eps", c.optim.eps);
        c.optim.warmup_steps = s.get_or<int64_t>("warmup_steps", 0);
        positive(s, "warmup_steps", static_cast<double>(c.optim.warmup_steps), true);
        c.optim.schedule = s.get_or<std::string>("schedule", c.optim.schedule);
        if (c.optim.schedule != "constant" && c.optim.schedule != "cosine") {
            bad(s, "schedule", fmt::format("'{}' is not one of constant, cosine", c.optim.schedule));
        }
        c.optim.grad_clip = s.get_or<double>("grad_clip", c.optim.grad_clip);
        positive(s, "grad_clip", c.optim.grad_clip, true);
        s.finish();
    }
    {
        const auto s = root.section("train");
        c.train.steps = s.get_or<int64_t>("steps", c.train.steps);
        positive(s, "steps", static_cast<double>(c.train.steps));
        c.train.batch_size = s.get_or<int64_t>("batch_size", c.train.batch_size);
        positive(s, "batch_size", static_cast<double>(c.train.batch_size));
        c.train.grad_accum = s.get_or<int64_t>("grad_accum", c.train.grad_accum);
        positive(s, "grad_accum", static_cast<double>(c.train.grad_accum));
        c.train.grad_checkpointing = s.get_or<bool>("grad_checkpointing", c.train.grad_checkpointing);
        c.train.seed = s.get_or<uint64_t>("seed", c.train.seed);
        c.train.log_every = s.get_or<int64_t>("log_every", c.train.log_every);
        positive(s, "log_every", static_cast<double>(c.train.log_every));
        c.train.max_bad_steps = s.get_or<int64_t>("max_bad_steps", c.train.max_bad_steps);
        positive(s, "max_bad_steps", static_cast<double>(c.train.max_bad_steps), true);
        s.finish();
    }
    {
        const auto s = root.section("checkpoint");
        c.checkpoint.dir = s.get_or<std::string>("dir", c.checkpoint.dir);
        c.checkpoint.every = s.get_or<int64_t>("every", c.checkpoint.every);
        positive(s, "every", static_cast<double>(c.checkpoint.every));
        c.checkpoint.keep = s.get_or<int64_t>("keep", c.checkpoint.keep);
        positive(s, "keep", static_cast<double>(c.checkpoint.keep));
        c.checkpoint.resume = s.get_or<std::string>("resume", c.checkpoint.resume);
        s.finish();
    }
    {
        const auto s = root.section("dist");
        c.dist.backend = s.get_or<std::string>("backend", c.dist.backend);
        if (c.dist.backend != "auto" && c.dist.backend != "nccl" && c.dist.backend != "gloo") {
            bad(s, "backend", fmt::format("'{}' is not one of auto, nccl, gloo", c.dist.backend));
        }
        c.dist.timeout_s = s.get_or<int64_t>("timeout_s", c.dist.timeout_s);
        positive(s, "timeout_s", static_cast<double>(c.dist.timeout_s));
        s.finish();
    }
    return c;
}

TrainConfig TrainConfig::load(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
    auto reader = ConfigReader::load_file(file);
    YAML::Node root = YAML::Clone(reader.node());
    for (const auto& o : overrides) apply_override(root, o);
    return from_yaml(ConfigReader(root, "", file.string()));
}

std::string TrainConfig::to_yaml() const {
    YAML::Emitter out;
    auto kv = [&](const char* k, const auto& v) { out << YAML::Key << k << YAML::Value << v; };
    auto str_or_null = [&](const char* k, const std::string& v) {
        out << YAML::Key << k << YAML::Value;
        if (v.empty())
            out << YAML::Null;
        else
            out << v;
    };
    out << YAML::BeginMap;
    out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
    kv("config", model.config);
    str_or_null("checkpoint", model.checkpoint);
    str_or_null("vae", model.vae);
    str_or_null("text_encoder", model.text_encoder);
    str_or_null("tokenizer", model.tokenizer);
    kv("dtype", model.dtype);
    kv("device", model.device);
    out << YAML::EndMap;
    out << YAML::Key << "lora" << YAML::Value << YAML::BeginMap;
    kv("rank", lora.rank);
    kv("alpha", lora.alpha);
    out << YAML::Key << "targets" << YAML::Value << YAML::Flow << lora.targets;
    kv("blocks", lora.blocks);
    str_or_null("init_from", lora_init_from);
    out << YAML::EndMap;
    out << YAML::Key << "loss" << YAML::Value << YAML::BeginMap;
    kv("kind", loss::to_string(loss.kind));
    kv("beta", loss.beta);
    kv("hand_weight", loss.hand_weight);
    kv("time_weight", loss.time_weight ? "one_minus_t_squared" : "none");
    out << YAML::EndMap;
    out << YAML::Key << "timesteps" << YAML::Value << YAML::BeginMap;
    kv("sampling", flow::to_string(timesteps.sampling));
    kv("shift", timesteps.shift);
    kv("logit_mean", timesteps.logit_mean);
    kv("logit_std", timesteps.logit_std);
    out << YAML::EndMap;
    out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
    str_or_null("manifest", data.manifest);
    kv("cache_dir", data.cache_dir);
    kv("frames", data.frames);
    out << YAML::Key << "size" << YAML::Value << YAML::Flow << data.size;
    kv("synthetic", data.synthetic);
    kv("hand_masks", data.hand_masks);
    kv("mask_shape", data.mask_shape);
    kv("mask_padding", data.mask_padding);
    kv("vae_tiling", data.vae_tiling);
    kv("build_timeout_s", data.build_timeout_s);
    out << YAML::EndMap;
    out << YAML::Key << "optim" << YAML::Value << YAML::BeginMap;
    kv("lr", optim.lr);
    kv("weight_decay", optim.weight_decay);
    out << YAML::Key << "betas" << YAML::Value << YAML::Flow << optim.betas;
    kv("eps", optim.eps);
    kv("warmup_steps", optim.warmup_steps);
    kv("schedule", optim.schedule);
    kv("grad_clip", optim.grad_clip);
    out << YAML::EndMap;
    out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
    kv("steps", train.steps);
    kv("batch_size", train.batch_size);
    kv("grad_accum", train.grad_accum);
    kv("grad_checkpointing", train.grad_checkpointing);
    kv("seed", train.seed);
    kv("log_every", train.log_every);
    kv("max_bad_steps", train.max_bad_steps);
    out << YAML::EndMap;
    out << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap;
    kv("dir", checkpoint.dir);
    kv("every", checkpoint.every);
    kv("keep", checkpoint.keep);
    kv("resume", checkpoint.resume);
    out << YAML::EndMap;
    out << YAML::Key << "dist" << YAML::Value << YAML::BeginMap;
    kv("backend", dist.backend);
    kv("timeout_s", dist.timeout_s);
    out << YAML::EndMap;
    out << YAML::EndMap;
    return std::string(out.c_str()) + "\n";
}

}  // namespace ipa::train
