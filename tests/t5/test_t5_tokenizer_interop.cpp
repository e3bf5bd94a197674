// Prompt cleaning and ids vs upstream Wan's own `HuggingfaceTokenizer` (wan/modules/tokenizers.py
// executed from a Wan2.1 checkout with ftfy and the transformers fast tokenizer of the small
// tests/fixtures/t5/spiece.model): tests/fixtures/interop/tokenizer_interop.json, written by
// scripts/gen_interop_fixtures.py --only tokenizer. Per prompt it holds upstream's cleaned text
// and ids, and the same path with `ftfy.fix_text` as the identity ("without ftfy").
//
// Pinned here (docs/parity.md §8):
//  * ipa's cleaning is upstream's without ftfy, for every prompt;
//  * ipa's ids are upstream's no-ftfy ids, except for two documented tokenizer differences:
//    byte fallback (SentencePiece emits <0xXX> byte pieces for characters without a piece, the
//    converted HF tokenizer one fused <unk> per run) and special-token literals (`</s>`, `<pad>`,
//    `<unk>` in the text are special tokens for transformers, plain text for SentencePiece);
//  * where ftfy changes the text, ipa follows the no-ftfy path (the listed prompts).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "ipa/models/t5/tokenizer.h"

namespace fs = std::filesystem;
using namespace ipa::models::t5;

