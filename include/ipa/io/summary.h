#pragma once

#include <string>

namespace ipa::io {

class Checkpoint;

struct KeyListOptions {
    std::string contains;  ///< only names containing this substring
    bool json = false;     ///< one JSON document instead of a table
    bool totals_only = false;
};

/// The `ipa-inspect keys` listing: name, stored dtype, shape per tensor, then totals
/// (tensors, elements, bytes, per dtype).
std::string format_key_list(const Checkpoint& ckpt, const KeyListOptions& options = {});

/// "1.23 GiB", "512 B".
std::string format_bytes(double bytes);

}  // namespace ipa::io
