#pragma once

/// DWPose whole-body pose estimation in C++: the YOLOX-L person detector and the DWPose-L
/// (RTMPose, 133 COCO-WholeBody keypoints, SimCC heads) pose model from the released ONNX
/// files (yolox_l.onnx, dw-ll_ucoco_384.onnx), run by ipa's ONNX runtime (onnx.h), with the
/// pre- and post-processing of DWPose's own code (ControlNet-v1-1-nightly/annotator/dwpose:
/// onnxdet.py, onnxpose.py, wholebody.py), step for step and in the same floating-point
/// types (docs/dwpose.md lists each step and where the numbers come from).
///
/// Images are 8-bit, 3 channels, in the channel order DWPose is given (ControlNet passes
/// RGB; the video reader here converts OpenCV's BGR to RGB).

#include <ATen/core/Tensor.h>

#include <array>
#include <filesystem>
#include <memory>
#include <opencv2/core.hpp>
#include <vector>

#include "ipa/pose/keypoints.h"
#include "ipa/pose/onnx.h"

namespace ipa::pose::dwpose {

/// YOLOX's input size in DWPose (inference_detector: input_shape = (640, 640)).
inline constexpr int kDetectorSize = 640;

/// Detector thresholds (inference_detector: multiclass_nms(nms_thr=0.45, score_thr=0.1),
/// then boxes of class 0 with score > 0.3).
struct DetectorOptions {
    float nms_threshold = 0.45f;
    float score_threshold = 0.1f;
    double box_threshold = 0.3;
    int person_class = 0;
};

/// onnxdet.preprocess: letterbox into a 114-grey [in_h, in_w] canvas at the top-left,
/// cv::resize INTER_LINEAR by r = min(in_h / h, in_w / w); float [1, 3, in_h, in_w] of
/// 0..255 values (no normalisation).
struct DetectorInput {
    at::Tensor image;
    double ratio = 1;
};
DetectorInput detector_preprocess(const cv::Mat& image, int in_h = kDetectorSize, int in_w = kDetectorSize);

/// onnxdet.demo_postprocess: the YOLOX grid decode of raw [N, 85] (or [1, N, 85]) outputs
/// for strides 8, 16, 32: xy = (xy + grid) * stride, wh = exp(wh) * stride (float32 out,
/// computed in double as numpy's float32 + int64 arrays are).
at::Tensor detector_decode(const at::Tensor& raw, int in_h = kDetectorSize, int in_w = kDetectorSize);

/// onnxdet.nms: single-class NMS in float32 (areas with +1, IoU <= threshold survives),
/// visiting boxes by score, highest first; equal scores: the later box first (numpy's
/// argsort()[::-1] on arrays of up to 16, where its sort is an insertion sort; docs/dwpose.md).
/// Returns indices into `boxes` ([M, 4] x0 y0 x1 y1) in the order kept.
std::vector<int64_t> nms(const at::Tensor& boxes, const at::Tensor& scores, float threshold);

/// A detected person box in image pixels (float32 values, as DWPose's) and its score.
struct Box {
    float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    float score = 0;
};

/// onnxdet.inference_detector after the network: decode, scores = obj * cls, xyxy / ratio,
/// class-`person_class` NMS, boxes with score > box_threshold (in NMS order).
std::vector<Box> detector_postprocess(const at::Tensor& raw, double ratio, const DetectorOptions& opts = {},
                                      int in_h = kDetectorSize, int in_w = kDetectorSize);

/// onnxpose.preprocess for one box: center/scale with padding 1.25 (bbox_xyxy2cs), the
/// aspect ratio fixed to in_w / in_h, the affine warp (get_warp_matrix, cv::warpAffine
/// INTER_LINEAR) to in_w x in_h and (x - mean) / std per channel; float [1, 3, in_h, in_w].
struct PoseInput {
    at::Tensor image;
    std::array<double, 2> center{}, scale{};  ///< scale after the aspect-ratio fix
    cv::Mat warp;                             ///< the 2x3 CV_64F affine matrix
};
PoseInput pose_preprocess(const cv::Mat& image, const std::array<double, 4>& box, int in_w, int in_h);

/// onnxpose.postprocess for one person: SimCC argmax (first maximum) per keypoint, the
/// score min(max_x, max_y), locations -1 where the score <= 0, / split ratio, then back to
/// image pixels: loc / input_size * scale + center - scale / 2 (double, as numpy's).
struct SimccDecoded {
    std::vector<std::array<double, 2>> xy;
    std::vector<float> score;
};
SimccDecoded pose_postprocess(const at::Tensor& simcc_x, const at::Tensor& simcc_y, int in_w, int in_h,
                              const std::array<double, 2>& center, const std::array<double, 2>& scale,
                              double split_ratio = 2.0);

/// The 133 keypoints of one person as ipa keypoints (x, y, confidence); a confidence below
/// zero (SimCC logits can be negative) is written as 0, which the OpenPose readers take as
/// missing.
std::vector<Keypoint> to_keypoints(const SimccDecoded& d);

/// What an Estimator does beyond DWPose's defaults.
struct EstimatorOptions {
    DetectorOptions detector;
    /// DWPose's Python code estimates one pose over the whole image when no person is
    /// detected; ipa records an empty frame instead unless this is set.
    bool whole_image_when_no_person = false;
    /// Where the two networks run (pre/post-processing stays on the CPU); a CUDA device
    /// needs a CUDA build of LibTorch and a visible GPU (ipa::ConfigError otherwise).
    c10::Device device = c10::kCPU;
};

/// One frame's result.
struct FrameResult {
    std::vector<Box> boxes;                        ///< the detector's persons (empty: none)
    std::vector<std::vector<Keypoint>> wholebody;  ///< 133 keypoints per estimated person
    PoseFrame frame;                               ///< OpenPose layout (from_coco_wholebody)
    double detect_seconds = 0;                     ///< the detector: letterbox, network, NMS
    double pose_seconds = 0;                       ///< the pose model over every box: crop, network, SimCC
};

/// The detector and the pose model, loaded and checked once; run() is const and may be
/// called from several threads at once.
class Estimator {
public:
    /// Loads both ONNX files. ipa::CheckpointError naming the file for a missing or corrupt
    /// file, an unsupported operator, or a graph whose input is not the detector's
    /// 1x3x640x640 / the pose model's 1x3xHxW image (e.g. the two files swapped).
    Estimator(const std::filesystem::path& detector, const std::filesystem::path& pose, EstimatorOptions opts = {});
    /// From models already loaded (tests).
    Estimator(onnx::Model detector, onnx::Model pose, EstimatorOptions opts = {});

    /// Detects and estimates on one 8-bit 3-channel image (RGB as DWPose is fed).
    FrameResult run(const cv::Mat& image) const;
    /// The detector only (raw output [1, N, 85] of the network on detector_preprocess()).
    std::vector<Box> detect(const cv::Mat& image) const;
    /// The pose model on one box.
    std::vector<Keypoint> estimate(const cv::Mat& image, const std::array<double, 4>& box) const;

    int pose_width() const { return pose_w_; }
    int pose_height() const { return pose_h_; }
    const onnx::Model& detector_model() const { return *det_; }
    const onnx::Model& pose_model() const { return *pose_; }

private:
    void check();
    std::shared_ptr<const onnx::Model> det_, pose_;
    EstimatorOptions opts_;
    int pose_w_ = 0, pose_h_ = 0;
};

}  // namespace ipa::pose::dwpose
