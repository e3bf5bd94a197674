#pragma once

// The training manifest: the candidates a person marked good (optionally above a score).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ipa/curate/manifest.h"
#include "ipa/curate/review/decisions.h"
#include "ipa/curate/score.h"

namespace ipa::curate::review {

/// Options of select_rows().
struct SelectOptions {
    /// Keep only good rows with score >= min_score (needs scores; a good row without a score
    /// is then left out and counted in `without_score`).
    std::optional<double> min_score;
};

/// What selection found.
struct SelectReport {
    int64_t candidates = 0, good = 0, bad = 0, skip = 0, undecided = 0;
    int64_t below_min_score = 0;  ///< good rows left out by min_score
    int64_t without_score = 0;    ///< good rows left out because min_score was set and they have no score
    int64_t selected = 0;
    std::filesystem::path out;  ///< where the training manifest was written (select_training)
};

/// The manifest rows (in manifest order, all columns) whose effective decision is good and
/// that pass `opts`. Decisions for ids outside the manifest are an ipa::DataError;
/// min_score without `scores` is an ipa::ConfigError.
Manifest select_rows(const Manifest& m, const DecisionLog& decisions, const std::vector<CandidateScore>* scores,
                     const SelectOptions& opts, SelectReport* report = nullptr);

/// Reads the manifest, the decisions log (read-only) and, when given, scores.json; writes the
/// selected rows to `out` atomically with the original columns (paths relative to `out`'s
/// directory when below it). An empty selection still writes the header and is logged as a
/// warning.
SelectReport select_training(const std::filesystem::path& manifest, const std::filesystem::path& decisions,
                             const std::optional<std::filesystem::path>& scores_json, const SelectOptions& opts,
                             const std::filesystem::path& out);

/// Multi-line human summary of a selection.
std::string format_select_report(const SelectReport& r);

}  // namespace ipa::curate::review
