// Batch runs over a manifest: failures recorded per row, a resumable progress file, rows
// on a few threads (batch.h).

#include "ipa/curate/batch.h"

#include <ATen/Parallel.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <opencv2/core/utility.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"

namespace ipa::curate {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "ipa-curate-progress";

std::string header_line(const std::string& verb) {
    return json{{"format", kFormat}, {"verb", verb}, {"version", 1}}.dump() + "\n";
}

void check_header(const json& j, const fs::path& path, const std::string& verb) {
    if (!j.is_object() || j.value("format", "") != kFormat)
        throw DataError(
            fmt::format("{}: not an ipa-curate progress file (first line lacks \"format\": \"{}\"); "
                        "hint: move it away or rerun with --restart",
                        path.string(), kFormat));
    if (j.value("verb", "") != verb)
        throw DataError(
            fmt::format("{}: a progress file of `{}`, not of `{}`; hint: use another output "
                        "directory or rerun with --restart",
                        path.string(), j.value("verb", "?"), verb));
}

/// Cuts a last line without its newline (a run killed mid-write) off the file and the text.
void cut_torn_tail(const fs::path& path, std::string& text) {
    const auto nl = text.rfind('\n');
    const std::size_t keep = nl == std::string::npos ? 0 : nl + 1;
    if (keep == text.size()) return;
    spdlog::warn("{}: cutting off a torn last line ({} bytes) left by an interrupted run", path.string(),
                 text.size() - keep);
    fs::resize_file(path, keep);
    text.resize(keep);
}

/// The latest entry per id of an existing progress file (empty when there is none).
std::map<std::string, json> load_progress(const fs::path& path, const std::string& verb) {
    std::map<std::string, json> out;
    if (!fs::exists(path)) return out;
    std::string text = read_file(path);
    cut_torn_tail(path, text);
    std::istringstream in(text);
    std::string line;
    for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
        json j;
        try {
            j = json::parse(line);
        } catch (const json::exception& e) {
            throw DataError(fmt::format("{}:{}: not a JSON line ({}); hint: rerun with --restart", path.string(),
                                        lineno, e.what()));
        }
        if (lineno == 1) {
            check_header(j, path, verb);
            continue;
        }
        if (!j.is_object() || !j.contains("id") || !j["id"].is_string() || !j.contains("fingerprint") ||
            !j.contains("status"))
            throw DataError(
                fmt::format("{}:{}: a row entry needs \"id\", \"fingerprint\" and \"status\"; hint: "
                            "rerun with --restart",
                            path.string(), lineno));
        const std::string id = j["id"].get<std::string>();  // (json's operator= takes its argument by value)
        out[id] = std::move(j);
    }
    return out;
}

/// The append-only progress file: one write(2) per line.
class ProgressFile {
public:
    ProgressFile(fs::path path, const std::string& verb) : path_(std::move(path)) {
        if (path_.has_parent_path()) fs::create_directories(path_.parent_path());
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd_ < 0) throw DataError(fmt::format("cannot open progress file '{}': {}", path_.string(), errno_text()));
        if (fs::file_size(path_) == 0) append(header_line(verb));
    }
    ~ProgressFile() { close(); }
    ProgressFile(const ProgressFile&) = delete;
    ProgressFile& operator=(const ProgressFile&) = delete;

    void append(const std::string& line) {
        for (std::size_t done = 0; done < line.size();) {
            const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0)
                throw DataError(fmt::format("cannot write progress file '{}': {}", path_.string(), errno_text()));
            done += static_cast<std::size_t>(n);
        }
    }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    static std::string errno_text() { return std::strerror(errno); }
    fs::path path_;
    int fd_ = -1;
};

/// With several jobs, LibTorch's and OpenCV's pools get one thread (restored afterwards).
class OneLibraryThread {
public:
    explicit OneLibraryThread(bool on) : on_(on) {
        if (!on_) return;
        torch_ = at::get_num_threads();
        cv_ = cv::getNumThreads();
        apply();
        cv::setNumThreads(1);
    }
    ~OneLibraryThread() {
        if (!on_) return;
        at::set_num_threads(torch_);
        cv::setNumThreads(cv_);
    }
    /// LibTorch's again per worker thread: OpenMP's thread count is a per-thread setting
    /// (OpenCV's is global).
    static void apply() { at::set_num_threads(1); }

private:
    bool on_;
    int torch_ = 1, cv_ = 1;
};

}  // namespace

