#include "ipa/curate/review/review_loop.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <istream>
#include <map>
#include <ostream>
#include <set>

#include "ipa/core/error.h"
#include "ipa/curate/review/ranking.h"

namespace ipa::curate::review {
namespace fs = std::filesystem;

// ---- key sources -------------------------------------------------------------------------

std::optional<char> StreamKeySource::key() {
    pending_.reset();
    std::string l;
    while (std::getline(in_, l)) {
        const auto b = l.find_first_not_of(" \t\r");
        if (b == std::string::npos) continue;
        const auto rest = l.find_first_not_of(" \t\r", b + 1);
        if (rest != std::string::npos) {
            std::string r = l.substr(rest);
            while (!r.empty() && (r.back() == '\r' || r.back() == ' ')) r.pop_back();
            pending_ = r;
        }
        return l[b];
    }
    return std::nullopt;
}

std::optional<std::string> StreamKeySource::line() {
    if (pending_) {
        auto r = std::move(*pending_);
        pending_.reset();
        return r;
    }
    std::string l;
    if (!std::getline(in_, l)) return std::nullopt;
    if (!l.empty() && l.back() == '\r') l.pop_back();
    return l;
}

namespace {

// Terminal state shared with the signal handlers (only async-signal-safe calls there).
struct termios g_saved_termios {};
volatile sig_atomic_t g_raw_active = 0;
int g_tty_fd = -1;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
struct sigaction g_old_actions[4];

void restore_and_reraise(int sig) {
    if (g_raw_active) ::tcsetattr(g_tty_fd, TCSANOW, &g_saved_termios);
    g_raw_active = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        if (kSignals[i] == sig) ::sigaction(sig, &g_old_actions[i], nullptr);
    }
    ::raise(sig);
}

void set_raw(int fd, bool raw) {
    struct termios t = g_saved_termios;
    if (raw) {
        t.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
    }
    ::tcsetattr(fd, TCSANOW, &t);
}

}  // namespace

TerminalKeySource::TerminalKeySource(int fd) : fd_(fd) {
    if (!::isatty(fd) || ::tcgetattr(fd, &g_saved_termios) != 0) {
        throw DataError(fmt::format("file descriptor {} is not a terminal; use line mode (pipe the keys)", fd));
    }
    g_tty_fd = fd;
    struct sigaction sa {};
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (std::size_t i = 0; i < 4; ++i) ::sigaction(kSignals[i], &sa, &g_old_actions[i]);
    set_raw(fd_, true);
    g_raw_active = 1;
}

TerminalKeySource::~TerminalKeySource() {
    set_raw(fd_, false);
    g_raw_active = 0;
    for (std::size_t i = 0; i < 4; ++i) ::sigaction(kSignals[i], &g_old_actions[i], nullptr);
}

std::optional<char> TerminalKeySource::key() {
    char c = 0;
    while (true) {
        const ssize_t n = ::read(fd_, &c, 1);
        if (n == 1) return c == 4 ? std::nullopt : std::optional<char>(c);  // Ctrl-D ends input
        if (n == 0 || errno != EINTR) return std::nullopt;
    }
}

