#include "ipa/eval/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/core/html.h"
#include "ipa/core/plot.h"

namespace fs = std::filesystem;

namespace ipa::eval {
namespace {

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string csv_num(double v) { return std::isfinite(v) ? fmt::format("{:.10g}", v) : ""; }

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

std::string cell(double v, int digits) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "–"; }

// ---- charts (PNG next to index.html; every metric here is better when higher) ----

constexpr std::size_t kMaxBars = 60;  // the worst videos of a large set
constexpr int kChartWidth = 720;

struct MetricDef {
    const char* key;    ///< metrics.json key, chart file chart_<key>.png
    const char* title;  ///< as in the HTML tables
    bool higher_is_better;
};
constexpr MetricDef kChartMetrics[] = {{"psnr", "PSNR", true},           {"ssim", "SSIM", true},
                                       {"hand_psnr", "PSNR-Hand", true}, {"hand_ssim", "SSIM-Hand", true},
                                       {"lpips", "LPIPS", false},        {"hand_lpips", "LPIPS-Hand", false}};

double video_metric(const VideoFrameMetrics& v, const std::string& key) {
    if (key == "psnr") return v.mean_psnr();
    if (key == "ssim") return v.mean_ssim();
    if (key == "hand_psnr") return v.mean_hand_psnr();
    if (key == "lpips") return v.mean_lpips();
    if (key == "hand_lpips") return v.mean_hand_lpips();
    return v.mean_hand_ssim();
}

/// One bar chart per series of values by id: ids sorted by the first series, worst (lowest, or
/// highest when !higher_is_better) first, the ones without a value last; at most kMaxBars.
plot::BarChart sorted_bars(const std::string& title, const std::vector<std::string>& ids,
                           const std::vector<plot::BarSeries>& series, bool higher_is_better = true) {
    std::vector<std::size_t> order(ids.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    const auto& key = series.front().values;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const bool worse = higher_is_better ? key[a] < key[b] : key[a] > key[b];
        return worse || (std::isfinite(key[a]) && !std::isfinite(key[b]));
    });
    const std::size_t n = std::min(order.size(), kMaxBars);
    plot::BarChart chart;
    chart.title = n < order.size() ? fmt::format("{} (worst {} of {})", title, n, order.size()) : title;
    for (const auto& s : series) chart.series.push_back({s.name, {}});
    for (std::size_t r = 0; r < n; ++r) {
        chart.labels.push_back(ids[order[r]]);
        for (std::size_t s = 0; s < series.size(); ++s) chart.series[s].values.push_back(series[s].values[order[r]]);
    }
    return chart;
}

bool any_finite(const std::vector<double>& v) {
    return std::any_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

/// chart_<metric>.png per metric with at least one value; returns the HTML that shows them.
std::string write_metric_charts(const fs::path& out_dir, const std::vector<VideoFrameMetrics>& videos) {
    std::vector<std::string> ids;
    for (const auto& v : videos) ids.push_back(v.id);
    std::string html;
    for (const auto& m : kChartMetrics) {
        plot::BarSeries values{m.title, {}};
        for (const auto& v : videos) values.values.push_back(video_metric(v, m.key));
        if (!any_finite(values.values)) continue;
        const auto file = fmt::format("chart_{}.png", m.key);
        const auto chart =
            sorted_bars(fmt::format("{} per video, worst first", m.title), ids, {values}, m.higher_is_better);
        plot::write_png(out_dir / file, chart.render(kChartWidth));
        html += fmt::format("<p><img src=\"{}\" alt=\"{} per video\"></p>\n", file, m.title);
    }
    return html.empty() ? html : "<h2>Charts</h2>\n" + html;
}

/// LPIPS summary and setting keys of metrics.json.
void add_lpips_json(nlohmann::json& j, const FrameSummary& s, const std::string& net) {
    j["summary"]["lpips"] = num(s.lpips);
    j["summary"]["hand_lpips"] = num(s.hand_lpips);
    j["summary"]["lpips_video_mean"] = num(s.lpips_video_mean);
    j["settings"]["lpips"] = fmt::format(
        "lpips 0.1.4 LPIPS(net='{}', version='0.1') on RGB / 127.5 - 1; per frame and per hand crop of at "
        "least the network's smallest input",
        net);
}

/// ",<lpips>,<hand_lpips>" of a per_video.csv row (empty without LPIPS).
std::string lpips_csv(const VideoFrameMetrics& v, bool has) {
    return has ? fmt::format(",{},{}", csv_num(v.mean_lpips()), csv_num(v.mean_hand_lpips())) : "";
}

/// LPIPS cells of a row of the HTML video table (empty without LPIPS).
std::string lpips_cells(const VideoFrameMetrics& v, bool has) {
    return has ? fmt::format("<td>{}</td><td>{}</td>", cell(v.mean_lpips(), 4), cell(v.mean_hand_lpips(), 4)) : "";
}

}  // namespace

