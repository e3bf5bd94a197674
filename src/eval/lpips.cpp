#include "ipa/eval/lpips.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/state_dict.h"

namespace fs = std::filesystem;

namespace ipa::eval {
namespace nn = torch::nn;

namespace {

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
    return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}
nn::MaxPool2d max_pool(int64_t k, int64_t stride) { return nn::MaxPool2d(nn::MaxPool2dOptions(k).stride(stride)); }

/// torchvision's `alexnet().features` (13 modules; LPIPS taps the ReLUs 1, 4, 7, 9, 11).
nn::Sequential alexnet_features() {
    return nn::Sequential(conv(3, 64, 11, 4, 2), nn::ReLU(), max_pool(3, 2), conv(64, 192, 5, 1, 2), nn::ReLU(),
                          max_pool(3, 2), conv(192, 384, 3, 1, 1), nn::ReLU(), conv(384, 256, 3, 1, 1), nn::ReLU(),
                          conv(256, 256, 3, 1, 1), nn::ReLU(), max_pool(3, 2));
}

/// torchvision's `vgg16().features` (configuration D, 31 modules; LPIPS taps 3, 8, 15, 22, 29).
nn::Sequential vgg16_features() {
    nn::Sequential s;
    int64_t in = 3;
    for (const int64_t c : {64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512, -1}) {
        if (c < 0) {
            s->push_back(max_pool(2, 2));
            continue;
        }
        s->push_back(conv(in, c, 3, 1, 1));
        s->push_back(nn::ReLU());
        in = c;
    }
    return s;
}

std::vector<int64_t> channels(LpipsNet net) {
    return net == LpipsNet::alex ? std::vector<int64_t>{64, 192, 384, 256, 256}
                                 : std::vector<int64_t>{64, 128, 256, 512, 512};
}

/// lpips.normalize_tensor: x / (‖x‖₂ over channels + 1e-10).
torch::Tensor unit_normalize(const torch::Tensor& x) {
    return x / (torch::sqrt(torch::sum(x * x, 1, /*keepdim=*/true)) + 1e-10);
}

const char* backbone_file(LpipsNet net) {
    return net == LpipsNet::alex ? "torchvision's alexnet-owt-7be5be79.pth" : "torchvision's vgg16-397923af.pth";
}

void load_part(nn::Module& module, const fs::path& file, const std::string& what, const std::string& expected,
               const io::KeyMap& key_map = {}) {
    const auto ckpt = io::Checkpoint::open(file);
    io::LoadOptions o;
    o.strict = false;
    o.key_map = key_map;
    const auto report = io::load_state_dict(module, ckpt, o);
    if (!report.ok())
        throw CheckpointError(fmt::format("LPIPS {} {} does not fit (expected {}):\n{}", what, file.string(), expected,
                                          report.describe()));
}

}  // namespace

LpipsNet parse_lpips_net(const std::string& name) {
    if (name == "alex") return LpipsNet::alex;
    if (name == "vgg") return LpipsNet::vgg;
    throw ConfigError("LPIPS network: expected alex or vgg, got '" + name + "'");
}

const char* lpips_net_name(LpipsNet net) { return net == LpipsNet::alex ? "alex" : "vgg"; }

LpipsImpl::LpipsImpl(LpipsNet net) : net_(net) {
    backbone_ = register_module("backbone", std::make_shared<nn::Module>());
    features_ = backbone_->register_module("features", net == LpipsNet::alex ? alexnet_features() : vgg16_features());
    tap_after_ = net == LpipsNet::alex ? std::vector<int64_t>{1, 4, 7, 9, 11} : std::vector<int64_t>{3, 8, 15, 22, 29};
    lins_ = register_module("lins", std::make_shared<nn::Module>());
    const auto chns = channels(net);
    for (std::size_t k = 0; k < chns.size(); ++k) {
        auto lin = lins_->register_module("lin" + std::to_string(k), std::make_shared<nn::Module>());
        lin_.push_back(lin->register_module(
            "model", nn::Sequential(nn::Dropout(0.5), nn::Conv2d(nn::Conv2dOptions(chns[k], 1, 1).bias(false)))));
    }
    eval();
}

int64_t LpipsImpl::min_side() const { return net_ == LpipsNet::alex ? 31 : 16; }

std::vector<torch::Tensor> LpipsImpl::taps(const torch::Tensor& x) {
    static const auto shift = torch::tensor({-.030f, -.088f, -.188f}).view({1, 3, 1, 1});
    static const auto scale = torch::tensor({.458f, .448f, .450f}).view({1, 3, 1, 1});
    auto h = (x - shift.to(x.options())) / scale.to(x.options());
    std::vector<torch::Tensor> out;
    int64_t i = 0;
    for (auto& layer : *features_) {
        h = layer.forward(h);
        if (i++ == tap_after_[out.size()]) out.push_back(h);
        if (out.size() == tap_after_.size()) break;
    }
    return out;
}

torch::Tensor LpipsImpl::forward_layers(const torch::Tensor& in0, const torch::Tensor& in1) {
    const auto f0 = taps(in0), f1 = taps(in1);
    std::vector<torch::Tensor> terms;
    for (std::size_t k = 0; k < f0.size(); ++k) {
        const auto d = (unit_normalize(f0[k]) - unit_normalize(f1[k])).pow(2);
        terms.push_back(lin_[k]->forward(d).mean({2, 3}).flatten());
    }
    return torch::stack(terms);
}

torch::Tensor LpipsImpl::forward(const torch::Tensor& in0, const torch::Tensor& in1) {
    const auto terms = forward_layers(in0, in1);
    auto val = terms[0];
    for (int64_t k = 1; k < terms.size(0); ++k) val = val + terms[k];  // lpips: val += res[l], in order
    return val;
}

Lpips load_lpips(LpipsNet net, const fs::path& backbone, const fs::path& lin_weights) {
    Lpips m(net);
    const std::string name = lpips_net_name(net);
    load_part(m->backbone(), backbone, name + " backbone", backbone_file(net), [](const std::string& k) {
        return k.rfind("classifier.", 0) == 0 ? std::nullopt : std::optional<std::string>(k);
    });
    load_part(m->lins(), lin_weights, name + " lin weights", "lpips' weights/v0.1/" + name + ".pth");
    m->eval();
    return m;
}

torch::Tensor lpips_input(const cv::Mat& bgr) {
    if (bgr.type() != CV_8UC3) throw DataError("LPIPS: expected a BGR uint8 frame");
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    return torch::from_blob(rgb.data, {1, rgb.rows, rgb.cols, 3}, torch::kUInt8)
        .permute({0, 3, 1, 2})
        .to(torch::kFloat32)
        .div(127.5)
        .sub(1);
}

double lpips_distance(LpipsImpl& net, const cv::Mat& a_bgr, const cv::Mat& b_bgr) {
    if (a_bgr.size() != b_bgr.size())
        throw DataError(fmt::format("LPIPS: frames of different sizes ({}x{} and {}x{})", a_bgr.cols, a_bgr.rows,
                                    b_bgr.cols, b_bgr.rows));
    if (std::min(a_bgr.rows, a_bgr.cols) < net.min_side())
        throw DataError(fmt::format("LPIPS {}: a {}x{} frame is smaller than the network's {} px",
                                    lpips_net_name(net.net()), a_bgr.cols, a_bgr.rows, net.min_side()));
    torch::NoGradGuard ng;
    return net.forward(lpips_input(a_bgr), lpips_input(b_bgr)).item<double>();
}

}  // namespace ipa::eval
