#pragma once

// `ipa-curate pose`: DWPose keypoints of a video or of every manifest row lacking them.
//   ipa-curate pose --video V --out KEYPOINTS_DIR --det yolox_l.onnx --pose dw-ll_ucoco_384.onnx
//   ipa-curate pose --manifest M --out DIR --det ... --pose ... [--manifest-out M2 --jobs N --fail-fast --restart]
//   [--device cpu|cuda[:N]|auto]

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "ipa/curate/batch.h"

namespace ipa_curate_app {

struct PoseCommand {
    CLI::App* cmd = nullptr;
    std::string video, manifest, out, det, pose, manifest_out, device = "cpu";
    bool whole_image_fallback = false;
    ipa::curate::BatchOptions batch;
};

/// Registers the subcommand on `app`; the returned object lives as long as the program.
PoseCommand& add_pose_command(CLI::App& app);

/// Runs it; `install_stop` hooks SIGINT/SIGTERM into the batch options and `batch_exit`
/// prints a batch summary and returns the exit code (both from main.cpp).
int run_pose_command(PoseCommand& c, const std::function<void(ipa::curate::BatchOptions&)>& install_stop,
                     const std::function<int(const ipa::curate::BatchReport&, const std::string&)>& batch_exit);

}  // namespace ipa_curate_app
