#include "ipa/core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

namespace ipa {
namespace {

double steady_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    auto s = static_cast<int64_t>(seconds + 0.5);
    const int64_t h = s / 3600;
    s %= 3600;
    if (h > 0) return fmt::format("{:02d}:{:02d}:{:02d}", h, s / 60, s % 60);
    return fmt::format("{:02d}:{:02d}", s / 60, s % 60);
}

Progress::Progress(std::string label, int64_t total, ProgressOptions options)
    : Progress(std::move(label), total, options, std::cerr, steady_seconds) {
    if (options_.mode == ProgressOptions::Mode::automatic) tty_ = ::isatty(STDERR_FILENO) != 0;
}

Progress::Progress(std::string label, int64_t total, ProgressOptions options, std::ostream& out, Clock clock)
    : label_(std::move(label)), total_(total), options_(std::move(options)), out_(&out), clock_(std::move(clock)) {
    tty_ = options_.mode == ProgressOptions::Mode::bar;
    start_ = clock_();
}

Progress::~Progress() {
    try {
        finish();
    } catch (...) {
    }
}

std::string Progress::render() const {
    const double elapsed = clock_() - start_;
    const double rate = elapsed > 0 ? static_cast<double>(count_) / elapsed : 0.0;
    std::string rate_text = rate >= 1.0 || rate == 0.0 ? fmt::format("{:.2f} {}/s", rate, options_.unit)
                                                       : fmt::format("{:.2f} s/{}", 1.0 / rate, options_.unit);
    std::string line;
    if (total_ > 0) {
        const double frac = std::min(1.0, static_cast<double>(count_) / total_);
        const int filled = static_cast<int>(frac * options_.bar_width);
        const double eta = rate > 0 ? (total_ - count_) / rate : -1.0;
        line = fmt::format("{} {:3.0f}%|{}{}| {}/{} [{}<{}, {}]", label_, frac * 100.0, std::string(filled, '#'),
                           std::string(options_.bar_width - filled, ' '), count_, total_, format_duration(elapsed),
                           format_duration(eta), rate_text);
    } else {
        line = fmt::format("{} {} [{}, {}]", label_, count_, format_duration(elapsed), rate_text);
    }
    if (!postfix_.empty()) line += " " + postfix_;
    return line;
}

void Progress::emit(bool final) {
    if (options_.mode == ProgressOptions::Mode::silent) return;
    if (tty_) {
        *out_ << '\r' << render() << "\x1b[K";
        if (final) *out_ << '\n';
        out_->flush();
        return;
    }
    *out_ << render() << '\n';
    out_->flush();
}

void Progress::advance(int64_t n, const std::string& postfix) {
    count_ += n;
    if (!postfix.empty()) postfix_ = postfix;
    const double now = clock_();
    const double interval = tty_ ? 0.1 : options_.interval_s;
    const bool done = total_ > 0 && count_ >= total_;
    if (done) return finish();
    if (now - last_emit_ >= interval) {
        last_emit_ = now;
        emit(false);
    }
}

void Progress::finish() {
    if (finished_) return;
    finished_ = true;
    emit(true);
}

}  // namespace ipa
