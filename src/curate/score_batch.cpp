// `ipa-curate score` over a whole manifest: failures recorded, resumable, rows in parallel.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ipa/core/error.h"
#include "ipa/curate/score.h"

namespace ipa::curate {
namespace fs = std::filesystem;
using nlohmann::json;

std::string config_fingerprint(const ScoreConfig& c) {
    std::string s = fmt::format("threshold={};point_threshold={};min_points={};hand_padding={};", c.threshold,
                                c.point_threshold, c.min_points, c.hand_padding);
    s += fmt::format("w={},{},{},{},{},{};", c.w_confidence, c.w_finger, c.w_visibility, c.w_jitter, c.w_accel,
                     c.w_sharpness);
    for (const Ramp& r : {c.confidence, c.finger, c.visibility, c.jitter, c.accel, c.sharpness})
        s += fmt::format("{}>{};", r.bad, r.good);
    return s;
}

namespace {

/// Everything a row's score depends on: its fields, its files and the settings.
std::string row_fingerprint(const ManifestRow& row, const std::string& config) {
    std::string s = fmt::format("score/1|id={}|group={}|video={}|{}|keypoints={}|{}|{}", row.id, row.get("group"),
                                row.video.string(), file_fingerprint(row.video), row.keypoints.string(),
                                file_fingerprint(row.keypoints), config);
    return hash_hex(s);
}

}  // namespace

ScoreBatchResult score_batch(const Manifest& m, const ScoreConfig& cfg, const fs::path& out_dir, BatchOptions opts) {
    cfg.check();
    opts.verb = "score";
    if (opts.progress_file.empty()) opts.progress_file = out_dir / "scores.progress.jsonl";
    const std::string config = config_fingerprint(cfg);
    BatchTask task;
    task.fingerprint = [&](const ManifestRow& row) { return row_fingerprint(row, config); };
    task.run = [&](const ManifestRow& row) { return score_to_json(score_row(m, row, cfg)); };
    ScoreBatchResult out;
    out.batch = run_batch(m, task, opts);
    if (out.batch.interrupted) return out;
    for (const auto& r : out.batch.rows)
        if (r.status == RowStatus::ok)
            out.scores.push_back(score_from_json(r.result, opts.progress_file.string() + ": row '" + r.id + "'"));
    const auto failures = out.batch.failures();
    write_scores(out_dir, out.scores, failures);
    write_failures_csv(out_dir / "failures.csv", failures);
    const auto passed =
        std::count_if(out.scores.begin(), out.scores.end(), [](const CandidateScore& c) { return c.pass; });
    spdlog::info("{}; {} pass at threshold {}", out.batch.summary(), passed, cfg.threshold);
    return out;
}

}  // namespace ipa::curate
