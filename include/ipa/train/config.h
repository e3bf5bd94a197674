#pragma once

// The `ipa-train` config (docs/architecture.md §7a). Section and key names are a contract.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ipa/flow/timesteps.h"
#include "ipa/lora/lora.h"
#include "ipa/loss/flow_losses.h"

namespace ipa {
class ConfigReader;
}

namespace ipa::train {

struct ModelSection {
    std::string config = "tiny";               ///< model YAML or preset name
    std::string checkpoint;                    ///< base weights; empty = random init from train.seed (tiny demo only)
    std::string vae, text_encoder, tokenizer;  ///< used to build the cache from data.manifest
    std::string dtype = "bf16";                ///< bf16 | fp32
    std::string device = "auto";               ///< auto | cpu | cuda[:N]
};

struct LossSection {
    loss::LossKind kind = loss::LossKind::ipa;
    double beta = 600.0;
    double hand_weight = 10.0;  ///< multiplier on hand positions (official code); paper's λ = hand_weight − 1
    bool time_weight = true;    ///< (1 − t)² factor ("one_minus_t_squared" | "none")
};

struct DataSection {
    std::string manifest;
    std::string cache_dir = "cache/";
    int64_t frames = 81;
    std::vector<int64_t> size{480, 832};  ///< [height, width]
    int64_t synthetic = 0;                ///< > 0: build this many synthetic samples when the cache is empty
    bool hand_masks = true;               ///< cache latent hand masks from the keypoints column (HALO)
    std::string mask_shape = "box";       ///< box | hull
    double mask_padding = 0.25;           ///< fraction of the hand's size added on each side
    bool vae_tiling = false;              ///< tile the VAE encode while caching (less memory)
    int64_t build_timeout_s = 86400;      ///< how long ranks wait for each other while caching
};

struct OptimSection {
    double lr = 1e-4;
    double weight_decay = 0.01;
    std::vector<double> betas{0.9, 0.999};
    double eps = 1e-8;
    int64_t warmup_steps = 0;
    std::string schedule = "constant";  ///< constant | cosine
    double grad_clip = 1.0;             ///< 0 = off
};

struct TrainSection {
    int64_t steps = 1000;
    int64_t batch_size = 1;
    int64_t grad_accum = 1;
    bool grad_checkpointing = true;
    uint64_t seed = 42;
    int64_t log_every = 10;
    int64_t max_bad_steps = 10;  ///< NaN/Inf steps skipped before aborting
};

struct CheckpointSection {
    std::string dir = "runs/ipa";
    int64_t every = 100;
    int64_t keep = 3;
    std::string resume = "auto";  ///< auto | never | a step directory
};

struct DistSection {
    std::string backend = "auto";
    int64_t timeout_s = 600;
};

struct TrainConfig {
    ModelSection model;
    lora::LoRAConfig lora;
    std::string lora_init_from;  ///< lora.init_from: start adapter (its frozen copy is the reference)
    LossSection loss;
    flow::TimestepOptions timesteps;
    DataSection data;
    OptimSection optim;
    TrainSection train;
    CheckpointSection checkpoint;
    DistSection dist;

    /// Every key validated; errors name the key path and the file.
    static TrainConfig from_yaml(const ConfigReader& root);
    /// Reads `file`, applies `section.key=value` overrides, parses. Relative paths in the
    /// file stay relative to the working directory.
    static TrainConfig load(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});
    /// The resolved config (every key, defaults filled in) as YAML.
    std::string to_yaml() const;
};

}  // namespace ipa::train
