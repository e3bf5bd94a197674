#pragma once

// Contact sheets: one PNG per candidate for a person to judge hands at a glance.
//
//   +--------------------------------------------------------------+
//   | id   score 0.71  PASS            (header: score overlay)      |
//   | group / label / defect, main stats                            |
//   +-----------------+-----------------+---- ... one column per sampled frame
//   | f12 score .81   | caption (frame index, frame score; the worst frame in red)
//   | video frame     |
//   | pose render     |   ipa::pose::render_pose of the candidate's keypoints
//   | L crop | R crop |   ipa::pose::hand_box crops, enlarged (nearest neighbour)
//   +-----------------+

#include <cstdint>
#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ipa/curate/batch.h"
#include "ipa/curate/manifest.h"
#include "ipa/curate/score.h"
#include "ipa/pose/hand_mask.h"
#include "ipa/pose/keypoints.h"
#include "ipa/pose/render.h"

namespace ipa::curate::review {

/// Options of make_contact_sheet().
struct SheetOptions {
    int frames = 6;              ///< sampled frames (columns), evenly spaced, first and last included
    int tile_height = 192;       ///< height of the video and pose tiles (width keeps the aspect)
    bool include_worst = true;   ///< replace the nearest sample by the frame of lowest FrameScore::score
    pose::HandMaskOptions hand;  ///< box around each hand (padding, threshold, min points)
    pose::RenderOptions render;  ///< what the pose tiles draw
};

/// Where everything is on a sheet (for tests and tools).
struct SheetLayout {
    cv::Rect header;
    std::vector<int64_t> frame_indices;  ///< video frame of each column
    std::vector<cv::Rect> caption, video, pose;
    /// Per column: the cell of each hand and, when the hand was found, the rect inside the
    /// cell that holds the enlarged crop and the crop's box in video pixels.
    std::vector<cv::Rect> left_cell, right_cell;
    std::vector<std::optional<cv::Rect>> left_placed, right_placed, left_box, right_box;
    int64_t worst_frame = -1;  ///< frame of lowest FrameScore::score (-1: no per-frame scores)
};

/// A rendered sheet.
struct ContactSheet {
    cv::Mat image;  ///< CV_8UC3 BGR
    SheetLayout layout;
};

/// `n` indices evenly spaced over [0, total) with the first and last included (fewer when
/// total < n); ipa::DataError when total <= 0.
std::vector<int64_t> sample_frame_indices(int64_t total, int n);

/// Builds a sheet from decoded frames (BGR, all the same size) and the candidate's
/// keypoints (may be empty: pose tiles stay black and hand cells say so). `score` and `row`
/// may be null (header says "no score"). Keypoints are scaled from their canvas size to the
/// frames' size when the canvas is known and differs.
ContactSheet make_contact_sheet(const std::string& id, const std::vector<cv::Mat>& frames,
                                const pose::PoseSequence& poses, const CandidateScore* score, const ManifestRow* row,
                                const SheetOptions& opts = {});

/// Reads the row's video and keypoints and builds its sheet. A frame-count mismatch between
/// video and keypoints is logged (missing pose frames are drawn empty).
ContactSheet make_contact_sheet(const ManifestRow& row, const CandidateScore* score, const SheetOptions& opts = {});

/// Writes a PNG atomically (temporary name, then rename); ipa::DataError naming the path.
void write_png_atomic(const std::filesystem::path& path, const cv::Mat& image);

/// What write_contact_sheets() / sheets_batch() wrote.
struct SheetsReport {
    std::filesystem::path dir;
    int64_t written = 0;                       ///< sheets of this run (sheets_batch: + resumed ones)
    std::vector<std::filesystem::path> files;  ///< in ranking order
    BatchReport batch;                         ///< sheets_batch() only
};

/// One sheet per manifest row, out_dir / sheet_filename(id), with a progress display;
/// stops at the first row that fails (its exception).
SheetsReport write_contact_sheets(const Manifest& m, const std::vector<CandidateScore>& scores,
                                  const std::filesystem::path& out_dir, const SheetOptions& opts = {});

/// `ipa-curate sheets` at scale (ipa/curate/batch.h): one sheet per row through run_batch()
/// with the progress file out_dir/sheets.progress.jsonl (unless `batch.progress_file` names
/// another). A bad row is recorded and the others go on; a row is redone when its video,
/// keypoints, row fields, score or `opts` changed or its PNG is gone. Unless interrupted,
/// writes out_dir/failures.csv. ipa::DataError (before any work) for scores of another manifest.
SheetsReport sheets_batch(const Manifest& m, const std::vector<CandidateScore>& scores,
                          const std::filesystem::path& out_dir, const SheetOptions& opts = {}, BatchOptions batch = {});

}  // namespace ipa::curate::review
