#include "ipa/eval/hands.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/curate/manifest.h"
#include "ipa/eval/evaluate.h"
#include "ipa/media/frames.h"

namespace fs = std::filesystem;

namespace ipa::eval {
namespace {

double nan_if_negative(double v) { return v < 0 ? std::nan("") : v; }

double ratio(double num, int64_t den) { return den > 0 ? num / double(den) : std::nan(""); }

double stat_of(const curate::CandidateScore& s, const std::string& key) {
    const auto it = s.stats.find(key);
    if (it == s.stats.end()) throw Error("curation scorer: no '" + key + "' statistic");
    return it->second;
}

/// Mean of the finite values (NaN when none).
double finite_mean(const std::vector<double>& v) {
    double s = 0;
    int64_t n = 0;
    for (double x : v)
        if (std::isfinite(x)) s += x, ++n;
    return n ? s / double(n) : std::nan("");
}

std::string first_names(const std::vector<std::string>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size() && i < 10; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > 10) s += fmt::format(", … ({} in all)", v.size());
    return s;
}

}  // namespace

std::vector<HandEvalInput> hand_inputs_from_dirs(const fs::path& kp_dir, const fs::path& video_dir) {
    if (!fs::is_directory(kp_dir)) throw DataError(fmt::format("keypoints folder {} does not exist", kp_dir.string()));
    // Keypoints: <id>/ folders and <id>.jsonl files.
    std::map<std::string, fs::path> kps;
    for (const auto& e : fs::directory_iterator(kp_dir)) {
        std::string id;
        if (e.is_directory())
            id = e.path().filename().string();
        else if (e.path().extension() == ".jsonl")
            id = e.path().stem().string();
        else
            continue;
        if (!kps.emplace(id, e.path()).second)
            throw DataError(fmt::format("keypoints folder {}: both {}/ and {}.jsonl", kp_dir.string(), id, id));
    }
    std::vector<HandEvalInput> out;
    if (video_dir.empty()) {
        if (kps.empty())
            throw DataError(
                fmt::format("keypoints folder {} holds no <id>/ folders or <id>.jsonl files", kp_dir.string()));
        for (const auto& [id, p] : kps) out.push_back({id, p, {}});
        return out;
    }
    const auto videos = videos_in_dir(video_dir, "generated");
    std::vector<std::string> no_kp, no_video;
    for (const auto& [id, p] : videos)
        if (!kps.count(id)) no_kp.push_back(id);
    for (const auto& [id, p] : kps)
        if (!videos.count(id)) no_video.push_back(id);
    if (!no_kp.empty())
        throw DataError(fmt::format("{} generated video(s) of {} have no keypoints in {}: {}", no_kp.size(),
                                    video_dir.string(), kp_dir.string(), first_names(no_kp)));
    if (!no_video.empty())
        throw DataError(fmt::format("{} keypoint set(s) in {} have no generated video in {}: {}", no_video.size(),
                                    kp_dir.string(), video_dir.string(), first_names(no_video)));
    for (const auto& [id, p] : videos) out.push_back({id, kps.at(id), p});
    return out;
}

std::vector<HandEvalInput> hand_inputs_from_manifest(const fs::path& csv) {
    const auto m = curate::read_manifest(csv);
    if (std::find(m.columns.begin(), m.columns.end(), "keypoints") == m.columns.end())
        throw DataError(fmt::format("{}: no `keypoints` column (expected id, keypoints[, generated])", csv.string()));
    const bool has_video = std::find(m.columns.begin(), m.columns.end(), "generated") != m.columns.end();
    const fs::path base = m.path.parent_path();
    std::vector<HandEvalInput> out;
    for (const auto& r : m.rows) {
        HandEvalInput in{r.id, r.keypoints, {}};
        if (in.keypoints.empty()) throw DataError(fmt::format("{}: row '{}': empty keypoints", csv.string(), r.id));
        if (has_video && !r.get("generated").empty()) {
            const fs::path p(r.get("generated"));
            in.video = p.is_absolute() ? p : base / p;
        }
        out.push_back(std::move(in));
    }
    if (out.empty()) throw DataError(csv.string() + ": no rows");
    return out;
}

HandMetrics hand_keypoint_metrics(const std::string& id, const pose::PoseSequence& seq,
                                  const curate::ScoreConfig& cfg) {
    HandMetrics m;
    m.id = id;
    m.frames = static_cast<int64_t>(seq.frames.size());
    for (const auto& pf : seq.frames) {
        int64_t expected = 0, visible = 0;
        for (const auto& person : pf.people) {
            // The scorer's rule: a person counts with a confident body point or a hand array.
            const bool has_body = std::any_of(person.body.begin(), person.body.end(),
                                              [&](const pose::Keypoint& k) { return k.c > cfg.point_threshold; });
            if (!has_body && person.hand_left.empty() && person.hand_right.empty()) continue;
            for (int side = 0; side < 2; ++side) {
                const auto& kp = side == 0 ? person.hand_left : person.hand_right;
                ++expected;
                if (kp.size() != 21) continue;  // absent: 21 points of confidence 0
                int detected = 0;
                for (const auto& k : kp) {
                    m.confidence_sum += std::clamp(double(k.c), 0.0, 1.0);
                    if (k.c > cfg.point_threshold && std::isfinite(k.x) && std::isfinite(k.y)) ++detected;
                }
                m.detected_points += detected;
                if (detected >= cfg.min_points) {
                    ++visible;
                    ++(side == 0 ? m.visible_left : m.visible_right);
                }
            }
        }
        m.expected_hands += expected;
        m.visible_hands += visible;
        m.frame_hands_visible.push_back(ratio(double(visible), expected));
    }
    m.hand_confidence = ratio(m.confidence_sum, 21 * m.expected_hands);
    m.hand_points_detected = ratio(double(m.detected_points), 21 * m.expected_hands);
    m.hands_visible = ratio(double(m.visible_hands), m.expected_hands);
    m.left_hand_visible = ratio(double(m.visible_left), m.expected_hands / 2);
    m.right_hand_visible = ratio(double(m.visible_right), m.expected_hands / 2);
    return m;
}

