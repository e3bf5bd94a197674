#include "ipa/curate/pairs.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "ipa/core/error.h"

namespace ipa::curate {

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

}  // namespace

PairStats pair_statistics(const std::vector<CandidateScore>& scores, const ScoreConfig& cfg,
                          const PairStatsOptions& opts) {
    if (opts.window < 1) throw ConfigError("pairs.window: must be >= 1, got " + std::to_string(opts.window));
    std::map<std::string, std::vector<const CandidateScore*>> groups;
    std::set<std::string> ids;
    for (const auto& s : scores) {
        if (!ids.insert(s.id).second) throw DataError("pair statistics: duplicate candidate id '" + s.id + "'");
        groups[s.group.empty() ? "\x01" + s.id : s.group].push_back(&s);
    }
    PairStats st;
    st.candidates = static_cast<int64_t>(scores.size());
    st.groups = static_cast<int64_t>(groups.size());
    for (const auto& [name, members] : groups) {
        for (size_t i = 0; i < members.size(); ++i)
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
                    if (qa == Quality::Good && qb == Quality::Good)
                        ++st.both_good;
                    else if (qa == Quality::Bad && qb == Quality::Bad)
                        ++st.both_bad;
                    else if ((qa == Quality::Good && qb == Quality::Bad) || (qa == Quality::Bad && qb == Quality::Good))
                        ++st.strict, any_strict = true;
                    else
                        ++st.mixed;
                }
                if (any_strict) ++st.strict_pairs;
            }
    }
    return st;
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
