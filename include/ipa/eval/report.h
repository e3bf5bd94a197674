#pragma once

/// Evaluation reports: `metrics.json` (summary + per video + per frame), `per_video.csv`,
/// `per_frame.csv` and a static `index.html` (summary table, videos sorted worst SSIM first,
/// a bar chart per metric of the per-video values, worst first (lowest PSNR/SSIM, highest LPIPS),
/// as `chart_<metric>.png` next to it; no external assets, every string escaped). Files are written atomically.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ipa/eval/evaluate.h"
#include "ipa/eval/fid_vid.h"
#include "ipa/eval/fvd.h"
#include "ipa/eval/fvd_disco.h"
#include "ipa/eval/hands.h"

namespace ipa::eval {

struct Report {
    std::vector<VideoFrameMetrics> videos;
    std::optional<FidReport> fid;
    std::optional<FidVidReport> fid_vid;      ///< DisCo FID-VID (3D ResNet-50), summary key `fid_vid`
    std::optional<FvdReport> fvd;             ///< StyleGAN-V FVD (I3D TorchScript), summary key `fvd`
    std::optional<FvdDiscoReport> fvd_disco;  ///< DisCo's FVD (InceptionI3d state dict), key `fvd_disco`
    /// Ground-truth-free hand metrics of the generated videos (`ipa-eval hands`): summary keys
    /// hands_visible, left_hand_visible, right_hand_visible, hand_confidence, hand_points_detected,
    /// hand_confidence_visible, hand_finger_confidence, hand_jitter, hand_accel, hand_sharpness_ratio,
    /// hand_score; `hands` per video in metrics.json, per_video_hands.csv, an HTML table and charts.
    std::vector<HandMetrics> hands;
    std::string ssim_setting = "disco";  ///< "disco" | "gaussian"
    /// "alex" | "vgg" when the videos hold LPIPS (FrameEvalOptions::lpips); empty: no LPIPS
    /// columns, keys or charts.
    std::string lpips_net;
};

void write_report(const std::filesystem::path& out_dir, const Report& report);

/// Summary metrics of a metrics.json (name → value), e.g. psnr, ssim, hand_psnr, hand_ssim,
/// fid, fid_vid, fvd, fvd_disco. Throws ipa::DataError naming the file.
std::vector<std::pair<std::string, double>> read_report_summary(const std::filesystem::path& metrics_json);

/// A side-by-side table of two reports' summaries with B − A deltas (metrics of only one side
/// are shown with "-").
std::string compare_reports(const std::filesystem::path& a_json, const std::filesystem::path& b_json);

/// Per-video bar charts of two reports side by side: `compare_<metric>.png` in `out_dir` for
/// each of psnr, ssim, hand_psnr, hand_ssim, lpips, hand_lpips (from `videos`) and hands_visible,
/// hand_confidence (from `hands`) with values (videos sorted by A's value, worst
/// first; a video of one side only gets one bar). Returns the files written. Throws
/// ipa::DataError naming the file for a missing or malformed metrics.json.
std::vector<std::filesystem::path> write_compare_charts(const std::filesystem::path& a_json,
                                                        const std::filesystem::path& b_json,
                                                        const std::filesystem::path& out_dir);

}  // namespace ipa::eval
