#include "ipa/curate/review/decisions.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"

namespace ipa::curate::review {
namespace fs = std::filesystem;

std::string_view to_string(Decision d) {
    switch (d) {
        case Decision::good:
            return "good";
        case Decision::bad:
            return "bad";
        case Decision::skip:
            return "skip";
        case Decision::undo:
            return "undo";
    }
    return "?";
}

Decision parse_decision(std::string_view word, const std::string& where) {
    if (word == "good") return Decision::good;
    if (word == "bad") return Decision::bad;
    if (word == "skip") return Decision::skip;
    if (word == "undo") return Decision::undo;
    throw DataError(fmt::format("{}: unknown decision '{}' (expected good, bad, skip or undo)", where, word));
}

namespace {

std::string sanitize(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    }
    return out;
}

std::string quote_field(const std::string& s) {
    const bool needs =
        s.find_first_of(",\"") != std::string::npos || (!s.empty() && (s.front() == ' ' || s.back() == ' '));
    if (!needs) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::string errno_text() { return std::strerror(errno); }

/// Holds an flock on a descriptor for a scope.
class FileLock {
public:
    FileLock(int fd, int op, const fs::path& path) : fd_(fd) {
        while (::flock(fd_, op) != 0) {
            if (errno != EINTR) throw DataError(fmt::format("cannot lock '{}': {}", path.string(), errno_text()));
        }
    }
    ~FileLock() { ::flock(fd_, LOCK_UN); }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

private:
    int fd_;
};

std::string read_all(int fd, const fs::path& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw DataError(fmt::format("cannot stat '{}': {}", path.string(), errno_text()));
    std::string data(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < data.size()) {
        const ssize_t n = ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw DataError(fmt::format("cannot read '{}': {}", path.string(), errno_text()));
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    data.resize(got);
    return data;
}

/// Writes all of `text` at the end of an O_APPEND descriptor in one write(2); on a short
/// write the file is truncated back to `size_before` and a DataError is thrown.
void append_line(int fd, const std::string& text, off_t size_before, const fs::path& path) {
    ssize_t n;
    do {
        n = ::write(fd, text.data(), text.size());
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(text.size())) {
        const std::string why = n < 0 ? errno_text() : fmt::format("short write ({} of {} bytes)", n, text.size());
        if (::ftruncate(fd, size_before) != 0) {
            spdlog::error("decisions log '{}': could not remove a partial line: {}", path.string(), errno_text());
        }
        throw DataError(fmt::format("cannot append to decisions log '{}': {} (disk full?)", path.string(), why));
    }
    if (::fsync(fd) != 0) throw DataError(fmt::format("fsync '{}' failed: {}", path.string(), errno_text()));
}

/// Cuts a torn last line (no trailing newline) off `data` (and off the file when `fd` >= 0).
int64_t repair_torn(std::string& data, int fd, const fs::path& path) {
    if (data.empty() || data.back() == '\n') return 0;
    const auto nl = data.rfind('\n');
    const std::size_t keep = nl == std::string::npos ? 0 : nl + 1;
    const std::string torn = data.substr(keep);
    const auto torn_bytes = static_cast<int64_t>(torn.size());
    if (fd >= 0) {
        spdlog::warn(
            "decisions log '{}': torn last line at byte {} ('{}', {} bytes, no newline: a crash while "
            "writing); it is not a decision and is truncated away; earlier lines are untouched",
            path.string(), keep, sanitize(torn), torn_bytes);
        if (::ftruncate(fd, static_cast<off_t>(keep)) != 0 || ::fsync(fd) != 0) {
            throw DataError(fmt::format("cannot truncate the torn last line of '{}': {}", path.string(), errno_text()));
        }
    } else {
        spdlog::warn(
            "decisions log '{}': torn last line at byte {} ('{}', {} bytes, no newline); ignored "
            "(it is repaired the next time the log is opened for writing)",
            path.string(), keep, sanitize(torn), torn_bytes);
    }
    data.resize(keep);
    return torn_bytes;
}

void create_with_header(const fs::path& path) {
    if (path.has_parent_path()) fs::create_directories(path.parent_path());
    fs::path temp = path;
    // Unique per process and per call: two threads of one process (serve's request threads,
    // or the tests' writers) must not share the temporary file.
    static std::atomic<unsigned> calls{0};
    temp += fmt::format(".new.{}.{}", ::getpid(), calls.fetch_add(1));
    {
        const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) throw DataError(fmt::format("cannot create decisions log '{}': {}", path.string(), errno_text()));
        const std::string header = std::string(kDecisionsHeader) + "\n";
        const bool ok =
            ::write(fd, header.data(), header.size()) == static_cast<ssize_t>(header.size()) && ::fsync(fd) == 0;
        ::close(fd);
        if (!ok) {
            ::unlink(temp.c_str());
            throw DataError(fmt::format("cannot write decisions log '{}': {}", path.string(), errno_text()));
        }
    }
    // link() publishes the complete file or fails if another process was first.
    const int rc = ::link(temp.c_str(), path.c_str());
    const int err = errno;
    ::unlink(temp.c_str());
    if (rc != 0 && err != EEXIST) {
        throw DataError(fmt::format("cannot create decisions log '{}': {}", path.string(), std::strerror(err)));
    }
}

}  // namespace

std::string format_decision_line(const DecisionRecord& r) {
    if (r.id.empty()) throw DataError("decision without an id");
    for (char c : r.id) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            throw DataError(fmt::format("id '{}' contains a control character; ids must be printable", sanitize(r.id)));
        }
    }
    return fmt::format("{},{},{},{},{}\n", quote_field(r.id), to_string(r.decision), quote_field(sanitize(r.note)),
                       quote_field(sanitize(r.reviewer)), quote_field(sanitize(r.time)));
}

