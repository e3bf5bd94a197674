#!/usr/bin/env python3
"""Parity fixtures for ipa_eval (tests/eval), made with the reference implementations:

  * SSIM:    skimage.metrics.structural_similarity (DisCo's call: gray uint8, defaults; and
             gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1);
  * PSNR:    DisCo's psnr_eval (float64 MSE over H, W, C; 100 when equal), written out here;
  * gray:    OpenCV 4.x's BGR2GRAY for uint8 in its fixed-point form ((9798 R + 19235 G
             + 3735 B + 16384) >> 15), checked against cv::cvtColor on the C++ side;
  * FID:     pytorch_fid.fid_score.calculate_frechet_distance (scipy.linalg.sqrtm) and
             scipy.linalg.sqrtm itself;
  * features: pytorch_fid.inception.InceptionV3([3]) built by pytorch-fid's own code
             (fid_inception_v3 with the weight download replaced by our seeded weights), run
             in float64 (the reference) and float32 (to measure the floor).

The Inception weights are a real torch.save() state dict with exactly pytorch-fid's keys
and shapes, kept small: every conv/fc weight is an overlapping strided view (stride 1 in
every dimension, so W[o, i, h, w] = s[o + i + h + w]) of a short random storage, which
torch.save stores as it is; BatchNorm vectors are stored in full.

Reference environment (pinned): Python 3.11, torch 2.11.0, torchvision 0.26.0,
numpy 2.4.6, scipy 1.17.1, scikit-image 0.26.0, pytorch-fid 0.3.0.

    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_eval_fixtures.py --out tests/fixtures/eval
"""

import argparse
import collections
import contextlib
import io
import json
import os
import struct
import warnings

import numpy as np
import scipy
import scipy.linalg
import skimage
import skimage.metrics
import torch
import torch.nn.functional as F
import torchvision
import pytorch_fid
import pytorch_fid.fid_score
import pytorch_fid.inception as pfi
from PIL import Image


# ----------------------------------------------------------------------------- helpers

