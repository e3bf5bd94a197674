#pragma once

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

namespace ipa::models::vae {

/// Architecture of the Wan 2.1 video VAE (`WanVAE_` in upstream wan/modules/vae.py).
/// Field names are the upstream constructor argument names (including the upstream
/// spelling `temperal_downsample`); defaults are those of the released `Wan2.1_VAE.pth`
/// (upstream `_video_vae`), not the class defaults.
struct VaeConfig {
    int64_t dim = 96;    ///< base width (encoder dims = dim · [1] + dim_mult)
    int64_t z_dim = 16;  ///< latent channels (the encoder emits 2·z_dim)
    std::vector<int64_t> dim_mult{1, 2, 4, 4};
    int64_t num_res_blocks = 2;       ///< per encoder level (decoder: one more)
    std::vector<double> attn_scales;  ///< scales (1, 1/2, …) with extra attention blocks
    /// Per encoder level transition: temporal ×1/2 as well. The decoder uses it reversed.
    std::vector<bool> temperal_downsample{false, true, true};
    /// Latent normalisation (z = (mu − mean) / std); size z_dim. Official values by default.
    std::vector<double> latent_mean;
    std::vector<double> latent_std;

    VaeConfig();

    /// Temporal compression (2^#temporal steps) and spatial compression (2^#levels−1).
    int64_t temporal_stride() const;
    int64_t spatial_stride() const;

    /// ConfigError naming the field for any inconsistent value.
    void validate() const;
    /// Reads a YAML mapping (unknown keys are errors; absent keys keep the defaults).
    static VaeConfig from_yaml(const ConfigReader& node);
    static VaeConfig load(const std::filesystem::path& yaml_file);
    /// Built-in configs: "wan2.1" (the released VAE) and "tiny" (dim 4, same structure:
    /// z_dim 16 with the official normalisation, attention in the middle, both temporal
    /// steps; used by the tests).
    static VaeConfig preset(const std::string& name);
    /// Infers the architecture from tensor shapes in any key spelling loader.h accepts
    /// (dim, z_dim, dim_mult, num_res_blocks, temporal flags, attention scales). The
    /// latent statistics come from a diffusers `config.json` next to the files
    /// (`AutoencoderKLWan`: `latents_mean` / `latents_std`, checked against the shapes; Wan 2.2
    /// variants refused), else they are the official ones when z_dim is 16; CheckpointError
    /// otherwise or when the file is not a Wan 2.1 VAE.
    static VaeConfig detect(const io::Checkpoint& ckpt);

    std::string to_yaml() const;
    bool operator==(const VaeConfig& o) const;
};

/// The 16 official per-channel latent means / standard deviations (wan/modules/vae.py WanVAE).
const std::vector<double>& wan21_latent_mean();
const std::vector<double>& wan21_latent_std();

}  // namespace ipa::models::vae
