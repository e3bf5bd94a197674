#pragma once

#include <optional>
#include <string>

namespace ipa::io {
class Checkpoint;
}

namespace ipa::models::wan {

/// The one place where other spellings of Wan DiT keys become the original names:
///  - prefixes `model.diffusion_model.`, `diffusion_model.`, `model.`, `module.`, `_orig_mod.`
///    (ComfyUI, DiffSynth, DDP, torch.compile);
///  - diffusers `WanTransformer3DModel` / `WanVACETransformer3DModel` names
///    (`attn1.to_q` → `self_attn.q`, `norm2` → `norm3`, `scale_shift_table` → `modulation`, …).
/// Original names pass through unchanged. Returns nullopt for keys to drop (diffusers'
/// unused `norm_added_q`).
// ref: docs/wan-vace.md §8.1–8.2 (diffusers scripts/convert_wan_to_diffusers.py, reversed)
std::optional<std::string> to_original_key(const std::string& key);

/// "original", "diffusers" or "unknown", judged from a checkpoint's key names.
std::string detect_key_format(const io::Checkpoint& ckpt);

}  // namespace ipa::models::wan
