#pragma once

/// How many DPO pairs a set of scored candidates could form (the IPA paper's Case 1-4
/// analysis: of 93 hand-picked good videos only ~7.5% could form strict pairs).
///
/// Definitions. Candidates with the same `group` (the same driving pose + reference) are
/// compared pairwise (every unordered pair). A candidate with an empty group is a group of
/// its own. A pair is cut into non-overlapping windows of `window` frames over the first
/// min(T_a, T_b) frames ([0,w), [w,2w), ...; a trailing remainder shorter than a window
/// is dropped, except that a pair shorter than one window forms one window of all its
/// frames). In a window a candidate is GOOD when every frame passes (FrameScore::score ≥
/// cfg.threshold), BAD when every frame fails, else MIXED. The window is:
///   - both_good (Case 1): both GOOD;
///   - both_bad  (Case 2): both BAD;
///   - strict    (Case 4): one GOOD and the other BAD — a strict winner/loser, usable as
///                one DPO pair;
///   - mixed     (Case 3): anything else (at least one MIXED candidate).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ipa/curate/manifest.h"
#include "ipa/curate/score.h"

namespace ipa::curate {

/// Options of pair_statistics().
struct PairStatsOptions {
    int64_t window = 16;  ///< frames per window (≥ 1)
};

/// Counts (windows are summed over all pairs of all groups; the four classes add up to windows).
struct PairStats {
    int64_t groups = 0, pairs = 0, windows = 0, both_good = 0, both_bad = 0, mixed = 0, strict = 0;
    int64_t strict_pairs = 0;  ///< candidate pairs with at least one strict window
    int64_t candidates = 0;    ///< candidates counted
};

/// Computes the statistics; ipa::ConfigError for window < 1, ipa::DataError for duplicate ids.
PairStats pair_statistics(const std::vector<CandidateScore>& scores, const ScoreConfig& cfg,
                          const PairStatsOptions& opts);

/// One strict window (Case 4) as a DPO pair: the candidate that is GOOD in the window
/// wins, the BAD one loses; frames [start, start + frames).
struct DpoPair {
    std::string group, winner, loser;
    int64_t start = 0, frames = 0;
};

/// Every strict window of every candidate pair — the windows pair_statistics() counts as
/// `strict` — in group order, then pair order, then time.
std::vector<DpoPair> strict_pairs(const std::vector<CandidateScore>& scores, const ScoreConfig& cfg,
                                  const PairStatsOptions& opts);

/// The pairs as a training manifest for `csv` (what `ipa-curate pairs --out` writes and
/// data.manifest of a DPO run reads): one row per pair with the winner's standard columns
/// (its video and keypoints; the conditioning both share), id `winner~loser@start`, and
/// group, winner, loser, start_frame, frames, loser_video, loser_keypoints (paths relative
/// to the csv's directory when below it). DataError for a candidate missing from
/// `candidates` or a pair whose members differ in pose video, reference or prompt.
Manifest pair_manifest(const std::vector<DpoPair>& pairs, const Manifest& candidates, const std::filesystem::path& csv);

/// Human-readable report: the counts with percentages of windows and the number of DPO
/// pairs that would exist (strict windows, and the candidate pairs they come from).
std::string format_pair_stats(const PairStats& s);

}  // namespace ipa::curate
