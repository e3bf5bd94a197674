#!/usr/bin/env python3
"""FVD and FID-VID parity fixtures for ipa_eval (tests/eval/test_fvd.cpp, test_fid_vid.cpp),
without the real weights.

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

FID-VID (DisCo's 'fid-vid', see the section below): PIL's own float bicubic resize (the
reference itself), DisCo's segmenting and mean subtraction, and the 3D ResNet-50 of DisCo's
tool/metrics/resnet3d.py written out here, with seeded weights saved in DisCo's checkpoint
layout ({'state_dict': {'module.<key>': ...}}), run in float64 (the reference) and float32
(the floor). The 2048-d FID of a handful of videos is not stored (its 2048x2048 sqrtm is the
already-tested pytorch-fid code, and slow).

Reference environment (pinned): Python 3.11, torch 2.11.0, numpy 2.4.6, scipy 1.17.1,
Pillow 13.0.0.

    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_fvd_fixtures.py --out tests/fixtures/eval
"""

import argparse
import copy
import importlib.util
import os

import numpy as np
import scipy
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_FRAMES = 16          # fvd2048_16f
DETECTOR_KWARGS = dict(rescale=True, resize=True, return_features=True)


def _sibling(name):  # reuse a sibling generator's helpers (no code duplication)
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                     name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


save_safetensors = _sibling("gen_eval_fixtures").save_safetensors


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
    fid_vid_fixtures(args.out, rng)


# ----------------------------------------------------------------------------- FID-VID
#
# DisCo's FID-VID ('fid-vid' -> mode "FVD-3DRN50" in tool/metrics/metric_center.py): the
# Kinetics 3D ResNet-50 of kenshohara's 3D-ResNets-PyTorch (tool/metrics/resnet3d.py:
# resnet50(num_classes=400, shortcut_type="B", sample_size=112, sample_duration=16,
# last_fc=False), weights eval_fvd/resnet-50-kinetics.pth, 'module.' stripped), fed by
# DatasetFVDVideoResize: every RGB frame resized to 112x112 per channel as a float32 PIL image
# (mode 'F', bicubic: clean-fid's make_resizer("PIL", False, "bicubic")), minus the pixel mean
# [114.7748, 107.7354, 99.4750], the last frame repeated up to a multiple of 16, 16-frame
# segments [seg, 3, 16, 112, 112]; the 2048-d features of a video's segments are averaged
# (compute_3d_video_prediction) and FID is DisCo's frechet_distance of np.mean / np.cov.

FIDVID_MEAN = [114.7748, 107.7354, 99.4750]
FIDVID_SIZE, FIDVID_DURATION = 112, 16


class Bottleneck3d(nn.Module):
    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        r = self.downsample(x) if self.downsample is not None else x
        return F.relu(y + r)


