#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "ipa/io/state_dict.h"
#include "ipa/models/wan/config.h"
#include "ipa/models/wan/model.h"

namespace ipa::io {
class Checkpoint;
}

namespace ipa::models::wan {

struct WanLoadOptions {
    c10::ScalarType dtype = c10::kFloat;  ///< compute dtype (fp32 | bf16), applied before copying
    bool strict = true;
    c10::Device device{c10::kCPU};
};

/// Loads weights in any supported key spelling (see key_mapping.h) into `model`, strictly
/// by default: every missing/unexpected/mismatched key is reported in one CheckpointError.
io::LoadReport load_wan_weights(WanModelImpl& model, const io::Checkpoint& ckpt, const WanLoadOptions& options = {});

/// Builds the model for `cfg`, moves it to the device/dtype and loads `weights` (a file,
/// shard index or release directory).
std::shared_ptr<WanModelImpl> load_wan_model(const WanConfig& cfg, const std::filesystem::path& weights,
                                             const WanLoadOptions& options = {});

}  // namespace ipa::models::wan
