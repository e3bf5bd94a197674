#pragma once

// The config.json that diffusers' and transformers' save_pretrained write next to the
// weights. The DiT, VAE and text-encoder configs read what the tensor shapes cannot tell
// (head counts, epsilons, latent statistics) from it.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "ipa/io/checkpoint.h"

namespace ipa::io {

struct ConfigJson {
    std::filesystem::path path;
    nlohmann::json json;
};

/// `config.json` in the folder of the checkpoint's first file, parsed; nullopt when there is
/// none. CheckpointError naming the file when it is not valid JSON.
std::optional<ConfigJson> read_config_json(const Checkpoint& ckpt);

}  // namespace ipa::io
