#pragma once

/// Automatic hand-quality scoring of generated candidates, to pre-rank them before human
/// curation (docs/pose-hands.md §5). Signals per candidate, from its video
/// and the hand keypoints a detector (DWPose) reported on that video:
///   - confidence:  mean confidence of the 21 points of every present hand;
///   - finger:      the weakest finger: min over the 5 fingers of the mean confidence of
///                  its 4 points (a missing or fused finger drags it down while the hand
///                  mean stays high);
///   - visibility:  fraction of expected hands (2 per person with a body) that have
///                  ≥ min_points points with c > point_threshold;
///   - jitter:      frame-to-frame change of the hand's shape (points relative to the hand's
///                  centroid), divided by the hand size (longer side of its keypoint box);
///   - accel:       second difference of the absolute hand points, divided by the hand size;
///   - sharpness:   Laplacian variance of the gray hand crop (pose::hand_box) divided by the
///                  Laplacian variance of the body crop (box of the confident body points).
/// Each signal maps to a sub-score in [0,1] by a linear ramp between its `bad` and `good`
/// value; the combined score is the weighted geometric mean of the sub-scores (one very
/// bad signal sinks it; weight 0 disables a signal). Per frame the same formula runs on
/// that frame's signals (FrameScore::score), which pairs.h uses.
///
/// No published evidence ties these heuristics to human judgement of generated hands;
/// the defaults were calibrated on the synthetic set (synth.h) and should be re-checked
/// against human picks.

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

#include "ipa/curate/batch.h"
#include "ipa/curate/manifest.h"
#include "ipa/pose/keypoints.h"

namespace ipa::curate {

/// A linear ramp: value at `bad` → 0, at `good` → 1, clamped (bad > good means lower is better).
struct Ramp {
    double bad = 0, good = 1;
    double operator()(double value) const;
};

/// Scoring configuration (YAML section `score:`; configs/curate/score.yaml documents each key).
struct ScoreConfig {
    double threshold = 0.5;  ///< combined score ≥ threshold ⇒ pass (also per frame, for pairs)

    float point_threshold = 0.3f;  ///< a keypoint counts as detected when c > this (DWPose's 0.3)
    int min_points = 5;            ///< a hand is visible with ≥ this many detected points
    float hand_padding = 0.25f;    ///< crop padding around the hand's points (fraction of its size)

    double w_confidence = 1, w_finger = 2, w_visibility = 1, w_jitter = 1, w_accel = 1, w_sharpness = 2;
    Ramp confidence{0.3, 0.7};  ///< mean hand point confidence
    Ramp finger{0.45, 0.7};     ///< weakest-finger mean confidence
    Ramp visibility{0.5, 0.9};  ///< visible fraction of expected hands
    Ramp jitter{0.12, 0.04};    ///< mean shape change per frame / hand size
    Ramp accel{0.25, 0.08};     ///< mean |second difference| / hand size
    Ramp sharpness{0.35, 0.8};  ///< hand / body Laplacian-variance ratio

