#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ipa {
class ConfigReader;
}
namespace ipa::io {
class Checkpoint;
}

namespace ipa::models::wan {

/// Architecture of a Wan 2.1 DiT (`WanModel`) or its VACE variant (`VaceWanModel`).
/// Field names are the upstream constructor argument names; defaults are upstream's.
struct WanConfig {
    std::string model_type = "t2v";  ///< t2v | i2v | flf2v | vace
    std::array<int64_t, 3> patch_size{1, 2, 2};
    int64_t text_len = 512;
    int64_t in_dim = 16;
    int64_t dim = 2048;
    int64_t ffn_dim = 8192;
    int64_t freq_dim = 256;
    int64_t text_dim = 4096;
    int64_t out_dim = 16;
    int64_t num_heads = 16;
    int64_t num_layers = 32;
    bool qk_norm = true;
    bool cross_attn_norm = true;
    double eps = 1e-6;
    /// VACE: main-block indices that receive hints (must contain 0). Empty: not VACE.
    std::vector<int64_t> vace_layers;
    int64_t vace_in_dim = 0;  ///< VACE: channels of vace_context (0 → in_dim)

    bool is_vace() const { return !vace_layers.empty(); }
    bool has_image_input() const { return model_type == "i2v" || model_type == "flf2v"; }
    int64_t head_dim() const { return dim / num_heads; }

    /// ConfigError naming the field for any inconsistent value.
    void validate() const;
    /// Reads the YAML mapping (unknown keys are errors) and validates.
    static WanConfig from_yaml(const ConfigReader& node);
    static WanConfig load(const std::filesystem::path& yaml_file);
    /// Built-in configs by name: wan-t2v-1.3b, wan-t2v-14b, vace-1.3b, vace-14b, tiny.
    static WanConfig preset(const std::string& name);
    /// A YAML file path or a preset name.
    static WanConfig resolve(const std::string& path_or_preset);
    /// Infers the architecture from tensor shapes, in original or diffusers key names
    /// (num_heads = dim / 128 as in every Wan 2.1 release; vace_layers spaced evenly). A
    /// diffusers `config.json` next to the weights (a `save_pretrained` folder) supplies the
    /// head count, eps and vace_layers, and must agree with the shapes. text_len stays 512
    /// (diffusers' pipelines pad prompts to max_sequence_length = 512). CheckpointError if
    /// not a Wan DiT.
    static WanConfig detect(const io::Checkpoint& ckpt);

    std::string to_yaml() const;
    bool operator==(const WanConfig& o) const;
};

}  // namespace ipa::models::wan
