#pragma once

/// Evaluation reports: `metrics.json` (summary + per video + per frame), `per_video.csv`,
/// `per_frame.csv` and a static `index.html` (summary table, videos sorted worst SSIM first;
/// no external assets, every string escaped). Files are written atomically.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ipa/eval/evaluate.h"

namespace ipa::eval {

struct Report {
    std::vector<VideoFrameMetrics> videos;
    std::optional<FidReport> fid;
    std::string ssim_setting = "disco";  ///< "disco" | "gaussian"
};

void write_report(const std::filesystem::path& out_dir, const Report& report);

/// Summary metrics of a metrics.json (name → value), e.g. psnr, ssim, hand_psnr, hand_ssim,
/// fid. Throws ipa::DataError naming the file.
std::vector<std::pair<std::string, double>> read_report_summary(const std::filesystem::path& metrics_json);

/// A side-by-side table of two reports' summaries with B − A deltas (metrics of only one side
/// are shown with "-").
std::string compare_reports(const std::filesystem::path& a_json, const std::filesystem::path& b_json);

}  // namespace ipa::eval
