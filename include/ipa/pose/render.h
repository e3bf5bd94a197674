#pragma once

/// Pose rendering exactly as DWPose/VACE `util.py` draws it (draw_bodypose, draw_handpose,
/// draw_facepose), with the palette triples used as BGR (what VACE-trained models saw).

#include <opencv2/core/mat.hpp>
#include <vector>

#include "ipa/pose/keypoints.h"

namespace ipa::pose {

/// What to draw. VACE's "pose" preprocessor (PoseBodyFaceVideoAnnotator) is `{.hands = false}`.
struct RenderOptions {
    bool body = true, hands = true, face = true;
    float threshold =
        kConfidenceThreshold;  ///< body points need c > threshold; hand/face points with c < threshold are invisible
    /// Which repository's drawing to reproduce (docs/pose-hands.md §1):
    /// - VACE: vace/annotators/dwpose/util.py (= DWPose ControlNet util.py), all people.
    /// - UniAnimate: UniAnimate-DiT draw_body_and_foot: the first person only, two extra foot
    ///   points (toe midpoints) and limbs; hands as VACE. Its training maps are `{.face = false}`.
    /// - MimicMotion: confidence-scaled colours, hand/face points never hidden by score, drawn
    ///   with the short side at mimic_ref_short_side and resized (bilinear) to height x width.
    enum class Style { VACE, UniAnimate, MimicMotion } style = Style::VACE;
    int mimic_ref_short_side = 2160;  ///< MimicMotion draw_pose ref_w
};

/// Renders one frame: CV_8UC3 (BGR), black canvas of height x width. Keypoints are scaled
/// from (frame.width, frame.height) to (width, height) when those are known and differ
/// (as upstream: normalised by the detection canvas, times the drawing canvas). Faces draw
/// every point given (68, or 70 with OpenPose's pupils). ConfigError for a bad size/option.
cv::Mat render_pose(const PoseFrame& frame, int height, int width, const RenderOptions& opts = {});

/// render_pose() for every frame of a sequence.
std::vector<cv::Mat> render_pose_video(const PoseSequence& seq, int height, int width, const RenderOptions& opts = {});

}  // namespace ipa::pose