int resolve_jobs(int jobs) {
    if (jobs > 0) return jobs;
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::string hash_hex(const std::string& text) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char c : text) h = (h ^ c) * 1099511628211ull;
    return fmt::format("{:016x}", h);
}

std::string file_fingerprint(const fs::path& path) {
    std::error_code ec;
    const auto st = fs::status(path, ec);
    if (ec || !fs::exists(st)) return "missing";
    auto one = [](const fs::path& p) {
        std::error_code e;
        const auto t = fs::last_write_time(p, e).time_since_epoch();
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t).count();
        const auto size = fs::is_regular_file(p, e) ? fs::file_size(p, e) : 0;
        return fmt::format("{}:{}", size, ns);
    };
    if (!fs::is_directory(st)) return one(path);
    std::vector<std::string> entries;
    for (const auto& e : fs::directory_iterator(path, ec))
        entries.push_back(e.path().filename().string() + "=" + one(e.path()));
    std::sort(entries.begin(), entries.end());
    std::string out = "dir";
    for (const auto& e : entries) out += ";" + e;
    return out;
}

void write_failures_csv(const fs::path& csv, const std::vector<RowFailure>& failures) {
    auto field = [](const std::string& s) {
        if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
        std::string q = "\"";
        for (const char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
        return q + '"';
    };
    std::string text = "id,reason\n";
    for (const auto& f : failures) text += field(f.id) + "," + field(f.reason) + "\n";
    if (csv.has_parent_path()) fs::create_directories(csv.parent_path());
    write_file_atomic(csv, text);
}

std::vector<RowFailure> BatchReport::failures() const {
    std::vector<RowFailure> out;
    for (const auto& r : rows)
        if (r.status == RowStatus::failed) out.push_back({r.id, r.error});
    return out;
}

std::string BatchReport::summary() const {
    const double rate = seconds > 0 ? double(computed + failed) / seconds : 0.0;
    std::string s = fmt::format("{}: {} rows: {} ok ({} resumed, {} computed), {} failed", verb, rows.size(), ok,
                                resumed, computed, failed);
    if (not_run) s += fmt::format(", {} not run", not_run);
    if (interrupted) s += " (interrupted)";
    return s + fmt::format(" [{:.1f} s, {:.2f} rows/s, {} job{}]", seconds, rate, jobs, jobs == 1 ? "" : "s");
}

namespace {

/// State the workers share; everything below `mu` is guarded by it.
struct Run {
    Run(const Manifest& m_, const BatchTask& task_, const BatchOptions& opts_) : m(m_), task(task_), opts(opts_) {}
    const Manifest& m;
    const BatchTask& task;
    const BatchOptions& opts;
    std::map<std::string, json> recorded;
    BatchReport report;
    std::vector<std::string> lines;  // each row's progress-file line (for compaction)
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stopping{false};
    std::mutex mu;
    std::optional<ProgressFile> file;
    std::optional<Progress> progress;
    std::exception_ptr first_error;
    std::size_t first_error_row = SIZE_MAX;
    std::exception_ptr fatal;  // not a row's failure (e.g. the progress file cannot be written)
};

/// The recorded entry of `row` when it may be reused.
const json* reusable_entry(const Run& r, const ManifestRow& row, const std::string& fp) {
    const auto it = r.recorded.find(row.id);
    if (it == r.recorded.end()) return nullptr;
    const json& e = it->second;
    if (e.value("status", "") != "ok" || e.value("fingerprint", "") != fp || !e.contains("result")) return nullptr;
    if (r.task.reusable && !r.task.reusable(row, e["result"])) return nullptr;
    return &e;
}

/// Counts, records and shows one finished row (under the lock).
void finish_row(Run& r, std::size_t i, const std::string& line, std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(r.mu);
    auto& out = r.report.rows[i];
    r.lines[i] = line;
    if (r.file && !out.resumed) r.file->append(line);
    if (out.status == RowStatus::ok) {
        ++r.report.ok;
        ++(out.resumed ? r.report.resumed : r.report.computed);
    } else {
        ++r.report.failed;
        spdlog::warn("{}: row {} failed: {}", r.opts.verb, out.id, out.error);
        if (r.opts.fail_fast) r.stopping = true;
        if (i < r.first_error_row) r.first_error = error, r.first_error_row = i;
    }
    r.progress->advance(1, fmt::format("ok={} failed={}", r.report.ok, r.report.failed));
}

void process_row(Run& r, std::size_t i) {
    const ManifestRow& row = r.m.rows[i];
    auto& out = r.report.rows[i];
    out.id = row.id;
    json entry = {{"id", row.id}};
    std::exception_ptr error;
    try {
        const std::string fp = r.task.fingerprint(row);
        entry["fingerprint"] = fp;
        if (const json* prev = reusable_entry(r, row, fp)) {
            out.status = RowStatus::ok, out.resumed = true, out.result = (*prev)["result"];
            finish_row(r, i, prev->dump() + "\n", nullptr);
            return;
        }
        out.result = r.task.run(row);
        out.status = RowStatus::ok;
        entry["status"] = "ok", entry["result"] = out.result;
    } catch (const std::exception& e) {
        error = std::current_exception();
        out.status = RowStatus::failed, out.error = e.what(), out.result = nullptr;
        if (!entry.contains("fingerprint")) entry["fingerprint"] = "";
        entry["status"] = "failed", entry["error"] = out.error;
    }
    finish_row(r, i, entry.dump() + "\n", error);
}

bool should_stop(Run& r) {
    if (r.stopping) return true;
    if (!r.opts.stop) return false;
    std::lock_guard<std::mutex> lock(r.mu);
    if (!r.opts.stop()) return false;
    r.report.interrupted = true;
    r.stopping = true;
    return true;
}

void work(Run& r, bool own_thread) {
    try {
        if (own_thread) OneLibraryThread::apply();
        while (!should_stop(r)) {
            const std::size_t i = r.next++;
            if (i >= r.m.rows.size()) return;
            process_row(r, i);
        }
    } catch (...) {
        std::lock_guard<std::mutex> lock(r.mu);
        if (!r.fatal) r.fatal = std::current_exception();
        r.stopping = true;
    }
}

/// Rewrites the progress file with one line per manifest row (manifest order).
void compact(Run& r) {
    std::string text = header_line(r.opts.verb);
    for (const auto& l : r.lines) text += l;
    r.file->close();
    write_file_atomic(r.opts.progress_file, text);
}

void open_progress(Run& r) {
    if (r.opts.progress_file.empty()) return;
    if (r.opts.restart) fs::remove(r.opts.progress_file);
    r.recorded = load_progress(r.opts.progress_file, r.opts.verb);
    r.file.emplace(r.opts.progress_file, r.opts.verb);
    if (!r.recorded.empty())
        spdlog::info("{}: {} rows recorded in {}; finished rows with unchanged inputs are reused", r.opts.verb,
                     r.recorded.size(), r.opts.progress_file.string());
}

}  // namespace

BatchReport run_batch(const Manifest& m, const BatchTask& task, const BatchOptions& opts) {
    const auto t0 = std::chrono::steady_clock::now();
    Run r(m, task, opts);
    const std::size_t n = m.rows.size();
    r.report.verb = opts.verb;
    r.report.rows.resize(n);
    r.lines.resize(n);
    for (std::size_t i = 0; i < n; ++i) r.report.rows[i].id = m.rows[i].id;
    open_progress(r);
    ProgressOptions popts = opts.progress;
    if (popts.unit == "it") popts.unit = "rows";
    r.progress.emplace(opts.verb, static_cast<int64_t>(n), popts);
    const int jobs = static_cast<int>(std::min<std::size_t>(resolve_jobs(opts.jobs), std::max<std::size_t>(n, 1)));
    r.report.jobs = jobs;
    {
        OneLibraryThread limit(jobs > 1);
        std::vector<std::thread> pool;
        for (int j = 1; j < jobs; ++j) pool.emplace_back([&r] { work(r, true); });
        work(r, false);
        for (auto& t : pool) t.join();
    }
    r.progress->finish();
    if (r.fatal) std::rethrow_exception(r.fatal);
    for (const auto& row : r.report.rows) r.report.not_run += row.status == RowStatus::not_run ? 1 : 0;
    r.report.interrupted = r.report.interrupted && r.report.not_run > 0;  // a stop after the last row
    r.report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (opts.fail_fast && r.first_error) std::rethrow_exception(r.first_error);
    if (r.file && r.report.not_run == 0) compact(r);
    return std::move(r.report);
}

}  // namespace ipa::curate
