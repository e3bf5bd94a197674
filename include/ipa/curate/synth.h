#pragma once

/// A synthetic animation set for testing curation end to end without any generative model
/// or pose detector: procedurally rendered dancers (filled torso, head, arms, legs and two
/// five-fingered hands) moving along smooth pose trajectories (sums of sinusoids on joint
/// angles), with ground-truth OpenPose keypoints, the rendered pose video, a reference
/// image and a prompt per clip, and several "generated candidates" per clip, some clean
/// (label good) and some with a labelled hand defect (label bad):
///   - blur:           the hand regions are Gaussian-blurred;
///   - missing_finger: one finger of one hand is not drawn;
///   - fused_fingers:  two adjacent fingers are drawn merged into one thick finger;
///   - jitter:         the hand geometry shakes randomly frame to frame.
/// Each candidate's keypoints are SIMULATED detector output derived from the ground truth
/// (no DWPose model runs here): small Gaussian noise and confidences ~0.75-0.95 when clean;
/// blur ⇒ hand confidences lowered (×0.45); missing finger ⇒ that finger's points get
/// confidence ≤ 0.15; fused ⇒ the two fingers' points collapse onto their mean with
/// confidence ~0.35-0.45; jitter ⇒ the drawn (jittered) geometry with extra noise.
/// Everything is deterministic in the seed.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace ipa::curate {

/// Options of synth_dataset().
struct SynthOptions {
    int clips = 8;
    int candidates = 4;  ///< per clip; candidate 0 is always clean, the others cycle through
                         ///< clean and the four defects (see synth_defect())
    uint64_t seed = 0;
    int frames = 17;
    int height = 256;
    int width = 256;
    double fps = 16;
    /// Video container of the candidate and pose videos: ".mp4" (or ".avi", ...), or ""
    /// for directories of PNG frames (lossless and byte-for-byte reproducible).
    std::string video_ext = ".mp4";
    bool textured_background = true;  ///< odd clips get a textured background, even a plain one
};

/// What synth_dataset() wrote.
struct SynthReport {
    std::filesystem::path manifest;  ///< out_dir/candidates.csv
    int64_t clips = 0, candidates = 0;
    std::map<std::string, int64_t> defects;  ///< defect name (incl. "none") → candidates
};

/// The defect of candidate `index` of clip `clip` for a seed: "none", "blur",
/// "missing_finger", "fused_fingers" or "jitter" (index 0 is always "none").
std::string synth_defect(int clip, int index, uint64_t seed);

/// Writes the set under out_dir (created):
///   out_dir/candidates.csv with columns id,group,video,vace_video,vace_reference_image,
///     keypoints,prompt,label,defect (label good|bad; defect none|blur|missing_finger|
///     fused_fingers|jitter; group = clip name);
///   per clip `clip_NNN/`: gt_keypoints/ (ground truth, OpenPose JSON), pose<ext> (rendered
///     with pose::render_pose_video), reference.png (frame 0 of the clean render), prompt.txt;
///   per candidate `clip_NNN/cand_K<ext>` and `clip_NNN/cand_K_keypoints/` (simulated).
/// ConfigError for invalid options (clips/candidates < 1, frames < 2, size < 64 or not a
/// multiple of 8, fps ≤ 0).
SynthReport synth_dataset(const std::filesystem::path& out_dir, const SynthOptions& opts);

}  // namespace ipa::curate
