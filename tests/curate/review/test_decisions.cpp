// Decisions log: atomic appends, torn-line repair, latest-wins, undo, concurrent writers.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "../../common/test_util.h"
#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/curate/review/decisions.h"

namespace fs = std::filesystem;
using ipa::curate::review::Decision;
using ipa::curate::review::DecisionLog;

namespace {

std::vector<std::string> lines_of(const fs::path& p) {
    std::vector<std::string> out;
    std::istringstream in(ipa::read_file(p));
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

void write_raw(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// Every line after the header parses as a 5-field record with a known decision word.
void expect_well_formed(const fs::path& p, std::size_t expected_records) {
    const std::string data = ipa::read_file(p);
    ASSERT_FALSE(data.empty());
    EXPECT_EQ(data.back(), '\n');
    const auto lines = lines_of(p);
    ASSERT_EQ(lines[0], "id,decision,note,reviewer,time");
    EXPECT_EQ(lines.size(), expected_records + 1);
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const auto f = ipa::curate::review::split_csv_line(lines[i], "line " + std::to_string(i + 1));
        ASSERT_EQ(f.size(), 5u) << lines[i];
        EXPECT_NO_THROW(ipa::curate::review::parse_decision(f[1], "x")) << lines[i];
    }
}

}  // namespace

TEST(Decisions, AppendQuotesAndReadsBack) {
    ipa::test::TempDir dir("dec");
    const auto path = dir.path / "sub" / "decisions.csv";  // parent created on demand
    {
        auto log = DecisionLog::open(path);
        log.append("c1", Decision::good, "clean, sharp \"hands\"", "anna");
        log.append("c2", Decision::bad, "fused\nfingers", "anna");  // a line break in a note becomes a space
        log.append("c3", Decision::skip);
    }
    const auto lines = lines_of(path);
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines[0], "id,decision,note,reviewer,time");
    EXPECT_EQ(lines[1].rfind("c1,good,\"clean, sharp \"\"hands\"\"\",anna,20", 0), 0u) << lines[1];
    EXPECT_EQ(lines[2].rfind("c2,bad,fused fingers,anna,20", 0), 0u) << lines[2];
    const auto log = DecisionLog::read(path);
    ASSERT_EQ(log.records().size(), 3u);
    EXPECT_EQ(log.records()[0].note, "clean, sharp \"hands\"");
    EXPECT_EQ(log.records()[0].line, 2);
    EXPECT_EQ(log.records()[0].time.size(), 20u);  // 2025-01-31T10:02:11Z
    EXPECT_EQ(log.records()[0].time.back(), 'Z');
    EXPECT_EQ(log.latest("c2")->decision, Decision::bad);
    EXPECT_FALSE(log.latest("c9"));
    const auto counts = log.counts();
    EXPECT_EQ(counts.at("good"), 1);
    EXPECT_EQ(counts.at("bad"), 1);
    EXPECT_EQ(counts.at("skip"), 1);
}

TEST(Decisions, LatestWinsAndUndoRetractsByAppending) {
    ipa::test::TempDir dir("dec");
    const auto path = dir.path / "d.csv";
    auto log = DecisionLog::open(path);
    log.append("a", Decision::good);
    log.append("b", Decision::bad);
    log.append("a", Decision::bad, "changed my mind");
    EXPECT_EQ(log.latest("a")->decision, Decision::bad);
    EXPECT_EQ(*log.last_effective_id(), "a");
    log.append("a", Decision::undo);  // back to the first verdict
    EXPECT_EQ(log.latest("a")->decision, Decision::good);
    EXPECT_EQ(*log.last_effective_id(), "b");  // b's decision is now the most recent in effect
    log.append("b", Decision::undo);
    EXPECT_FALSE(log.latest("b"));
    EXPECT_EQ(*log.last_effective_id(), "a");
    log.append("a", Decision::undo);
    EXPECT_FALSE(log.latest("a"));
    EXPECT_FALSE(log.last_effective_id());
    EXPECT_THROW(log.append("a", Decision::undo), ipa::DataError);  // nothing left to retract
    // The file only grew: 3 decisions + 3 undos, nothing rewritten.
    const auto lines = lines_of(path);
    ASSERT_EQ(lines.size(), 7u);
    EXPECT_EQ(lines[4].substr(0, 7), "a,undo,");
    // A fresh reader replays the same state.
    const auto again = DecisionLog::read(path);
    EXPECT_TRUE(again.effective().empty());
    EXPECT_EQ(again.records().size(), 6u);
}

TEST(Decisions, TornLastLineIsReportedThenTruncatedOnlyWhenWriting) {
    ipa::test::TempDir dir("dec");
    const auto path = dir.path / "d.csv";
    const std::string good =
        "id,decision,note,reviewer,time\nc1,good,,r,2025-01-01T00:00:00Z\n"
        "c2,bad,,r,2025-01-01T00:00:01Z\n";
    write_raw(path, good + "c3,go");  // crash in the middle of writing c3
    {
        const auto ro = DecisionLog::read(path);
        EXPECT_EQ(ro.records().size(), 2u);
        EXPECT_EQ(ro.torn_bytes(), 5);
        EXPECT_FALSE(ro.latest("c3"));
        EXPECT_EQ(ipa::read_file(path), good + "c3,go");  // a reader never modifies the file
    }
    auto rw = DecisionLog::open(path);
    EXPECT_EQ(rw.torn_bytes(), 5);
    EXPECT_EQ(ipa::read_file(path), good);  // exactly the torn bytes are gone
    rw.append("c3", Decision::good);
    expect_well_formed(path, 3);
    EXPECT_EQ(ipa::read_file(path).substr(0, good.size()), good);

    // A writer that already has the log open also repairs a line torn by another process.
    write_raw(path, ipa::read_file(path) + "c4,b");
    rw.append("c5", Decision::skip);
    expect_well_formed(path, 4);
    EXPECT_EQ(DecisionLog::read(path).latest("c5")->decision, Decision::skip);
    EXPECT_FALSE(DecisionLog::read(path).latest("c4"));

    // A file torn inside its header gets the header back.
    write_raw(path, "id,deci");
    auto fresh = DecisionLog::open(path);
    fresh.append("x", Decision::bad);
    expect_well_formed(path, 1);
}

