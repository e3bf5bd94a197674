// The static HTML index: well-formed markup, escaping of hostile manifest text, relative
// links that resolve, rows sorted by score without JavaScript.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>

#include "../../common/test_util.h"
#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/curate/review/index_html.h"
#include "ipa/curate/review/ranking.h"
#include "review_test_util.h"

namespace fs = std::filesystem;
namespace rv = ipa::curate::review;

namespace {

/// A tiny markup checker: every tag is closed in order (void tags must be written `<x />`),
/// script/style bodies are raw text, no '<' or '>' outside tags, attributes are quoted, and
/// '&' only starts a known entity. Returns "" if well-formed, else the first problem.
std::string check_markup(const std::string& h, std::vector<std::string>* links, std::vector<std::string>* tag_names) {
    std::vector<std::string> stack;
    std::size_t i = 0;
    const std::regex attr_re(R"re(\s+([a-zA-Z-]+)="([^"<>]*)")re");
    while (i < h.size()) {
        const char c = h[i];
        if (c == '&') {
            static const std::regex ent("^&(amp|lt|gt|quot|#39);");
            if (!std::regex_search(h.substr(i, 8), ent)) return "bare & at " + std::to_string(i);
            ++i;
            continue;
        }
        if (c == '>') return "bare > at " + std::to_string(i);
        if (c != '<') {
            ++i;
            continue;
        }
        const auto end = h.find('>', i);
        if (end == std::string::npos) return "unterminated tag at " + std::to_string(i);
        std::string tag = h.substr(i + 1, end - i - 1);
        i = end + 1;
        if (tag.rfind("!DOCTYPE", 0) == 0) continue;
        if (!tag.empty() && tag[0] == '/') {
            const std::string name = tag.substr(1);
            if (stack.empty() || stack.back() != name) {
                return "closing </" + name + "> but open is <" + (stack.empty() ? "" : stack.back()) + ">";
            }
            stack.pop_back();
            continue;
        }
        const bool self_closing = !tag.empty() && tag.back() == '/';
        if (self_closing) tag.pop_back();
        const auto sp = tag.find_first_of(" \n");
        const std::string name = tag.substr(0, sp);
        if (name.empty() || !std::regex_match(name, std::regex("[a-z][a-z0-9]*"))) return "bad tag name '" + name + "'";
        std::string rest = sp == std::string::npos ? "" : tag.substr(sp);
        // Attributes: name="value" only.
        std::string leftover = std::regex_replace(rest, attr_re, "");
        if (leftover.find_first_not_of(" \n") != std::string::npos) return "bad attributes in <" + tag + ">";
        for (std::sregex_iterator it(rest.begin(), rest.end(), attr_re), e; it != e; ++it) {
            if (((*it)[1] == "href" || (*it)[1] == "src") && links) links->push_back((*it)[2]);
        }
        if (tag_names) tag_names->push_back(name);
        static const std::set<std::string> kVoid = {"meta", "img", "br", "input", "link", "hr"};
        if (kVoid.count(name) && !self_closing) return "void <" + name + "> not written as <" + name + " />";
        if (self_closing) continue;
        if (name == "script" || name == "style") {  // raw text up to the closing tag
            const auto close = h.find("</" + name + ">", i);
            if (close == std::string::npos) return "unclosed <" + name + ">";
            i = close;
        }
        stack.push_back(name);
    }
    if (!stack.empty()) return "unclosed <" + stack.back() + ">";
    return "";
}

std::string url_decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string html_unescape(std::string s) {
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}}) {
        for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size())
            s.replace(p, from.size(), to);
    }
    return s;
}

}  // namespace

TEST(IndexHtml, CheckerRejectsBrokenMarkup) {
    EXPECT_EQ(check_markup("<p><b>x</b></p>", nullptr, nullptr), "");
    EXPECT_NE(check_markup("<p><b>x</p></b>", nullptr, nullptr), "");
    EXPECT_NE(check_markup("<p>a < b</p>", nullptr, nullptr), "");
    EXPECT_NE(check_markup("<p>AT&T</p>", nullptr, nullptr), "");
    EXPECT_NE(check_markup("<img src=x>", nullptr, nullptr), "");
    EXPECT_NE(check_markup("<div>", nullptr, nullptr), "");
}