void write_report(const fs::path& out_dir, const Report& rep) {
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) throw DataError("report: cannot create " + out_dir.string() + ": " + ec.message());
    const auto s = summarize(rep.videos);
    nlohmann::json j;
    j["summary"] = {{"videos", s.videos},
                    {"frames", s.frames},
                    {"hand_crops", s.hand_crops},
                    {"psnr", num(s.psnr)},
                    {"ssim", num(s.ssim)},
                    {"hand_psnr", num(s.hand_psnr)},
                    {"hand_ssim", num(s.hand_ssim)},
                    {"psnr_video_mean", num(s.psnr_video_mean)},
                    {"ssim_video_mean", num(s.ssim_video_mean)}};
    if (rep.fid) {
        j["summary"]["fid"] = num(rep.fid->fid);
        j["fid"] = {{"fid", num(rep.fid->fid)},
                    {"eps_offset_used", rep.fid->eps_offset_used},
                    {"generated_frames", rep.fid->generated_frames},
                    {"ground_truth_frames", rep.fid->ground_truth_frames}};
    }
    if (rep.fid_vid) {
        j["summary"]["fid_vid"] = num(rep.fid_vid->fid_vid);
        j["fid_vid"] = {{"fid_vid", num(rep.fid_vid->fid_vid)},
                        {"eps_offset_used", rep.fid_vid->eps_offset_used},
                        {"generated_videos", rep.fid_vid->generated_videos},
                        {"ground_truth_videos", rep.fid_vid->ground_truth_videos},
                        {"generated_segments", rep.fid_vid->generated_segments},
                        {"ground_truth_segments", rep.fid_vid->ground_truth_segments},
                        {"reference",
                         "DisCo fid-vid (FVD-3DRN50): 3D ResNet-50 (resnet-50-kinetics.pth) on 16-frame segments, "
                         "112x112 PIL bicubic, mean-subtracted, features averaged per video, np.cov FID"}};
    }
    if (rep.fvd) {
        j["summary"]["fvd"] = num(rep.fvd->fvd);
        j["fvd"] = {{"fvd", num(rep.fvd->fvd)},
                    {"eps_offset_used", rep.fvd->eps_offset_used},
                    {"frames_per_clip", rep.fvd->num_frames},
                    {"generated_clips", rep.fvd->generated_clips},
                    {"ground_truth_clips", rep.fvd->ground_truth_clips},
                    {"feature_dim", rep.fvd->feature_dim},
                    {"reference",
                     "StyleGAN-V fvd2048_16f: first 16 frames of each video, i3d_torchscript.pt(rescale=True, "
                     "resize=True, return_features=True), FeatureStats covariance divided by n"}};
    }
    j["settings"] = {{"ssim", rep.ssim_setting},
                     {"psnr", "DisCo: float64 MSE over H, W, C of uint8 frames; 100 when equal"},
                     {"hand_crops", "square around pose::hand_box of the ground truth's hand keypoints"}};
    const bool has_lpips = !rep.lpips_net.empty();
    if (has_lpips) add_lpips_json(j, s, rep.lpips_net);
    std::string per_video =
        std::string("id,frames,psnr,ssim,hand_crops,hand_psnr,hand_ssim") + (has_lpips ? ",lpips,hand_lpips\n" : "\n");
    std::string per_frame = std::string("id,frame,psnr,ssim") + (has_lpips ? ",lpips\n" : "\n");
    j["videos"] = nlohmann::json::array();
    for (const auto& v : rep.videos) {
        j["videos"].push_back({{"id", v.id},
                               {"frames", v.frames},
                               {"psnr", num(v.mean_psnr())},
                               {"ssim", num(v.mean_ssim())},
                               {"hand_crops", v.hand_crops},
                               {"hand_psnr", num(v.mean_hand_psnr())},
                               {"hand_ssim", num(v.mean_hand_ssim())},
                               {"frame_psnr", v.psnr},
                               {"frame_ssim", v.ssim},
                               {"crop_psnr", v.hand_psnr},
                               {"crop_ssim", v.hand_ssim}});
        if (has_lpips) {
            auto& e = j["videos"].back();
            e["lpips"] = num(v.mean_lpips()), e["hand_lpips"] = num(v.mean_hand_lpips());
            e["frame_lpips"] = v.lpips, e["crop_lpips"] = v.hand_lpips;
        }
        per_video += fmt::format("{},{},{},{},{},{},{}{}\n", csv_field(v.id), v.frames, csv_num(v.mean_psnr()),
                                 csv_num(v.mean_ssim()), v.hand_crops, csv_num(v.mean_hand_psnr()),
                                 csv_num(v.mean_hand_ssim()), lpips_csv(v, has_lpips));
        for (std::size_t t = 0; t < v.psnr.size(); ++t)
            per_frame += fmt::format("{},{},{},{}{}\n", csv_field(v.id), t, csv_num(v.psnr[t]), csv_num(v.ssim[t]),
                                     has_lpips && t < v.lpips.size() ? "," + csv_num(v.lpips[t]) : "");
    }
    write_file_atomic(out_dir / "metrics.json", j.dump(1) + "\n");
    write_file_atomic(out_dir / "per_video.csv", per_video);
    write_file_atomic(out_dir / "per_frame.csv", per_frame);

    auto order = rep.videos;
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        const double x = a.mean_ssim(), y = b.mean_ssim();
        return x < y || (std::isfinite(x) && !std::isfinite(y));
    });
    std::string h =
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>ipa-eval report</title>\n<style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "th{background:#eee}</style></head><body>\n<h1>ipa-eval report</h1>\n<h2>Summary</h2>\n<table>"
        "<tr><th>metric</th><th>value</th></tr>\n";
    auto row = [&](const std::string& k, const std::string& v) {
        h += "<tr><td>" + html_escape(k) + "</td><td>" + html_escape(v) + "</td></tr>\n";
    };
    row("videos / frames / hand crops", fmt::format("{} / {} / {}", s.videos, s.frames, s.hand_crops));
    row("PSNR (mean over frames)", cell(s.psnr, 3));
    row("SSIM (mean over frames, " + rep.ssim_setting + ")", cell(s.ssim, 4));
    row("PSNR-Hand (mean over crops)", cell(s.hand_psnr, 3));
    row("SSIM-Hand (mean over crops)", cell(s.hand_ssim, 4));
    if (has_lpips) {
        row("LPIPS (mean over frames, " + rep.lpips_net + ")", cell(s.lpips, 4));
        row("LPIPS-Hand (mean over crops)", cell(s.hand_lpips, 4));
    }
    if (rep.fid) row("FID (frames, pytorch-fid Inception)", cell(rep.fid->fid, 3));
    if (rep.fid_vid)
        row(fmt::format("FID-VID (DisCo 3D ResNet-50; {} / {} videos)", rep.fid_vid->generated_videos,
                        rep.fid_vid->ground_truth_videos),
            cell(rep.fid_vid->fid_vid, 3));
    if (rep.fvd)
        row(fmt::format("FVD ({}-frame clips, StyleGAN-V I3D; {} / {} clips)", rep.fvd->num_frames,
                        rep.fvd->generated_clips, rep.fvd->ground_truth_clips),
            cell(rep.fvd->fvd, 3));
    h += "</table>\n<h2>Videos, worst SSIM first</h2>\n<table><tr><th>id</th><th>frames</th><th>PSNR</th><th>SSIM</th>"
         "<th>hand crops</th><th>PSNR-Hand</th><th>SSIM-Hand</th>" +
         std::string(has_lpips ? "<th>LPIPS</th><th>LPIPS-Hand</th>" : "") + "</tr>\n";
    for (const auto& v : order)
        h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>\n",
                         html_escape(v.id), v.frames, cell(v.mean_psnr(), 3), cell(v.mean_ssim(), 4), v.hand_crops,
                         cell(v.mean_hand_psnr(), 3), cell(v.mean_hand_ssim(), 4), lpips_cells(v, has_lpips));
    h += "</table>\n" + write_metric_charts(out_dir, order) + "</body></html>\n";
    write_file_atomic(out_dir / "index.html", h);
}

