#include "ipa/io/state_dict.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <unordered_map>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"

namespace ipa::io {

std::string LoadReport::describe() const {
    std::string out;
    auto section = [&](const char* title, const std::vector<std::string>& items) {
        if (items.empty()) return;
        out += fmt::format("{} ({}):\n", title, items.size());
        for (const auto& s : items) out += "  " + s + "\n";
    };
    section("missing from the checkpoint", missing);
    section("unexpected in the checkpoint", unexpected);
    section("shape mismatch", mismatched);
    section("mapped from several checkpoint keys", duplicates);
    return out;
}

LoadReport load_state_dict(torch::nn::Module& module, const Checkpoint& ckpt, const LoadOptions& options) {
    torch::NoGradGuard no_grad;
    if (options.dtype) module.to(*options.dtype);

    std::unordered_map<std::string, torch::Tensor> targets;
    for (auto& p : module.named_parameters(/*recurse=*/true)) targets.emplace(p.key(), p.value());
    for (auto& b : module.named_buffers(/*recurse=*/true)) targets.emplace(b.key(), b.value());

    LoadReport report;
    std::unordered_map<std::string, std::string> source_of;  // module key -> checkpoint key
    for (const auto& ck_key : ckpt.names()) {
        std::optional<std::string> key = ck_key;
        if (options.key_map) key = options.key_map(ck_key);
        if (!key) continue;
        const auto [it, inserted] = source_of.emplace(*key, ck_key);
        if (!inserted) {
            report.duplicates.push_back(fmt::format("{} <- {} and {}", *key, it->second, ck_key));
            continue;
        }
        if (!targets.count(*key)) {
            report.unexpected.push_back(*key == ck_key ? ck_key : fmt::format("{} (from {})", *key, ck_key));
        }
    }
    std::vector<std::pair<torch::Tensor, std::string>> copies;
    std::vector<std::string> module_keys;
    for (const auto& kv : targets) module_keys.push_back(kv.first);
    std::sort(module_keys.begin(), module_keys.end());
    for (const auto& key : module_keys) {
        const auto src = source_of.find(key);
        if (src == source_of.end()) {
            if (!(options.allow_missing && options.allow_missing(key))) report.missing.push_back(key);
            continue;
        }
        const auto& target = targets.at(key);
        const auto shape = ckpt.shape(src->second);
        if (target.sizes().vec() != shape) {
            report.mismatched.push_back(fmt::format("{}: module [{}], checkpoint [{}]", key,
                                                    fmt::join(target.sizes(), ", "), fmt::join(shape, ", ")));
            continue;
        }
        copies.emplace_back(target, src->second);
    }
    std::sort(report.unexpected.begin(), report.unexpected.end());
    if (options.strict && !report.ok()) {
        throw CheckpointError(fmt::format("cannot load '{}' strictly:\n{}", ckpt.description(), report.describe()));
    }
    for (auto& [target, ck_key] : copies) {
        if (options.dry_run) {
            report.loaded.push_back(ck_key);
            continue;
        }
        auto src = ckpt.get(ck_key);
        target.copy_(src);
        report.loaded.push_back(ck_key);
    }
    return report;
}

}  // namespace ipa::io
