#include "ipa/curate/review/contact_sheet.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "ipa/core/error.h"
#include "ipa/core/progress.h"
#include "ipa/curate/review/ranking.h"
#include "ipa/media/frames.h"

namespace ipa::curate::review {
namespace fs = std::filesystem;

namespace {

constexpr int kMargin = 8, kGap = 6, kCaption = 20, kLine = 22, kMinWidth = 520;
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr double kHeaderScale = 0.55, kCaptionScale = 0.42;
const cv::Scalar kBackground(30, 30, 30), kCellBackground(64, 64, 64), kWhite(235, 235, 235), kPass(80, 200, 80),
    kFail(60, 60, 230), kGray(170, 170, 170);

std::vector<pose::Keypoint> scaled(const std::vector<pose::Keypoint>& pts, double sx, double sy) {
    std::vector<pose::Keypoint> out = pts;
    for (auto& p : out) {
        p.x = static_cast<float>(p.x * sx);
        p.y = static_cast<float>(p.y * sy);
    }
    return out;
}

/// Words → lines no wider than `width` at the header font.
std::vector<std::string> wrap(const std::vector<std::string>& words, int width) {
    std::vector<std::string> lines;
    std::string cur;
    for (const auto& w : words) {
        const std::string next = cur.empty() ? w : cur + "   " + w;
        int base = 0;
        if (!cur.empty() && cv::getTextSize(next, kFont, kHeaderScale, 1, &base).width > width) {
            lines.push_back(cur);
            cur = w;
        } else {
            cur = next;
        }
    }
    if (!cur.empty()) lines.push_back(cur);
    return lines;
}

void put(cv::Mat& img, const std::string& text, cv::Point at, double scale, const cv::Scalar& color) {
    cv::putText(img, text, at, kFont, scale, color, 1, cv::LINE_AA);
}

/// Enlarges `crop` into the square `cell` (aspect kept, centred, nearest neighbour); returns
/// where it went.
cv::Rect place_crop(cv::Mat& sheet, const cv::Mat& crop, const cv::Rect& cell) {
    const double s = static_cast<double>(cell.width) / std::max(crop.cols, crop.rows);
    const int w = std::clamp(static_cast<int>(std::lround(crop.cols * s)), 1, cell.width);
    const int h = std::clamp(static_cast<int>(std::lround(crop.rows * s)), 1, cell.height);
    const cv::Rect dst(cell.x + (cell.width - w) / 2, cell.y + (cell.height - h) / 2, w, h);
    cv::Mat target = sheet(dst);
    cv::resize(crop, target, dst.size(), 0, 0, cv::INTER_NEAREST);
    return dst;
}

}  // namespace

std::vector<int64_t> sample_frame_indices(int64_t total, int n) {
    if (total <= 0) throw DataError("contact sheet: the video has no frames");
    if (n <= 0) throw ConfigError(fmt::format("contact sheet: frames must be >= 1, got {}", n));
    const int64_t k = std::min<int64_t>(total, n);
    std::vector<int64_t> out;
    for (int64_t i = 0; i < k; ++i) {
        out.push_back(k == 1 ? 0 : static_cast<int64_t>(std::llround(static_cast<double>(i) * (total - 1) / (k - 1))));
    }
    return out;
}

ContactSheet make_contact_sheet(const std::string& id, const std::vector<cv::Mat>& frames,
                                const pose::PoseSequence& poses, const CandidateScore* score, const ManifestRow* row,
                                const SheetOptions& opts) {
    if (frames.empty()) throw DataError(fmt::format("contact sheet of '{}': no frames", id));
    const int H = frames[0].rows, W = frames[0].cols;
    for (std::size_t t = 0; t < frames.size(); ++t) {
        if (frames[t].rows != H || frames[t].cols != W || frames[t].type() != CV_8UC3) {
            throw DataError(
                fmt::format("contact sheet of '{}': frame {} is {}x{} (type {}), frame 0 is {}x{} "
                            "(frames must share one size, 8-bit BGR)",
                            id, t, frames[t].rows, frames[t].cols, frames[t].type(), H, W));
        }
    }
    if (opts.tile_height < 16) throw ConfigError(fmt::format("contact sheet: tile_height {} < 16", opts.tile_height));
    ContactSheet out;
    SheetLayout& L = out.layout;
    L.frame_indices = sample_frame_indices(static_cast<int64_t>(frames.size()), opts.frames);

    std::map<int64_t, const FrameScore*> frame_score;
    if (score) {
        for (const auto& f : score->frames) frame_score[f.frame] = &f;
        const auto worst = std::min_element(score->frames.begin(), score->frames.end(),
                                            [](const FrameScore& a, const FrameScore& b) { return a.score < b.score; });
        if (worst != score->frames.end() && worst->frame >= 0 && worst->frame < static_cast<int64_t>(frames.size())) {
            L.worst_frame = worst->frame;
            auto& idx = L.frame_indices;
            if (opts.include_worst && std::find(idx.begin(), idx.end(), L.worst_frame) == idx.end()) {
                auto nearest = std::min_element(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
                    return std::llabs(a - L.worst_frame) < std::llabs(b - L.worst_frame);
                });
                *nearest = L.worst_frame;
                std::sort(idx.begin(), idx.end());
            }
        }
    }

