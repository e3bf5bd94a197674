// `ipa-curate pose` (pose_cmd.h; docs/dwpose.md).

#include "pose_cmd.h"

#include <fmt/format.h>

#include <iostream>

#include "ipa/core/error.h"
#include "ipa/core/run_context.h"
#include "ipa/curate/manifest.h"
#include "ipa/pose/dwpose_video.h"

namespace ipa_curate_app {

PoseCommand& add_pose_command(CLI::App& app) {
    static PoseCommand c;
    c.cmd = app.add_subcommand("pose", "DWPose whole-body keypoints (YOLOX-L + DWPose-L ONNX) as OpenPose JSON");
    c.cmd->add_option("--video", c.video, "a video file or a directory of frames");
    c.cmd->add_option("--manifest", c.manifest, "fill the keypoints column of every row that lacks it");
    c.cmd
        ->add_option("--out", c.out,
                     "--video: the keypoints directory to write; --manifest: the directory for <id>/ keypoints")
        ->required();
    c.cmd->add_option("--det", c.det, "YOLOX-L person detector (yolox_l.onnx)")->required();
    c.cmd->add_option("--pose", c.pose, "DWPose-L whole-body model (dw-ll_ucoco_384.onnx)")->required();
    c.cmd->add_option("--manifest-out", c.manifest_out, "write the filled manifest here (default: over --manifest)");
    c.cmd->add_flag("--whole-image-fallback", c.whole_image_fallback,
                    "frames without a detected person: one pose over the whole image, as DWPose's Python code "
                    "(default: an empty frame)");
    c.cmd->add_option("--device", c.device,
                      "cpu | cuda[:N] | auto: where the two networks run (pre/post-processing on the CPU)");
    c.cmd->add_option("--jobs", c.batch.jobs, "rows in parallel (default: hardware threads)")
        ->check(CLI::NonNegativeNumber);
    c.cmd->add_flag("--fail-fast", c.batch.fail_fast, "stop at the first bad row (exit code of its error)");
    c.cmd->add_flag("--restart", c.batch.restart, "ignore the progress file of an earlier run; redo every row");
    return c;
}

int run_pose_command(PoseCommand& c, const std::function<void(ipa::curate::BatchOptions&)>& install_stop,
                     const std::function<int(const ipa::curate::BatchReport&, const std::string&)>& batch_exit) {
    namespace dw = ipa::pose::dwpose;
    if (c.video.empty() == c.manifest.empty())
        throw ipa::ConfigError("ipa-curate pose: give exactly one of --video and --manifest");
    dw::EstimatorOptions eopts;
    eopts.whole_image_when_no_person = c.whole_image_fallback;
    eopts.device = ipa::parse_device(c.device);
    const dw::Estimator est(c.det, c.pose, eopts);
    if (!c.video.empty()) {
        const auto r = dw::pose_video(est, c.video, c.out);
        std::cout << fmt::format(
            "wrote {} ({} frames {}x{}, {} with people, {} person detections; {:.2f} frames/s on detection + pose; "
            "{})\n",
            c.out, r.frames, r.width, r.height, r.frames_with_people, r.people, r.frames_per_second(),
            r.stage_summary());
        return 0;
    }
    install_stop(c.batch);
    const auto m = ipa::curate::read_manifest(c.manifest);
    const std::string models = ipa::curate::file_fingerprint(c.det) + "|" + ipa::curate::file_fingerprint(c.pose) +
                               (c.whole_image_fallback ? "|fallback" : "");
    const auto r =
        dw::pose_manifest(m, est, c.out, c.manifest_out.empty() ? c.manifest : c.manifest_out, models, c.batch);
    if (!r.batch.interrupted)
        std::cout << fmt::format(
            "wrote {} ({} rows had keypoints; {} frames estimated now, {:.2f} frames/s; summed over rows: {})\n",
            r.manifest.string(), r.already, r.total.frames, r.total.frames_per_second(), r.total.stage_summary());
    return batch_exit(r.batch, c.out);
}

}  // namespace ipa_curate_app