namespace {

using Ids = std::vector<int64_t>;

const nlohmann::json& interop() {
    static const nlohmann::json j = [] {
        std::ifstream f(fs::path(IPA_FIXTURES_DIR) / "interop" / "tokenizer_interop.json");
        return nlohmann::json::parse(f);
    }();
    return j;
}

const T5Tokenizer& tokenizer() {
    static const T5Tokenizer tok = T5Tokenizer::load(fs::path(IPA_FIXTURES_DIR) / "t5");
    return tok;
}

std::set<std::string> names_where(bool (*pred)(const nlohmann::json&)) {
    std::set<std::string> out;
    for (const auto& c : interop()["cases"])
        if (pred(c)) out.insert(c["name"].get<std::string>());
    return out;
}

// Prompts whose ids contain SentencePiece byte pieces (characters the small model has no piece
// for: capitals, '&', '<', '/', accents, emoji, CJK, ...).
const std::set<std::string> kByteFallback = {"english",
                                             "accents",
                                             "decomposed_accents",
                                             "emoji",
                                             "japanese_korean",
                                             "html_entities",
                                             "double_escaped",
                                             "html_with_tag",
                                             "curly_quotes",
                                             "mojibake_utf8_as_latin1",
                                             "mojibake_cp1252_quotes",
                                             "ligatures_fullwidth",
                                             "c1_and_controls",
                                             "terminal_escape",
                                             "numbers_punct"};
const std::set<std::string> kSpecialTokenLiterals = {"special_token_text"};
// Prompts where ftfy.fix_text changes the cleaned text (8 of the 21; docs/parity.md §8) ...
const std::set<std::string> kFtfyChangesText = {
    "decomposed_accents",  "chinese",         "curly_quotes",   "mojibake_utf8_as_latin1", "mojibake_cp1252_quotes",
    "ligatures_fullwidth", "c1_and_controls", "terminal_escape"};
// ... and those where the change survives into the ids (with this small vocabulary curly and
// straight quotes are both <unk>; NFKC in the normaliser undoes widths and ligatures).
const std::set<std::string> kFtfyChangesIds = {"mojibake_utf8_as_latin1", "c1_and_controls", "terminal_escape"};

bool is_byte_piece(const std::string& p) { return p.size() == 6 && p.rfind("<0x", 0) == 0 && p.back() == '>'; }

/// ipa's ids as the converted HF tokenizer (no byte fallback, fused unk) writes them: every
/// maximal run of byte pieces becomes one <unk> (2).
Ids fuse_byte_runs(const Ids& ids) {
    Ids out;
    bool in_run = false;
    for (const auto id : ids) {
        const bool byte = is_byte_piece(tokenizer().piece(static_cast<int>(id)));
        if (!byte)
            out.push_back(id);
        else if (!in_run)
            out.push_back(2);
        in_run = byte;
    }
    return out;
}

/// transformers' handling of special-token literals: the text is split at `</s>` / `<pad>` /
/// `<unk>`, each piece between them tokenized on its own, the literal replaced by its id.
Ids split_at_special_literals(const std::string& cleaned) {
    static const std::vector<std::pair<std::string, int64_t>> kSpecial = {{"</s>", 1}, {"<pad>", 0}, {"<unk>", 2}};
    Ids out;
    std::size_t pos = 0;
    while (true) {
        std::size_t best = std::string::npos;
        const std::pair<std::string, int64_t>* hit = nullptr;
        for (const auto& s : kSpecial) {
            const auto at = cleaned.find(s.first, pos);
            if (at < best) best = at, hit = &s;
        }
        for (const int id : tokenizer().encode_pieces(cleaned.substr(pos, best - pos))) out.push_back(id);
        if (hit == nullptr) break;
        out.push_back(hit->second);
        pos = best + hit->first.size();
    }
    out.push_back(T5Tokenizer::kEosId);
    return out;
}

TEST(T5TokenizerInterop, FixtureIsTheDocumentedOne) {
    const auto& meta = interop()["meta"];
    EXPECT_EQ(meta["wan_commit"].get<std::string>(), "9737cba9c1c3c4d04b33fcad41c111989865d315");
    EXPECT_EQ(meta["text_len"].get<int64_t>(), tokenizer().text_len());
    EXPECT_EQ(interop()["cases"].size(), 21u);
    EXPECT_EQ(names_where([](const nlohmann::json& c) { return c["ftfy_differs"].get<bool>(); }), kFtfyChangesText);
}

TEST(T5TokenizerInterop, CleaningIsUpstreamWithoutFtfy) {
    for (const auto& c : interop()["cases"]) {
        const auto name = c["name"].get<std::string>();
        const auto ours = clean_prompt(c["raw"].get<std::string>());
        EXPECT_EQ(ours, c["cleaned_without_ftfy"].get<std::string>()) << name;
        // Equal to the full upstream path exactly where ftfy leaves the text alone.
        EXPECT_EQ(ours == c["cleaned"].get<std::string>(), kFtfyChangesText.count(name) == 0) << name;
    }
}

TEST(T5TokenizerInterop, IdsAreUpstreamWithoutFtfyUpToByteFallbackAndSpecialLiterals) {
    std::set<std::string> byte_fallback, special;
    for (const auto& c : interop()["cases"]) {
        const auto name = c["name"].get<std::string>();
        const auto expected = c["ids_without_ftfy"].get<Ids>();
        const auto ours = tokenizer().encode(c["raw"].get<std::string>());
        const auto fused = fuse_byte_runs(ours);
        if (kSpecialTokenLiterals.count(name) != 0) {
            special.insert(name);
            EXPECT_NE(ours, expected) << name;
            EXPECT_EQ(split_at_special_literals(c["cleaned_without_ftfy"].get<std::string>()), expected) << name;
            continue;
        }
        if (fused != ours) byte_fallback.insert(name);
        EXPECT_EQ(fused, expected) << name;
        if (kByteFallback.count(name) == 0) EXPECT_EQ(ours, expected) << name << ": identical ids";
    }
    EXPECT_EQ(byte_fallback, kByteFallback);
    EXPECT_EQ(special, kSpecialTokenLiterals);
}

TEST(T5TokenizerInterop, SpecialTokenLiteralsArePlainTextForIpa) {
    const auto ours = tokenizer().encode("literal </s> and <pad> and <unk> in text");
    // Only the final EOS is a special id; the literals are pieces.
    for (std::size_t i = 0; i + 1 < ours.size(); ++i) EXPECT_GT(ours[i], 2) << "position " << i;
    EXPECT_EQ(ours.back(), T5Tokenizer::kEosId);
}

TEST(T5TokenizerInterop, WhereFtfyChangesTheTextIpaFollowsTheNoFtfyPath) {
    int n = 0;
    for (const auto& c : interop()["cases"]) {
        const auto name = c["name"].get<std::string>();
        if (kFtfyChangesText.count(name) == 0) continue;
        ++n;
        const auto cleaned = clean_prompt(c["raw"].get<std::string>());
        EXPECT_EQ(cleaned, c["cleaned_without_ftfy"].get<std::string>()) << name;
        EXPECT_NE(cleaned, c["cleaned"].get<std::string>()) << name << ": ftfy's text is not ipa's";
        const auto fused = fuse_byte_runs(tokenizer().encode(c["raw"].get<std::string>()));
        EXPECT_EQ(fused, c["ids_without_ftfy"].get<Ids>()) << name;
        EXPECT_EQ(fused != c["ids"].get<Ids>(), kFtfyChangesIds.count(name) != 0) << name;
    }
    EXPECT_EQ(n, 8);
}

}  // namespace
