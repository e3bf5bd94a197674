// Batch verbs at the paper's scale (ipa/curate/batch.h): a 48-candidate synthetic batch with
// two corrupt videos (a truncated mp4 and garbage bytes) through `score` and `sheets`, in
// process and through the ipa-curate binary: the other 46 rows are scored, the two are
// reported with reasons, the exit code says so; interrupted runs (a stop hook, SIGKILL,
// SIGTERM) resume without redoing finished rows; changed inputs are redone; --fail-fast.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <regex>
#include <set>
#include <thread>

#include "curate_test_util.h"
#include "ipa/core/error.h"
#include "ipa/curate/batch.h"
#include "ipa/curate/review/contact_sheet.h"
#include "ipa/curate/review/ranking.h"
#include "ipa/curate/score.h"
#include "ipa/curate/synth.h"
#include "run_command.h"

namespace ipa::curate {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using test::read_text;
using test::TempDir;
using test::write_text;

constexpr std::size_t kTruncated = 8, kGarbage = 29;  // row 9 and row 30 of 48

/// The shared batch: 12 clips x 4 candidates, 6 frames of 64x64 mp4, two videos corrupted.
class Batch : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new TempDir("batch");
        SynthOptions o;
        o.clips = 12, o.candidates = 4, o.frames = 6, o.height = 64, o.width = 64, o.seed = 5;
        const auto r = synth_dataset(dir_->path / "set", o);
        manifest_ = r.manifest;
        const auto m = read_manifest(manifest_);
        ASSERT_EQ(m.rows.size(), 48u);
        const std::string video = read_text(m.rows[kTruncated].video);
        ASSERT_GT(video.size(), 200u);
        write_text(m.rows[kTruncated].video, video.substr(0, video.size() / 2));
        std::string garbage(4096, '\0');
        for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 2654435761u) >> 13);
        write_text(m.rows[kGarbage].video, garbage);
        // The uninterrupted run every other result is compared with.
        const auto ref = score_batch(m, ScoreConfig{}, dir_->path / "ref", quiet(2));
        ASSERT_EQ(ref.batch.ok, 46);
        reference_ = read_text(dir_->path / "ref/scores.json");
    }
    static void TearDownTestSuite() { delete dir_; }

    static BatchOptions quiet(int jobs) {
        BatchOptions o;
        o.jobs = jobs;
        o.progress.mode = ProgressOptions::Mode::silent;
        return o;
    }
    static Manifest manifest() { return read_manifest(manifest_); }
    static std::string bad_id(std::size_t i) { return manifest().rows[i].id; }

    static inline TempDir* dir_ = nullptr;
    static inline fs::path manifest_;
    static inline std::string reference_;
};

/// Lines of a progress file: complete rows by status ("ok" / "failed"); header excluded.
std::map<std::string, int> progress_counts(const fs::path& file) {
    std::map<std::string, int> n;
    std::istringstream in(read_text(file));
    std::string line;
    for (bool first = true; std::getline(in, line); first = false) {
        if (first || in.eof()) continue;  // the header; a line without its newline is torn
        n[json::parse(line).at("status").get<std::string>()]++;
    }
    return n;
}

