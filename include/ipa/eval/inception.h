#pragma once

/// The FID Inception network of pytorch-fid (`InceptionV3([3])`, built by
/// `fid_inception_v3()`: torchvision's Inception3 with 1008 classes, no aux head, and the
/// FIDInceptionA/C/E_1/E_2 blocks: average pools without the padding in the count, a max
/// pool in the last block). Input: RGB in [0, 1], any size; bilinearly resized to 299×299
/// (align_corners false, no antialias), scaled to [−1, 1]; output: the 2048-d global
/// average pool. Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`
/// (github.com/mseitzer/pytorch-fid/releases, the TF FID graph's weights).

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <filesystem>
#include <vector>

namespace ipa::io {
class Checkpoint;
}

namespace ipa::eval {

/// conv (no bias) + BatchNorm (eps 1e-3) + ReLU, registered as `conv` and `bn`.
class BasicConv2dImpl : public torch::nn::Module {
public:
    BasicConv2dImpl(int64_t in, int64_t out, std::vector<int64_t> kernel, std::vector<int64_t> stride = {1, 1},
                    std::vector<int64_t> padding = {0, 0});
    torch::Tensor forward(const torch::Tensor& x);

private:
    torch::nn::Conv2d conv_{nullptr};
    torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(BasicConv2d);

class FidInceptionV3Impl : public torch::nn::Module {
public:
    FidInceptionV3Impl();
    /// [N, 3, H, W] RGB in [0, 1] → [N, 2048].
    torch::Tensor forward(const torch::Tensor& x);

private:
    struct Blocks;
    std::shared_ptr<Blocks> b_;
};
TORCH_MODULE(FidInceptionV3);

/// Loads pytorch-fid's state dict (a .pth through the restricted reader, or any checkpoint
/// layout io::Checkpoint opens) strictly: every key of the network must be present with its
/// shape and no other key may be (missing `num_batches_tracked` buffers are allowed: older
/// files lack them). Throws ipa::CheckpointError naming the file and every bad key.
void load_inception(FidInceptionV3& net, const std::filesystem::path& weights);
void load_inception(FidInceptionV3& net, const io::Checkpoint& ckpt);

}  // namespace ipa::eval