namespace {

nlohmann::json load_metrics_json(const fs::path& file) {
    try {
        return nlohmann::json::parse(read_file(file));
    } catch (const nlohmann::json::exception& e) {
        throw DataError(file.string() + ": not a metrics.json: " + e.what());
    } catch (const Error& e) {
        throw DataError(file.string() + ": " + e.what());
    }
}

std::string report_label(const fs::path& p) {  // the report folder's name for .../NAME/metrics.json
    const auto dir = p.parent_path().filename().string();
    return dir.empty() ? p.filename().string() : dir;
}

/// id -> per-video metric of a metrics.json's `videos` (null: NaN).
std::map<std::string, double> per_video(const nlohmann::json& j, const fs::path& file, const std::string& key) {
    if (!j.contains("videos") || !j["videos"].is_array())
        throw DataError(file.string() + ": no `videos` array (a report of `ipa-eval frames`?)");
    std::map<std::string, double> out;
    for (const auto& v : j["videos"]) {
        if (!v.is_object() || !v.contains("id") || !v["id"].is_string())
            throw DataError(file.string() + ": a `videos` entry without a string `id`");
        const auto it = v.find(key);
        out[v["id"].get<std::string>()] = it != v.end() && it->is_number() ? it->get<double>() : std::nan("");
    }
    return out;
}

}  // namespace

