#pragma once

/// `ipa-curate pose`: DWPose keypoints of whole videos, one OpenPose JSON per frame, and of
/// every manifest row that lacks keypoints (the batch machinery of ipa/curate/batch.h: bad
/// rows recorded and skipped, resumable, rows in parallel). docs/dwpose.md.

#include <cstdint>
#include <filesystem>
#include <string>

#include "ipa/core/progress.h"
#include "ipa/curate/batch.h"
#include "ipa/curate/manifest.h"
#include "ipa/pose/dwpose.h"

namespace ipa::pose::dwpose {

/// What pose_video() did.
struct VideoPoseReport {
    int64_t frames = 0;
    int64_t frames_with_people = 0;  ///< the others are written as empty frames
    int64_t people = 0;              ///< person detections over all frames
    int width = 0, height = 0;
    double seconds = 0;  ///< detection + pose time (not decoding or writing)
    /// Where the wall time went: reading and decoding the video, the detector (letterbox,
    /// network, NMS), the pose model (crops, network, SimCC decoding), writing the JSON.
    double decode_seconds = 0, detect_seconds = 0, pose_seconds = 0, write_seconds = 0;
    double frames_per_second() const { return seconds > 0 ? frames / seconds : 0.0; }
    /// "decode 0.1 s, detector 2.0 s, pose 3.1 s, write 0.0 s"
    std::string stage_summary() const;
    /// Adds another video's counts and seconds (the size is left as it is).
    void add(const VideoPoseReport& o);
};

/// Reads every frame of `video` (a video file or a directory of image frames; BGR frames are
/// given to DWPose as RGB), estimates the poses and writes `out_dir/frame_NNNNNN_keypoints.json`
/// (OpenPose JSON with confidences, canvas size; frames without a person have `people: []`).
/// The directory appears complete or not at all (written beside it, then renamed over it).
/// ipa::DataError naming the video for a missing, corrupt or empty video.
VideoPoseReport pose_video(const Estimator& est, const std::filesystem::path& video,
                           const std::filesystem::path& out_dir, const ProgressOptions& progress = {});

/// What pose_manifest() did.
struct ManifestPoseReport {
    curate::BatchReport batch;       ///< the rows that lacked keypoints
    int64_t already = 0;             ///< rows that had keypoints (left as they were)
    std::filesystem::path manifest;  ///< the manifest written (unless interrupted)
    VideoPoseReport total;           ///< this run's rows summed: frames, detection + pose seconds, stages
};

/// Fills the keypoints column of every row of `m` that lacks it: the row's `video` through
/// pose_video() into `out_dir/<id>/`, the column set to that directory. The progress file is
/// `out_dir/pose.progress.jsonl` (resume: a finished row whose video, models and settings are
/// unchanged and whose directory still exists is reused); failed rows keep an empty column
/// and are listed in `out_dir/failures.csv`. The manifest is written to `manifest_out`
/// (atomically; may be m.path) unless the run was interrupted. `models_fingerprint` names
/// the detector and pose files (file_fingerprint of each) for the resume check.
ManifestPoseReport pose_manifest(const curate::Manifest& m, const Estimator& est, const std::filesystem::path& out_dir,
                                 const std::filesystem::path& manifest_out, const std::string& models_fingerprint,
                                 curate::BatchOptions opts);

}  // namespace ipa::pose::dwpose
