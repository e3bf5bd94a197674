#pragma once

// QKV-only LoRA on the Wan DiT (docs/architecture.md §5): attaching adapters to the model's
// `ipa::models::wan::Linear` layers in place, run-time control, the reference adapter of
// IPA, merging, and adapter files that ComfyUI / DiffSynth / diffusers load.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}
namespace ipa {
class ConfigReader;
}

namespace ipa::lora {

/// Which Linear layers get an adapter, and its size.
struct LoRAConfig {
    int64_t rank = 128;
    double alpha = 128;  ///< scale = alpha / rank
    /// Module-name suffixes with a dot boundary (`self_attn.q` matches
    /// `blocks.3.self_attn.q`). A target that would select differently named layers inside
    /// a block (bare `q`: self_attn.q and cross_attn.q) is a ConfigError.
    std::vector<std::string> targets{"self_attn.q", "self_attn.k", "self_attn.v"};
    std::string blocks = "main";  ///< main (`blocks.*`) | vace (`vace_blocks.*`) | all

    /// ConfigError naming the field for a bad value.
    void validate() const;
    /// Keys rank, alpha, targets, blocks (and init_from, read by the trainer); unknown keys
    /// are errors.
    static LoRAConfig from_yaml(const ConfigReader& node);
};

/// Names of the Linear modules `cfg` selects in `model`, in module order. ConfigError for
/// an ambiguous target, a target that matches nothing, or an empty selection.
std::vector<std::string> match_targets(torch::nn::Module& model, const LoRAConfig& cfg);

/// Attaches an adapter to every selected Linear, in place: lora_A Kaiming-uniform (a=√5,
/// as PEFT; drawn from a generator seeded with `seed`, not the global one), lora_B zeros,
/// fp32 on the base weight's device, scale alpha/rank, enabled. Every other parameter of
/// the model stops requiring grad; the adapter's parameters require it. Replaces existing
/// adapters on the selected modules. Returns the adapted module names.
std::vector<std::string> attach_lora(torch::nn::Module& model, const LoRAConfig& cfg, uint64_t seed);

/// Removes every adapter (ipa::Error if one is merged).
void detach_lora(torch::nn::Module& model);

/// Names of the modules that carry an adapter, in module order.
std::vector<std::string> adapted_modules(torch::nn::Module& model);

void set_lora_enabled(torch::nn::Module& model, bool enabled);
/// scale = multiplier · alpha / rank on every adapter.
void set_lora_multiplier(torch::nn::Module& model, double multiplier);

/// The adapter parameters, lora_A then lora_B per module, in module order.
std::vector<at::Tensor> lora_parameters(torch::nn::Module& model);
/// Same, with their model keys (`blocks.0.self_attn.q.lora_A.weight`).
std::vector<std::pair<std::string, at::Tensor>> named_lora_parameters(torch::nn::Module& model);
/// Number of scalars in the adapter parameters.
int64_t count_lora_parameters(torch::nn::Module& model);

/// Copies the current adapters (weights and scale) into the reference slots of each
/// adapted Linear (plain tensors: not parameters, not saved). A disabled adapter gives a
/// reference without adapter. Replaces an earlier snapshot.
void snapshot_reference(torch::nn::Module& model);
/// Drops the snapshots: the reference becomes the base alone.
void clear_reference(torch::nn::Module& model);
/// Bytes held by the reference snapshots (adapter-sized; the base is shared).
int64_t reference_bytes(torch::nn::Module& model);

/// While alive, every adapted Linear computes the reference model: the snapshot adapter if
/// there is one, else the base alone. Restores the previous mode on destruction. Run the
/// reference pass under no-grad. ipa::Error if an adapter is merged into the base.
class ReferenceMode {
public:
    explicit ReferenceMode(torch::nn::Module& model);
    ~ReferenceMode();
    ReferenceMode(const ReferenceMode&) = delete;
    ReferenceMode& operator=(const ReferenceMode&) = delete;

private:
    std::vector<std::pair<std::shared_ptr<torch::nn::Module>, bool>> previous_;
};

/// Adds scale·B·A (computed in fp32) into each adapted base weight, in the base dtype, and
/// disables the adapter, for every enabled, not yet merged adapter (so the output stays the
/// same up to rounding). While merged: no ReferenceMode, no snapshot, no re-enabling.
void merge_lora(torch::nn::Module& model);
/// Subtracts the merged delta again and re-enables the adapter (float-rounding exact for
/// fp32 bases; bf16 bases lose the rounding of the two casts).
void unmerge_lora(torch::nn::Module& model);

/// `<dir>/<stem>.vace.safetensors` for `<dir>/<stem>.safetensors`.
std::filesystem::path vace_adapter_path(const std::filesystem::path& path);

/// Writes the adapters as fp32 safetensors with keys
/// `diffusion_model.<module>.lora_A.weight`, `.lora_B.weight` and a scalar fp32 `.alpha`.
/// `vace_blocks.*` adapters go to vace_adapter_path(path) (a stale one is removed when there
/// are none). Metadata: `metadata` plus format, format_version, rank, alpha, targets, blocks
/// (these win over user keys of the same name). ipa::Error if the model has no adapter.
void save_adapter(const std::filesystem::path& path, torch::nn::Module& model, const LoRAConfig& cfg,
                  std::map<std::string, std::string> metadata = {});

/// Loads an adapter file (and vace_adapter_path(path) when it exists) into `model`,
/// attaching adapters where absent or of another rank (rank from the tensors; alpha from
/// `.alpha`, else diffusers' `lora_adapter_metadata` JSON (`transformer.lora_alpha`,
/// `transformer.alpha_pattern`), else metadata `alpha`/`ss_network_alpha`, else = rank;
/// rsLoRA / DoRA configs are refused) and freezing the base
/// like attach_lora. Accepted spellings: prefixes `model.diffusion_model.`,
/// `diffusion_model.`, `transformer.`, none; diffusers module names (`attn1.to_q`);
/// `lora_A`/`lora_B`, `lora_down`/`lora_up`, `.lora_A.default.weight`.
/// Strict: any unknown key, module not in the model, missing factor or shape mismatch is a
/// CheckpointError listing all of them; non-strict loads the rest and logs a warning.
/// Returns the loaded module names.
std::vector<std::string> load_adapter(torch::nn::Module& model, const std::filesystem::path& path, bool strict = true);

/// The spellings convert_adapter writes, one per peer loader (README "Interop"):
///  - Ipa: save_adapter's (`diffusion_model.<module>.lora_A/B.weight` + `.alpha`; VACE-block
///    adapters in the `.vace.safetensors` sibling);
///  - Diffusers: what diffusers' `save_lora_weights` writes and `load_lora_weights` reads for
///    every module, VACE blocks included: `transformer.<diffusers module>.lora_A/B.weight`,
///    alpha in metadata `lora_adapter_metadata` (peft LoraConfig JSON: r, lora_alpha,
///    target_modules = the full module names, rank_pattern / alpha_pattern when mixed);
///  - ComfyUI: one file, `diffusion_model.<module>.lora_down/lora_up.weight` + `.alpha`;
///  - DiffSynth: what its ModelLogger writes: `<module>.lora_A/B.default.weight`, no prefix, no
///    alpha (alpha/rank folded into lora_A in float32, exact when it is 1), main blocks in the
///    output file and VACE blocks in its `.vace.safetensors` sibling (DiffSynth loads them into
///    `pipe.dit` and `pipe.vace` separately).
/// The split spellings always write the main file (with no tensors when every adapter is on a
/// VACE block, like save_adapter).
/// Factors keep their dtype (a bf16 file stays bf16).
enum class AdapterSpelling { Ipa, Diffusers, ComfyUI, DiffSynth };
/// "ipa" | "diffusers" | "comfyui" | "diffsynth"; ConfigError otherwise.
AdapterSpelling parse_adapter_spelling(const std::string& name);

/// The diffusers module name of an original Wan Linear module (`blocks.3.self_attn.q` ->
/// `blocks.3.attn1.to_q`, `vace_blocks.0.before_proj` -> `vace_blocks.0.proj_in`), nullopt
/// when diffusers has none.
std::optional<std::string> to_diffusers_module(const std::string& original);

/// Reads an adapter file like load_adapter (any accepted spelling, plus its `.vace` sibling;
/// strictly: CheckpointError listing every problem) and writes it in `to`'s spelling to
/// `out` (and, for the split spellings, vace_adapter_path(out); a stale sibling is removed).
/// Returns the files written.
std::vector<std::filesystem::path> convert_adapter(const std::filesystem::path& in, const std::filesystem::path& out,
                                                   AdapterSpelling to);

/// Streams `base_weights` (any ipa::io::Checkpoint layout) to a safetensors file `out` with
/// the same keys, tensor by tensor: a weight with an adapter becomes
/// W + multiplier·(alpha/r)·B·A (computed in fp32, stored in the tensor's loaded dtype).
/// The adapter file (plus its `.vace` sibling) is read like load_adapter, strictly; adapters
/// whose module has no weight of matching shape in the base are a CheckpointError.
void merge_lora_checkpoint(const std::filesystem::path& base_weights, const std::filesystem::path& adapter,
                           const std::filesystem::path& out, double multiplier = 1.0);

}  // namespace ipa::lora
