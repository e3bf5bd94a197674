// Adapter files rewritten in the spelling each peer's loader reads (lora.h: AdapterSpelling).

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "internal.h"
#include "ipa/core/error.h"
#include "ipa/core/strings.h"
#include "ipa/io/safetensors.h"
#include "ipa/lora/lora.h"

namespace fs = std::filesystem;

namespace ipa::lora {
namespace {

// Original -> diffusers names of the Linear modules (the reverse of models/wan/key_mapping.cpp,
// which the tests check this against).
const std::map<std::string, std::string>& block_linears() {
    static const std::map<std::string, std::string> m = {
        {"self_attn.q", "attn1.to_q"},
        {"self_attn.k", "attn1.to_k"},
        {"self_attn.v", "attn1.to_v"},
        {"self_attn.o", "attn1.to_out.0"},
        {"cross_attn.q", "attn2.to_q"},
        {"cross_attn.k", "attn2.to_k"},
        {"cross_attn.v", "attn2.to_v"},
        {"cross_attn.o", "attn2.to_out.0"},
        {"cross_attn.k_img", "attn2.add_k_proj"},
        {"cross_attn.v_img", "attn2.add_v_proj"},
        {"ffn.0", "ffn.net.0.proj"},
        {"ffn.2", "ffn.net.2"},
        {"before_proj", "proj_in"},
        {"after_proj", "proj_out"},
    };
    return m;
}

const std::map<std::string, std::string>& top_linears() {
    static const std::map<std::string, std::string> m = {
        {"time_embedding.0", "condition_embedder.time_embedder.linear_1"},
        {"time_embedding.2", "condition_embedder.time_embedder.linear_2"},
        {"text_embedding.0", "condition_embedder.text_embedder.linear_1"},
        {"text_embedding.2", "condition_embedder.text_embedder.linear_2"},
        {"time_projection.1", "condition_embedder.time_proj"},
        {"img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"},
        {"img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"},
        {"head.head", "proj_out"},
    };
    return m;
}

bool is_vace_module(const std::string& module) { return starts_with(module, "vace_blocks."); }

struct Entry {
    std::string module;  // original name
    at::Tensor A, B;
    int64_t rank;
    double alpha;
};

// The most frequent value (ties: the smallest), as peft's get_peft_kwargs picks r / lora_alpha.
template <typename T>
T most_common(const std::vector<Entry>& entries, T Entry::*field) {
    std::map<T, int> count;
    for (const auto& e : entries) ++count[e.*field];
    auto best = count.begin();
    for (auto it = count.begin(); it != count.end(); ++it)
        if (it->second > best->second) best = it;
    return best->first;
}

std::vector<fs::path> write_split(const fs::path& out, const io::NamedTensors& main, const io::NamedTensors& vace,
                                  const std::map<std::string, std::string>& metadata) {
    // The main file is always written (empty when every adapter is on a VACE block, as
    // save_adapter does), so `out` names the pair for ipa and the peers.
    std::vector<fs::path> written;
    const auto vace_path = vace_adapter_path(out);
    io::save_safetensors(out, main, metadata);
    written.push_back(out);
    if (!vace.empty()) {
        io::save_safetensors(vace_path, vace, metadata);
        written.push_back(vace_path);
    } else {
        std::error_code ec;
        fs::remove(vace_path, ec);
    }
    return written;
}

}  // namespace

AdapterSpelling parse_adapter_spelling(const std::string& name) {
    if (name == "ipa") return AdapterSpelling::Ipa;
    if (name == "diffusers") return AdapterSpelling::Diffusers;
    if (name == "comfyui") return AdapterSpelling::ComfyUI;
    if (name == "diffsynth") return AdapterSpelling::DiffSynth;
    throw ConfigError(fmt::format("adapter spelling '{}': expected ipa, diffusers, comfyui or diffsynth", name));
}

std::optional<std::string> to_diffusers_module(const std::string& original) {
    for (const char* prefix : {"blocks.", "vace_blocks."}) {
        if (!starts_with(original, prefix)) continue;
        const auto dot = original.find('.', std::string(prefix).size());
        if (dot == std::string::npos) return std::nullopt;
        const auto it = block_linears().find(original.substr(dot + 1));
        if (it == block_linears().end()) return std::nullopt;
        return original.substr(0, dot + 1) + it->second;
    }
    const auto it = top_linears().find(original);
    if (it == top_linears().end()) return std::nullopt;
    return it->second;
}

std::vector<fs::path> convert_adapter(const fs::path& in, const fs::path& out, AdapterSpelling to) {
    const auto file = detail::read_adapter_files(in);
    std::vector<std::string> files;
    for (const auto& f : file.files) files.push_back(f.string());
    auto problems = file.problems;
    std::vector<Entry> entries;
    for (const auto& [module, t] : file.modules) {
        if (t.A.dim() != 2 || t.B.dim() != 2 || t.A.size(0) != t.B.size(1)) {
            problems.push_back(fmt::format("'{}': lora_A {} / lora_B {} are not a LoRA pair", module,
                                           c10::str(t.A.sizes()), c10::str(t.B.sizes())));
            continue;
        }
        if (t.A.scalar_type() != t.B.scalar_type()) {
            problems.push_back(fmt::format("'{}': lora_A is {} but lora_B is {}", module,
                                           c10::toString(t.A.scalar_type()), c10::toString(t.B.scalar_type())));
            continue;
        }
        const int64_t rank = t.A.size(0);
        entries.push_back({module, t.A.contiguous(), t.B.contiguous(), rank, t.alpha.value_or(double(rank))});
    }
    if (to == AdapterSpelling::Diffusers) {
        for (const auto& e : entries)
            if (!to_diffusers_module(e.module))
                problems.push_back(fmt::format("'{}': diffusers has no module for it", e.module));
    }
    if (!problems.empty()) {
        throw CheckpointError(fmt::format("cannot convert LoRA adapter {} ({} problems):\n  {}", fmt::join(files, ", "),
                                          problems.size(), fmt::join(problems, "\n  ")));
    }
    if (entries.empty()) throw CheckpointError(fmt::format("no LoRA adapter in {}", fmt::join(files, ", ")));
    if (!out.parent_path().empty()) fs::create_directories(out.parent_path());

    std::vector<fs::path> written;
    io::NamedTensors main, vace;
    switch (to) {
        case AdapterSpelling::Ipa: {
            std::set<int64_t> ranks;
            std::set<double> alphas;
            for (const auto& e : entries) {
                auto& dst = is_vace_module(e.module) ? vace : main;
                const auto key = "diffusion_model." + e.module;
                dst.emplace_back(key + ".lora_A.weight", e.A);
                dst.emplace_back(key + ".lora_B.weight", e.B);
                dst.emplace_back(key + ".alpha", torch::scalar_tensor(e.alpha, torch::kFloat));
                ranks.insert(e.rank);
                alphas.insert(e.alpha);
            }
            std::map<std::string, std::string> meta{
                {"format", "ipa.lora"},
                {"format_version", "1"},
                {"rank", ranks.size() == 1 ? std::to_string(*ranks.begin()) : "mixed"},
                {"alpha", alphas.size() == 1 ? fmt::format("{}", *alphas.begin()) : "mixed"},
                {"converted_from", fmt::format("{}", fmt::join(files, ", "))}};
            written = write_split(out, main, vace, meta);
            break;
        }
        case AdapterSpelling::Diffusers: {
            const auto r = most_common(entries, &Entry::rank);
            const auto alpha = most_common(entries, &Entry::alpha);
            nlohmann::json targets = nlohmann::json::array(), rank_pattern = nlohmann::json::object(),
                           alpha_pattern = nlohmann::json::object();
            std::vector<std::string> names;
            for (const auto& e : entries) {
                const auto name = *to_diffusers_module(e.module);
                names.push_back(name);
                main.emplace_back("transformer." + name + ".lora_A.weight", e.A);
                main.emplace_back("transformer." + name + ".lora_B.weight", e.B);
                if (e.rank != r) rank_pattern[name] = e.rank;
                if (e.alpha != alpha) alpha_pattern[name] = e.alpha;
            }
            std::sort(names.begin(), names.end());
            for (const auto& n : names) targets.push_back(n);
            // The LoraConfig fields diffusers' load_lora_adapter passes to peft (full module
            // names as targets: peft matches them exactly, so `blocks.0...` never selects
            // `vace_blocks.0...`).
            const nlohmann::json config = {{"transformer.r", r},
                                           {"transformer.lora_alpha", alpha},
                                           {"transformer.target_modules", targets},
                                           {"transformer.rank_pattern", rank_pattern},
                                           {"transformer.alpha_pattern", alpha_pattern}};
            io::save_safetensors(out, main, {{"format", "pt"}, {"lora_adapter_metadata", config.dump(2)}});
            written.push_back(out);
            break;
        }
        case AdapterSpelling::ComfyUI: {
            for (const auto& e : entries) {
                const auto key = "diffusion_model." + e.module;
                main.emplace_back(key + ".lora_down.weight", e.A);
                main.emplace_back(key + ".lora_up.weight", e.B);
                main.emplace_back(key + ".alpha", torch::scalar_tensor(e.alpha, torch::kFloat));
            }
            io::save_safetensors(out, main, {});
            written.push_back(out);
            break;
        }
        case AdapterSpelling::DiffSynth: {
            int64_t folded = 0;
            for (const auto& e : entries) {
                auto& dst = is_vace_module(e.module) ? vace : main;
                const double scale = e.alpha / static_cast<double>(e.rank);
                auto A = e.A;
                if (scale != 1.0) {  // what DiffSynth's loader does with an alpha key, in float32
                    A = (e.A.to(torch::kFloat) * scale).to(e.A.scalar_type());
                    ++folded;
                }
                dst.emplace_back(e.module + ".lora_A.default.weight", A);
                dst.emplace_back(e.module + ".lora_B.default.weight", e.B);
            }
            if (folded > 0)
                spdlog::info(
                    "convert-lora: alpha/rank folded into lora_A of {} modules (DiffSynth files have no alpha)",
                    folded);
            written = write_split(out, main, vace, {{"format", "pt"}});
            break;
        }
    }
    std::vector<std::string> w;
    for (const auto& p : written) w.push_back(p.string());
    spdlog::info("converted {} LoRA adapters from {} to {}", entries.size(), fmt::join(files, ", "),
                 fmt::join(w, ", "));
    return written;
}

}  // namespace ipa::lora