std::vector<fs::path> write_compare_charts(const fs::path& a_json, const fs::path& b_json, const fs::path& out_dir) {
    const auto a = load_metrics_json(a_json), b = load_metrics_json(b_json);
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) throw DataError("compare: cannot create " + out_dir.string() + ": " + ec.message());
    std::vector<fs::path> written;
    for (const auto& m : kChartMetrics) {
        const auto va = per_video(a, a_json, m.key), vb = per_video(b, b_json, m.key);
        std::vector<std::string> ids;
        plot::BarSeries sa{"A: " + report_label(a_json), {}}, sb{"B: " + report_label(b_json), {}};
        for (const auto* side : {&va, &vb})
            for (const auto& [id, v] : *side)
                if (side == &va || !va.count(id)) ids.push_back(id);
        for (const auto& id : ids) {
            sa.values.push_back(va.count(id) ? va.at(id) : std::nan(""));
            sb.values.push_back(vb.count(id) ? vb.at(id) : std::nan(""));
        }
        if (!any_finite(sa.values) && !any_finite(sb.values)) continue;
        const auto chart =
            sorted_bars(fmt::format("{} per video, worst first", m.title), ids, {sa, sb}, m.higher_is_better);
        written.push_back(out_dir / fmt::format("compare_{}.png", m.key));
        plot::write_png(written.back(), chart.render(kChartWidth));
    }
    return written;
}

std::vector<std::pair<std::string, double>> read_report_summary(const fs::path& file) {
    const auto j = load_metrics_json(file);
    if (!j.contains("summary") || !j["summary"].is_object())
        throw DataError(file.string() + ": no `summary` object (is this an ipa-eval metrics.json?)");
    std::vector<std::pair<std::string, double>> out;
    for (const auto& [k, v] : j["summary"].items()) out.emplace_back(k, v.is_number() ? v.get<double>() : std::nan(""));
    return out;
}

std::string compare_reports(const fs::path& a_json, const fs::path& b_json) {
    const auto a = read_report_summary(a_json), b = read_report_summary(b_json);
    std::map<std::string, double> bm(b.begin(), b.end());
    std::vector<std::string> names;
    for (const auto& [k, v] : a) names.push_back(k);
    for (const auto& [k, v] : b)
        if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
    std::map<std::string, double> am(a.begin(), a.end());
    auto fmtv = [](const std::map<std::string, double>& m, const std::string& k) {
        const auto it = m.find(k);
        return it == m.end() || !std::isfinite(it->second) ? std::string("-") : fmt::format("{:.6g}", it->second);
    };
    std::string out = fmt::format("{:<18} {:>14} {:>14} {:>14}\n", "metric", "A", "B", "B - A");
    out += fmt::format("{:<18} {:>14} {:>14} {:>14}\n", "", report_label(a_json), report_label(b_json), "");
    for (const auto& k : names) {
        std::string d = "-";
        if (am.count(k) && bm.count(k) && std::isfinite(am[k]) && std::isfinite(bm[k]))
            d = fmt::format("{:+.6g}", bm[k] - am[k]);
        out += fmt::format("{:<18} {:>14} {:>14} {:>14}\n", k, fmtv(am, k), fmtv(bm, k), d);
    }
    return out;
}

}  // namespace ipa::eval
