#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "ipa/io/state_dict.h"
#include "ipa/models/vae/config.h"

namespace ipa::io {
class Checkpoint;
}

namespace ipa::models::vae {

struct WanVAEImpl;

/// Maps the key spellings of Wan 2.1 VAE files to the original names (Appendix A of the
/// spec / Wan2.1_VAE.pth), for one checkpoint:
///  - a wrapper prefix shared by the VAE keys, found from the anchor
///    `encoder.conv1.weight` / `encoder.conv_in.weight` (or the decoder's): e.g.
///    `first_stage_model.`, `vae.`, `model.` (DiffSynth), `model_state.` (a nested
///    {"model_state": …} .pth), `module.`, `_orig_mod.`. Keys outside that prefix belong
///    to other components of a combined file and are dropped (nullopt);
///  - diffusers `AutoencoderKLWan` names (conv_in, down_blocks, mid_block, up_blocks,
///    norm_out, conv_out, quant_conv, post_quant_conv; norm1/conv1/norm2/conv2/
///    conv_shortcut inside residual blocks).
/// Original names pass through unchanged.
// ref: docs/wan-vace.md §8.3 (diffusers scripts/convert_wan_to_diffusers.py, reversed)
class VaeKeyMap {
public:
    explicit VaeKeyMap(const io::Checkpoint& ckpt);
    std::optional<std::string> operator()(const std::string& checkpoint_key) const;
    const std::string& prefix() const { return prefix_; }
    /// "original" or "diffusers".
    const std::string& format() const { return format_; }

private:
    std::string prefix_;
    std::string format_ = "original";
    int64_t up_block_resnets_ = 3;  // diffusers: resnets per decoder up block (num_res_blocks + 1)
};

struct VaeLoadOptions {
    c10::ScalarType dtype = c10::kFloat;  ///< weights/compute dtype (fp32 | bf16)
    c10::Device device{c10::kCPU};
    bool strict = true;
};

/// Loads a checkpoint into `model` (any spelling VaeKeyMap accepts, any stored float dtype).
/// Strict: every missing, unexpected or mis-shaped key is listed in one CheckpointError
/// naming the file.
io::LoadReport load_vae_weights(WanVAEImpl& model, const io::Checkpoint& ckpt, const VaeLoadOptions& options = {});

/// Opens `path` (Wan2.1_VAE.pth, a .safetensors, a shard index or directory), builds the VAE
/// for `config` (detected from the tensor shapes when absent), and loads it strictly on
/// `device` in `dtype` (float32, bfloat16 or float64; ConfigError otherwise). Errors name
/// the file.
std::shared_ptr<WanVAEImpl> load_wan_vae(const std::filesystem::path& path, c10::Device device = c10::kCPU,
                                         c10::ScalarType dtype = c10::kFloat,
                                         const std::optional<VaeConfig>& config = std::nullopt);

}  // namespace ipa::models::vae
