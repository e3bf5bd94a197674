#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}

namespace ipa::io {

class Checkpoint;

/// Maps a checkpoint key to the module's key; nullopt drops the entry (e.g. keys of
/// another component in the same file).
using KeyMap = std::function<std::optional<std::string>(const std::string& checkpoint_key)>;

struct LoadOptions {
    /// Strict: any missing, unexpected or shape-mismatched key is a CheckpointError that
    /// lists all of them. Non-strict: the matching keys load and the report says the rest.
    bool strict = true;
    KeyMap key_map;
    /// Convert floating parameters and buffers of the module to this dtype before
    /// copying (values are converted once, at load).
    std::optional<c10::ScalarType> dtype;
    /// Module keys that may be absent from the checkpoint (e.g. LoRA adapters).
    std::function<bool(const std::string& module_key)> allow_missing;
    /// Check names and shapes only; copy nothing (works on a meta-device module).
    bool dry_run = false;
};

struct LoadReport {
    std::vector<std::string> loaded;
    std::vector<std::string> missing;     ///< in the module, not in the checkpoint
    std::vector<std::string> unexpected;  ///< in the checkpoint, not in the module
    std::vector<std::string> mismatched;  ///< "name: module [a, b], checkpoint [c, d]"
    std::vector<std::string> duplicates;  ///< module keys that several checkpoint keys map to

    bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty() && duplicates.empty(); }
    /// All problems, one per line, grouped by kind.
    std::string describe() const;
};

/// Copies tensors from `ckpt` into `module`'s parameters and buffers by name (after
/// `options.key_map`), checking every shape first. Runs under no-grad.
LoadReport load_state_dict(torch::nn::Module& module, const Checkpoint& ckpt, const LoadOptions& options = {});

}  // namespace ipa::io
