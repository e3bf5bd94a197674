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

/// Per-video charts of the ground-truth-free hand metrics (the `hands` array of metrics.json).
constexpr MetricDef kHandChartMetrics[] = {{"hands_visible", "Hands visible", true},
                                           {"hand_confidence", "Hand keypoint confidence", true}};

double hand_metric(const HandMetrics& v, const std::string& key) {
    return key == "hands_visible" ? v.hands_visible : v.hand_confidence;
}

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

/// chart_<metric>.png of the hand metrics; returns the HTML that shows them.
std::string write_hand_charts(const fs::path& out_dir, const std::vector<HandMetrics>& hands) {
    std::vector<std::string> ids;
    for (const auto& v : hands) ids.push_back(v.id);
    std::string html;
    for (const auto& m : kHandChartMetrics) {
        plot::BarSeries values{m.title, {}};
        for (const auto& v : hands) values.values.push_back(hand_metric(v, m.key));
        if (!any_finite(values.values)) continue;
        const auto file = fmt::format("chart_{}.png", m.key);
        plot::write_png(out_dir / file, sorted_bars(fmt::format("{} per video, worst first", m.title), ids, {values},
                                                    m.higher_is_better)
                                            .render(kChartWidth));
        html += fmt::format("<p><img src=\"{}\" alt=\"{} per video\"></p>\n", file, m.title);
    }
    return html;
}

/// The hand metrics' keys of metrics.json and their per_video_hands.csv; returns the HTML
/// summary rows' (name, value) pairs.
std::string write_hands(const fs::path& out_dir, nlohmann::json& j, const std::vector<HandMetrics>& hands,
                        std::vector<std::pair<std::string, std::string>>& rows) {
    const auto s = summarize_hands(hands);
    auto& sum = j["summary"];
    sum["hand_videos"] = s.videos;
    sum["hands_visible"] = num(s.hands_visible);
    sum["left_hand_visible"] = num(s.left_hand_visible);
    sum["right_hand_visible"] = num(s.right_hand_visible);
    sum["hand_confidence"] = num(s.hand_confidence);
    sum["hand_points_detected"] = num(s.hand_points_detected);
    sum["hand_confidence_visible"] = num(s.confidence_mean);
    sum["hand_finger_confidence"] = num(s.finger_confidence);
    sum["hand_jitter"] = num(s.jitter);
    sum["hand_accel"] = num(s.accel);
    sum["hand_sharpness_ratio"] = num(s.sharpness_ratio);
    sum["hand_score"] = num(s.score);
    j["settings"]["hands"] =
        "no ground truth: keypoints of the generated videos; hands expected 2 per person (curation scorer's rule); "
        "fractions pooled over expected hands, scorer signals averaged over videos";
    std::string csv =
        "id,frames,expected_hands,hands_visible,left_hand_visible,right_hand_visible,hand_confidence,"
        "hand_points_detected,confidence_mean,finger_confidence,jitter,accel,sharpness_ratio,score\n";
    j["hands"] = nlohmann::json::array();
    for (const auto& v : hands) {
        j["hands"].push_back({{"id", v.id},
                              {"has_video", v.has_video},
                              {"frames", v.frames},
                              {"expected_hands", v.expected_hands},
                              {"visible_hands", v.visible_hands},
                              {"hands_visible", num(v.hands_visible)},
                              {"left_hand_visible", num(v.left_hand_visible)},
                              {"right_hand_visible", num(v.right_hand_visible)},
                              {"hand_confidence", num(v.hand_confidence)},
                              {"hand_points_detected", num(v.hand_points_detected)},
                              {"confidence_mean", num(v.confidence_mean)},
                              {"finger_confidence", num(v.finger_confidence)},
                              {"jitter", num(v.jitter)},
                              {"accel", num(v.accel)},
                              {"sharpness_ratio", num(v.sharpness_ratio)},
                              {"score", num(v.score)}});
        nlohmann::json fv = nlohmann::json::array();
        for (double x : v.frame_hands_visible) fv.push_back(num(x));
        j["hands"].back()["frame_hands_visible"] = fv;
        csv += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(v.id), v.frames, v.expected_hands,
                           csv_num(v.hands_visible), csv_num(v.left_hand_visible), csv_num(v.right_hand_visible),
                           csv_num(v.hand_confidence), csv_num(v.hand_points_detected), csv_num(v.confidence_mean),
                           csv_num(v.finger_confidence), csv_num(v.jitter), csv_num(v.accel),
                           csv_num(v.sharpness_ratio), csv_num(v.score));
    }
    write_file_atomic(out_dir / "per_video_hands.csv", csv);
    rows = {
        {fmt::format("hand videos / frames / expected hands"),
         fmt::format("{} / {} / {}", s.videos, s.frames, s.expected_hands)},
        {"hands visible (fraction of expected hands)", cell(s.hands_visible, 4)},
        {"left / right hand visible", cell(s.left_hand_visible, 4) + " / " + cell(s.right_hand_visible, 4)},
        {"hand keypoint confidence (all expected points)", cell(s.hand_confidence, 4)},
        {"hand keypoints detected (c > threshold)", cell(s.hand_points_detected, 4)},
        {"confidence of visible hands / weakest finger",
         cell(s.confidence_mean, 4) + " / " + cell(s.finger_confidence, 4)},
        {"hand jitter / acceleration (per hand size)", cell(s.jitter, 4) + " / " + cell(s.accel, 4)},
        {"hand / body sharpness, curation score (with videos)", cell(s.sharpness_ratio, 3) + ", " + cell(s.score, 3)}};
    // Per-video table, fewest visible hands first.
    auto order = hands;
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        const double x = a.hands_visible, y = b.hands_visible;
        return x < y || (std::isfinite(x) && !std::isfinite(y));
    });
    std::string h =
        "<h2>Hands of the generated videos (no ground truth), fewest visible first</h2>\n<table><tr><th>id</th>"
        "<th>frames</th><th>hands visible</th><th>left</th><th>right</th><th>keypoint confidence</th>"
        "<th>points detected</th><th>weakest finger</th><th>jitter</th><th>accel</th><th>score</th></tr>\n";
    for (const auto& v : order)
        h += fmt::format(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td></tr>\n",
            html_escape(v.id), v.frames, cell(v.hands_visible, 4), cell(v.left_hand_visible, 4),
            cell(v.right_hand_visible, 4), cell(v.hand_confidence, 4), cell(v.hand_points_detected, 4),
            cell(v.finger_confidence, 4), cell(v.jitter, 4), cell(v.accel, 4), cell(v.score, 3));
    return h + "</table>\n" + write_hand_charts(out_dir, order);
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
    if (rep.fvd_disco) {
        j["summary"]["fvd_disco"] = num(rep.fvd_disco->fvd);
        j["fvd_disco"] = {{"fvd_disco", num(rep.fvd_disco->fvd)},
                          {"eps_offset_used", rep.fvd_disco->eps_offset_used},
                          {"generated_videos", rep.fvd_disco->generated_videos},
                          {"ground_truth_videos", rep.fvd_disco->ground_truth_videos},
                          {"generated_frames", rep.fvd_disco->generated_frames},
                          {"ground_truth_frames", rep.fvd_disco->ground_truth_frames},
                          {"reference",
                           "DisCo fvd (FVD-3DInception): InceptionI3d(400) (i3d_pretrained_400.pt) on each whole "
                           "video, 224x224 PIL bicubic, x/127.5-1, 400 logits averaged over time, np.cov FID"}};
    }
    j["settings"] = {{"ssim", rep.ssim_setting},
                     {"psnr", "DisCo: float64 MSE over H, W, C of uint8 frames; 100 when equal"},
                     {"hand_crops", "square around pose::hand_box of the ground truth's hand keypoints"}};
    const bool has_lpips = !rep.lpips_net.empty();
    if (has_lpips) add_lpips_json(j, s, rep.lpips_net);
    std::vector<std::pair<std::string, std::string>> hand_rows;
    const std::string hands_html = rep.hands.empty() ? "" : write_hands(out_dir, j, rep.hands, hand_rows);
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
    if (rep.fvd_disco)
        row(fmt::format("FVD-DisCo (DisCo's I3D on whole videos; {} / {} videos)", rep.fvd_disco->generated_videos,
                        rep.fvd_disco->ground_truth_videos),
            cell(rep.fvd_disco->fvd, 3));
    for (const auto& [k, v] : hand_rows) row(k, v);
    h += "</table>\n<h2>Videos, worst SSIM first</h2>\n<table><tr><th>id</th><th>frames</th><th>PSNR</th><th>SSIM</th>"
         "<th>hand crops</th><th>PSNR-Hand</th><th>SSIM-Hand</th>" +
         std::string(has_lpips ? "<th>LPIPS</th><th>LPIPS-Hand</th>" : "") + "</tr>\n";
    for (const auto& v : order)
        h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>\n",
                         html_escape(v.id), v.frames, cell(v.mean_psnr(), 3), cell(v.mean_ssim(), 4), v.hand_crops,
                         cell(v.mean_hand_psnr(), 3), cell(v.mean_hand_ssim(), 4), lpips_cells(v, has_lpips));
    h += "</table>\n" + hands_html + write_metric_charts(out_dir, order) + "</body></html>\n";
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

