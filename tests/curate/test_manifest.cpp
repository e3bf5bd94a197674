// Manifest CSV: round trip with hard prompts, path resolution, and malformed input errors.

#include <gtest/gtest.h>

#include "curate_test_util.h"
#include "ipa/core/error.h"
#include "ipa/curate/manifest.h"

namespace ipa::curate {
namespace {
namespace fs = std::filesystem;
using test::expect_error;
using test::read_text;
using test::TempDir;
using test::write_text;

TEST(Manifest, RoundTripQuotingUtf8AndRelativePaths) {
    TempDir tmp;
    const fs::path csv = tmp.path / "sets" / "candidates.csv";
    Manifest m;
    m.columns = {"id", "group", "video", "keypoints", "prompt", "label"};
    ManifestRow a;
    a.id = "clip_000_cand_0";
    a.video = tmp.path / "sets" / "clip_000" / "cand_0.mp4";
    a.keypoints = tmp.path / "sets" / "clip_000" / "kp";
    a.prompt = "She says \"hi\", then waves;\nsecond line — café, 舞蹈 ";
    a.extra = {{"group", "clip_000"}, {"label", "good"}, {"defect", "none"}};  // defect: not in columns
    ManifestRow b;
    b.id = "b,with comma";
    b.video = "/elsewhere/outside.mp4";  // not below the csv's directory: stays absolute
    b.prompt = "";
    b.extra = {{"group", "clip_001"}, {"label", "bad"}};
    m.rows = {a, b};
    write_manifest(csv, m);

    const std::string text = read_text(csv);
    EXPECT_EQ(text.substr(0, text.find('\n')), "id,group,video,keypoints,prompt,label,defect");
    EXPECT_NE(text.find(",clip_000/cand_0.mp4,clip_000/kp,"), std::string::npos) << text;
    EXPECT_NE(text.find("\"She says \"\"hi\"\", then waves;\nsecond line"), std::string::npos) << text;
    EXPECT_NE(text.find("\"b,with comma\",clip_001,/elsewhere/outside.mp4,,,bad,\n"), std::string::npos) << text;

    const Manifest r = read_manifest(csv);
    EXPECT_EQ(r.columns, (std::vector<std::string>{"id", "group", "video", "keypoints", "prompt", "label", "defect"}));
    ASSERT_EQ(r.rows.size(), 2u);
    EXPECT_EQ(r.rows[0].id, a.id);
    EXPECT_EQ(r.rows[0].video, a.video);
    EXPECT_EQ(r.rows[0].keypoints, a.keypoints);
    EXPECT_TRUE(r.rows[0].vace_video.empty());
    EXPECT_EQ(r.rows[0].prompt, a.prompt);
    EXPECT_EQ(r.rows[0].extra, a.extra);
    EXPECT_EQ(r.rows[1].id, b.id);
    EXPECT_EQ(r.rows[1].video, fs::path("/elsewhere/outside.mp4"));
    EXPECT_EQ(r.rows[1].get("label"), "bad");
    EXPECT_EQ(r.rows[1].get("defect", "?"), "?");  // blank → fallback
    // Writing what was read reproduces the file byte for byte.
    write_manifest(tmp.path / "sets" / "again.csv", r);
    EXPECT_EQ(read_text(tmp.path / "sets" / "again.csv"), text);
}

TEST(Manifest, ParsesCrlfBomBlankLinesAndResolvesAgainstBase) {
    const std::string text =
        "\xEF\xBB\xBFid,video,vace_reference_image,prompt,extra col\r\n"
        "\r\n"
        "x1,a/b.mp4,../ref.png,\"multi\r\nline\",7\r\n"
        "x2,/abs/v.mp4,,plain,\r\n";
    const Manifest m = parse_manifest(text, "mem.csv", "/data/set");
    ASSERT_EQ(m.rows.size(), 2u);
    EXPECT_EQ(m.columns.front(), "id");
    EXPECT_EQ(m.rows[0].video, fs::path("/data/set/a/b.mp4"));
    EXPECT_EQ(m.rows[0].vace_reference_image, fs::path("/data/ref.png"));
    EXPECT_EQ(m.rows[0].prompt, "multi\r\nline");
    EXPECT_EQ(m.rows[0].extra.at("extra col"), "7");
    EXPECT_EQ(m.rows[1].video, fs::path("/abs/v.mp4"));
    EXPECT_TRUE(m.rows[1].vace_reference_image.empty());
    EXPECT_EQ(m.rows[1].extra.at("extra col"), "");
}

TEST(Manifest, MalformedInputNamesFileAndLine) {
    TempDir tmp;
    const fs::path csv = tmp.path / "bad.csv";
    auto check = [&](const std::string& text, std::initializer_list<std::string> parts) {
        write_text(csv, text);
        expect_error<DataError>([&] { read_manifest(csv); }, parts);
    };
    check("id,video\na,x.mp4\na,y.mp4\n", {"bad.csv:3", "duplicate id 'a'"});
    check("name,video\na,x.mp4\n", {"bad.csv:1", "no 'id' column"});
    // Line 2 holds a quoted two-line prompt, so the ragged row starts on line 4.
    check("id,prompt\na,\"two\nlines\"\nb,p,extra\n", {"bad.csv:4", "3 fields", "header has 2"});
    check("id,prompt\na,\"never closed\n", {"bad.csv:2", "unterminated"});
    check("id,prompt\na,\"x\"y\n", {"bad.csv:2", "after a closing quote"});
    check("id,prompt\na,say \"hi\"\n", {"bad.csv:2", "quote inside an unquoted field"});
    check("id,prompt\n,p\n", {"bad.csv:2", "empty id"});
    check("id,video,video\n", {"bad.csv:1", "duplicate column 'video'"});
    check("", {"bad.csv", "empty manifest"});
    expect_error<DataError>([&] { read_manifest(tmp.path / "missing.csv"); }, {"missing.csv", "not found"});
    Manifest dup;
    dup.rows.resize(2);
    dup.rows[0].id = dup.rows[1].id = "same";
    expect_error<DataError>([&] { write_manifest(tmp.path / "out.csv", dup); }, {"out.csv", "duplicate id 'same'"});
    EXPECT_FALSE(fs::exists(tmp.path / "out.csv"));
}

}  // namespace
}  // namespace ipa::curate
