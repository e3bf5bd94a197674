#pragma once

/// Batch runs over a manifest at the paper's scale (thousands of candidates): the engine
/// behind `ipa-curate score` and `sheets` (and the shape a per-row verb such as `pose` plugs
/// into: a fingerprint of the row's inputs and a function from the row to a JSON result).
///
///  - A bad row does not end the run: its exception is recorded as the row's failure (the
///    message names the row and the file) and the other rows go on. `fail_fast` stops at the
///    first failure and rethrows it (the behaviour before batches).
///  - Every finished row is appended to a progress file (JSON Lines, one write(2) per row, in
///    completion order) beside the final output. A rerun reads it and reuses a row when its
///    id, fingerprint and status "ok" match (and `BatchTask::reusable` agrees); failed rows
///    and rows whose inputs or settings changed are redone. A run killed at any point resumes
///    from there: a torn last line is cut off, never taken as a row. After a run that went
///    through every row the file is rewritten compactly (one line per manifest row).
///  - Rows run on `jobs` threads; results come back in manifest order. With more than one
///    job, LibTorch's and OpenCV's own thread pools are set to one thread for the run.
///
/// Progress file format:
///   {"format":"ipa-curate-progress","verb":"score","version":1}
///   {"id":"c1","fingerprint":"9f..","status":"ok","result":{...}}
///   {"id":"c2","fingerprint":"1a..","status":"failed","error":"..."}
/// (a later line for the same id supersedes an earlier one).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ipa/core/progress.h"
#include "ipa/curate/manifest.h"

namespace ipa::curate {

/// Exit codes of the batch verbs beyond ipa::ExitCode (docs/architecture.md §10): the run
/// finished but some rows failed (each recorded in the outputs), or SIGINT/SIGTERM stopped it
/// (rerunning the same command resumes).
constexpr int kExitRowsFailed = 7;
constexpr int kExitInterrupted = 130;

enum class RowStatus { ok, failed, not_run };

/// The outcome of one manifest row.
struct RowOutcome {
    std::string id;
    RowStatus status = RowStatus::not_run;
    nlohmann::json result;  ///< ok rows: what BatchTask::run returned (or the progress file held)
    std::string error;      ///< failed rows: the reason
    bool resumed = false;   ///< ok row taken from the progress file, not recomputed
};

/// A failed row: its id and the reason.
struct RowFailure {
    std::string id, reason;
};

/// What a verb does per row.
struct BatchTask {
    /// Fingerprint of everything the row's result depends on (row fields, input files via
    /// file_fingerprint(), settings); must not throw for missing files.
    std::function<std::string(const ManifestRow&)> fingerprint;
    /// The work; throws for a bad row. Called from `jobs` threads at once.
    std::function<nlohmann::json(const ManifestRow&)> run;
    /// Optional: may a recorded ok result be reused (e.g. its output file still exists)?
    std::function<bool(const ManifestRow&, const nlohmann::json&)> reusable;
};

/// How to run.
struct BatchOptions {
    std::string verb = "batch";           ///< names the progress bar and the progress file's kind
    int jobs = 0;                         ///< worker threads; 0: std::thread::hardware_concurrency()
    bool fail_fast = false;               ///< stop at the first failure and rethrow it
    std::filesystem::path progress_file;  ///< empty: no progress file (nothing to resume)
    bool restart = false;                 ///< ignore (and replace) an existing progress file
    std::function<bool()> stop;           ///< polled before each row; true: start no more rows
    ProgressOptions progress;             ///< the bar (unit "rows" unless set otherwise)
};

/// What run_batch() did.
struct BatchReport {
    std::string verb;
    std::vector<RowOutcome> rows;  ///< manifest order
    int64_t ok = 0, failed = 0, not_run = 0;
    int64_t resumed = 0, computed = 0;  ///< ok rows reused from the progress file / run now
    bool interrupted = false;           ///< `stop` asked to stop before every row ran
    int jobs = 1;
    double seconds = 0;

    std::vector<RowFailure> failures() const;  ///< failed rows, manifest order
    /// "score: 48 rows: 46 ok (20 resumed, 26 computed), 2 failed [3.1 s, 8.4 rows/s, 2 jobs]"
    std::string summary() const;
};

/// Runs `task` over every row of `m`. Rethrows the first failure when opts.fail_fast (rows
/// finished before it stay in the progress file). ipa::DataError for a progress file of
/// another verb or with a corrupt line other than a torn last one.
BatchReport run_batch(const Manifest& m, const BatchTask& task, const BatchOptions& opts);

/// The number of worker threads `jobs` resolves to (≥ 1; 0 → hardware threads).
int resolve_jobs(int jobs);

/// "size:mtime_ns" of a file; for a directory the sorted names, sizes and mtimes of its
/// entries; "missing" when absent. Changes when a file is rewritten or touched.
std::string file_fingerprint(const std::filesystem::path& path);

/// 16 hex digits of a 64-bit FNV-1a hash of `text`.
std::string hash_hex(const std::string& text);

/// Writes `id,reason` CSV (header only when there are none) atomically.
void write_failures_csv(const std::filesystem::path& csv, const std::vector<RowFailure>& failures);

}  // namespace ipa::curate