def save_safetensors(path, tensors, metadata=None):
    dt = {torch.float64: "F64", torch.float32: "F32", torch.uint8: "U8", torch.int64: "I64"}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def smooth_image(rng, h, w, c=3):
    """A smooth random uint8 image (upsampled noise) so SSIM is far from 0 and PNGs stay small."""
    small = rng.uniform(0, 255, size=(h // 8 + 2, w // 8 + 2, c))
    t = torch.from_numpy(small).permute(2, 0, 1)[None]
    big = F.interpolate(t, size=(h, w), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
    return np.clip(np.rint(big), 0, 255).astype(np.uint8)


def perturb(rng, img, amp):
    noise = rng.normal(0, amp, size=img.shape)
    return np.clip(np.rint(img.astype(np.float64) + noise), 0, 255).astype(np.uint8)


def cv_gray(bgr):
    """cv2.cvtColor(BGR2GRAY) for uint8 as OpenCV 4.x computes it: 15-bit fixed point."""
    b, g, r = (bgr[..., i].astype(np.int64) for i in range(3))
    return ((r * 9798 + g * 19235 + b * 3735 + 16384) >> 15).astype(np.uint8)


def psnr_disco(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return 100.0
    return 20 * np.log10(255.0 / np.sqrt(mse))


def ssim_disco(a_bgr, b_bgr):
    return skimage.metrics.structural_similarity(cv_gray(a_bgr), cv_gray(b_bgr), full=True)[0]


def ssim_gauss(a, b):
    return skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                                 data_range=255, channel_axis=-1)


# ----------------------------------------------------------------------------- frame metrics

def frame_cases(out, rng):
    tensors, meta, floors = {}, {}, {"ssim_disco": 0.0, "ssim_gauss": 0.0, "psnr": 0.0}
    shapes = [(37, 53), (24, 30), (64, 48), (11, 11)]
    amps = [6.0, 20.0, 45.0, 3.0]
    for i, ((h, w), amp) in enumerate(zip(shapes, amps)):
        a = smooth_image(rng, h, w)
        b = perturb(rng, a, amp)
        vals = {"ssim_disco": ssim_disco(a, b), "ssim_gauss": ssim_gauss(a, b), "psnr": psnr_disco(a, b)}
        # float64 floor: the same metric on the transposed images (same math, other order).
        at, bt = a.transpose(1, 0, 2).copy(), b.transpose(1, 0, 2).copy()
        alt = {"ssim_disco": ssim_disco(at, bt), "ssim_gauss": ssim_gauss(at, bt), "psnr": psnr_disco(at, bt)}
        for k in vals:
            floors[k] = max(floors[k], abs(vals[k] - alt[k]))
        tensors[f"case{i}.a"] = torch.from_numpy(a)
        tensors[f"case{i}.b"] = torch.from_numpy(b)
        tensors[f"case{i}.gray_a"] = torch.from_numpy(cv_gray(a))
        for k, v in vals.items():
            tensors[f"case{i}.{k}"] = torch.tensor([float(v)], dtype=torch.float64)
    # identical images: PSNR 100, SSIM 1
    a = smooth_image(rng, 20, 20)
    tensors["same.a"] = torch.from_numpy(a)
    tensors["same.ssim_disco"] = torch.tensor([float(ssim_disco(a, a))], dtype=torch.float64)
    tensors["same.psnr"] = torch.tensor([psnr_disco(a, a)], dtype=torch.float64)
    meta["cases"] = len(shapes)
    for k, v in floors.items():
        meta[f"floor_{k}"] = repr(float(v))
    save_safetensors(os.path.join(out, "frame_metrics.safetensors"), tensors, meta)
    return floors


# ----------------------------------------------------------------------------- hand-crop video pair

def hand_keypoints(rng, cx, cy, size):
    pts = []
    for j in range(21):
        ang = 2 * np.pi * j / 21
        rad = size * (0.2 + 0.3 * (j % 4) / 3)
        pts += [float(cx + rad * np.cos(ang)), float(cy + rad * np.sin(ang)), 0.9 if j % 7 else 0.1]
    return pts


def crop_boxes(people, h, w, thr=0.3, min_points=5, padding=0.25, min_side=32):
    """The crop rule of ipa::eval::hand_crop_boxes (pose::hand_box, then a square)."""
    boxes = []
    for p in people:
        for key in ("hand_left_keypoints_2d", "hand_right_keypoints_2d"):
            arr = p.get(key) or []
            pts = [(arr[i], arr[i + 1]) for i in range(0, len(arr), 3) if arr[i + 2] > thr]
            if len(pts) < min_points:
                continue
            xs, ys = [q[0] for q in pts], [q[1] for q in pts]
            x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
            pad = padding * max(x1 - x0, y1 - y0)
            bx0, by0 = max(np.floor(x0 - pad), 0), max(np.floor(y0 - pad), 0)
            bx1, by1 = min(np.ceil(x1 + pad), w - 1), min(np.ceil(y1 + pad), h - 1)
            if bx0 > bx1 or by0 > by1:
                continue
            bw, bh = int(bx1 - bx0) + 1, int(by1 - by0) + 1
            side = min(max(bw, bh, min_side), h, w)
            cx, cy = bx0 + bw / 2.0, by0 + bh / 2.0
            x = int(min(max(np.floor(cx - side / 2.0 + 0.5), 0), w - side))
            y = int(min(max(np.floor(cy - side / 2.0 + 0.5), 0), h - side))
            boxes.append((x, y, side))
    return boxes


def video_case(out, rng):
    h, w, frames = 48, 64, 3
    root = os.path.join(out, "videos")
    expect = {"videos": {}}
    for vid, amp in (("clip_a", 10.0), ("clip_b", 30.0)):
        gt_dir, gen_dir, kp_dir = (os.path.join(root, d, vid) for d in ("gt", "gen", "keypoints"))
        for d in (gt_dir, gen_dir, kp_dir):
            os.makedirs(d, exist_ok=True)
        per = {"psnr": [], "ssim": [], "hand_psnr": [], "hand_ssim": []}
        for f in range(frames):
            gt = smooth_image(rng, h, w)
            gen = perturb(rng, gt, amp)
            # PNGs hold RGB; OpenCV reads them as BGR: index the arrays as BGR below.
            Image.fromarray(gt[..., ::-1]).save(os.path.join(gt_dir, f"{f:04d}.png"), optimize=True)
            Image.fromarray(gen[..., ::-1]).save(os.path.join(gen_dir, f"{f:04d}.png"), optimize=True)
            people = [{
                "pose_keypoints_2d": [0.0] * 54,
                "hand_left_keypoints_2d": hand_keypoints(rng, 20 + 3 * f, 22, 14),
                # the right hand is near the corner: its square crop is shifted into the frame
                "hand_right_keypoints_2d": hand_keypoints(rng, 58, 42 - f, 10) if f != 1 else [],
            }]
            with open(os.path.join(kp_dir, f"frame_{f:06d}_keypoints.json"), "w") as fh:
                json.dump({"version": 1.3, "canvas_width": w, "canvas_height": h, "people": people}, fh)
            per["psnr"].append(psnr_disco(gen, gt))
            per["ssim"].append(ssim_disco(gen, gt))
            for (x, y, s) in crop_boxes(people, h, w):
                a, b = gen[y:y + s, x:x + s], gt[y:y + s, x:x + s]
                per["hand_psnr"].append(psnr_disco(a, b))
                per["hand_ssim"].append(ssim_disco(a, b))
        expect["videos"][vid] = {k: [float(v) for v in vs] for k, vs in per.items()}
    with open(os.path.join(out, "videos", "expected.json"), "w") as fh:
        json.dump(expect, fh, indent=1)


# ----------------------------------------------------------------------------- Fréchet distance

def frechet_cases(out, rng):
    tensors, meta = {}, {}
    d = 64
    floor = 0.0
    cases = {"well": 400, "rankdef": 40}  # rankdef: N < D, both covariances singular
    for name, n in cases.items():
        mix = rng.normal(size=(d, d)) / np.sqrt(d)
        f1 = rng.normal(size=(n, d)) @ mix
        f2 = rng.normal(size=(n, d)) @ (mix + 0.3 * rng.normal(size=(d, d)) / np.sqrt(d)) + 0.2
        mu1, s1 = np.mean(f1, axis=0), np.cov(f1, rowvar=False)
        mu2, s2 = np.mean(f2, axis=0), np.cov(f2, rowvar=False)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            fd = pytorch_fid.fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
        eps_used = "singular product" in buf.getvalue()
        perm = rng.permutation(d)
        with contextlib.redirect_stdout(io.StringIO()):
            fd_p = pytorch_fid.fid_score.calculate_frechet_distance(mu1[perm], s1[perm][:, perm], mu2[perm],
                                                                    s2[perm][:, perm])
        floor = max(floor, abs(fd - fd_p) / abs(fd))
        if name == "rankdef":  # for feature_statistics (np.mean / np.cov)
            tensors[f"{name}.features1"] = torch.from_numpy(f1)
            tensors[f"{name}.features2"] = torch.from_numpy(f2)
        else:
            tensors[f"{name}.mu1"], tensors[f"{name}.sigma1"] = torch.from_numpy(mu1), torch.from_numpy(s1)
            tensors[f"{name}.mu2"], tensors[f"{name}.sigma2"] = torch.from_numpy(mu2), torch.from_numpy(s2)
        tensors[f"{name}.fid"] = torch.tensor([float(fd)], dtype=torch.float64)
        meta[f"{name}.eps_offset_used"] = int(eps_used)
    # sqrtm itself on a non-symmetric product with a complex spectrum, and a nilpotent matrix
    a = rng.normal(size=(12, 12))
    tensors["sqrtm.a"] = torch.from_numpy(a)
    r = scipy.linalg.sqrtm(a)
    tensors["sqrtm.real"] = torch.from_numpy(np.ascontiguousarray(r.real))
    tensors["sqrtm.imag"] = torch.from_numpy(np.ascontiguousarray(np.imag(r)))
    nil = np.triu(rng.normal(size=(5, 5)), 1)
    tensors["sqrtm.nilpotent"] = torch.from_numpy(nil)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy: "Matrix is singular"
        meta["sqrtm.nilpotent_nonfinite"] = int(not np.isfinite(scipy.linalg.sqrtm(nil)).all())
    meta["floor_fid_rel"] = repr(float(floor))
    save_safetensors(os.path.join(out, "frechet.safetensors"), tensors, meta)
    return floor


# ----------------------------------------------------------------------------- Inception

def build_pytorch_fid_inception():
    """pytorch-fid's InceptionV3([3]) with fid_inception_v3 minus its weight download."""
    def fid_inception_v3_no_download():
        inception = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        inception.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
        inception.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
        inception.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
        inception.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
        inception.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
        inception.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
        inception.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
        inception.Mixed_7b = pfi.FIDInceptionE_1(1280)
        inception.Mixed_7c = pfi.FIDInceptionE_2(2048)
        fid_inception_v3_no_download.net = inception
        return inception

    orig = pfi.fid_inception_v3
    pfi.fid_inception_v3 = fid_inception_v3_no_download
    try:
        model = pfi.InceptionV3([3])
    finally:
        pfi.fid_inception_v3 = orig
    return model, fid_inception_v3_no_download.net


def seeded_state_dict(net, gen):
    """Seeded weights that stay small on disk: conv/fc weights are strided views of short
    storages; the BatchNorm vectors are views (at different offsets) of four shared storages."""
    shared = {"running_var": torch.rand(2560, generator=gen) + 0.5,
              "running_mean": 0.1 * torch.randn(2560, generator=gen),
              "weight": torch.rand(2560, generator=gen) * 0.5 + 0.75,
              "bias": 0.1 * torch.randn(2560, generator=gen)}
    sd = collections.OrderedDict()
    for i, (k, v) in enumerate(net.state_dict().items()):
        kind = k.rsplit(".", 1)[1]
        if kind == "num_batches_tracked":
            sd[k] = torch.zeros((), dtype=torch.int64)
        elif v.dim() >= 2:  # conv / fc weight: W[o, i, h, w] = s[o + i + h + w]
            fan_in = v[0].numel()
            storage = torch.randn(sum(s - 1 for s in v.shape) + 1, generator=gen) * (2.0 / fan_in) ** 0.5
            sd[k] = storage.as_strided(v.shape, (1,) * v.dim())
        else:
            offset = (97 * i) % (2560 - v.numel() + 1)
            sd[k] = shared[kind].as_strided(v.shape, (1,), offset)
    return sd


def calibrate(model, net, sd, x):
    """Rescales each conv weight (its storage, in place) so its output has unit std on x,
    keeping activations O(1) through the random network."""
    scale, hooks = {}, []
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            def hook(mod, inp, out, name=name):
                s = float(out.std())
                scale[name] = s
                return out / s
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for name, s in scale.items():  # rescale the short storage, keep the strided view
        w = sd[name + ".weight"]
        base = torch.as_strided(w, (sum(n - 1 for n in w.shape) + 1,), (1,)) / s
        sd[name + ".weight"] = base.as_strided(w.shape, (1,) * w.dim())
    net.load_state_dict(sd, strict=True)


def inception_case(out, rng):
    gen = torch.Generator().manual_seed(1234)
    model, net = build_pytorch_fid_inception()
    sd = seeded_state_dict(net, gen)
    net.load_state_dict(sd, strict=True)  # exactly pytorch-fid's keys and shapes
    model.eval()
    imgs = {"batch": np.stack([smooth_image(rng, 48, 64), smooth_image(rng, 48, 64)]),
            "odd": smooth_image(rng, 37, 53)[None]}
    calibrate(model, net, sd, torch.from_numpy(imgs["batch"]).permute(0, 3, 1, 2).float().div(255))
    torch.save(sd, os.path.join(out, "inception_seeded.pth"))
    tensors, floor = {}, 0.0
    for name, u8 in imgs.items():
        x = torch.from_numpy(u8).permute(0, 3, 1, 2)  # RGB uint8 [N, 3, H, W]
        with torch.no_grad():
            f32 = model(x.float().div(255))[0].squeeze(3).squeeze(2)
            f64 = model.double()(x.double().div(255))[0].squeeze(3).squeeze(2)
            model.float()
        floor = max(floor, float(((f32.double() - f64).abs().max() / f64.abs().max())))
        tensors[f"{name}.images"] = x.contiguous()
        tensors[f"{name}.features"] = f64
    save_safetensors(os.path.join(out, "inception_features.safetensors"), tensors,
                     {"floor_f32_rel": repr(floor), "feature_abs_max": repr(float(tensors["batch.features"].abs().max()))})
    return floor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/eval")
    ap.add_argument("--skip-inception", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    versions = dict(torch=torch.__version__, torchvision=torchvision.__version__, numpy=np.__version__,
                    scipy=scipy.__version__, skimage=skimage.__version__, pytorch_fid=pytorch_fid.__version__)
    print("versions:", versions)
    rng = np.random.default_rng(20240514)
    print("frame floors:", frame_cases(args.out, rng))
    video_case(args.out, rng)
    print("frechet floor (relative):", frechet_cases(args.out, rng))
    if not args.skip_inception:
        print("inception float32 floor (relative to max |feature|):", inception_case(args.out, rng))


if __name__ == "__main__":
    main()
