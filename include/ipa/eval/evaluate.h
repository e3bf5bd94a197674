#pragma once

/// Evaluation runs over pairs of generated and ground-truth videos (each a video file or a
/// directory of frames, read through ipa_media as uint8 BGR): frame PSNR/SSIM, their hand-crop
/// versions, and frame FID (all frames of all videos pooled into two sets, as DisCo runs
/// pytorch-fid on its frame folders).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ipa/eval/frame_metrics.h"

namespace ipa::eval {

class LpipsImpl;

struct VideoPair {
    std::string id;
    std::filesystem::path generated, ground_truth, keypoints;  ///< keypoints empty: no hand metrics
};

/// name → path of the videos in `dir` (video files by stem, frame directories by name). Throws
/// ipa::DataError naming the folder (`what`: "generated", ...) when it is missing or holds none.
std::map<std::string, std::filesystem::path> videos_in_dir(const std::filesystem::path& dir, const char* what);

/// The keypoints of video `id` in `kp_dir`: the folder `<id>` or the file `<id>.jsonl`.
/// Throws ipa::DataError naming the id and the folder when there are none.
std::filesystem::path keypoints_in_dir(const std::filesystem::path& kp_dir, const std::string& id);

/// Pairs from two folders matched by name (video files by stem, frame directories by
/// name); keypoints (optional) are `<kp_dir>/<id>` (a JSON directory) or `<kp_dir>/<id>.jsonl`.
/// Throws ipa::DataError naming the folder and the unmatched names.
std::vector<VideoPair> pairs_from_dirs(const std::filesystem::path& gen_dir, const std::filesystem::path& gt_dir,
                                       const std::filesystem::path& kp_dir = {});

/// Pairs from a CSV manifest with columns id, generated, ground_truth[, keypoints] (paths
/// relative to the manifest). Throws ipa::DataError naming the file, row and column.
std::vector<VideoPair> pairs_from_manifest(const std::filesystem::path& csv);

struct FrameEvalOptions {
    SsimOptions ssim;
    HandCropOptions hands;
    /// DisCo resizes a generated frame of another size to the ground truth's (cv::resize,
    /// bilinear). Off: a size mismatch is an error.
    bool resize_generated = false;
    /// Set (load_lpips): LPIPS per frame and per hand crop (crops smaller than the network's
    /// min_side() get none). Null: no LPIPS.
    std::shared_ptr<LpipsImpl> lpips;
};

struct VideoFrameMetrics {
    std::string id;
    int64_t frames = 0, hand_crops = 0;
    std::vector<double> psnr, ssim;            ///< per frame
    std::vector<double> hand_psnr, hand_ssim;  ///< per (frame, hand) crop
    std::vector<double> lpips;                 ///< per frame; empty without FrameEvalOptions::lpips
    std::vector<double> hand_lpips;            ///< per crop of at least the network's min_side()
    double mean_psnr() const;
    double mean_ssim() const;
    double mean_hand_psnr() const;  ///< NaN without crops
    double mean_hand_ssim() const;
    double mean_lpips() const;  ///< NaN without LPIPS
    double mean_hand_lpips() const;
};

/// One pair. Throws ipa::DataError naming the id and the file for unreadable videos or
/// keypoints, differing frame counts, or differing sizes (unless resize_generated).
VideoFrameMetrics evaluate_frames(const VideoPair& pair, const FrameEvalOptions& opts = {});

/// Every pair, with a progress bar.
std::vector<VideoFrameMetrics> evaluate_frames(const std::vector<VideoPair>& pairs, const FrameEvalOptions& opts = {});

/// Means over all frames / crops of all videos (DisCo averages per-frame scores over the
/// whole set) and over videos.
struct FrameSummary {
    int64_t videos = 0, frames = 0, hand_crops = 0;
    double psnr = 0, ssim = 0, hand_psnr = 0, hand_ssim = 0;  ///< over frames / crops
    double psnr_video_mean = 0, ssim_video_mean = 0;          ///< mean of per-video means
    double lpips = 0, hand_lpips = 0, lpips_video_mean = 0;   ///< NaN without LPIPS
};
FrameSummary summarize(const std::vector<VideoFrameMetrics>& results);

struct FidOptions {
    int64_t batch_size = 16;
    std::string device = "cpu";
};

struct FidReport {
    double fid = 0;
    bool eps_offset_used = false;
    int64_t generated_frames = 0, ground_truth_frames = 0;
};

/// Frame FID with pytorch-fid's Inception (weights: pt_inception-2015-12-05-*.pth) between the
/// frames of all generated and all ground-truth videos.
FidReport evaluate_fid(const std::vector<VideoPair>& pairs, const std::filesystem::path& inception_weights,
                       const FidOptions& opts = {});

}  // namespace ipa::eval
