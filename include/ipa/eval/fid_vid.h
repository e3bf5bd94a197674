#pragma once

/// FID-VID as DisCo computes it (Wangt-CN/DisCo, tool/metrics/metric_center.py, metric
/// 'fid-vid' = mode "FVD-3DRN50"): the Kinetics-400 3D ResNet-50 of kenshohara's
/// 3D-ResNets-PyTorch (tool/metrics/resnet3d.py: resnet50(shortcut_type='B', sample_size=112,
/// sample_duration=16, last_fc=False), weights `resnet-50-kinetics.pth`) on 16-frame segments:
/// every RGB frame resized to 112x112 per channel as a float PIL image (mode 'F', bicubic:
/// clean-fid's make_resizer("PIL", False, "bicubic")), minus the pixel mean
/// (114.7748, 107.7354, 99.4750), the last frame repeated up to a multiple of 16, 2048-d
/// features per segment averaged per video, then FID of the per-video features (np.cov,
/// n − 1; DisCo's frechet_distance = pytorch-fid's, frechet.h).

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ipa/eval/evaluate.h"

namespace ipa::io {
class Checkpoint;
}

namespace ipa::eval {

/// PIL's Image.resize(size, Image.BICUBIC) of a float32 ('F' mode) image [H, W] → [oh, ow]
/// (separable, horizontal pass first, a = −0.5, support scaled when downsampling, double
/// accumulation, float32 between and after the passes).
at::Tensor pil_resize_bicubic_f(const at::Tensor& image, int64_t out_h, int64_t out_w);

/// DisCo's DatasetFVDVideoResize for FVD-3DRN50: uint8 RGB frames [T, H, W, 3] →
/// float32 segments [ceil(T/16), 3, 16, 112, 112].
at::Tensor fid_vid_segments(const at::Tensor& frames_rgb_u8, int64_t duration = 16, int64_t size = 112);

class Bottleneck3dImpl : public torch::nn::Module {
public:
    Bottleneck3dImpl(int64_t in, int64_t planes, int64_t stride, bool downsample);
    torch::Tensor forward(const torch::Tensor& x);

private:
    torch::nn::Conv3d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
    torch::nn::BatchNorm3d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
    torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(Bottleneck3d);

/// kenshohara's resnet50 (shortcut B), last_fc=False: features [B, 2048] of [B, 3, 16, 112, 112].
class ResNet3d50Impl : public torch::nn::Module {
public:
    ResNet3d50Impl();
    torch::Tensor forward(const torch::Tensor& x);

private:
    torch::nn::Conv3d conv1_{nullptr};
    torch::nn::BatchNorm3d bn1_{nullptr};
    torch::nn::Sequential layers_[4];
    torch::nn::Linear fc_{nullptr};  // in the weight file (400 classes); unused (last_fc=False)
};
TORCH_MODULE(ResNet3d50);

/// Loads `resnet-50-kinetics.pth` (a zip-format torch.save; keys under `state_dict.` and
/// `module.` are accepted, as DisCo strips 'module.'), strict. Throws ipa::CheckpointError
/// naming the file and the missing / unexpected keys.
void load_resnet3d50(ResNet3d50& net, const std::filesystem::path& weights);
void load_resnet3d50(ResNet3d50& net, const io::Checkpoint& ckpt);

struct FidVidOptions {
    int64_t batch_size = 4;  ///< segments per forward pass
    std::string device = "cpu";
};

struct FidVidReport {
    double fid_vid = 0;
    bool eps_offset_used = false;
    int64_t generated_videos = 0, ground_truth_videos = 0, generated_segments = 0, ground_truth_segments = 0;
};

/// Per-video feature (mean over its segments) [2048] float64 on the CPU.
at::Tensor fid_vid_video_feature(ResNet3d50& net, const at::Tensor& frames_rgb_u8, const FidVidOptions& opts = {});

/// Per-video features of the generated and the ground-truth videos of `pairs` ([N, 2048]
/// float64 each), with a progress bar; and the segment counts.
struct FidVidFeatures {
    at::Tensor generated, ground_truth;
    int64_t generated_segments = 0, ground_truth_segments = 0;
};
FidVidFeatures fid_vid_features(const std::vector<VideoPair>& pairs, ResNet3d50& net, const FidVidOptions& opts = {});

/// Loads the weights, fid_vid_features, FID of the two sets (frechet.h).
FidVidReport evaluate_fid_vid(const std::vector<VideoPair>& pairs, const std::filesystem::path& weights,
                              const FidVidOptions& opts = {});

}  // namespace ipa::eval