std::vector<std::string> split_csv_line(std::string_view line, const std::string& where) {
    std::vector<std::string> fields;
    std::string cur;
    std::size_t i = 0;
    while (true) {
        cur.clear();
        if (i < line.size() && line[i] == '"') {
            ++i;
            while (true) {
                if (i >= line.size()) throw DataError(fmt::format("{}: unterminated quoted field", where));
                if (line[i] == '"') {
                    if (i + 1 < line.size() && line[i + 1] == '"') {
                        cur += '"';
                        i += 2;
                        continue;
                    }
                    ++i;
                    break;
                }
                cur += line[i++];
            }
            if (i < line.size() && line[i] != ',') {
                throw DataError(fmt::format("{}: text after a closing quote (column {})", where, i + 1));
            }
        } else {
            while (i < line.size() && line[i] != ',') cur += line[i++];
        }
        fields.push_back(cur);
        if (i >= line.size()) break;
        ++i;  // the comma
    }
    return fields;
}

std::string utc_timestamp() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

DecisionLog DecisionLog::open(const fs::path& path) {
    DecisionLog log;
    log.path_ = path;
    if (!fs::exists(path)) create_with_header(path);
    log.fd_ = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (log.fd_ < 0) throw DataError(fmt::format("cannot open decisions log '{}': {}", path.string(), errno_text()));
    log.load(true);
    return log;
}

DecisionLog DecisionLog::read(const fs::path& path) {
    DecisionLog log;
    log.path_ = path;
    if (!fs::exists(path)) {
        throw DataError(
            fmt::format("decisions log '{}' does not exist (it is created by `ipa-curate mark` or "
                        "`ipa-curate review`)",
                        path.string()));
    }
    log.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (log.fd_ < 0) throw DataError(fmt::format("cannot open decisions log '{}': {}", path.string(), errno_text()));
    log.load(false);
    ::close(log.fd_);
    log.fd_ = -1;
    return log;
}

DecisionLog::DecisionLog(DecisionLog&& o) noexcept { *this = std::move(o); }

DecisionLog& DecisionLog::operator=(DecisionLog&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        path_ = std::move(o.path_);
        fd_ = o.fd_;
        o.fd_ = -1;
        records_ = std::move(o.records_);
        stacks_ = std::move(o.stacks_);
        active_ = std::move(o.active_);
        torn_bytes_ = o.torn_bytes_;
        orphan_undos_ = o.orphan_undos_;
        next_line_ = o.next_line_;
    }
    return *this;
}

DecisionLog::~DecisionLog() {
    if (fd_ >= 0) ::close(fd_);
}

