// Ranking, selection and the terminal review loop driven by piped input.

#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "../../common/test_util.h"
#include "ipa/core/error.h"
#include "ipa/curate/review/ranking.h"
#include "ipa/curate/review/review_loop.h"
#include "ipa/curate/review/select.h"
#include "review_test_util.h"

namespace fs = std::filesystem;
namespace rv = ipa::curate::review;
using rv::Decision;
using rv::DecisionLog;

TEST(Ranking, ScoreOrderUnscoredLastAndForeignScoresRejected) {
    ipa::test::TempDir dir("rank");
    const auto m = ipa::test::small_manifest(dir.path, {"a", "b", "c", "d"});
    const auto s = ipa::test::small_scores({{"a", 0.2}, {"c", 0.9}, {"d", 0.2}});
    const auto r = rv::rank_candidates(m, s);
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[0].row->id, "c");
    EXPECT_EQ(r[1].row->id, "a");  // tie with d broken by id
    EXPECT_EQ(r[2].row->id, "d");
    EXPECT_EQ(r[3].row->id, "b");
    EXPECT_EQ(r[3].score, nullptr);
    EXPECT_THROW(rv::rank_candidates(m, ipa::test::small_scores({{"zz", 1.0}})), ipa::DataError);
    const auto stats = rv::main_stats(s[0]);
    ASSERT_EQ(stats.size(), 2u);
    EXPECT_EQ(stats[0].first, "confidence_mean");  // preferred signals first
    auto extra = s[0];
    extra.stats["s_confidence"] = 1.0;
    extra.stats["zeta"] = 2.0;
    const auto ordered = rv::main_stats(extra);
    ASSERT_EQ(ordered.size(), 4u);
    EXPECT_EQ(ordered[2].first, "zeta");
    EXPECT_EQ(ordered[3].first, "s_confidence");  // sub-scores last
    EXPECT_EQ(rv::main_stats(extra, 3).size(), 3u);
    EXPECT_EQ(rv::format_number(0.81234), "0.812");
    EXPECT_EQ(rv::sheet_filename("clip_1.c-2"), "clip_1.c-2.png");
    const auto odd = rv::sheet_filename("a/b c");
    EXPECT_EQ(odd.rfind("a_b_c-", 0), 0u);
    EXPECT_NE(odd, rv::sheet_filename("a_b c"));  // sanitised alike, hashed apart
}

TEST(Select, GoodRowsAboveScoreWithCounts) {
    ipa::test::TempDir dir("sel");
    const auto m = ipa::test::small_manifest(dir.path, {"a", "b", "c", "d", "e"});
    auto log = DecisionLog::open(dir.path / "d.csv");
    log.append("a", Decision::good);
    log.append("b", Decision::good);
    log.append("c", Decision::bad);
    log.append("d", Decision::good);
    log.append("d", Decision::skip);  // latest wins
    log.append("e", Decision::good);
    log.append("e", Decision::undo);  // e back to undecided
    rv::SelectReport rep;
    const auto all = rv::select_rows(m, log, nullptr, {}, &rep);
    ASSERT_EQ(all.rows.size(), 2u);
    EXPECT_EQ(all.rows[0].id, "a");
    EXPECT_EQ(all.rows[1].id, "b");
    EXPECT_EQ(all.columns, m.columns);
    EXPECT_EQ(all.rows[1].extra.at("label"), "bad");  // every column kept
    EXPECT_EQ(rep.good, 2);
    EXPECT_EQ(rep.bad, 1);
    EXPECT_EQ(rep.skip, 1);
    EXPECT_EQ(rep.undecided, 1);
    EXPECT_EQ(rep.selected, 2);

    const auto s = ipa::test::small_scores({{"a", 0.3}, {"c", 0.9}});
    rv::SelectOptions o;
    o.min_score = 0.25;
    const auto above = rv::select_rows(m, log, &s, o, &rep);
    ASSERT_EQ(above.rows.size(), 1u);
    EXPECT_EQ(above.rows[0].id, "a");
    EXPECT_EQ(rep.without_score, 1);  // b is good but unscored
    o.min_score = 0.5;
    rv::select_rows(m, log, &s, o, &rep);
    EXPECT_EQ(rep.selected, 0);
    EXPECT_EQ(rep.below_min_score, 1);
    EXPECT_THROW(rv::select_rows(m, log, nullptr, o, &rep), ipa::ConfigError);
    EXPECT_NE(rv::format_select_report(rep).find("selected 0 (0.00% of candidates)"), std::string::npos);

    log.append("stranger", Decision::good);
    EXPECT_THROW(rv::select_rows(m, log, nullptr, {}, &rep), ipa::DataError);
}