HandMetrics evaluate_hands(const HandEvalInput& in, const curate::ScoreConfig& cfg) {
    pose::PoseSequence seq;
    try {
        seq = pose::read_keypoints(in.keypoints);
    } catch (const Error& e) {
        throw DataError(fmt::format("video '{}': keypoints {}: {}", in.id, in.keypoints.string(), e.what()));
    }
    if (seq.frames.empty())
        throw DataError(fmt::format("video '{}': keypoints {} hold no frames", in.id, in.keypoints.string()));
    std::vector<cv::Mat> frames;
    if (!in.video.empty()) {
        try {
            frames = media::read_frames_bgr(in.video);
        } catch (const Error& e) {
            throw DataError(fmt::format("video '{}': generated {}: {}", in.id, in.video.string(), e.what()));
        }
        if (frames.size() != seq.frames.size())
            throw DataError(fmt::format("video '{}': {} keypoint frames in {} but {} frames in the video {}", in.id,
                                        seq.frames.size(), in.keypoints.string(), frames.size(), in.video.string()));
    } else {
        // No pixels: one blank frame of the keypoint canvas, shared by every frame (the scorer's
        // keypoint signals do not read pixels; its sharpness becomes undefined and is dropped).
        int w = 64, h = 64;
        for (const auto& pf : seq.frames)
            if (pf.width > 0 && pf.height > 0) {
                w = pf.width, h = pf.height;
                break;
            }
        const cv::Mat blank(h, w, CV_8UC3, cv::Scalar::all(0));
        frames.assign(seq.frames.size(), blank);
    }
    HandMetrics m = hand_keypoint_metrics(in.id, seq, cfg);
    m.has_video = !in.video.empty();
    const auto s = curate::score_candidate(in.id, "", frames, seq, cfg);
    m.confidence_mean = stat_of(s, "confidence_mean");
    m.finger_confidence = stat_of(s, "finger_confidence");
    m.jitter = nan_if_negative(stat_of(s, "jitter"));
    m.accel = nan_if_negative(stat_of(s, "accel"));
    m.sharpness_ratio = m.has_video ? nan_if_negative(stat_of(s, "sharpness_ratio")) : std::nan("");
    m.score = m.has_video ? s.score : std::nan("");
    return m;
}

std::vector<HandMetrics> evaluate_hands(const std::vector<HandEvalInput>& inputs, const curate::ScoreConfig& cfg) {
    cfg.check();
    ProgressOptions po;
    po.unit = "videos";
    Progress progress("hand metrics", static_cast<int64_t>(inputs.size()), po);
    std::vector<HandMetrics> out;
    for (const auto& in : inputs) {
        out.push_back(evaluate_hands(in, cfg));
        progress.advance(1, fmt::format("{} visible={:.3f}", in.id, out.back().hands_visible));
    }
    return out;
}

HandSummary summarize_hands(const std::vector<HandMetrics>& videos) {
    HandSummary s;
    double conf = 0;
    int64_t detected = 0, left = 0, right = 0;
    std::vector<double> cm, fc, ji, ac, sr, sc;
    for (const auto& v : videos) {
        ++s.videos;
        s.frames += v.frames;
        s.expected_hands += v.expected_hands;
        s.visible_hands += v.visible_hands;
        conf += v.confidence_sum;
        detected += v.detected_points;
        left += v.visible_left;
        right += v.visible_right;
        cm.push_back(v.confidence_mean);
        fc.push_back(v.finger_confidence);
        ji.push_back(v.jitter);
        ac.push_back(v.accel);
        sr.push_back(v.sharpness_ratio);
        sc.push_back(v.score);
    }
    s.hand_confidence = ratio(conf, 21 * s.expected_hands);
    s.hand_points_detected = ratio(double(detected), 21 * s.expected_hands);
    s.hands_visible = ratio(double(s.visible_hands), s.expected_hands);
    s.left_hand_visible = ratio(double(left), s.expected_hands / 2);
    s.right_hand_visible = ratio(double(right), s.expected_hands / 2);
    s.confidence_mean = finite_mean(cm), s.finger_confidence = finite_mean(fc), s.jitter = finite_mean(ji);
    s.accel = finite_mean(ac), s.sharpness_ratio = finite_mean(sr), s.score = finite_mean(sc);
    return s;
}

}  // namespace ipa::eval
