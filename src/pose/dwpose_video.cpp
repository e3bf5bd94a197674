// `ipa-curate pose` over a video and over a manifest (dwpose_video.h).

#include "ipa/pose/dwpose_video.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <opencv2/imgproc.hpp>

#include "ipa/core/error.h"
#include "ipa/media/frames.h"

namespace ipa::pose::dwpose {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

std::string VideoPoseReport::stage_summary() const {
    return fmt::format("decode {:.2f} s, detector {:.2f} s, pose {:.2f} s, write {:.2f} s", decode_seconds,
                       detect_seconds, pose_seconds, write_seconds);
}

void VideoPoseReport::add(const VideoPoseReport& o) {
    frames += o.frames, frames_with_people += o.frames_with_people, people += o.people;
    seconds += o.seconds, decode_seconds += o.decode_seconds, detect_seconds += o.detect_seconds;
    pose_seconds += o.pose_seconds, write_seconds += o.write_seconds;
}

VideoPoseReport pose_video(const Estimator& est, const fs::path& video, const fs::path& out_dir,
                           const ProgressOptions& progress) {
    const auto t_decode = std::chrono::steady_clock::now();
    std::error_code ec;
    if (!fs::exists(video, ec))
        throw DataError(fmt::format("'{}': no such video file or frame directory", video.string()));
    const std::vector<cv::Mat> frames = media::read_frames_bgr(video);
    if (frames.empty()) throw DataError(fmt::format("'{}': the video has no frames", video.string()));
    VideoPoseReport r;
    r.decode_seconds = seconds_since(t_decode);
    r.frames = static_cast<int64_t>(frames.size());
    r.width = frames[0].cols, r.height = frames[0].rows;
    PoseSequence seq;
    ProgressOptions popts = progress;
    if (popts.unit == "it") popts.unit = "frames";
    Progress bar(video.filename().string(), r.frames, popts);
    for (std::size_t i = 0; i < frames.size(); ++i) {
        cv::Mat rgb;
        if (frames[i].channels() == 3)
            cv::cvtColor(frames[i], rgb, cv::COLOR_BGR2RGB);
        else if (frames[i].channels() == 1)
            cv::cvtColor(frames[i], rgb, cv::COLOR_GRAY2RGB);
        else
            cv::cvtColor(frames[i], rgb, cv::COLOR_BGRA2RGB);
        if (rgb.depth() != CV_8U) throw DataError(fmt::format("'{}': frame {} is not 8-bit", video.string(), i));
        const auto t0 = std::chrono::steady_clock::now();
        FrameResult fr;
        try {
            fr = est.run(rgb);
        } catch (const std::exception& e) {
            throw DataError(fmt::format("'{}': frame {}: {}", video.string(), i, e.what()));
        }
        r.seconds += seconds_since(t0);
        r.detect_seconds += fr.detect_seconds;
        r.pose_seconds += fr.pose_seconds;
        r.people += static_cast<int64_t>(fr.frame.people.size());
        r.frames_with_people += fr.frame.people.empty() ? 0 : 1;
        seq.frames.push_back(std::move(fr.frame));
        bar.advance(1, fmt::format("people={}", r.people));
    }
    bar.finish();
    // Write beside the target, then swap it in: a killed run never leaves a partial directory
    // that reads as complete.
    const auto t_write = std::chrono::steady_clock::now();
    const fs::path tmp = out_dir.parent_path() / (out_dir.filename().string() + ".partial");
    fs::remove_all(tmp);
    write_keypoints_dir(tmp, seq);
    fs::remove_all(out_dir);
    fs::rename(tmp, out_dir);
    r.write_seconds = seconds_since(t_write);
    return r;
}

ManifestPoseReport pose_manifest(const curate::Manifest& m, const Estimator& est, const fs::path& out_dir,
                                 const fs::path& manifest_out, const std::string& models_fingerprint,
                                 curate::BatchOptions opts) {
    ManifestPoseReport out;
    opts.verb = "pose";
    if (opts.progress_file.empty()) opts.progress_file = out_dir / "pose.progress.jsonl";
    curate::Manifest lacking = m;  // the rows without keypoints: the ones this run computes
    lacking.rows.clear();
    for (const auto& row : m.rows) {
        if (row.keypoints.empty())
            lacking.rows.push_back(row);
        else
            ++out.already;
    }
    fs::create_directories(out_dir);
    // The manifest's keypoints column: absolute here (write_manifest stores it relative to the
    // manifest's own directory, which is how read_manifest resolves it), so a relative --out
    // given from any working directory ends up pointing at the right place.
    const fs::path out_abs = fs::absolute(out_dir).lexically_normal();
    std::mutex mu;
    curate::BatchTask task;
    task.fingerprint = [&](const curate::ManifestRow& row) {
        return curate::hash_hex(fmt::format("pose/1|id={}|video={}|{}|models={}|out={}", row.id, row.video.string(),
                                            curate::file_fingerprint(row.video), models_fingerprint,
                                            (out_abs / row.id).string()));
    };
    task.run = [&](const curate::ManifestRow& row) {
        if (row.video.empty()) throw DataError(fmt::format("row '{}': no video to estimate poses on", row.id));
        ProgressOptions silent;
        silent.mode = ProgressOptions::Mode::silent;
        const fs::path dir = out_abs / row.id;
        const auto r = pose_video(est, row.video, dir, silent);
        {
            std::lock_guard<std::mutex> lock(mu);
            out.total.add(r);
        }
        return json{{"keypoints", dir.string()},
                    {"frames", r.frames},
                    {"frames_with_people", r.frames_with_people},
                    {"people", r.people},
                    {"width", r.width},
                    {"height", r.height},
                    {"seconds", r.seconds},
                    {"decode_seconds", r.decode_seconds},
                    {"detect_seconds", r.detect_seconds},
                    {"pose_seconds", r.pose_seconds},
                    {"write_seconds", r.write_seconds}};
    };
    task.reusable = [](const curate::ManifestRow&, const json& result) {
        std::error_code ec;
        return result.contains("keypoints") && fs::is_directory(result["keypoints"].get<std::string>(), ec);
    };
    out.batch = curate::run_batch(lacking, task, opts);
    curate::write_failures_csv(out_dir / "failures.csv", out.batch.failures());
    if (out.batch.interrupted) return out;
    curate::Manifest filled = m;
    std::size_t k = 0;
    for (auto& row : filled.rows) {
        if (!row.keypoints.empty()) continue;
        const auto& o = out.batch.rows.at(k++);
        if (o.status == curate::RowStatus::ok) row.keypoints = o.result["keypoints"].get<std::string>();
    }
    if (std::find(filled.columns.begin(), filled.columns.end(), "keypoints") == filled.columns.end())
        filled.columns.push_back("keypoints");
    curate::write_manifest(manifest_out, filled);
    out.manifest = manifest_out;
    return out;
}

}  // namespace ipa::pose::dwpose
