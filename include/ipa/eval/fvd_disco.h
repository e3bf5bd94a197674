#pragma once

/// FVD as DisCo computes it (Wangt-CN/DisCo, tool/metrics/metric_center.py, metric 'fvd' = mode
/// "FVD-3DInception"), distinct from StyleGAN-V's FVD (fvd.h): the Kinetics-400 I3D of piergiaj's
/// pytorch-i3d in DisCo's copy (tool/metrics/inception3d.py: `InceptionI3d(400, in_channels=3)`,
/// AvgPool3d [1, 7, 7] where piergiaj has [2, 7, 7], and the logits averaged over time), loaded
/// from the user's `i3d_pretrained_400.pt` (a plain state dict); per video, every RGB frame of the
/// whole video resized to 224x224 per channel as a float PIL image (mode 'F', bicubic, as
/// FID-VID), `x / 127.5 − 1` in float32, one clip [1, 3, T, 224, 224], its 400 logits averaged
/// over time as the video's feature; then np.mean / np.cov (n − 1) and DisCo's frechet_distance
/// (pytorch-fid's, frechet.h).
///
/// The network: Unit3D = Conv3d without padding after a TensorFlow-"SAME" zero padding computed
/// from each input's size (pad = max(k − s, 0) when the size divides by the stride s, else
/// max(k − size mod s, 0); the smaller half in front), BatchNorm3d (eps 1e-3), ReLU;
/// MaxPool3dSamePadding = the same zero padding before an unpadded max pool; Conv3d_1a_7x7
/// (stride 2), MaxPool3d_2a (1x3x3 / 1x2x2), Conv3d_2b_1x1, Conv3d_2c_3x3, MaxPool3d_3a, Mixed_3b,
/// Mixed_3c, MaxPool3d_4a (3x3x3 / 2), Mixed_4b…4f, MaxPool3d_5a (2x2x2 / 2), Mixed_5b, Mixed_5c,
/// AvgPool3d [1, 7, 7] stride 1, (dropout: off in eval), logits Unit3D (1x1x1 with bias, no BN or
/// ReLU), squeezed and averaged over time.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include <array>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ipa/eval/evaluate.h"

namespace ipa::io {
class Checkpoint;
}

namespace ipa::eval {

/// The 'SAME' padding of pytorch-i3d's compute_pad for one dimension of size `size`.
int64_t i3d_same_pad(int64_t kernel, int64_t stride, int64_t size);

/// Unit3D: registered as `conv3d` (and `bn` when batch_norm).
class Unit3dImpl : public torch::nn::Module {
public:
    Unit3dImpl(int64_t in, int64_t out, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride = {1, 1, 1},
               bool relu = true, bool batch_norm = true, bool bias = false);
    torch::Tensor forward(const torch::Tensor& x);

private:
    std::array<int64_t, 3> kernel_, stride_;
    bool relu_;
    torch::nn::Conv3d conv3d_{nullptr};
    torch::nn::BatchNorm3d bn_{nullptr};
};
TORCH_MODULE(Unit3d);

/// InceptionModule: branches b0, b1a→b1b, b2a→b2b, same-padded 3x3x3 max pool→b3b, concatenated.
class I3dMixedImpl : public torch::nn::Module {
public:
    I3dMixedImpl(int64_t in, std::array<int64_t, 6> out);
    torch::Tensor forward(const torch::Tensor& x);

private:
    Unit3d b0_{nullptr}, b1a_{nullptr}, b1b_{nullptr}, b2a_{nullptr}, b2b_{nullptr}, b3b_{nullptr};
};
TORCH_MODULE(I3dMixed);

/// DisCo's InceptionI3d(400): [B, 3, T, 224, 224] in [−1, 1] → logits averaged over time [B, 400].
class InceptionI3dImpl : public torch::nn::Module {
public:
    explicit InceptionI3dImpl(int64_t num_classes = 400);
    torch::Tensor forward(const torch::Tensor& x);

private:
    Unit3d conv1a_{nullptr}, conv2b_{nullptr}, conv2c_{nullptr}, logits_{nullptr};
    std::vector<I3dMixed> mixed_;  // 3b, 3c, 4b, 4c, 4d, 4e, 4f, 5b, 5c
};
TORCH_MODULE(InceptionI3d);

/// Loads DisCo's `i3d_pretrained_400.pt` (a zip-format torch.save state dict) strictly: every key
/// and shape of the network (missing `num_batches_tracked` buffers are allowed). Throws
/// ipa::CheckpointError naming the file and the bad keys; a file in the legacy (PyTorch < 1.6)
/// format is refused by the restricted reader, whose error says how to re-save it.
void load_inception_i3d(InceptionI3d& net, const std::filesystem::path& weights);
void load_inception_i3d(InceptionI3d& net, const io::Checkpoint& ckpt);

/// DisCo's DatasetFVDVideoResize for FVD-3DInception: uint8 RGB frames [T, H, W, 3] → float32
/// [1, 3, T, 224, 224] in [−1, 1].
at::Tensor fvd_disco_clip(const at::Tensor& frames_rgb_u8, int64_t size = 224);

struct FvdDiscoOptions {
    std::string device = "cpu";
};

/// The feature of one video (its whole clip through the network): [400] float64 on the CPU.
at::Tensor fvd_disco_video_feature(InceptionI3d& net, const at::Tensor& frames_rgb_u8);

struct FvdDiscoFeatures {
    at::Tensor generated, ground_truth;  ///< [N, 400] float64
    int64_t generated_frames = 0, ground_truth_frames = 0;
};

/// Features of the generated and the ground-truth videos of `pairs`, with a progress bar. Throws
/// ipa::DataError naming the video and file when one cannot be read or its frames differ in size.
FvdDiscoFeatures fvd_disco_features(const std::vector<VideoPair>& pairs, InceptionI3d& net,
                                    const FvdDiscoOptions& opts = {});

struct FvdDiscoReport {
    double fvd = 0;
    bool eps_offset_used = false;
    int64_t generated_videos = 0, ground_truth_videos = 0, generated_frames = 0, ground_truth_frames = 0;
};

/// Fréchet distance of the two feature sets as DisCo's fid_from_feats (np.cov, n − 1). Throws
/// ipa::DataError when a side has fewer than 2 videos.
FvdDiscoReport fvd_disco_from_features(const FvdDiscoFeatures& features);

/// Loads the weights, fvd_disco_features, fvd_disco_from_features.
FvdDiscoReport evaluate_fvd_disco(const std::vector<VideoPair>& pairs, const std::filesystem::path& weights,
                                  const FvdDiscoOptions& opts = {});

}  // namespace ipa::eval
