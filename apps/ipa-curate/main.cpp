// ipa-curate: build, score, review and select preference candidates.
//   ipa-curate synth --out DIR --clips N --seed S [--candidates K --frames F --size HxW]
//   ipa-curate score --manifest M [--config C] --out DIR [--jobs N --fail-fast --restart]
//   ipa-curate pairs --scores S.json [--window W] [--config C] [--manifest M --out pairs.csv]
//   ipa-curate render-pose --keypoints K --out pose.mp4 [--size HxW --no-hands --no-face]
//   ipa-curate masks --keypoints K --out DIR [--shape box|hull --padding P --size HxW]
//   ipa-curate sheets --manifest M --scores S --out DIR [--frames N --tile-height H --jobs N --fail-fast --restart]
//   ipa-curate pose --video V | --manifest M --out DIR --det yolox_l.onnx --pose dw-ll_ucoco_384.onnx
// score and sheets go past bad rows (recorded in the outputs), resume from their progress file
// and exit 7 when a row failed, 130 when interrupted (ipa/curate/batch.h).
//   ipa-curate index --manifest M --scores S [--sheets DIR] [--decisions D] --out index.html
//   ipa-curate mark ID good|bad|skip|undo --manifest M --decisions D [--note TEXT]
//   ipa-curate review --manifest M --scores S --decisions D [--sheets DIR]
//   ipa-curate select --manifest M --decisions D [--scores S --min-score X] --out train.csv
//   ipa-curate serve --manifest M --scores S --decisions D [--sheets DIR --host H --port P --allow-remote]

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "ipa/core/error.h"
#include "ipa/core/logging.h"
#include "ipa/core/run_context.h"
#include "ipa/curate/batch.h"
#include "ipa/curate/manifest.h"
#include "ipa/curate/pairs.h"
#include "ipa/curate/review/contact_sheet.h"
#include "ipa/curate/review/decisions.h"
#include "ipa/curate/review/index_html.h"
#include "ipa/curate/review/pose_files.h"
#include "ipa/curate/review/review_loop.h"
#include "ipa/curate/review/select.h"
#include "ipa/curate/review/serve.h"
#include "ipa/curate/score.h"
#include "ipa/curate/synth.h"
#include "pose_cmd.h"

namespace review = ipa::curate::review;

namespace {

int fail(const std::exception& e) { return ipa::report_cli_error("ipa-curate", e); }

std::string default_reviewer() {
    const char* u = std::getenv("USER");
    return u ? u : "";
}

ipa::curate::ScoreConfig score_config(const std::string& path) {
    return path.empty() ? ipa::curate::ScoreConfig{} : ipa::curate::ScoreConfig::from_yaml(path);
}

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop = true; }

/// SIGINT/SIGTERM let the rows in flight finish (a second one kills at once).
void install_stop_handler(ipa::curate::BatchOptions& opts) {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    opts.stop = [] { return g_stop.load(); };
}

void add_batch_options(CLI::App* cmd, ipa::curate::BatchOptions& opts) {
    cmd->add_option("--jobs", opts.jobs, "rows in parallel (default: hardware threads)")->check(CLI::NonNegativeNumber);
    cmd->add_flag("--fail-fast", opts.fail_fast, "stop at the first bad row (exit code of its error)");
    cmd->add_flag("--restart", opts.restart, "ignore the progress file of an earlier run; redo every row");
}

/// The rows `ipa-curate score` could not score have no score, so the verbs reading
/// scores.json leave them out: say so, naming them, rather than drop them silently.
void note_failed_rows(const std::string& scores) {
    if (scores.empty()) return;
    const auto failed = ipa::curate::read_score_failures(scores);
    if (failed.empty()) return;
    std::string ids;
    for (std::size_t i = 0; i < failed.size() && i < 5; ++i) ids += (i ? ", " : "") + failed[i].id;
    if (failed.size() > 5) ids += fmt::format(" and {} more", failed.size() - 5);
    std::cerr << fmt::format(
        "note: {} candidate(s) in {} failed scoring and have no score: {} (reasons in its 'failed' list and in "
        "failures.csv beside it; rerun `ipa-curate score` after fixing them)\n",
        failed.size(), scores, ids);
}

