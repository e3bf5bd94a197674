#include "ipa/eval/evaluate.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <opencv2/imgproc.hpp>
#include <set>

#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/curate/manifest.h"
#include "ipa/eval/frechet.h"
#include "ipa/eval/inception.h"
#include "ipa/eval/lpips.h"
#include "ipa/media/frames.h"
#include "ipa/pose/keypoints.h"

namespace fs = std::filesystem;

namespace ipa::eval {
namespace {

double mean_of(const std::vector<double>& v) {
    if (v.empty()) return std::nan("");
    return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

bool is_video_file(const fs::path& p) {
    std::string e = p.extension().string();
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    static const std::set<std::string> exts{".mp4", ".avi", ".mkv", ".mov", ".webm", ".gif"};
    return exts.count(e) > 0;
}

}  // namespace

std::map<std::string, fs::path> videos_in_dir(const fs::path& dir, const char* what) {
    if (!fs::is_directory(dir)) throw DataError(fmt::format("{} folder {} does not exist", what, dir.string()));
    std::map<std::string, fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        std::string key;
        if (e.is_directory())
            key = e.path().filename().string();
        else if (is_video_file(e.path()))
            key = e.path().stem().string();
        else
            continue;
        if (!out.emplace(key, e.path()).second)
            throw DataError(fmt::format("{} folder {}: two videos named '{}'", what, dir.string(), key));
    }
    if (out.empty()) throw DataError(fmt::format("{} folder {} holds no videos or frame folders", what, dir.string()));
    return out;
}

fs::path keypoints_in_dir(const fs::path& kp_dir, const std::string& id) {
    if (fs::is_directory(kp_dir / id)) return kp_dir / id;
    if (fs::is_regular_file(kp_dir / (id + ".jsonl"))) return kp_dir / (id + ".jsonl");
    throw DataError(fmt::format("video '{}': no keypoints in {} (expected the folder {} or {}.jsonl)", id,
                                kp_dir.string(), id, id));
}

namespace {

std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size() && i < 10; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > 10) s += fmt::format(", … ({} in all)", v.size());
    return s;
}

std::vector<cv::Mat> read_video_frames(const fs::path& path, const std::string& id, const char* role) {
    try {
        return media::read_frames_bgr(path);
    } catch (const Error& e) {
        throw DataError(fmt::format("video '{}': {} {}: {}", id, role, path.string(), e.what()));
    }
}

}  // namespace

double VideoFrameMetrics::mean_psnr() const { return mean_of(psnr); }
double VideoFrameMetrics::mean_ssim() const { return mean_of(ssim); }
double VideoFrameMetrics::mean_hand_psnr() const { return mean_of(hand_psnr); }
double VideoFrameMetrics::mean_hand_ssim() const { return mean_of(hand_ssim); }
double VideoFrameMetrics::mean_lpips() const { return mean_of(lpips); }
double VideoFrameMetrics::mean_hand_lpips() const { return mean_of(hand_lpips); }

std::vector<VideoPair> pairs_from_dirs(const fs::path& gen_dir, const fs::path& gt_dir, const fs::path& kp_dir) {
    const auto gen = videos_in_dir(gen_dir, "generated");
    const auto gt = videos_in_dir(gt_dir, "ground-truth");
    std::vector<std::string> only_gen, only_gt;
    for (const auto& [k, p] : gen)
        if (!gt.count(k)) only_gen.push_back(k);
    for (const auto& [k, p] : gt)
        if (!gen.count(k)) only_gt.push_back(k);
    if (!only_gen.empty() || !only_gt.empty())
        throw DataError(
            fmt::format("generated folder {} and ground-truth folder {} do not match by name: only "
                        "generated: [{}]; only ground truth: [{}]",
                        gen_dir.string(), gt_dir.string(), joined(only_gen), joined(only_gt)));
    std::vector<VideoPair> out;
    for (const auto& [k, p] : gen) {
        VideoPair v{k, p, gt.at(k), {}};
        if (!kp_dir.empty()) v.keypoints = keypoints_in_dir(kp_dir, k);
        out.push_back(std::move(v));
    }
    return out;
}

