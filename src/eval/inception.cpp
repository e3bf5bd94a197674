#include "ipa/eval/inception.h"

#include <torch/torch.h>

#include <string>

#include "ipa/core/error.h"
#include "ipa/io/checkpoint.h"
#include "ipa/io/state_dict.h"
#include "load_options.h"

namespace ipa::eval {
namespace F = torch::nn::functional;

BasicConv2dImpl::BasicConv2dImpl(int64_t in, int64_t out, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                                 std::vector<int64_t> padding) {
    conv_ = register_module(
        "conv",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false)));
    bn_ = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(0.001)));
}

torch::Tensor BasicConv2dImpl::forward(const torch::Tensor& x) { return torch::relu(bn_->forward(conv_->forward(x))); }

namespace {

using K = std::vector<int64_t>;

torch::Tensor avg_pool_3x3(const torch::Tensor& x) {  // F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    return F::avg_pool2d(x, F::AvgPool2dFuncOptions(3).stride(1).padding(1).count_include_pad(false));
}
torch::Tensor max_pool_3x3_s2(const torch::Tensor& x) { return F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2)); }

struct FidInceptionA : torch::nn::Module {  // Mixed_5b/5c/5d
    BasicConv2d b1x1, b5_1, b5_2, d1, d2, d3, pool;
    FidInceptionA(int64_t in, int64_t pool_features)
        : b1x1(register_module("branch1x1", BasicConv2d(in, 64, K{1, 1}))),
          b5_1(register_module("branch5x5_1", BasicConv2d(in, 48, K{1, 1}))),
          b5_2(register_module("branch5x5_2", BasicConv2d(48, 64, K{5, 5}, K{1, 1}, K{2, 2}))),
          d1(register_module("branch3x3dbl_1", BasicConv2d(in, 64, K{1, 1}))),
          d2(register_module("branch3x3dbl_2", BasicConv2d(64, 96, K{3, 3}, K{1, 1}, K{1, 1}))),
          d3(register_module("branch3x3dbl_3", BasicConv2d(96, 96, K{3, 3}, K{1, 1}, K{1, 1}))),
          pool(register_module("branch_pool", BasicConv2d(in, pool_features, K{1, 1}))) {}
    torch::Tensor forward(const torch::Tensor& x) {
        return torch::cat({b1x1(x), b5_2(b5_1(x)), d3(d2(d1(x))), pool(avg_pool_3x3(x))}, 1);
    }
};

struct InceptionB : torch::nn::Module {  // Mixed_6a
    BasicConv2d b3, d1, d2, d3;
    explicit InceptionB(int64_t in)
        : b3(register_module("branch3x3", BasicConv2d(in, 384, K{3, 3}, K{2, 2}))),
          d1(register_module("branch3x3dbl_1", BasicConv2d(in, 64, K{1, 1}))),
          d2(register_module("branch3x3dbl_2", BasicConv2d(64, 96, K{3, 3}, K{1, 1}, K{1, 1}))),
          d3(register_module("branch3x3dbl_3", BasicConv2d(96, 96, K{3, 3}, K{2, 2}))) {}
    torch::Tensor forward(const torch::Tensor& x) { return torch::cat({b3(x), d3(d2(d1(x))), max_pool_3x3_s2(x)}, 1); }
};

