#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

namespace ipa {

struct ProgressOptions {
    /// Redraw a bar in place (TTY) or print plain periodic lines. Default: detect stderr.
    enum class Mode { automatic, bar, lines, silent } mode = Mode::automatic;
    /// Plain-line mode prints at most every `interval_s` seconds (and at the end).
    double interval_s = 10.0;
    std::string unit = "it";
    int bar_width = 30;
};

/// A progress display for long work: `label 45%|######    | 45/100 [00:12<00:15, 3.61 it/s] extra`.
/// On a TTY it redraws one line; otherwise it writes a line every `interval_s` seconds.
/// Not thread-safe; one owner updates it.
class Progress {
public:
    using Clock = std::function<double()>;  // seconds, monotonic

    Progress(std::string label, int64_t total, ProgressOptions options = {});
    /// For tests: write to `out` with an injected clock.
    Progress(std::string label, int64_t total, ProgressOptions options, std::ostream& out, Clock clock);
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    /// Advance by `n`; `postfix` (e.g. "loss=0.41") is shown after the rate.
    void advance(int64_t n = 1, const std::string& postfix = {});
    /// Final line (idempotent; the destructor calls it).
    void finish();

    int64_t count() const { return count_; }
    /// The line as it would be drawn now.
    std::string render() const;

private:
    void emit(bool final);

    std::string label_;
    int64_t total_;
    ProgressOptions options_;
    std::ostream* out_;
    Clock clock_;
    bool tty_ = false;
    bool finished_ = false;
    int64_t count_ = 0;
    double start_ = 0.0;
    double last_emit_ = -1e300;
    std::string postfix_;
};

/// "01:02:03" / "02:03"; "?" for negative or non-finite values.
std::string format_duration(double seconds);

}  // namespace ipa
