// Adapter files: reading every common spelling, saving the ComfyUI/DiffSynth/diffusers one,
// and loading into a model.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <set>

#include "internal.h"
#include "ipa/core/error.h"
#include "ipa/core/strings.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/safetensors.h"
#include "ipa/lora/lora.h"
#include "ipa/models/wan/key_mapping.h"

namespace fs = std::filesystem;

namespace ipa::lora {
namespace {

enum class Part { A, B, Alpha };

// Longest first: `.lora_A.default.weight` before `.lora_A.weight`.
const std::vector<std::pair<std::string, Part>>& key_suffixes() {
    static const std::vector<std::pair<std::string, Part>> s = {
        {".lora_A.default.weight", Part::A},
        {".lora_B.default.weight", Part::B},
        {".lora_down.weight", Part::A},
        {".lora_up.weight", Part::B},
        {".lora_A.weight", Part::A},
        {".lora_B.weight", Part::B},
        {".alpha", Part::Alpha},
    };
    return s;
}

std::optional<double> metadata_alpha(const std::map<std::string, std::string>& meta) {
    for (const char* key : {"alpha", "ss_network_alpha"}) {
        const auto it = meta.find(key);
        if (it == meta.end()) continue;
        try {
            std::size_t used = 0;
            const double v = std::stod(it->second, &used);
            if (used == it->second.size()) return v;
        } catch (const std::exception&) {
        }
    }
    return std::nullopt;
}

// diffusers' save_lora_weights stores the peft LoraConfig as JSON in the metadata key
// `lora_adapter_metadata`, each field prefixed with the pipeline component
// (`transformer.lora_alpha`, `transformer.alpha_pattern`, ...); its factors carry no alpha.
struct PeftMetadata {
    std::optional<double> lora_alpha;
    std::map<std::string, double> alpha_pattern;  ///< module name (suffix) -> alpha
};

std::optional<PeftMetadata> peft_metadata(const std::map<std::string, std::string>& meta, const fs::path& file,
                                          std::vector<std::string>& problems) {
    const auto it = meta.find("lora_adapter_metadata");
    if (it == meta.end()) return std::nullopt;
    const auto where = fmt::format("metadata 'lora_adapter_metadata' of {}", file.filename().string());
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(it->second);
    } catch (const std::exception& e) {
        problems.push_back(fmt::format("{}: not JSON ({})", where, e.what()));
        return std::nullopt;
    }
    if (!j.is_object()) {
        problems.push_back(where + ": not a JSON object");
        return std::nullopt;
    }
    PeftMetadata out;
    const std::string prefix = "transformer.";
    for (const auto& [key, value] : j.items()) {
        if (!starts_with(key, prefix)) continue;  // other pipeline components
        const auto field = key.substr(prefix.size());
        try {
            if (field == "lora_alpha" && !value.is_null()) {
                out.lora_alpha = value.get<double>();
            } else if (field == "alpha_pattern" && value.is_object()) {
                for (const auto& [m, a] : value.items()) out.alpha_pattern[m] = a.get<double>();
            } else if ((field == "use_rslora" || field == "use_dora") && value.is_boolean() && value.get<bool>()) {
                problems.push_back(
                    fmt::format("{}: {} = true is not supported (plain LoRA scaling alpha/r only)", where, key));
            }
        } catch (const std::exception& e) {
            problems.push_back(fmt::format("{}: bad value for '{}' ({})", where, key, e.what()));
        }
    }
    return out;
}

// peft's alpha for a module: alpha_pattern entry naming it (whole name or dot-bounded suffix),
// else lora_alpha.
std::optional<double> peft_alpha(const PeftMetadata& m, const std::string& module) {
    for (const auto& [pattern, alpha] : m.alpha_pattern) {
        if (module == pattern || ends_with(module, "." + pattern)) return alpha;
    }
    return m.lora_alpha;
}

std::string join_problems(const std::vector<std::string>& problems) {
    return fmt::format("  {}", fmt::join(problems, "\n  "));
}

}  // namespace

