#pragma once

/// Pose rendering exactly as DWPose/VACE `util.py` draws it (draw_bodypose, draw_handpose,
/// draw_facepose), with the palette triples used as BGR (what VACE-trained models saw).

#include <vector>

#include <opencv2/core/mat.hpp>

#include "ipa/pose/keypoints.h"

namespace ipa::pose {

/// What to draw. VACE's "pose" preprocessor (PoseBodyFaceVideoAnnotator) is `{.hands = false}`.
struct RenderOptions {
    bool body = true, hands = true, face = true;
    float threshold = kConfidenceThreshold;  ///< body points need c > threshold; hand/face points with c < threshold are invisible
};

/// Renders one frame: CV_8UC3 (BGR), black canvas of height x width. Keypoints are scaled
/// from (frame.width, frame.height) to (width, height) when those are known and differ.
cv::Mat render_pose(const PoseFrame& frame, int height, int width, const RenderOptions& opts = {});

/// render_pose() for every frame of a sequence.
std::vector<cv::Mat> render_pose_video(const PoseSequence& seq, int height, int width, const RenderOptions& opts = {});

}  // namespace ipa::pose