std::optional<std::string> TerminalKeySource::line() {
    set_raw(fd_, false);
    std::string s;
    char c = 0;
    bool any = false;
    while (true) {
        const ssize_t n = ::read(fd_, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        any = true;
        if (c == '\n') break;
        s += c;
    }
    set_raw(fd_, true);
    if (!any) return std::nullopt;
    return s;
}

std::unique_ptr<KeySource> make_key_source(int fd, std::istream& fallback) {
    if (::isatty(fd)) return std::make_unique<TerminalKeySource>(fd);
    return std::make_unique<StreamKeySource>(fallback);
}

// ---- the loop ----------------------------------------------------------------------------

namespace {

constexpr const char* kHelp = "keys: g good, b bad, s skip, n note, u undo, q quit, ? help";

void show(std::ostream& out, const RankedCandidate& c, std::size_t pos, std::size_t total, const ReviewOptions& opts,
          const std::string& note) {
    const auto& row = *c.row;
    out << fmt::format("\n[{}/{}] {}", pos, total, row.id);
    if (c.score) {
        out << fmt::format("  score {}  {}", format_number(c.score->score), c.score->pass ? "PASS" : "FAIL");
        if (!c.score->group.empty()) out << "  group " << c.score->group;
    } else {
        out << "  (no score)";
    }
    out << "\n";
    if (opts.sheets_dir) {
        const fs::path sheet = *opts.sheets_dir / sheet_filename(row.id);
        out << "  sheet: " << sheet.string() << (fs::exists(sheet) ? "" : "  (missing)") << "\n";
    }
    if (!row.video.empty()) out << "  video: " << row.video.string() << "\n";
    if (c.score) {
        std::string stats;
        for (const auto& [k, v] : main_stats(*c.score, 8)) stats += fmt::format(" {}={}", k, format_number(v));
        if (!stats.empty()) out << "  stats:" << stats << "\n";
    }
    if (!row.prompt.empty()) out << "  prompt: " << row.prompt << "\n";
    if (!note.empty()) out << "  note (for the next decision): " << note << "\n";
}

}  // namespace

ReviewSummary run_review(const Manifest& m, const std::vector<CandidateScore>& scores, DecisionLog& log,
                         KeySource& keys, std::ostream& out, const ReviewOptions& opts) {
    const auto ranked = rank_candidates(m, scores);
    std::set<std::string> ids;
    for (const auto& r : m.rows) ids.insert(r.id);
    log.check_ids(ids, m.path);

    std::map<std::string, const RankedCandidate*> by_id;
    std::vector<const RankedCandidate*> queue;
    for (const auto& c : ranked) {
        by_id[c.row->id] = &c;
        if (!log.latest(c.row->id)) queue.push_back(&c);
    }
    ReviewSummary sum;
    sum.candidates = static_cast<int64_t>(ranked.size());
    sum.undecided_at_start = static_cast<int64_t>(queue.size());
    const std::size_t decided_before = ranked.size() - queue.size();
    out << fmt::format("{} candidates, {} decided already, {} to review; decisions go to {}\n{}\n", ranked.size(),
                       decided_before, queue.size(), log.path().string(), kHelp);

    std::string note, shown_id;
    std::size_t i = 0;
    while (i < queue.size()) {
        const RankedCandidate& c = *queue[i];
        if (log.latest(c.row->id)) {  // decided meanwhile
            ++i;
            continue;
        }
        if (shown_id != c.row->id) {  // a new candidate: the full block; else just the prompt again
            std::size_t undecided = 0;
            for (const auto& r : ranked) undecided += log.latest(r.row->id) ? 0 : 1;
            show(out, c, ranked.size() - undecided + 1, ranked.size(), opts, note);
            shown_id = c.row->id;
            ++sum.shown;
        }
        out << "  [g]ood [b]ad [s]kip [n]ote [u]ndo [q]uit > " << std::flush;
        const auto k = keys.key();
        if (!k) {
            out << "\n(end of input)\n";
            sum.quit = true;
            break;
        }
        const char key = static_cast<char>(std::tolower(static_cast<unsigned char>(*k)));
        out << *k << "\n";  // raw keys are not echoed by the terminal; piped ones are not echoed at all
        if (key == 'g' || key == 'b' || key == 's') {
            const Decision d = key == 'g' ? Decision::good : key == 'b' ? Decision::bad : Decision::skip;
            log.append(c.row->id, d, note, opts.reviewer);
            ++(d == Decision::good ? sum.good : d == Decision::bad ? sum.bad : sum.skip);
            out << fmt::format("  -> {} {}\n", c.row->id, to_string(d));
            note.clear();
            ++i;
        } else if (key == 'n') {
            out << "  note: " << std::flush;
            const auto text = keys.line();
            if (!text) {
                sum.quit = true;
                break;
            }
            note = *text;
            ++sum.notes;
            if (!keys.raw()) out << note << "\n";
            out << "  note set for the next decision of " << c.row->id << "\n";
        } else if (key == 'u') {
            const auto target = log.last_effective_id();
            if (!target) {
                out << "  nothing to undo\n";
                continue;
            }
            const auto was = log.latest(*target);
            log.append(*target, Decision::undo, {}, opts.reviewer);
            ++sum.undone;
            const auto now = log.latest(*target);
            out << fmt::format("  undo: {} was {}, now {}\n", *target, to_string(was->decision),
                               now ? std::string(to_string(now->decision)) : "undecided");
            shown_id.clear();
            if (!now) {  // show it again next
                const auto it = by_id.find(*target);
                if (it != by_id.end()) {
                    queue.erase(std::remove(queue.begin() + static_cast<std::ptrdiff_t>(i), queue.end(), it->second),
                                queue.end());
                    queue.insert(queue.begin() + static_cast<std::ptrdiff_t>(i), it->second);
                }
            }
        } else if (key == 'q') {
            sum.quit = true;
            break;
        } else {
            if (key != '?' && key != 'h') out << fmt::format("  unknown key '{}'\n", *k);
            out << "  " << kHelp << "\n";
        }
    }
    for (const auto& r : ranked) sum.remaining += log.latest(r.row->id) ? 0 : 1;
    if (!sum.quit) out << "\nall candidates decided\n";
    return sum;
}

DecisionRecord mark_candidate(const fs::path& manifest, const fs::path& decisions, const std::string& id,
                              Decision decision, const std::string& note, const std::string& reviewer) {
    const Manifest m = read_manifest(manifest);
    bool known = false;
    std::vector<std::string> similar;
    for (const auto& r : m.rows) {
        if (r.id == id) known = true;
        if (similar.size() < 3 && !id.empty() &&
            r.id.find(id.substr(0, std::max<std::size_t>(1, id.size() / 2))) == 0) {
            similar.push_back(r.id);
        }
    }
    if (!known) {
        throw DataError(fmt::format(
            "mark: id '{}' is not in manifest '{}' ({} candidates){}; nothing written to '{}'", id, manifest.string(),
            m.rows.size(), similar.empty() ? std::string() : fmt::format("; similar: {}", fmt::join(similar, ", ")),
            decisions.string()));
    }
    DecisionLog log = DecisionLog::open(decisions);
    return log.append(id, decision, note, reviewer);
}

std::string format_review_summary(const ReviewSummary& s, const fs::path& decisions) {
    return fmt::format(
        "this session: {} good, {} bad, {} skip, {} undo, {} note(s); {} of {} candidates still undecided{}\n"
        "decisions: {}\n",
        s.good, s.bad, s.skip, s.undone, s.notes, s.remaining, s.candidates,
        s.remaining && s.quit ? " (run the same command again to resume)" : "", decisions.string());
}

}  // namespace ipa::curate::review