TEST_F(Batch, ScoresTheOther46AndRecordsTheTwoBadRowsWithReasons) {
    TempDir out;
    const auto m = manifest();
    const auto r = score_batch(m, ScoreConfig{}, out.path, quiet(2));
    EXPECT_EQ(r.batch.ok, 46);
    EXPECT_EQ(r.batch.computed, 46);
    EXPECT_EQ(r.batch.failed, 2);
    EXPECT_EQ(r.batch.not_run, 0);
    EXPECT_FALSE(r.batch.interrupted);
    const auto failures = r.batch.failures();
    ASSERT_EQ(failures.size(), 2u);
    for (const std::size_t i : {kTruncated, kGarbage}) {
        const auto& f = failures[i == kTruncated ? 0 : 1];
        EXPECT_EQ(f.id, m.rows[i].id);
        EXPECT_CONTAINS(f.reason, "row '" + m.rows[i].id + "'");
        EXPECT_CONTAINS(f.reason, m.rows[i].video.filename().string());
        EXPECT_CONTAINS(f.reason, m.path.string());
    }
    // scores.json: the 46 in manifest order, the two under "failed"; failures.csv; and the
    // same bytes as the reference run (2 jobs) — rows in parallel do not change the output.
    const auto scores = read_scores(out.path / "scores.json");
    ASSERT_EQ(scores.size(), 46u);
    std::vector<std::string> want;
    for (std::size_t i = 0; i < m.rows.size(); ++i)
        if (i != kTruncated && i != kGarbage) want.push_back(m.rows[i].id);
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(scores[i].id, want[i]);
    const auto failed = read_score_failures(out.path / "scores.json");
    ASSERT_EQ(failed.size(), 2u);
    EXPECT_EQ(failed[1].id, m.rows[kGarbage].id);
    EXPECT_EQ(failed[1].reason, failures[1].reason);
    const std::string csv = read_text(out.path / "failures.csv");
    EXPECT_EQ(csv.rfind("id,reason\n", 0), 0u);
    EXPECT_CONTAINS(csv, m.rows[kTruncated].id + ",");
    EXPECT_CONTAINS(csv, m.rows[kGarbage].id + ",");
    EXPECT_EQ(read_text(out.path / "scores.json"), reference_);
    // One job gives the same bytes; the compacted progress file has one line per row.
    TempDir one;
    EXPECT_EQ(score_batch(m, ScoreConfig{}, one.path, quiet(1)).batch.jobs, 1);
    EXPECT_EQ(read_text(one.path / "scores.json"), reference_);
    const auto counts = progress_counts(out.path / "scores.progress.jsonl");
    EXPECT_EQ(counts.at("ok"), 46);
    EXPECT_EQ(counts.at("failed"), 2);
    EXPECT_CONTAINS(r.batch.summary(), "score: 48 rows: 46 ok (0 resumed, 46 computed), 2 failed");
}

TEST_F(Batch, StoppedAfter20RowsTheRerunDoesOnlyTheRest) {
    TempDir out;
    const auto m = manifest();
    auto opts = quiet(1);
    int polls = 0;
    opts.stop = [&] { return ++polls > 20; };
    const auto first = score_batch(m, ScoreConfig{}, out.path, opts);
    EXPECT_TRUE(first.batch.interrupted);
    EXPECT_EQ(first.batch.ok + first.batch.failed, 20);
    EXPECT_EQ(first.batch.failed, 1);  // row 9
    EXPECT_EQ(first.batch.not_run, 28);
    EXPECT_FALSE(fs::exists(out.path / "scores.json"));  // only the progress file
    EXPECT_EQ(progress_counts(out.path / "scores.progress.jsonl").at("ok"), 19);
    // A run killed mid-write leaves a torn last line: cut off, never read as a row.
    {
        std::ofstream f(out.path / "scores.progress.jsonl", std::ios::app | std::ios::binary);
        f << R"({"id":")" << m.rows[30].id << R"(","fingerprint":"0","sta)";
    }
    const auto second = score_batch(m, ScoreConfig{}, out.path, quiet(2));
    EXPECT_FALSE(second.batch.interrupted);
    EXPECT_EQ(second.batch.resumed, 19);
    EXPECT_EQ(second.batch.computed, 46 - 19);  // only the rows not finished before
    EXPECT_EQ(second.batch.failed, 2);          // failed rows are retried
    EXPECT_EQ(read_text(out.path / "scores.json"), reference_);
    // A third run has nothing left to do.
    const auto third = score_batch(m, ScoreConfig{}, out.path, quiet(2));
    EXPECT_EQ(third.batch.resumed, 46);
    EXPECT_EQ(third.batch.computed, 0);
    EXPECT_EQ(read_text(out.path / "scores.json"), reference_);
}