/// id -> per-video metric of a metrics.json's `videos` (or `hands`) array (null: NaN). A report
/// without a `hands` array has no hand values.
std::map<std::string, double> per_video(const nlohmann::json& j, const fs::path& file, const std::string& key,
                                        const std::string& array = "videos") {
    std::map<std::string, double> out;
    if (array != "videos" && !j.contains(array)) return out;
    if (!j.contains(array) || !j[array].is_array())
        throw DataError(file.string() + ": no `" + array + "` array (a report of `ipa-eval frames`?)");
    for (const auto& v : j[array]) {
        if (!v.is_object() || !v.contains("id") || !v["id"].is_string())
            throw DataError(file.string() + ": a `" + array + "` entry without a string `id`");
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
    std::vector<std::pair<MetricDef, std::string>> metrics;
    for (const auto& m : kChartMetrics) metrics.emplace_back(m, "videos");
    for (const auto& m : kHandChartMetrics) metrics.emplace_back(m, "hands");
    for (const auto& [m, array] : metrics) {
        const auto va = per_video(a, a_json, m.key, array), vb = per_video(b, b_json, m.key, array);
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
    std::size_t w = 18;  // the metric column fits the longest name
    for (const auto& k : names) w = std::max(w, k.size());
    std::string out = fmt::format("{:<{}} {:>14} {:>14} {:>14}\n", "metric", w, "A", "B", "B - A");
    out += fmt::format("{:<{}} {:>14} {:>14} {:>14}\n", "", w, report_label(a_json), report_label(b_json), "");
    for (const auto& k : names) {
        std::string d = "-";
        if (am.count(k) && bm.count(k) && std::isfinite(am[k]) && std::isfinite(bm[k]))
            d = fmt::format("{:+.6g}", bm[k] - am[k]);
        out += fmt::format("{:<{}} {:>14} {:>14} {:>14}\n", k, w, fmtv(am, k), fmtv(bm, k), d);
    }
    return out;
}

}  // namespace ipa::eval