std::vector<VideoPair> pairs_from_manifest(const fs::path& csv) {
    const auto m = curate::read_manifest(csv);
    for (const char* col : {"generated", "ground_truth"})
        if (std::find(m.columns.begin(), m.columns.end(), col) == m.columns.end())
            throw DataError(fmt::format("{}: no `{}` column (expected id, generated, ground_truth[, keypoints])",
                                        csv.string(), col));
    const fs::path base = m.path.parent_path();
    auto resolve = [&](const std::string& s) -> fs::path {
        if (s.empty()) return {};
        const fs::path p(s);
        return p.is_absolute() ? p : base / p;
    };
    std::vector<VideoPair> out;
    for (const auto& r : m.rows) {
        VideoPair v{r.id, resolve(r.get("generated")), resolve(r.get("ground_truth")), r.keypoints};
        if (v.generated.empty() || v.ground_truth.empty())
            throw DataError(fmt::format("{}: row '{}': empty generated or ground_truth", csv.string(), r.id));
        out.push_back(std::move(v));
    }
    if (out.empty()) throw DataError(csv.string() + ": no rows");
    return out;
}

VideoFrameMetrics evaluate_frames(const VideoPair& pair, const FrameEvalOptions& opts) {
    auto gen = read_video_frames(pair.generated, pair.id, "generated");
    const auto gt = read_video_frames(pair.ground_truth, pair.id, "ground truth");
    if (gen.size() != gt.size())
        throw DataError(fmt::format("video '{}': {} frames in {} but {} in the ground truth {}", pair.id, gen.size(),
                                    pair.generated.string(), gt.size(), pair.ground_truth.string()));
    if (gen.empty()) throw DataError(fmt::format("video '{}': {} has no frames", pair.id, pair.generated.string()));
    pose::PoseSequence kp;
    if (!pair.keypoints.empty()) {
        try {
            kp = pose::read_keypoints(pair.keypoints);
        } catch (const Error& e) {
            throw DataError(fmt::format("video '{}': keypoints {}: {}", pair.id, pair.keypoints.string(), e.what()));
        }
        if (kp.frames.size() != gt.size())
            throw DataError(fmt::format("video '{}': {} keypoint frames in {} but {} video frames", pair.id,
                                        kp.frames.size(), pair.keypoints.string(), gt.size()));
    }
    VideoFrameMetrics r;
    r.id = pair.id;
    r.frames = static_cast<int64_t>(gt.size());
    for (std::size_t t = 0; t < gt.size(); ++t) {
        if (gen[t].size() != gt[t].size()) {
            if (!opts.resize_generated)
                throw DataError(
                    fmt::format("video '{}': frame {} is {}x{} in {} but {}x{} in the ground truth {} "
                                "(--resize-generated resizes as DisCo does)",
                                pair.id, t, gen[t].cols, gen[t].rows, pair.generated.string(), gt[t].cols, gt[t].rows,
                                pair.ground_truth.string()));
            cv::Mat resized;
            cv::resize(gen[t], resized, gt[t].size());  // cv2.resize default: bilinear
            gen[t] = resized;
        }
        r.psnr.push_back(psnr(gen[t], gt[t]));
        r.ssim.push_back(ssim(gen[t], gt[t], opts.ssim));
        if (opts.lpips) r.lpips.push_back(lpips_distance(*opts.lpips, gen[t], gt[t]));
        if (!pair.keypoints.empty()) {
            for (const auto& box : hand_crop_boxes(kp.frames[t], gt[t].rows, gt[t].cols, opts.hands)) {
                const int win = opts.ssim.effective_win_size();
                if (box.width < win || box.height < win) continue;  // frame smaller than the SSIM window
                r.hand_psnr.push_back(psnr(gen[t](box), gt[t](box)));
                r.hand_ssim.push_back(ssim(gen[t](box).clone(), gt[t](box).clone(), opts.ssim));
                if (opts.lpips && std::min(box.width, box.height) >= opts.lpips->min_side())
                    r.hand_lpips.push_back(lpips_distance(*opts.lpips, gen[t](box).clone(), gt[t](box).clone()));
            }
        }
    }
    r.hand_crops = static_cast<int64_t>(r.hand_psnr.size());
    return r;
}

