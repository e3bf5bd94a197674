// DWPose's pre/post-processing (annotator/dwpose/onnxdet.py, onnxpose.py, wholebody.py) around
// ipa's ONNX runtime (dwpose.h). Each step keeps the floating-point type numpy uses there.

#include "ipa/pose/dwpose.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <opencv2/imgproc.hpp>

#include "ipa/core/error.h"
#include "ipa/core/torch_compat.h"

namespace ipa::pose::dwpose {
namespace fs = std::filesystem;

namespace {

void check_image(const cv::Mat& image, const char* what) {
    if (image.empty() || image.type() != CV_8UC3)
        throw DataError(fmt::format("{}: expected an 8-bit 3-channel image, got {}x{} of type {}", what, image.cols,
                                    image.rows, image.type()));
}

/// HWC uint8 (or float) image -> float [1, 3, H, W].
at::Tensor chw_float(const cv::Mat& hwc_u8) {
    cv::Mat c = hwc_u8.isContinuous() ? hwc_u8 : hwc_u8.clone();
    auto t = at::from_blob(c.data, {c.rows, c.cols, 3}, at::kByte);
    return t.permute({2, 0, 1}).to(at::kFloat).unsqueeze(0).contiguous();
}

}  // namespace

DetectorInput detector_preprocess(const cv::Mat& image, int in_h, int in_w) {
    check_image(image, "detector_preprocess");
    // r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])   (Python floats)
    const double r = std::min(double(in_h) / image.rows, double(in_w) / image.cols);
    const int nw = static_cast<int>(image.cols * r), nh = static_cast<int>(image.rows * r);
    if (nw < 1 || nh < 1)
        throw DataError(
            fmt::format("detector_preprocess: a {}x{} image is too thin to letterbox", image.cols, image.rows));
    cv::Mat resized;
    cv::resize(image, resized, cv::Size(nw, nh), 0, 0, cv::INTER_LINEAR);
    cv::Mat padded(in_h, in_w, CV_8UC3, cv::Scalar(114, 114, 114));
    resized.copyTo(padded(cv::Rect(0, 0, nw, nh)));
    return {chw_float(padded), r};
}

at::Tensor detector_decode(const at::Tensor& raw, int in_h, int in_w) {
    at::Tensor out = raw.dim() == 3 ? raw[0] : raw;
    out = out.to(at::kFloat).contiguous().clone();
    int64_t anchors = 0;
    for (const int s : {8, 16, 32}) anchors += int64_t(in_h / s) * (in_w / s);
    if (out.dim() != 2 || out.size(0) != anchors || out.size(1) < 6)
        throw DataError(fmt::format("detector output has shape {}; YOLOX at {}x{} gives [1, {}, 5 + classes]",
                                    fmt::format("[{}]", fmt::join(raw.sizes().vec(), ", ")), in_h, in_w, anchors));
    float* p = out.data_ptr<float>();
    const int64_t stride_row = out.size(1);
    int64_t a = 0;
    for (const int s : {8, 16, 32}) {
        const int hs = in_h / s, ws = in_w / s;
        for (int gy = 0; gy < hs; ++gy)
            for (int gx = 0; gx < ws; ++gx, ++a) {
                float* row = p + a * stride_row;
                // float32 + int64 arrays compute in float64; the result is stored back as float32.
                row[0] = static_cast<float>((double(row[0]) + gx) * s);
                row[1] = static_cast<float>((double(row[1]) + gy) * s);
                row[2] = static_cast<float>(double(std::exp(row[2])) * s);
                row[3] = static_cast<float>(double(std::exp(row[3])) * s);
            }
    }
    return out;
}

std::vector<int64_t> nms(const at::Tensor& boxes_in, const at::Tensor& scores_in, float thr) {
    const auto boxes = boxes_in.to(at::kFloat).contiguous();
    const auto scores = scores_in.to(at::kFloat).contiguous();
    const int64_t n = scores.numel();
    const float* b = boxes.data_ptr<float>();
    const float* s = scores.data_ptr<float>();
    std::vector<float> area(n);
    for (int64_t i = 0; i < n; ++i) area[i] = (b[4 * i + 2] - b[4 * i] + 1) * (b[4 * i + 3] - b[4 * i + 1] + 1);
    // scores.argsort()[::-1]: a stable ascending sort reversed.
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return s[x] < s[y]; });
    std::reverse(order.begin(), order.end());
    std::vector<int64_t> keep;
    while (!order.empty()) {
        const int64_t i = order[0];
        keep.push_back(i);
        std::vector<int64_t> rest;
        for (std::size_t k = 1; k < order.size(); ++k) {
            const int64_t j = order[k];
            const float xx1 = std::max(b[4 * i], b[4 * j]), yy1 = std::max(b[4 * i + 1], b[4 * j + 1]);
            const float xx2 = std::min(b[4 * i + 2], b[4 * j + 2]), yy2 = std::min(b[4 * i + 3], b[4 * j + 3]);
            const float w = std::max(0.0f, xx2 - xx1 + 1), h = std::max(0.0f, yy2 - yy1 + 1);
            const float inter = w * h;
            const float ovr = inter / (area[i] + area[j] - inter);
            if (ovr <= thr) rest.push_back(j);
        }
        order = std::move(rest);
    }
    return keep;
}

