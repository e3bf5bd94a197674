#!/usr/bin/env python3
"""FVD parity fixtures for ipa_eval (tests/eval/test_fvd.cpp), without the real I3D weights.

The reference is StyleGAN-V's FVD (universome/stylegan-v, src/metrics/frechet_video_distance.py
and metric_utils.py; the fvd2048_16f metric), re-implemented here step by step:

  * each video gives one clip of `num_frames` = 16 consecutive frames from its first frame
    (load_n_consecutive=16, subsample_factor=1; the generated side is read without a random
    offset), videos shorter than a clip are not used (discard_short_videos);
  * the clip is a uint8 RGB tensor [batch, 3, T, H, W] (the dataset's [batch, T, C, H, W]
    permuted) given to the TorchScript detector as
    detector(clip, rescale=True, resize=True, return_features=True);
  * FeatureStats in float64: mean = Σx / n, cov = Σxxᵀ / n − mean meanᵀ (divided by n);
  * FVD = |μ_gen − μ_real|² + tr(Σ_gen + Σ_real − 2·sqrtm(Σ_gen Σ_real)), real part, with
    scipy.linalg.sqrtm(disp=False).

The detector here is a TINY stand-in for StyleGAN-V's i3d_torchscript.pt (same forward
signature and call convention, random weights): forward(x, rescale: bool, resize: bool,
return_features: bool) -> [batch, D]; rescale maps uint8 [0, 255] to [-1, 1] and resize
interpolates every frame to 224x224 (trilinear, time kept), as the real module's flags do,
then two strided Conv3d layers and a global average pool give the features (return_features)
or a softmax over a linear layer (otherwise). ipa only feeds the clip and the flags, so the
module's inside does not need to be the real one for the parity of ipa's pipeline.

Floors: the float32 module (what ipa runs) against a float64 copy of it, as the largest
feature difference relative to the largest feature, and the FVD of the float32 features
against the float64 ones relative to the latter.

Reference environment (pinned): Python 3.11, torch 2.11.0, numpy 2.4.6, scipy 1.17.1.

    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_fvd_fixtures.py --out tests/fixtures/eval
"""

import argparse
import copy
import json
import os
import struct

import numpy as np
import scipy
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_FRAMES = 16          # fvd2048_16f
DETECTOR_KWARGS = dict(rescale=True, resize=True, return_features=True)


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


class TinyI3D(nn.Module):
    """Stand-in for i3d_torchscript.pt: same forward signature, a few random-weight layers."""

    def __init__(self, feature_dim=4, classes=5):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 6, kernel_size=(3, 7, 7), stride=(2, 8, 8), padding=(1, 3, 3))
        self.conv2 = nn.Conv3d(6, feature_dim, kernel_size=3, stride=2, padding=1)
        self.logits = nn.Linear(feature_dim, classes)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        x = x.to(self.conv1.weight.dtype)
        if rescale:
            x = x * (2.0 / 255.0) - 1.0
        if resize:
            x = F.interpolate(x, size=[x.shape[2], 224, 224], mode="trilinear", align_corners=False)
        x = F.relu(self.conv1(x))
        x = torch.tanh(self.conv2(x))
        feats = x.mean(dim=[2, 3, 4])
        if return_features:
            return feats
        return torch.softmax(self.logits(feats), dim=1)


