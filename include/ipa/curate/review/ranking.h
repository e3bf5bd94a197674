#pragma once

// Joining a candidate manifest with its scores: the order in which people look at them.

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "ipa/curate/manifest.h"
#include "ipa/curate/score.h"

namespace ipa::curate::review {

/// One manifest row with its score (nullptr when the scores have no entry for it).
struct RankedCandidate {
    const ManifestRow* row = nullptr;
    const CandidateScore* score = nullptr;
};

/// Candidates best first: scored rows by descending score (ties by id), then unscored rows
/// in manifest order. A score whose id is not in the manifest is an ipa::DataError naming
/// `scores_source`, the id and the manifest (scores of another manifest). The result points
/// into `m` and `scores`, which must outlive it.
std::vector<RankedCandidate> rank_candidates(const Manifest& m, const std::vector<CandidateScore>& scores,
                                             const std::filesystem::path& scores_source = "scores");

/// Up to `max` (name, value) stats for display: the scorer's main signals first
/// (confidence_mean, finger_confidence, visible_fraction, sharpness_ratio, jitter, accel), then the rest
/// by name, the `s_<signal>` sub-scores last.
std::vector<std::pair<std::string, double>> main_stats(const CandidateScore& s, std::size_t max = 64);

/// File name of a candidate's contact sheet: `<id>.png` when the id is safe as a file name
/// ([A-Za-z0-9._-], not starting with '.'), else the id with other characters as '_' plus
/// an FNV-1a hash of the id (distinct ids never share a sheet).
std::string sheet_filename(const std::string& id);

/// A number for people: 3 significant digits ("0.812", "1.25e-05", "n/a" for NaN).
std::string format_number(double v);

}  // namespace ipa::curate::review
