#include <gtest/gtest.h>

#include <functional>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/pose/keypoints.h"
#include "pose_test_util.h"

namespace ipa::pose {
namespace {

using test::PoseTempDir;
using test::write_text;

/// Expects `fn` to throw E whose message contains every one of `parts`.
template <class E>
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
    try {
        fn();
        ADD_FAILURE() << "no exception";
    } catch (const E& e) {
        for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
}

/// An OpenPose COCO-18 person whose nose is at (x, y); other points missing (0, 0, 0).
std::string person18(float x, float y) {
    std::string a = "[" + std::to_string(x) + "," + std::to_string(y) + ",0.9";
    for (int i = 1; i < 18; ++i) a += ",0,0,0";
    return "{\"pose_keypoints_2d\":" + a + "]}";
}

std::string frame_json(const std::string& people, const std::string& extra = "") {
    return "{\"version\":1.3," + extra + "\"people\":[" + people + "]}";
}

TEST(Keypoints, DirectoryIsReadInNaturalFrameOrder) {
    PoseTempDir d;
    for (int n : {9, 10, 8, 11})
        write_text(d.path / ("clip2_" + std::to_string(n) + "_keypoints.json"), frame_json(person18(float(n), 5)));
    write_text(d.path / "notes.txt", "not a frame");
    const auto seq = read_keypoints(d.path);
    ASSERT_EQ(seq.frames.size(), 4u);
    EXPECT_EQ(seq.bad_frames, 0);
    for (int i = 0; i < 4; ++i) {
        ASSERT_EQ(seq.frames[i].people.size(), 1u);
        EXPECT_FLOAT_EQ(seq.frames[i].people[0].body[0].x, float(8 + i));
        EXPECT_EQ(seq.frames[i].people[0].body.size(), 18u);
        EXPECT_EQ(std::filesystem::path(seq.frame_sources[i]).filename(),
                  "clip2_" + std::to_string(8 + i) + "_keypoints.json");
    }
}

TEST(Keypoints, Body25IsConvertedToCoco18AndFeet) {
    PoseTempDir d;
    // Keypoint i of BODY_25 at (i + 10, 2 * i + 10, 0.5).
    std::string a;
    for (int i = 0; i < 25; ++i)
        a += (i ? "," : "") + std::to_string(i + 10) + "," + std::to_string(2 * i + 10) + ",0.5";
    write_text(d.path / "f.jsonl", frame_json("{\"pose_keypoints_2d\":[" + a + "],\"person_id\":[-1]}") + "\n");
    const auto seq = read_keypoints(d.path / "f.jsonl");
    const Person& p = seq.frames.at(0).people.at(0);
    ASSERT_EQ(p.body.size(), 18u);
    ASSERT_EQ(p.feet.size(), 6u);
    const int expect[18] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};  // MidHip (8) dropped
    for (int i = 0; i < 18; ++i) EXPECT_FLOAT_EQ(p.body[i].x, float(expect[i] + 10)) << i;
    for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(p.feet[i].y, float(2 * (19 + i) + 10)) << i;
    EXPECT_TRUE(p.hand_left.empty());
    EXPECT_TRUE(p.face.empty());
    EXPECT_EQ(seq.frame_sources[0], (d.path / "f.jsonl").string() + ":1");
}

TEST(Keypoints, NullAndEmptyArraysAndBothHandsAndFace70) {
    PoseTempDir d;
    std::string hand, face;
    for (int i = 0; i < 21; ++i) hand += (i ? "," : "") + std::to_string(100 + i) + ",7,0.8";
    for (int i = 0; i < 70; ++i) face += (i ? "," : "") + std::to_string(200 + i) + ",9,0.7";
    const std::string p0 = "{\"pose_keypoints_2d\":null,\"hand_left_keypoints_2d\":[" + hand +
                           "],\"hand_right_keypoints_2d\":[],\"face_keypoints_2d\":[" + face + "]}";
    write_text(d.path / "k.jsonl",
               frame_json(p0 + "," + person18(3, 4), "\"canvas_width\":640,\"canvas_height\":480,") + "\n" +
                   frame_json("") + "\n\n");
    const auto seq = read_keypoints(d.path / "k.jsonl");
    ASSERT_EQ(seq.frames.size(), 2u);  // trailing blank line ignored
    const auto& f0 = seq.frames[0];
    EXPECT_EQ(f0.width, 640);
    EXPECT_EQ(f0.height, 480);
    ASSERT_EQ(f0.people.size(), 2u);
    EXPECT_EQ(f0.people[0].body.size(), 18u);
    EXPECT_EQ(f0.people[0].body[5].c, 0.0f);
    ASSERT_EQ(f0.people[0].hand_left.size(), 21u);
    EXPECT_FLOAT_EQ(f0.people[0].hand_left[20].x, 120.0f);
    EXPECT_TRUE(f0.people[0].hand_right.empty());
    ASSERT_EQ(f0.people[0].face.size(), 70u);
    EXPECT_FLOAT_EQ(f0.people[0].face[69].x, 269.0f);
    EXPECT_FLOAT_EQ(f0.people[1].body[0].y, 4.0f);
    EXPECT_TRUE(seq.frames[1].people.empty());
}

TEST(Keypoints, NormalisedCoordinatesAreScaledByTheCanvas) {
    PoseTempDir d;
    write_text(d.path / "a.jsonl", frame_json(person18(0.25f, 0.5f), "\"canvas_width\":640,\"canvas_height\":480,") +
                                       "\n" + frame_json(person18(0.5f, 0.75f)) + "\n");
    // Line 2 has no canvas size: an error unless the options give one.
    expect_error<DataError>([&] { read_keypoints(d.path / "a.jsonl"); }, {"a.jsonl:2", "normalised", "canvas"});
    KeypointReadOptions o;
    o.canvas_width = 100;
    o.canvas_height = 200;
    const auto seq = read_keypoints(d.path / "a.jsonl", o);
    EXPECT_FLOAT_EQ(seq.frames[0].people[0].body[0].x, 160.0f);  // the JSON's own canvas wins
    EXPECT_FLOAT_EQ(seq.frames[0].people[0].body[0].y, 240.0f);
    EXPECT_FLOAT_EQ(seq.frames[1].people[0].body[0].x, 50.0f);
    EXPECT_FLOAT_EQ(seq.frames[1].people[0].body[0].y, 150.0f);
    EXPECT_EQ(seq.frames[1].width, 100);
    EXPECT_FLOAT_EQ(seq.frames[1].people[0].body[1].x, 0.0f);  // missing stays 0,0,0
    // Pixel coordinates are kept as they are.
    write_text(d.path / "b.jsonl", frame_json(person18(320.5f, 0.5f)) + "\n");
    EXPECT_FLOAT_EQ(read_keypoints(d.path / "b.jsonl", o).frames[0].people[0].body[0].x, 320.5f);
}

TEST(Keypoints, MalformedFramesNameFileAndLine) {
    PoseTempDir d;
    const auto jl = d.path / "bad.jsonl";
    write_text(jl, frame_json(person18(1, 2)) + "\n" + frame_json(person18(1, 2)) +
                       "\n{\"people\": [ {\"pose_keypoints_2d\": [1,2]}]}\n");
    expect_error<DataError>([&] { read_keypoints(jl); }, {"bad.jsonl:3", "multiple of 3"});
    write_text(jl, "{\"people\":[{\"pose_keypoints_2d\":[1,2,3,4,5,6]}]}\n");
    expect_error<DataError>([&] { read_keypoints(jl); }, {"bad.jsonl:1", "expected 18", "25"});
    write_text(jl, "{\"people\":[{\"hand_left_keypoints_2d\":[1,2,3]}]}\n");
    expect_error<DataError>([&] { read_keypoints(jl); }, {"hand_left_keypoints_2d", "expected 21"});
    write_text(jl, "{\"people\":[{\"pose_keypoints_2d\":[\"a\",2,3]}]}\n");
    expect_error<DataError>([&] { read_keypoints(jl); }, {"pose_keypoints_2d'[0] is not a number"});
    write_text(jl, "{\"version\":1.3}\n");
    expect_error<DataError>([&] { read_keypoints(jl); }, {"bad.jsonl:1", "no 'people'"});
    write_text(jl, frame_json("") + "\n\n" + frame_json("") + "\n");
    expect_error<DataError>([&] { read_keypoints(jl); }, {"bad.jsonl:2", "empty line"});

    const auto dir = d.path / "frames";
    std::filesystem::create_directories(dir);
    write_text(dir / "frame_000000_keypoints.json", frame_json(person18(1, 2)));
    write_text(dir / "frame_000001_keypoints.json", "{\"people\": [ truncated");
    expect_error<DataError>([&] { read_keypoints(dir); }, {"frame_000001_keypoints.json", "not valid JSON"});

    expect_error<DataError>([&] { read_keypoints(d.path / "missing.jsonl"); }, {"missing.jsonl", "no such file"});
    std::filesystem::create_directories(d.path / "empty");
    expect_error<DataError>([&] { read_keypoints(d.path / "empty"); }, {"empty", "no .json files"});
    write_text(d.path / "blank.jsonl", "\n");
    expect_error<DataError>([&] { read_keypoints(d.path / "blank.jsonl"); }, {"blank.jsonl", "no frames"});
}

TEST(Keypoints, BadFramesAreCountedAndKeptWhenAllowed) {
    PoseTempDir d;
    const auto dir = d.path / "frames";
    std::filesystem::create_directories(dir);
    write_text(dir / "frame_000000_keypoints.json", frame_json(person18(1, 2)));
    write_text(dir / "frame_000001_keypoints.json", "not json");
    // frame 2 missing
    write_text(dir / "frame_000003_keypoints.json", frame_json(person18(3, 2)));
    expect_error<DataError>([&] { read_keypoints(dir); }, {"frame_000001_keypoints.json", "allow_bad_frames"});
    KeypointReadOptions o;
    o.allow_bad_frames = true;
    const auto seq = read_keypoints(dir, o);
    ASSERT_EQ(seq.frames.size(), 4u);
    EXPECT_EQ(seq.bad_frames, 2);
    EXPECT_EQ(seq.frames[0].people.size(), 1u);
    EXPECT_TRUE(seq.frames[1].people.empty());
    EXPECT_TRUE(seq.frames[2].people.empty());
    EXPECT_NE(seq.frame_sources[2].find("<frame 2>"), std::string::npos) << seq.frame_sources[2];
    EXPECT_FLOAT_EQ(seq.frames[3].people.at(0).body[0].x, 3.0f);

    // The missing frame alone, without allow_bad_frames: named in the error.
    std::filesystem::remove(dir / "frame_000001_keypoints.json");
    write_text(dir / "frame_000001_keypoints.json", frame_json(""));
    expect_error<DataError>([&] { read_keypoints(dir); }, {"<frame 2>", "missing"});
    write_text(dir / "frame_000002_keypoints.json", frame_json(""));
    EXPECT_EQ(read_keypoints(dir).frames.size(), 4u);
    write_text(dir / "frame_3_keypoints.json", frame_json(""));
    expect_error<DataError>([&] { read_keypoints(dir); }, {"both frame 3"});

    const auto jl = d.path / "k.jsonl";
    write_text(jl, frame_json(person18(1, 2)) + "\n[1,2]\n" + frame_json(person18(5, 2)) + "\n");
    const auto s2 = read_keypoints(jl, o);
    ASSERT_EQ(s2.frames.size(), 3u);
    EXPECT_EQ(s2.bad_frames, 1);
    EXPECT_EQ(s2.frame_sources[1], jl.string() + ":2");
    EXPECT_TRUE(s2.frames[1].people.empty());
    EXPECT_FLOAT_EQ(s2.frames[2].people.at(0).body[0].x, 5.0f);
}

void expect_same(const std::vector<Keypoint>& a, const std::vector<Keypoint>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].x, b[i].x) << i;
        EXPECT_EQ(a[i].y, b[i].y) << i;
        EXPECT_EQ(a[i].c, b[i].c) << i;
    }
}