    const int th = opts.tile_height;
    const int tw = std::max(16, static_cast<int>(std::lround(static_cast<double>(W) * th / H)));
    const int hc = tw / 2;  // hand cells are squares, two per column
    const int ncols = static_cast<int>(L.frame_indices.size());
    const int width = std::max(kMinWidth, 2 * kMargin + ncols * tw + (ncols - 1) * kGap);

    // Header text: id / score / pass, then group and labels, then stats (wrapped).
    std::vector<std::pair<std::string, cv::Scalar>> head;
    std::string first = id;
    std::vector<std::string> info, stats;
    if (score) {
        first += fmt::format("   score {}", format_number(score->score));
        if (!score->group.empty()) info.push_back("group " + score->group);
        for (const auto& [k, v] : main_stats(*score, 10)) stats.push_back(fmt::format("{} {}", k, format_number(v)));
    } else {
        first += "   no score";
    }
    if (row) {
        for (const auto& [k, v] : row->extra) {
            if (k != "group" || !score || score->group != v) info.push_back(k + " " + v);
        }
    }
    const int text_width = width - 2 * kMargin;
    std::vector<std::string> lines = wrap(info, text_width), stat_lines = wrap(stats, text_width);
    const int header_lines = 1 + static_cast<int>(lines.size() + stat_lines.size());
    L.header = cv::Rect(0, 0, width, kMargin + header_lines * kLine);
    const int y0 = L.header.height + kMargin;
    const int height = y0 + kCaption + 2 * th + 4 + hc + kMargin;
    out.image = cv::Mat(height, width, CV_8UC3, kBackground);
    cv::Mat& img = out.image;

    int y = kMargin + kLine - 6;
    put(img, first, {kMargin, y}, kHeaderScale, kWhite);
    if (score) {
        int base = 0;
        const int x = kMargin + cv::getTextSize(first + "   ", kFont, kHeaderScale, 1, &base).width;
        cv::putText(img, score->pass ? "PASS" : "FAIL", {x, y}, kFont, kHeaderScale, score->pass ? kPass : kFail, 2,
                    cv::LINE_AA);
    }
    for (const auto& l : lines) put(img, l, {kMargin, y += kLine}, kHeaderScale, kGray);
    for (const auto& l : stat_lines) put(img, l, {kMargin, y += kLine}, kHeaderScale, kWhite);