TEST(IndexHtml, WellFormedEscapedAndLinksResolve) {
    ipa::test::TempDir dir("idx");
    const std::string hostile = "x\"'<b>&amp;";
    auto m = ipa::test::small_manifest(dir.path / "data", {"good one", hostile, "c3"});
    m.rows[1].prompt = "<script>alert(\"pwned\")</script> & 'quotes'";
    m.rows[1].extra["defect"] = "fused <fingers>";
    m.rows[2].vace_video = dir.path / "data" / "gone.mp4";  // missing file: shown, not linked
    const auto s = ipa::test::small_scores({{"good one", 0.4}, {hostile, 0.95}, {"c3", 0.7}});

    // Sheets for two of three candidates, in a directory with a space and a '#'.
    const fs::path sheets = dir.path / "sheets #1";
    fs::create_directories(sheets);
    std::ofstream(sheets / rv::sheet_filename(hostile)) << "png";
    std::ofstream(sheets / rv::sheet_filename("c3")) << "png";

    auto log = rv::DecisionLog::open(dir.path / "decisions.csv");
    log.append(hostile, rv::Decision::bad, "<i>awful</i> hand", "r<o>b");
    log.append("c3", rv::Decision::good);

    rv::IndexOptions o;
    o.sheets_dir = sheets;
    o.decisions = &log;
    const fs::path page = dir.path / "site" / "index.html";
    rv::write_index_html(page, m, s, o);
    const std::string h = ipa::read_file(page);

    std::vector<std::string> links, tags;
    EXPECT_EQ(check_markup(h, &links, &tags), "");
    // No hostile text raw; its escaped form is present.
    EXPECT_EQ(h.find("<script>alert"), std::string::npos);
    EXPECT_EQ(h.find("<b>&amp;"), std::string::npos);
    EXPECT_EQ(h.find("<i>awful"), std::string::npos);
    EXPECT_NE(h.find("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;"),
              std::string::npos);
    EXPECT_NE(h.find("x&quot;&#39;&lt;b&gt;&amp;amp;"), std::string::npos);
    EXPECT_NE(h.find("fused &lt;fingers&gt;"), std::string::npos);
    EXPECT_NE(h.find("&lt;i&gt;awful&lt;/i&gt; hand"), std::string::npos);
    EXPECT_EQ(std::count(tags.begin(), tags.end(), "script"), 1);  // only our own script

    // Every link is relative and resolves from the page's directory.
    ASSERT_GE(links.size(), 5u);  // 3 videos + 2 sheets (img src and a href)
    int sheet_links = 0;
    for (const auto& l : links) {
        EXPECT_EQ(l.find("://"), std::string::npos) << l;
        EXPECT_NE(l.front(), '/') << l;
        const fs::path target = page.parent_path() / url_decode(html_unescape(l));
        EXPECT_TRUE(fs::exists(target)) << l << " -> " << target;
        sheet_links += l.rfind("../sheets%20%231/", 0) == 0 ? 1 : 0;
    }
    EXPECT_EQ(sheet_links, 4);
    EXPECT_NE(h.find("no sheet (" + rv::sheet_filename("good one") + ")"),
              std::string::npos);  // not rendered -> said so
    EXPECT_NE(h.find("pose video missing: gone.mp4"), std::string::npos);

    // Without JavaScript: all rows, best score first, controls hidden; decisions shown.
    std::vector<std::string> ids;
    const std::regex row_re("<tr class=\"d-([a-z]+)\" data-id=\"([^\"]*)\" data-rank=\"([0-9]+)\"");
    std::vector<std::string> decisions;
    for (std::sregex_iterator it(h.begin(), h.end(), row_re), e; it != e; ++it) {
        decisions.push_back((*it)[1]);
        ids.push_back(html_unescape((*it)[2]));
    }
    EXPECT_EQ(ids, (std::vector<std::string>{hostile, "c3", "good one"}));
    EXPECT_EQ(decisions, (std::vector<std::string>{"bad", "good", "undecided"}));
    EXPECT_NE(h.find("<div id=\"controls\" hidden=\"hidden\">"), std::string::npos);
    EXPECT_NE(h.find("3 candidates"), std::string::npos);
    EXPECT_NE(h.find("2 pass, 1 fail"), std::string::npos);
    EXPECT_NE(h.find("1 good, 1 bad, 0 skip, 1 undecided"), std::string::npos);
    EXPECT_NE(h.find("<div class=\"fail\">FAIL</div>"), std::string::npos);
    EXPECT_NE(h.find("<th>confidence_mean</th><td>0.855</td>"), std::string::npos);
    EXPECT_NE(h.find("worst frame 2 (score 0.75, hand confidence 0.75)"), std::string::npos);

    // Decisions of another manifest are refused.
    log.append("stranger", rv::Decision::good);
    EXPECT_THROW(rv::render_index_html(page.parent_path(), m, s, o), ipa::DataError);
}

TEST(IndexHtml, EscapeAndUrlEncode) {
    EXPECT_EQ(rv::html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    EXPECT_EQ(rv::url_encode_path("../sheets #1/a b?.png"), "../sheets%20%231/a%20b%3F.png");
}