std::vector<Box> detector_postprocess(const at::Tensor& raw, double ratio, const DetectorOptions& opts, int in_h,
                                      int in_w) {
    const at::Tensor pred = detector_decode(raw, in_h, in_w);
    const int64_t n = pred.size(0), classes = pred.size(1) - 5;
    if (opts.person_class < 0 || opts.person_class >= classes)
        throw DataError(
            fmt::format("detector: person class {} but the output has {} classes", opts.person_class, classes));
    const float* p = pred.data_ptr<float>();
    const int64_t row = pred.size(1);
    const float r = static_cast<float>(ratio);  // boxes_xyxy /= ratio: float32 array, Python float
    std::vector<float> boxes, scores;
    for (int64_t a = 0; a < n; ++a) {
        const float* q = p + a * row;
        const float score = q[4] * q[5 + opts.person_class];
        if (!(score > opts.score_threshold)) continue;
        const float half_w = q[2] / 2.0f, half_h = q[3] / 2.0f;
        boxes.insert(boxes.end(), {(q[0] - half_w) / r, (q[1] - half_h) / r, (q[0] + half_w) / r, (q[1] + half_h) / r});
        scores.push_back(score);
    }
    std::vector<Box> out;
    if (scores.empty()) return out;
    const auto m = static_cast<int64_t>(scores.size());
    const auto keep = nms(at::from_blob(boxes.data(), {m, 4}, at::kFloat),
                          at::from_blob(scores.data(), {m}, at::kFloat), opts.nms_threshold);
    for (const int64_t k : keep)
        if (double(scores[k]) > opts.box_threshold)
            out.push_back({boxes[4 * k], boxes[4 * k + 1], boxes[4 * k + 2], boxes[4 * k + 3], scores[k]});
    return out;
}

