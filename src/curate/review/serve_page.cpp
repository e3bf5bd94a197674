#include "serve_page.h"

#include <fmt/format.h>

#include "ipa/core/html.h"

namespace ipa::curate::review::serve_page {
namespace {

constexpr const char* kStyle = R"CSS(
#viewer { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 2px solid #888; padding: 6px 8px; max-height: 64vh; overflow: auto; }
#viewer .media { display: flex; gap: 10px; align-items: flex-start; flex-wrap: wrap; }
#viewer figure { margin: 0; }
#viewer figcaption { font-size: 85%; color: #555; }
#viewer video, #viewer img.medium { max-height: 30vh; max-width: 31vw; background: #000; display: block; }
#m-sheet { max-width: 100%; max-height: 18vh; display: block; margin-top: 4px; }
#head { display: flex; gap: 1.2em; align-items: baseline; flex-wrap: wrap; }
#progress { font-weight: bold; font-size: 110%; }
#cur-id { font-family: monospace; font-weight: bold; font-size: 110%; }
#cur-decision { padding: 0 6px; border: 1px solid #aaa; }
#cur-stats span { margin-right: 1em; font-size: 90%; }
#status { min-height: 1.2em; font-size: 90%; }
#status.error { color: #b00020; font-weight: bold; }
#pending-note { color: #6a4c00; font-size: 90%; }
.keys { font-size: 85%; color: #444; }
.keys kbd { border: 1px solid #999; border-radius: 3px; padding: 0 4px; background: #f4f4f4; }
tr.current > td { background: #dbe9ff; }
tr.current > td:first-child { border-left: 4px solid #1a73e8; }
tr.current { scroll-margin-top: 66vh; }
#rows > tr { cursor: pointer; }
)CSS";

// Kept free of '<' and '&' like the index's own script, so the page stays well-formed markup.
constexpr const char* kScript = R"JS(
(function () {
  'use strict';
  var tbody = document.getElementById('rows');
  var rowsById = {}, info = {}, decisions = {}, etag = null, current = null, total = 0;
  var pendingNote = '', chain = Promise.resolve(), inFlight = 0;
  Array.prototype.forEach.call(tbody.rows, function (r) { rowsById[r.dataset.id] = r; });
  function el(id) { return document.getElementById(id); }
  function status(text, isError) {
    var s = el('status');
    s.textContent = text;
    s.className = isError ? 'error' : '';
  }
  function request(method, url, body) {
    var o = {method: method, cache: 'no-store', headers: {}};
    if (body !== undefined) {
      o.headers['Content-Type'] = 'application/json';
      o.body = JSON.stringify(body);
    }
    return fetch(url, o).then(function (r) {
      return r.text().then(function (t) {
        var j = null;
        try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
        if (!r.ok) throw new Error(j ? j.error : r.status + ' ' + r.statusText);
        return j;
      });
    });
  }
  function decisionOf(id) { var d = decisions[id]; return d ? d.decision : 'undecided'; }
  function fmt(v) { return v === null ? 'n/a' : Number(v).toPrecision(3); }
  function renderRow(id) {
    var r = rowsById[id];
    if (!r) return;
    var d = decisions[id], word = decisionOf(id);
    r.dataset.decision = word;
    r.className = 'd-' + word;
    if (id === current) r.classList.add('current');
    var cell = r.querySelector('td.decision');
    if (!cell) return;
    cell.textContent = '';
    var w = document.createElement('div');
    w.textContent = word;
    cell.appendChild(w);
    if (d) {
      if (d.note) {
        var n = document.createElement('div');
        n.className = 'note';
        n.textContent = d.note;
        cell.appendChild(n);
      }
      var m = document.createElement('div');
      m.className = 'meta';
      m.textContent = d.reviewer + ' ' + d.time;
      cell.appendChild(m);
    }
  }
  function setMedia(kind, url) {
    var m = el('m-' + kind), none = el('m-' + kind + '-none');
    if (url) {
      if (m.getAttribute('src') !== url) m.setAttribute('src', url);
      m.hidden = false;
      if (none) none.hidden = true;
    } else {
      m.removeAttribute('src');
      m.hidden = true;
      if (none) none.hidden = false;
    }
  }
  function showCurrent() {
    var c = current === null ? null : info[current];
    el('viewer').dataset.current = current === null ? '' : current;
    if (!c) {
      el('cur-id').textContent = 'no candidate';
      return;
    }
    var word = decisionOf(c.id), d = decisions[c.id];
    el('cur-id').textContent = c.id;
    el('cur-rank').textContent = '#' + c.rank + ' of ' + total;
    el('cur-decision').textContent = word;
    el('cur-decision').className = 'd-' + word;
    var score = el('cur-score');
    if (c.score !== undefined) {
      score.textContent = 'score ' + fmt(c.score) + (c.pass ? ' PASS' : ' FAIL');
      score.className = c.pass ? 'pass' : 'fail';
    } else {
      score.textContent = c.failed ? 'scoring failed: ' + c.failed : 'no score';
      score.className = c.failed ? 'fail' : '';
    }
    setMedia('video', c.media.video);
    setMedia('pose', c.media.pose);
    setMedia('reference', c.media.reference);
    setMedia('sheet', c.media.sheet);
    var stats = el('cur-stats');
    stats.textContent = '';
    (c.stats || []).forEach(function (kv) {
      var s = document.createElement('span');
      s.textContent = kv[0] + ' ' + kv[1];
      stats.appendChild(s);
    });
    el('cur-group').textContent = c.group ? 'group ' + c.group : '';
    el('cur-prompt').textContent = c.prompt || '';
    el('cur-note').textContent = d ? (d.note ? 'note: ' + d.note : '') : '';
  }
  function setCurrent(id) {
    if (current !== null) {
      var old = rowsById[current];
      if (old) old.classList.remove('current');
    }
    current = id;
    var r = id === null ? null : rowsById[id];
    if (r) {
      r.classList.add('current');
      r.scrollIntoView({block: 'nearest'});
    }
    showCurrent();
  }
  function applyState(st) {
    var old = decisions;
    decisions = st.decisions;
    total = st.candidates;
    Object.keys(rowsById).forEach(function (id) {
      if (JSON.stringify(old[id]) !== JSON.stringify(decisions[id])) renderRow(id);
    });
    var c = st.counts;
    el('dcounts').textContent = c.good + ' good, ' + c.bad + ' bad, ' + c.skip + ' skip, ' + c.undecided + ' undecided';
    el('progress').textContent = st.decided + ' of ' + st.candidates + ' decided';
    if (window.ipaIndexApply) window.ipaIndexApply();
    showCurrent();
  }
  function refresh(force) {
    var o = {cache: 'no-store', headers: {}};
    if (etag !== null) {
      if (!force) o.headers['If-None-Match'] = etag;
    }
    return fetch('/api/state', o).then(function (r) {
      if (r.status === 304) return null;
      if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
      etag = r.headers.get('ETag');
      return r.json().then(applyState);
    });
  }
  function shownRows() {
    return Array.prototype.filter.call(tbody.rows, function (r) { return !r.hidden; });
  }
  // The next undecided row shown after the current one (wrapping), in the table's order.
  function advance() {
    var all = Array.prototype.slice.call(tbody.rows), n = all.length;
    var start = current === null ? -1 : all.indexOf(rowsById[current]);
    for (var k = 1; n >= k; k += 1) {
      var r = all[(start + k + n) % n];
      if (!r.hidden) {
        if (decisionOf(r.dataset.id) === 'undecided') return setCurrent(r.dataset.id);
      }
    }
    status('every candidate shown is decided (' + el('progress').textContent + ')');
    if (current === null) {
      var shown = shownRows();
      if (shown.length) setCurrent(shown[0].dataset.id);
    }
  }
  function move(delta) {
    var shown = shownRows(), i = shown.indexOf(rowsById[current]), j = i === -1 ? 0 : i + delta;
    if (j >= 0 ? shown.length > j : false) setCurrent(shown[j].dataset.id);
  }
  function showPending() {
    el('pending-note').textContent = pendingNote ? 'note for the next decision: ' + pendingNote : '';
  }
  function send(word) {
    var body = {decision: word};
    if (word !== 'undo') {
      if (current === null) return Promise.resolve();
      body.id = current;
      if (pendingNote) body.note = pendingNote;
    }
    return request('POST', '/api/decide', body).then(function (res) {
      if (word !== 'undo') {
        pendingNote = '';
        showPending();
      }
      status(word === 'undo' ? 'undid the latest decision of ' + res.id : res.id + ': ' + word);
      return refresh(true).then(function () {
        if (word === 'undo') setCurrent(res.id); else advance();
      });
    }).catch(function (e) {
      status('not recorded: ' + e.message, true);
    });
  }
  // Keys are applied in order, each after the previous decision is written.
  function queue(word) {
    inFlight += 1;
    document.body.dataset.busy = String(inFlight);
    chain = chain.then(function () { return send(word); }).then(function () {
      inFlight -= 1;
      document.body.dataset.busy = String(inFlight);
    });
  }
  function openNote() {
    el('noteform').hidden = false;
    var i = el('note');
    i.value = pendingNote;
    i.focus();
  }
  function closeNote(keep) {
    var i = el('note');
    if (keep) pendingNote = i.value.trim();
    el('noteform').hidden = true;
    i.blur();
    showPending();
  }
  function togglePlay() {
    ['m-video', 'm-pose'].forEach(function (id) {
      var v = el(id);
      if (v.paused) v.play().catch(function () {}); else v.pause();
    });
  }
  el('noteform').addEventListener('submit', function (e) {
    e.preventDefault();
    closeNote(true);
  });
  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target, tag = t.tagName;
    if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') {
      if (t.id === 'note' ? e.key === 'Escape' : false) {
        e.preventDefault();
        closeNote(false);
      }
      return;
    }
    var k = e.key;
    if (k === 'g') queue('good');
    else if (k === 'b') queue('bad');
    else if (k === 's') queue('skip');
    else if (k === 'u') queue('undo');
    else if (k === 'n') openNote();
    else if (k === 'j' || k === 'ArrowDown') move(1);
    else if (k === 'k' || k === 'ArrowUp') move(-1);
    else if (k === 'p') togglePlay();
    else return;
    e.preventDefault();
  });
  ['filter', 'sort'].forEach(function (id) {
    el(id).addEventListener('change', function (e) { e.target.blur(); });
  });
  tbody.addEventListener('click', function (e) {
    if (e.target.closest('a')) return;
    var r = e.target.closest('tr');
    if (r ? r.parentNode === tbody : false) setCurrent(r.dataset.id);
  });
  request('GET', '/api/candidates').then(function (c) {
    c.rows.forEach(function (r) { info[r.id] = r; });
    return refresh(true);
  }).then(function () {
    advance();
    document.body.dataset.ready = '1';
    setInterval(function () {
      refresh(false).catch(function (e) { status('cannot reach the server: ' + e.message, true); });
    }, 3000);
  }).catch(function (e) {
    status('cannot load the review state: ' + e.message, true);
  });
})();
)JS";

}  // namespace

