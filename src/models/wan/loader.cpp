#include "ipa/models/wan/loader.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "ipa/io/checkpoint.h"
#include "ipa/models/wan/key_mapping.h"

namespace ipa::models::wan {

io::LoadReport load_wan_weights(WanModelImpl& model, const io::Checkpoint& ckpt, const WanLoadOptions& options) {
    model.to(options.device);
    model.set_dtype(options.dtype);
    io::LoadOptions lo;
    lo.strict = options.strict;
    lo.key_map = to_original_key;
    // Adapters are not part of a base checkpoint.
    lo.allow_missing = [](const std::string& k) { return k.find(".lora_") != std::string::npos; };
    auto report = io::load_state_dict(model, ckpt, lo);
    spdlog::info("loaded {} tensors from {} ({} key names)", report.loaded.size(), ckpt.description(),
                 detect_key_format(ckpt));
    if (!report.ok()) spdlog::warn("non-strict load of {}:\n{}", ckpt.description(), report.describe());
    return report;
}

std::shared_ptr<WanModelImpl> load_wan_model(const WanConfig& cfg, const std::filesystem::path& weights,
                                             const WanLoadOptions& options) {
    auto model = make_wan_model(cfg);
    const auto ckpt = io::Checkpoint::open(weights);
    load_wan_weights(*model, ckpt, options);
    return model;
}

}  // namespace ipa::models::wan