void DecisionLog::load(bool writable) {
    std::string data;
    {
        FileLock lock(fd_, writable ? LOCK_EX : LOCK_SH, path_);
        data = read_all(fd_, path_);
        torn_bytes_ = repair_torn(data, writable ? fd_ : -1, path_);
        if (writable && data.empty()) {  // created empty by someone else, or only a torn header
            const std::string header = std::string(kDecisionsHeader) + "\n";
            append_line(fd_, header, 0, path_);
            data = header;
        }
    }
    if (data.empty()) return;  // read-only view of an empty or header-torn file: no decisions
    std::size_t pos = 0;
    int64_t line_no = 0;
    while (pos < data.size()) {
        const auto nl = data.find('\n', pos);
        std::string_view line(data.data() + pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const std::string where = fmt::format("{}:{}", path_.string(), line_no);
        if (line_no == 1) {
            if (line != kDecisionsHeader) {
                throw DataError(fmt::format("{}: not a decisions log: header is '{}', expected '{}'", where,
                                            sanitize(line.substr(0, 80)), kDecisionsHeader));
            }
            continue;
        }
        if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line: no record
        auto f = split_csv_line(line, where);
        if (f.size() != 5) {
            throw DataError(fmt::format("{}: expected 5 fields ({}), got {}", where, kDecisionsHeader, f.size()));
        }
        if (f[0].empty()) throw DataError(fmt::format("{}: empty id", where));
        DecisionRecord r;
        r.id = std::move(f[0]);
        r.decision = parse_decision(f[1], where);
        r.note = std::move(f[2]);
        r.reviewer = std::move(f[3]);
        r.time = std::move(f[4]);
        r.line = line_no;
        apply(std::move(r), true);
    }
    next_line_ = line_no + 1;
}

void DecisionLog::apply(DecisionRecord r, bool from_file) {
    auto& stack = stacks_[r.id];
    if (r.decision == Decision::undo) {
        if (stack.empty()) {
            if (from_file) {
                ++orphan_undos_;
                spdlog::warn("{}:{}: undo for '{}' has no decision to retract; ignored", path_.string(), r.line, r.id);
            }
        } else {
            active_.erase(stack.back());
            stack.pop_back();
        }
        records_.push_back(std::move(r));
        return;
    }
    stack.push_back(records_.size());
    active_.insert(records_.size());
    records_.push_back(std::move(r));
}

const DecisionRecord& DecisionLog::append(const std::string& id, Decision decision, const std::string& note,
                                          const std::string& reviewer) {
    if (fd_ < 0) {
        throw DataError(fmt::format("decisions log '{}' was opened read-only; cannot append", path_.string()));
    }
    if (decision == Decision::undo && !latest(id)) {
        throw DataError(fmt::format("'{}' has no decision in '{}' to undo", id, path_.string()));
    }
    DecisionRecord r;
    r.id = id;
    r.decision = decision;
    r.note = note;
    r.reviewer = reviewer;
    r.time = utc_timestamp();
    const std::string text = format_decision_line(r);
    {
        FileLock lock(fd_, LOCK_EX, path_);
        struct stat st {};
        if (::fstat(fd_, &st) != 0) throw DataError(fmt::format("cannot stat '{}': {}", path_.string(), errno_text()));
        off_t size = st.st_size;
        char last = '\n';
        if (size > 0 && ::pread(fd_, &last, 1, size - 1) != 1) {
            throw DataError(fmt::format("cannot read '{}': {}", path_.string(), errno_text()));
        }
        if (size == 0 || last != '\n') {  // another writer crashed mid-line (or the file was emptied)
            std::string data = read_all(fd_, path_);
            repair_torn(data, fd_, path_);
            if (data.empty()) {
                append_line(fd_, std::string(kDecisionsHeader) + "\n", 0, path_);
                data = std::string(kDecisionsHeader) + "\n";
            }
            size = static_cast<off_t>(data.size());
        }
        append_line(fd_, text, size, path_);
    }
    r.line = next_line_++;
    apply(std::move(r), false);
    return records_.back();
}

std::optional<DecisionRecord> DecisionLog::latest(const std::string& id) const {
    const auto it = stacks_.find(id);
    if (it == stacks_.end() || it->second.empty()) return std::nullopt;
    return records_[it->second.back()];
}

std::map<std::string, DecisionRecord> DecisionLog::effective() const {
    std::map<std::string, DecisionRecord> out;
    for (const auto& [id, stack] : stacks_) {
        if (!stack.empty()) out.emplace(id, records_[stack.back()]);
    }
    return out;
}

std::optional<std::string> DecisionLog::last_effective_id() const {
    if (active_.empty()) return std::nullopt;
    return records_[*active_.rbegin()].id;
}

std::map<std::string, int64_t> DecisionLog::counts() const {
    std::map<std::string, int64_t> out{{"good", 0}, {"bad", 0}, {"skip", 0}};
    for (const auto& [id, stack] : stacks_) {
        if (!stack.empty()) ++out[std::string(to_string(records_[stack.back()].decision))];
    }
    return out;
}

void DecisionLog::check_ids(const std::set<std::string>& known, const fs::path& manifest) const {
    std::vector<std::string> bad;
    int64_t n = 0;
    for (const auto& r : records_) {
        if (known.count(r.id)) continue;
        if (++n <= 5) bad.push_back(fmt::format("'{}' (line {})", r.id, r.line));
    }
    if (n == 0) return;
    throw DataError(
        fmt::format("decisions log '{}' has {} decision(s) for ids not in manifest '{}': {}{}; "
                    "is this the log of another manifest?",
                    path_.string(), n, manifest.string(), fmt::join(bad, ", "), n > 5 ? ", ..." : ""));
}

}  // namespace ipa::curate::review