namespace detail {

std::map<std::string, std::string> module_lookup(const std::vector<std::string>& names) {
    std::map<std::string, std::string> m;
    for (const auto& n : names) {
        m[n] = n;
        std::string k = "lora_unet_" + n;
        for (auto& ch : k) ch = ch == '.' ? '_' : ch;
        m.emplace(k, n);
    }
    return m;
}

std::optional<std::string> original_module_name(const std::string& module) {
    std::string m = module;
    for (const char* prefix : {"base_model.model.", "transformer."}) {
        if (starts_with(m, prefix)) {
            m = m.substr(std::string(prefix).size());
            break;
        }
    }
    const auto key = models::wan::to_original_key(m + ".weight");
    if (!key || !ends_with(*key, ".weight")) return std::nullopt;
    return key->substr(0, key->size() - std::string(".weight").size());
}

AdapterFile read_adapter_files(const fs::path& path) {
    AdapterFile out;
    auto read_one = [&](const fs::path& file) {
        const auto ckpt = io::Checkpoint::open(file);
        out.files.push_back(file);
        std::set<std::string> here;
        for (const auto& name : ckpt.names()) {
            const std::pair<std::string, Part>* hit = nullptr;
            for (const auto& s : key_suffixes()) {
                if (ends_with(name, s.first)) {
                    hit = &s;
                    break;
                }
            }
            const auto module =
                hit ? original_module_name(name.substr(0, name.size() - hit->first.size())) : std::nullopt;
            if (!module) {
                out.problems.push_back(
                    fmt::format("unrecognised key '{}' in {} (expected <module>.lora_A.weight, "
                                ".lora_B.weight, .lora_down/.lora_up.weight or .alpha)",
                                name, file.filename().string()));
                continue;
            }
            auto& e = out.modules[*module];
            if (e.key.empty()) {
                e.key = name;
                e.file_module = name.substr(0, name.size() - hit->first.size());
                for (const char* prefix : {"transformer.", "base_model.model."}) {
                    if (starts_with(e.file_module, prefix)) {
                        e.file_module = e.file_module.substr(std::string(prefix).size());
                        break;
                    }
                }
            }
            here.insert(*module);
            const auto t = ckpt.get(name);
            auto set_factor = [&](at::Tensor& slot, const char* which) {
                if (slot.defined()) {
                    out.problems.push_back(fmt::format("'{}': {} given twice (key '{}')", *module, which, name));
                } else {
                    slot = t;
                }
            };
            if (hit->second == Part::A) {
                set_factor(e.A, "lora_A");
            } else if (hit->second == Part::B) {
                set_factor(e.B, "lora_B");
            } else if (t.numel() != 1) {
                out.problems.push_back(
                    fmt::format("'{}': alpha must be a scalar, got shape {}", name, c10::str(t.sizes())));
            } else {
                e.alpha = t.to(torch::kDouble).item<double>();
            }
        }
        if (const auto peft = peft_metadata(ckpt.metadata(), file, out.problems)) {
            for (const auto& m : here) {
                auto& e = out.modules[m];
                if (!e.alpha) e.alpha = peft_alpha(*peft, e.file_module);
            }
        }
        if (const auto alpha = metadata_alpha(ckpt.metadata())) {
            for (const auto& m : here) {
                auto& e = out.modules[m];
                if (!e.alpha) e.alpha = alpha;
            }
        }
    };
    read_one(path);
    const auto vace = vace_adapter_path(path);
    std::error_code ec;
    if (vace != path && fs::exists(vace, ec)) read_one(vace);
    for (auto it = out.modules.begin(); it != out.modules.end();) {
        const auto& e = it->second;
        if (!e.A.defined() || !e.B.defined()) {
            out.problems.push_back(fmt::format("'{}' (key '{}'): {} missing", it->first, e.key,
                                               e.A.defined()   ? "lora_B (lora_up)"
                                               : e.B.defined() ? "lora_A (lora_down)"
                                                               : "lora_A and lora_B"));
            it = out.modules.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

}  // namespace detail

fs::path vace_adapter_path(const fs::path& path) {
    return path.parent_path() / (path.stem().string() + ".vace.safetensors");
}

void save_adapter(const fs::path& path, torch::nn::Module& model, const LoRAConfig& cfg,
                  std::map<std::string, std::string> metadata) {
    const auto mods = detail::lora_modules(model);
    if (mods.empty()) throw Error(fmt::format("save_adapter '{}': the model has no LoRA adapter", path.string()));
    io::NamedTensors main, vace;
    std::set<int64_t> ranks;
    std::set<double> alphas;
    for (const auto& [name, lin] : mods) {
        auto& dst = starts_with(name, "vace_blocks.") ? vace : main;
        const std::string key = "diffusion_model." + name;
        dst.emplace_back(key + ".lora_A.weight", lin->lora_A_weight().detach().to(torch::kCPU, torch::kFloat));
        dst.emplace_back(key + ".lora_B.weight", lin->lora_B_weight().detach().to(torch::kCPU, torch::kFloat));
        dst.emplace_back(key + ".alpha", torch::scalar_tensor(lin->lora_alpha(), torch::kFloat));
        ranks.insert(lin->lora_rank());
        alphas.insert(lin->lora_alpha());
    }
    metadata["format"] = "ipa.lora";
    metadata["format_version"] = "1";
    // What the adapters are (they may come from a file of another rank), else "mixed".
    metadata["rank"] = ranks.size() == 1 ? std::to_string(*ranks.begin()) : "mixed";
    metadata["alpha"] = alphas.size() == 1 ? fmt::format("{}", *alphas.begin()) : "mixed";
    metadata["targets"] = fmt::format("{}", fmt::join(cfg.targets, ","));
    metadata["blocks"] = cfg.blocks;
    if (ranks.size() != 1 || *ranks.begin() != cfg.rank) {
        spdlog::warn("save_adapter: adapter ranks {} differ from lora.rank {}", fmt::join(ranks, ","), cfg.rank);
    }
    if (!path.parent_path().empty()) fs::create_directories(path.parent_path());
    io::save_safetensors(path, main, metadata);
    const auto vace_path = vace_adapter_path(path);
    if (!vace.empty()) {
        io::save_safetensors(vace_path, vace, metadata);
    } else {
        std::error_code ec;
        fs::remove(vace_path, ec);  // a stale one would be loaded with this file
    }
    spdlog::info("saved {} LoRA adapters to {}{}", mods.size(), path.string(),
                 vace.empty() ? "" : " (+ " + vace_path.filename().string() + ")");
}

std::vector<std::string> load_adapter(torch::nn::Module& model, const fs::path& path, bool strict) {
    auto file = detail::read_adapter_files(path);
    auto problems = file.problems;
    const auto linears = detail::linear_modules(model);
    std::map<std::string, detail::LinearPtr> by_name;
    std::vector<std::string> names;
    for (const auto& [name, lin] : linears) {
        by_name[name] = lin;
        names.push_back(name);
    }
    const auto lookup = detail::module_lookup(names);
    struct Job {
        std::string name;
        detail::LinearPtr lin;
        const detail::AdapterTensors* t;
    };
    std::vector<Job> jobs;
    for (const auto& [module, t] : file.modules) {
        const auto it = lookup.find(module);
        if (it == lookup.end()) {
            problems.push_back(
                fmt::format("'{}' (key '{}'): no Linear layer of that name in the model", module, t.key));
            continue;
        }
        const auto& lin = by_name.at(it->second);
        const bool fits = t.A.dim() == 2 && t.B.dim() == 2 && t.A.size(0) == t.B.size(1) &&
                          t.A.size(1) == lin->in_features && t.B.size(0) == lin->out_features;
        if (!fits) {
            problems.push_back(fmt::format("'{}': lora_A {} / lora_B {} do not fit the layer [out, in] = [{}, {}]",
                                           it->second, c10::str(t.A.sizes()), c10::str(t.B.sizes()), lin->out_features,
                                           lin->in_features));
            continue;
        }
        if (lin->lora_merged()) {
            problems.push_back(
                fmt::format("'{}': the model's adapter is merged into the base; unmerge first", it->second));
            continue;
        }
        jobs.push_back({it->second, lin, &t});
    }
    std::vector<std::string> file_names;
    for (const auto& f : file.files) file_names.push_back(f.string());
    const std::string files = fmt::format("{}", fmt::join(file_names, ", "));
    if (!problems.empty()) {
        const auto msg = fmt::format("LoRA adapter {} does not fit the model ({} problems):\n{}", files,
                                     problems.size(), join_problems(problems));
        if (strict) throw CheckpointError(msg + "\n(hint: load non-strictly to skip these entries)");
        spdlog::warn("{}", msg);
    }
    if (jobs.empty()) throw CheckpointError(fmt::format("no loadable LoRA adapter in {}", files));

    torch::NoGradGuard no_grad;
    std::vector<std::string> loaded;
    for (const auto& job : jobs) {
        auto& lin = *job.lin;
        const int64_t rank = job.t->A.size(0);
        const double alpha = job.t->alpha.value_or(static_cast<double>(rank));
        if (!lin.has_lora() || lin.lora_rank() != rank) {
            const double multiplier = lin.has_lora() ? lin.lora_multiplier() : 1.0;
            lin.attach_lora(rank, alpha);
            lin.set_lora_multiplier(multiplier);
        }
        lin.set_lora_alpha(alpha);
        lin.lora_A_weight().copy_(job.t->A.to(torch::kFloat));
        lin.lora_B_weight().copy_(job.t->B.to(torch::kFloat));
        loaded.push_back(job.name);
    }
    detail::freeze_base(model);
    spdlog::info("loaded LoRA adapters for {} layers from {}", loaded.size(), files);
    return loaded;
}

}  // namespace ipa::lora
