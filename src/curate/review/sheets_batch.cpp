// `ipa-curate sheets` over a whole manifest: failures recorded, resumable, rows in parallel.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>

#include "ipa/core/error.h"
#include "ipa/curate/review/contact_sheet.h"
#include "ipa/curate/review/ranking.h"

namespace ipa::curate::review {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string options_fingerprint(const SheetOptions& o) {
    return fmt::format("frames={};tile={};worst={};hand={},{},{},{};render={},{},{},{},{},{}", o.frames, o.tile_height,
                       o.include_worst, static_cast<int>(o.hand.shape), o.hand.padding, o.hand.threshold,
                       o.hand.min_points, o.render.body, o.render.hands, o.render.face, o.render.threshold,
                       static_cast<int>(o.render.style), o.render.mimic_ref_short_side);
}

/// Everything a row's sheet depends on: every column (the header shows them), its files,
/// its score and the options.
std::string row_fingerprint(const ManifestRow& row, const CandidateScore* score, const std::string& options) {
    std::string s =
        fmt::format("sheets/1|id={}|video={}|{}|keypoints={}|{}|prompt={}", row.id, row.video.string(),
                    file_fingerprint(row.video), row.keypoints.string(), file_fingerprint(row.keypoints), row.prompt);
    for (const auto& [k, v] : row.extra) s += "|" + k + "=" + v;
    s += "|score=" + (score ? score_to_json(*score).dump() : std::string("none")) + "|" + options;
    return hash_hex(s);
}

}  // namespace

SheetsReport sheets_batch(const Manifest& m, const std::vector<CandidateScore>& scores, const fs::path& out_dir,
                          const SheetOptions& opts, BatchOptions batch) {
    const auto ranked = rank_candidates(m, scores);  // checks the scores belong to this manifest
    std::map<std::string, const CandidateScore*> score_of;
    for (const auto& c : ranked) score_of[c.row->id] = c.score;
    batch.verb = "sheets";
    if (batch.progress_file.empty()) batch.progress_file = out_dir / "sheets.progress.jsonl";
    fs::create_directories(out_dir);
    const std::string options = options_fingerprint(opts);
    BatchTask task;
    task.fingerprint = [&](const ManifestRow& row) { return row_fingerprint(row, score_of.at(row.id), options); };
    task.run = [&](const ManifestRow& row) {
        const auto sheet = make_contact_sheet(row, score_of.at(row.id), opts);
        const std::string name = sheet_filename(row.id);
        write_png_atomic(out_dir / name, sheet.image);
        return json{{"file", name}};
    };
    task.reusable = [&](const ManifestRow&, const json& result) {
        return result.contains("file") && result["file"].is_string() &&
               fs::exists(out_dir / result["file"].get<std::string>());
    };
    SheetsReport rep;
    rep.dir = out_dir;
    rep.batch = run_batch(m, task, batch);
    if (rep.batch.interrupted) return rep;
    std::map<std::string, const RowOutcome*> outcome;
    for (const auto& r : rep.batch.rows) outcome[r.id] = &r;
    for (const auto& c : ranked)
        if (outcome.at(c.row->id)->status == RowStatus::ok) rep.files.push_back(out_dir / sheet_filename(c.row->id));
    rep.written = static_cast<int64_t>(rep.files.size());
    write_failures_csv(out_dir / "failures.csv", rep.batch.failures());
    spdlog::info("{}", rep.batch.summary());
    return rep;
}

}  // namespace ipa::curate::review