struct FidInceptionC : torch::nn::Module {  // Mixed_6b..6e
    BasicConv2d b1x1, s1, s2, s3, d1, d2, d3, d4, d5, pool;
    FidInceptionC(int64_t in, int64_t c7)
        : b1x1(register_module("branch1x1", BasicConv2d(in, 192, K{1, 1}))),
          s1(register_module("branch7x7_1", BasicConv2d(in, c7, K{1, 1}))),
          s2(register_module("branch7x7_2", BasicConv2d(c7, c7, K{1, 7}, K{1, 1}, K{0, 3}))),
          s3(register_module("branch7x7_3", BasicConv2d(c7, 192, K{7, 1}, K{1, 1}, K{3, 0}))),
          d1(register_module("branch7x7dbl_1", BasicConv2d(in, c7, K{1, 1}))),
          d2(register_module("branch7x7dbl_2", BasicConv2d(c7, c7, K{7, 1}, K{1, 1}, K{3, 0}))),
          d3(register_module("branch7x7dbl_3", BasicConv2d(c7, c7, K{1, 7}, K{1, 1}, K{0, 3}))),
          d4(register_module("branch7x7dbl_4", BasicConv2d(c7, c7, K{7, 1}, K{1, 1}, K{3, 0}))),
          d5(register_module("branch7x7dbl_5", BasicConv2d(c7, 192, K{1, 7}, K{1, 1}, K{0, 3}))),
          pool(register_module("branch_pool", BasicConv2d(in, 192, K{1, 1}))) {}
    torch::Tensor forward(const torch::Tensor& x) {
        return torch::cat({b1x1(x), s3(s2(s1(x))), d5(d4(d3(d2(d1(x))))), pool(avg_pool_3x3(x))}, 1);
    }
};

struct InceptionD : torch::nn::Module {  // Mixed_7a
    BasicConv2d a1, a2, b1, b2, b3, b4;
    explicit InceptionD(int64_t in)
        : a1(register_module("branch3x3_1", BasicConv2d(in, 192, K{1, 1}))),
          a2(register_module("branch3x3_2", BasicConv2d(192, 320, K{3, 3}, K{2, 2}))),
          b1(register_module("branch7x7x3_1", BasicConv2d(in, 192, K{1, 1}))),
          b2(register_module("branch7x7x3_2", BasicConv2d(192, 192, K{1, 7}, K{1, 1}, K{0, 3}))),
          b3(register_module("branch7x7x3_3", BasicConv2d(192, 192, K{7, 1}, K{1, 1}, K{3, 0}))),
          b4(register_module("branch7x7x3_4", BasicConv2d(192, 192, K{3, 3}, K{2, 2}))) {}
    torch::Tensor forward(const torch::Tensor& x) {
        return torch::cat({a2(a1(x)), b4(b3(b2(b1(x)))), max_pool_3x3_s2(x)}, 1);
    }
};

struct FidInceptionE : torch::nn::Module {  // Mixed_7b (E_1: avg pool) / Mixed_7c (E_2: max pool)
    BasicConv2d b1x1, s1, s2a, s2b, d1, d2, d3a, d3b, pool;
    bool max_pool;
    FidInceptionE(int64_t in, bool max_pool_branch)
        : b1x1(register_module("branch1x1", BasicConv2d(in, 320, K{1, 1}))),
          s1(register_module("branch3x3_1", BasicConv2d(in, 384, K{1, 1}))),
          s2a(register_module("branch3x3_2a", BasicConv2d(384, 384, K{1, 3}, K{1, 1}, K{0, 1}))),
          s2b(register_module("branch3x3_2b", BasicConv2d(384, 384, K{3, 1}, K{1, 1}, K{1, 0}))),
          d1(register_module("branch3x3dbl_1", BasicConv2d(in, 448, K{1, 1}))),
          d2(register_module("branch3x3dbl_2", BasicConv2d(448, 384, K{3, 3}, K{1, 1}, K{1, 1}))),
          d3a(register_module("branch3x3dbl_3a", BasicConv2d(384, 384, K{1, 3}, K{1, 1}, K{0, 1}))),
          d3b(register_module("branch3x3dbl_3b", BasicConv2d(384, 384, K{3, 1}, K{1, 1}, K{1, 0}))),
          pool(register_module("branch_pool", BasicConv2d(in, 192, K{1, 1}))),
          max_pool(max_pool_branch) {}
    torch::Tensor forward(const torch::Tensor& x) {
        const auto s = s1(x);
        const auto d = d2(d1(x));
        const auto p = max_pool ? F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(1).padding(1)) : avg_pool_3x3(x);
        return torch::cat({b1x1(x), torch::cat({s2a(s), s2b(s)}, 1), torch::cat({d3a(d), d3b(d)}, 1), pool(p)}, 1);
    }
};

}  // namespace

