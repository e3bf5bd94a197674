#pragma once

// Interactive terminal review: walk the undecided candidates best score first, one key per
// decision, every decision appended to the decisions log as it is made (resumable).
//
// Keys: g good, b bad, s skip, n note (then a line of text; attached to the next decision),
// u undo (appends an `undo` line for the most recent decision still in effect), q quit,
// ? help. On a TTY keys are read raw (no Enter); otherwise one command per line, so input
// can be piped: "g\nn\nblurry thumb\nb\nq\n" (also "n blurry thumb" on one line).

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipa/curate/manifest.h"
#include "ipa/curate/review/decisions.h"
#include "ipa/curate/score.h"

namespace ipa::curate::review {

/// Where review keys come from.
class KeySource {
public:
    virtual ~KeySource() = default;
    /// The next command key; nullopt at end of input.
    virtual std::optional<char> key() = 0;
    /// A line of text (for a note); nullopt at end of input.
    virtual std::optional<std::string> line() = 0;
    /// True when keys are echoed by nobody (raw terminal): the loop echoes them itself.
    virtual bool raw() const { return false; }
};

/// Line mode: each non-blank line is one command (its first non-space character); for `n`
/// the rest of the line, if any, is the note, else the next line.
class StreamKeySource : public KeySource {
public:
    explicit StreamKeySource(std::istream& in) : in_(in) {}
    std::optional<char> key() override;
    std::optional<std::string> line() override;

private:
    std::istream& in_;
    std::optional<std::string> pending_;
};

/// Raw mode on a terminal: canonical mode and echo off while the object lives; the saved
/// settings are restored by the destructor and by SIGINT/SIGTERM/SIGHUP/SIGQUIT handlers
/// (which then re-raise the signal). Non-copyable.
class TerminalKeySource : public KeySource {
public:
    /// ipa::DataError if `fd` is not a terminal.
    explicit TerminalKeySource(int fd);
    ~TerminalKeySource() override;
    TerminalKeySource(const TerminalKeySource&) = delete;
    TerminalKeySource& operator=(const TerminalKeySource&) = delete;
    std::optional<char> key() override;
    /// Reads a line in canonical mode (echo on), then returns to raw mode.
    std::optional<std::string> line() override;
    bool raw() const override { return true; }

private:
    int fd_;
};

/// Raw terminal keys when `fd` is a TTY, else line mode on `fallback` (normally std::cin).
std::unique_ptr<KeySource> make_key_source(int fd, std::istream& fallback);

/// Options of run_review().
struct ReviewOptions {
    std::optional<std::filesystem::path> sheets_dir;  ///< printed per candidate (sheet_filename(id))
    std::string reviewer;                             ///< written with every decision
};

/// What a review session did.
struct ReviewSummary {
    int64_t candidates = 0;                                      ///< rows in the manifest
    int64_t undecided_at_start = 0;                              ///< what this session had to walk
    int64_t shown = 0;                                           ///< candidate prompts shown
    int64_t good = 0, bad = 0, skip = 0, undone = 0, notes = 0;  ///< keys acted on this session
    int64_t remaining = 0;                                       ///< undecided at the end
    bool quit = false;                                           ///< left with q or end of input before the end
};

/// Runs the loop; prompts and reports go to `out`. Decisions outside the manifest or scores
/// of another manifest are ipa::DataErrors (before anything is shown).
ReviewSummary run_review(const Manifest& m, const std::vector<CandidateScore>& scores, DecisionLog& log,
                         KeySource& keys, std::ostream& out, const ReviewOptions& opts = {});

/// `ipa-curate mark`: appends one decision for `id` to the log at `decisions` (created when
/// missing). An id not in the manifest is an ipa::DataError naming both files (with the
/// closest ids as a hint); so is `undo` for an undecided id.
DecisionRecord mark_candidate(const std::filesystem::path& manifest, const std::filesystem::path& decisions,
                              const std::string& id, Decision decision, const std::string& note,
                              const std::string& reviewer);

/// One-paragraph summary for the end of a session.
std::string format_review_summary(const ReviewSummary& s, const std::filesystem::path& decisions);

}  // namespace ipa::curate::review
