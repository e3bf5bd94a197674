#include "ipa/eval/fid_vid.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <opencv2/imgproc.hpp>

#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/eval/frechet.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/state_dict.h"
#include "ipa/media/frames.h"
#include "load_options.h"

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace ipa::eval {
namespace {

double bicubic(double x) {  // PIL's bicubic_filter, a = -0.5
    constexpr double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

struct Coeffs {
    std::vector<int> xmin, count;
    std::vector<std::vector<double>> k;
};

// PIL precompute_coeffs for the box [0, in_size).
Coeffs coeffs(int in_size, int out_size) {
    Coeffs c;
    const double scale = double(in_size) / out_size;
    const double filterscale = std::max(scale, 1.0);
    const double support = 2.0 * filterscale;
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        std::vector<double> k(static_cast<std::size_t>(std::max(xmax, 0)));
        double ww = 0;
        for (int x = 0; x < xmax; ++x) {
            k[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < xmax; ++x)
            if (ww != 0.0) k[x] /= ww;
        c.xmin.push_back(xmin);
        c.count.push_back(xmax);
        c.k.push_back(std::move(k));
    }
    return c;
}

}  // namespace

at::Tensor pil_resize_bicubic_f(const at::Tensor& image, int64_t out_h, int64_t out_w) {
    auto in = image.to(torch::kCPU, torch::kFloat32).contiguous();
    const int h = static_cast<int>(in.size(0)), w = static_cast<int>(in.size(1));
    const int oh = static_cast<int>(out_h), ow = static_cast<int>(out_w);
    // Horizontal pass (when the width changes), then vertical (when the height changes).
    at::Tensor tmp = in;
    if (ow != w) {
        const auto c = coeffs(w, ow);
        tmp = torch::empty({h, ow}, torch::kFloat32);
        const float* src = in.data_ptr<float>();
        float* dst = tmp.data_ptr<float>();
        for (int y = 0; y < h; ++y)
            for (int xx = 0; xx < ow; ++xx) {
                double ss = 0.0;
                for (int x = 0; x < c.count[xx]; ++x) ss += double(src[y * w + x + c.xmin[xx]]) * c.k[xx][x];
                dst[y * ow + xx] = static_cast<float>(ss);
            }
    }
    if (oh == h) return tmp;
    const auto c = coeffs(h, oh);
    auto out = torch::empty({oh, ow}, torch::kFloat32);
    const float* src = tmp.data_ptr<float>();
    float* dst = out.data_ptr<float>();
    for (int yy = 0; yy < oh; ++yy)
        for (int xx = 0; xx < ow; ++xx) {
            double ss = 0.0;
            for (int y = 0; y < c.count[yy]; ++y) ss += double(src[(y + c.xmin[yy]) * ow + xx]) * c.k[yy][y];
            dst[yy * ow + xx] = static_cast<float>(ss);
        }
    return out;
}

at::Tensor fid_vid_segments(const at::Tensor& frames, int64_t duration, int64_t size) {
    if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
        throw DataError("FID-VID: frames must be uint8 RGB [T, H, W, 3]");
    const int64_t t = frames.size(0);
    if (t < 1) throw DataError("FID-VID: a video without frames");
    std::vector<at::Tensor> resized;
    for (int64_t i = 0; i < t; ++i) {
        std::vector<at::Tensor> ch;
        for (int64_t c = 0; c < 3; ++c)
            ch.push_back(pil_resize_bicubic_f(frames[i].select(2, c).to(torch::kFloat32), size, size));
        resized.push_back(torch::stack(ch, 2));  // [size, size, 3]
    }
    auto video = torch::stack(resized);  // [T, size, size, 3] float32
    const int64_t seg = (t + duration - 1) / duration;
    if (t % duration != 0) video = torch::cat({video, video.narrow(0, t - 1, 1).repeat({seg * duration - t, 1, 1, 1})});
    // float32 − float64 mean is computed in float64 by torch, then .float().
    const auto mean = torch::tensor({114.7748, 107.7354, 99.4750}, torch::kFloat64);
    video = (video.to(torch::kFloat64) - mean).to(torch::kFloat32);
    return video.view({seg, duration, size, size, 3}).permute({0, 4, 1, 2, 3}).contiguous();
}

Bottleneck3dImpl::Bottleneck3dImpl(int64_t in, int64_t planes, int64_t stride, bool downsample) {
    using torch::nn::Conv3dOptions;
    conv1_ = register_module("conv1", torch::nn::Conv3d(Conv3dOptions(in, planes, 1).bias(false)));
    bn1_ = register_module("bn1", torch::nn::BatchNorm3d(planes));
    conv2_ = register_module("conv2",
                             torch::nn::Conv3d(Conv3dOptions(planes, planes, 3).stride(stride).padding(1).bias(false)));
    bn2_ = register_module("bn2", torch::nn::BatchNorm3d(planes));
    conv3_ = register_module("conv3", torch::nn::Conv3d(Conv3dOptions(planes, planes * 4, 1).bias(false)));
    bn3_ = register_module("bn3", torch::nn::BatchNorm3d(planes * 4));
    if (downsample)
        downsample_ = register_module(
            "downsample",
            torch::nn::Sequential(torch::nn::Conv3d(Conv3dOptions(in, planes * 4, 1).stride(stride).bias(false)),
                                  torch::nn::BatchNorm3d(planes * 4)));
}

torch::Tensor Bottleneck3dImpl::forward(const torch::Tensor& x) {
    auto y = torch::relu(bn1_(conv1_(x)));
    y = torch::relu(bn2_(conv2_(y)));
    y = bn3_(conv3_(y));
    return torch::relu(y + (downsample_ ? downsample_->forward(x) : x));
}

ResNet3d50Impl::ResNet3d50Impl() {
    using torch::nn::Conv3dOptions;
    conv1_ =
        register_module("conv1", torch::nn::Conv3d(Conv3dOptions(3, 64, 7).stride({1, 2, 2}).padding(3).bias(false)));
    bn1_ = register_module("bn1", torch::nn::BatchNorm3d(64));
    const int64_t planes[4] = {64, 128, 256, 512}, blocks[4] = {3, 4, 6, 3}, strides[4] = {1, 2, 2, 2};
    int64_t in = 64;
    for (int l = 0; l < 4; ++l) {
        torch::nn::Sequential seq;
        for (int64_t b = 0; b < blocks[l]; ++b) {
            const int64_t s = b == 0 ? strides[l] : 1;
            seq->push_back(Bottleneck3d(in, planes[l], s, b == 0 && (s != 1 || in != planes[l] * 4)));
            in = planes[l] * 4;
        }
        layers_[l] = register_module("layer" + std::to_string(l + 1), seq);
    }
    fc_ = register_module("fc", torch::nn::Linear(2048, 400));
}

torch::Tensor ResNet3d50Impl::forward(const torch::Tensor& input) {
    auto x = torch::relu(bn1_(conv1_(input)));
    x = F::max_pool3d(x, F::MaxPool3dFuncOptions(3).stride(2).padding(1));
    for (auto& l : layers_) x = l->forward(x);
    // AvgPool3d((ceil(16/16), ceil(112/32), ceil(112/32)), stride=1) for sample_duration 16, size 112.
    x = F::avg_pool3d(x, F::AvgPool3dFuncOptions({1, 4, 4}).stride(1));
    return x.reshape({x.size(0), -1});
}

void load_resnet3d50(ResNet3d50& net, const io::Checkpoint& ckpt) {
    io::NamedTensors t;
    for (const auto& name : ckpt.names()) {
        std::string k = name;
        for (const std::string p : {"state_dict.", "module."})
            if (k.rfind(p, 0) == 0) k = k.substr(p.size());
        t.emplace_back(k, ckpt.get(name));
    }
    const auto renamed = io::Checkpoint::from_tensors(std::move(t), ckpt.description());
    const auto o = detail::strict_allowing_bn_counters();
    const auto report = io::load_state_dict(*net, renamed, o);
    if (!report.ok())
        throw CheckpointError("FID-VID weights " + ckpt.description() +
                              " do not fit DisCo's 3D ResNet-50 (resnet-50-kinetics.pth):\n" + report.describe());
    net->eval();
}

void load_resnet3d50(ResNet3d50& net, const fs::path& weights) {
    if (!fs::is_regular_file(weights))
        throw CheckpointError("FID-VID: weights file " + weights.string() + " does not exist (resnet-50-kinetics.pth)");
    load_resnet3d50(net, io::Checkpoint::open(weights));
}

at::Tensor fid_vid_video_feature(ResNet3d50& net, const at::Tensor& frames, const FidVidOptions& opts) {
    torch::NoGradGuard ng;
    const auto segs = fid_vid_segments(frames);
    const auto device = net->parameters().front().device();
    std::vector<at::Tensor> feats;
    for (int64_t i = 0; i < segs.size(0); i += opts.batch_size)
        feats.push_back(
            net->forward(segs.narrow(0, i, std::min(opts.batch_size, segs.size(0) - i)).to(device)).to(torch::kCPU));
    return torch::cat(feats).mean(0).to(torch::kFloat64);  // DisCo: float32 mean over segments
}

FidVidFeatures fid_vid_features(const std::vector<VideoPair>& pairs, ResNet3d50& net, const FidVidOptions& opts) {
    if (opts.batch_size < 1) throw ConfigError("FID-VID: batch size must be >= 1");
    ProgressOptions po;
    po.unit = "videos";
    Progress progress("FID-VID features", 2 * static_cast<int64_t>(pairs.size()), po);
    FidVidFeatures out;
    auto features_of = [&](bool generated) {
        std::vector<at::Tensor> feats;
        for (const auto& p : pairs) {
            const auto& path = generated ? p.generated : p.ground_truth;
            std::vector<cv::Mat> frames;
            try {
                frames = media::read_frames_bgr(path);
            } catch (const Error& e) {
                throw DataError(fmt::format("video '{}': {} {}: {}", p.id, generated ? "generated" : "ground truth",
                                            path.string(), e.what()));
            }
            std::vector<at::Tensor> ts;
            for (const auto& f : frames) {
                if (f.size() != frames[0].size())
                    throw DataError(
                        fmt::format("FID-VID: video '{}': frames of {} differ in size", p.id, path.string()));
                cv::Mat rgb;
                cv::cvtColor(f, rgb, cv::COLOR_BGR2RGB);
                ts.push_back(torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone());
            }
            if (ts.empty()) throw DataError(fmt::format("FID-VID: video '{}': {} has no frames", p.id, path.string()));
            (generated ? out.generated_segments : out.ground_truth_segments) +=
                (static_cast<int64_t>(ts.size()) + 15) / 16;
            feats.push_back(fid_vid_video_feature(net, torch::stack(ts), opts));
            progress.advance(1, p.id);
        }
        if (feats.empty()) return torch::zeros({0, 2048}, torch::kFloat64);
        return torch::stack(feats);
    };
    out.generated = features_of(true);
    out.ground_truth = features_of(false);
    return out;
}

FidVidReport evaluate_fid_vid(const std::vector<VideoPair>& pairs, const fs::path& weights, const FidVidOptions& opts) {
    ResNet3d50 net;
    load_resnet3d50(net, weights);
    net->to(torch::Device(opts.device));
    const auto f = fid_vid_features(pairs, net, opts);
    const auto r = frechet_distance(feature_statistics(f.generated, "generated videos"),
                                    feature_statistics(f.ground_truth, "ground-truth videos"));
    FidVidReport rep;
    rep.fid_vid = r.distance;
    rep.eps_offset_used = r.eps_offset_used;
    rep.generated_videos = f.generated.size(0);
    rep.ground_truth_videos = f.ground_truth.size(0);
    rep.generated_segments = f.generated_segments;
    rep.ground_truth_segments = f.ground_truth_segments;
    return rep;
}

}  // namespace ipa::eval
