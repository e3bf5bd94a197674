// DWPose in C++: ipa's ONNX runtime against onnxruntime and a float64 reference on the synthetic
// YOLOX / RTMPose graphs, DWPose's own pre/post-processing results, and the whole pipeline
// (fixtures: scripts/gen_dwpose_fixtures.py, tests/fixtures/dwpose/README.md).

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "ipa/core/error.h"
#include "ipa/core/torch_compat.h"
#include "ipa/io/safetensors.h"
#include "ipa/pose/dwpose.h"
#include "ipa/pose/onnx.h"
#include "pose_test_util.h"

namespace ipa::pose {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kDir = fs::path(IPA_FIXTURES_DIR) / "dwpose";

json meta() {
    std::ifstream in(kDir / "meta.json");
    return json::parse(in);
}

const io::SafetensorsFile& prepost() {
    static const auto f = io::SafetensorsFile::open(kDir / "prepost.safetensors");
    return f;
}

cv::Mat read_png(const std::string& name) {
    cv::Mat m = cv::imread((kDir / name).string(), cv::IMREAD_COLOR);
    EXPECT_FALSE(m.empty()) << name;
    return m;
}

/// ((37 c + 3 y + 5 x) mod 256 - offset) / scale, as the generator's analytic_input.
at::Tensor analytic_input(int64_t h, int64_t w, double scale, double offset, at::ScalarType dtype) {
    auto c = at::arange(3, at::kLong).view({3, 1, 1});
    auto y = at::arange(h, at::kLong).view({1, h, 1});
    auto x = at::arange(w, at::kLong).view({1, 1, w});
    auto v = ((c * 37 + y * 3 + x * 5) % 256).to(at::kDouble);
    return ((v - offset) / scale).to(at::kFloat).to(dtype).unsqueeze(0);
}

double rel_max(const at::Tensor& a, const at::Tensor& ref) {
    return (a.to(at::kDouble) - ref.to(at::kDouble)).abs().max().item<double>() /
           ref.to(at::kDouble).abs().max().item<double>();
}

// ---------------------------------------------------------------------------------------------
// The runtime on the two graphs.

struct GraphCase {
    std::string name, file;
    int64_t h, w;
};

void check_graph(const GraphCase& g) {
    const json m = meta()["graph"][g.name];
    const auto ref = io::SafetensorsFile::open(kDir / "graph.safetensors");
    const auto model = onnx::Model::load(kDir / g.file);
    // The ops the generator found in the exported file are the ones ipa reads.
    std::set<std::string> ops;
    for (const auto& o : m["ops"]) ops.insert(o.get<std::string>());
    EXPECT_EQ(model.op_types(), ops);
    EXPECT_EQ(model.opset(), 11);
    const int64_t step = m["row_step"].get<int64_t>();
    const double scale = m["input_scale"], offset = m["input_offset"];
    const auto out32 = model.run({analytic_input(g.h, g.w, scale, offset, at::kFloat)});
    const auto out64 = model.to(at::kDouble).run({analytic_input(g.h, g.w, scale, offset, at::kDouble)});
    ASSERT_EQ(out32.size(), model.outputs().size());
    for (std::size_t k = 0; k < out32.size(); ++k) {
        const auto& name = model.outputs()[k].name;
        const json& o = m["outputs"][name];
        const auto r = ref.tensor(g.name + "." + name);
        const auto got32 = out32[k][0].slice(0, 0, c10::nullopt, step);
        const auto got64 = out64[k][0].slice(0, 0, c10::nullopt, step);
        ASSERT_EQ(got32.sizes(), r.sizes()) << name;
        EXPECT_EQ(out32[k].sizes().vec(), o["shape"].get<std::vector<int64_t>>()) << name;
        // The float64 run: the reference (float64, stored rounded to float32) up to that rounding.
        const double e64 = rel_max(got64, r);
        // float32: within 10x the float32 floor (onnxruntime's and torch's own float32 error
        // against float64, measured by the generator) plus the stored reference's rounding.
        const double floor = std::max(o["ort_float32_rel"].get<double>(), o["torch_float32_rel"].get<double>());
        const double e32 = rel_max(got32, r);
        std::cout << fmt::format(
            "[ graph ] {}.{}: float32 rel {:.3g} (floor {:.3g}: ort {:.3g}, torch {:.3g}), "
            "float64 rel {:.3g}\n",
            g.name, name, e32, floor, o["ort_float32_rel"].get<double>(), o["torch_float32_rel"].get<double>(), e64);
        EXPECT_LT(e64, 1.2e-7) << name;
        EXPECT_LT(e32, 10 * floor + 1.2e-7) << name;
    }
}

TEST(DwposeOnnx, YoloxGraphMatchesReference) { check_graph({"det", "det.onnx", 640, 640}); }
TEST(DwposeOnnx, RtmposeGraphMatchesReference) { check_graph({"pose", "pose.onnx", 384, 288}); }

TEST(DwposeOnnx, BadFilesNameTheFile) {
    test::PoseTempDir d;
    auto expect_error = [](const fs::path& p, const std::string& part) {
        try {
            onnx::Model::load(p);
            ADD_FAILURE() << "no error for " << p;
        } catch (const CheckpointError& e) {
            EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        }
    };
    expect_error(d.path / "missing.onnx", "not found");
    { std::ofstream(d.path / "text.onnx") << "this is not a model\n"; }
    expect_error(d.path / "text.onnx", "not");
    std::ifstream in(kDir / "det.onnx", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string bytes = ss.str();
    { std::ofstream(d.path / "half.onnx", std::ios::binary) << bytes.substr(0, bytes.size() / 2); }
    expect_error(d.path / "half.onnx", "not");
    // An operator the runtime does not implement: listed by name.
    std::ifstream bin(kDir / "det_blind.onnx", std::ios::binary);
    std::stringstream bs;
    bs << bin.rdbuf();
    std::string blind = bs.str();
    const auto at = blind.find("ConstantOfShape");
    ASSERT_NE(at, std::string::npos);
    blind[at + 14] = 'X';
    { std::ofstream(d.path / "odd_op.onnx", std::ios::binary) << blind; }
    expect_error(d.path / "odd_op.onnx", "ConstantOfShapX");
}

TEST(DwposeOnnx, SwappedOrWrongModelsAreRefused) {
    try {
        dwpose::Estimator(kDir / "pose.onnx", kDir / "det.onnx");
        ADD_FAILURE() << "swapped files accepted";
    } catch (const CheckpointError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find((kDir / "pose.onnx").string()), std::string::npos) << msg;
        EXPECT_NE(msg.find("1x3x384x288"), std::string::npos) << msg;
        EXPECT_NE(msg.find("1x3x640x640"), std::string::npos) << msg;
    }
    try {
        dwpose::Estimator(kDir / "det.onnx", kDir / "det.onnx");
        ADD_FAILURE() << "a detector as the pose model accepted";
    } catch (const CheckpointError& e) {
        EXPECT_NE(std::string(e.what()).find("two outputs"), std::string::npos) << e.what();
    }
}

TEST(DwposeOnnx, CudaWithoutAGpuIsAConfigErrorNamingTheDevice) {
    if (compat::cuda_available()) GTEST_SKIP() << "this machine has CUDA (tests/gpu/test_gpu_onnx.cpp runs it)";
    dwpose::EstimatorOptions o;
    o.device = c10::Device(c10::kCUDA, 0);
    try {
        dwpose::Estimator(kDir / "det.onnx", kDir / "pose.onnx", o);
        ADD_FAILURE() << "a CUDA estimator without CUDA";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("device 'cuda:0'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("--device cpu"), std::string::npos) << e.what();
    }
}

// ---------------------------------------------------------------------------------------------
// Pre/post-processing against DWPose's own functions.

TEST(DwposePrepost, LetterboxMatchesDwpose) {
    for (int k = 0; k < 4; ++k) {
        const std::string p = "letterbox" + std::to_string(k);
        const cv::Mat img = read_png(p + ".png");
        const auto in = dwpose::detector_preprocess(img);
        EXPECT_EQ(in.ratio, prepost().tensor(p + ".ratio").item<double>()) << p;
        ASSERT_EQ(in.image.sizes(), (std::vector<int64_t>{1, 3, 640, 640}));
        const auto x = in.image[0].to(at::kDouble);
        // cv::resize INTER_LINEAR on uint8 is fixed-point: the same bytes in OpenCV 4.6 and 4.14.
        const auto grid = x.slice(1, 0, c10::nullopt, 13).slice(2, 0, c10::nullopt, 13);
        EXPECT_TRUE(at::equal(grid, prepost().tensor(p + ".grid").to(at::kDouble))) << p;
        EXPECT_TRUE(at::equal(x.sum(std::vector<int64_t>{1, 2}), prepost().tensor(p + ".sum"))) << p;
        EXPECT_TRUE(at::equal((x * x).sum(std::vector<int64_t>{1, 2}), prepost().tensor(p + ".sumsq"))) << p;
    }
}

TEST(DwposePrepost, GridDecodeMatchesDemoPostprocess) {
    const auto raw4 = prepost().tensor("decode.raw4").to(at::kFloat);  // every 5th anchor
    const auto want = prepost().tensor("decode.out4");
    auto raw = at::zeros({8400, 85}, at::kFloat);
    raw.slice(0, 0, c10::nullopt, 5).slice(1, 0, 4).copy_(raw4);
    const auto got = dwpose::detector_decode(raw).slice(0, 0, c10::nullopt, 5).slice(1, 0, 4);
    // xy exact; wh = exp(v) * stride: numpy's float32 exp and libm's may differ in the last bit.
    EXPECT_TRUE(at::equal(got.slice(1, 0, 2), want.slice(1, 0, 2)));
    const double wh = ((got.slice(1, 2, 4) - want.slice(1, 2, 4)).abs() / want.slice(1, 2, 4)).max().item<double>();
    std::cout << fmt::format("[ decode ] wh max rel diff {:.3g}\n", wh);
    EXPECT_LE(wh, 2.5e-7);  // 2 float32 ulps
}

TEST(DwposePrepost, DetectorPostprocessMatchesInferenceDetector) {
    for (int c = 0; c < 4; ++c) {
        const std::string p = "detpost" + std::to_string(c);
        auto raw = at::zeros({1, 8400, 85}, at::kFloat);
        const auto rows = prepost().tensor(p + ".rows");
        const auto vals = prepost().tensor(p + ".values");
        for (int64_t i = 0; i < rows.size(0); ++i) raw[0][rows[i].item<int64_t>()].copy_(vals[i]);
        const auto boxes = dwpose::detector_postprocess(raw, prepost().tensor(p + ".ratio").item<double>());
        const auto want = prepost().tensor(p + ".boxes");
        ASSERT_EQ(static_cast<int64_t>(boxes.size()), want.size(0)) << p;
        for (std::size_t i = 0; i < boxes.size(); ++i) {
            const auto w = want[static_cast<int64_t>(i)];
            const double ours[5] = {boxes[i].x0, boxes[i].y0, boxes[i].x1, boxes[i].y1, boxes[i].score};
            for (int j = 0; j < 5; ++j) {
                const double ref = w[j].item<double>();
                // exact up to the last bit of the exp in the decode (wh)
                EXPECT_NEAR(ours[j], ref, 3e-7 * std::max(1.0, std::abs(ref))) << p << " box " << i << " [" << j << "]";
            }
        }
    }
}

TEST(DwposePrepost, NmsMatchesDwpose) {
    for (int c = 0; c < 3; ++c) {
        const std::string p = "nms" + std::to_string(c);
        const auto keep = dwpose::nms(prepost().tensor(p + ".boxes"), prepost().tensor(p + ".scores"), 0.45f);
        const auto want = prepost().tensor(p + ".keep");
        EXPECT_EQ(keep, std::vector<int64_t>(want.data_ptr<int64_t>(), want.data_ptr<int64_t>() + want.numel())) << p;
    }
}

TEST(DwposePrepost, AffineCropMatchesDwpose) {
    const cv::Mat img = read_png("crop.png");
    const auto boxes = prepost().tensor("crop.boxes");
    for (int64_t k = 0; k < boxes.size(0); ++k) {
        const std::string p = "crop" + std::to_string(k);
        const auto b = boxes[k];
        const auto in = dwpose::pose_preprocess(
            img, {b[0].item<double>(), b[1].item<double>(), b[2].item<double>(), b[3].item<double>()}, 288, 384);
        const auto c = prepost().tensor(p + ".center"), s = prepost().tensor(p + ".scale");
        EXPECT_EQ(in.center[0], c[0].item<double>()) << p;
        EXPECT_EQ(in.center[1], c[1].item<double>()) << p;
        EXPECT_EQ(in.scale[0], s[0].item<double>()) << p;
        EXPECT_EQ(in.scale[1], s[1].item<double>()) << p;
        cv::Mat w64 = in.warp.clone();
        const auto warp = at::from_blob(w64.ptr<double>(), {2, 3}, at::kDouble).clone();
        const auto want_warp = prepost().tensor(p + ".warp");
        EXPECT_LE((warp - want_warp).abs().max().item<double>(), 1e-12 * want_warp.abs().max().item<double>()) << p;
        cv::Mat warped;
        cv::warpAffine(img, warped, in.warp, cv::Size(288, 384), cv::INTER_LINEAR);
        const auto wt = at::from_blob(warped.data, {384, 288, 3}, at::kByte).to(at::kDouble);
        EXPECT_TRUE(at::equal(wt.sum(std::vector<int64_t>{0, 1}), prepost().tensor(p + ".warped_sum"))) << p;
        EXPECT_TRUE(at::equal(wt.slice(0, 0, c10::nullopt, 6).slice(1, 0, c10::nullopt, 6).to(at::kByte),
                              prepost().tensor(p + ".warped_grid")))
            << p;
        const auto grid = in.image[0].slice(1, 0, c10::nullopt, 16).slice(2, 0, c10::nullopt, 16);
        EXPECT_TRUE(at::equal(grid, prepost().tensor(p + ".input_grid"))) << p;
    }
}

TEST(DwposePrepost, SimccDecodeMatchesDwpose) {
    const auto sx = prepost().tensor("simcc.x").to(at::kFloat) / 16;
    const auto sy = prepost().tensor("simcc.y").to(at::kFloat) / 16;
    const auto c = prepost().tensor("simcc.center"), s = prepost().tensor("simcc.scale");
    const auto d = dwpose::pose_postprocess(sx[0], sy[0], 288, 384, {c[0].item<double>(), c[1].item<double>()},
                                            {s[0].item<double>(), s[1].item<double>()});
    const auto kp = prepost().tensor("simcc.keypoints");
    const auto sc = prepost().tensor("simcc.scores");
    ASSERT_EQ(static_cast<int64_t>(d.xy.size()), kp.size(0));
    for (int64_t i = 0; i < kp.size(0); ++i) {
        EXPECT_EQ(d.xy[i][0], kp[i][0].item<double>()) << i;
        EXPECT_EQ(d.xy[i][1], kp[i][1].item<double>()) << i;
        EXPECT_EQ(d.score[i], sc[i].item<float>()) << i;
    }
}

// ---------------------------------------------------------------------------------------------
// The whole pipeline: image -> keypoints, against DWPose's Python pipeline on onnxruntime.

TEST(DwposePipeline, MatchesDwposeOnSyntheticModels) {
    // Pixel positions carry the float32 network noise of the box (measured up to 2e-5
    // relative, through exp(wh) * stride) and float32 storage: 2e-4 of max(|v|, 100 px).
    auto tol = [](double v) { return 2e-4 * std::max(std::abs(v), 100.0); };
    const dwpose::Estimator est(kDir / "det.onnx", kDir / "pose.onnx");
    EXPECT_EQ(est.pose_width(), 288);
    EXPECT_EQ(est.pose_height(), 384);
    const auto ref = io::SafetensorsFile::open(kDir / "pipeline.safetensors");
    for (int k = 0; k < 2; ++k) {
        const std::string p = "person" + std::to_string(k);
        const cv::Mat img = read_png(p + ".png");
        const auto r = est.run(img);
        const auto boxes = ref.tensor(p + ".boxes");
        ASSERT_EQ(static_cast<int64_t>(r.boxes.size()), boxes.size(0)) << p;
        ASSERT_GT(boxes.size(0), 0) << p;
        for (std::size_t i = 0; i < r.boxes.size(); ++i) {
            const auto& b = r.boxes[i];
            const double ours[4] = {b.x0, b.y0, b.x1, b.y1};
            for (int j = 0; j < 4; ++j) {
                const double want = boxes[static_cast<int64_t>(i)][j].item<double>();
                EXPECT_NEAR(ours[j], want, tol(want)) << p << " box " << i;
            }
        }
        const auto kp = ref.tensor(p + ".keypoints133");
        const auto sc = ref.tensor(p + ".scores133");
        const auto margins = ref.tensor(p + ".margins");
        int64_t compared = 0, near_ties = 0;
        for (int64_t n = 0; n < kp.size(0); ++n) {
            for (int64_t j = 0; j < 133; ++j) {
                const auto& got = r.wholebody[n][j];
                // A keypoint whose top two SimCC logits are closer than float32 noise may pick
                // the other bin in either runtime: counted, not compared.
                if (margins[n][j].item<float>() < 1e-3f) {
                    ++near_ties;
                    continue;
                }
                ++compared;
                const double wx = kp[n][j][0].item<double>(), wy = kp[n][j][1].item<double>();
                EXPECT_NEAR(got.x, wx, tol(wx)) << p << " person " << n << " kp " << j;
                EXPECT_NEAR(got.y, wy, tol(wy)) << p << " person " << n << " kp " << j;
                EXPECT_NEAR(got.c, std::max(0.0f, sc[n][j].item<float>()), 1e-4) << p << " person " << n << " kp " << j;
            }
        }
        std::cout << fmt::format("[ pipeline ] {}: {} persons, {} keypoints compared, {} near ties skipped\n", p,
                                 kp.size(0), compared, near_ties);
        EXPECT_LE(near_ties, compared / 50) << p;
        // OpenPose layout (wholebody.py: neck, mmpose -> openpose order): 18 body, 6 feet, 68 face, 21 + 21 hands.
        const auto oxy = ref.tensor(p + ".openpose_xy");
        const auto osc = ref.tensor(p + ".openpose_score");
        ASSERT_EQ(static_cast<int64_t>(r.frame.people.size()), oxy.size(0));
        for (int64_t n = 0; n < oxy.size(0); ++n) {
            const auto& person = r.frame.people[n];
            std::vector<Keypoint> flat = person.body;
            for (const auto* part : {&person.feet, &person.face, &person.hand_left, &person.hand_right})
                flat.insert(flat.end(), part->begin(), part->end());
            ASSERT_EQ(static_cast<int64_t>(flat.size()), oxy.size(1));
            for (int64_t j = 0; j < oxy.size(1); ++j) {
                // the 133-index each OpenPose entry comes from (-1: the neck, from 5 and 6)
                static constexpr int kBody[18] = {0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3};
                const int src = j < 18 ? kBody[j] : static_cast<int>(j - 1);
                const bool tie = src < 0 ? (margins[n][5].item<float>() < 1e-3f || margins[n][6].item<float>() < 1e-3f)
                                         : margins[n][src].item<float>() < 1e-3f;
                if (tie) continue;
                EXPECT_NEAR(flat[j].c, std::max(0.0, osc[n][j].item<double>()), 1e-4)
                    << p << " person " << n << " openpose " << j;
                EXPECT_NEAR(flat[j].x, oxy[n][j][0].item<double>(), tol(oxy[n][j][0].item<double>()))
                    << p << " person " << n << " openpose " << j;
                EXPECT_NEAR(flat[j].y, oxy[n][j][1].item<double>(), tol(oxy[n][j][1].item<double>()))
                    << p << " person " << n << " openpose " << j;
            }
        }
    }
}

TEST(DwposePipeline, NoPersonGivesAnEmptyFrame) {
    const cv::Mat img = read_png("person0.png");
    const dwpose::Estimator blind(kDir / "det_blind.onnx", kDir / "pose.onnx");
    const auto r = blind.run(img);
    EXPECT_TRUE(r.boxes.empty());
    EXPECT_TRUE(r.frame.people.empty());
    EXPECT_EQ(r.frame.width, img.cols);
    EXPECT_EQ(r.frame.height, img.rows);
    // DWPose's own fallback (one pose over the whole image), on request.
    dwpose::EstimatorOptions o;
    o.whole_image_when_no_person = true;
    const dwpose::Estimator fallback(kDir / "det_blind.onnx", kDir / "pose.onnx", o);
    const auto f = fallback.run(img);
    ASSERT_EQ(f.frame.people.size(), 1u);
    EXPECT_EQ(f.wholebody[0].size(), 133u);
}

}  // namespace
}  // namespace ipa::pose
