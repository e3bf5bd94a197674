// Tokenizer and prompt cleaning vs the Python reference (tests/fixtures/t5/tokenizer_cases.json,
// written by scripts/gen_t5_fixtures.py with the SentencePiece Python binding and CPython's
// html.unescape / str.strip / White_Space collapsing, i.e. upstream cleaning minus ftfy).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "ipa/core/error.h"
#include "ipa/models/t5/tokenizer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ipa::models::t5;

using ipa::test::error_of;

namespace {

const fs::path kTokenizerDir = fs::path(IPA_FIXTURES_DIR) / "t5";

const nlohmann::json& cases() {
    static const nlohmann::json j = [] {
        std::ifstream f(kTokenizerDir / "tokenizer_cases.json");
        return nlohmann::json::parse(f);
    }();
    return j;
}

TEST(T5Cleaning, MatchesPythonUnescapeAndWhitespaceCleaning) {
    int n = 0;
    for (const auto& c : cases()["cleaning"]) {
        const auto raw = c["raw"].get<std::string>();
        EXPECT_EQ(html_unescape(raw), c["unescaped"].get<std::string>()) << "html.unescape of " << c["raw"].dump();
        EXPECT_EQ(clean_prompt(raw), c["cleaned"].get<std::string>()) << "cleaning of " << c["raw"].dump();
        ++n;
    }
    EXPECT_GT(n, 80);
    // A few stated outright (they are also in the fixture).
    EXPECT_EQ(clean_prompt("&amp;amp;"), "&");                 // unescaped twice
    EXPECT_EQ(clean_prompt("&amp;amp;amp;"), "&amp;");         // ... not three times
    EXPECT_EQ(clean_prompt("  a\t\u3000\u00a0b  "), "a b");    // Unicode whitespace runs
    EXPECT_EQ(clean_prompt("in\x1cside"), "in\x1cside");       // not \s for the regex module
    EXPECT_EQ(clean_prompt("\x1c edge \x1f"), "edge");         // but str.strip() removes it
    EXPECT_EQ(html_unescape("&#128;&#x80;"), "\u20ac\u20ac");  // C1 -> Windows-1252
    EXPECT_EQ(html_unescape("&notit;"), "\u00acit;");          // longest legacy prefix
}

TEST(T5Cleaning, WhitespaceSetsMatchPythonForEveryCodePoint) {
    std::set<uint32_t> py;
    for (const auto& c : cases()["python_isspace"]) py.insert(c.get<uint32_t>());
    ASSERT_EQ(py.size(), 29u);
    int mismatches = 0;
    for (uint32_t c = 0; c <= 0x10FFFF; ++c) {
        const bool is_py = py.count(c) > 0;
        if (is_python_space(c) != is_py) ++mismatches;
        // the regex module's \s = Unicode White_Space = str.isspace() without U+001C..U+001F
        if (is_unicode_whitespace(c) != (is_py && !(c >= 0x1C && c <= 0x1F))) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0);
}

TEST(T5Tokenizer, IdsAndLengthsMatchSentencePiecePython) {
    const auto tok = T5Tokenizer::load(kTokenizerDir);
    EXPECT_EQ(tok.vocab_size(), 600);
    std::vector<std::string> prompts;
    std::vector<std::vector<int64_t>> expected;
    for (const auto& c : cases()["tokenizer"]) {
        const auto name = c["name"].get<std::string>();
        const auto prompt = c["prompt"].get<std::string>();
        EXPECT_EQ(clean_prompt(prompt), c["cleaned"].get<std::string>()) << name;
        const auto ids = tok.encode(prompt);
        EXPECT_EQ(ids, c["ids"].get<std::vector<int64_t>>()) << name;
        EXPECT_EQ(static_cast<int64_t>(ids.size()), c["length"].get<int64_t>()) << name;
        prompts.push_back(prompt);
        expected.push_back(c["ids"].get<std::vector<int64_t>>());
    }
    ASSERT_GE(prompts.size(), 12u);
    const auto batch = tok(prompts);
    ASSERT_EQ(batch.ids.sizes(), (std::vector<int64_t>{static_cast<int64_t>(prompts.size()), 512}));
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        const auto n = static_cast<int64_t>(expected[i].size());
        const auto row = batch.ids[static_cast<int64_t>(i)];
        const auto mrow = batch.mask[static_cast<int64_t>(i)];
        EXPECT_EQ(batch.lengths[i], n);
        EXPECT_EQ(mrow.sum().item<int64_t>(), n) << "true length = number of mask ones";
        EXPECT_TRUE(torch::equal(row.narrow(0, 0, n), torch::tensor(expected[i])));
        EXPECT_EQ(row.narrow(0, n, 512 - n).abs().sum().item<int64_t>(), 0) << "padding is 0";
        EXPECT_EQ(mrow.narrow(0, n, 512 - n).sum().item<int64_t>(), 0);
    }
}

