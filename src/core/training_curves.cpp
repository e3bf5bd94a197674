// write_training_curves (ipa/core/plot.h): a trainer metrics.jsonl as one PNG of panels.

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "ipa/core/error.h"
#include "ipa/core/plot.h"

namespace fs = std::filesystem;

namespace ipa::plot {
namespace {

// The quantities plotted, in panel order, when a line has them.
const char* const kQuantities[] = {"loss", "gap", "reward_accuracy", "margin", "lr", "grad_norm"};

using Curves = std::map<std::string, std::map<int64_t, double>>;  // quantity -> step -> value

void read_line(const fs::path& file, int line_no, const std::string& line, Curves& curves) {
    const auto where = [&] { return fmt::format("{}:{}", file.string(), line_no); };
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
        throw DataError(fmt::format("{}: not a JSON line: {}", where(), e.what()));
    }
    if (!j.is_object()) throw DataError(where() + ": not a JSON object");
    const auto step = j.find("step");
    if (step == j.end() || !step->is_number_integer())
        throw DataError(where() + ": no integer `step` (is this a trainer metrics.jsonl?)");
    for (const char* q : kQuantities) {
        const auto it = j.find(q);
        if (it == j.end()) continue;
        if (!it->is_number() && !it->is_null())
            throw DataError(fmt::format("{}: `{}` is not a number: {}", where(), q, it->dump()));
        curves[q][step->get<int64_t>()] = it->is_null() ? NAN : it->get<double>();  // null: a NaN step
    }
}

Curves read_curves(const fs::path& file) {
    std::ifstream in(file);
    if (!in) throw DataError("training curves: cannot open " + file.string());
    Curves curves;
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string::npos)
            throw DataError(fmt::format("{}:{}: blank line", file.string(), line_no));
        read_line(file, line_no, line, curves);
    }
    if (in.bad()) throw DataError("training curves: cannot read " + file.string());
    if (curves.empty())
        throw DataError(
            fmt::format("{}: nothing to plot ({} lines; none has loss, gap, reward_accuracy, margin, lr "
                        "or grad_norm)",
                        file.string(), line_no));
    return curves;
}

Canvas panel(const std::string& name, const std::map<int64_t, double>& points) {
    Series s{name, {}, {}};
    for (const auto& [step, v] : points) s.x.push_back(static_cast<double>(step)), s.y.push_back(v);
    std::string title = name;
    if (!s.y.empty() && std::isfinite(s.y.back())) title += fmt::format(" (last {:.4g})", s.y.back());
    return LineChart{title, "step", {s}}.render(480, 300);
}

}  // namespace

void write_training_curves(const fs::path& metrics_jsonl, const fs::path& png_out) {
    const auto curves = read_curves(metrics_jsonl);
    std::vector<Canvas> panels;
    for (const char* q : kQuantities)
        if (curves.count(q)) panels.push_back(panel(q, curves.at(q)));
    write_png(png_out, tile(panels, panels.size() > 4 ? 3 : 2));
}

}  // namespace ipa::plot
