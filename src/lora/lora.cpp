#include "ipa/lora/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <set>

#include "internal.h"
#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/core/strings.h"

namespace ipa::lora {
namespace {

/// `name` equals `target` or ends with "." + target.
bool suffix_match(const std::string& name, const std::string& target) {
    return name == target || ends_with(name, "." + target);
}

/// "blocks.3.self_attn.q" -> "self_attn.q" (the path inside a block); other names unchanged.
std::string in_block_path(const std::string& name) {
    for (const char* prefix : {"blocks.", "vace_blocks."}) {
        if (!starts_with(name, prefix)) continue;
        const auto dot = name.find('.', std::string(prefix).size());
        return dot == std::string::npos ? name : name.substr(dot + 1);
    }
    return name;
}

bool block_selected(const std::string& name, const std::string& blocks) {
    const bool main = starts_with(name, "blocks."), vace = starts_with(name, "vace_blocks.");
    if (blocks == "main") return main;
    if (blocks == "vace") return vace;
    return main || vace;
}

std::string blocks_description(const std::string& blocks) {
    if (blocks == "main") return "the main blocks (blocks.*)";
    if (blocks == "vace") return "the VACE blocks (vace_blocks.*)";
    return "blocks.* and vace_blocks.*";
}

}  // namespace

namespace detail {

std::vector<std::pair<std::string, LinearPtr>> linear_modules(torch::nn::Module& model) {
    std::vector<std::pair<std::string, LinearPtr>> out;
    for (const auto& item : model.named_modules("", /*include_self=*/false)) {
        if (auto lin = std::dynamic_pointer_cast<models::wan::LinearImpl>(item.value())) {
            out.emplace_back(item.key(), std::move(lin));
        }
    }
    return out;
}

std::vector<std::pair<std::string, LinearPtr>> lora_modules(torch::nn::Module& model) {
    auto all = linear_modules(model);
    std::vector<std::pair<std::string, LinearPtr>> out;
    for (auto& m : all) {
        if (m.second->has_lora()) out.push_back(std::move(m));
    }
    return out;
}

void freeze_base(torch::nn::Module& model) {
    std::set<const void*> adapter;
    for (const auto& [name, lin] : lora_modules(model)) {
        adapter.insert(lin->lora_A_weight().unsafeGetTensorImpl());
        adapter.insert(lin->lora_B_weight().unsafeGetTensorImpl());
    }
    for (auto& p : model.parameters()) p.requires_grad_(adapter.count(p.unsafeGetTensorImpl()) > 0);
}

}  // namespace detail

// ---- configuration ----

void LoRAConfig::validate() const {
    if (rank <= 0) throw ConfigError(fmt::format("lora.rank must be positive, got {}", rank));
    if (!std::isfinite(alpha) || alpha <= 0)
        throw ConfigError(fmt::format("lora.alpha must be positive, got {}", alpha));
    if (blocks != "main" && blocks != "vace" && blocks != "all") {
        throw ConfigError(fmt::format("lora.blocks must be main, vace or all, got '{}'", blocks));
    }
    if (targets.empty()) throw ConfigError("lora.targets is empty (default: [self_attn.q, self_attn.k, self_attn.v])");
    std::set<std::string> seen;
    for (const auto& t : targets) {
        if (t.empty() || t.front() == '.' || t.back() == '.') {
            throw ConfigError(fmt::format("lora.targets: bad module suffix '{}'", t));
        }
        if (!seen.insert(t).second) throw ConfigError(fmt::format("lora.targets: '{}' is listed twice", t));
    }
}

LoRAConfig LoRAConfig::from_yaml(const ConfigReader& node) {
    LoRAConfig c;
    c.rank = node.get_or<int64_t>("rank", c.rank);
    c.alpha = node.get_or<double>("alpha", c.alpha);
    c.targets = node.get_or<std::vector<std::string>>("targets", c.targets);
    c.blocks = node.get_or<std::string>("blocks", c.blocks);
    node.mark_used("init_from");  // read by the trainer
    node.finish();
    try {
        c.validate();
    } catch (const ConfigError& e) {
        throw ConfigError(fmt::format("{} ({})", e.what(), node.source()));
    }
    return c;
}

// ---- attaching ----

std::vector<std::string> match_targets(torch::nn::Module& model, const LoRAConfig& cfg) {
    cfg.validate();
    const auto linears = detail::linear_modules(model);
    std::vector<std::string> problems;
    std::set<std::string> chosen;
    for (const auto& target : cfg.targets) {
        std::set<std::string> paths;  // distinct in-block paths this target selects
        int matched = 0;
        for (const auto& [name, lin] : linears) {
            if (!block_selected(name, cfg.blocks) || !suffix_match(name, target)) continue;
            paths.insert(in_block_path(name));
            ++matched;
        }
        if (matched == 0) {
            problems.push_back(
                fmt::format("target '{}' matches no Linear layer in {}", target, blocks_description(cfg.blocks)));
        } else if (paths.size() > 1) {
            problems.push_back(fmt::format("ambiguous target '{}': use {}", target, fmt::join(paths, " or ")));
        }
    }
    if (!problems.empty()) {
        throw ConfigError(
            fmt::format("lora.targets [{}]: {}", fmt::join(cfg.targets, ", "), fmt::join(problems, "; ")));
    }
    std::vector<std::string> names;
    for (const auto& [name, lin] : linears) {
        if (!block_selected(name, cfg.blocks)) continue;
        for (const auto& target : cfg.targets) {
            if (suffix_match(name, target)) {
                names.push_back(name);
                break;
            }
        }
    }
    if (names.empty()) {
        throw ConfigError(fmt::format("lora.targets [{}] match no Linear layer in {}", fmt::join(cfg.targets, ", "),
                                      blocks_description(cfg.blocks)));
    }
    return names;
}

std::vector<std::string> attach_lora(torch::nn::Module& model, const LoRAConfig& cfg, uint64_t seed) {
    const auto names = match_targets(model, cfg);
    const std::set<std::string> wanted(names.begin(), names.end());
    auto gen = at::detail::createCPUGenerator(seed);
    torch::NoGradGuard no_grad;
    for (const auto& [name, lin] : detail::linear_modules(model)) {
        if (!wanted.count(name)) continue;
        if (lin->lora_merged())
            throw Error(fmt::format("attach_lora: the adapter of '{}' is merged; unmerge first", name));
        lin->attach_lora(cfg.rank, cfg.alpha);
        // kaiming_uniform_(a=√5) as PEFT: bound = gain·√(3/fan_in) = 1/√in.
        const double bound = 1.0 / std::sqrt(static_cast<double>(lin->in_features));
        auto a = torch::empty({cfg.rank, lin->in_features}, torch::kFloat).uniform_(-bound, bound, gen);
        lin->lora_A_weight().copy_(a);
    }
    detail::freeze_base(model);
    spdlog::info("LoRA rank {} alpha {} on {} layers ({} trainable parameters)", cfg.rank, cfg.alpha, names.size(),
                 count_lora_parameters(model));
    return names;
}

void detach_lora(torch::nn::Module& model) {
    for (const auto& [name, lin] : detail::lora_modules(model)) {
        if (lin->lora_merged())
            throw Error(fmt::format("detach_lora: the adapter of '{}' is merged; unmerge first", name));
    }
    for (const auto& [name, lin] : detail::lora_modules(model)) lin->detach_lora();
}

std::vector<std::string> adapted_modules(torch::nn::Module& model) {
    std::vector<std::string> names;
    for (const auto& m : detail::lora_modules(model)) names.push_back(m.first);
    return names;
}

// ---- run-time control ----

void set_lora_enabled(torch::nn::Module& model, bool enabled) {
    for (const auto& [name, lin] : detail::lora_modules(model)) {
        if (enabled && lin->lora_merged()) {
            throw Error(
                fmt::format("set_lora_enabled: the adapter of '{}' is merged into the base; unmerge first", name));
        }
    }
    for (const auto& [name, lin] : detail::lora_modules(model)) {
        lin->set_lora_enabled(enabled);
    }
}

void set_lora_multiplier(torch::nn::Module& model, double multiplier) {
    TORCH_CHECK(std::isfinite(multiplier), "set_lora_multiplier: multiplier must be finite, got ", multiplier);
    for (const auto& [name, lin] : detail::lora_modules(model)) lin->set_lora_multiplier(multiplier);
}

std::vector<std::pair<std::string, at::Tensor>> named_lora_parameters(torch::nn::Module& model) {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const auto& [name, lin] : detail::lora_modules(model)) {
        out.emplace_back(name + ".lora_A.weight", lin->lora_A_weight());
        out.emplace_back(name + ".lora_B.weight", lin->lora_B_weight());
    }
    return out;
}

