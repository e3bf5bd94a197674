#include "ipa/train/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <type_traits>

#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/core/run_context.h"

namespace ipa::train {
namespace {

[[noreturn]] void bad(const ConfigReader& sec, const std::string& key, const std::string& what) {
    throw ConfigError(fmt::format("config key '{}' ({}): {}", sec.key_path(key), sec.source(), what));
}

// ---- one table per section: each key's name, how it is read (with its check) and written ----

/// One config key of the whole TrainConfig: read from its section, written to the resolved YAML.
struct Key {
    std::string name;
    std::function<void(const ConfigReader&, TrainConfig&)> read;
    std::function<void(YAML::Emitter&, const TrainConfig&)> write;
};
struct Section {
    std::string name;
    std::vector<Key> keys;
};

using Check = std::function<std::string(const TrainConfig&)>;  ///< "" = fine, else what is wrong

template <class T>
void emit(YAML::Emitter& out, const T& v) {
    out << v;
}
template <class T>
void emit(YAML::Emitter& out, const std::vector<T>& v) {
    out << YAML::Flow << v;
}

/// A plain key: `field` selects the member; `check` validates after reading; `nullable`
/// strings are written as null when empty.
template <class T>
Key key(std::string name, std::function<T&(TrainConfig&)> field, Check check = {}, bool nullable = false) {
    Key k;
    k.name = name;
    k.read = [name, field, check](const ConfigReader& sec, TrainConfig& c) {
        T& v = field(c);
        v = sec.get_or<T>(name, v);
        if (check) {
            if (const auto why = check(c); !why.empty()) bad(sec, name, why);
        }
    };
    k.write = [field, nullable](YAML::Emitter& out, const TrainConfig& c) {
        const T& v = field(const_cast<TrainConfig&>(c));
        if constexpr (std::is_same_v<T, std::string>) {
            if (nullable && v.empty()) {
                out << YAML::Null;
                return;
            }
        }
        emit(out, v);
    };
    return k;
}

/// A key whose YAML value is a name parsed into another type (enums, flags).
template <class T>
Key named(std::string name, std::function<T&(TrainConfig&)> field, std::function<T(const std::string&)> parse,
          std::function<std::string(const T&)> print) {
    Key k;
    k.name = name;
    k.read = [name, field, parse, print](const ConfigReader& sec, TrainConfig& c) {
        T& v = field(c);
        try {
            v = parse(sec.get_or<std::string>(name, print(v)));
        } catch (const ConfigError& e) {
            bad(sec, name, e.what());
        }
    };
    k.write = [field, print](YAML::Emitter& out, const TrainConfig& c) {
        out << print(field(const_cast<TrainConfig&>(c)));
    };
    return k;
}

template <class T>
Check at_least(std::function<T(const TrainConfig&)> value, T low, bool inclusive) {
    return [value, low, inclusive](const TrainConfig& c) {
        const T v = value(c);
        if (inclusive ? v >= low : v > low) return std::string();
        return fmt::format("must be {} {}, got {}", inclusive ? ">=" : ">", low, v);
    };
}
#define IPA_FIELD(path) \
    [](TrainConfig & c) -> auto& { return c.path; }
#define IPA_VALUE(path) [](const TrainConfig& c) { return c.path; }
#define IPA_POSITIVE(type, path) at_least<type>(IPA_VALUE(path), 0, false)
#define IPA_NON_NEGATIVE(type, path) at_least<type>(IPA_VALUE(path), 0, true)

Check one_of(std::function<std::string(const TrainConfig&)> value, std::vector<std::string> allowed) {
    return [value, allowed](const TrainConfig& c) {
        const auto v = value(c);
        if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return std::string();
        return fmt::format("'{}' is not one of {}", v, fmt::join(allowed, ", "));
    };
}

std::vector<Key> model_keys() {
    auto parses = [](auto parse) {
        return [parse](const TrainConfig& c) {
            try {
                parse(c);
            } catch (const ConfigError& e) {
                return std::string(e.what());
            }
            return std::string();
        };
    };
    return {key<std::string>("config", IPA_FIELD(model.config)),
            key<std::string>("checkpoint", IPA_FIELD(model.checkpoint), {}, true),
            key<std::string>("vae", IPA_FIELD(model.vae), {}, true),
            key<std::string>("text_encoder", IPA_FIELD(model.text_encoder), {}, true),
            key<std::string>("tokenizer", IPA_FIELD(model.tokenizer), {}, true),
            key<std::string>("dtype", IPA_FIELD(model.dtype),
                             parses([](const TrainConfig& c) { parse_dtype(c.model.dtype); })),
            key<std::string>("device", IPA_FIELD(model.device),
                             parses([](const TrainConfig& c) { parse_device(c.model.device); }))};
}

std::vector<Key> lora_keys() {
    return {key<int64_t>("rank", IPA_FIELD(lora.rank)), key<double>("alpha", IPA_FIELD(lora.alpha)),
            key<std::vector<std::string>>("targets", IPA_FIELD(lora.targets)),
            key<std::string>("blocks", IPA_FIELD(lora.blocks)),
            key<std::string>("init_from", IPA_FIELD(lora_init_from), {}, true)};
}

std::vector<Key> loss_keys() {
    return {named<loss::LossKind>("kind", IPA_FIELD(loss.kind), loss::parse_loss_kind,
                                  [](const loss::LossKind& k) { return std::string(loss::to_string(k)); }),
            key<double>("beta", IPA_FIELD(loss.beta), IPA_POSITIVE(double, loss.beta)),
            key<double>("hand_weight", IPA_FIELD(loss.hand_weight),
                        [](const TrainConfig& c) {
                            return c.loss.hand_weight >= 1.0
                                       ? std::string()
                                       : fmt::format("must be >= 1 (1 = HALO off), got {}", c.loss.hand_weight);
                        }),
            named<bool>(
                "time_weight", IPA_FIELD(loss.time_weight),
                [](const std::string& v) {
                    if (v != "one_minus_t_squared" && v != "none")
                        throw ConfigError(fmt::format("'{}' is not one of one_minus_t_squared, none", v));
                    return v == "one_minus_t_squared";
                },
                [](const bool& on) { return std::string(on ? "one_minus_t_squared" : "none"); })};
}

std::vector<Key> timestep_keys() {
    return {
        named<flow::TimestepSampling>("sampling", IPA_FIELD(timesteps.sampling), flow::parse_timestep_sampling,
                                      [](const flow::TimestepSampling& s) { return std::string(flow::to_string(s)); }),
        key<double>("shift", IPA_FIELD(timesteps.shift), IPA_POSITIVE(double, timesteps.shift)),
        key<double>("logit_mean", IPA_FIELD(timesteps.logit_mean)),
        key<double>("logit_std", IPA_FIELD(timesteps.logit_std), IPA_POSITIVE(double, timesteps.logit_std))};
}

std::vector<Key> data_keys() {
    return {
        key<std::string>("manifest", IPA_FIELD(data.manifest), {}, true),
        key<std::string>("cache_dir", IPA_FIELD(data.cache_dir)),
        key<int64_t>("frames", IPA_FIELD(data.frames),
                     [](const TrainConfig& c) {
                         const auto f = c.data.frames;
                         return f >= 1 && (f - 1) % 4 == 0 ? std::string()
                                                           : fmt::format("must be 4k+1 (Wan VAE), got {}", f);
                     }),
        key<std::vector<int64_t>>("size", IPA_FIELD(data.size),
                                  [](const TrainConfig& c) {
                                      const auto& s = c.data.size;
                                      const bool ok =
                                          s.size() == 2 && s[0] > 0 && s[1] > 0 && s[0] % 16 == 0 && s[1] % 16 == 0;
                                      return ok ? std::string()
                                                : std::string("must be [height, width], both positive multiples of 16");
                                  }),
        key<int64_t>("synthetic", IPA_FIELD(data.synthetic),
                     [](const TrainConfig& c) {
                         if (c.data.synthetic < 0) return fmt::format("must be >= 0, got {}", c.data.synthetic);
                         if (c.data.synthetic > 0 && !c.data.manifest.empty()) {
                             return fmt::format("is {} while data.manifest is set; a run trains on one or the other",
                                                c.data.synthetic);
                         }
                         return std::string();
                     }),
        key<bool>("hand_masks", IPA_FIELD(data.hand_masks)),
        key<std::string>("mask_shape", IPA_FIELD(data.mask_shape), one_of(IPA_VALUE(data.mask_shape), {"box", "hull"})),
        key<double>("mask_padding", IPA_FIELD(data.mask_padding), IPA_NON_NEGATIVE(double, data.mask_padding)),
        key<bool>("vae_tiling", IPA_FIELD(data.vae_tiling)),
        key<int64_t>("build_timeout_s", IPA_FIELD(data.build_timeout_s), IPA_POSITIVE(int64_t, data.build_timeout_s))};
}

std::vector<Key> optim_keys() {
    return {key<double>("lr", IPA_FIELD(optim.lr), IPA_POSITIVE(double, optim.lr)),
            key<double>("weight_decay", IPA_FIELD(optim.weight_decay), IPA_NON_NEGATIVE(double, optim.weight_decay)),
            key<std::vector<double>>("betas", IPA_FIELD(optim.betas),
                                     [](const TrainConfig& c) {
                                         const auto& b = c.optim.betas;
                                         const bool ok =
                                             b.size() == 2 && b[0] >= 0 && b[0] < 1 && b[1] >= 0 && b[1] < 1;
                                         return ok ? std::string() : std::string("must be two values in [0, 1)");
                                     }),
            key<double>("eps", IPA_FIELD(optim.eps), IPA_POSITIVE(double, optim.eps)),
            key<int64_t>("warmup_steps", IPA_FIELD(optim.warmup_steps), IPA_NON_NEGATIVE(int64_t, optim.warmup_steps)),
            key<std::string>("schedule", IPA_FIELD(optim.schedule),
                             one_of(IPA_VALUE(optim.schedule), {"constant", "cosine"})),
            key<double>("grad_clip", IPA_FIELD(optim.grad_clip), IPA_NON_NEGATIVE(double, optim.grad_clip))};
}

std::vector<Key> train_keys() {
    return {
        key<int64_t>("steps", IPA_FIELD(train.steps), IPA_POSITIVE(int64_t, train.steps)),
        key<int64_t>("batch_size", IPA_FIELD(train.batch_size), IPA_POSITIVE(int64_t, train.batch_size)),
        key<int64_t>("grad_accum", IPA_FIELD(train.grad_accum), IPA_POSITIVE(int64_t, train.grad_accum)),
        key<bool>("grad_checkpointing", IPA_FIELD(train.grad_checkpointing)),
        key<uint64_t>("seed", IPA_FIELD(train.seed)),
        key<int64_t>("log_every", IPA_FIELD(train.log_every), IPA_POSITIVE(int64_t, train.log_every)),
        key<int64_t>("max_bad_steps", IPA_FIELD(train.max_bad_steps), IPA_NON_NEGATIVE(int64_t, train.max_bad_steps))};
}

std::vector<Key> checkpoint_keys() {
    return {key<std::string>("dir", IPA_FIELD(checkpoint.dir)),
            key<int64_t>("every", IPA_FIELD(checkpoint.every), IPA_POSITIVE(int64_t, checkpoint.every)),
            key<int64_t>("keep", IPA_FIELD(checkpoint.keep), IPA_POSITIVE(int64_t, checkpoint.keep)),
            key<std::string>("resume", IPA_FIELD(checkpoint.resume))};
}

std::vector<Key> dist_keys() {
    return {
        key<std::string>("backend", IPA_FIELD(dist.backend), one_of(IPA_VALUE(dist.backend), {"auto", "nccl", "gloo"})),
        key<int64_t>("timeout_s", IPA_FIELD(dist.timeout_s), IPA_POSITIVE(int64_t, dist.timeout_s))};
}

#undef IPA_FIELD
#undef IPA_VALUE
#undef IPA_POSITIVE
#undef IPA_NON_NEGATIVE

/// The whole config: sections in file order, keys in section order (the resolved YAML's order).
const std::vector<Section>& sections() {
    static const std::vector<Section> table{
        {"model", model_keys()}, {"lora", lora_keys()},   {"loss", loss_keys()},   {"timesteps", timestep_keys()},
        {"data", data_keys()},   {"optim", optim_keys()}, {"train", train_keys()}, {"checkpoint", checkpoint_keys()},
        {"dist", dist_keys()}};
    return table;
}

}  // namespace

TrainConfig TrainConfig::from_yaml(const ConfigReader& root) {
    std::vector<std::string> names;
    for (const auto& s : sections()) names.push_back(s.name);
    for (const auto& k : root.keys()) {
        if (std::find(names.begin(), names.end(), k) == names.end()) {
            throw ConfigError(
                fmt::format("unknown config section '{}' in {} (known: {})", k, root.source(), fmt::join(names, ", ")));
        }
    }
    TrainConfig c;
    for (const auto& section : sections()) {
        const auto reader = root.section(section.name);
        for (const auto& k : section.keys) k.read(reader, c);
        reader.finish();
        if (section.name == "lora") {
            try {
                c.lora.validate();
            } catch (const ConfigError& e) {
                throw ConfigError(fmt::format("{} ({})", e.what(), reader.source()));
            }
        }
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
    out << YAML::BeginMap;
    for (const auto& section : sections()) {
        out << YAML::Key << section.name << YAML::Value << YAML::BeginMap;
        for (const auto& k : section.keys) {
            out << YAML::Key << k.name << YAML::Value;
            k.write(out, *this);
        }
        out << YAML::EndMap;
    }
    out << YAML::EndMap;
    return std::string(out.c_str()) + "\n";
}

}  // namespace ipa::train
