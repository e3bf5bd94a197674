#include "ipa/curate/pairs.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "ipa/core/error.h"

namespace ipa::curate {
namespace fs = std::filesystem;

namespace {

enum class Quality { Good, Bad, Mixed };

Quality window_quality(const CandidateScore& c, int64_t begin, int64_t end, double threshold) {
    int64_t pass = 0;
    for (int64_t t = begin; t < end; ++t) pass += c.frames[t].score >= threshold ? 1 : 0;
    if (pass == end - begin) return Quality::Good;
    if (pass == 0) return Quality::Bad;
    return Quality::Mixed;
}

std::string percent(int64_t part, int64_t whole) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f%%", whole > 0 ? 100.0 * double(part) / double(whole) : 0.0);
    return buf;
}

/// Walks every window of every candidate pair of every group (see pairs.h), calling
/// fn(a, b, begin, end, quality of a, quality of b) per window and pair_done(any strict) per pair.
template <class WindowFn, class PairFn>
void for_each_window(const std::vector<CandidateScore>& scores, const ScoreConfig& cfg, const PairStatsOptions& opts,
                     PairStats& st, WindowFn&& fn, PairFn&& pair_done) {
    if (opts.window < 1) throw ConfigError("pairs.window: must be >= 1, got " + std::to_string(opts.window));
    std::map<std::string, std::vector<const CandidateScore*>> groups;
    std::set<std::string> ids;
    for (const auto& s : scores) {
        if (!ids.insert(s.id).second) throw DataError("pair statistics: duplicate candidate id '" + s.id + "'");
        groups[s.group.empty() ? "\x01" + s.id : s.group].push_back(&s);
    }
    st.candidates = static_cast<int64_t>(scores.size());
    st.groups = static_cast<int64_t>(groups.size());
    for (const auto& [name, members] : groups) {
        for (size_t i = 0; i < members.size(); ++i) {
            for (size_t j = i + 1; j < members.size(); ++j) {
                const CandidateScore& a = *members[i];
                const CandidateScore& b = *members[j];
                ++st.pairs;
                const int64_t T = static_cast<int64_t>(std::min(a.frames.size(), b.frames.size()));
                if (T == 0) continue;
                const int64_t n_windows = std::max<int64_t>(1, T / opts.window);
                const int64_t len = std::min(opts.window, T);
                bool any_strict = false;
                for (int64_t w = 0; w < n_windows; ++w) {
                    const Quality qa = window_quality(a, w * len, (w + 1) * len, cfg.threshold);
                    const Quality qb = window_quality(b, w * len, (w + 1) * len, cfg.threshold);
                    ++st.windows;
                    any_strict |= fn(a, b, w * len, (w + 1) * len, qa, qb);
                }
                pair_done(any_strict);
            }
        }
    }
}

}  // namespace

PairStats pair_statistics(const std::vector<CandidateScore>& scores, const ScoreConfig& cfg,
                          const PairStatsOptions& opts) {
    PairStats st;
    for_each_window(
        scores, cfg, opts, st,
        [&](const CandidateScore&, const CandidateScore&, int64_t, int64_t, Quality qa, Quality qb) {
            if (qa == Quality::Good && qb == Quality::Good) {
                ++st.both_good;
            } else if (qa == Quality::Bad && qb == Quality::Bad) {
                ++st.both_bad;
            } else if ((qa == Quality::Good && qb == Quality::Bad) || (qa == Quality::Bad && qb == Quality::Good)) {
                ++st.strict;
                return true;
            } else {
                ++st.mixed;
            }
            return false;
        },
        [&](bool any_strict) { st.strict_pairs += any_strict ? 1 : 0; });
    return st;
}

std::vector<DpoPair> strict_pairs(const std::vector<CandidateScore>& scores, const ScoreConfig& cfg,
                                  const PairStatsOptions& opts) {
    std::vector<DpoPair> out;
    PairStats st;
    for_each_window(
        scores, cfg, opts, st,
        [&](const CandidateScore& a, const CandidateScore& b, int64_t begin, int64_t end, Quality qa, Quality qb) {
            const bool a_wins = qa == Quality::Good && qb == Quality::Bad;
            if (!a_wins && !(qa == Quality::Bad && qb == Quality::Good)) return false;
            out.push_back({a.group, a_wins ? a.id : b.id, a_wins ? b.id : a.id, begin, end - begin});
            return true;
        },
        [](bool) {});
    return out;
}

namespace {

/// `p` relative to `dir` when it lies below it, else absolute (as write_manifest writes paths).
std::string path_for(const fs::path& p, const fs::path& dir) {
    if (p.empty()) return {};
    const auto rel = p.lexically_normal().lexically_relative(fs::absolute(dir).lexically_normal());
    if (!rel.empty() && *rel.begin() != "..") return rel.generic_string();
    return fs::absolute(p).lexically_normal().string();
}

}  // namespace

Manifest pair_manifest(const std::vector<DpoPair>& pairs, const Manifest& candidates, const fs::path& csv) {
    std::map<std::string, const ManifestRow*> by_id;
    for (const auto& r : candidates.rows) by_id[r.id] = &r;
    auto row_of = [&](const std::string& id) -> const ManifestRow& {
        const auto it = by_id.find(id);
        if (it == by_id.end()) {
            throw DataError(fmt::format("pairs: candidate '{}' of the scores is not in the manifest '{}'", id,
                                        candidates.path.string()));
        }
        return *it->second;
    };
    Manifest m;
    m.path = csv;
    m.columns = standard_columns();
    for (const char* c : {"group", "winner", "loser", "start_frame", "frames", "loser_video", "loser_keypoints"})
        m.columns.push_back(c);
    for (const auto& p : pairs) {
        const auto& w = row_of(p.winner);
        const auto& l = row_of(p.loser);
        if (w.vace_video != l.vace_video || w.vace_reference_image != l.vace_reference_image || w.prompt != l.prompt) {
            throw DataError(fmt::format(
                "pairs: '{}' and '{}' share group '{}' but not their pose video, reference or prompt; a DPO pair "
                "needs the same conditioning",
                p.winner, p.loser, p.group));
        }
        ManifestRow r = w;
        r.id = fmt::format("{}~{}@{}", p.winner, p.loser, p.start);
        r.extra = {{"group", p.group},
                   {"winner", p.winner},
                   {"loser", p.loser},
                   {"start_frame", std::to_string(p.start)},
                   {"frames", std::to_string(p.frames)},
                   {"loser_video", path_for(l.video, csv.parent_path())},
                   {"loser_keypoints", path_for(l.keypoints, csv.parent_path())}};
        m.rows.push_back(std::move(r));
    }
    return m;
}

std::string format_pair_stats(const PairStats& s) {
    std::ostringstream o;
    o << "candidates: " << s.candidates << " in " << s.groups << " groups, " << s.pairs << " candidate pairs, "
      << s.windows << " pair windows\n"
      << "  both good (case 1): " << s.both_good << " (" << percent(s.both_good, s.windows) << ")\n"
      << "  both bad  (case 2): " << s.both_bad << " (" << percent(s.both_bad, s.windows) << ")\n"
      << "  mixed     (case 3): " << s.mixed << " (" << percent(s.mixed, s.windows) << ")\n"
      << "  strict    (case 4): " << s.strict << " (" << percent(s.strict, s.windows) << ")\n"
      << "DPO pairs that would exist: " << s.strict << " (strict windows, from " << s.strict_pairs << " of " << s.pairs
      << " candidate pairs = " << percent(s.strict_pairs, s.pairs) << ")\n";
    return o.str();
}

}  // namespace ipa::curate
