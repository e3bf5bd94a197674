#include "ipa/curate/review/index_html.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/curate/review/ranking.h"

namespace ipa::curate::review {
namespace fs = std::filesystem;

std::string url_encode_path(const fs::path& rel) {
    std::string out;
    for (unsigned char c : rel.generic_string()) {
        const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '.' || c == '_' || c == '~' || c == '/';
        if (keep) {
            out += static_cast<char>(c);
        } else {
            out += fmt::format("%{:02X}", c);
        }
    }
    return out;
}

namespace {

// Filter/sort by decision. Kept free of '<' and '&' so the page stays well-formed markup.
constexpr const char* kScript = R"JS(
(function () {
  var tbody = document.getElementById('rows');
  var rows = Array.prototype.slice.call(tbody.rows);
  var filter = document.getElementById('filter');
  var sort = document.getElementById('sort');
  var shown = document.getElementById('shown');
  var order = {good: 0, bad: 1, skip: 2, undecided: 3};
  function apply() {
    var f = filter.value, s = sort.value, list = rows.slice(), n = 0;
    list.sort(function (a, b) {
      var ra = Number(a.dataset.rank), rb = Number(b.dataset.rank);
      if (s === 'score-asc') return rb - ra;
      if (s === 'id') return a.dataset.id === b.dataset.id ? 0 : (a.dataset.id > b.dataset.id ? 1 : -1);
      if (s === 'decision') {
        var d = order[a.dataset.decision] - order[b.dataset.decision];
        if (d !== 0) return d;
      }
      return ra - rb;
    });
    list.forEach(function (r) {
      var visible = f === 'all' || r.dataset.decision === f || r.dataset.pass === f;
      r.hidden = !visible;
      if (visible) n += 1;
      tbody.appendChild(r);
    });
    shown.textContent = n + ' of ' + rows.length + ' shown';
  }
  window.ipaIndexApply = apply;  // re-filter after a decision changes (ipa-curate serve)
  filter.addEventListener('change', apply);
  sort.addEventListener('change', apply);
  document.getElementById('controls').hidden = false;
  apply();
})();
)JS";

constexpr const char* kStyle = R"CSS(
body { font-family: sans-serif; margin: 1em; background: #fafafa; color: #222; }
table#cands { border-collapse: collapse; width: 100%; }
table#cands > thead > tr > th, table#cands > tbody > tr > td { border-bottom: 1px solid #ccc; padding: 6px; vertical-align: top; text-align: left; }
table.stats td, table.stats th { padding: 0 8px 0 0; font-size: 90%; font-weight: normal; text-align: left; }
img.sheet { max-width: var(--thumb); height: auto; border: 1px solid #999; }
.pass { color: #0a7d2c; font-weight: bold; }
.fail { color: #b00020; font-weight: bold; }
.d-good { background: #e6f6ea; }
.d-bad { background: #fbe9eb; }
.d-skip { background: #f0f0f0; }
.id { font-family: monospace; font-weight: bold; }
.prompt { max-width: 28em; font-size: 90%; color: #444; }
.missing { color: #b00020; }
.note, .meta { font-size: 85%; color: #555; }
#controls { margin: 0.5em 0; }
)CSS";

/// `target` relative to `page_dir` (both made absolute, symlinks resolved where they exist).
fs::path relative_to(const fs::path& target, const fs::path& page_dir) {
    const fs::path t = fs::weakly_canonical(fs::absolute(target));
    const fs::path d = fs::weakly_canonical(fs::absolute(page_dir));
    const fs::path rel = t.lexically_relative(d);
    return rel.empty() ? t : rel;
}

/// The URL of `target` on the page: opts.href, else relative to the page's directory.
std::string link_url(const fs::path& target, const fs::path& page_dir, const IndexOptions& opts) {
    return opts.href ? opts.href(target) : url_encode_path(relative_to(target, page_dir));
}

std::string file_link(const fs::path& target, const fs::path& page_dir, const std::string& label,
                      const IndexOptions& opts) {
    if (target.empty()) return {};
    const std::string url = fs::exists(target) ? link_url(target, page_dir, opts) : std::string();
    if (url.empty()) {
        return fmt::format("<div class=\"missing\">{} missing: {}</div>", html_escape(label),
                           html_escape(target.filename().string()));
    }
    return fmt::format("<div><a href=\"{}\">{}</a></div>", html_escape(url), html_escape(label));
}

}  // namespace

std::string render_index_html(const fs::path& page_dir, const Manifest& m, const std::vector<CandidateScore>& scores,
                              const IndexOptions& opts) {
    const auto ranked = rank_candidates(m, scores);
    if (opts.decisions) {
        std::set<std::string> ids;
        for (const auto& r : m.rows) ids.insert(r.id);
        opts.decisions->check_ids(ids, m.path);
    }
    std::map<std::string, std::string> failed;  // id -> why scoring failed
    for (const auto& f : opts.failures) failed[f.id] = f.reason;
    int64_t pass = 0, fail = 0, unscored = 0, scoring_failed = 0;
    std::map<std::string, int64_t> dcount{{"good", 0}, {"bad", 0}, {"skip", 0}, {"undecided", 0}};
    for (const auto& c : ranked) {
        if (!c.score) {
            ++(failed.count(c.row->id) ? scoring_failed : unscored);
        } else {
            ++(c.score->pass ? pass : fail);
        }
        const auto d = opts.decisions ? opts.decisions->latest(c.row->id) : std::nullopt;
        ++dcount[d ? std::string(to_string(d->decision)) : "undecided"];
    }

    std::string h;
    h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n";
    h += fmt::format("<title>{}</title>\n", html_escape(opts.title));
    h += fmt::format("<style>:root {{ --thumb: {}px; }}{}</style>\n{}</head>\n<body>\n", opts.thumb_width, kStyle,
                     opts.head_extra);
    h += fmt::format("<h1>{}</h1>\n", html_escape(opts.title));
    h += fmt::format(
        "<p class=\"summary\">{} candidates from <code>{}</code>: {} pass, {} fail{}{}. Decisions: <span "
        "id=\"dcounts\">{} good, {} bad, {} skip, {} undecided</span>{}.</p>\n",
        ranked.size(), html_escape(m.path.string()), pass, fail,
        scoring_failed ? fmt::format(", <span class=\"fail\">{} failed scoring</span>", scoring_failed) : std::string(),
        unscored ? fmt::format(", {} without a score", unscored) : std::string(), dcount["good"], dcount["bad"],
        dcount["skip"], dcount["undecided"],
        opts.decisions ? fmt::format(" (<code>{}</code>)", html_escape(opts.decisions->path().string()))
                       : std::string(" (no decisions log given)"));
    h += opts.body_top;
    h += "<div id=\"controls\" hidden=\"hidden\">Show <select id=\"filter\">"
         "<option value=\"all\">all</option><option value=\"undecided\">undecided</option>"
         "<option value=\"good\">good</option><option value=\"bad\">bad</option><option value=\"skip\">skip</option>"
         "<option value=\"pass\">score pass</option><option value=\"fail\">score fail</option>"
         "<option value=\"scoring-failed\">scoring failed</option></select>"
         " Sort <select id=\"sort\"><option value=\"score\">score, best first</option>"
         "<option value=\"score-asc\">score, worst first</option><option value=\"decision\">decision</option>"
         "<option value=\"id\">id</option></select> <span id=\"shown\"></span></div>\n";
    h += "<table id=\"cands\">\n<thead><tr><th>#</th><th>contact sheet</th><th>candidate</th><th>score</th>"
         "<th>stats</th><th>decision</th></tr></thead>\n<tbody id=\"rows\">\n";

    int64_t rank = 0;
    for (const auto& c : ranked) {
        ++rank;
        const auto& row = *c.row;
        const auto d = opts.decisions ? opts.decisions->latest(row.id) : std::nullopt;
        const std::string dword = d ? std::string(to_string(d->decision)) : "undecided";
        const auto why = failed.find(row.id);
        const std::string pass_word =
            c.score ? (c.score->pass ? "pass" : "fail") : (why != failed.end() ? "scoring-failed" : "none");
        h += fmt::format("<tr class=\"d-{}\" data-id=\"{}\" data-rank=\"{}\" data-decision=\"{}\" data-pass=\"{}\">\n",
                         dword, html_escape(row.id), rank, dword, pass_word);
        h += fmt::format("<td>{}</td>\n<td>", rank);
        if (opts.sheets_dir) {
            const fs::path sheet = *opts.sheets_dir / sheet_filename(row.id);
            const std::string url = fs::exists(sheet) ? link_url(sheet, page_dir, opts) : std::string();
            if (!url.empty()) {
                const std::string href = html_escape(url);
                h += fmt::format(
                    "<a href=\"{}\"><img class=\"sheet\" src=\"{}\" alt=\"contact sheet of {}\" "
                    "loading=\"lazy\" /></a>",
                    href, href, html_escape(row.id));
            } else {
                h +=
                    fmt::format("<span class=\"missing\">no sheet ({})</span>", html_escape(sheet.filename().string()));
            }
        }
        h += "</td>\n<td>";
        h += fmt::format("<div class=\"id\">{}</div>", html_escape(row.id));
        if (c.score && !c.score->group.empty()) h += fmt::format("<div>group {}</div>", html_escape(c.score->group));
        h += file_link(row.video, page_dir, "video", opts);
        h += file_link(row.vace_video, page_dir, "pose video", opts);
        h += file_link(row.vace_reference_image, page_dir, "reference image", opts);
        for (const auto& [k, v] : row.extra) {
            if (k == "group" && c.score && c.score->group == v) continue;
            h += fmt::format("<div>{}: {}</div>", html_escape(k), html_escape(v));
        }
        if (!row.prompt.empty()) h += fmt::format("<div class=\"prompt\">{}</div>", html_escape(row.prompt));
        h += "</td>\n";
        if (c.score) {
            h += fmt::format("<td><div>{}</div><div class=\"{}\">{}</div></td>\n", format_number(c.score->score),
                             pass_word, c.score->pass ? "PASS" : "FAIL");
            h += "<td><table class=\"stats\"><tbody>";
            for (const auto& [k, v] : main_stats(*c.score)) {
                h += fmt::format("<tr><th>{}</th><td>{}</td></tr>", html_escape(k), format_number(v));
            }
            h += "</tbody></table>";
            const auto worst =
                std::min_element(c.score->frames.begin(), c.score->frames.end(),
                                 [](const FrameScore& a, const FrameScore& b) { return a.score < b.score; });
            if (worst != c.score->frames.end()) {
                h += fmt::format("<div class=\"note\">worst frame {} (score {}, hand confidence {})</div>",
                                 worst->frame, format_number(worst->score), format_number(worst->hand_confidence));
            }
            h += "</td>\n";
        } else if (why != failed.end()) {
            h += fmt::format(
                "<td><div class=\"fail\">scoring failed</div></td>\n<td><div class=\"note\">{}</div></td>\n",
                html_escape(why->second));
        } else {
            h += "<td>n/a</td>\n<td></td>\n";
        }
        h += fmt::format("<td class=\"decision\"><div>{}</div>", dword);
        if (d) {
            if (!d->note.empty()) h += fmt::format("<div class=\"note\">{}</div>", html_escape(d->note));
            h += fmt::format("<div class=\"meta\">{} {}</div>", html_escape(d->reviewer), html_escape(d->time));
        }
        h += "</td>\n</tr>\n";
    }
    h += "</tbody>\n</table>\n";
    h += fmt::format("<script>{}</script>\n{}</body>\n</html>\n", kScript, opts.body_end);
    return h;
}

void write_index_html(const fs::path& out, const Manifest& m, const std::vector<CandidateScore>& scores,
                      const IndexOptions& opts) {
    const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
    fs::create_directories(dir);
    write_file_atomic(out, render_index_html(dir, m, scores, opts));
}

}  // namespace ipa::curate::review
