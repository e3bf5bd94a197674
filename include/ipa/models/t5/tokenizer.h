#pragma once

// umT5 tokenizer and the prompt cleaning of Wan's `HuggingfaceTokenizer(clean='whitespace')`.
//
// Cleaning = upstream `whitespace_clean(basic_clean(text))` WITHOUT `ftfy.fix_text`
// (no C++ port): html.unescape twice (Python's exact algorithm and HTML5 entity table),
// str.strip(), every run of Unicode White_Space (the `regex` module's `\s`) -> one space,
// str.strip(). ftfy would additionally: straighten curly quotes (“ ” ‘ ’ -> " '),
// NFC-normalise, repair mojibake ("cafÃ©" -> "café"), expand Latin ligatures, turn
// \r\n / U+2028 into \n, drop most control characters and terminal escapes, and unescape
// HTML only when the text has no '<'. Prompts with those features tokenize differently
// from the reference (curly quotes are the likely case); plain prompts are unaffected.
//
// Tokenization = SentencePiece (`spiece.model`) + `</s>` (id 1), truncated like Hugging
// Face (`truncation=True, max_length=text_len`: the first text_len-1 pieces + EOS),
// padded with 0. See tests/fixtures/t5/README.md for how this compares with the HF fast
// tokenizer that upstream uses (added tokens like `<extra_id_0>`, byte fallback).

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace ipa::models::t5 {

/// Python's `html.unescape`: named references from the HTML5 table (with the legacy
/// no-semicolon forms and longest-prefix matching), `&#NN;` / `&#xHH;` with the HTML5
/// replacement rules (C1 controls -> Windows-1252, NUL/surrogates/out-of-range -> U+FFFD,
/// non-characters dropped). DataError if `text` is not valid UTF-8.
std::string html_unescape(std::string_view text);

/// Upstream `whitespace_clean(basic_clean(text))` minus ftfy (see above).
std::string clean_prompt(std::string_view text);

/// True for the code points the `regex` module's `\s` matches (Unicode White_Space).
bool is_unicode_whitespace(char32_t c);
/// True for the code points Python's `str.isspace()` (and `str.strip()`) treats as
/// whitespace: White_Space plus U+001C..U+001F.
bool is_python_space(char32_t c);

/// Padded ids of a batch of prompts.
struct TokenizedBatch {
    at::Tensor ids;                ///< [B, text_len] int64, 0 after the EOS
    at::Tensor mask;               ///< [B, text_len] int64, 1 for pieces and EOS
    std::vector<int64_t> lengths;  ///< number of mask ones per prompt (incl. EOS)
};

/// SentencePiece tokenizer with the umT5 (T5) id layout: <pad> 0, </s> 1, <unk> 2.
class T5Tokenizer {
public:
    static constexpr int kPadId = 0;
    static constexpr int kEosId = 1;

    /// `path`: the `google/umt5-xxl` folder (its `spiece.model`) or a `.model` file.
    /// DataError naming the path if the model is missing, unreadable, or not T5-layout.
    static T5Tokenizer load(const std::filesystem::path& path, int64_t text_len = 512);

    T5Tokenizer(T5Tokenizer&&) noexcept;
    T5Tokenizer& operator=(T5Tokenizer&&) noexcept;
    ~T5Tokenizer();

    /// SentencePiece ids of already-cleaned text, no EOS, no truncation.
    std::vector<int> encode_pieces(std::string_view cleaned) const;
    /// clean_prompt -> pieces -> truncate to text_len-1 -> EOS (no padding).
    std::vector<int64_t> encode(std::string_view prompt) const;
    /// Upstream `HuggingfaceTokenizer.__call__(prompts, return_mask=True, add_special_tokens=True)`.
    TokenizedBatch operator()(const std::vector<std::string>& prompts) const;

    int64_t text_len() const { return text_len_; }
    int vocab_size() const;
    std::string piece(int id) const;
    const std::filesystem::path& model_path() const { return model_path_; }

private:
    T5Tokenizer();
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    std::filesystem::path model_path_;
    int64_t text_len_ = 512;
};

}  // namespace ipa::models::t5
