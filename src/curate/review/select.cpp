#include "ipa/curate/review/select.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "ipa/core/error.h"

namespace ipa::curate::review {
namespace fs = std::filesystem;

Manifest select_rows(const Manifest& m, const DecisionLog& decisions, const std::vector<CandidateScore>* scores,
                     const SelectOptions& opts, SelectReport* report) {
    std::set<std::string> ids;
    for (const auto& r : m.rows) ids.insert(r.id);
    decisions.check_ids(ids, m.path);
    if (opts.min_score && !scores) {
        throw ConfigError("--min-score needs --scores (the scores.json written by `ipa-curate score`)");
    }
    std::map<std::string, double> score_of;
    if (scores) {
        for (const auto& s : *scores) score_of[s.id] = s.score;
    }
    SelectReport rep;
    Manifest out;
    out.path = m.path;
    out.columns = m.columns;
    for (const auto& row : m.rows) {
        ++rep.candidates;
        const auto d = decisions.latest(row.id);
        if (!d) {
            ++rep.undecided;
            continue;
        }
        if (d->decision == Decision::bad) ++rep.bad;
        if (d->decision == Decision::skip) ++rep.skip;
        if (d->decision != Decision::good) continue;
        ++rep.good;
        if (opts.min_score) {
            const auto it = score_of.find(row.id);
            if (it == score_of.end()) {
                ++rep.without_score;
                spdlog::warn("select: '{}' is marked good but has no score; left out because --min-score is set",
                             row.id);
                continue;
            }
            if (!(it->second >= *opts.min_score)) {
                ++rep.below_min_score;
                continue;
            }
        }
        out.rows.push_back(row);
    }
    rep.selected = static_cast<int64_t>(out.rows.size());
    if (report) *report = rep;
    return out;
}

SelectReport select_training(const fs::path& manifest, const fs::path& decisions,
                             const std::optional<fs::path>& scores_json, const SelectOptions& opts,
                             const fs::path& out) {
    const Manifest m = read_manifest(manifest);
    const DecisionLog log = DecisionLog::read(decisions);
    std::vector<CandidateScore> scores;
    if (scores_json) scores = read_scores(*scores_json);
    SelectReport rep;
    Manifest selected = select_rows(m, log, scores_json ? &scores : nullptr, opts, &rep);
    selected.path = out;
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    write_manifest(out, selected);
    rep.out = out;
    if (rep.selected == 0) spdlog::warn("select: no candidate selected; '{}' has only the header", out.string());
    return rep;
}

std::string format_select_report(const SelectReport& r) {
    std::string s = fmt::format("candidates {}: good {}, bad {}, skip {}, undecided {}\n", r.candidates, r.good, r.bad,
                                r.skip, r.undecided);
    if (r.below_min_score || r.without_score) {
        s += fmt::format("left out: {} good below --min-score, {} good without a score\n", r.below_min_score,
                         r.without_score);
    }
    const double pct = r.candidates ? 100.0 * static_cast<double>(r.selected) / static_cast<double>(r.candidates) : 0;
    s += fmt::format("selected {} ({:.2f}% of candidates)", r.selected, pct);
    if (!r.out.empty()) s += fmt::format(" -> {}", r.out.string());
    return s + "\n";
}

}  // namespace ipa::curate::review
