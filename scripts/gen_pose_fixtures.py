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
        --vace-git /work/.mirror/ali-vilab+VACE/repo \
        --unianimate-git /work/.mirror/ali-vilab+UniAnimate-DiT/repo \
        --mimicmotion-git /work/.mirror/Tencent+MimicMotion/repo --out tests/fixtures/pose

Writes per case <case>.json (canvas size, 133 keypoints per person as float32-exact values) and
<case>.<map>.png for map in body, face, bodyface, handbodyface (the canvas as drawn, i.e. the
palette triples as BGR, so cv::imread gives the canvas back), plus <case>.scaled.png: the same
pose dict drawn by upstream draw_pose (hands+body+face) on a canvas of `scaled_size`.

With --unianimate-git / --mimicmotion-git it also writes the variants of docs/pose-hands.md §1:
<case>.unianimate.png and <case>.unianimate_face.png (github.com/ali-vilab/UniAnimate-DiT
prepare_training_data.py `DWposeDetector.__call__` / `draw_pose`: first person, body + feet +
hands, without / with face) and <case>.mimicmotion.png (github.com/Tencent/MimicMotion
mimicmotion/dwpose/dwpose_detector.py `DWposeDetector.__call__` + util.py `draw_pose`, flipped
back from RGB to the canvas order), again with only the ONNX calls replaced.
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


def git_files(git_dir, rev, files, root):
    commit = subprocess.run(['git', '--git-dir', git_dir, 'rev-parse', rev + '^{commit}'], check=True,
                            capture_output=True, text=True).stdout.strip()
    for dst, src in files.items():
        path = os.path.join(root, dst)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        text = subprocess.run(['git', '--git-dir', git_dir, 'show', f'{commit}:{src}'], check=True,
                              capture_output=True, text=True).stdout
        with open(path, 'w') as f:
            f.write(text)
    return commit


def fake_wholebody(module, keypoints, scores):
    """An instance of the upstream Wholebody class whose two ONNX calls return the given keypoints."""
    module.inference_detector = lambda sess, img: np.zeros((len(keypoints), 4), np.float32)
    module.inference_pose = lambda sess, det, img: (keypoints.copy(), scores.copy())
    wb = object.__new__(module.Wholebody)
    wb.session_det = wb.session_pose = None
    return wb


def load_unianimate(git_dir, rev):
    root = tempfile.mkdtemp(prefix='unianimate_up_')
    commit = git_files(git_dir, rev, {f'dwpose/{n}': f'dwpose/{n}' for n in
                                      ('util.py', 'wholebody.py', 'onnxdet.py', 'onnxpose.py')}, root)
    commit = git_files(git_dir, commit, {'prepare_training_data.py': 'prepare_training_data.py'}, root)
    open(os.path.join(root, 'dwpose', '__init__.py'), 'w').close()
    sys.modules.setdefault('oss2', types.ModuleType('oss2'))  # imported, never used by the drawing path
    sys.path.insert(0, root)
    import dwpose.util  # noqa: E402
    import dwpose.wholebody  # noqa: E402
    sys.modules['util'], sys.modules['wholebody'] = dwpose.util, dwpose.wholebody  # its flat imports
    import prepare_training_data as ptd  # noqa: E402
    return ptd, dwpose.wholebody, commit


def run_unianimate(ptd, wholebody, keypoints, scores, height, width):
    det = object.__new__(ptd.DWposeDetector)
    det.pose_estimation = fake_wholebody(wholebody, keypoints, scores)
    without_face, with_face = det(np.zeros((height, width, 3), np.uint8))
    return {'unianimate': without_face, 'unianimate_face': with_face}


def load_mimicmotion(git_dir, rev):
    root = tempfile.mkdtemp(prefix='mimicmotion_up_')
    commit = git_files(git_dir, rev, {f'_mm_up/dwpose/{n}': f'mimicmotion/dwpose/{n}' for n in
                                      ('util.py', 'wholebody.py', 'onnxdet.py', 'onnxpose.py',
                                       'dwpose_detector.py')}, root)
    for init in ('_mm_up/__init__.py', '_mm_up/dwpose/__init__.py'):
        open(os.path.join(root, init), 'w').close()
    sys.path.insert(0, root)
    import _mm_up.dwpose.dwpose_detector as detector  # noqa: E402
    import _mm_up.dwpose.util as util  # noqa: E402
    import _mm_up.dwpose.wholebody as wholebody  # noqa: E402
    return detector, util, wholebody, commit


def run_mimicmotion(mm, keypoints, scores, height, width):
    detector, util, wholebody = mm
    det = object.__new__(detector.DWposeDetector)
    det.pose_estimation = fake_wholebody(wholebody, keypoints, scores)
    pose = det(np.zeros((height, width, 3), np.uint8))
    rgb = util.draw_pose(pose, height, width).transpose(1, 2, 0)  # RGB of the resized canvas
    return {'mimicmotion': np.ascontiguousarray(rgb[..., ::-1])}


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
    ap.add_argument('--unianimate-git', help='bare git dir of github.com/ali-vilab/UniAnimate-DiT')
    ap.add_argument('--mimicmotion-git', help='bare git dir of github.com/Tencent/MimicMotion')
    ap.add_argument('--rev', default='HEAD')
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    pose, wholebody, commit = load_upstream(args.vace_git, args.rev)
    upstream = {'vace': f'ali-vilab/VACE@{commit}'}
    uni = mm = None
    if args.unianimate_git:
        *uni, c = load_unianimate(args.unianimate_git, args.rev)
        upstream['unianimate'] = f'ali-vilab/UniAnimate-DiT@{c}'
    if args.mimicmotion_git:
        *mm, c = load_mimicmotion(args.mimicmotion_git, args.rev)
        upstream['mimicmotion'] = f'Tencent/MimicMotion@{c}'
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.RandomState(1234)
    for name, make in CASES.items():
        height, width, kps, scs, scaled = make(rng)
        # Keypoints as DWPose gives them: float64 pixels (float32-exact here so that the C++
        # side, which stores float32, sees the same numbers), float32 scores.
        keypoints = np.stack([f32(k).astype(np.float64) for k in kps])
        scores = np.stack([f32(s) for s in scs])
        maps = run_vace(pose, wholebody, keypoints.copy(), scores.copy(), height, width, scaled)
        if uni:
            maps.update(run_unianimate(*uni, keypoints, scores, height, width))
        if mm:
            maps.update(run_mimicmotion(mm, keypoints, scores, height, width))
        people = [[[float(x), float(y), float(s)] for (x, y), s in zip(k, s_)] for k, s_ in zip(keypoints, scores)]
        meta = {'upstream': upstream, 'height': height, 'width': width,
                'scaled_height': scaled[0], 'scaled_width': scaled[1], 'people': people}
        with open(os.path.join(args.out, f'{name}.json'), 'w') as f:
            json.dump(meta, f, separators=(',', ':'))
        for m, img in maps.items():
            assert cv2.imwrite(os.path.join(args.out, f'{name}.{m}.png'), img)
        print(name, {m: int((img > 0).any(axis=2).sum()) for m, img in maps.items()})


if __name__ == '__main__':
    main()