PoseInput pose_preprocess(const cv::Mat& image, const std::array<double, 4>& box, int in_w, int in_h) {
    check_image(image, "pose_preprocess");
    PoseInput out;
    // bbox_xyxy2cs(padding=1.25)
    out.center = {(box[0] + box[2]) * 0.5, (box[1] + box[3]) * 0.5};
    double sw = (box[2] - box[0]) * 1.25, sh = (box[3] - box[1]) * 1.25;
    // _fix_aspect_ratio(aspect_ratio = w / h)
    const double aspect = double(in_w) / in_h;
    if (sw > sh * aspect)
        sh = sw / aspect;
    else
        sw = sh * aspect;
    out.scale = {sw, sh};
    // get_warp_matrix(rot=0, shift=0): float32 point triples, cv2.getAffineTransform.
    const double src_dir_y = sw * -0.5;
    cv::Point2f src[3], dst[3];
    src[0] = {static_cast<float>(out.center[0] + sw * 0.0), static_cast<float>(out.center[1] + sh * 0.0)};
    src[1] = {static_cast<float>(out.center[0] + 0.0 + sw * 0.0),
              static_cast<float>(out.center[1] + src_dir_y + sh * 0.0)};
    auto third = [](cv::Point2f a, cv::Point2f b) {
        const float dx = a.x - b.x, dy = a.y - b.y;
        return cv::Point2f(b.x + -dy, b.y + dx);
    };
    src[2] = third(src[0], src[1]);
    const float dw = static_cast<float>(in_w), dh = static_cast<float>(in_h);
    dst[0] = {static_cast<float>(in_w * 0.5), static_cast<float>(in_h * 0.5)};
    dst[1] = {static_cast<float>(in_w * 0.5 + 0.0), static_cast<float>(in_h * 0.5 + dw * -0.5)};
    dst[2] = third(dst[0], dst[1]);
    (void)dh;
    out.warp = cv::getAffineTransform(src, dst);
    cv::Mat warped;
    cv::warpAffine(image, warped, out.warp, cv::Size(in_w, in_h), cv::INTER_LINEAR);
    // (img - mean) / std in float64, handed to onnxruntime as float32
    static constexpr double kMean[3] = {123.675, 116.28, 103.53}, kStd[3] = {58.395, 57.12, 57.375};
    at::Tensor t = at::empty({1, 3, in_h, in_w}, at::kFloat);
    float* o = t.data_ptr<float>();
    for (int y = 0; y < in_h; ++y) {
        const uint8_t* row = warped.ptr<uint8_t>(y);
        for (int x = 0; x < in_w; ++x)
            for (int c = 0; c < 3; ++c)
                o[(int64_t(c) * in_h + y) * in_w + x] =
                    static_cast<float>((double(row[3 * x + c]) - kMean[c]) / kStd[c]);
    }
    out.image = t;
    return out;
}

SimccDecoded pose_postprocess(const at::Tensor& simcc_x_in, const at::Tensor& simcc_y_in, int in_w, int in_h,
                              const std::array<double, 2>& center, const std::array<double, 2>& scale,
                              double split_ratio) {
    const auto sx = simcc_x_in.reshape({-1, simcc_x_in.size(-1)}).to(at::kFloat).contiguous();
    const auto sy = simcc_y_in.reshape({-1, simcc_y_in.size(-1)}).to(at::kFloat).contiguous();
    if (sx.size(0) != sy.size(0))
        throw DataError(fmt::format("pose model: simcc_x has {} keypoints, simcc_y {}", sx.size(0), sy.size(0)));
    const int64_t k = sx.size(0), wx = sx.size(1), wy = sy.size(1);
    SimccDecoded d;
    d.xy.resize(k);
    d.score.resize(k);
    const float ratio = static_cast<float>(split_ratio);
    for (int64_t i = 0; i < k; ++i) {
        const float* px = sx.data_ptr<float>() + i * wx;
        const float* py = sy.data_ptr<float>() + i * wy;
        const int64_t ix = std::max_element(px, px + wx) - px;  // first maximum, as np.argmax
        const int64_t iy = std::max_element(py, py + wy) - py;
        const float mx = px[ix], my = py[iy];
        const float val = mx > my ? my : mx;
        float lx = static_cast<float>(ix), ly = static_cast<float>(iy);
        if (val <= 0.f) lx = ly = -1.f;
        lx /= ratio, ly /= ratio;  // float32 / Python float
        d.xy[i] = {double(lx) / in_w * scale[0] + center[0] - scale[0] / 2,
                   double(ly) / in_h * scale[1] + center[1] - scale[1] / 2};
        d.score[i] = val;
    }
    return d;
}

std::vector<Keypoint> to_keypoints(const SimccDecoded& d) {
    std::vector<Keypoint> out(d.xy.size());
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = {static_cast<float>(d.xy[i][0]), static_cast<float>(d.xy[i][1]), std::max(d.score[i], 0.0f)};
    return out;
}

Estimator::Estimator(const fs::path& detector, const fs::path& pose, EstimatorOptions opts)
    : Estimator(onnx::Model::load(detector), onnx::Model::load(pose), opts) {}

