#pragma once

/// How many preference (DPO) pairs a scored candidate set could give: the IPA paper's four
/// cases (reference notes §6) counted per pair of candidates and per frame window.

#include <cstdint>
#include <string>
#include <vector>

#include "ipa/curate/score.h"

namespace ipa::curate {

/// Options of pair_statistics().
struct PairStatsOptions {
    int64_t window = 16;  ///< frames per window (non-overlapping; see pair_statistics())
};

/// Counts over every unordered candidate pair of every group and every window.
struct PairStats {
    int64_t groups = 0;      ///< groups with >= 2 candidates (those that form pairs)
    int64_t pairs = 0;       ///< unordered candidate pairs inside groups
    int64_t windows = 0;     ///< pair windows = both_good + both_bad + mixed + strict
    int64_t both_good = 0;   ///< case 1: both candidates pass every frame of the window
    int64_t both_bad = 0;    ///< case 2: both fail every frame of the window
    int64_t mixed = 0;       ///< case 3: any other window (a candidate passes some frames and fails others, ...)
    int64_t strict = 0;      ///< case 4: one passes every frame and the other fails every frame
    int64_t candidates = 0;  ///< candidates seen (in any group)
    int64_t good_candidates = 0;    ///< candidates with pass == true
    int64_t strict_pairs = 0;       ///< candidate pairs with at least one strict window
    int64_t good_with_loser = 0;    ///< passing candidates that are the strict winner of at least one window
};

/// Pair statistics. Candidates are grouped by `group` (an empty group is the candidate's own
/// group, so it forms no pair). For each unordered pair (a, b) of a group, the first
/// n = min(frames of a, frames of b) frames are cut into windows of opts.window frames
/// (floor(n / window) windows; one window of n frames when 0 < n < window). In a window a
/// candidate is *good* when every frame has score >= cfg.threshold and *bad* when every frame
/// has score < cfg.threshold. The window is both_good, both_bad, strict (one good, the other
/// bad: a per-frame consistent winner/loser, the only case usable by DPO) or mixed. A pair
/// where a candidate has no per-frame detail counts one window with each candidate's overall
/// `pass` standing for all its frames. ConfigError if opts.window < 1.
PairStats pair_statistics(const std::vector<CandidateScore>& scores, const ScoreConfig& cfg,
                          const PairStatsOptions& opts = {});

/// A human-readable multi-line report: the counts with percentages of all windows, and the
/// number of DPO pairs that would exist (strict windows, strict candidate pairs, and the
/// passing candidates that have a strict loser, cf. IPA's 7 of 93).
std::string format_pair_stats(const PairStats& s);

}  // namespace ipa::curate
