#include "ipa/curate/review/pose_files.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <opencv2/core.hpp>

#include "ipa/core/error.h"
#include "ipa/media/frames.h"
#include "ipa/pose/keypoints.h"

namespace ipa::curate::review {
namespace fs = std::filesystem;

std::pair<int, int> parse_size(const std::string& text, const std::string& flag) {
    const auto x = text.find_first_of("xX");
    int h = 0, w = 0;
    try {
        if (x == std::string::npos) throw std::invalid_argument("no x");
        std::size_t used_h = 0, used_w = 0;
        h = std::stoi(text.substr(0, x), &used_h);
        w = std::stoi(text.substr(x + 1), &used_w);
        if (used_h != x || used_w != text.size() - x - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
        throw ConfigError(fmt::format("{} '{}': expected HEIGHTxWIDTH, e.g. 480x832", flag, text));
    }
    if (h <= 0 || w <= 0 || h > 16384 || w > 16384) {
        throw ConfigError(fmt::format("{} '{}': height and width must be in 1..16384", flag, text));
    }
    return {h, w};
}

pose::HandMaskOptions::Shape parse_mask_shape(const std::string& text) {
    if (text == "box") return pose::HandMaskOptions::Shape::Box;
    if (text == "hull") return pose::HandMaskOptions::Shape::Hull;
    throw ConfigError(fmt::format("--shape '{}': expected box or hull", text));
}

namespace {

std::pair<int, int> resolve_size(const pose::PoseSequence& seq, const std::optional<std::pair<int, int>>& size,
                                 const fs::path& keypoints) {
    if (size) return *size;
    for (const auto& f : seq.frames) {
        if (f.width > 0 && f.height > 0) return {f.height, f.width};
    }
    throw ConfigError(fmt::format("keypoints '{}' carry no canvas size (canvas_width/canvas_height); pass --size HxW",
                                  keypoints.string()));
}

pose::PoseSequence read_nonempty(const fs::path& keypoints) {
    auto seq = pose::read_keypoints(keypoints);
    if (seq.frames.empty()) throw DataError(fmt::format("keypoints '{}' have no frames", keypoints.string()));
    return seq;
}

}  // namespace

PoseFilesReport render_pose_file(const fs::path& keypoints, const fs::path& out, const RenderPoseFileOptions& opts) {
    const auto seq = read_nonempty(keypoints);
    const auto [h, w] = resolve_size(seq, opts.size, keypoints);
    const auto frames = pose::render_pose_video(seq, h, w, opts.render);
    if (out.has_parent_path()) fs::create_directories(out.parent_path());
    media::VideoWriteOptions vopts;
    vopts.fps = opts.fps;
    media::write_frames_bgr(out, frames, vopts);
    PoseFilesReport rep;
    rep.written.push_back(out);
    rep.frames = static_cast<int64_t>(frames.size());
    rep.height = h;
    rep.width = w;
    return rep;
}

PoseFilesReport write_hand_mask_files(const fs::path& keypoints, const fs::path& out_dir,
                                      const MaskFilesOptions& opts) {
    const auto seq = read_nonempty(keypoints);
    const auto [h, w] = resolve_size(seq, opts.size, keypoints);
    const auto T = static_cast<int64_t>(seq.frames.size());
    if ((T - 1) % 4 != 0 || h % 8 != 0 || w % 8 != 0) {
        throw DataError(
            fmt::format("keypoints '{}': {} frames at {}x{}; the latent hand mask needs 1 + 4k frames "
                        "(e.g. 17, 81) and a size that is a multiple of 8 (pass --size)",
                        keypoints.string(), T, h, w));
    }
    const at::Tensor masks = pose::hand_masks(seq, h, w, opts.mask);  // [T, H, W] in {0, 1}
    const at::Tensor latent = pose::latent_hand_mask(masks);          // [1 + (T-1)/4, H/8, W/8]

    fs::create_directories(out_dir);
    PoseFilesReport rep;
    const at::Tensor u8 = masks.mul(255).to(torch::kUInt8).contiguous();
    std::vector<cv::Mat> frames;
    for (int64_t t = 0; t < T; ++t) {
        frames.push_back(cv::Mat(h, w, CV_8UC1, u8[t].data_ptr<uint8_t>()).clone());
    }
    media::VideoWriteOptions vopts;
    vopts.fps = opts.fps;
    const fs::path video = out_dir / "hand_mask.mp4";
    media::write_frames_bgr(video, frames, vopts);
    const fs::path latent_file = out_dir / "hand_mask_latent.safetensors";
    pose::save_latent_mask(latent_file, latent);
    rep.written = {video, latent_file};
    rep.frames = T;
    rep.height = h;
    rep.width = w;
    rep.latent_shape = latent.sizes().vec();
    rep.hand_fraction = masks.mean().item<double>();
    return rep;
}

}  // namespace ipa::curate::review
