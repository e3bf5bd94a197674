#include "ipa/eval/fvd.h"

#include <fmt/format.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <map>
#include <opencv2/imgproc.hpp>

#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/media/frames.h"

namespace fs = std::filesystem;

namespace ipa::eval {
namespace {

constexpr const char* kSignature = "forward(x, rescale: bool, resize: bool, return_features: bool)";

}  // namespace

struct VideoDetector::Impl {
    torch::jit::Module module;
    torch::Device device{torch::kCPU};
};

VideoDetector::VideoDetector() : impl_(std::make_unique<Impl>()) {}
VideoDetector::~VideoDetector() = default;
VideoDetector::VideoDetector(VideoDetector&&) noexcept = default;
VideoDetector& VideoDetector::operator=(VideoDetector&&) noexcept = default;

VideoDetector VideoDetector::load(const fs::path& file, const std::string& device) {
    if (!fs::is_regular_file(file))
        throw CheckpointError(fmt::format(
            "FVD: I3D TorchScript file {} does not exist (StyleGAN-V's i3d_torchscript.pt)", file.string()));
    VideoDetector d;
    d.file_ = file;
    d.impl_->device = torch::Device(device);
    try {
        d.impl_->module = torch::jit::load(file.string(), d.impl_->device);
    } catch (const c10::Error& e) {
        throw CheckpointError(
            fmt::format("FVD: {} is not a loadable TorchScript module: {}", file.string(), e.what_without_backtrace()));
    }
    d.impl_->module.eval();
    const auto method = d.impl_->module.find_method("forward");
    if (!method)
        throw CheckpointError(
            fmt::format("FVD: TorchScript module {} has no forward; expected {}", file.string(), kSignature));
    const auto& args = method->function().getSchema().arguments();  // args[0] is self
    std::vector<std::string> names;
    for (std::size_t i = 1; i < args.size(); ++i) names.push_back(args[i].name());
    const bool ok = names.size() >= 4 && names[1] == "rescale" && names[2] == "resize" && names[3] == "return_features";
    if (!ok)
        throw CheckpointError(
            fmt::format("FVD: TorchScript module {} has forward({}); StyleGAN-V's I3D detector takes {}", file.string(),
                        fmt::join(names, ", "), kSignature));
    return d;
}

at::Tensor VideoDetector::features(const at::Tensor& clips) const {
    torch::NoGradGuard ng;
    if (clips.dim() != 5 || clips.size(1) != 3 || clips.scalar_type() != torch::kUInt8)
        throw DataError(fmt::format("FVD: clips must be uint8 [batch, 3, T, H, W], got {} {}", c10::str(clips.sizes()),
                                    c10::toString(clips.scalar_type())));
    // StyleGAN-V: detector(images, rescale=True, resize=True, return_features=True).
    torch::jit::Kwargs kwargs{{"rescale", true}, {"resize", true}, {"return_features", true}};
    c10::IValue out;
    try {
        out = impl_->module.get_method("forward")({clips.to(impl_->device)}, kwargs);
    } catch (const c10::Error& e) {
        throw DataError(fmt::format("FVD: the I3D module {} failed on clips {}: {}", file_.string(),
                                    c10::str(clips.sizes()), e.what_without_backtrace()));
    }
    if (!out.isTensor())
        throw DataError(fmt::format("FVD: the I3D module {} returned {} instead of a features tensor [batch, D]",
                                    file_.string(), out.tagKind()));
    auto f = out.toTensor();
    if (f.dim() != 2 || f.size(0) != clips.size(0))
        throw DataError(fmt::format("FVD: the I3D module {} returned features {} for {} clips; expected [{}, D]",
                                    file_.string(), c10::str(f.sizes()), clips.size(0), clips.size(0)));
    return f.to(torch::kCPU, torch::kFloat64);
}

at::Tensor first_clip(const fs::path& video, const std::string& id, const std::string& role, int64_t num_frames) {
    std::vector<cv::Mat> frames;
    try {
        frames = media::read_frames_bgr(video);
    } catch (const Error& e) {
        throw DataError(fmt::format("video '{}': {} {}: {}", id, role, video.string(), e.what()));
    }
    if (static_cast<int64_t>(frames.size()) < num_frames)
        throw DataError(fmt::format("FVD: video '{}': the {} video {} has {} frames, shorter than a {}-frame clip", id,
                                    role, video.string(), frames.size(), num_frames));
    std::vector<at::Tensor> ts;
    for (int64_t t = 0; t < num_frames; ++t) {
        const auto& f = frames[static_cast<std::size_t>(t)];
        if (f.size() != frames[0].size())
            throw DataError(fmt::format("FVD: video '{}': frame {} of the {} video {} is {}x{} but frame 0 is {}x{}",
                                        id, t, role, video.string(), f.cols, f.rows, frames[0].cols, frames[0].rows));
        cv::Mat rgb;
        cv::cvtColor(f, rgb, cv::COLOR_BGR2RGB);
        ts.push_back(torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone());
    }
    return torch::stack(ts).permute({3, 0, 1, 2}).contiguous();  // [3, T, H, W]
}

GaussianStats fvd_feature_statistics(const at::Tensor& features, const std::string& set_name) {
    if (features.dim() != 2)
        throw DataError(
            fmt::format("FVD: features of the {} must be [N, D], got {}", set_name, c10::str(features.sizes())));
    if (features.size(0) < 2)
        throw DataError(fmt::format("FVD: the {} give {} clip(s); a covariance needs at least 2 (StyleGAN-V uses 2048)",
                                    set_name, features.size(0)));
    const auto x = features.to(torch::kCPU, torch::kFloat64);
    if (!torch::isfinite(x).all().item<bool>())
        throw DataError("FVD: features of the " + set_name + " are not finite (NaN/Inf from the I3D module?)");
    GaussianStats s;
    s.count = x.size(0);
    // metric_utils.FeatureStats: raw sums in float64, then mean = Σx/n, cov = Σxxᵀ/n − μμᵀ.
    s.mu = x.sum(0) / double(s.count);
    s.sigma = x.t().matmul(x) / double(s.count) - torch::outer(s.mu, s.mu);
    return s;
}

FvdReport evaluate_fvd(const std::vector<VideoPair>& pairs, const VideoDetector& detector, const FvdOptions& opts) {
    if (opts.batch_size < 1) throw ConfigError("FVD: batch size must be >= 1");
    if (opts.num_frames < 1) throw ConfigError("FVD: frames per clip must be >= 1");
    ProgressOptions po;
    po.unit = "videos";
    Progress progress("FVD features", 2 * static_cast<int64_t>(pairs.size()), po);
    auto features_of = [&](bool generated) {
        const std::string role = generated ? "generated" : "ground truth";
        std::vector<at::Tensor> feats;
        // Clips of one frame size go through the detector together, batch_size at a time.
        std::map<std::pair<int64_t, int64_t>, std::vector<at::Tensor>> pending;
        auto flush = [&](std::vector<at::Tensor>& clips) {
            if (clips.empty()) return;
            feats.push_back(detector.features(torch::stack(clips)));
            clips.clear();
        };
        for (const auto& p : pairs) {
            const auto clip = first_clip(generated ? p.generated : p.ground_truth, p.id, role, opts.num_frames);
            auto& bucket = pending[{clip.size(2), clip.size(3)}];
            bucket.push_back(clip);
            if (static_cast<int64_t>(bucket.size()) >= opts.batch_size) flush(bucket);
            progress.advance(1, p.id);
        }
        for (auto& [size, clips] : pending) flush(clips);
        if (feats.empty()) return torch::zeros({0, 0}, torch::kFloat64);
        return torch::cat(feats);
    };
    const auto fg = features_of(true);
    const auto ft = features_of(false);
    const auto sg = fvd_feature_statistics(fg, "generated videos");
    const auto st = fvd_feature_statistics(ft, "ground-truth videos");
    if (fg.size(1) != ft.size(1))
        throw DataError(
            fmt::format("FVD: {} features per generated clip but {} per ground-truth clip", fg.size(1), ft.size(1)));
    const auto r = frechet_distance(sg, st);
    FvdReport rep;
    rep.fvd = r.distance;
    rep.eps_offset_used = r.eps_offset_used;
    rep.num_frames = opts.num_frames;
    rep.generated_clips = fg.size(0);
    rep.ground_truth_clips = ft.size(0);
    rep.feature_dim = fg.size(1);
    return rep;
}

FvdReport evaluate_fvd(const std::vector<VideoPair>& pairs, const fs::path& i3d_torchscript, const FvdOptions& opts) {
    const auto detector = VideoDetector::load(i3d_torchscript, opts.device);
    return evaluate_fvd(pairs, detector, opts);
}

}  // namespace ipa::eval
