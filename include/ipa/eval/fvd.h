#pragma once

/// Fréchet Video Distance as StyleGAN-V computes it (universome/stylegan-v,
/// src/metrics/frechet_video_distance.py, metric `fvd2048_16f`), the FVD code the video
/// generation and animation papers share: the I3D detector is StyleGAN-V's TorchScript
/// `i3d_torchscript.pt` (the Kinetics-400 I3D of the original TensorFlow FVD), loaded from a
/// user-supplied file and called exactly as StyleGAN-V calls it:
///   detector(clip, rescale=True, resize=True, return_features=True)
/// with `clip` a uint8 RGB tensor [batch, 3, T, H, W] of T = 16 consecutive frames starting at
/// each video's first frame (the module itself rescales to [-1, 1] and resizes to 224x224).
/// One clip per video; the features of all generated clips and all ground-truth clips are
/// fitted with StyleGAN-V's FeatureStats in float64 (mean = Σx/n, cov = Σxxᵀ/n − μμᵀ: divided
/// by n, not n − 1), and the distance is |μ_g − μ_r|² + tr(Σ_g + Σ_r − 2·√(Σ_g Σ_r)) with the
/// scipy-matching sqrtm of frechet.h.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ipa/eval/evaluate.h"
#include "ipa/eval/frechet.h"

namespace ipa::eval {

/// A loaded TorchScript video feature detector (torch::jit::Module behind a pointer so this
/// header needs no jit headers).
class VideoDetector {
public:
    /// Loads a TorchScript file. Throws ipa::CheckpointError naming the file when it is missing
    /// or not a TorchScript archive, and when its forward does not take
    /// (x, rescale: bool, resize: bool, return_features: bool).
    static VideoDetector load(const std::filesystem::path& file, const std::string& device = "cpu");
    ~VideoDetector();
    VideoDetector(VideoDetector&&) noexcept;
    VideoDetector& operator=(VideoDetector&&) noexcept;

    /// Features [batch, D] (float64 on the CPU) of uint8 clips [batch, 3, T, H, W]. Throws
    /// ipa::DataError naming the file when the module fails or does not return [batch, D].
    at::Tensor features(const at::Tensor& clips_uint8) const;
    const std::filesystem::path& file() const { return file_; }

private:
    VideoDetector();
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::filesystem::path file_;
};

struct FvdOptions {
    int64_t num_frames = 16;  ///< frames per clip (StyleGAN-V fvd2048_16f)
    int64_t batch_size = 8;   ///< clips per forward pass (clips of one frame size)
    std::string device = "cpu";
};

struct FvdReport {
    double fvd = 0;
    bool eps_offset_used = false;
    int64_t num_frames = 16, generated_clips = 0, ground_truth_clips = 0, feature_dim = 0;
};

/// The clip of a video: its first `num_frames` frames (uint8 RGB [3, T, H, W]) read through
/// ipa_media. Throws ipa::DataError naming the id, role and file for unreadable videos and
/// videos shorter than a clip.
at::Tensor first_clip(const std::filesystem::path& video, const std::string& id, const std::string& role,
                      int64_t num_frames);

/// StyleGAN-V FeatureStats (float64; covariance divided by n). Throws ipa::DataError naming
/// `set_name` and the count when there are fewer than 2 clips.
GaussianStats fvd_feature_statistics(const at::Tensor& features, const std::string& set_name);

/// FVD between the generated and the ground-truth videos of `pairs`, with a progress bar.
FvdReport evaluate_fvd(const std::vector<VideoPair>& pairs, const VideoDetector& detector, const FvdOptions& opts = {});

/// Loads the detector from `i3d_torchscript` and runs evaluate_fvd.
FvdReport evaluate_fvd(const std::vector<VideoPair>& pairs, const std::filesystem::path& i3d_torchscript,
                       const FvdOptions& opts = {});

}  // namespace ipa::eval
