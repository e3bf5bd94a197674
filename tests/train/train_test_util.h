#pragma once

// Helpers shared by the trainer's test files (test_trainer.cpp, test_steps.cpp).

#include <filesystem>
#include <string>
#include <vector>

#include "ipa/train/config.h"
#include "ipa/train/trainer.h"
#include "test_util.h"

namespace ipa::test {

/// The source tree (configs/ lives there).
inline const std::filesystem::path kSourceDir = IPA_SOURCE_DIR;

/// The tiny model with the tiny CPU training config, its cache and run under `dir`.
inline train::TrainConfig tiny_config(const std::filesystem::path& dir, int64_t steps,
                                      const std::vector<std::string>& more = {}) {
    std::vector<std::string> o{"model.config=" + (kSourceDir / "configs/models/tiny.yaml").string(),
                               "data.cache_dir=" + (dir / "cache").string(), "checkpoint.dir=" + (dir / "run").string(),
                               "train.steps=" + std::to_string(steps)};
    o.insert(o.end(), more.begin(), more.end());
    return train::TrainConfig::load(kSourceDir / "configs/train/tiny-cpu.yaml", o);
}

/// Hooks without the progress line.
inline train::TrainHooks quiet() {
    train::TrainHooks h;
    h.progress = false;
    return h;
}

}  // namespace ipa::test