TEST_F(Batch, ChangedVideoOrConfigIsRedoneRestartRedoesAll) {
    TempDir copy, out;
    fs::copy(dir_->path / "set", copy.path / "set", fs::copy_options::recursive);
    const auto m = read_manifest(copy.path / "set/candidates.csv");
    ASSERT_EQ(score_batch(m, ScoreConfig{}, out.path, quiet(2)).batch.computed, 46);
    // Row 3's video replaced by a sibling's (same clip, same frame count).
    const fs::path video = m.rows[2].video;
    fs::copy_file(m.rows[3].video, video, fs::copy_options::overwrite_existing);
    fs::last_write_time(video, fs::last_write_time(video) + std::chrono::seconds(5));
    const auto again = score_batch(m, ScoreConfig{}, out.path, quiet(2));
    EXPECT_EQ(again.batch.resumed, 45);
    EXPECT_EQ(again.batch.computed, 1);
    EXPECT_FALSE(again.batch.rows[2].resumed);
    EXPECT_EQ(again.batch.rows[2].status, RowStatus::ok);
    EXPECT_EQ(again.scores[2].id, m.rows[2].id);
    EXPECT_EQ(again.scores[2].stats, score_row(m, m.rows[2], ScoreConfig{}).stats);  // the new video's score
    // Another config: every row again.
    ScoreConfig cfg;
    cfg.threshold = 0.6;
    EXPECT_EQ(score_batch(m, cfg, out.path, quiet(2)).batch.computed, 46);
    EXPECT_EQ(score_batch(m, cfg, out.path, quiet(2)).batch.computed, 0);
    auto restart = quiet(2);
    restart.restart = true;
    EXPECT_EQ(score_batch(m, cfg, out.path, restart).batch.computed, 46);
}

TEST_F(Batch, FailFastStopsAtTheFirstBadRowKeepingFinishedOnes) {
    TempDir out;
    const auto m = manifest();
    auto opts = quiet(1);
    opts.fail_fast = true;
    const std::string msg = ipa::test::error_of<DataError>([&] { score_batch(m, ScoreConfig{}, out.path, opts); });
    EXPECT_CONTAINS(msg, "row '" + m.rows[kTruncated].id + "'");
    EXPECT_CONTAINS(msg, m.rows[kTruncated].video.filename().string());
    EXPECT_FALSE(fs::exists(out.path / "scores.json"));
    const auto counts = progress_counts(out.path / "scores.progress.jsonl");
    EXPECT_EQ(counts.at("ok"), 8);
    EXPECT_EQ(counts.at("failed"), 1);
    const auto rerun = score_batch(m, ScoreConfig{}, out.path, quiet(2));
    EXPECT_EQ(rerun.batch.resumed, 8);
    EXPECT_EQ(rerun.batch.computed, 38);
}

TEST_F(Batch, ProgressFileOfAnotherVerbOrCorruptIsRefused) {
    TempDir out;
    const auto m = manifest();
    write_text(out.path / "scores.progress.jsonl", R"({"format":"ipa-curate-progress","verb":"sheets","version":1})"
                                                   "\n");
    EXPECT_CONTAINS(ipa::test::error_of<DataError>([&] { score_batch(m, ScoreConfig{}, out.path, quiet(1)); }),
                    "a progress file of `sheets`, not of `score`");
    write_text(out.path / "scores.progress.jsonl", R"({"format":"ipa-curate-progress","verb":"score","version":1})"
                                                   "\nnot json\n{}\n");
    EXPECT_CONTAINS(ipa::test::error_of<DataError>([&] { score_batch(m, ScoreConfig{}, out.path, quiet(1)); }),
                    "scores.progress.jsonl:2: not a JSON line");
}

TEST_F(Batch, SheetsGoPastBadRowsAndResume) {
    TempDir out;
    const auto m = manifest();
    const auto scores = read_scores(dir_->path / "ref/scores.json");
    review::SheetOptions so;
    so.frames = 2, so.tile_height = 32;
    const auto r = review::sheets_batch(m, scores, out.path, so, quiet(2));
    EXPECT_EQ(r.batch.ok, 46);
    EXPECT_EQ(r.batch.failed, 2);
    EXPECT_EQ(r.written, 46);
    ASSERT_EQ(r.files.size(), 46u);
    for (const auto& f : r.files) EXPECT_TRUE(fs::exists(f)) << f;
    EXPECT_FALSE(fs::exists(out.path / review::sheet_filename(m.rows[kGarbage].id)));
    const auto failures = r.batch.failures();
    ASSERT_EQ(failures.size(), 2u);
    EXPECT_EQ(failures[0].id, m.rows[kTruncated].id);
    EXPECT_CONTAINS(failures[0].reason, m.rows[kTruncated].video.filename().string());
    EXPECT_CONTAINS(read_text(out.path / "failures.csv"), m.rows[kGarbage].id + ",");
    // Nothing to redo, unless a sheet is gone or the options changed.
    EXPECT_EQ(review::sheets_batch(m, scores, out.path, so, quiet(2)).batch.resumed, 46);
    fs::remove(r.files[5]);
    const auto again = review::sheets_batch(m, scores, out.path, so, quiet(2));
    EXPECT_EQ(again.batch.computed, 1);
    EXPECT_TRUE(fs::exists(r.files[5]));
    so.frames = 3;
    EXPECT_EQ(review::sheets_batch(m, scores, out.path, so, quiet(2)).batch.computed, 46);
}

