#pragma once

/// LPIPS as the `lpips` package computes it (lpips 0.1.4, `lpips.LPIPS(net=..., version='0.1')`,
/// Zhang et al. 2018): both images through the ScalingLayer ((x − shift) / scale, shift
/// [−.030, −.088, −.188], scale [.458, .448, .450]) and a torchvision feature trunk (AlexNet:
/// features[0:12] tapped after the ReLUs 1, 4, 7, 9, 11; VGG16: features[0:30] tapped after
/// 3, 8, 15, 22, 29), each tapped map unit-normalised over channels (x / (‖x‖₂ + 1e-10)), the
/// squared difference through the learned 1×1 conv `lin<k>` (no bias; its dropout is off in
/// eval mode), averaged over space and summed over the five layers. Inputs are RGB in [−1, 1].
///
/// Weights are the user's files: the trunk from torchvision's ImageNet state dict
/// (`alexnet-owt-7be5be79.pth` / `vgg16-397923af.pth`, download.pytorch.org/models; the
/// `classifier.*` entries are accepted and ignored) and the lin layers from lpips'
/// `lpips/weights/v0.1/alex.pth` / `vgg.pth` (in the pip package and github.com/richzhang/
/// PerceptualSimilarity), both read by the restricted .pth reader with strict key checks.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <filesystem>
#include <memory>
#include <opencv2/core/mat.hpp>
#include <string>
#include <vector>

namespace ipa::eval {

enum class LpipsNet { alex, vgg };

/// "alex" | "vgg" (ConfigError otherwise).
LpipsNet parse_lpips_net(const std::string& name);
const char* lpips_net_name(LpipsNet net);

class LpipsImpl : public torch::nn::Module {
public:
    explicit LpipsImpl(LpipsNet net = LpipsNet::alex);

    /// [N, 3, H, W] and [N, 3, H, W] in [−1, 1] → [N] distances.
    torch::Tensor forward(const torch::Tensor& in0, const torch::Tensor& in1);
    /// The five layer terms, [5, N] (their sum over dim 0 is forward()).
    torch::Tensor forward_layers(const torch::Tensor& in0, const torch::Tensor& in1);

    LpipsNet net() const { return net_; }
    /// Smallest image side the trunk accepts (AlexNet 31, VGG16 16).
    int64_t min_side() const;
    /// The trunk, with torchvision's keys (`features.<i>.weight` / `.bias`).
    torch::nn::Module& backbone() { return *backbone_; }
    /// The lin layers, with lpips' keys (`lin<k>.model.1.weight`).
    torch::nn::Module& lins() { return *lins_; }

private:
    std::vector<torch::Tensor> taps(const torch::Tensor& x);
    LpipsNet net_;
    std::shared_ptr<torch::nn::Module> backbone_, lins_;
    torch::nn::Sequential features_{nullptr};
    std::vector<torch::nn::Sequential> lin_;
    std::vector<int64_t> tap_after_;
};
TORCH_MODULE(Lpips);

/// A network with the trunk from `backbone` (torchvision state dict) and the lin layers from
/// `lin_weights` (lpips state dict), in eval mode. Throws ipa::CheckpointError naming the file
/// and every missing, unexpected or mis-shaped key (and which file was expected).
Lpips load_lpips(LpipsNet net, const std::filesystem::path& backbone, const std::filesystem::path& lin_weights);

/// lpips.im2tensor of a BGR uint8 frame: RGB, x / 127.5 − 1, [1, 3, H, W] float32.
torch::Tensor lpips_input(const cv::Mat& bgr);

/// LPIPS of two BGR uint8 frames of one size (CPU, float32). DataError for frames of different
/// sizes or smaller than min_side().
double lpips_distance(LpipsImpl& net, const cv::Mat& a_bgr, const cv::Mat& b_bgr);

}  // namespace ipa::eval