    for (int c = 0; c < ncols; ++c) {
        const int64_t t = L.frame_indices[c];
        const int x = kMargin + c * (tw + kGap);
        L.caption.emplace_back(x, y0, tw, kCaption);
        L.video.emplace_back(x, y0 + kCaption, tw, th);
        L.pose.emplace_back(x, y0 + kCaption + th + 2, tw, th);
        L.left_cell.emplace_back(x, y0 + kCaption + 2 * th + 4, hc, hc);
        L.right_cell.emplace_back(x + tw - hc, y0 + kCaption + 2 * th + 4, hc, hc);

        std::string cap = fmt::format("f{}", t);
        const auto fs_it = frame_score.find(t);
        if (fs_it != frame_score.end()) cap += " score " + format_number(fs_it->second->score);
        if (t == L.worst_frame) cap += " worst";
        put(img, cap, {x + 2, y0 + kCaption - 6}, kCaptionScale, t == L.worst_frame ? kFail : kWhite);

        cv::Mat vt = img(L.video.back());
        cv::resize(frames[static_cast<std::size_t>(t)], vt, vt.size(), 0, 0, cv::INTER_AREA);

        const bool has_pose = t < static_cast<int64_t>(poses.frames.size());
        const pose::PoseFrame empty;
        const pose::PoseFrame& pf = has_pose ? poses.frames[static_cast<std::size_t>(t)] : empty;
        const cv::Mat rendered = pose::render_pose(pf, H, W, opts.render);
        cv::Mat pt = img(L.pose.back());
        cv::resize(rendered, pt, pt.size(), 0, 0, cv::INTER_AREA);
        if (!has_pose) put(img, "no keypoints", {L.pose.back().x + 4, L.pose.back().y + 16}, kCaptionScale, kGray);

        const double sx = pf.width > 0 ? static_cast<double>(W) / pf.width : 1.0;
        const double sy = pf.height > 0 ? static_cast<double>(H) / pf.height : 1.0;
        auto do_hand = [&](bool left, const cv::Rect& cell, std::vector<std::optional<cv::Rect>>& placed,
                           std::vector<std::optional<cv::Rect>>& boxes) {
            img(cell).setTo(kCellBackground);
            std::optional<cv::Rect> box;
            for (const auto& person : pf.people) {
                const auto& hand = left ? person.hand_left : person.hand_right;
                if (hand.empty()) continue;
                box = pose::hand_box(scaled(hand, sx, sy), H, W, opts.hand);
                if (box && box->area() > 0) break;
                box.reset();
            }
            boxes.push_back(box);
            if (!box) {
                placed.emplace_back();
                put(img, left ? "no L hand" : "no R hand", {cell.x + 4, cell.y + cell.height / 2}, kCaptionScale,
                    kGray);
                return;
            }
            placed.push_back(place_crop(img, frames[static_cast<std::size_t>(t)](*box), cell));
        };
        do_hand(true, L.left_cell.back(), L.left_placed, L.left_box);
        do_hand(false, L.right_cell.back(), L.right_placed, L.right_box);
    }
    return out;
}

ContactSheet make_contact_sheet(const ManifestRow& row, const CandidateScore* score, const SheetOptions& opts) {
    if (row.video.empty()) throw DataError(fmt::format("contact sheet of '{}': the manifest row has no video", row.id));
    const auto frames = media::read_frames_bgr(row.video);
    pose::PoseSequence poses;
    if (row.keypoints.empty()) {
        spdlog::warn("contact sheet of '{}': no keypoints in the manifest; pose tiles and hand crops stay empty",
                     row.id);
    } else {
        poses = pose::read_keypoints(row.keypoints);
        if (poses.frames.size() != frames.size()) {
            spdlog::warn("contact sheet of '{}': video '{}' has {} frames but keypoints '{}' have {}", row.id,
                         row.video.string(), frames.size(), row.keypoints.string(), poses.frames.size());
        }
    }
    return make_contact_sheet(row.id, frames, poses, score, &row, opts);
}

void write_png_atomic(const fs::path& path, const cv::Mat& image) {
    const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    std::error_code dir_ec;
    fs::create_directories(dir, dir_ec);
    if (dir_ec)
        throw DataError(fmt::format("cannot create directory '{}' for '{}': {}", dir.string(), path.filename().string(),
                                    dir_ec.message()));
    const fs::path temp = dir / fmt::format(".{}.tmp{}.png", path.stem().string(), ::getpid());
    bool ok = false;
    try {
        ok = cv::imwrite(temp.string(), image);
    } catch (const cv::Exception& e) {
        fs::remove(temp);
        throw DataError(fmt::format("cannot write PNG '{}': {}", path.string(), e.what()));
    }
    if (!ok) {
        std::error_code ec;
        fs::remove(temp, ec);
        throw DataError(fmt::format("cannot write PNG '{}' (unwritable directory or disk full?)", path.string()));
    }
    std::error_code ec;
    fs::rename(temp, path, ec);
    if (ec) {
        fs::remove(temp, ec);
        throw DataError(fmt::format("cannot move PNG into place at '{}': {}", path.string(), ec.message()));
    }
}

SheetsReport write_contact_sheets(const Manifest& m, const std::vector<CandidateScore>& scores, const fs::path& out_dir,
                                  const SheetOptions& opts) {
    const auto ranked = rank_candidates(m, scores);
    SheetsReport rep;
    rep.dir = out_dir;
    fs::create_directories(out_dir);
    ProgressOptions popts;
    popts.unit = "sheet";
    Progress progress("sheets", static_cast<int64_t>(ranked.size()), popts);
    for (const auto& c : ranked) {
        const auto sheet = make_contact_sheet(*c.row, c.score, opts);
        const fs::path file = out_dir / sheet_filename(c.row->id);
        write_png_atomic(file, sheet.image);
        rep.files.push_back(file);
        ++rep.written;
        progress.advance(1, c.row->id);
    }
    progress.finish();
    return rep;
}

}  // namespace ipa::curate::review
