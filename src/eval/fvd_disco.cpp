#include "ipa/eval/fvd_disco.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <opencv2/imgproc.hpp>

#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/eval/fid_vid.h"
#include "ipa/eval/frechet.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/state_dict.h"
#include "ipa/media/frames.h"
#include "load_options.h"

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace ipa::eval {
namespace {

using K3 = std::array<int64_t, 3>;  // the module holder's forwarding constructor needs named types

/// F.pad(x, (w_f, w_b, h_f, h_b, t_f, t_b)) with pytorch-i3d's 'SAME' amounts for [B, C, T, H, W].
torch::Tensor same_pad(const torch::Tensor& x, const std::array<int64_t, 3>& k, const std::array<int64_t, 3>& s) {
    std::vector<int64_t> pad(6);
    for (int d = 0; d < 3; ++d) {
        const int64_t p = i3d_same_pad(k[d], s[d], x.size(2 + d));
        pad[4 - 2 * d] = p / 2;          // front
        pad[4 - 2 * d + 1] = p - p / 2;  // back
    }
    if (std::all_of(pad.begin(), pad.end(), [](int64_t p) { return p == 0; })) return x;
    return F::pad(x, F::PadFuncOptions(pad));  // constant 0, as F.pad
}

/// MaxPool3dSamePadding.
torch::Tensor max_pool_same(const torch::Tensor& x, std::array<int64_t, 3> k, std::array<int64_t, 3> s) {
    return F::max_pool3d(same_pad(x, k, s),
                         F::MaxPool3dFuncOptions({k[0], k[1], k[2]}).stride({s[0], s[1], s[2]}).padding(0));
}

}  // namespace

int64_t i3d_same_pad(int64_t kernel, int64_t stride, int64_t size) {
    if (size % stride == 0) return std::max<int64_t>(kernel - stride, 0);
    return std::max<int64_t>(kernel - size % stride, 0);
}

Unit3dImpl::Unit3dImpl(int64_t in, int64_t out, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride, bool relu,
                       bool batch_norm, bool bias)
    : kernel_(kernel), stride_(stride), relu_(relu) {
    conv3d_ =
        register_module("conv3d", torch::nn::Conv3d(torch::nn::Conv3dOptions(in, out, {kernel[0], kernel[1], kernel[2]})
                                                        .stride({stride[0], stride[1], stride[2]})
                                                        .padding(0)
                                                        .bias(bias)));
    if (batch_norm)
        bn_ = register_module("bn", torch::nn::BatchNorm3d(torch::nn::BatchNormOptions(out).eps(1e-3).momentum(0.01)));
}

torch::Tensor Unit3dImpl::forward(const torch::Tensor& x) {
    auto y = conv3d_(same_pad(x, kernel_, stride_));
    if (bn_) y = bn_(y);
    return relu_ ? torch::relu(y) : y;
}

I3dMixedImpl::I3dMixedImpl(int64_t in, std::array<int64_t, 6> o) {
    b0_ = register_module("b0", Unit3d(in, o[0], K3{1, 1, 1}));
    b1a_ = register_module("b1a", Unit3d(in, o[1], K3{1, 1, 1}));
    b1b_ = register_module("b1b", Unit3d(o[1], o[2], K3{3, 3, 3}));
    b2a_ = register_module("b2a", Unit3d(in, o[3], K3{1, 1, 1}));
    b2b_ = register_module("b2b", Unit3d(o[3], o[4], K3{3, 3, 3}));
    b3b_ = register_module("b3b", Unit3d(in, o[5], K3{1, 1, 1}));
}

torch::Tensor I3dMixedImpl::forward(const torch::Tensor& x) {
    return torch::cat({b0_(x), b1b_(b1a_(x)), b2b_(b2a_(x)), b3b_(max_pool_same(x, {3, 3, 3}, {1, 1, 1}))}, 1);
}

InceptionI3dImpl::InceptionI3dImpl(int64_t num_classes) {
    conv1a_ = register_module("Conv3d_1a_7x7", Unit3d(3, 64, K3{7, 7, 7}, K3{2, 2, 2}));
    conv2b_ = register_module("Conv3d_2b_1x1", Unit3d(64, 64, K3{1, 1, 1}));
    conv2c_ = register_module("Conv3d_2c_3x3", Unit3d(64, 192, K3{3, 3, 3}));
    const std::pair<const char*, std::pair<int64_t, std::array<int64_t, 6>>> blocks[] = {
        {"Mixed_3b", {192, {64, 96, 128, 16, 32, 32}}},
        {"Mixed_3c", {256, {128, 128, 192, 32, 96, 64}}},
        {"Mixed_4b", {128 + 192 + 96 + 64, {192, 96, 208, 16, 48, 64}}},
        {"Mixed_4c", {192 + 208 + 48 + 64, {160, 112, 224, 24, 64, 64}}},
        {"Mixed_4d", {160 + 224 + 64 + 64, {128, 128, 256, 24, 64, 64}}},
        {"Mixed_4e", {128 + 256 + 64 + 64, {112, 144, 288, 32, 64, 64}}},
        {"Mixed_4f", {112 + 288 + 64 + 64, {256, 160, 320, 32, 128, 128}}},
        {"Mixed_5b", {256 + 320 + 128 + 128, {256, 160, 320, 32, 128, 128}}},
        {"Mixed_5c", {256 + 320 + 128 + 128, {384, 192, 384, 48, 128, 128}}},
    };
    for (const auto& [name, cfg] : blocks) mixed_.push_back(register_module(name, I3dMixed(cfg.first, cfg.second)));
    logits_ = register_module("logits", Unit3d(384 + 384 + 128 + 128, num_classes, K3{1, 1, 1}, K3{1, 1, 1},
                                               /*relu=*/false, /*batch_norm=*/false, /*bias=*/true));
}

torch::Tensor InceptionI3dImpl::forward(const torch::Tensor& input) {
    auto x = conv1a_(input);
    x = max_pool_same(x, {1, 3, 3}, {1, 2, 2});  // MaxPool3d_2a_3x3
    x = conv2c_(conv2b_(x));
    x = max_pool_same(x, {1, 3, 3}, {1, 2, 2});  // MaxPool3d_3a_3x3
    x = mixed_[1](mixed_[0](x));                 // Mixed_3b, 3c
    x = max_pool_same(x, {3, 3, 3}, {2, 2, 2});  // MaxPool3d_4a_3x3
    for (int i = 2; i < 7; ++i) x = mixed_[i](x);
    x = max_pool_same(x, {2, 2, 2}, {2, 2, 2});  // MaxPool3d_5a_2x2
    x = mixed_[8](mixed_[7](x));
    x = F::avg_pool3d(x, F::AvgPool3dFuncOptions({1, 7, 7}).stride(1));  // DisCo: [1, 7, 7]
    x = logits_(x);                                                      // dropout: identity in eval
    if (x.size(3) != 1 || x.size(4) != 1)
        throw DataError(
            fmt::format("DisCo FVD: the I3D expects 224x224 frames (logits map {}x{})", x.size(3), x.size(4)));
    return x.squeeze(4).squeeze(3).mean(2);  // [B, classes, T'] averaged over time
}

void load_inception_i3d(InceptionI3d& net, const io::Checkpoint& ckpt) {
    const auto o = detail::strict_allowing_bn_counters();
    const auto report = io::load_state_dict(*net, ckpt, o);
    if (!report.ok())
        throw CheckpointError("DisCo FVD weights " + ckpt.description() +
                              " do not fit DisCo's InceptionI3d(400) (i3d_pretrained_400.pt):\n" + report.describe());
    net->eval();
}

void load_inception_i3d(InceptionI3d& net, const fs::path& weights) {
    if (!fs::is_regular_file(weights))
        throw CheckpointError("DisCo FVD: weights file " + weights.string() +
                              " does not exist (DisCo's eval_fvd/i3d_pretrained_400.pt)");
    std::unique_ptr<io::Checkpoint> ckpt;
    try {
        ckpt = std::make_unique<io::Checkpoint>(io::Checkpoint::open(weights));
    } catch (const CheckpointError& e) {
        throw CheckpointError(fmt::format("DisCo FVD: cannot read the I3D weights {} (i3d_pretrained_400.pt): {}",
                                          weights.string(), e.what()));
    }
    load_inception_i3d(net, *ckpt);
}

at::Tensor fvd_disco_clip(const at::Tensor& frames, int64_t size) {
    if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
        throw DataError("DisCo FVD: frames must be uint8 RGB [T, H, W, 3]");
    if (frames.size(0) < 1) throw DataError("DisCo FVD: a video without frames");
    std::vector<at::Tensor> resized;
    for (int64_t i = 0; i < frames.size(0); ++i) {
        std::vector<at::Tensor> ch;
        for (int64_t c = 0; c < 3; ++c)
            ch.push_back(pil_resize_bicubic_f(frames[i].select(2, c).to(torch::kFloat32), size, size));
        resized.push_back(torch::stack(ch, 2));  // [size, size, 3]
    }
    auto video = torch::stack(resized);  // [T, size, size, 3] float32
    video = video / 127.5 - 1;           // float32, as DisCo's torch tensor arithmetic
    return video.unsqueeze(0).permute({0, 4, 1, 2, 3}).contiguous();
}

at::Tensor fvd_disco_video_feature(InceptionI3d& net, const at::Tensor& frames) {
    torch::NoGradGuard ng;
    const auto device = net->parameters().front().device();
    return net->forward(fvd_disco_clip(frames).to(device)).to(torch::kCPU).squeeze(0).to(torch::kFloat64);
}

FvdDiscoFeatures fvd_disco_features(const std::vector<VideoPair>& pairs, InceptionI3d& net,
                                    const FvdDiscoOptions& opts) {
    (void)opts;
    ProgressOptions po;
    po.unit = "videos";
    Progress progress("DisCo FVD features", 2 * static_cast<int64_t>(pairs.size()), po);
    FvdDiscoFeatures out;
    auto features_of = [&](bool generated) {
        std::vector<at::Tensor> feats;
        for (const auto& p : pairs) {
            const auto& path = generated ? p.generated : p.ground_truth;
            const char* role = generated ? "generated" : "ground truth";
            std::vector<cv::Mat> frames;
            try {
                frames = media::read_frames_bgr(path);
            } catch (const Error& e) {
                throw DataError(fmt::format("video '{}': {} {}: {}", p.id, role, path.string(), e.what()));
            }
            if (frames.empty())
                throw DataError(fmt::format("DisCo FVD: video '{}': {} {} has no frames", p.id, role, path.string()));
            std::vector<at::Tensor> ts;
            for (std::size_t t = 0; t < frames.size(); ++t) {
                if (frames[t].size() != frames[0].size())
                    throw DataError(fmt::format(
                        "DisCo FVD: video '{}': frame {} of the {} video {} is {}x{} but frame "
                        "0 is {}x{}",
                        p.id, t, role, path.string(), frames[t].cols, frames[t].rows, frames[0].cols, frames[0].rows));
                cv::Mat rgb;
                cv::cvtColor(frames[t], rgb, cv::COLOR_BGR2RGB);
                ts.push_back(torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone());
            }
            (generated ? out.generated_frames : out.ground_truth_frames) += static_cast<int64_t>(ts.size());
            feats.push_back(fvd_disco_video_feature(net, torch::stack(ts)));
            progress.advance(1, p.id);
        }
        if (feats.empty()) return torch::zeros({0, 400}, torch::kFloat64);
        return torch::stack(feats);
    };
    out.generated = features_of(true);
    out.ground_truth = features_of(false);
    return out;
}

FvdDiscoReport fvd_disco_from_features(const FvdDiscoFeatures& f) {
    const auto r = frechet_distance(feature_statistics(f.generated, "generated videos (DisCo FVD)"),
                                    feature_statistics(f.ground_truth, "ground-truth videos (DisCo FVD)"));
    FvdDiscoReport rep;
    rep.fvd = r.distance;
    rep.eps_offset_used = r.eps_offset_used;
    rep.generated_videos = f.generated.size(0);
    rep.ground_truth_videos = f.ground_truth.size(0);
    rep.generated_frames = f.generated_frames;
    rep.ground_truth_frames = f.ground_truth_frames;
    return rep;
}

FvdDiscoReport evaluate_fvd_disco(const std::vector<VideoPair>& pairs, const fs::path& weights,
                                  const FvdDiscoOptions& opts) {
    InceptionI3d net;
    load_inception_i3d(net, weights);
    net->to(torch::Device(opts.device));
    return fvd_disco_from_features(fvd_disco_features(pairs, net, opts));
}

}  // namespace ipa::eval