    /// Reads the `score:` section of a YAML file (keys as the member names; ramps as
    /// `confidence: {bad: 0.3, good: 0.7}`); unknown keys → ipa::ConfigError.
    static ScoreConfig from_yaml(const std::filesystem::path& file);
    /// Throws ipa::ConfigError for out-of-range values (negative weights, all weights 0,
    /// bad == good, min_points outside 1..21, ...), naming the key.
    void check() const;
};

/// Per-frame signals (sharpness values are Laplacian variances; NaN-free: a frame without
/// a visible hand has hand_sharpness 0 and score 0).
struct FrameScore {
    int64_t frame = 0;
    double hand_confidence = 0;
    double visible_fraction = 0;
    double hand_sharpness = 0;
    double body_sharpness = 0;
    double jitter = 0;
    double finger_confidence = 0;  ///< weakest finger (see file comment)
    double accel = 0;
    double score = 0;  ///< combined score of this frame alone
};

/// The result for one candidate.
struct CandidateScore {
    std::string id, group;
    double score = 0;
    bool pass = false;
    /// confidence_mean, finger_confidence, visible_fraction, jitter, accel, sharpness_ratio,
    /// hand_sharpness, body_sharpness, frames, hand_frames, and s_<signal> (sub-scores).
    std::map<std::string, double> stats;
    std::vector<FrameScore> frames;
};

/// Laplacian variance (4-neighbour 3x3 kernel, CV_64F) of the gray image inside `roi`
/// (clipped; pixels just outside the roi serve as neighbours, borders are replicated only
/// at the image's edge); 0 for a region under 3x3. BGR or gray input.
double laplacian_variance(const cv::Mat& image, const cv::Rect& roi);

/// Scores one candidate from its frames (BGR) and keypoints (one PoseFrame per video frame;
/// keypoints are scaled from the pose canvas to the video size when they differ). Throws
/// ipa::DataError (prefixed with `id`) when the frame counts differ or there are no frames.
CandidateScore score_candidate(const std::string& id, const std::string& group, const std::vector<cv::Mat>& frames,
                               const pose::PoseSequence& keypoints, const ScoreConfig& cfg);

/// Recomputes the sub-scores, combined scores and pass flags of `s` (candidate and frames)
/// from its stored signals under `cfg` (for re-thresholding a scores.json).
void rescore(CandidateScore& s, const ScoreConfig& cfg);

/// Scores one row of `m`: reads its `video` and `keypoints`; the group is the row's `group`
/// column (empty if absent). A missing/corrupt video or keypoints, or a row without those
/// columns → ipa::DataError naming the manifest, the row id and the file.
CandidateScore score_row(const Manifest& m, const ManifestRow& row, const ScoreConfig& cfg);

/// Scores every row (score_row), stopping at the first bad one (its DataError). Logs progress.
std::vector<CandidateScore> score_manifest(const Manifest& m, const ScoreConfig& cfg);

/// What score_batch() did.
struct ScoreBatchResult {
    BatchReport batch;
    std::vector<CandidateScore> scores;  ///< the ok rows, manifest order
};

/// `ipa-curate score` at scale (batch.h): every row through run_batch() with the progress
/// file out_dir/scores.progress.jsonl (unless `opts.progress_file` names another); a row is
/// redone when its video, keypoints, row fields or `cfg` changed. Unless interrupted, writes
/// write_scores(out_dir, ok rows, failed rows) and out_dir/failures.csv. `opts.verb` is "score".
ScoreBatchResult score_batch(const Manifest& m, const ScoreConfig& cfg, const std::filesystem::path& out_dir,
                             BatchOptions opts = {});

/// Every setting of `cfg`, as text (part of score_batch()'s row fingerprints).
std::string config_fingerprint(const ScoreConfig& cfg);

/// One candidate as in scores.json's `candidates` (non-finite numbers become -1), and back
/// (ipa::DataError prefixed with `where`).
nlohmann::json score_to_json(const CandidateScore& s);
CandidateScore score_from_json(const nlohmann::json& j, const std::string& where);

/// Writes out_dir/scores.csv (one row per candidate: id, group, score, pass, stats) and
/// out_dir/scores.json (everything, with per-frame detail, and `failed`: the rows that could
/// not be scored, `[{"id", "error"}]`); both atomic.
void write_scores(const std::filesystem::path& out_dir, const std::vector<CandidateScore>& scores,
                  const std::vector<RowFailure>& failed = {});

/// Reads a scores.json written by write_scores(); ipa::DataError naming the file and key.
std::vector<CandidateScore> read_scores(const std::filesystem::path& scores_json);

/// The `failed` list of a scores.json (empty when it has none).
std::vector<RowFailure> read_score_failures(const std::filesystem::path& scores_json);

}  // namespace ipa::curate