namespace {
onnx::Model on_device(onnx::Model m, c10::Device device) {
    if (device.is_cpu()) return m;
    if (!device.is_cuda() || !compat::cuda_available())
        throw ConfigError(fmt::format(
            "device '{}': this build of ipa sees no usable CUDA device (`ipa-inspect version` lists what it sees); "
            "use --device cpu",
            device.str()));
    return m.to(device);
}
}  // namespace

Estimator::Estimator(onnx::Model detector, onnx::Model pose, EstimatorOptions opts)
    : det_(std::make_shared<const onnx::Model>(on_device(std::move(detector), opts.device))),
      pose_(std::make_shared<const onnx::Model>(on_device(std::move(pose), opts.device))),
      opts_(opts) {
    check();
}

void Estimator::check() {
    det_->expect_image_input(0, kDetectorSize, kDetectorSize, "YOLOX person detector (yolox_l.onnx)");
    if (det_->outputs().size() != 1)
        throw CheckpointError(fmt::format(
            "{}: the YOLOX detector has one output [1, 8400, 85]; this graph has {}; hint: is it the detector file?",
            det_->source(), det_->outputs().size()));
    if (pose_->inputs().size() != 1 || pose_->inputs()[0].shape.size() != 4)
        throw CheckpointError(fmt::format("{}: the pose model takes one image input [1, 3, H, W]", pose_->source()));
    const auto& shape = pose_->inputs()[0].shape;
    pose_h_ = static_cast<int>(shape[2]), pose_w_ = static_cast<int>(shape[3]);
    if (pose_h_ <= 0 || pose_w_ <= 0)
        throw CheckpointError(fmt::format("{}: the pose model's input size must be static", pose_->source()));
    pose_->expect_image_input(0, pose_h_, pose_w_, "DWPose whole-body pose (dw-ll_ucoco_384.onnx)");
    if (pose_->outputs().size() != 2)
        throw CheckpointError(fmt::format(
            "{}: the DWPose model has two outputs (simcc_x, simcc_y); this graph has {}; hint: is it the pose file?",
            pose_->source(), pose_->outputs().size()));
}

std::vector<Box> Estimator::detect(const cv::Mat& image) const {
    const auto in = detector_preprocess(image);
    const auto out = det_->run({in.image});
    return detector_postprocess(out.at(0).to(at::kCPU), in.ratio, opts_.detector);
}

std::vector<Keypoint> Estimator::estimate(const cv::Mat& image, const std::array<double, 4>& box) const {
    const auto in = pose_preprocess(image, box, pose_w_, pose_h_);
    const auto out = pose_->run({in.image});
    const auto x = out.at(0).to(at::kCPU);
    const auto y = out.at(1).to(at::kCPU);
    if (x.dim() != 3 || y.dim() != 3 || x.size(1) != 133 || y.size(1) != 133 || x.size(2) != 2 * pose_w_ ||
        y.size(2) != 2 * pose_h_)
        throw CheckpointError(fmt::format(
            "{}: outputs of shapes [{}] and [{}]; DWPose gives [1, 133, {}] and [1, 133, {}]", pose_->source(),
            fmt::join(x.sizes().vec(), ", "), fmt::join(y.sizes().vec(), ", "), 2 * pose_w_, 2 * pose_h_));
    return to_keypoints(pose_postprocess(x[0], y[0], pose_w_, pose_h_, in.center, in.scale));
}

FrameResult Estimator::run(const cv::Mat& image) const {
    check_image(image, "dwpose");
    FrameResult r;
    r.frame.width = image.cols, r.frame.height = image.rows;
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    r.boxes = detect(image);
    const auto t1 = clock::now();
    r.detect_seconds = std::chrono::duration<double>(t1 - t0).count();
    std::vector<std::array<double, 4>> boxes;
    for (const auto& b : r.boxes) boxes.push_back({b.x0, b.y0, b.x1, b.y1});
    if (boxes.empty() && opts_.whole_image_when_no_person)
        boxes.push_back({0, 0, double(image.cols), double(image.rows)});
    for (const auto& b : boxes) {
        r.wholebody.push_back(estimate(image, b));
        r.frame.people.push_back(from_coco_wholebody(r.wholebody.back()));
    }
    r.pose_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    return r;
}

}  // namespace ipa::pose::dwpose
