#pragma once

/// Pose keypoints: the OpenPose-18 person layout, OpenPose JSON / JSON Lines reading and
/// writing, and the DWPose (COCO-WholeBody 133) to OpenPose-18 conversion.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ipa::pose {

/// Confidence threshold of the DWPose reference code (body `> 0.3`; hands/face `< 0.3` are invisible).
inline constexpr float kConfidenceThreshold = 0.3f;

/// One keypoint in pixel coordinates; `c` is the confidence (0 = missing).
struct Keypoint {
    float x = 0, y = 0, c = 0;
};

/// One person in OpenPose layout.
struct Person {
    std::vector<Keypoint> body;                   ///< 18, OpenPose COCO-18 order (BODY_25 is converted on read)
    std::vector<Keypoint> hand_left, hand_right;  ///< 21 each (OpenPose hand order), empty when absent
    std::vector<Keypoint> face;                   ///< 68 or 70, empty when absent
    std::vector<Keypoint> feet;                   ///< 6 (from whole-body), usually empty
};

/// The people of one frame and the canvas size their pixel coordinates refer to.
struct PoseFrame {
    int width = 0, height = 0;  ///< canvas size if known, else 0
    std::vector<Person> people;
};

/// A keypoint sequence, one frame per video frame.
struct PoseSequence {
    std::vector<PoseFrame> frames;
    std::vector<std::string> frame_sources;  ///< file or file:line per frame
    int64_t bad_frames = 0;                  ///< frames that could not be read (only with allow_bad_frames)
};

/// Options of read_keypoints().
struct KeypointReadOptions {
    /// Opt-in: malformed frames are counted in bad_frames, logged with their names and kept
    /// as empty frames. Off: the first malformed frame throws ipa::DataError.
    bool allow_bad_frames = false;
    /// Canvas size used to scale normalised ([0,1]) coordinates when the JSON has no
    /// canvas_width/canvas_height; 0 = unknown.
    int canvas_width = 0, canvas_height = 0;
};

/// Reads OpenPose-format keypoints from a directory of per-frame `.json` files (sorted
/// naturally by the frame number in the name) or from one `.jsonl` file (one object per
/// line). Body arrays of 54 (COCO-18) or 75 (BODY_25, converted) values; null/empty
/// arrays are absent parts. Throws ipa::DataError naming the file (and line) and reason.
PoseSequence read_keypoints(const std::filesystem::path& dir_or_jsonl, const KeypointReadOptions& opts = {});

/// Writes one OpenPose JSON file per frame: `frame_000000_keypoints.json`, ... (version
/// 1.3, canvas_width/canvas_height, pixel coordinates). Creates the directory.
void write_keypoints_dir(const std::filesystem::path& dir, const PoseSequence& seq);

/// Writes one OpenPose JSON object per line (same content as write_keypoints_dir()).
void write_keypoints_jsonl(const std::filesystem::path& file, const PoseSequence& seq);

/// Converts the 133 COCO-WholeBody keypoints of one DWPose person to OpenPose-18 body,
/// 6 feet, 68 face and 21+21 hands (neck = mean of the shoulders, score 1 if both
/// shoulders > 0.3 else 0). Throws ipa::DataError unless kp133 has 133 entries.
Person from_coco_wholebody(const std::vector<Keypoint>& kp133);

}  // namespace ipa::pose