// ---- through the binary ----

using Cli = ipa::test::CommandResult;

Cli curate(const std::string& args) {
    return ipa::test::run_command(std::string(IPA_CURATE_BIN) + " --log-level warn " + args + " </dev/null");
}

std::string q(const fs::path& p) { return ipa::test::shell_quote(p); }

/// Starts `ipa-curate args` (output discarded); returns its pid.
pid_t spawn(const std::string& args) {
    const std::string cmd = "exec " + std::string(IPA_CURATE_BIN) + " --log-level warn " + args + " >/dev/null 2>&1";
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    return pid;
}

/// Lines in `file` (0 when absent).
int line_count(const fs::path& file) {
    const std::string text = fs::exists(file) ? read_text(file) : std::string();
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

/// Waits until `file` holds at least `rows` finished rows, then sends `sig`; the wait status.
int signal_after(pid_t pid, const fs::path& file, int rows, int sig) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline && line_count(file) < 1 + rows) {
        if (::waitpid(pid, &status, WNOHANG) == pid) return status;  // finished first
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    ::kill(pid, sig);
    ::waitpid(pid, &status, 0);
    return status;
}

/// The 48 rows 8 times over (384 rows, 16 of them bad) so that a run takes long enough to
/// be killed half-way; and its uninterrupted scores.json.
std::pair<fs::path, std::string> big_manifest(const fs::path& manifest, const fs::path& dir) {
    const auto m = read_manifest(manifest);
    Manifest big = m;
    big.path = dir / "big.csv";
    big.rows.clear();
    for (int k = 0; k < 8; ++k)
        for (auto row : m.rows) {
            row.id += "_r" + std::to_string(k);
            big.rows.push_back(row);
        }
    write_manifest(big.path, big);
    BatchOptions o;
    o.jobs = 2;
    o.progress.mode = ProgressOptions::Mode::silent;
    score_batch(read_manifest(big.path), ScoreConfig{}, dir / "big_ref", o);
    return {big.path, read_text(dir / "big_ref/scores.json")};
}

/// "(N resumed, M computed)" of a summary line.
std::pair<int, int> resumed_computed(const std::string& out) {
    std::smatch mt;
    if (!std::regex_search(out, mt, std::regex(R"(\((\d+) resumed, (\d+) computed\))"))) return {-1, -1};
    return {std::stoi(mt[1]), std::stoi(mt[2])};
}