TEST(T5Tokenizer, TruncatesLikeHuggingFaceKeepingTheEos) {
    const auto tok = T5Tokenizer::load(kTokenizerDir / "spiece.model");
    for (const auto& c : cases()["tokenizer"]) {
        const auto name = c["name"].get<std::string>();
        const auto ids = tok.encode(c["prompt"].get<std::string>());
        if (name == "pieces_511") {
            EXPECT_EQ(c["num_pieces"].get<int>(), 511);
            EXPECT_EQ(ids.size(), 512u);
        } else if (name == "pieces_512" || name == "long") {
            EXPECT_GT(c["num_pieces"].get<int>(), 511);
            EXPECT_EQ(ids.size(), 512u) << name;
        } else if (name == "empty" || name == "only_whitespace") {
            EXPECT_EQ(ids, std::vector<int64_t>{1}) << name;
        }
        EXPECT_EQ(ids.back(), T5Tokenizer::kEosId) << name;
    }
    // A short text_len truncates the same way: text_len - 1 pieces + EOS.
    const auto short_tok = T5Tokenizer::load(kTokenizerDir, 8);
    const auto full = tok.encode("a a a a a a a a a a a a");
    const auto cut = short_tok.encode("a a a a a a a a a a a a");
    ASSERT_EQ(cut.size(), 8u);
    EXPECT_EQ(std::vector<int64_t>(cut.begin(), cut.end() - 1), std::vector<int64_t>(full.begin(), full.begin() + 7));
    EXPECT_EQ(cut.back(), 1);
}

TEST(T5Tokenizer, BadInputGivesClearErrors) {
    ipa::test::TempDir dir("t5tok");
    EXPECT_NE(error_of([&] { T5Tokenizer::load(dir.path); }).find("has no spiece.model"), std::string::npos);
    std::ofstream(dir.path / "tokenizer.json") << "{}";
    EXPECT_NE(error_of([&] { T5Tokenizer::load(dir.path); }).find("only tokenizer.json"), std::string::npos);
    EXPECT_NE(error_of([&] { T5Tokenizer::load(dir.path / "nope.model"); }).find("does not exist"), std::string::npos);
    std::ofstream(dir.path / "spiece.model") << "this is not a protobuf";
    const auto msg = error_of([&] { T5Tokenizer::load(dir.path); });
    EXPECT_NE(msg.find("cannot read SentencePiece model"), std::string::npos) << msg;
    EXPECT_NE(msg.find((dir.path / "spiece.model").string()), std::string::npos) << msg;
    const auto tok = T5Tokenizer::load(kTokenizerDir);
    const auto bad = error_of([&] { tok({"fine", std::string("bad \xff byte")}); });
    EXPECT_NE(bad.find("prompt 1"), std::string::npos) << bad;
    EXPECT_NE(bad.find("UTF-8"), std::string::npos) << bad;
    EXPECT_NE(error_of([&] { clean_prompt("trunc \xe4\xb8"); }).find("truncated"), std::string::npos);
    EXPECT_NE(error_of([&] { clean_prompt("overlong \xc0\xaf"); }).find("overlong"), std::string::npos);
    EXPECT_NE(error_of([&] { clean_prompt("surrogate \xed\xa0\x80"); }).find("surrogate"), std::string::npos);
}

}  // namespace