namespace {

rv::ReviewSummary drive(const ipa::curate::Manifest& m, const std::vector<ipa::curate::CandidateScore>& s,
                        const fs::path& log_path, const std::string& input, std::string* transcript = nullptr) {
    auto log = DecisionLog::open(log_path);
    std::istringstream in(input);
    rv::StreamKeySource keys(in);
    std::ostringstream out;
    rv::ReviewOptions o;
    o.sheets_dir = log_path.parent_path() / "sheets";
    o.reviewer = "tester";
    const auto sum = rv::run_review(m, s, log, keys, out, o);
    if (transcript) *transcript = out.str();
    return sum;
}

}  // namespace

TEST(ReviewLoop, PipedKeysDecideInScoreOrderAndResume) {
    ipa::test::TempDir dir("rev");
    const auto m = ipa::test::small_manifest(dir.path, {"a", "b", "c", "d"});
    const auto s = ipa::test::small_scores({{"a", 0.1}, {"b", 0.7}, {"c", 0.9}, {"d", 0.4}});
    const auto path = dir.path / "decisions.csv";

    // Session 1: c good, note + b bad, then quit: a and d stay undecided.
    std::string t1;
    auto s1 = drive(m, s, path, "g\nn\nblurry thumb, left hand\nb\nq\n", &t1);
    EXPECT_TRUE(s1.quit);
    EXPECT_EQ(s1.good, 1);
    EXPECT_EQ(s1.bad, 1);
    EXPECT_EQ(s1.notes, 1);
    EXPECT_EQ(s1.remaining, 2);
    EXPECT_LT(t1.find("[1/4] c"), t1.find("[2/4] b"));  // best score first
    EXPECT_NE(t1.find((dir.path / "sheets" / "c.png").string() + "  (missing)"), std::string::npos);
    EXPECT_NE(t1.find("stats: confidence_mean=0.81 jitter=0.019"), std::string::npos) << t1;
    {
        const auto log = DecisionLog::read(path);
        EXPECT_EQ(log.latest("c")->decision, Decision::good);
        EXPECT_EQ(log.latest("b")->decision, Decision::bad);
        EXPECT_EQ(log.latest("b")->note, "blurry thumb, left hand");
        EXPECT_EQ(log.latest("b")->reviewer, "tester");
        EXPECT_TRUE(log.latest("c")->note.empty());  // the note went to the next decision only
    }

    // Session 2 resumes at d (c and b are skipped). "x" is an unknown key; u undoes d's skip
    // (appending), d is shown again and marked good; the input then ends.
    std::string t2;
    auto s2 = drive(m, s, path, "x\ns\nu\ng\n", &t2);
    EXPECT_EQ(t2.find("] c "), std::string::npos);
    EXPECT_NE(t2.find("unknown key 'x'"), std::string::npos);
    EXPECT_NE(t2.find("undo: d was skip, now undecided"), std::string::npos) << t2;
    EXPECT_NE(t2.find("[3/4] d"), std::string::npos);
    EXPECT_NE(t2.find("[4/4] a"), std::string::npos);
    EXPECT_TRUE(s2.quit);  // end of input before a was decided
    EXPECT_EQ(s2.undecided_at_start, 2);
    EXPECT_EQ(s2.remaining, 1);
    EXPECT_EQ(s2.undone, 1);
    {
        const auto log = DecisionLog::read(path);
        EXPECT_EQ(log.latest("d")->decision, Decision::good);
        EXPECT_EQ(log.records().size(), 5u);  // c, b, d skip, d undo, d good: appended only
        EXPECT_EQ(log.records()[3].decision, Decision::undo);
    }

    // Session 3: u reaches back across sessions (d's good), then everything gets decided.
    std::string t3;
    auto s3 = drive(m, s, path, "u\n  b  \ns\n", &t3);
    EXPECT_FALSE(s3.quit);
    EXPECT_EQ(s3.remaining, 0);
    EXPECT_NE(t3.find("all candidates decided"), std::string::npos);
    const auto log = DecisionLog::read(path);
    EXPECT_EQ(log.latest("d")->decision, Decision::bad);  // undone, then d is shown first again (best score)
    EXPECT_EQ(log.latest("a")->decision, Decision::skip);
    EXPECT_NE(rv::format_review_summary(s3, path).find("0 of 4 candidates still undecided"), std::string::npos);

    // Nothing left: a fourth session shows nothing and writes nothing.
    const auto before = log.records().size();
    auto s4 = drive(m, s, path, "g\n");
    EXPECT_EQ(s4.shown, 0);
    EXPECT_EQ(DecisionLog::read(path).records().size(), before);
}