TEST_F(Batch, CliExitsSevenListsFailuresAndFailFastKeepsTheOldExit) {
    TempDir out;
    auto r = curate("score --manifest " + q(manifest_) + " --out " + q(out.path / "s") + " --jobs 2");
    EXPECT_EQ(r.rc, kExitRowsFailed) << r.out;
    EXPECT_CONTAINS(r.out, "48 rows: 46 ok (0 resumed, 46 computed), 2 failed");
    EXPECT_CONTAINS(r.out, "failed " + bad_id(kTruncated) + ": ");
    EXPECT_CONTAINS(r.out, "failed " + bad_id(kGarbage) + ": ");
    EXPECT_CONTAINS(r.out, "failures.csv");
    EXPECT_EQ(read_text(out.path / "s/scores.json"), reference_);

    r = curate("score --manifest " + q(manifest_) + " --out " + q(out.path / "ff") + " --fail-fast --jobs 1");
    EXPECT_EQ(r.rc, static_cast<int>(ExitCode::data)) << r.out;
    EXPECT_CONTAINS(r.out, "error: " + manifest_.string() + ": row '" + bad_id(kTruncated) + "'");
    EXPECT_FALSE(fs::exists(out.path / "ff/scores.json"));

    r = curate("sheets --manifest " + q(manifest_) + " --scores " + q(out.path / "s/scores.json") + " --out " +
               q(out.path / "sheets") + " --frames 2 --tile-height 32");
    EXPECT_EQ(r.rc, kExitRowsFailed) << r.out;
    EXPECT_CONTAINS(r.out, "wrote 46 contact sheets");
    EXPECT_CONTAINS(r.out, "sheets: 48 rows: 46 ok");

    // The verbs that read scores.json name the rows that failed scoring; the index shows them.
    const auto page = out.path / "index.html";
    r = curate("index --manifest " + q(manifest_) + " --scores " + q(out.path / "s/scores.json") + " --out " + q(page));
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_CONTAINS(r.out, "note: 2 candidate(s) in " + (out.path / "s/scores.json").string() + " failed scoring");
    EXPECT_CONTAINS(r.out, bad_id(kTruncated));
    const auto html = read_text(page);
    EXPECT_CONTAINS(html, "2 failed scoring");
    EXPECT_CONTAINS(html, "data-id=\"" + bad_id(kGarbage) + "\"");
    EXPECT_CONTAINS(html, "data-pass=\"scoring-failed\"");
    EXPECT_CONTAINS(html, "<div class=\"fail\">scoring failed</div>");
    EXPECT_EQ(html.find("without a score"), std::string::npos);  // all 48 accounted for
}

TEST_F(Batch, CliKilledHalfWayResumesWithoutRedoingFinishedRows) {
    TempDir out;
    const auto [big, reference] = big_manifest(manifest_, out.path);
    const fs::path progress = out.path / "s/scores.progress.jsonl";
    const std::string args = "score --manifest " + q(big) + " --out " + q(out.path / "s");
    const int status = signal_after(spawn(args + " --jobs 1"), progress, 150, SIGKILL);
    ASSERT_TRUE(WIFSIGNALED(status)) << "finished before it could be killed; status " << status;
    EXPECT_FALSE(fs::exists(out.path / "s/scores.json"));
    const auto counts = progress_counts(progress);  // a torn last line is not counted
    const int done_ok = counts.at("ok");
    EXPECT_GE(done_ok + counts.at("failed"), 150);
    EXPECT_LT(done_ok, 368);
    const auto r = curate(args + " --jobs 2");
    EXPECT_EQ(r.rc, kExitRowsFailed) << r.out;
    EXPECT_CONTAINS(r.out, "384 rows: 368 ok");
    const auto [resumed, computed] = resumed_computed(r.out);
    EXPECT_EQ(resumed, done_ok) << r.out;
    EXPECT_EQ(computed, 368 - done_ok) << r.out;  // finished rows are not redone
    EXPECT_EQ(read_text(out.path / "s/scores.json"), reference);
}

TEST_F(Batch, CliSigtermFinishesTheRowsInFlightAndExits130) {
    TempDir out;
    const auto [big, reference] = big_manifest(manifest_, out.path);
    const fs::path progress = out.path / "s/scores.progress.jsonl";
    const std::string args = "score --manifest " + q(big) + " --out " + q(out.path / "s") + " --jobs 2";
    const int status = signal_after(spawn(args), progress, 100, SIGTERM);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    ASSERT_EQ(WEXITSTATUS(status), kExitInterrupted) << "finished before the signal?";
    EXPECT_FALSE(fs::exists(out.path / "s/scores.json"));
    const std::string text = read_text(progress);
    EXPECT_EQ(text.back(), '\n');  // a clean stop leaves no torn line
    const int done_ok = progress_counts(progress).at("ok");
    const auto r = curate(args);
    EXPECT_EQ(r.rc, kExitRowsFailed) << r.out;
    EXPECT_EQ(resumed_computed(r.out), std::make_pair(done_ok, 368 - done_ok)) << r.out;
    EXPECT_EQ(read_text(out.path / "s/scores.json"), reference);
}

}  // namespace
}  // namespace ipa::curate
