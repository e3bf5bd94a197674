#pragma once

/// Hand metrics that need no ground truth: from the pose keypoints a detector (DWPose, or
/// OpenPose) reported on each generated video, how confidently and how often its hands are
/// found, so that a base model and an adapter can be compared on new poses (`ipa-eval hands`,
/// then `ipa-eval compare`). The keypoint signals are the curation scorer's (curate/score.h,
/// called as it is, with its ScoreConfig: a point is detected when c > point_threshold, a hand is
/// visible with ≥ min_points detected points, 2 hands expected per person with a body point or a
/// hand array); without the video the scorer runs on blank frames of the keypoint canvas, so
/// every keypoint signal is the same and the pixel signal (sharpness) and the combined score are
/// left out.
///
/// Per video, over every expected hand h of every frame (an absent hand array counts as 21
/// points of confidence 0):
///   hand_confidence       mean over h and its 21 points of clamp(c, 0, 1);
///   hand_points_detected  fraction of those points with c > point_threshold;
///   hands_visible         fraction of h that are visible (the scorer's visible_fraction);
///   left/right_hand_visible  the same for left / right hands only (for one person: the
///                         fraction of frames with that hand visible);
/// and from the scorer: confidence_mean (mean point confidence of the visible hands),
/// finger_confidence (weakest finger), jitter and accel (hand shape change / acceleration per
/// frame, relative to the hand size; NaN when never defined), and with the video
/// sharpness_ratio (hand / body Laplacian variance) and score (the combined curation score).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ipa/curate/score.h"
#include "ipa/pose/keypoints.h"

namespace ipa::eval {

/// One generated video: its keypoints (a folder of OpenPose JSON or a .jsonl) and, optionally,
/// the video itself (file or frame folder).
struct HandEvalInput {
    std::string id;
    std::filesystem::path keypoints, video;
};

/// Inputs from a folder of keypoints (`<id>/` JSON folders or `<id>.jsonl`) and optionally a
/// folder of generated videos matched by name (every video needs keypoints; keypoints without a
/// video are an error too when `video_dir` is given). Throws ipa::DataError naming the folder
/// and the unmatched names.
std::vector<HandEvalInput> hand_inputs_from_dirs(const std::filesystem::path& keypoints_dir,
                                                 const std::filesystem::path& video_dir = {});

/// Inputs from a CSV manifest with columns id, keypoints[, generated] (paths relative to the
/// manifest). Throws ipa::DataError naming the file, row and column.
std::vector<HandEvalInput> hand_inputs_from_manifest(const std::filesystem::path& csv);

struct HandMetrics {
    std::string id;
    bool has_video = false;
    int64_t frames = 0, expected_hands = 0, visible_hands = 0;
    int64_t visible_left = 0, visible_right = 0, detected_points = 0;  ///< counts behind the fractions
    double confidence_sum = 0;                                         ///< Σ clamp(c) over the 21·expected points
    double hand_confidence = 0, hand_points_detected = 0, hands_visible = 0;
    double left_hand_visible = 0, right_hand_visible = 0;  ///< NaN when no left / right hand was expected
    double confidence_mean = 0, finger_confidence = 0;     ///< scorer; 0 without a visible hand
    double jitter = 0, accel = 0;                          ///< scorer; NaN when undefined
    double sharpness_ratio = 0, score = 0;                 ///< scorer; NaN without the video
    std::vector<double> frame_hands_visible;               ///< per frame (NaN: no hand expected)
};

/// The keypoint-only part (everything but the scorer's signals) of a keypoint sequence.
HandMetrics hand_keypoint_metrics(const std::string& id, const pose::PoseSequence& seq,
                                  const curate::ScoreConfig& cfg = {});

/// One video: reads its keypoints (and video), checks the frame counts, computes
/// hand_keypoint_metrics and the scorer's signals. Throws ipa::DataError naming the id and file
/// for missing / corrupt keypoints or video, or keypoint and video frame counts that differ.
HandMetrics evaluate_hands(const HandEvalInput& input, const curate::ScoreConfig& cfg = {});

/// Every input, with a progress bar.
std::vector<HandMetrics> evaluate_hands(const std::vector<HandEvalInput>& inputs, const curate::ScoreConfig& cfg = {});

/// Over all videos: the hand fractions pooled over every expected hand (hands_visible =
/// Σ visible / Σ expected, as frame metrics pool frames) and the means over videos of the
/// per-video values (NaN values skipped; NaN when none).
struct HandSummary {
    int64_t videos = 0, frames = 0, expected_hands = 0, visible_hands = 0;
    double hand_confidence = 0, hand_points_detected = 0, hands_visible = 0, left_hand_visible = 0,
           right_hand_visible = 0;
    double confidence_mean = 0, finger_confidence = 0, jitter = 0, accel = 0, sharpness_ratio = 0, score = 0;
};
HandSummary summarize_hands(const std::vector<HandMetrics>& videos);

}  // namespace ipa::eval