def video_set(rng, n, frames, size, shift):
    """n smooth uint8 RGB videos [n, T, H, W, 3] drifting over time."""
    out = []
    for _ in range(n):
        base = rng.uniform(0, 255, size=(3, 4, 4))
        vel = rng.normal(0, 1.5, size=(2,))
        v = []
        for t in range(frames):
            img = torch.from_numpy(base)[None]
            img = F.interpolate(img, size=(size, size), mode="bicubic", align_corners=False)[0]
            img = torch.roll(img, shifts=(int(round(vel[0] * t)), int(round(vel[1] * t))), dims=(1, 2))
            arr = img.permute(1, 2, 0).numpy() + shift + rng.normal(0, 6, size=(size, size, 3))
            v.append(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
        out.append(np.stack(v))
    return np.stack(out)


def clip_features(detector, videos):
    """StyleGAN-V: first NUM_FRAMES frames, [B, T, C, H, W] -> [B, C, T, H, W] uint8, detector kwargs."""
    clips = torch.from_numpy(videos[:, :NUM_FRAMES]).permute(0, 1, 4, 2, 3)  # [B, T, C, H, W]
    clips = clips.permute(0, 2, 1, 3, 4).contiguous()                         # [B, C, T, H, W]
    with torch.no_grad():
        return detector(clips, **DETECTOR_KWARGS)


def mean_cov(features):
    """metric_utils.FeatureStats(capture_mean_cov=True).get_mean_cov(), in float64."""
    x64 = features.numpy().astype(np.float64)
    n = x64.shape[0]
    raw_mean = x64.sum(axis=0)
    raw_cov = x64.T @ x64
    mean = raw_mean / n
    cov = raw_cov / n - np.outer(mean, mean)
    return mean, cov


def fvd(feats_gen, feats_real):
    mu_gen, sigma_gen = mean_cov(feats_gen)
    mu_real, sigma_real = mean_cov(feats_real)
    m = np.square(mu_gen - mu_real).sum()
    s, _ = scipy.linalg.sqrtm(np.dot(sigma_gen, sigma_real), disp=False)
    return float(np.real(m + np.trace(sigma_gen + sigma_real - s * 2)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/eval")
    args = ap.parse_args()
    torch.manual_seed(20261203)
    rng = np.random.default_rng(20261203)

    det32 = TinyI3D().eval()
    det64 = copy.deepcopy(det32).double().eval()
    scripted = torch.jit.script(det32)
    module_path = os.path.join(args.out, "fvd_tiny_i3d.pt")
    scripted.save(module_path)

    # A module whose forward takes only the clip (the wrong call convention) and one whose
    # features are not [batch, D].
    class NoFlags(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.float().mean(dim=[1, 2, 3, 4])[:, None]

    class WrongShape(nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            return x.float().mean(dim=[1, 2])

    torch.jit.script(NoFlags()).save(os.path.join(args.out, "fvd_no_flags.pt"))
    torch.jit.script(WrongShape()).save(os.path.join(args.out, "fvd_wrong_shape.pt"))

    n, frames, size = 8, NUM_FRAMES + 1, 16   # one extra frame: only the first 16 are used
    gen = video_set(rng, n, frames, size, shift=12.0)
    real = video_set(rng, n, frames, size, shift=0.0)

    loaded = torch.jit.load(module_path).eval()   # the saved file, as ipa loads it
    f_gen32, f_real32 = clip_features(loaded, gen), clip_features(loaded, real)
    f_gen64, f_real64 = clip_features(det64, gen), clip_features(det64, real)
    fvd64 = fvd(f_gen64, f_real64)
    fvd32 = fvd(f_gen32, f_real32)
    feat_floor = max(float((f_gen32.double() - f_gen64).abs().max() / f_gen64.abs().max()),
                     float((f_real32.double() - f_real64).abs().max() / f_real64.abs().max()))
    fvd_floor = abs(fvd32 - fvd64) / abs(fvd64)
    save_safetensors(os.path.join(args.out, "fvd_cases.safetensors"), {
        "gen.videos": torch.from_numpy(gen), "real.videos": torch.from_numpy(real),
        "gen.features": f_gen64, "real.features": f_real64,
    }, metadata={
        "num_frames": NUM_FRAMES, "fvd": repr(fvd64), "fvd_f32": repr(fvd32),
        "floor_f32_rel": repr(feat_floor), "floor_fvd_f32_rel": repr(fvd_floor),
        "torch": torch.__version__, "scipy": scipy.__version__, "numpy": np.__version__,
    })
    print(f"FVD (float64 reference) {fvd64!r}, float32 {fvd32!r}")
    print(f"floors: features {feat_floor:.3g} (rel. to max |f|), FVD {fvd_floor:.3g} (rel.)")
    for name in ("fvd_tiny_i3d.pt", "fvd_no_flags.pt", "fvd_wrong_shape.pt", "fvd_cases.safetensors"):
        print(f"  {name}: {os.path.getsize(os.path.join(args.out, name))} bytes")


if __name__ == "__main__":
    main()