TEST(Keypoints, WritersRoundTripExactly) {
    std::mt19937 rng(5);
    PoseSequence seq;
    for (int f = 0; f < 3; ++f) {
        PoseFrame fr;
        fr.width = 832;
        fr.height = 480;
        for (int n = 0; n < f; ++n) {  // 0, 1 and 2 people
            Person p;
            p.body = test::random_keypoints(rng, 18, 400);
            p.body[3] = {};  // missing
            p.hand_left = test::random_keypoints(rng, 21, 400);
            if (n == 1) p.hand_right = test::random_keypoints(rng, 21, 400);
            p.face = test::random_keypoints(rng, n == 0 ? 68 : 70, 400);
            if (n == 0) p.feet = test::random_keypoints(rng, 6, 400);
            fr.people.push_back(p);
        }
        seq.frames.push_back(fr);
    }
    seq.frames[2].people[0].body[0] = {0.3f, 123.25f, 0.3f};
    PoseTempDir d;
    write_keypoints_dir(d.path / "dir", seq);
    write_keypoints_jsonl(d.path / "k.jsonl", seq);
    EXPECT_TRUE(std::filesystem::exists(d.path / "dir" / "frame_000002_keypoints.json"));
    EXPECT_NE(read_file(d.path / "k.jsonl").find("[0.3,123.25,0.3"), std::string::npos);  // shortest decimals
    for (const auto& back : {read_keypoints(d.path / "dir"), read_keypoints(d.path / "k.jsonl")}) {
        ASSERT_EQ(back.frames.size(), 3u);
        for (int f = 0; f < 3; ++f) {
            EXPECT_EQ(back.frames[f].width, 832);
            EXPECT_EQ(back.frames[f].height, 480);
            ASSERT_EQ(back.frames[f].people.size(), seq.frames[f].people.size());
            for (std::size_t n = 0; n < seq.frames[f].people.size(); ++n) {
                const Person &a = seq.frames[f].people[n], &b = back.frames[f].people[n];
                expect_same(a.body, b.body);
                expect_same(a.hand_left, b.hand_left);
                expect_same(a.hand_right, b.hand_right);
                expect_same(a.face, b.face);
                expect_same(a.feet, b.feet);
            }
        }
    }
    // A stale extra frame in the target directory would be read back as a frame: refused.
    write_text(d.path / "dir" / "frame_000009_keypoints.json", "{}");
    expect_error<DataError>([&] { write_keypoints_dir(d.path / "dir", seq); }, {"frame_000009_keypoints.json"});
    PoseSequence bad;
    bad.frames.resize(1);
    bad.frames[0].people.resize(1);
    bad.frames[0].people[0].hand_left.resize(20);
    expect_error<DataError>([&] { write_keypoints_jsonl(d.path / "x.jsonl", bad); }, {"hand_left has 20"});
}