TEST(Decisions, BadFilesAndWordsAreClearErrors) {
    ipa::test::TempDir dir("dec");
    const auto path = dir.path / "d.csv";
    auto expect_error = [&](const std::string& text, const std::string& needle) {
        write_raw(path, text);
        try {
            DecisionLog::read(path);
            FAIL() << "no error for: " << text;
        } catch (const ipa::DataError& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
            EXPECT_NE(msg.find(needle), std::string::npos) << msg;
        }
    };
    expect_error("id,decision\nc1,good\n", "not a decisions log");
    expect_error("id,decision,note,reviewer,time\nc1,great,,r,t\n", ":2: unknown decision 'great'");
    expect_error("id,decision,note,reviewer,time\nc1,good,r,t\n", ":2: expected 5 fields");
    expect_error("id,decision,note,reviewer,time\nc1,good,\"open,r,t\n", ":2: unterminated quoted field");
    expect_error("id,decision,note,reviewer,time\n,good,,r,t\n", ":2: empty id");
    EXPECT_THROW(DecisionLog::read(dir.path / "missing.csv"), ipa::DataError);
    EXPECT_THROW(ipa::curate::review::parse_decision("maybe", "command line"), ipa::DataError);

    write_raw(path, "id,decision,note,reviewer,time\nc1,good,,r,t\nzz,bad,,r,t\n");
    const auto log = DecisionLog::read(path);
    try {
        log.check_ids({"c1", "c2"}, "cands.csv");
        FAIL();
    } catch (const ipa::DataError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("'zz' (line 3)"), std::string::npos) << msg;
        EXPECT_NE(msg.find("cands.csv"), std::string::npos) << msg;
    }
    EXPECT_NO_THROW(log.check_ids({"c1", "zz"}, "cands.csv"));
}

TEST(Decisions, ConcurrentThreadsNeverInterleave) {
    ipa::test::TempDir dir("dec", true);
    const auto path = dir.path / "d.csv";
    constexpr int kPer = 150;
    auto worker = [&](const std::string& who) {
        auto log = DecisionLog::open(path);  // own descriptor, as two processes would have
        for (int i = 0; i < kPer; ++i) {
            log.append(who + std::to_string(i), i % 2 ? Decision::good : Decision::bad, std::string(40 + i % 13, 'n'),
                       who);
        }
    };
    std::thread a(worker, "a"), b(worker, "b");
    a.join();
    b.join();
    expect_well_formed(path, 2 * kPer);
    const auto log = DecisionLog::read(path);
    // Each writer's lines appear complete and in its own order.
    int next_a = 0, next_b = 0;
    for (const auto& r : log.records()) {
        int& next = r.id[0] == 'a' ? next_a : next_b;
        EXPECT_EQ(r.id.substr(1), std::to_string(next));
        EXPECT_EQ(r.note.size(), static_cast<std::size_t>(40 + next % 13));
        ++next;
    }
    EXPECT_EQ(next_a, kPer);
    EXPECT_EQ(next_b, kPer);
}

TEST(Decisions, ConcurrentProcessesAndAKilledWriter) {
    ipa::test::TempDir dir("dec", true);
    const auto path = dir.path / "d.csv";
    DecisionLog::open(path);  // create
    constexpr int kPer = 200;
    auto spawn = [&](const std::string& who, int count) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            try {
                auto log = DecisionLog::open(path);
                for (int i = 0; i < count; ++i) log.append(who + std::to_string(i), Decision::good, "note", who);
            } catch (...) {
                ::_exit(3);
            }
            ::_exit(0);
        }
        return pid;
    };
    const pid_t p1 = spawn("p", kPer), p2 = spawn("q", kPer);
    // A third writer appends forever and is killed mid-stream, like a crashed reviewer session.
    const pid_t victim = spawn("v", 1 << 30);
    int status = 0;
    ASSERT_EQ(::waitpid(p1, &status, 0), p1);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_EQ(::waitpid(p2, &status, 0), p2);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ::kill(victim, SIGKILL);
    ASSERT_EQ(::waitpid(victim, &status, 0), victim);

    const auto log = DecisionLog::open(path);
    EXPECT_EQ(log.torn_bytes(), 0);  // single write(2) per line: a kill cannot tear a line
    std::map<char, int> per;
    for (const auto& r : log.records()) {
        EXPECT_EQ(r.id.substr(1), std::to_string(per[r.id[0]]++)) << "line " << r.line;
        EXPECT_EQ(r.note, "note");
        EXPECT_EQ(r.reviewer, std::string(1, r.id[0]));
    }
    EXPECT_EQ(per['p'], kPer);
    EXPECT_EQ(per['q'], kPer);
    expect_well_formed(path, log.records().size());
}
