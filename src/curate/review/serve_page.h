#pragma once

// The parts `ipa-curate serve` adds to the index page (render_index_html's head_extra,
// body_top and body_end): styles, the viewer of the current candidate and the script that
// marks by key and talks to /api/state, /api/candidates and /api/decide. Everything inline.

#include <string>

namespace ipa::curate::review::serve_page {

/// <style> for the viewer.
std::string head();
/// The viewer panel (escaped reviewer and decisions log path in its help line).
std::string viewer(const std::string& reviewer, const std::string& decisions_log);
/// <script> with the review logic.
std::string script();

}  // namespace ipa::curate::review::serve_page
