#pragma once

// The human decisions log of a curation round: an append-only CSV
//
//     id,decision,note,reviewer,time
//     clip003_c1,good,clean fingers,anna,2025-01-31T10:02:11Z
//
// Every decision is one complete line written with a single write(2) on an O_APPEND
// descriptor (under an exclusive flock) and fsync'd, so a crash loses at most the
// decision being made and concurrent writers never interleave. Earlier lines are never
// rewritten: changing a decision appends a new line (the latest wins) and `undo` appends
// a line that retracts the id's latest decision.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace ipa::curate::review {

/// A reviewer's verdict. `undo` retracts the id's latest still-effective decision.
enum class Decision { good, bad, skip, undo };

/// "good" | "bad" | "skip" | "undo".
std::string_view to_string(Decision d);
/// Parses a decision word; ipa::DataError naming `where` (file:line or "command line")
/// and the accepted words otherwise.
Decision parse_decision(std::string_view word, const std::string& where);

/// One line of the log.
struct DecisionRecord {
    std::string id;
    Decision decision = Decision::skip;
    std::string note;
    std::string reviewer;
    std::string time;  ///< UTC, ISO 8601 ("2025-01-31T10:02:11Z")
    int64_t line = 0;  ///< 1-based line in the file (the header is line 1)
};

/// The header line every decisions log starts with (without the newline).
inline constexpr std::string_view kDecisionsHeader = "id,decision,note,reviewer,time";

/// Formats one record as a CSV line ending in '\n' (RFC 4180 quoting). Control characters
/// in note and reviewer become spaces; an empty id or one with control characters is an
/// ipa::DataError.
std::string format_decision_line(const DecisionRecord& r);

/// Splits one CSV line (no line break inside fields) into fields; ipa::DataError naming
/// `where` on an unterminated quote or text after a closing quote.
std::vector<std::string> split_csv_line(std::string_view line, const std::string& where);

/// Current UTC time as ISO 8601 with seconds.
std::string utc_timestamp();

/// An open decisions log: the records read from disk plus the ones appended through this
/// object, and the effective decision per id. Non-copyable (owns a descriptor when
/// writable).
class DecisionLog {
public:
    /// Opens for reading and appending; creates the file with its header when missing
    /// (atomically: a concurrent creator never sees a header-less file). A torn last line
    /// (no trailing newline: a crash mid-write) is reported and truncated away with a
    /// warning naming the file, offset and discarded text; no complete line is touched.
    static DecisionLog open(const std::filesystem::path& path);
    /// Reads only. A missing file is an ipa::DataError; a torn last line is reported
    /// (warning) and ignored, the file is left as it is.
    static DecisionLog read(const std::filesystem::path& path);

    DecisionLog(DecisionLog&& other) noexcept;
    DecisionLog& operator=(DecisionLog&& other) noexcept;
    DecisionLog(const DecisionLog&) = delete;
    DecisionLog& operator=(const DecisionLog&) = delete;
    ~DecisionLog();

    /// Appends one decision (time = now) and applies it. `undo` on an id without an
    /// effective decision is an ipa::DataError (nothing is written). Returns the record.
    const DecisionRecord& append(const std::string& id, Decision decision, const std::string& note = {},
                                 const std::string& reviewer = {});

    /// Every record in file order (including `undo` lines).
    const std::vector<DecisionRecord>& records() const { return records_; }
    /// The effective decision of `id` (never `undo`), or nullopt when undecided.
    std::optional<DecisionRecord> latest(const std::string& id) const;
    /// Effective decision per decided id.
    std::map<std::string, DecisionRecord> effective() const;
    /// The id of the most recent record that is still in effect (what an `undo` would
    /// act on next, across sessions), or nullopt.
    std::optional<std::string> last_effective_id() const;
    /// Effective counts: "good", "bad", "skip" (ids absent from the map are undecided).
    std::map<std::string, int64_t> counts() const;

    /// ipa::DataError if any record names an id outside `known` (the manifest's ids):
    /// names this file and line, the id and `manifest` (up to 5 such ids are listed).
    void check_ids(const std::set<std::string>& known, const std::filesystem::path& manifest) const;

    const std::filesystem::path& path() const { return path_; }
    /// Bytes of a torn last line found on open (0 if none).
    int64_t torn_bytes() const { return torn_bytes_; }
    /// `undo` lines in the file that had nothing to retract (reported when read).
    int64_t orphan_undos() const { return orphan_undos_; }

private:
    DecisionLog() = default;
    void load(bool writable);
    void apply(DecisionRecord r, bool from_file);

    std::filesystem::path path_;
    int fd_ = -1;
    std::vector<DecisionRecord> records_;
    std::map<std::string, std::vector<std::size_t>> stacks_;  // id -> effective record indices
    std::set<std::size_t> active_;                            // effective record indices
    int64_t torn_bytes_ = 0;
    int64_t orphan_undos_ = 0;
    int64_t next_line_ = 2;
};

}  // namespace ipa::curate::review