class ResNet3d50(nn.Module):
    """resnet3d.resnet50(shortcut_type='B', sample_size=112, sample_duration=16, last_fc=False)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, 7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        cin = 64
        for i, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]):
            layers = []
            for b in range(blocks):
                s = stride if b == 0 else 1
                ds = None
                if b == 0 and (s != 1 or cin != planes * 4):
                    ds = nn.Sequential(nn.Conv3d(cin, planes * 4, 1, stride=s, bias=False),
                                       nn.BatchNorm3d(planes * 4))
                layers.append(Bottleneck3d(cin, planes, s, ds))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.fc = nn.Linear(2048, 400)  # in the weight file; last_fc=False does not use it

    def forward(self, x):
        x = F.max_pool3d(F.relu(self.bn1(self.conv1(x))), kernel_size=3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        k = (int(np.ceil(FIDVID_DURATION / 16)), int(np.ceil(FIDVID_SIZE / 32)), int(np.ceil(FIDVID_SIZE / 32)))
        return F.avg_pool3d(x, k, stride=1).reshape(x.shape[0], -1)


def small_resnet3d_state(net, calib):
    """Seeded weights small on disk: conv/fc weights are stride-1 overlapping views (at random
    offsets) of one short random storage; every BatchNorm vector is one number broadcast (stride 0), its running
    mean/var set from the float64 activations of `calib` so that the 53 layers stay O(1)."""
    g = torch.Generator().manual_seed(7)
    shared = torch.randn(8192, generator=g, dtype=torch.float32)  # one storage for all weights
    sd = {}
    for name, p in net.named_parameters():
        if p.dim() > 1:  # the scale does not matter: a calibrated BatchNorm follows every conv
            n = sum(d - 1 for d in p.shape) + 1
            off = int(torch.randint(0, shared.numel() - n, (1,), generator=g))
            sd[name] = shared.as_strided(p.shape, (1,) * p.dim(), off)
        elif name.endswith(".weight"):   # BN gamma
            sd[name] = torch.tensor([0.8 + 0.4 * torch.rand(1, generator=g).item()], dtype=torch.float32).as_strided(p.shape, (0,))
        else:                            # BN beta / fc bias
            sd[name] = torch.tensor([0.1 * torch.randn(1, generator=g).item()], dtype=torch.float32).as_strided(p.shape, (0,))
    for name, b in net.named_buffers():
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.tensor(0, dtype=torch.int64)
        else:
            sd[name] = torch.tensor([0.0 if "mean" in name else 1.0], dtype=torch.float32).as_strided(b.shape, (0,))
    net = net.double()
    net.load_state_dict({k: v.double() for k, v in sd.items()})
    net.eval()
    stats = {}

    def hook(mod, inp, name):
        x = inp[0]
        m, v = float(x.mean()), float(x.var())
        mod.running_mean.fill_(m)
        mod.running_var.fill_(v)
        stats[name] = (m, v)

    hs = [m.register_forward_pre_hook(lambda mod, inp, n=n: hook(mod, inp, n))
          for n, m in net.named_modules() if isinstance(m, nn.BatchNorm3d)]
    with torch.no_grad():
        net(calib)
    for h in hs:
        h.remove()
    for n, (m, v) in stats.items():
        sd[n + ".running_mean"] = torch.tensor([m], dtype=torch.float32).as_strided(sd[n + ".running_mean"].shape, (0,))
        sd[n + ".running_var"] = torch.tensor([v], dtype=torch.float32).as_strided(sd[n + ".running_var"].shape, (0,))
    return sd


def pil_resize_f(frame_u8, size):
    """clean-fid make_resizer("PIL", False, "bicubic", (size, size)) on one RGB uint8 frame."""
    from PIL import Image
    chans = []
    for c in range(3):
        img = Image.fromarray(frame_u8[:, :, c].astype(np.float32), mode="F")
        img = img.resize((size, size), resample=Image.BICUBIC)
        chans.append(np.asarray(img).reshape(size, size, 1))
    return np.concatenate(chans, axis=2).astype(np.float32)


def fidvid_segments(video_u8):
    """DatasetFVDVideoResize.__getitem__ for mode FVD-3DRN50: [seg, 3, 16, 112, 112] float32."""
    video = torch.as_tensor(np.stack([pil_resize_f(f, FIDVID_SIZE) for f in video_u8])).float()
    n = video.shape[0]
    if n % FIDVID_DURATION != 0:
        pad = FIDVID_DURATION - n % FIDVID_DURATION
        video = torch.cat([video, video[[-1]].repeat(pad, 1, 1, 1)], dim=0)
        seg = n // FIDVID_DURATION + 1
    else:
        seg = n // FIDVID_DURATION
    video = video - torch.as_tensor(np.array(FIDVID_MEAN))   # float32 - float64 -> float64
    video = video.view(seg, FIDVID_DURATION, FIDVID_SIZE, FIDVID_SIZE, 3).permute(0, 4, 1, 2, 3).float()
    return video


def fid_vid_fixtures(out, rng):
    torch.manual_seed(11)
    n, frames, size = 2, FIDVID_DURATION + 3, 20       # 19 frames: 2 segments, the last padded
    gen = video_set(rng, n, frames, size, shift=10.0)
    real = video_set(rng, n, frames, size, shift=0.0)
    segs = {k: [fidvid_segments(v) for v in vids] for k, vids in (("gen", gen), ("real", real))}
    net = ResNet3d50()
    sd = small_resnet3d_state(net, segs["real"][0].double())
    # As DisCo's checkpoint: {'state_dict': {'module.<key>': tensor}}, float32 (the views as they are).
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}},
               os.path.join(out, "fid_vid_r50_seeded.pth"))
    net64 = ResNet3d50().double().eval()
    net64.load_state_dict({k: v.double() for k, v in sd.items()})
    net32 = ResNet3d50().eval()
    net32.load_state_dict({k: v.clone() for k, v in sd.items()})
    tensors, floor = {}, 0.0
    with torch.no_grad():
        for k in ("gen", "real"):
            vids = gen if k == "gen" else real
            tensors[k + ".videos"] = torch.from_numpy(vids)
            f64 = torch.stack([net64(s.double()).mean(0) for s in segs[k]])
            f32 = torch.stack([net32(s).mean(0) for s in segs[k]]).double()   # DisCo: float32 model
            floor = max(floor, float((f32 - f64).abs().max() / f64.abs().max()))
            tensors[k + ".features"] = f64
            # The preprocessing of video 0: its second segment (3 real + 13 repeated last frames),
            # the top-left 8x8 pixels of every frame.
            tensors[k + ".segment1_crop"] = segs[k][0][1, :, :, :8, :8].contiguous()
    save_safetensors(os.path.join(out, "fid_vid_cases.safetensors"), tensors,
                     metadata={"floor_f32_rel": repr(floor), "torch": torch.__version__})
    print(f"FID-VID: features floor {floor:.3g}; "
          f"{os.path.getsize(os.path.join(out, 'fid_vid_r50_seeded.pth'))} + "
          f"{os.path.getsize(os.path.join(out, 'fid_vid_cases.safetensors'))} bytes")


if __name__ == "__main__":
    main()
