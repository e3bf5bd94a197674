#pragma once

// Helpers shared by the ipa_lora sources (not installed).

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ipa/models/wan/layers.h"

namespace ipa::lora::detail {

using LinearPtr = std::shared_ptr<models::wan::LinearImpl>;

/// Every wan::Linear of `model` with its module name, in module order.
std::vector<std::pair<std::string, LinearPtr>> linear_modules(torch::nn::Module& model);
/// Only those with an adapter.
std::vector<std::pair<std::string, LinearPtr>> lora_modules(torch::nn::Module& model);
/// requires_grad on the adapter parameters, off on every other parameter.
void freeze_base(torch::nn::Module& model);

/// One module's adapter as read from a file (either factor may be missing).
struct AdapterTensors {
    at::Tensor A;  ///< [r, in]
    at::Tensor B;  ///< [out, r]
    std::optional<double> alpha;
    std::string key;          ///< one of its keys as spelled in the file, for messages
    std::string file_module;  ///< the module as spelled in the file, prefix removed
};

/// The adapters of one or two files, by original Wan module name.
struct AdapterFile {
    std::map<std::string, AdapterTensors> modules;
    std::vector<std::string> problems;  ///< unrecognised keys, duplicates, missing factors
    std::vector<std::filesystem::path> files;
};

/// Reads `path` and, when present, vace_adapter_path(path). Every accepted spelling is
/// mapped to the original module name; alpha falls back to the file's metadata (diffusers'
/// `lora_adapter_metadata`, then `alpha` / `ss_network_alpha`).
AdapterFile read_adapter_files(const std::filesystem::path& path);

/// The original Wan module name for an adapter key's module part, or nullopt.
std::optional<std::string> original_module_name(const std::string& module);

/// Resolves adapter module names to `names`: each name maps to itself, and its kohya/musubi
/// spelling (`lora_unet_blocks_0_self_attn_q`) maps to it too.
std::map<std::string, std::string> module_lookup(const std::vector<std::string>& names);

}  // namespace ipa::lora::detail
