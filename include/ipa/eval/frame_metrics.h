#pragma once

/// Frame metrics of generated vs ground-truth frames, as the animation papers compute them
/// with DisCo's evaluation code (Wangt-CN/DisCo, tool/metrics/ssim_l1_lpips_psnr.py):
///   - PSNR: on the 3-channel uint8 frames cast to float64, MSE over H, W and C,
///     20·log10(255/√MSE), 100 when MSE = 0 (the corrected version, without the uint8
///     wrap-around of DisCo's first release);
///   - SSIM: `skimage.metrics.structural_similarity` on the frames converted to gray with
///     OpenCV's BGR2GRAY, with skimage's defaults (7×7 uniform window, K1 0.01, K2 0.03,
///     sample covariance, data range 255). SsimOptions::gaussian() gives the other common
///     setting (Gaussian σ 1.5, population covariance, per channel of RGB).
/// Hand-region metrics use square crops around the ground truth's hand keypoints
/// (hand_crop_boxes()); the same crop is cut from both frames.

#include <cstdint>
#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>
#include <vector>

#include "ipa/pose/keypoints.h"

namespace ipa::eval {

/// The settings of skimage.metrics.structural_similarity (names as there).
struct SsimOptions {
    int win_size = 7;  ///< uniform window side (odd); Gaussian: 2·int(3.5σ + 0.5) + 1
    bool gaussian_weights = false;
    double sigma = 1.5;
    bool use_sample_covariance = true;
    double k1 = 0.01, k2 = 0.03;
    double data_range = 255;
    /// Gray (DisCo): the BGR frames are converted with cv::cvtColor(BGR2GRAY) first.
    /// Otherwise SSIM runs per channel and the channel mean is returned (channel_axis=-1).
    bool gray = true;

    /// DisCo's setting (the default-constructed options).
    static SsimOptions disco() { return {}; }
    /// Wang et al.'s setting: gaussian_weights=True, sigma=1.5, use_sample_covariance=False, per RGB channel.
    static SsimOptions gaussian();
    /// The window side actually used (the Gaussian one follows from sigma, truncate 3.5).
    int effective_win_size() const;
};

/// Mean SSIM of two single-channel images of one size (any depth; computed in float64),
/// exactly as skimage: separable uniform or Gaussian filter with scipy.ndimage's 'reflect'
/// border, the SSIM map averaged without the (win_size−1)/2 border. Throws ipa::DataError if
/// the sizes differ or the image is smaller than the window.
double ssim_channel(const cv::Mat& a, const cv::Mat& b, const SsimOptions& opts = {});

/// SSIM of two BGR uint8 frames (CV_8UC3) per `opts` (gray or per channel).
double ssim(const cv::Mat& a_bgr, const cv::Mat& b_bgr, const SsimOptions& opts = {});

/// PSNR of two uint8 images of one size and channel count (DisCo; 100 for identical images).
double psnr(const cv::Mat& a, const cv::Mat& b);

/// How hand crops are cut from the ground truth's keypoints.
struct HandCropOptions {
    float threshold = pose::kConfidenceThreshold;  ///< a point counts when c > threshold
    int min_points = 5;                            ///< fewer confident points: no crop for that hand
    float padding = 0.25f;  ///< pose::hand_box padding (each side, fraction of the hand's longer side)
    int min_side = 32;      ///< the square crop is at least this many pixels (capped by the frame)
};

/// One square crop per visible hand of every person of `frame`, in a height × width image:
/// the padded pose::hand_box of the hand's confident points (keypoints scaled from the pose
/// canvas when it is known and differs), made square with side max(w, h, min_side) (at
/// most min(height, width)) around its centre, and shifted to lie inside the image.
std::vector<cv::Rect> hand_crop_boxes(const pose::PoseFrame& frame, int height, int width,
                                      const HandCropOptions& opts = {});

}  // namespace ipa::eval