std::string head() { return fmt::format("<style>{}</style>\n", kStyle); }

std::string viewer(const std::string& reviewer, const std::string& decisions_log) {
    std::string h;
    h += "<div id=\"viewer\">\n<div id=\"head\"><span id=\"progress\"></span><span id=\"cur-id\"></span>"
         "<span id=\"cur-rank\"></span><span id=\"cur-decision\"></span><span id=\"cur-score\"></span>"
         "<span id=\"cur-group\"></span></div>\n";
    h += "<div class=\"media\">"
         "<figure><figcaption>candidate</figcaption><video id=\"m-video\" class=\"medium\" controls loop muted "
         "autoplay playsinline hidden></video><div id=\"m-video-none\" class=\"missing\">no video</div></figure>"
         "<figure><figcaption>pose</figcaption><video id=\"m-pose\" class=\"medium\" controls loop muted autoplay "
         "playsinline hidden></video><div id=\"m-pose-none\" class=\"missing\">no pose video</div></figure>"
         "<figure><figcaption>reference</figcaption><img id=\"m-reference\" class=\"medium\" alt=\"reference "
         "image\" hidden /><div id=\"m-reference-none\" class=\"missing\">no reference image</div></figure>"
         "</div>\n";
    h += "<img id=\"m-sheet\" alt=\"contact sheet\" hidden />\n";
    h += "<div id=\"cur-stats\"></div><div id=\"cur-prompt\" class=\"prompt\"></div>"
         "<div id=\"cur-note\" class=\"note\"></div>\n";
    h += "<form id=\"noteform\" hidden=\"hidden\"><label>Note for the next decision: <input id=\"note\" "
         "maxlength=\"1000\" size=\"60\" autocomplete=\"off\" /></label> (Enter keeps it, Esc drops it)</form>\n";
    h += "<div id=\"pending-note\"></div><div id=\"status\" role=\"status\"></div>\n";
    h += fmt::format(
        "<div class=\"keys\">Keys: <kbd>g</kbd> good <kbd>b</kbd> bad <kbd>s</kbd> skip <kbd>u</kbd> undo the "
        "latest decision <kbd>n</kbd> note (for the next decision) <kbd>j</kbd>/<kbd>k</kbd> next/previous "
        "<kbd>p</kbd> play/pause; click a row to review it. Decisions are appended to <code>{}</code> as "
        "<code>{}</code>.</div>\n</div>\n",
        html_escape(decisions_log), html_escape(reviewer.empty() ? std::string("(no reviewer)") : reviewer));
    return h;
}

std::string script() { return fmt::format("<script>{}</script>\n", kScript); }

}  // namespace ipa::curate::review::serve_page
