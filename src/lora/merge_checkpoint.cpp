// Merging an adapter file into a base checkpoint, one tensor at a time.

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "internal.h"
#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/core/strings.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/dtype.h"
#include "ipa/lora/lora.h"
#include "ipa/models/wan/key_mapping.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ipa::lora {
namespace {

constexpr const char* kWeightSuffix = ".weight";

struct Delta {
    at::Tensor A;  // [r, in]
    at::Tensor B;  // [out, r]
    double scale;
};

}  // namespace

void merge_lora_checkpoint(const fs::path& base_weights, const fs::path& adapter, const fs::path& out,
                           double multiplier) {
    if (!std::isfinite(multiplier))
        throw ConfigError(fmt::format("merge_lora_checkpoint: multiplier {} is not finite", multiplier));
    const auto base = io::Checkpoint::open(base_weights);
    const auto file = detail::read_adapter_files(adapter);
    auto problems = file.problems;

    const auto entries = base.entries();
    std::map<std::string, std::size_t> weight_of;  // original module name -> entry index
    std::vector<std::string> modules;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto key = models::wan::to_original_key(entries[i].name);
        if (!key || !ends_with(*key, kWeightSuffix)) continue;
        const auto module = key->substr(0, key->size() - std::string(kWeightSuffix).size());
        weight_of[module] = i;
        modules.push_back(module);
    }
    const auto lookup = detail::module_lookup(modules);
    std::map<std::string, Delta> plan;  // base key -> delta
    for (const auto& [module, t] : file.modules) {
        const auto it = lookup.find(module);
        if (it == lookup.end()) {
            problems.push_back(
                fmt::format("'{}' (key '{}'): the base checkpoint has no weight '{}.weight'", module, t.key, module));
            continue;
        }
        const auto& e = entries[weight_of.at(it->second)];
        const bool fits = e.shape.size() == 2 && t.A.dim() == 2 && t.B.dim() == 2 && t.A.size(0) == t.B.size(1) &&
                          t.A.size(1) == e.shape[1] && t.B.size(0) == e.shape[0];
        if (!fits) {
            problems.push_back(fmt::format("'{}': lora_A {} / lora_B {} do not fit '{}' {}", it->second,
                                           c10::str(t.A.sizes()), c10::str(t.B.sizes()), e.name,
                                           c10::str(c10::IntArrayRef(e.shape))));
            continue;
        }
        const double r = static_cast<double>(t.A.size(0));
        plan[e.name] = Delta{t.A, t.B, multiplier * t.alpha.value_or(r) / r};
    }
    if (!problems.empty()) {
        throw CheckpointError(fmt::format("cannot merge LoRA adapter '{}' into '{}' ({} problems):\n  {}",
                                          adapter.string(), base.description(), problems.size(),
                                          fmt::join(problems, "\n  ")));
    }
    if (plan.empty()) throw CheckpointError(fmt::format("no LoRA adapter in '{}'", adapter.string()));

    // Header first (shapes and dtypes are known without reading any data), then the tensors.
    json header = json::object();
    std::map<std::string, std::string> metadata = base.metadata();
    metadata["merged_lora"] = adapter.filename().string();
    metadata["merged_lora_multiplier"] = fmt::format("{}", multiplier);
    header["__metadata__"] = metadata;
    std::vector<c10::ScalarType> dtypes;
    uint64_t offset = 0;
    for (const auto& e : entries) {
        const auto stored = io::parse_stored_dtype(e.dtype);
        const auto dtype = stored ? io::loaded_scalar_type(*stored) : base.get(e.name).scalar_type();
        const auto out_stored = io::stored_dtype_for(dtype);
        const uint64_t nbytes = static_cast<uint64_t>(e.numel()) * io::stored_dtype_size(out_stored);
        header[e.name] = {{"dtype", io::stored_dtype_name(out_stored)},
                          {"shape", e.shape},
                          {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
        dtypes.push_back(dtype);
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // 8-byte aligned data section
    uint8_t len_bytes[8];
    for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(text.size() >> (8 * i));

    if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
    AtomicFile writer(out);
    writer.write(len_bytes, 8);
    writer.write(text);
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        auto t = base.get(entries[i].name);
        const auto p = plan.find(entries[i].name);
        if (p != plan.end()) {
            // ref: PEFT LoraLayer.merge: W + scale · B @ A, in fp32
            const auto& d = p->second;
            const auto delta = torch::mm(d.B.to(torch::kFloat), d.A.to(torch::kFloat)) * d.scale;  // [out, in]
            t = t.to(torch::kFloat) + delta;
        }
        const auto c = t.to(torch::kCPU, dtypes[i]).contiguous();
        writer.write(c.data_ptr(), c.numel() * c.element_size());
    }
    writer.commit();
    spdlog::info("merged {} LoRA adapters (multiplier {}) into {} tensors -> {}", plan.size(), multiplier,
                 entries.size(), out.string());
}

}  // namespace ipa::lora