std::vector<at::Tensor> lora_parameters(torch::nn::Module& model) {
    std::vector<at::Tensor> out;
    for (auto& p : named_lora_parameters(model)) out.push_back(std::move(p.second));
    return out;
}

int64_t count_lora_parameters(torch::nn::Module& model) {
    int64_t n = 0;
    for (const auto& t : lora_parameters(model)) n += t.numel();
    return n;
}

// ---- reference adapter ----

void snapshot_reference(torch::nn::Module& model) {
    const auto mods = detail::lora_modules(model);
    for (const auto& [name, lin] : mods) {
        if (lin->lora_merged())
            throw Error(fmt::format("snapshot_reference: the adapter of '{}' is merged; unmerge first", name));
    }
    for (const auto& [name, lin] : mods) lin->snapshot_reference();
}

void clear_reference(torch::nn::Module& model) {
    for (const auto& [name, lin] : detail::lora_modules(model)) lin->clear_reference();
}

int64_t reference_bytes(torch::nn::Module& model) {
    int64_t n = 0;
    for (const auto& [name, lin] : detail::lora_modules(model)) n += lin->reference_bytes();
    return n;
}

ReferenceMode::ReferenceMode(torch::nn::Module& model) {
    const auto mods = detail::lora_modules(model);
    for (const auto& [name, lin] : mods) {
        if (lin->lora_merged()) {
            throw Error(
                fmt::format("ReferenceMode: the adapter of '{}' is merged into the base weight, so the "
                            "reference cannot be computed; unmerge first",
                            name));
        }
    }
    for (const auto& [name, lin] : mods) previous_.emplace_back(lin, lin->set_reference_mode(true));
}

ReferenceMode::~ReferenceMode() {
    for (auto it = previous_.rbegin(); it != previous_.rend(); ++it) {
        static_cast<models::wan::LinearImpl&>(*it->first).set_reference_mode(it->second);
    }
}

// ---- merging into the base ----

void merge_lora(torch::nn::Module& model) {
    int merged = 0;
    for (const auto& [name, lin] : detail::lora_modules(model)) merged += lin->merge_lora() ? 1 : 0;
    spdlog::debug("merged {} LoRA adapters into the base weights", merged);
}

void unmerge_lora(torch::nn::Module& model) {
    for (const auto& [name, lin] : detail::lora_modules(model)) lin->unmerge_lora();
}

}  // namespace ipa::lora
