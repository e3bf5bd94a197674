#pragma once

/// A synthetic human-animation candidate set, deterministic from a seed, for testing the
/// curation tools end to end without a video model or a pose detector.
///
/// Each clip is a procedurally rendered dancer (filled torso, head, arms and legs; two hands
/// with a palm and five fingers of three segments drawn as thick outlined lines) moving along
/// smooth trajectories (sums of sinusoids on joint angles) on a plain or textured background.
/// Per clip: ground-truth keypoints (OpenPose-18 body + 21 + 21 hand points), the pose video
/// rendered from them, a reference image (frame 0 of the clean render) and a prompt. Per clip
/// `candidates` "generated" videos: some clean (label good, defect none), the others with a
/// hand defect on one hand for the whole clip (label bad): blur (the hand region blurred),
/// missing_finger (one finger not drawn), fused_fingers (two adjacent fingers drawn as one)
/// or jitter (the hand's geometry shakes from frame to frame). Candidates differ slightly
/// from one another even when clean (timing, colours, pixel noise).
///
/// The candidates' keypoints are SIMULATED from the drawn geometry, not detected (no DWPose
/// model runs here): positions of what was drawn plus small noise, with confidences as a
/// detector would plausibly report them: clean ~0.75-0.98; a missing finger's points low
/// (<= 0.2) near where the finger should be; fused fingers' points collapsed onto the merged
/// finger with lower confidence; a blurred hand's points with lower confidence; a jittering
/// hand's points following the shaking geometry.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace ipa::curate {

/// What to generate.
struct SynthOptions {
    int clips = 8;
    int candidates = 4;  ///< per clip; about a third clean (at least one), the rest one defect each, the four kinds in turn
    uint64_t seed = 0;
    int frames = 17;
    int height = 256;
    int width = 256;
    double fps = 16;
    /// "png": each video is a directory of PNG frames (lossless, byte-deterministic);
    /// "mp4" / "avi": an encoded file via media::write_frames_bgr.
    std::string video_format = "png";
};

/// What was written.
struct SynthReport {
    std::filesystem::path manifest;        ///< out_dir/candidates.csv
    int64_t clips = 0, candidates = 0;
    std::map<std::string, int64_t> defects;  ///< candidates per defect (none, blur, missing_finger, fused_fingers, jitter)
};

/// Writes the set under out_dir (created; existing files of the same names are replaced):
///   candidates.csv  columns id,group,video,vace_video,vace_reference_image,keypoints,prompt,label,defect
///                   (label good|bad; defect none|blur|missing_finger|fused_fingers|jitter)
///   clip_NNN/keypoints/    ground-truth keypoints (pose::write_keypoints_dir)
///   clip_NNN/pose[.mp4]    pose video (pose::render_pose_video, body + hands)
///   clip_NNN/reference.png reference image
///   clip_NNN/prompt.txt    the prompt
///   clip_NNN/cand_K/video[.mp4], clip_NNN/cand_K/keypoints/   candidate video and simulated keypoints
/// Ids are `clipNNN_cK`, groups `clipNNN`. ConfigError for bad options (sizes < 64 or not
/// multiples of 8, frames < 1, clips < 1, candidates < 1, unknown video_format).
SynthReport synth_dataset(const std::filesystem::path& out_dir, const SynthOptions& opts);

}  // namespace ipa::curate