struct FidInceptionV3Impl::Blocks {
    BasicConv2d c1a{nullptr}, c2a{nullptr}, c2b{nullptr}, c3b{nullptr}, c4a{nullptr};
    std::shared_ptr<FidInceptionA> m5b, m5c, m5d;
    std::shared_ptr<InceptionB> m6a;
    std::shared_ptr<FidInceptionC> m6b, m6c, m6d, m6e;
    std::shared_ptr<InceptionD> m7a;
    std::shared_ptr<FidInceptionE> m7b, m7c;
    torch::nn::Linear fc{nullptr};  // in the weight file (1008 classes); not used for the pool features
};

FidInceptionV3Impl::FidInceptionV3Impl() : b_(std::make_shared<Blocks>()) {
    auto& b = *b_;
    b.c1a = register_module("Conv2d_1a_3x3", BasicConv2d(3, 32, K{3, 3}, K{2, 2}));
    b.c2a = register_module("Conv2d_2a_3x3", BasicConv2d(32, 32, K{3, 3}));
    b.c2b = register_module("Conv2d_2b_3x3", BasicConv2d(32, 64, K{3, 3}, K{1, 1}, K{1, 1}));
    b.c3b = register_module("Conv2d_3b_1x1", BasicConv2d(64, 80, K{1, 1}));
    b.c4a = register_module("Conv2d_4a_3x3", BasicConv2d(80, 192, K{3, 3}));
    b.m5b = register_module("Mixed_5b", std::make_shared<FidInceptionA>(192, 32));
    b.m5c = register_module("Mixed_5c", std::make_shared<FidInceptionA>(256, 64));
    b.m5d = register_module("Mixed_5d", std::make_shared<FidInceptionA>(288, 64));
    b.m6a = register_module("Mixed_6a", std::make_shared<InceptionB>(288));
    b.m6b = register_module("Mixed_6b", std::make_shared<FidInceptionC>(768, 128));
    b.m6c = register_module("Mixed_6c", std::make_shared<FidInceptionC>(768, 160));
    b.m6d = register_module("Mixed_6d", std::make_shared<FidInceptionC>(768, 160));
    b.m6e = register_module("Mixed_6e", std::make_shared<FidInceptionC>(768, 192));
    b.m7a = register_module("Mixed_7a", std::make_shared<InceptionD>(768));
    b.m7b = register_module("Mixed_7b", std::make_shared<FidInceptionE>(1280, false));
    b.m7c = register_module("Mixed_7c", std::make_shared<FidInceptionE>(2048, true));
    b.fc = register_module("fc", torch::nn::Linear(2048, 1008));
}

torch::Tensor FidInceptionV3Impl::forward(const torch::Tensor& input) {
    auto& b = *b_;
    auto x = F::interpolate(
        input,
        F::InterpolateFuncOptions().size(std::vector<int64_t>{299, 299}).mode(torch::kBilinear).align_corners(false));
    x = 2 * x - 1;
    x = max_pool_3x3_s2(b.c2b(b.c2a(b.c1a(x))));
    x = max_pool_3x3_s2(b.c4a(b.c3b(x)));
    x = b.m6e->forward(b.m6d->forward(
        b.m6c->forward(b.m6b->forward(b.m6a->forward(b.m5d->forward(b.m5c->forward(b.m5b->forward(x))))))));
    x = b.m7c->forward(b.m7b->forward(b.m7a->forward(x)));
    return F::adaptive_avg_pool2d(x, F::AdaptiveAvgPool2dFuncOptions(1)).flatten(1);
}

void load_inception(FidInceptionV3& net, const io::Checkpoint& ckpt) {
    const auto o = detail::strict_allowing_bn_counters();
    const auto report = io::load_state_dict(*net, ckpt, o);
    if (!report.ok())
        throw CheckpointError("FID Inception weights " + ckpt.description() +
                              " do not fit pytorch-fid's InceptionV3:\n" + report.describe());
    net->eval();
}

void load_inception(FidInceptionV3& net, const std::filesystem::path& weights) {
    load_inception(net, io::Checkpoint::open(weights));
}

}  // namespace ipa::eval
