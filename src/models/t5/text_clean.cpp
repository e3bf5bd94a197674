// Prompt cleaning of Wan's HuggingfaceTokenizer(clean='whitespace') minus ftfy:
// html.unescape twice, str.strip(), `\s+` -> ' ', str.strip().
// ref: Wan2.1 wan/modules/tokenizers.py basic_clean / whitespace_clean; CPython Lib/html/__init__.py unescape

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ipa/core/error.h"
#include "ipa/models/t5/tokenizer.h"

namespace ipa::models::t5 {
namespace {

struct HtmlEntity {
    const char* name;
    uint32_t cp1;
    uint32_t cp2;
};
#include "html_entities.inc"

using U32 = std::u32string;

U32 decode_utf8(std::string_view s) {
    U32 out;
    out.reserve(s.size());
    std::size_t i = 0;
    auto bad = [&](const char* why) {
        throw DataError(fmt::format("prompt is not valid UTF-8 ({} at byte {}); pass UTF-8 text", why, i));
    };
    while (i < s.size()) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        int n = 0;
        char32_t cp = 0;
        if (b0 < 0x80) {
            cp = b0;
        } else if ((b0 & 0xE0) == 0xC0) {
            n = 1;
            cp = b0 & 0x1F;
        } else if ((b0 & 0xF0) == 0xE0) {
            n = 2;
            cp = b0 & 0x0F;
        } else if ((b0 & 0xF8) == 0xF0) {
            n = 3;
            cp = b0 & 0x07;
        } else {
            bad("invalid lead byte");
        }
        for (int k = 1; k <= n; ++k) {
            if (i + k >= s.size()) bad("truncated sequence");
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80) bad("invalid continuation byte");
            cp = (cp << 6) | (b & 0x3F);
        }
        static constexpr char32_t kMin[] = {0, 0x80, 0x800, 0x10000};
        if (cp < kMin[n]) bad("overlong encoding");
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) bad("surrogate or out-of-range code point");
        out.push_back(cp);
        i += static_cast<std::size_t>(n) + 1;
    }
    return out;
}

void append_utf8(std::string& out, char32_t c) {
    if (c < 0x80) {
        out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (c >> 18)));
        out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
}

std::string encode_utf8(const U32& s) {
    std::string out;
    out.reserve(s.size());
    for (char32_t c : s) append_utf8(out, c);
    return out;
}

const std::unordered_map<std::string, U32>& entity_table() {
    static const auto* table = [] {
        auto* t = new std::unordered_map<std::string, U32>();
        t->reserve(std::size(kHtml5Entities));
        for (const auto& e : kHtml5Entities) {
            U32 v(1, static_cast<char32_t>(e.cp1));
            if (e.cp2) v.push_back(static_cast<char32_t>(e.cp2));
            t->emplace(e.name, std::move(v));
        }
        return t;
    }();
    return *table;
}

bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_ascii_hex(char32_t c) { return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char32_t c) { return is_ascii_digit(c) ? int(c - '0') : int((c | 0x20) - 'a' + 10); }

/// CPython html._replace_charref for a numeric reference whose value (saturated) is `num`.
U32 numeric_replacement(uint64_t num) {
    for (const auto& [k, v] : kInvalidCharrefs) {
        if (k == num) return U32(1, static_cast<char32_t>(v));
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U32(1, U'\uFFFD');
    if (std::binary_search(std::begin(kInvalidCodepoints), std::end(kInvalidCodepoints), static_cast<uint32_t>(num))) {
        return U32();
    }
    return U32(1, static_cast<char32_t>(num));
}

/// One pass of `_charref.sub(_replace_charref, s)` with
/// _charref = &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
U32 unescape_once(const U32& s) {
    if (s.find(U'&') == U32::npos) return s;
    U32 out;
    out.reserve(s.size());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        if (s[i] != U'&') {
            out.push_back(s[i++]);
            continue;
        }
        std::size_t j = i + 1;
        if (j < n && s[j] == U'#') {
            const bool hex = j + 1 < n && (s[j + 1] == U'x' || s[j + 1] == U'X');
            std::size_t k = j + (hex ? 2 : 1);
            const std::size_t digits_start = k;
            uint64_t num = 0;
            while (k < n && (hex ? is_ascii_hex(s[k]) : is_ascii_digit(s[k]))) {
                num = std::min<uint64_t>(num * (hex ? 16 : 10) + hex_value(s[k]), 0x110000);  // saturate
                ++k;
            }
            if (k == digits_start) {  // "&#" + no digits: no alternative matches ('#' is excluded from names)
                out.push_back(s[i++]);
                continue;
            }
            if (k < n && s[k] == U';') ++k;
            out += numeric_replacement(num);
            i = k;
            continue;
        }
        // Named: up to 32 characters outside [\t\n\f <&#;], then an optional ';'.
        std::size_t k = j;
        while (k < n && k - j < 32) {
            const char32_t c = s[k];
            if (c == U'\t' || c == U'\n' || c == U'\f' || c == U' ' || c == U'<' || c == U'&' || c == U'#' ||
                c == U';') {
                break;
            }
            ++k;
        }
        if (k == j) {
            out.push_back(s[i++]);
            continue;
        }
        if (k < n && s[k] == U';') ++k;
        const U32 name = s.substr(j, k - j);
        const auto& table = entity_table();
        auto it = table.find(encode_utf8(name));
        if (it != table.end()) {
            out += it->second;
        } else {
            bool found = false;
            for (std::size_t x = name.size() - 1; x > 1; --x) {  // longest prefix, at least 2 characters
                it = table.find(encode_utf8(name.substr(0, x)));
                if (it != table.end()) {
                    out += it->second;
                    out += name.substr(x);
                    found = true;
                    break;
                }
            }
            if (!found) {
                out.push_back(U'&');
                out += name;
            }
        }
        i = k;
    }
    return out;
}

U32 python_strip(const U32& s) {
    std::size_t b = 0, e = s.size();
    while (b < e && is_python_space(s[b])) ++b;
    while (e > b && is_python_space(s[e - 1])) --e;
    return s.substr(b, e - b);
}

}  // namespace

bool is_unicode_whitespace(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_python_space(char32_t c) { return is_unicode_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

std::string html_unescape(std::string_view text) { return encode_utf8(unescape_once(decode_utf8(text))); }

std::string clean_prompt(std::string_view text) {
    // basic_clean (ftfy.fix_text skipped, see tokenizer.h)
    const U32 t = python_strip(unescape_once(unescape_once(decode_utf8(text))));
    // whitespace_clean: regex.sub(r'\s+', ' ', t).strip()
    U32 collapsed;
    collapsed.reserve(t.size());
    for (std::size_t i = 0; i < t.size();) {
        if (is_unicode_whitespace(t[i])) {
            collapsed.push_back(U' ');
            while (i < t.size() && is_unicode_whitespace(t[i])) ++i;
        } else {
            collapsed.push_back(t[i++]);
        }
    }
    return encode_utf8(python_strip(collapsed));
}

}  // namespace ipa::models::t5
