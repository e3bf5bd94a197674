#include "ipa/curate/review/ranking.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "ipa/core/error.h"
#include "ipa/core/file_names.h"

namespace ipa::curate::review {

std::vector<RankedCandidate> rank_candidates(const Manifest& m, const std::vector<CandidateScore>& scores,
                                             const std::filesystem::path& scores_source) {
    std::map<std::string, const ManifestRow*> rows;
    for (const auto& r : m.rows) rows.emplace(r.id, &r);
    std::map<std::string, const CandidateScore*> by_id;
    for (const auto& s : scores) {
        if (!rows.count(s.id)) {
            throw DataError(
                fmt::format("scores '{}' have candidate '{}', which is not in manifest '{}' (scores of "
                            "another manifest? re-run `ipa-curate score` on this one)",
                            scores_source.string(), s.id, m.path.string()));
        }
        if (!by_id.emplace(s.id, &s).second) {
            throw DataError(fmt::format("scores '{}' have candidate '{}' twice", scores_source.string(), s.id));
        }
    }
    std::vector<RankedCandidate> scored, unscored;
    for (const auto& r : m.rows) {
        const auto it = by_id.find(r.id);
        (it == by_id.end() ? unscored : scored).push_back({&r, it == by_id.end() ? nullptr : it->second});
    }
    auto key = [](double v) { return std::isnan(v) ? -INFINITY : v; };  // NaN scores sort last
    std::stable_sort(scored.begin(), scored.end(), [&](const RankedCandidate& a, const RankedCandidate& b) {
        const double sa = key(a.score->score), sb = key(b.score->score);
        if (sa != sb) return sa > sb;
        return a.row->id < b.row->id;
    });
    scored.insert(scored.end(), unscored.begin(), unscored.end());
    return scored;
}

std::vector<std::pair<std::string, double>> main_stats(const CandidateScore& s, std::size_t max) {
    static const char* const kPreferred[] = {
        "confidence_mean", "finger_confidence", "visible_fraction", "sharpness_ratio", "jitter", "accel"};
    std::vector<std::pair<std::string, double>> out;
    std::set<std::string> taken;
    for (const char* name : kPreferred) {
        const auto it = s.stats.find(name);
        if (it != s.stats.end() && out.size() < max) {
            out.emplace_back(it->first, it->second);
            taken.insert(it->first);
        }
    }
    for (const bool sub_scores : {false, true}) {  // raw signals before the s_<signal> sub-scores
        for (const auto& [k, v] : s.stats) {
            if (out.size() >= max) break;
            if (!taken.count(k) && (k.rfind("s_", 0) == 0) == sub_scores) out.emplace_back(k, v);
        }
    }
    return out;
}

std::string sheet_filename(const std::string& id) { return file_name_for_id(id, ".png"); }

std::string format_number(double v) {
    if (std::isnan(v)) return "n/a";
    return fmt::format("{:.3g}", v);
}

}  // namespace ipa::curate::review