TEST(Keypoints, CocoWholeBodyToOpenPose18) {
    std::vector<Keypoint> kp(133);
    for (int i = 0; i < 133; ++i) kp[i] = {float(i), float(1000 + i), 0.9f};
    Person p = from_coco_wholebody(kp);
    ASSERT_EQ(p.body.size(), 18u);
    // OpenPose-18 index -> COCO-WholeBody index (-1 = neck).
    const int coco[18] = {0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3};
    for (int i = 0; i < 18; ++i)
        if (coco[i] >= 0) {
            EXPECT_EQ(p.body[i].x, float(coco[i])) << i;
        }
    EXPECT_FLOAT_EQ(p.body[1].x, 5.5f);  // neck = mean of the shoulders
    EXPECT_FLOAT_EQ(p.body[1].y, 1005.5f);
    EXPECT_EQ(p.body[1].c, 1.0f);  // both shoulders > 0.3
    EXPECT_EQ(p.feet.front().x, 17.0f);
    EXPECT_EQ(p.face.size(), 68u);
    EXPECT_EQ(p.face.front().x, 23.0f);
    EXPECT_EQ(p.face.back().x, 90.0f);
    EXPECT_EQ(p.hand_left.front().x, 91.0f);
    EXPECT_EQ(p.hand_right.front().x, 112.0f);
    EXPECT_EQ(p.hand_right.back().x, 132.0f);
    // Neck score rule: 1 only when both shoulders are above 0.3 (float32 0.3 counts as above, as upstream).
    kp[6].c = 0.29f;
    EXPECT_EQ(from_coco_wholebody(kp).body[1].c, 0.0f);
    kp[6].c = 0.3f;
    EXPECT_EQ(from_coco_wholebody(kp).body[1].c, 1.0f);
    kp[5].c = 0.0f;
    EXPECT_EQ(from_coco_wholebody(kp).body[1].c, 0.0f);
    kp.resize(134);
    expect_error<DataError>([&] { from_coco_wholebody(kp); }, {"133", "134"});
}

}  // namespace
}  // namespace ipa::pose