std::vector<VideoFrameMetrics> evaluate_frames(const std::vector<VideoPair>& pairs, const FrameEvalOptions& opts) {
    ProgressOptions po;
    po.unit = "videos";
    Progress progress("frame metrics", static_cast<int64_t>(pairs.size()), po);
    std::vector<VideoFrameMetrics> out;
    for (const auto& p : pairs) {
        out.push_back(evaluate_frames(p, opts));
        progress.advance(1, fmt::format("{} ssim={:.4f}", p.id, out.back().mean_ssim()));
    }
    return out;
}

FrameSummary summarize(const std::vector<VideoFrameMetrics>& results) {
    FrameSummary s;
    std::vector<double> psnr, ssim, hp, hs, vp, vs, lp, hl, vl;
    for (const auto& r : results) {
        psnr.insert(psnr.end(), r.psnr.begin(), r.psnr.end());
        ssim.insert(ssim.end(), r.ssim.begin(), r.ssim.end());
        hp.insert(hp.end(), r.hand_psnr.begin(), r.hand_psnr.end());
        hs.insert(hs.end(), r.hand_ssim.begin(), r.hand_ssim.end());
        vp.push_back(r.mean_psnr());
        vs.push_back(r.mean_ssim());
        lp.insert(lp.end(), r.lpips.begin(), r.lpips.end());
        hl.insert(hl.end(), r.hand_lpips.begin(), r.hand_lpips.end());
        if (!r.lpips.empty()) vl.push_back(r.mean_lpips());
    }
    s.videos = static_cast<int64_t>(results.size());
    s.frames = static_cast<int64_t>(psnr.size());
    s.hand_crops = static_cast<int64_t>(hp.size());
    s.psnr = mean_of(psnr), s.ssim = mean_of(ssim), s.hand_psnr = mean_of(hp), s.hand_ssim = mean_of(hs);
    s.psnr_video_mean = mean_of(vp), s.ssim_video_mean = mean_of(vs);
    s.lpips = mean_of(lp), s.hand_lpips = mean_of(hl), s.lpips_video_mean = mean_of(vl);
    return s;
}

FidReport evaluate_fid(const std::vector<VideoPair>& pairs, const fs::path& weights, const FidOptions& opts) {
    torch::NoGradGuard ng;
    if (opts.batch_size < 1) throw ConfigError("FID: batch size must be >= 1");
    const torch::Device device(opts.device);
    FidInceptionV3 net;
    load_inception(net, weights);
    net->to(device);
    ProgressOptions po;
    po.unit = "videos";
    Progress progress("FID features", 2 * static_cast<int64_t>(pairs.size()), po);
    auto features_of = [&](bool generated) {
        std::vector<at::Tensor> feats;
        for (const auto& p : pairs) {
            const auto& path = generated ? p.generated : p.ground_truth;
            const auto frames = read_video_frames(path, p.id, generated ? "generated" : "ground truth");
            for (std::size_t i = 0; i < frames.size(); i += static_cast<std::size_t>(opts.batch_size)) {
                std::vector<at::Tensor> batch;
                for (std::size_t j = i; j < std::min(frames.size(), i + static_cast<std::size_t>(opts.batch_size));
                     ++j) {
                    cv::Mat rgb;
                    cv::cvtColor(frames[j], rgb, cv::COLOR_BGR2RGB);
                    batch.push_back(torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8)
                                        .permute({2, 0, 1})
                                        .to(torch::kFloat32)
                                        .div(255));  // torchvision ToTensor()
                }
                feats.push_back(net->forward(torch::stack(batch).to(device)).to(torch::kCPU));
            }
            progress.advance(1, p.id);
        }
        return torch::cat(feats);
    };
    const auto fg = features_of(true);
    const auto ft = features_of(false);
    const auto r =
        frechet_distance(feature_statistics(fg, "generated videos"), feature_statistics(ft, "ground-truth videos"));
    return {r.distance, r.eps_offset_used, fg.size(0), ft.size(0)};
}

}  // namespace ipa::eval
