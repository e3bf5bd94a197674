// ipa-eval: metrics of generated vs ground-truth videos.
//   ipa-eval frames --gen DIR|MANIFEST.csv [--gt DIR] [--keypoints DIR] --out REPORT_DIR [--ssim disco|gaussian]
//                   [--lpips-net alex|vgg --lpips-backbone alexnet-owt-7be5be79.pth --lpips-weights alex.pth]
//   ipa-eval fid --gen DIR|MANIFEST.csv [--gt DIR] [--inception pt_inception-2015-12-05-6726825d.pth]
//                [--fid-vid-weights resnet-50-kinetics.pth] [--fvd-i3d i3d_torchscript.pt]
//                [--fvd-disco-i3d i3d_pretrained_400.pt] --out REPORT_DIR   (at least one network)
//   ipa-eval hands --keypoints DIR [--gen DIR] | --gen MANIFEST.csv --out REPORT_DIR [--config score.yaml]
//   ipa-eval compare A/metrics.json B/metrics.json [--charts DIR]

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "ipa/core/error.h"
#include "ipa/core/logging.h"
#include "ipa/core/run_context.h"
#include "ipa/eval/evaluate.h"
#include "ipa/eval/fid_vid.h"
#include "ipa/eval/fvd.h"
#include "ipa/eval/fvd_disco.h"
#include "ipa/eval/hands.h"
#include "ipa/eval/lpips.h"
#include "ipa/eval/report.h"

namespace fs = std::filesystem;

