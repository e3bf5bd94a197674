#include "ipa/curate/score.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "ipa/core/config.h"
#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/media/frames.h"
#include "ipa/pose/hand_mask.h"

namespace ipa::curate {
namespace fs = std::filesystem;

double Ramp::operator()(double value) const {
    if (!std::isfinite(value) || good == bad) return 0.0;
    return std::clamp((value - bad) / (good - bad), 0.0, 1.0);
}

namespace {

void read_ramp(const ConfigReader& sec, const std::string& key, Ramp& r) {
    if (!sec.has(key)) return;
    const ConfigReader node = sec.section(key);
    r.bad = node.get_or<double>("bad", r.bad);
    r.good = node.get_or<double>("good", r.good);
    node.finish();
}

using Points = std::vector<cv::Point2d>;

// The hand's 21 points; `ok[i]` when point i is confident.
struct Hand {
    Points p;
    std::vector<bool> ok;
    int count = 0;
    double size = 0;  // longer side of the confident points' box
    bool visible = false;
};

Hand make_hand(const std::vector<pose::Keypoint>& kp, double sx, double sy, const ScoreConfig& cfg) {
    Hand h;
    if (kp.size() != 21) return h;
    h.p.resize(21);
    h.ok.assign(21, false);
    double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
    for (int i = 0; i < 21; ++i) {
        h.p[i] = {double(kp[i].x) * sx, double(kp[i].y) * sy};
        if (kp[i].c > cfg.point_threshold && std::isfinite(kp[i].x) && std::isfinite(kp[i].y)) {
            h.ok[i] = true;
            ++h.count;
            x0 = std::min(x0, h.p[i].x), x1 = std::max(x1, h.p[i].x);
            y0 = std::min(y0, h.p[i].y), y1 = std::max(y1, h.p[i].y);
        }
    }
    h.visible = h.count >= cfg.min_points;
    if (h.count > 0) h.size = std::max({x1 - x0, y1 - y0, 1.0});
    return h;
}

// Mean residual of a 2D similarity fit of `a` onto `b` over the common points / size.
std::optional<double> shape_change(const Hand& a, const Hand& b) {
    Points pa, pb;
    for (int i = 0; i < 21; ++i)
        if (a.ok[i] && b.ok[i]) pa.push_back(a.p[i]), pb.push_back(b.p[i]);
    if (pa.size() < 3) return std::nullopt;
    cv::Point2d ca(0, 0), cb(0, 0);
    for (size_t i = 0; i < pa.size(); ++i) ca += pa[i], cb += pb[i];
    ca /= double(pa.size()), cb /= double(pb.size());
    double dot = 0, cross = 0, na = 0;
    for (size_t i = 0; i < pa.size(); ++i) {
        const cv::Point2d u = pa[i] - ca, v = pb[i] - cb;
        dot += u.x * v.x + u.y * v.y;
        cross += u.x * v.y - u.y * v.x;
        na += u.x * u.x + u.y * u.y;
    }
    if (na <= 0) return std::nullopt;
    const double s_cos = dot / na, s_sin = cross / na;  // scale * (cos, sin)
    double res = 0;
    for (size_t i = 0; i < pa.size(); ++i) {
        const cv::Point2d u = pa[i] - ca, v = pb[i] - cb;
        const cv::Point2d fit(s_cos * u.x - s_sin * u.y, s_sin * u.x + s_cos * u.y);
        res += cv::norm(v - fit);
    }
    return res / double(pa.size()) / std::max(b.size, 1.0);
}

std::optional<double> second_difference(const Hand& a, const Hand& b, const Hand& c) {
    double sum = 0;
    int n = 0;
    for (int i = 0; i < 21; ++i)
        if (a.ok[i] && b.ok[i] && c.ok[i]) sum += cv::norm(a.p[i] - 2.0 * b.p[i] + c.p[i]), ++n;
    if (n < 3) return std::nullopt;
    return sum / n / std::max(b.size, 1.0);
}

// Confidence of the weakest finger (fingers are points 1-4, 5-8, 9-12, 13-16, 17-20).
double weakest_finger(const std::vector<pose::Keypoint>& kp) {
    double worst = 1e300;
    for (int f = 0; f < 5; ++f) {
        double s = 0;
        for (int j = 1; j <= 4; ++j) s += std::clamp(double(kp[4 * f + j].c), 0.0, 1.0);
        worst = std::min(worst, s / 4);
    }
    return worst;
}

double mean_confidence(const std::vector<pose::Keypoint>& kp) {
    double s = 0;
    for (const auto& k : kp) s += std::clamp(double(k.c), 0.0, 1.0);
    return kp.empty() ? 0.0 : s / double(kp.size());
}

std::optional<cv::Rect> body_box(const pose::Person& person, double sx, double sy, int h, int w, float thr) {
    double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
    int n = 0;
    for (const auto& k : person.body)
        if (k.c > thr && std::isfinite(k.x) && std::isfinite(k.y)) {
            x0 = std::min(x0, k.x * sx), x1 = std::max(x1, k.x * sx);
            y0 = std::min(y0, k.y * sy), y1 = std::max(y1, k.y * sy);
            ++n;
        }
    if (n < 2) return std::nullopt;
    const double pad = 0.1 * std::max(x1 - x0, y1 - y0);
    const cv::Rect r(cv::Point(int(std::floor(x0 - pad)), int(std::floor(y0 - pad))),
                     cv::Point(int(std::ceil(x1 + pad)) + 1, int(std::ceil(y1 + pad)) + 1));
    const cv::Rect clipped = r & cv::Rect(0, 0, w, h);
    if (clipped.area() < 9) return std::nullopt;
    return clipped;
}

// Weighted geometric mean of the defined sub-scores (value < 0 = undefined, skipped).
double combine(const std::vector<std::pair<double, double>>& weighted) {
    double wsum = 0, lsum = 0;
    for (const auto& [w, s] : weighted) {
        if (w <= 0 || s < 0) continue;
        wsum += w;
        lsum += w * std::log(std::max(s, 1e-6));
    }
    return wsum > 0 ? std::exp(lsum / wsum) : 0.0;
}

double frame_score(const FrameScore& f, const ScoreConfig& cfg) {
    if (f.visible_fraction <= 0) return 0.0;
    const double ratio = f.body_sharpness > 0 ? f.hand_sharpness / f.body_sharpness : -1;
    return combine({{cfg.w_confidence, cfg.confidence(f.hand_confidence)},
                    {cfg.w_finger, cfg.finger(f.finger_confidence)},
                    {cfg.w_visibility, cfg.visibility(f.visible_fraction)},
                    {cfg.w_jitter, f.jitter >= 0 ? cfg.jitter(f.jitter) : -1},
                    {cfg.w_accel, f.accel >= 0 ? cfg.accel(f.accel) : -1},
                    {cfg.w_sharpness, ratio >= 0 ? cfg.sharpness(ratio) : -1}});
}

double stat(const CandidateScore& s, const std::string& key) {
    const auto it = s.stats.find(key);
    return it == s.stats.end() ? -1.0 : it->second;
}

}  // namespace

ScoreConfig ScoreConfig::from_yaml(const fs::path& file) {
    const ConfigReader root = ConfigReader::load_file(file);
    const ConfigReader sec = root.section("score");
    ScoreConfig c;
    c.threshold = sec.get_or<double>("threshold", c.threshold);
    c.point_threshold = sec.get_or<float>("point_threshold", c.point_threshold);
    c.min_points = sec.get_or<int>("min_points", c.min_points);
    c.hand_padding = sec.get_or<float>("hand_padding", c.hand_padding);
    const ConfigReader w = sec.section("weights");
    c.w_confidence = w.get_or<double>("confidence", c.w_confidence);
    c.w_finger = w.get_or<double>("finger", c.w_finger);
    c.w_visibility = w.get_or<double>("visibility", c.w_visibility);
    c.w_jitter = w.get_or<double>("jitter", c.w_jitter);
    c.w_accel = w.get_or<double>("accel", c.w_accel);
    c.w_sharpness = w.get_or<double>("sharpness", c.w_sharpness);
    w.finish();
    const ConfigReader r = sec.section("ramps");
    read_ramp(r, "confidence", c.confidence);
    read_ramp(r, "finger", c.finger);
    read_ramp(r, "visibility", c.visibility);
    read_ramp(r, "jitter", c.jitter);
    read_ramp(r, "accel", c.accel);
    read_ramp(r, "sharpness", c.sharpness);
    r.finish();
    sec.finish();
    root.finish();
    try {
        c.check();
    } catch (const ConfigError& e) {
        throw ConfigError(file.u8string() + ": " + e.what());
    }
    return c;
}

void ScoreConfig::check() const {
    auto bad = [](const std::string& key, const std::string& why) { throw ConfigError("score." + key + ": " + why); };
    if (!std::isfinite(threshold) || threshold < 0 || threshold > 1) bad("threshold", "must be in [0, 1]");
    if (!std::isfinite(point_threshold) || point_threshold < 0 || point_threshold >= 1)
        bad("point_threshold", "must be in [0, 1)");
    if (min_points < 1 || min_points > 21) bad("min_points", "must be in 1..21");
    if (!std::isfinite(hand_padding) || hand_padding < 0) bad("hand_padding", "must be >= 0");
    const std::pair<const char*, double> ws[] = {{"confidence", w_confidence}, {"finger", w_finger},
                                                 {"visibility", w_visibility}, {"jitter", w_jitter},
                                                 {"accel", w_accel},           {"sharpness", w_sharpness}};
    double total = 0;
    for (const auto& [k, v] : ws) {
        if (!std::isfinite(v) || v < 0) bad(std::string("weights.") + k, "must be a finite number >= 0");
        total += v;
    }
    if (total <= 0) bad("weights", "at least one weight must be > 0");
    const std::pair<const char*, const Ramp*> rs[] = {{"confidence", &confidence}, {"finger", &finger},
                                                      {"visibility", &visibility}, {"jitter", &jitter},
                                                      {"accel", &accel},           {"sharpness", &sharpness}};
    for (const auto& [k, r] : rs)
        if (!std::isfinite(r->bad) || !std::isfinite(r->good) || r->bad == r->good)
            bad(std::string("ramps.") + k, "bad and good must be finite and differ");
}

double laplacian_variance(const cv::Mat& image, const cv::Rect& roi) {
    const cv::Rect bounds(0, 0, image.cols, image.rows);
    const cv::Rect r = roi & bounds;
    if (r.width < 3 || r.height < 3) return 0.0;
    // The crop plus a 1-pixel margin, so the Laplacian at the crop's edge sees the real
    // neighbours (borders are replicated only at the image's edge), for BGR and gray alike.
    const cv::Rect outer = cv::Rect(r.x - 1, r.y - 1, r.width + 2, r.height + 2) & bounds;
    cv::Mat gray;
    if (image.channels() == 3)
        cv::cvtColor(image(outer), gray, cv::COLOR_BGR2GRAY);
    else
        gray = image(outer).clone();
    cv::Mat lap;
    cv::Laplacian(gray, lap, CV_64F, 1, 1, 0, cv::BORDER_REPLICATE);
    cv::Scalar mean, sd;
    cv::meanStdDev(lap(r - outer.tl()), mean, sd);
    return sd[0] * sd[0];
}

CandidateScore score_candidate(const std::string& id, const std::string& group, const std::vector<cv::Mat>& frames,
                               const pose::PoseSequence& keypoints, const ScoreConfig& cfg) {
    cfg.check();
    if (frames.empty()) throw DataError(id + ": the video has no frames");
    if (keypoints.frames.size() != frames.size())
        throw DataError(id + ": the video has " + std::to_string(frames.size()) + " frames but the keypoints have " +
                        std::to_string(keypoints.frames.size()) + "; hint: keypoints must be detected on every frame");
    const int H = frames[0].rows, W = frames[0].cols;
    const int64_t T = static_cast<int64_t>(frames.size());
    for (int64_t t = 0; t < T; ++t)
        if (frames[t].rows != H || frames[t].cols != W)
            throw DataError(id + ": frame " + std::to_string(t) + " has a different size than frame 0");

    std::vector<std::vector<Hand>> hands(T);  // hands[t][2 * person + (0 left, 1 right)]
    CandidateScore out;
    out.id = id;
    out.group = group;
    out.frames.resize(T);
    pose::HandMaskOptions box_opts;
    box_opts.padding = cfg.hand_padding;
    box_opts.threshold = cfg.point_threshold;
    box_opts.min_points = cfg.min_points;
    double conf_sum = 0, finger_sum = 0, hand_sharp_sum = 0, body_sharp_sum = 0;
    int64_t hand_count = 0, expected = 0, visible = 0, hand_frames = 0;
    for (int64_t t = 0; t < T; ++t) {
        const pose::PoseFrame& pf = keypoints.frames[t];
        const double sx = pf.width > 0 ? double(W) / pf.width : 1.0;
        const double sy = pf.height > 0 ? double(H) / pf.height : 1.0;
        FrameScore& fs = out.frames[t];
        fs.frame = t;
        fs.jitter = fs.accel = -1;
        double fconf = 0, fbody = 0, fhand = 0, fmin_finger = 1e300;
        int fvis = 0, fexp = 0, fbody_n = 0;
        for (const auto& person : pf.people) {
            const bool has_body = std::count_if(person.body.begin(), person.body.end(),
                                                [&](const pose::Keypoint& k) { return k.c > cfg.point_threshold; }) > 0;
            if (!has_body && person.hand_left.empty() && person.hand_right.empty()) continue;
            if (auto bb = body_box(person, sx, sy, H, W, cfg.point_threshold)) {
                fbody += laplacian_variance(frames[t], *bb);
                ++fbody_n;
            }
            for (const auto* kp : {&person.hand_left, &person.hand_right}) {
                ++fexp;
                Hand h = make_hand(*kp, sx, sy, cfg);
                if (h.visible) {
                    ++fvis;
                    fconf += mean_confidence(*kp);
                    fmin_finger = std::min(fmin_finger, weakest_finger(*kp));
                    std::vector<pose::Keypoint> scaled_kp(*kp);
                    for (auto& k : scaled_kp) k.x = float(k.x * sx), k.y = float(k.y * sy);
                    if (auto box = pose::hand_box(scaled_kp, H, W, box_opts))
                        fhand += laplacian_variance(frames[t], *box);
                }
                hands[t].push_back(std::move(h));
            }
        }
        expected += fexp;
        visible += fvis;
        fs.visible_fraction = fexp ? double(fvis) / fexp : 0.0;
        if (fvis > 0) {
            fs.hand_confidence = fconf / fvis;
            fs.finger_confidence = fmin_finger;
            fs.hand_sharpness = fhand / fvis;
            fs.body_sharpness = fbody_n ? fbody / fbody_n : 0.0;
            conf_sum += fconf;
            hand_count += fvis;
            finger_sum += fmin_finger;
            hand_sharp_sum += fs.hand_sharpness;
            body_sharp_sum += fs.body_sharpness;
            ++hand_frames;
        }
    }
    double jit_sum = 0, acc_sum = 0;
    int64_t jit_n = 0, acc_n = 0;
    for (int64_t t = 1; t < T; ++t) {
        double s = 0;
        int n = 0;
        for (size_t k = 0; k < std::min(hands[t].size(), hands[t - 1].size()); ++k)
            if (hands[t][k].visible && hands[t - 1][k].visible)
                if (auto v = shape_change(hands[t - 1][k], hands[t][k])) s += *v, ++n;
        if (n) out.frames[t].jitter = s / n, jit_sum += s / n, ++jit_n;
    }
    for (int64_t t = 1; t + 1 < T; ++t) {
        double s = 0;
        int n = 0;
        const size_t K = std::min({hands[t - 1].size(), hands[t].size(), hands[t + 1].size()});
        for (size_t k = 0; k < K; ++k)
            if (hands[t - 1][k].visible && hands[t][k].visible && hands[t + 1][k].visible)
                if (auto v = second_difference(hands[t - 1][k], hands[t][k], hands[t + 1][k])) s += *v, ++n;
        if (n) out.frames[t].accel = s / n, acc_sum += s / n, ++acc_n;
    }
    auto& st = out.stats;
    st["frames"] = double(T);
    st["hand_frames"] = double(hand_frames);
    st["confidence_mean"] = hand_count ? conf_sum / hand_count : 0.0;
    st["finger_confidence"] = hand_frames ? finger_sum / hand_frames : 0.0;
    st["visible_fraction"] = expected ? double(visible) / expected : 0.0;
    st["jitter"] = jit_n ? jit_sum / jit_n : -1.0;
    st["accel"] = acc_n ? acc_sum / acc_n : -1.0;
    st["hand_sharpness"] = hand_frames ? hand_sharp_sum / hand_frames : 0.0;
    st["body_sharpness"] = hand_frames ? body_sharp_sum / hand_frames : 0.0;
    st["sharpness_ratio"] = body_sharp_sum > 0 ? hand_sharp_sum / body_sharp_sum : -1.0;
    rescore(out, cfg);
    return out;
}

void rescore(CandidateScore& s, const ScoreConfig& cfg) {
    for (auto& f : s.frames) f.score = frame_score(f, cfg);
    auto& st = s.stats;
    const double jit = stat(s, "jitter"), acc = stat(s, "accel"), ratio = stat(s, "sharpness_ratio");
    st["s_confidence"] = cfg.confidence(std::max(stat(s, "confidence_mean"), 0.0));
    st["s_finger"] = cfg.finger(std::max(stat(s, "finger_confidence"), 0.0));
    st["s_visibility"] = cfg.visibility(std::max(stat(s, "visible_fraction"), 0.0));
    st["s_jitter"] = jit >= 0 ? cfg.jitter(jit) : -1.0;
    st["s_accel"] = acc >= 0 ? cfg.accel(acc) : -1.0;
    st["s_sharpness"] = ratio >= 0 ? cfg.sharpness(ratio) : -1.0;
    s.score = stat(s, "hand_frames") > 0 ? combine({{cfg.w_confidence, st["s_confidence"]},
                                                    {cfg.w_finger, st["s_finger"]},
                                                    {cfg.w_visibility, st["s_visibility"]},
                                                    {cfg.w_jitter, st["s_jitter"]},
                                                    {cfg.w_accel, st["s_accel"]},
                                                    {cfg.w_sharpness, st["s_sharpness"]}})
                                         : 0.0;
    s.pass = s.score >= cfg.threshold;
}

CandidateScore score_row(const Manifest& m, const ManifestRow& row, const ScoreConfig& cfg) {
    const std::string who = m.path.u8string() + ": row '" + row.id + "'";
    if (row.video.empty()) throw DataError(who + ": no video (the `video` column is absent or blank)");
    if (row.keypoints.empty())
        throw DataError(who +
                        ": no keypoints (the `keypoints` column is absent or blank); hint: run DWPose on "
                        "the candidate videos first");
    std::vector<cv::Mat> frames;
    pose::PoseSequence kp;
    try {
        frames = media::read_frames_bgr(row.video);
    } catch (const std::exception& e) {
        throw DataError(who + ": video " + row.video.u8string() + ": " + e.what());
    }
    try {
        kp = pose::read_keypoints(row.keypoints);
    } catch (const std::exception& e) {
        throw DataError(who + ": keypoints " + row.keypoints.u8string() + ": " + e.what());
    }
    try {
        return score_candidate(row.id, row.get("group"), frames, kp, cfg);
    } catch (const DataError& e) {
        throw DataError(who + " (" + row.video.u8string() + "): " + e.what());
    }
}

std::vector<CandidateScore> score_manifest(const Manifest& m, const ScoreConfig& cfg) {
    cfg.check();
    std::vector<CandidateScore> out;
    out.reserve(m.rows.size());
    ProgressOptions popts;
    popts.unit = "videos";
    Progress progress("score", static_cast<int64_t>(m.rows.size()), popts);
    for (const auto& row : m.rows) {
        out.push_back(score_row(m, row, cfg));
        progress.advance(1, "score=" + std::to_string(out.back().score).substr(0, 5));
    }
    progress.finish();
    const auto passed = std::count_if(out.begin(), out.end(), [](const CandidateScore& c) { return c.pass; });
    spdlog::info("scored {} candidates: {} pass at threshold {}", out.size(), passed, cfg.threshold);
    return out;
}

}  // namespace ipa::curate