/// Summary, failures and the exit code of a batch verb.
int batch_exit(const ipa::curate::BatchReport& b, const std::string& out) {
    std::cout << b.summary() << "\n";
    const auto failures = b.failures();
    constexpr std::size_t kShown = 20;
    for (std::size_t i = 0; i < std::min(failures.size(), kShown); ++i)
        std::cout << fmt::format("  failed {}: {}\n", failures[i].id, failures[i].reason);
    if (failures.size() > kShown) std::cout << fmt::format("  ... {} more\n", failures.size() - kShown);
    if (b.interrupted) {
        std::cout << "interrupted: rerun the same command to resume (finished rows are kept)\n";
        return ipa::curate::kExitInterrupted;
    }
    if (!failures.empty()) std::cout << fmt::format("{} failed rows listed in {}/failures.csv\n", failures.size(), out);
    return failures.empty() ? 0 : ipa::curate::kExitRowsFailed;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ipa-curate: build, score, review and select preference candidates"};
    app.require_subcommand(1);
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "trace|debug|info|warn|error");

    std::string out, manifest, scores, config, decisions, keypoints, sheets_dir, size, note,
        reviewer = default_reviewer();

    ipa::curate::SynthOptions synth_opts;
    auto* synth = app.add_subcommand("synth", "Write a small synthetic candidate set with known hand defects");
    synth->add_option("--out", out, "output directory")->required();
    synth->add_option("--clips", synth_opts.clips, "driving clips");
    synth->add_option("--seed", synth_opts.seed, "random seed");
    synth->add_option("--candidates", synth_opts.candidates, "candidates per clip");
    synth->add_option("--frames", synth_opts.frames, "frames per video");
    synth->add_option("--size", size, "HEIGHTxWIDTH (default 256x256)");
    synth->add_option("--fps", synth_opts.fps, "frames per second");

    auto* score = app.add_subcommand("score", "Score every candidate (hand confidence, visibility, sharpness, jitter)");
    score->add_option("--manifest", manifest, "candidate manifest (CSV)")->required();
    score->add_option("--config", config, "YAML with a `score:` section (default: built-in weights)");
    score->add_option("--out", out, "output directory for scores.csv and scores.json")->required();
    ipa::curate::BatchOptions batch_opts;
    add_batch_options(score, batch_opts);

    ipa::curate::PairStatsOptions pair_opts;
    auto* pairs = app.add_subcommand("pairs", "Pair statistics over candidates of the same clip (how many DPO pairs)");
    pairs->add_option("--scores", scores, "scores.json")->required();
    pairs->add_option("--window", pair_opts.window, "frames per window");
    pairs->add_option("--config", config, "YAML with a `score:` section (thresholds)");
    std::string pairs_out;
    pairs->add_option("--manifest", manifest, "candidate manifest (CSV): needed with --out");
    pairs->add_option("--out", pairs_out,
                      "write the strict pairs as a DPO training manifest (CSV; data.manifest of loss.kind dpo)");

    review::RenderPoseFileOptions render_opts;
    auto* render = app.add_subcommand("render-pose", "Render keypoints to a pose video (DWPose drawing)");
    render->add_option("--keypoints", keypoints, "OpenPose JSON directory or .jsonl")->required();
    render->add_option("--out", out, "video file (.mp4 ...) or a directory of PNG frames")->required();
    render->add_option("--size", size, "HEIGHTxWIDTH (default: the keypoints' canvas)");
    render->add_option("--fps", render_opts.fps, "frames per second");
    render->add_flag("!--no-hands", render_opts.render.hands, "do not draw hands");
    render->add_flag("!--no-face", render_opts.render.face, "do not draw the face");

    review::MaskFilesOptions mask_opts;
    std::string shape = "box";
    auto* masks = app.add_subcommand("masks", "Hand masks: a mask video and the latent mask (safetensors)");
    masks->add_option("--keypoints", keypoints, "OpenPose JSON directory or .jsonl")->required();
    masks->add_option("--out", out, "output directory")->required();
    masks->add_option("--shape", shape, "box | hull");
    masks->add_option("--padding", mask_opts.mask.padding, "padding per side, fraction of the hand size");
    masks->add_option("--size", size, "HEIGHTxWIDTH (default: the keypoints' canvas)");
    masks->add_option("--fps", mask_opts.fps, "frames per second of the mask video");

    review::SheetOptions sheet_opts;
    auto* sheets = app.add_subcommand("sheets", "One contact sheet (PNG) per candidate");
    sheets->add_option("--manifest", manifest, "candidate manifest")->required();
    sheets->add_option("--scores", scores, "scores.json")->required();
    sheets->add_option("--out", out, "output directory")->required();
    sheets->add_option("--frames", sheet_opts.frames, "sampled frames per sheet");
    sheets->add_option("--tile-height", sheet_opts.tile_height, "height of each frame tile (px)");
    add_batch_options(sheets, batch_opts);

    auto* index = app.add_subcommand("index", "A static HTML page over the candidates (opens from disk)");
    index->add_option("--manifest", manifest, "candidate manifest")->required();
    index->add_option("--scores", scores, "scores.json")->required();
    index->add_option("--sheets", sheets_dir, "contact sheet directory");
    index->add_option("--decisions", decisions, "decisions log");
    index->add_option("--out", out, "HTML file")->required();

    std::string mark_id, mark_word;
    auto* mark = app.add_subcommand("mark", "Record one decision (appended to the decisions log)");
    mark->add_option("id", mark_id, "candidate id")->required();
    mark->add_option("decision", mark_word, "good | bad | skip | undo")->required();
    mark->add_option("--manifest", manifest, "candidate manifest (ids are checked)")->required();
    mark->add_option("--decisions", decisions, "decisions log (created when missing)")->required();
    mark->add_option("--note", note, "free text");
    mark->add_option("--reviewer", reviewer, "who decided (default: $USER)");

    auto* rev = app.add_subcommand("review", "Interactive review: g/b/s per candidate, n note, u undo, q quit");
    rev->add_option("--manifest", manifest, "candidate manifest")->required();
    rev->add_option("--scores", scores, "scores.json")->required();
    rev->add_option("--decisions", decisions, "decisions log (created when missing)")->required();
    rev->add_option("--sheets", sheets_dir, "contact sheet directory (paths are printed)");
    rev->add_option("--reviewer", reviewer, "who decides (default: $USER)");

    std::optional<double> min_score;
    auto* sel = app.add_subcommand("select", "Write the training manifest: candidates marked good");
    sel->add_option("--manifest", manifest, "candidate manifest")->required();
    sel->add_option("--decisions", decisions, "decisions log")->required();
    sel->add_option("--scores", scores, "scores.json (for --min-score)");
    sel->add_option("--min-score", min_score, "keep good candidates with score >= this");
    sel->add_option("--out", out, "training manifest (CSV)")->required();

    review::ServeOptions serve_opts;
    auto* serve =
        app.add_subcommand("serve", "Review in the browser: a local web page, keys g/b/s/u/n mark candidates");
    serve->add_option("--manifest", manifest, "candidate manifest")->required();
    serve->add_option("--scores", scores, "scores.json")->required();
    serve->add_option("--decisions", decisions, "decisions log (created when missing)")->required();
    serve->add_option("--sheets", sheets_dir, "contact sheet directory");
    serve->add_option("--host", serve_opts.host, "address to listen on (default 127.0.0.1)");
    serve->add_option("--port", serve_opts.port, "port (default 0: any free port)")->check(CLI::Range(0, 65535));
    serve->add_flag("--allow-remote", serve_opts.allow_remote, "allow a --host other machines can reach");
    serve->add_option("--reviewer", reviewer, "who decides (default: $USER)");

    auto& pose_cmd = ipa_curate_app::add_pose_command(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        ipa::log::init(0, log_level);
        ipa::init_torch_threads();  // one per core (OMP_NUM_THREADS when set), as every ipa tool
        if (*pose_cmd.cmd) return ipa_curate_app::run_pose_command(pose_cmd, install_stop_handler, batch_exit);
        if (*synth) {
            if (!size.empty()) std::tie(synth_opts.height, synth_opts.width) = review::parse_size(size, "--size");
            const auto r = ipa::curate::synth_dataset(out, synth_opts);
            std::cout << fmt::format("wrote {} ({} clips, {} candidates)\n", r.manifest.string(), r.clips,
                                     r.candidates);
            for (const auto& [defect, n] : r.defects) std::cout << fmt::format("  {:<16} {}\n", defect, n);
        } else if (*score) {
            const auto cfg = score_config(config);
            install_stop_handler(batch_opts);
            const auto r = ipa::curate::score_batch(ipa::curate::read_manifest(manifest), cfg, out, batch_opts);
            if (!r.batch.interrupted) {
                int64_t pass = 0;
                for (const auto& c : r.scores) pass += c.pass ? 1 : 0;
                std::cout << fmt::format(
                    "scored {} candidates, {} pass (threshold {})\nwrote {}/scores.csv and {}/scores.json\n",
                    r.scores.size(), pass, cfg.threshold, out, out);
            }
            return batch_exit(r.batch, out);
        } else if (*pairs) {
            const auto s = ipa::curate::read_scores(scores);
            note_failed_rows(scores);
            const auto cfg = score_config(config);
            std::cout << ipa::curate::format_pair_stats(ipa::curate::pair_statistics(s, cfg, pair_opts));
            if (!pairs_out.empty()) {
                if (manifest.empty()) throw ipa::ConfigError("pairs --out needs --manifest (the candidates' paths)");
                const auto strict = ipa::curate::strict_pairs(s, cfg, pair_opts);
                ipa::curate::write_manifest(
                    pairs_out, ipa::curate::pair_manifest(strict, ipa::curate::read_manifest(manifest), pairs_out));
                std::cout << fmt::format("wrote {} ({} winner/loser pairs of {} frames)\n", pairs_out, strict.size(),
                                         pair_opts.window);
            }
        } else if (*render) {
            if (!size.empty()) render_opts.size = review::parse_size(size, "--size");
            const auto r = review::render_pose_file(keypoints, out, render_opts);
            std::cout << fmt::format("wrote {} ({} frames, {}x{})\n", out, r.frames, r.height, r.width);
        } else if (*masks) {
            mask_opts.mask.shape = review::parse_mask_shape(shape);
            if (!size.empty()) mask_opts.size = review::parse_size(size, "--size");
            const auto r = review::write_hand_mask_files(keypoints, out, mask_opts);
            std::cout << fmt::format("wrote {} ({} frames, {}x{}, {:.2f}% hand pixels)\nwrote {} (hand_mask {})\n",
                                     r.written[0].string(), r.frames, r.height, r.width, 100 * r.hand_fraction,
                                     r.written[1].string(), fmt::join(r.latent_shape, "x"));
        } else if (*sheets) {
            install_stop_handler(batch_opts);
            note_failed_rows(scores);
            const auto r = review::sheets_batch(ipa::curate::read_manifest(manifest), ipa::curate::read_scores(scores),
                                                out, sheet_opts, batch_opts);
            if (!r.batch.interrupted) std::cout << fmt::format("wrote {} contact sheets to {}\n", r.written, out);
            return batch_exit(r.batch, out);
        } else if (*index) {
            review::IndexOptions iopts;
            if (!sheets_dir.empty()) iopts.sheets_dir = sheets_dir;
            std::optional<review::DecisionLog> log;
            if (!decisions.empty()) log = review::DecisionLog::read(decisions);
            iopts.decisions = log ? &*log : nullptr;
            iopts.failures = ipa::curate::read_score_failures(scores);
            note_failed_rows(scores);
            review::write_index_html(out, ipa::curate::read_manifest(manifest), ipa::curate::read_scores(scores),
                                     iopts);
            std::cout << "wrote " << out << "\n";
        } else if (*mark) {
            const auto r = review::mark_candidate(manifest, decisions, mark_id,
                                                  review::parse_decision(mark_word, "command line"), note, reviewer);
            std::cout << fmt::format("{} {} -> {}\n", r.id, review::to_string(r.decision), decisions);
        } else if (*rev) {
            const auto m = ipa::curate::read_manifest(manifest);
            const auto s = ipa::curate::read_scores(scores);
            note_failed_rows(scores);
            auto log = review::DecisionLog::open(decisions);
            review::ReviewOptions ropts;
            if (!sheets_dir.empty()) ropts.sheets_dir = sheets_dir;
            ropts.reviewer = reviewer;
            review::ReviewSummary summary;
            {
                auto keys = review::make_key_source(STDIN_FILENO, std::cin);  // raw mode ends with this scope
                summary = review::run_review(m, s, log, *keys, std::cout, ropts);
            }
            std::cout << review::format_review_summary(summary, decisions);
        } else if (*sel) {
            note_failed_rows(scores);
            review::SelectOptions sopts;
            sopts.min_score = min_score;
            const auto r = review::select_training(
                manifest, decisions, scores.empty() ? std::nullopt : std::optional<std::filesystem::path>(scores),
                sopts, out);
            std::cout << review::format_select_report(r);
        } else if (*serve) {
            review::check_bind_host(serve_opts.host, serve_opts.allow_remote);  // before reading anything
            note_failed_rows(scores);
            if (!sheets_dir.empty()) serve_opts.sheets_dir = sheets_dir;
            serve_opts.reviewer = reviewer;
            review::run_serve(manifest, scores, decisions, serve_opts, std::cout);
        }
        return 0;
    } catch (const std::exception& e) {
        return fail(e);
    }
}