namespace {

std::vector<ipa::eval::VideoPair> pairs_of(const std::string& gen, const std::string& gt, const std::string& kp) {
    if (fs::is_regular_file(gen)) {
        if (!gt.empty()) throw CLI::ValidationError("--gt", "not used with a manifest (it has a ground_truth column)");
        return ipa::eval::pairs_from_manifest(gen);
    }
    if (gt.empty()) throw CLI::ValidationError("--gt", "required when --gen is a folder");
    return ipa::eval::pairs_from_dirs(gen, gt, kp);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "ipa-eval: PSNR/SSIM/LPIPS (whole frames and hand crops), FID, FID-VID and FVD of generated vs ground-truth "
        "videos"};
    app.require_subcommand(1);
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "trace|debug|info|warn|error");

    std::string gen, gt, kp, out, inception, fvd_i3d, fvd_disco_i3d, fid_vid_weights, ssim_setting = "disco", a_json,
                                                                                      b_json;
    std::string lpips_net = "alex", lpips_backbone, lpips_weights;
    ipa::eval::FrameEvalOptions fopts;
    ipa::eval::FidOptions fid_opts;
    ipa::eval::FvdOptions fvd_opts;
    ipa::eval::FidVidOptions fid_vid_opts;

    auto* frames =
        app.add_subcommand("frames", "PSNR, SSIM (and LPIPS) per frame, and on hand crops of the ground truth");
    frames
        ->add_option("--gen", gen,
                     "folder of generated videos, or a CSV manifest (id, generated, ground_truth, "
                     "keypoints)")
        ->required();
    frames->add_option("--gt", gt, "folder of ground-truth videos (matched by name)");
    frames->add_option("--keypoints", kp, "folder of ground-truth keypoints (<id>/ or <id>.jsonl): hand metrics");
    frames->add_option("--out", out, "report folder")->required();
    frames->add_option("--ssim", ssim_setting, "disco (gray, 7x7 uniform; default) | gaussian (sigma 1.5, RGB)");
    frames->add_option("--hand-min-side", fopts.hands.min_side, "smallest hand crop side (px)");
    frames->add_flag("--resize-generated", fopts.resize_generated,
                     "resize generated frames to the ground truth's size (bilinear, as DisCo) instead of failing");
    frames->add_option("--lpips-net", lpips_net, "LPIPS trunk: alex (default, as the animation papers) | vgg");
    auto* lpips_bb =
        frames->add_option("--lpips-backbone", lpips_backbone,
                           "torchvision state dict of the trunk: alexnet-owt-7be5be79.pth | "
                           "vgg16-397923af.pth (LPIPS is computed when this and --lpips-weights are given)");
    auto* lpips_w = frames->add_option("--lpips-weights", lpips_weights,
                                       "lpips' lin layers: lpips/weights/v0.1/alex.pth | vgg.pth");
    lpips_bb->needs(lpips_w);
    lpips_w->needs(lpips_bb);

    auto* fid = app.add_subcommand(
        "fid",
        "Distribution metrics: frame FID with pytorch-fid's Inception (all frames pooled) "
        "and/or FID-VID with DisCo's 3D ResNet-50 and/or FVD with StyleGAN-V's I3D (16-frame clips) and/or DisCo's "
        "FVD (its I3D on whole videos)");
    fid->add_option("--gen", gen, "folder of generated videos, or a CSV manifest")->required();
    fid->add_option("--gt", gt, "folder of ground-truth videos");
    fid->add_option("--inception", inception, "pytorch-fid weights pt_inception-2015-12-05-6726825d.pth");
    fid->add_option("--fvd-i3d", fvd_i3d,
                    "StyleGAN-V's I3D TorchScript i3d_torchscript.pt: FVD (StyleGAN-V fvd2048_16f)");
    fid->add_option("--fvd-disco-i3d", fvd_disco_i3d,
                    "DisCo's I3D state dict i3d_pretrained_400.pt (zip torch.save; re-save a legacy file): DisCo's "
                    "FVD (fvd_disco), one feature per whole video");
    fid->add_option("--fid-vid-weights", fid_vid_weights,
                    "DisCo's 3D ResNet-50 resnet-50-kinetics.pth (zip torch.save; re-save the 2017 file): FID-VID");
    fid->add_option("--out", out, "report folder")->required();
    fid->add_option("--batch-size", fid_opts.batch_size, "frames per forward pass (FID)");
    fid->add_option("--fid-vid-batch-size", fid_vid_opts.batch_size, "16-frame segments per forward pass (FID-VID)");
    fid->add_option("--fvd-batch-size", fvd_opts.batch_size, "16-frame clips per forward pass (FVD)");
    fid->add_option("--device", fid_opts.device, "cpu | cuda | cuda:N");

    std::string hands_config;
    auto* hands = app.add_subcommand(
        "hands",
        "Hand metrics without ground truth: keypoint confidence and visibility of the hands in the generated "
        "videos (DWPose/OpenPose keypoints detected on them), with the curation scorer's signals");
    hands->add_option("--keypoints", kp,
                      "folder of the generated videos' keypoints (<id>/ JSON folders or <id>.jsonl)");
    hands->add_option("--gen", gen,
                      "folder of the generated videos (matched by name; adds the sharpness signal and the curation "
                      "score), or a CSV manifest (id, keypoints[, generated])");
    hands->add_option("--out", out, "report folder")->required();
    hands->add_option("--config", hands_config,
                      "curation scoring YAML (score: point_threshold, min_points, ramps, weights); default: built-in");

    auto* cmp = app.add_subcommand("compare", "Side-by-side summary of two reports with deltas");
    cmp->add_option("a", a_json, "metrics.json A")->required();
    cmp->add_option("b", b_json, "metrics.json B")->required();
    std::string charts_dir;
    cmp->add_option("--charts", charts_dir, "also write per-video bar charts of A and B (compare_<metric>.png) here");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        ipa::log::init(0, log_level);
        ipa::init_torch_threads();  // one per core (OMP_NUM_THREADS when set), as every ipa tool
        if (*frames) {
            if (ssim_setting == "gaussian")
                fopts.ssim = ipa::eval::SsimOptions::gaussian();
            else if (ssim_setting != "disco")
                throw ipa::ConfigError("--ssim: expected disco or gaussian, got '" + ssim_setting + "'");
            const auto net = ipa::eval::parse_lpips_net(lpips_net);
            const auto pairs = pairs_of(gen, gt, kp);
            ipa::eval::Report rep;
            rep.ssim_setting = ssim_setting;
            if (!lpips_backbone.empty()) {
                fopts.lpips = ipa::eval::load_lpips(net, lpips_backbone, lpips_weights).ptr();
                rep.lpips_net = lpips_net;
            }
            rep.videos = ipa::eval::evaluate_frames(pairs, fopts);
            ipa::eval::write_report(out, rep);
            const auto s = ipa::eval::summarize(rep.videos);
            std::cout << fmt::format(
                "{} videos, {} frames: PSNR {:.3f}  SSIM {:.4f}{}  |  {} hand crops: PSNR-Hand {:.3f}  SSIM-Hand "
                "{:.4f}{}\nwrote {}/metrics.json, per_video.csv, per_frame.csv, index.html, chart_*.png\n",
                s.videos, s.frames, s.psnr, s.ssim, rep.lpips_net.empty() ? "" : fmt::format("  LPIPS {:.4f}", s.lpips),
                s.hand_crops, s.hand_psnr, s.hand_ssim,
                rep.lpips_net.empty() ? "" : fmt::format("  LPIPS-Hand {:.4f}", s.hand_lpips), out);
        } else if (*fid) {
            if (inception.empty() && fvd_i3d.empty() && fid_vid_weights.empty() && fvd_disco_i3d.empty())
                throw CLI::ValidationError("--inception / --fid-vid-weights / --fvd-i3d / --fvd-disco-i3d",
                                           "give at least one network (FID, FID-VID, FVD, DisCo's FVD)");
            const auto pairs = pairs_of(gen, gt, "");
            ipa::eval::Report rep;
            if (!inception.empty()) rep.fid = ipa::eval::evaluate_fid(pairs, inception, fid_opts);
            if (!fid_vid_weights.empty()) {
                fid_vid_opts.device = fid_opts.device;
                rep.fid_vid = ipa::eval::evaluate_fid_vid(pairs, fid_vid_weights, fid_vid_opts);
            }
            if (!fvd_i3d.empty()) {
                fvd_opts.device = fid_opts.device;
                rep.fvd = ipa::eval::evaluate_fvd(pairs, fvd_i3d, fvd_opts);
            }
            if (!fvd_disco_i3d.empty()) {
                ipa::eval::FvdDiscoOptions o;
                o.device = fid_opts.device;
                rep.fvd_disco = ipa::eval::evaluate_fvd_disco(pairs, fvd_disco_i3d, o);
            }
            ipa::eval::write_report(out, rep);
            if (rep.fid)
                std::cout << fmt::format("FID {:.4f} ({} generated, {} ground-truth frames{})\n", rep.fid->fid,
                                         rep.fid->generated_frames, rep.fid->ground_truth_frames,
                                         rep.fid->eps_offset_used ? "; singular product: eps added" : "");
            if (rep.fid_vid)
                std::cout << fmt::format("FID-VID {:.4f} ({} generated, {} ground-truth videos{})\n",
                                         rep.fid_vid->fid_vid, rep.fid_vid->generated_videos,
                                         rep.fid_vid->ground_truth_videos,
                                         rep.fid_vid->eps_offset_used ? "; singular product: eps added" : "");
            if (rep.fvd)
                std::cout << fmt::format("FVD {:.4f} ({} generated, {} ground-truth {}-frame clips{})\n", rep.fvd->fvd,
                                         rep.fvd->generated_clips, rep.fvd->ground_truth_clips, rep.fvd->num_frames,
                                         rep.fvd->eps_offset_used ? "; singular product: eps added" : "");
            if (rep.fvd_disco)
                std::cout << fmt::format("FVD-DisCo {:.4f} ({} generated, {} ground-truth videos{})\n",
                                         rep.fvd_disco->fvd, rep.fvd_disco->generated_videos,
                                         rep.fvd_disco->ground_truth_videos,
                                         rep.fvd_disco->eps_offset_used ? "; singular product: eps added" : "");
            std::cout << fmt::format("wrote {}/metrics.json, index.html\n", out);
        } else if (*hands) {
            std::vector<ipa::eval::HandEvalInput> inputs;
            if (!gen.empty() && fs::is_regular_file(gen)) {
                if (!kp.empty())
                    throw CLI::ValidationError("--keypoints", "not used with a manifest (it has a keypoints column)");
                inputs = ipa::eval::hand_inputs_from_manifest(gen);
            } else {
                if (kp.empty()) throw CLI::ValidationError("--keypoints", "required unless --gen is a manifest");
                inputs = ipa::eval::hand_inputs_from_dirs(kp, gen);
            }
            const auto cfg =
                hands_config.empty() ? ipa::curate::ScoreConfig{} : ipa::curate::ScoreConfig::from_yaml(hands_config);
            ipa::eval::Report rep;
            rep.hands = ipa::eval::evaluate_hands(inputs, cfg);
            ipa::eval::write_report(out, rep);
            const auto s = ipa::eval::summarize_hands(rep.hands);
            std::cout << fmt::format(
                "{} videos, {} frames, {} expected hands: visible {:.4f} (left {:.4f}, right {:.4f})  keypoint "
                "confidence {:.4f}  points detected {:.4f}  weakest finger {:.4f}\nwrote {}/metrics.json, "
                "per_video_hands.csv, index.html, chart_*.png\n",
                s.videos, s.frames, s.expected_hands, s.hands_visible, s.left_hand_visible, s.right_hand_visible,
                s.hand_confidence, s.hand_points_detected, s.finger_confidence, out);
        } else if (*cmp) {
            std::cout << ipa::eval::compare_reports(a_json, b_json);
            if (!charts_dir.empty())
                for (const auto& f : ipa::eval::write_compare_charts(a_json, b_json, charts_dir))
                    std::cout << "wrote " << f.string() << "\n";
        }
        return 0;
    } catch (const CLI::ValidationError& e) {
        std::cerr << "ipa-eval: error: " << e.what() << "\n";
        return static_cast<int>(ipa::ExitCode::usage);
    } catch (const std::exception& e) {
        return ipa::report_cli_error("ipa-eval", e);
    }
}
