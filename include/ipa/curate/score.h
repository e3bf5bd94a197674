#pragma once

/// Automatic hand-quality scoring of generated candidates (reference notes
/// pose-hands-eval.md §5.2): hand keypoint confidence, hand visibility, temporal jitter and
/// acceleration of hand points (normalised by hand size) and the sharpness of hand crops
/// relative to the body, combined into one score in [0, 1].
///
/// Per frame (the person with the highest total keypoint confidence; `hands` expected hands):
/// - hand_confidence: the worst expected hand's mean confidence over its 21 points (an
///   absent hand counts 0), so one bad hand is not averaged away by the other;
/// - visible_fraction: the fraction of expected hands with >= min_points points of
///   confidence > keypoint_threshold;
/// - hand_sharpness: variance of the 3x3 Laplacian of the grayscale hand crop
///   (pose::hand_box with crop_padding), the lowest over visible hands; 0 if none;
/// - body_sharpness: the same over the body box (confident body and hand points, padded by
///   10%; the whole frame if there are none); sharpness ratio = hand / body;
/// - jitter: mean over hands and fingers points of |r[t+1] - 2 r[t] + r[t-1]| / size, with
///   r = point - wrist (hand shape, independent of how the whole hand moves) and size the
///   longer side of the hand's confident keypoint box; points confident in all three frames;
/// - accel: the same on absolute positions (whole-hand acceleration; dance moves are fast,
///   so it has no weight by default).
/// First/last frames take the jitter/accel of their neighbour; a frame where it cannot be
/// measured stores 0 and its sub-score is neutral (1).
///
/// Each signal v becomes a sub-score by a linear ramp s = clamp((v - bad) / (good - bad), 0, 1)
/// (good > bad for "higher is better", good < bad for "lower is better"). The combined score
/// is the weighted geometric mean  prod_i max(s_i, 1e-3)^(w_i / sum w): a candidate is only as
/// good as its worst weighted signal. The candidate score uses the aggregate signals
/// (confidence_mean, visible_fraction, sharpness_ratio = median over frames with a visible
/// hand, jitter and accel = mean over measurable frames); each frame's score uses its own.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include "ipa/curate/manifest.h"
#include "ipa/pose/keypoints.h"

namespace ipa {
class ConfigReader;
}

namespace ipa::curate {

/// One signal's ramp and weight (see the file comment).
struct SignalRamp {
    double bad = 0;     ///< value with sub-score 0
    double good = 1;    ///< value with sub-score 1
    double weight = 1;  ///< weight in the geometric mean (0 = reported only)
    /// The sub-score of `v` in [0, 1].
    double apply(double v) const;
};

/// Scoring configuration: YAML section `score:` (configs/curate/score.yaml documents each
/// key). Defaults are calibrated on the synthetic set (synth.h) and are a heuristic for real
/// candidates: recalibrate on labelled human picks.
struct ScoreConfig {
    double threshold = 0.5;          ///< combined score >= threshold => pass (frames too)
    float keypoint_threshold = 0.3f; ///< a keypoint is confident when c > this
    int min_points = 5;              ///< a hand is visible with >= min_points confident points
    int hands = 2;                   ///< hands expected per frame (1 or 2)
    float crop_padding = 0.25f;      ///< hand crop padding, fraction of the hand size
    SignalRamp confidence{0.55, 0.80, 1.0};  ///< worst hand's mean confidence
    SignalRamp visible{0.5, 1.0, 1.0};       ///< visible fraction of expected hands
    SignalRamp sharpness{0.35, 0.75, 1.0};   ///< hand / body Laplacian variance ratio
    SignalRamp jitter{0.15, 0.06, 1.0};      ///< hand-shape acceleration / hand size
    SignalRamp accel{0.60, 0.20, 0.0};       ///< whole-hand acceleration / hand size

    /// Reads the `score:` section of a YAML file; unknown keys, a missing section and bad
    /// values are ipa::ConfigError naming the key.
    static ScoreConfig from_yaml(const std::filesystem::path& file);
    /// Reads from an already opened `score` section (finish() is called on it).
    static ScoreConfig from_config(const ConfigReader& section);
    /// ConfigError for out-of-range values (threshold outside [0,1], hands not 1 or 2,
    /// min_points outside 1..21, a ramp with good == bad, a negative weight, all weights 0).
    void check() const;
};

/// Per-frame signals (see the file comment) and the frame's combined score.
struct FrameScore {
    int64_t frame = 0;
    double hand_confidence = 0;
    double visible_fraction = 0;
    double hand_sharpness = 0;
    double body_sharpness = 0;
    double jitter = 0;
    double accel = 0;   ///< whole-hand acceleration / hand size
    double score = 0;   ///< combined score of this frame's signals
    bool pass = false;  ///< score >= threshold
};

/// One candidate's score. `stats` holds: confidence_mean, confidence_min, visible_fraction,
/// detection_rate (frames with every expected hand visible), hand_sharpness, body_sharpness,
/// sharpness_ratio, jitter, accel, frames, frames_pass, and the sub-scores sub_confidence,
/// sub_visible, sub_sharpness, sub_jitter, sub_accel.
struct CandidateScore {
    std::string id, group;
    double score = 0;
    bool pass = false;
    std::map<std::string, double> stats;
    std::vector<FrameScore> frames;
};

/// Scores one clip from its frames (CV_8UC3 BGR) and keypoints (already at the frames'
/// pixel scale, one PoseFrame per frame). `what` names the candidate in errors.
/// DataError if the counts differ or a frame is not CV_8UC3.
CandidateScore score_frames(const std::vector<cv::Mat>& frames, const pose::PoseSequence& keypoints,
                            const ScoreConfig& cfg, const std::string& what = "candidate");

/// Scores every row: reads its `video` (media::read_frames_bgr) and `keypoints`
/// (pose::read_keypoints; coordinates scaled from the keypoints' canvas to the video size
/// when they differ). `group` comes from the row's `group` column (empty if absent).
/// Shows progress and logs a summary. A missing/blank path, an unreadable or corrupt video
/// or keypoint file, or a frame-count mismatch is ipa::DataError naming the row id and file.
std::vector<CandidateScore> score_manifest(const Manifest& m, const ScoreConfig& cfg);

/// Writes out_dir/scores.csv (id, group, score, pass, then every stat, one row per
/// candidate) and out_dir/scores.json (the same plus per-frame detail), both atomically;
/// creates out_dir.
void write_scores(const std::filesystem::path& out_dir, const std::vector<CandidateScore>& scores);

/// Reads a scores.json written by write_scores(); DataError naming the file and the key.
std::vector<CandidateScore> read_scores(const std::filesystem::path& scores_json);

/// Laplacian variance (3x3 kernel [0 1 0; 1 -4 1; 0 1 0], reflect-101 border) of the
/// grayscale (BGR -> gray) region `roi` of `bgr`, on 0..255 values.
double laplacian_variance(const cv::Mat& bgr, const cv::Rect& roi);

}  // namespace ipa::curate
