#pragma once

// One static HTML page over a curation round: candidates by score with their contact sheet,
// stats and current decision. Opens from disk (no server, no external assets); links are
// relative to the page. A small inline script adds filtering/sorting by decision; without
// JavaScript the page is the full table sorted by score.

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipa/core/html.h"
#include "ipa/curate/manifest.h"
#include "ipa/curate/review/decisions.h"
#include "ipa/curate/score.h"

namespace ipa::curate::review {

/// Options of render_index_html().
struct IndexOptions {
    std::optional<std::filesystem::path> sheets_dir;  ///< contact sheets (sheet_filename(id)); none: no thumbnails
    const DecisionLog* decisions = nullptr;           ///< current decisions; none: all undecided
    /// Rows the scorer could not score (read_score_failures): shown with their reason, never
    /// silently as "no score".
    std::vector<RowFailure> failures;
    std::string title = "ipa-curate review";
    int thumb_width = 480;  ///< CSS max width of the sheet thumbnails (px)
    /// URL of a linked file (video, pose video, reference image, contact sheet); default:
    /// its path relative to the page's directory. An empty URL leaves the link out.
    std::function<std::string(const std::filesystem::path&)> href;
    /// Trusted markup of a page that embeds the index (`ipa-curate serve`): added at the end
    /// of <head>, after the summary line and before </body>.
    std::string head_extra, body_top, body_end;
};

/// Escapes & < > " ' for HTML text and attribute values (ipa/core/html.h).
using ipa::html_escape;
/// Percent-encodes a relative path for an href/src (keeps [A-Za-z0-9-._~/]).
std::string url_encode_path(const std::filesystem::path& rel);

/// The page for an index written to `page_dir`/... (links are made relative to page_dir).
/// Every manifest string is escaped. Decisions for ids outside the manifest and scores of
/// another manifest are ipa::DataErrors.
std::string render_index_html(const std::filesystem::path& page_dir, const Manifest& m,
                              const std::vector<CandidateScore>& scores, const IndexOptions& opts);

/// Writes render_index_html() to `out` atomically.
void write_index_html(const std::filesystem::path& out, const Manifest& m, const std::vector<CandidateScore>& scores,
                      const IndexOptions& opts);

}  // namespace ipa::curate::review
