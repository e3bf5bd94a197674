#pragma once

#include <string>
#include <string_view>

namespace ipa {

/// Escapes & < > " ' for HTML text and attribute values (the static pages of ipa-curate and
/// ipa-eval).
std::string html_escape(std::string_view s);

}  // namespace ipa
