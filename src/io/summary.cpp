#include "ipa/io/summary.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <nlohmann/json.hpp>

#include "ipa/io/checkpoint.h"

namespace ipa::io {

std::string format_bytes(double bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        ++u;
    }
    return u == 0 ? fmt::format("{:.0f} {}", bytes, units[u]) : fmt::format("{:.2f} {}", bytes, units[u]);
}

std::string format_key_list(const Checkpoint& ckpt, const KeyListOptions& options) {
    std::vector<TensorMeta> entries;
    for (auto& e : ckpt.entries()) {
        if (options.contains.empty() || e.name.find(options.contains) != std::string::npos) {
            entries.push_back(std::move(e));
        }
    }
    int64_t total_numel = 0;
    uint64_t total_bytes = 0;
    std::map<std::string, std::pair<int64_t, int64_t>> per_dtype;  // dtype -> (tensors, numel)
    for (const auto& e : entries) {
        total_numel += e.numel();
        total_bytes += e.nbytes();
        auto& d = per_dtype[e.dtype];
        d.first += 1;
        d.second += e.numel();
    }
    if (options.json) {
        nlohmann::json j;
        j["source"] = ckpt.description();
        j["tensors"] = nlohmann::json::array();
        if (!options.totals_only) {
            for (const auto& e : entries) {
                j["tensors"].push_back({{"name", e.name}, {"dtype", e.dtype}, {"shape", e.shape}, {"file", e.file}});
            }
        }
        j["totals"] = {{"tensors", entries.size()}, {"elements", total_numel}, {"bytes", total_bytes}};
        for (const auto& [d, v] : per_dtype) j["totals"]["dtypes"][d] = {{"tensors", v.first}, {"elements", v.second}};
        j["metadata"] = ckpt.metadata();
        return j.dump(2) + "\n";
    }
    std::string out;
    if (!options.totals_only) {
        std::size_t width = 4;
        for (const auto& e : entries) width = std::max(width, e.name.size());
        for (const auto& e : entries) {
            out += fmt::format("{:<{}}  {:<8} [{}]\n", e.name, width, e.dtype, fmt::join(e.shape, ", "));
        }
    }
    const double n = static_cast<double>(total_numel);
    const std::string approx = n >= 1e9   ? fmt::format(" ({:.3f} B)", n / 1e9)
                               : n >= 1e6 ? fmt::format(" ({:.3f} M)", n / 1e6)
                                          : "";
    out += fmt::format("{} tensors, {} elements{}, {} stored\n", entries.size(), total_numel, approx,
                       format_bytes(static_cast<double>(total_bytes)));
    for (const auto& [d, v] : per_dtype) {
        out += fmt::format("  {:<8} {} tensors, {} elements\n", d, v.first, v.second);
    }
    return out;
}

}  // namespace ipa::io