TEST(ReviewLoop, UndoWithNothingAndInlineNotes) {
    ipa::test::TempDir dir("rev");
    const auto m = ipa::test::small_manifest(dir.path, {"a", "b"});
    const auto s = ipa::test::small_scores({{"a", 0.6}, {"b", 0.3}});
    const auto path = dir.path / "decisions.csv";
    std::string t;
    drive(m, s, path, "u\nn fingers fused\nb\n?\nq\n", &t);
    EXPECT_NE(t.find("nothing to undo"), std::string::npos);
    // u, n and ? keep the same candidate: its block is printed once, the prompt four times.
    auto count = [&](const std::string& needle) {
        int n = 0;
        for (auto p = t.find(needle); p != std::string::npos; p = t.find(needle, p + 1)) ++n;
        return n;
    };
    EXPECT_EQ(count("[1/2] a"), 1);
    EXPECT_EQ(count("[2/2] b"), 1);
    EXPECT_EQ(count("[q]uit > "), 5);
    EXPECT_NE(t.find("[q]uit > q\n"), std::string::npos);  // keys are echoed
    EXPECT_NE(t.find("keys: g good"), std::string::npos);
    const auto log = DecisionLog::read(path);
    EXPECT_EQ(log.latest("a")->note, "fingers fused");
    EXPECT_FALSE(log.latest("b"));
    // A log with a foreign id is refused before anything is shown.
    DecisionLog::open(path).append("zz", Decision::good);
    EXPECT_THROW(drive(m, s, path, "g\n"), ipa::DataError);
}

// Raw keys on a real (pseudo) terminal, and the terminal settings restored both by the
// destructor and when a signal kills the process mid-review.
TEST(ReviewLoop, TerminalRawModeIsRestored) {
    int master = -1, slave = -1;
    ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
    struct termios before {};
    ASSERT_EQ(::tcgetattr(slave, &before), 0);
    ASSERT_TRUE(before.c_lflag & ICANON);
    {
        rv::TerminalKeySource keys(slave);
        struct termios raw {};
        ::tcgetattr(slave, &raw);
        EXPECT_FALSE(raw.c_lflag & (ICANON | ECHO));
        ASSERT_EQ(::write(master, "b", 1), 1);  // no Enter needed
        EXPECT_EQ(keys.key(), 'b');
        ASSERT_EQ(::write(master, "a note\n", 7), 7);
        EXPECT_EQ(keys.line(), "a note");
        ::tcgetattr(slave, &raw);
        EXPECT_FALSE(raw.c_lflag & ICANON);  // raw again after the line
    }
    struct termios after {};
    ::tcgetattr(slave, &after);
    EXPECT_TRUE(after.c_lflag & ICANON);
    EXPECT_TRUE(after.c_lflag & ECHO);

    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
        rv::TerminalKeySource keys(slave);
        (void)!::write(ready[1], "r", 1);
        keys.key();  // blocks until killed
        ::_exit(0);
    }
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    struct termios during {};
    ::tcgetattr(slave, &during);
    EXPECT_FALSE(during.c_lflag & ICANON);
    ::kill(pid, SIGTERM);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);  // the signal still ends it
    ::tcgetattr(slave, &after);
    EXPECT_TRUE(after.c_lflag & ICANON);
    EXPECT_TRUE(after.c_lflag & ECHO);
    ::close(ready[0]);
    ::close(ready[1]);
    ::close(master);
    ::close(slave);
}
