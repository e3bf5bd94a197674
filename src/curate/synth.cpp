#include "ipa/curate/synth.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "dancer.h"
#include "ipa/core/atomic_file.h"
#include "ipa/core/error.h"
#include "ipa/curate/manifest.h"
#include "ipa/media/frames.h"
#include "ipa/pose/hand_mask.h"
#include "ipa/pose/render.h"

namespace ipa::curate {
namespace fs = std::filesystem;
using detail::Rng;

namespace {

void check_options(const SynthOptions& o) {
    auto bad = [](const std::string& what) { throw ConfigError("synth: " + what); };
    if (o.clips < 1) bad("clips must be >= 1, got " + std::to_string(o.clips));
    if (o.candidates < 1) bad("candidates must be >= 1, got " + std::to_string(o.candidates));
    if (o.frames < 2) bad("frames must be >= 2, got " + std::to_string(o.frames));
    if (o.height < 64 || o.width < 64 || o.height % 8 || o.width % 8)
        bad("height and width must be >= 64 and multiples of 8, got " + std::to_string(o.height) + "x" +
            std::to_string(o.width));
    if (!(o.fps > 0)) bad("fps must be > 0");
    if (!o.video_ext.empty() && o.video_ext != ".mp4" && o.video_ext != ".avi" && o.video_ext != ".mkv" &&
        o.video_ext != ".mov")
        bad("video_ext must be \"\" (PNG frames) or one of .mp4 .avi .mkv .mov, got '" + o.video_ext + "'");
}

std::string name3(const char* prefix, int i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s_%03d", prefix, i);
    return buf;
}

void imwrite_checked(const fs::path& path, const cv::Mat& img) {
    bool ok = false;
    try {
        ok = cv::imwrite(path.string(), img);
    } catch (const cv::Exception& e) {
        throw DataError(path.u8string() + ": cannot write image (" + e.what() + ")");
    }
    if (!ok) throw DataError(path.u8string() + ": cannot write image");
}

// Simulated detector output for one hand (see synth.h).
void simulate_hand(std::vector<pose::Keypoint>& hand, const std::string& defect, bool defect_hand, int finger,
                   double unit, Rng& rng) {
    double sigma = 0.35 * unit;
    double clo = 0.72, chi = 0.95, scale = 1.0;
    if (defect == "blur") sigma = 1.2 * unit, scale = 0.45;
    if (defect == "jitter") sigma = 0.8 * unit, clo = 0.6, chi = 0.9;
    for (auto& k : hand) {
        k.x += float(sigma * rng.normal());
        k.y += float(sigma * rng.normal());
        k.c = float(rng.uniform(clo, chi) * scale);
    }
    if (!defect_hand) return;
    if (defect == "missing_finger") {
        for (int j = 1; j <= 4; ++j) {
            auto& k = hand[4 * finger + j];
            k.x += float(2.0 * unit * rng.normal());
            k.y += float(2.0 * unit * rng.normal());
            k.c = float(rng.uniform(0.02, 0.15));
        }
    } else if (defect == "fused_fingers") {
        for (int j = 1; j <= 4; ++j) {
            auto& a = hand[4 * finger + j];
            auto& b = hand[4 * (finger + 1) + j];
            const float mx = 0.5f * (a.x + b.x), my = 0.5f * (a.y + b.y);
            a = {mx, my, float(rng.uniform(0.35, 0.45))};
            b = {mx, my, float(rng.uniform(0.35, 0.45))};
        }
    }
}

}  // namespace

std::string synth_defect(int clip, int index, uint64_t seed) {
    if (index <= 0) return "none";
    static const char* const cycle[] = {"blur", "missing_finger", "none", "fused_fingers", "jitter"};
    const uint64_t k = uint64_t(clip) * 7u + uint64_t(index - 1) + seed % 5u;
    return cycle[k % 5];
}

SynthReport synth_dataset(const fs::path& out_dir, const SynthOptions& o) {
    check_options(o);
    const int H = o.height, W = o.width;
    const double unit = H / 256.0;
    fs::create_directories(out_dir);
    media::VideoWriteOptions wopts;
    wopts.fps = o.fps;
    Manifest m;
    m.path = out_dir / "candidates.csv";
    m.columns = {"id",        "group",  "video", "vace_video", "vace_reference_image",
                 "keypoints", "prompt", "label", "defect"};
    SynthReport rep;
    rep.manifest = fs::absolute(m.path);
    const fs::path root = fs::absolute(out_dir);
    for (int c = 0; c < o.clips; ++c) {
        const std::string clip = name3("clip", c);
        const fs::path dir = root / clip;
        fs::create_directories(dir);
        Rng rng(detail::mix_seed({o.seed, uint64_t(c), 1}));
        const detail::Dancer d = detail::make_dancer(rng, o.textured_background && c % 2 == 1);

        pose::PoseSequence gt;
        for (int f = 0; f < o.frames; ++f) {
            pose::PoseFrame pf;
            pf.width = W, pf.height = H;
            pf.people.push_back(detail::pose_at(d, f / o.fps, H, W));
            gt.frames.push_back(std::move(pf));
        }
        pose::write_keypoints_dir(dir / "gt_keypoints", gt);
        const fs::path pose_video = dir / ("pose" + o.video_ext);
        media::write_frames_bgr(pose_video, pose::render_pose_video(gt, H, W), wopts);
        const fs::path reference = dir / "reference.png";
        imwrite_checked(reference, detail::draw_dancer(d, gt.frames[0].people[0], H, W));
        const std::string prompt = "A person in a " + d.shirt_name + " shirt and " + d.pants_name +
                                   " trousers dances " + d.motion_name + " in front of a " +
                                   (d.textured ? "\"checkered\" " : "plain ") + d.background_name +
                                   " wall, full body, both hands visible";
        write_file_atomic(dir / "prompt.txt", prompt + "\n");

        for (int k = 0; k < o.candidates; ++k) {
            const std::string defect = synth_defect(c, k, o.seed);
            Rng cr(detail::mix_seed({o.seed, uint64_t(c), uint64_t(k), 2}));
            const int hand = cr.below(2);  // 0 left, 1 right
            std::array<detail::HandDraw, 2> draws;
            int finger = -1;
            if (defect == "missing_finger") finger = cr.below(5), draws[hand].missing_finger = finger;
            if (defect == "fused_fingers") finger = 1 + cr.below(3), draws[hand].fused_finger = finger;
            std::vector<cv::Mat> frames;
            pose::PoseSequence det;
            for (int f = 0; f < o.frames; ++f) {
                std::array<detail::HandNoise, 2> noise{};
                if (defect == "jitter")
                    for (auto& n : noise) {
                        n.angle = 0.25 * cr.normal(), n.flex = 0.2 * cr.normal();
                        n.dx = 0.012 * H * cr.normal(), n.dy = 0.012 * H * cr.normal();
                        for (auto& v : n.finger) v = 0.2 * cr.normal();
                    }
                pose::Person person = detail::pose_at(d, f / o.fps, H, W, noise);
                cv::Mat img = detail::draw_dancer(d, person, H, W, draws);
                if (defect == "blur") {
                    pose::HandMaskOptions bo;
                    bo.padding = 0.35f;
                    for (const auto* h : {&person.hand_left, &person.hand_right})
                        if (auto box = pose::hand_box(*h, H, W, bo)) {
                            cv::Mat roi = img(*box);
                            cv::GaussianBlur(roi, roi, cv::Size(0, 0), 2.2 * unit);
                        }
                }
                frames.push_back(img);
                for (auto& kp : person.body) {
                    kp.x += float(0.4 * unit * cr.normal());
                    kp.y += float(0.4 * unit * cr.normal());
                    kp.c = float(cr.uniform(0.8, 0.98));
                }
                simulate_hand(person.hand_left, defect, hand == 0, finger, unit, cr);
                simulate_hand(person.hand_right, defect, hand == 1, finger, unit, cr);
                pose::PoseFrame pf;
                pf.width = W, pf.height = H;
                pf.people.push_back(std::move(person));
                det.frames.push_back(std::move(pf));
            }
            const std::string cand = "cand_" + std::to_string(k);
            const fs::path video = dir / (cand + o.video_ext);
            media::write_frames_bgr(video, frames, wopts);
            pose::write_keypoints_dir(dir / (cand + "_keypoints"), det);
            ManifestRow row;
            row.id = clip + "_" + cand;
            row.video = video;
            row.vace_video = pose_video;
            row.vace_reference_image = reference;
            row.keypoints = dir / (cand + "_keypoints");
            row.prompt = prompt;
            row.extra = {{"group", clip}, {"label", defect == "none" ? "good" : "bad"}, {"defect", defect}};
            m.rows.push_back(std::move(row));
            ++rep.defects[defect];
            ++rep.candidates;
        }
        ++rep.clips;
    }
    write_manifest(m.path, m);
    spdlog::info("synth: {} clips, {} candidates -> {}", rep.clips, rep.candidates, rep.manifest.u8string());
    return rep;
}

}  // namespace ipa::curate
