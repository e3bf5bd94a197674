#!/usr/bin/python3
"""Pose-rendering fixtures for the C++ renderer (src/pose/render.cpp), made by running the
OFFICIAL VACE pose annotator code (github.com/ali-vilab/VACE: vace/annotators/pose.py
`PoseAnnotator.process` / `draw_pose`, vace/annotators/dwpose/wholebody.py `Wholebody.__call__`
(the 133 -> OpenPose-18 conversion with the neck rule) and vace/annotators/dwpose/util.py
`draw_bodypose` / `draw_handpose` / `draw_facepose`) on hand-made / seeded whole-body keypoints.

No upstream code lives in this repository: the files are read at run time from a bare git
directory (`git show REV:path`) into a private temporary package. Only the two ONNX model calls
are replaced: `inference_detector` / `inference_pose` return the given keypoints, and
`onnxruntime` is an empty module (never called). Everything from the 133 keypoints to the
drawn maps is the upstream code, run unmodified.

Needs Debian's python3-numpy, python3-opencv and python3-matplotlib (the upstream drawing code
imports cv2 and matplotlib):
    /usr/bin/python3 scripts/gen_pose_fixtures.py \
        --vace-git /work/.mirror/ali-vilab+VACE/repo --out tests/fixtures/pose

Writes per case <case>.json (canvas size, 133 keypoints per person as float32-exact values) and
<case>.<map>.png for map in body, face, bodyface, handbodyface (the canvas as drawn, i.e. the
palette triples as BGR, so cv::imread gives the canvas back), plus <case>.scaled.png: the same
pose dict drawn by upstream draw_pose (hands+body+face) on a canvas of `scaled_size`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types

import cv2
import numpy as np

FILES = {
    'pose.py': 'vace/annotators/pose.py',
    'dwpose/util.py': 'vace/annotators/dwpose/util.py',
    'dwpose/wholebody.py': 'vace/annotators/dwpose/wholebody.py',
    'dwpose/onnxdet.py': 'vace/annotators/dwpose/onnxdet.py',
    'dwpose/onnxpose.py': 'vace/annotators/dwpose/onnxpose.py',
}


def load_upstream(git_dir, rev):
    """Writes the upstream files into a temp package `_vace_up` and imports it."""
    commit = subprocess.run(['git', '--git-dir', git_dir, 'rev-parse', rev + '^{commit}'], check=True,
                            capture_output=True, text=True).stdout.strip()
    root = tempfile.mkdtemp(prefix='vace_up_')
    pkg = os.path.join(root, '_vace_up')
    os.makedirs(os.path.join(pkg, 'dwpose'))
    for dst, src in FILES.items():
        text = subprocess.run(['git', '--git-dir', git_dir, 'show', f'{commit}:{src}'], check=True,
                              capture_output=True, text=True).stdout
        with open(os.path.join(pkg, dst), 'w') as f:
            f.write(text)
    for init in ('__init__.py', 'dwpose/__init__.py'):
        open(os.path.join(pkg, init), 'w').close()
    # vace/annotators/utils.py pulls in imageio/PIL/pycocotools; process() does not use it.
    with open(os.path.join(pkg, 'utils.py'), 'w') as f:
        f.write('import numpy as np\n\ndef convert_to_numpy(image):\n    return np.asarray(image)\n')
    ort = types.ModuleType('onnxruntime')  # only used in type annotations; never called
    ort.InferenceSession = object
    sys.modules['onnxruntime'] = ort
    sys.path.insert(0, root)
    import _vace_up.pose as pose  # noqa: E402
    import _vace_up.dwpose.wholebody as wholebody  # noqa: E402
    return pose, wholebody, commit


def run_vace(pose, wholebody, keypoints, scores, height, width, scaled_size):
    """Runs PoseAnnotator.process on an H x W image whose 'detections' are the given keypoints."""
    wholebody.inference_detector = lambda sess, img: np.zeros((len(keypoints), 4), np.float32)
    wholebody.inference_pose = lambda sess, det, img: (keypoints, scores)
    wb = object.__new__(wholebody.Wholebody)
    wb.session_det = wb.session_pose = None
    ann = object.__new__(pose.PoseAnnotator)
    ann.pose_estimation = wb
    ann.use_body = ann.use_face = ann.use_hand = True
    captured = []
    original_draw = pose.draw_pose

    def spy(p, H, W, **kw):
        captured.append(p)
        return original_draw(p, H, W, **kw)

    pose.draw_pose = spy
    try:
        ret, _ = ann.process(np.zeros((height, width, 3), np.uint8), (height, width))
    finally:
        pose.draw_pose = original_draw
    sh, sw = scaled_size
    ret['scaled'] = original_draw(captured[0], sh, sw, use_hand=True, use_body=True, use_face=True)[..., ::-1]
    names = {'detected_map_body': 'body', 'detected_map_face': 'face', 'detected_map_bodyface': 'bodyface',
             'detected_map_handbodyface': 'handbodyface', 'scaled': 'scaled'}
    # process() returns canvas[..., ::-1] (RGB view of the drawn canvas); flip back to the canvas.
    return {names[k]: np.ascontiguousarray(v[..., ::-1]) for k, v in ret.items()}


def f32(a):
    return np.asarray(a, np.float32)


def make_person(rng, height, width, cx, cy, scale):
    """A plausible whole-body person around (cx, cy): body skeleton, feet, a face ring, two hands."""
    kp = np.zeros((133, 2))
    body = np.array([[0, -3.0], [-.3, -3.2], [.3, -3.2], [-.6, -3.0], [.6, -3.0], [-1.2, -2.2], [1.2, -2.2],
                     [-1.6, -1.0], [1.6, -1.0], [-1.8, 0.1], [1.8, 0.1], [-.7, 0.3], [.7, 0.3], [-.8, 1.8],
                     [.8, 1.8], [-.8, 3.2], [.8, 3.2]])
    kp[0:17] = body
    kp[17:23] = [[-.9, 3.5], [-.6, 3.5], [-.8, 3.3], [.9, 3.5], [.6, 3.5], [.8, 3.3]]
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    kp[23:91] = np.stack([0.7 * np.cos(t), -3.0 + 0.8 * np.sin(t)], 1)
    for base, wrist in ((91, body[9]), (112, body[10])):
        kp[base] = wrist
        for finger in range(5):
            ang = np.pi / 2 + (finger - 2) * 0.4
            for j in range(4):
                r = 0.5 + 0.45 * j
                kp[base + 1 + finger * 4 + j] = wrist + r * np.array([np.cos(ang), np.sin(ang)])
    kp = kp * scale + np.array([cx, cy]) + rng.normal(0, 0.05 * scale, kp.shape)
    scores = rng.uniform(0.35, 1.0, 133)
    return kp, scores


def case_two_people(rng):
    height, width = 256, 320
    kps, scs = [], []
    for cx, cy, s in ((100, 120, 30.0), (230, 115, 26.0)):
        kp, sc = make_person(rng, height, width, cx, cy, s)
        kps.append(kp)
        scs.append(sc)
    # Person 0: some low scores everywhere, a body point exactly at float32(0.3) (drawn: upstream
    # compares float32 scores with the double 0.3), hand/face points at 0.3 (visible) and just below.
    low = rng.choice(133, 25, replace=False)
    scs[0][low] = rng.uniform(0.0, 0.3, 25)
    scs[0][[3, 95, 30]] = 0.3
    scs[0][[100, 40]] = np.nextafter(np.float32(0.3), np.float32(0))
    # Person 1: left shoulder low -> no neck (neck score rule); a hand point at x in (0, 1) px
    # (int() gives 0: upstream's eps test hides it), a face point off the canvas (negative).
    scs[1][5] = 0.2
    kps[1][112 + 20] = [0.6, 40.0]
    kps[1][23 + 10] = [-5.0, 60.0]
    kps[1][16] = [-3.0, 230.0]  # body point off canvas: still drawn (clipped) if confident
    return height, width, kps, scs, (150, 190)


def case_single(rng):
    height, width = 96, 128
    kp, sc = make_person(rng, height, width, 64, 50, 11.0)
    sc[91:112] = 0.1  # left hand invisible
    return height, width, [kp], [sc], (192, 256)


CASES = {'two_people': case_two_people, 'single': case_single}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--vace-git', required=True, help='bare git dir of github.com/ali-vilab/VACE')
    ap.add_argument('--rev', default='HEAD')
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    pose, wholebody, commit = load_upstream(args.vace_git, args.rev)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.RandomState(1234)
    for name, make in CASES.items():
        height, width, kps, scs, scaled = make(rng)
        # Keypoints as DWPose gives them: float64 pixels (float32-exact here so that the C++
        # side, which stores float32, sees the same numbers), float32 scores.
        keypoints = np.stack([f32(k).astype(np.float64) for k in kps])
        scores = np.stack([f32(s) for s in scs])
        maps = run_vace(pose, wholebody, keypoints.copy(), scores.copy(), height, width, scaled)
        people = [[[float(x), float(y), float(s)] for (x, y), s in zip(k, s_)] for k, s_ in zip(keypoints, scores)]
        meta = {'upstream': f'ali-vilab/VACE@{commit}', 'height': height, 'width': width,
                'scaled_height': scaled[0], 'scaled_width': scaled[1], 'people': people}
        with open(os.path.join(args.out, f'{name}.json'), 'w') as f:
            json.dump(meta, f, separators=(',', ':'))
        for m, img in maps.items():
            assert cv2.imwrite(os.path.join(args.out, f'{name}.{m}.png'), img)
        print(name, {m: int((img > 0).any(axis=2).sum()) for m, img in maps.items()})


if __name__ == '__main__':
    main()
