// Pair statistics on a hand-made score set with known counts.

#include <gtest/gtest.h>

#include "curate_test_util.h"
#include "ipa/core/error.h"
#include "ipa/curate/pairs.h"

namespace ipa::curate {
namespace {
using test::expect_error;

// A candidate whose frame t scores pattern(t).
template <typename Pattern>
CandidateScore cand(const std::string& id, const std::string& group, int T, Pattern pattern) {
    CandidateScore c;
    c.id = id;
    c.group = group;
    for (int t = 0; t < T; ++t) {
        FrameScore f;
        f.frame = t;
        f.score = pattern(t);
        c.frames.push_back(f);
    }
    return c;
}

std::vector<CandidateScore> hand_made_set() {
    return {
        // Group A, 32 frames = two 16-frame windows.
        cand("a_good", "A", 32, [](int) { return 0.9; }),                              // windows: GOOD, GOOD
        cand("a_bad", "A", 32, [](int) { return 0.1; }),                               // BAD, BAD
        cand("a_mix", "A", 32, [](int t) { return t < 16 || t == 20 ? 0.5 : 0.49; }),  // GOOD, MIXED
        // Group B: the shorter one has 10 frames < window → one window of 10 frames.
        cand("b_1", "B", 20, [](int) { return 0.2; }),
        cand("b_2", "B", 10, [](int) { return 0.3; }),
        // No group: a group of its own, no pairs.
        cand("alone", "", 32, [](int) { return 0.9; }),
    };
}

TEST(Pairs, KnownCountsOnAHandMadeSet) {
    const ScoreConfig cfg;  // threshold 0.5; a frame at exactly 0.5 passes
    const PairStats s = pair_statistics(hand_made_set(), cfg, {});
    EXPECT_EQ(s.candidates, 6);
    EXPECT_EQ(s.groups, 3);
    EXPECT_EQ(s.pairs, 4);  // A: 3, B: 1
    // A: (good,bad) strict+strict; (good,mix) both_good+mixed; (bad,mix) strict+mixed. B: both_bad.
    EXPECT_EQ(s.windows, 7);
    EXPECT_EQ(s.strict, 3);
    EXPECT_EQ(s.both_good, 1);
    EXPECT_EQ(s.mixed, 2);
    EXPECT_EQ(s.both_bad, 1);
    EXPECT_EQ(s.strict_pairs, 2);
    EXPECT_EQ(s.both_good + s.both_bad + s.mixed + s.strict, s.windows);

    const std::string text = format_pair_stats(s);
    EXPECT_NE(text.find("strict    (case 4): 3 (42.9%)"), std::string::npos) << text;
    EXPECT_NE(text.find("both bad  (case 2): 1 (14.3%)"), std::string::npos) << text;
    EXPECT_NE(text.find("DPO pairs that would exist: 3"), std::string::npos) << text;
    EXPECT_NE(text.find("from 2 of 4 candidate pairs = 50.0%"), std::string::npos) << text;
}

TEST(Pairs, WindowSizeAndThresholdChangeTheClasses) {
    ScoreConfig cfg;
    // Window 10 over 32 frames: 3 windows per A pair (frames 30-31 dropped); B stays one window.
    PairStats s = pair_statistics(hand_made_set(), cfg, {10});
    EXPECT_EQ(s.windows, 3 * 3 + 1);
    // a_mix windows: [0,10) GOOD, [10,20) MIXED (16..19 fail), [20,30) MIXED (frame 20 passes).
    EXPECT_EQ(s.strict, 3 + 1);  // good-vs-bad x3, bad-vs-mix in the first window
    EXPECT_EQ(s.both_good, 1);   // good-vs-mix, first window
    EXPECT_EQ(s.mixed, 2 + 2);
    EXPECT_EQ(s.both_bad, 1);
    // Threshold 0.25: b_2 (0.3) passes, b_1 (0.2) fails → B becomes strict; a_mix all pass.
    cfg.threshold = 0.25;
    s = pair_statistics(hand_made_set(), cfg, {16});
    EXPECT_EQ(s.windows, 7);
    EXPECT_EQ(s.both_good, 2);       // good-vs-mix, both windows
    EXPECT_EQ(s.strict, 2 + 2 + 1);  // good-vs-bad, bad-vs-mix, B
    EXPECT_EQ(s.mixed, 0);
    EXPECT_EQ(s.both_bad, 0);
    EXPECT_EQ(s.strict_pairs, 3);
}

TEST(Pairs, BadOptionsAndDuplicateIds) {
    const ScoreConfig cfg;
    expect_error<ConfigError>([&] { pair_statistics(hand_made_set(), cfg, {0}); }, {"window"});
    auto set = hand_made_set();
    set.push_back(set[0]);
    expect_error<DataError>([&] { pair_statistics(set, cfg, {}); }, {"duplicate", "a_good"});
    const PairStats empty = pair_statistics({}, cfg, {});
    EXPECT_EQ(empty.windows, 0);
    EXPECT_NE(format_pair_stats(empty).find("DPO pairs that would exist: 0"), std::string::npos);
}

TEST(Pairs, StrictWindowsBecomeWinnerLoserRows) {
    const ScoreConfig cfg;
    const auto pairs = strict_pairs(hand_made_set(), cfg, {});
    ASSERT_EQ(pairs.size(), 3u);  // the 3 strict windows counted above
    // (a_good, a_bad) both windows, then (a_bad, a_mix) first window: a_mix wins there.
    EXPECT_EQ(pairs[0].winner, "a_good");
    EXPECT_EQ(pairs[0].loser, "a_bad");
    EXPECT_EQ(pairs[0].start, 0);
    EXPECT_EQ(pairs[0].frames, 16);
    EXPECT_EQ(pairs[1].start, 16);
    EXPECT_EQ(pairs[2].winner, "a_mix");
    EXPECT_EQ(pairs[2].loser, "a_bad");
    EXPECT_EQ(pairs[2].group, "A");

    Manifest candidates;
    candidates.path = "/data/set/candidates.csv";
    for (const char* id : {"a_good", "a_bad", "a_mix"}) {
        ManifestRow r;
        r.id = id;
        r.video = std::string("/data/set/videos/") + id + ".mp4";
        r.keypoints = std::string("/data/set/kp/") + id;
        r.vace_video = "/data/set/pose.mp4";
        r.vace_reference_image = "/elsewhere/ref.png";
        r.prompt = "a dancer";
        candidates.rows.push_back(r);
    }
    const auto m = pair_manifest(pairs, candidates, "/data/set/pairs.csv");
    ASSERT_EQ(m.rows.size(), 3u);
    const auto& row = m.rows[1];
    EXPECT_EQ(row.id, "a_good~a_bad@16");
    EXPECT_EQ(row.video, "/data/set/videos/a_good.mp4");    // the winner's standard columns
    EXPECT_EQ(row.get("loser_video"), "videos/a_bad.mp4");  // relative to the csv's directory
    EXPECT_EQ(row.get("loser_keypoints"), "kp/a_bad");
    EXPECT_EQ(row.get("start_frame"), "16");
    EXPECT_EQ(row.get("frames"), "16");
    EXPECT_EQ(row.get("winner"), "a_good");
    EXPECT_EQ(row.get("group"), "A");
    const auto far = pair_manifest(pairs, candidates, "/out/pairs.csv");
    EXPECT_EQ(far.rows[0].get("loser_video"), "/data/set/videos/a_bad.mp4");  // not below: absolute

    auto other = candidates;
    other.rows[1].vace_video = "/data/set/other-pose.mp4";
    expect_error<DataError>([&] { pair_manifest(pairs, other, "/data/set/pairs.csv"); },
                            {"a_good", "a_bad", "same conditioning"});
    auto fewer = candidates;
    fewer.rows.pop_back();
    expect_error<DataError>([&] { pair_manifest(pairs, fewer, "/data/set/pairs.csv"); }, {"a_mix", "not in"});
}

}  // namespace
}  // namespace ipa::curate
