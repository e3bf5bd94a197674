#!/usr/bin/env python3
"""Parity fixtures for DisCo's own FVD ('fvd' = mode "FVD-3DInception" in Wangt-CN/DisCo,
tool/metrics/metric_center.py), read by tests/eval/test_fvd_disco.cpp; no real weights needed.

The reference is DisCo's code itself where it can run here and its steps re-done faithfully
where it cannot (its dataset module imports ffmpeg-python, its metric module a CUDA device):

  * the network is DisCo's own `InceptionI3d(400, in_channels=3)`, imported from
    `<disco>/tool/metrics/inception3d.py` of a DisCo checkout given with --disco (piergiaj's
    pytorch-i3d with DisCo's two changes: AvgPool3d [1, 7, 7] instead of [2, 7, 7], and the
    logits averaged over time in forward);
  * DatasetFVDVideoResize for mode FVD-3DInception: every RGB frame of the whole video resized
    to 224x224 per channel as a float32 PIL image (mode 'F', bicubic: clean-fid's
    make_resizer("PIL", False, "bicubic")), `video / 127.5 - 1` in float32, [1, 3, T, 224, 224];
  * compute_3d_video_prediction: feat_model(clip) -> [1, 400] logits, one feature per video;
  * fid_from_feats: np.mean / np.cov(rowvar=False), DisCo's frechet_distance (pytorch-fid's
    calculate_frechet_distance, the same code, with scipy.linalg.sqrtm).

Weights: seeded, with exactly the state-dict keys and shapes of the real i3d_pretrained_400.pt
(12.7 M parameters, ~50 MB in float32), kept small on disk instead of shrinking the network:
every conv weight / bias and the BatchNorm weight / bias is a stride-1 view at a random
offset of one of a few short seeded storages (a weight [o, i, t, h, w] reads s[k + o + i +
t + h + w]), which torch.save stores as they are (the storage once) and the C++ reader
expands; the BatchNorm running mean / var are random per channel around the statistics of
the layer's input on a calibration clip (mean + 0.3 * N(0, 1) * std, var * U(0.5, 2)), so the
57 BatchNorm layers keep O(1) activations; no value is zero. The file is the same on every
torch version: the values themselves are stored (not a recipe the test re-creates).

Floors: the same network in float32 (what DisCo runs and what ipa runs) against float64 (the
reference), as the largest feature difference relative to the largest |feature|, and DisCo's
FVD of the float32 features against the FVD of the float64 ones.

Reference environment (pinned): Python 3.11, torch 2.11.0, numpy 2.4.6, scipy 1.17.1,
Pillow 13.0.0, pytorch-fid 0.3.0; DisCo at commit given in the fixture's metadata.

    git clone https://github.com/Wangt-CN/DisCo /path/to/DisCo   # fixtures made at c4fa48a
    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_disco_i3d_fixtures.py \
        --disco /path/to/DisCo --out tests/fixtures/eval
"""

import argparse
import importlib.util
import os

import numpy as np
import pytorch_fid.fid_score
import scipy
import torch
import torch.nn as nn


def _sibling(name):  # reuse a sibling generator's helpers (no code duplication)
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                     name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_fvd = _sibling("gen_fvd_fixtures")
save_safetensors = _fvd.save_safetensors
pil_resize_f = _fvd.pil_resize_f      # clean-fid make_resizer("PIL", False, "bicubic", (s, s))
video_set = _fvd.video_set

SIZE = 224


def disco_i3d_class(disco_root):
    path = os.path.join(disco_root, "tool", "metrics", "inception3d.py")
    spec = importlib.util.spec_from_file_location("disco_inception3d", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.InceptionI3d, mod.Unit3D


def disco_clip(video_u8):
    """DatasetFVDVideoResize.__getitem__, mode FVD-3DInception: [1, 3, T, 224, 224] float32."""
    video = np.stack([pil_resize_f(f, SIZE) for f in video_u8], axis=0)
    video = torch.as_tensor(video.copy()).float()
    video = video / 127.5 - 1
    return video.unsqueeze(0).permute(0, 4, 1, 2, 3).float()


def seeded_state_dict(net, unit_cls, calib):
    g = torch.Generator().manual_seed(1234)
    shared_w = torch.randn(6144, generator=g, dtype=torch.float32)        # conv weights, logits bias
    shared_gamma = 0.5 + torch.rand(1024, generator=g, dtype=torch.float32)  # BN weight in [0.5, 1.5)
    shared_beta = 0.2 * torch.randn(1024, generator=g, dtype=torch.float32)

    def view(storage, shape):
        n = sum(d - 1 for d in shape) + 1
        off = int(torch.randint(0, storage.numel() - n, (1,), generator=g))
        return storage.as_strided(tuple(shape), (1,) * len(shape), off)

    sd = {}
    for name, t in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.tensor(0, dtype=torch.int64)
        elif name.endswith("conv3d.weight") or name.endswith("conv3d.bias"):
            sd[name] = view(shared_w, t.shape)
        elif name.endswith("bn.weight"):
            sd[name] = view(shared_gamma, t.shape)
        elif name.endswith("bn.bias"):
            sd[name] = view(shared_beta, t.shape)
        elif name.endswith("running_mean") or name.endswith("running_var"):
            sd[name] = torch.ones(t.shape, dtype=torch.float32)  # set below from the calibration
        else:
            raise SystemExit(f"unexpected key {name}")
    # Running statistics: random around the real input statistics of each BatchNorm, set in one
    # float64 forward pass (each pre-hook runs before its layer, after the layers before it).
    net64 = net.double().eval()
    net64.load_state_dict({k: v.double() for k, v in sd.items()})
    stats = {}

    def pre_hook(mod, inp, name):
        x = inp[0]
        m = x.mean(dim=(0, 2, 3, 4))
        v = x.var(dim=(0, 2, 3, 4))
        rm = (m + 0.3 * torch.randn(m.shape, generator=g, dtype=torch.float64) * v.sqrt()).float()
        rv = (v * (0.5 + 1.5 * torch.rand(v.shape, generator=g, dtype=torch.float64))).float()
        mod.running_mean.copy_(rm.double())
        mod.running_var.copy_(rv.double())
        stats[name] = (rm, rv)

    hooks = [m.bn.register_forward_pre_hook(lambda mod, inp, n=n: pre_hook(mod, inp, n))
             for n, m in net64.named_modules() if isinstance(m, unit_cls) and hasattr(m, "bn")]
    with torch.no_grad():
        net64(calib.double())
    for h in hooks:
        h.remove()
    for n, (rm, rv) in stats.items():
        sd[n + ".bn.running_mean"] = rm.contiguous()
        sd[n + ".bn.running_var"] = rv.contiguous()
    assert all(not (v == 0).any() for k, v in sd.items() if v.dtype == torch.float32), "a zero entry"
    return sd


def fid_from_feats(feats1, feats2):
    """DisCo's fid_from_feats (its frechet_distance is pytorch-fid's calculate_frechet_distance)."""
    mu1, sig1 = np.mean(feats1, axis=0), np.cov(feats1, rowvar=False)
    mu2, sig2 = np.mean(feats2, axis=0), np.cov(feats2, rowvar=False)
    return float(pytorch_fid.fid_score.calculate_frechet_distance(mu1, sig1, mu2, sig2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--disco", required=True, help="a checkout of github.com/Wangt-CN/DisCo")
    ap.add_argument("--disco-commit", default="", help="recorded in the fixture's metadata")
    ap.add_argument("--out", default="tests/fixtures/eval")
    args = ap.parse_args()
    torch.manual_seed(20261203)
    rng = np.random.default_rng(20261203)
    InceptionI3d, Unit3D = disco_i3d_class(args.disco)

    # Small non-square uint8 RGB videos (H 28, W 22), upsampled to 224 by the preprocessing.
    # T = 9 is the shortest clip whose last feature map has 2 time steps (the time mean);
    # 2, 3, 4 frames give the odd / even cases of the 'SAME' padding in time.
    lengths = {"gen": [9, 2], "real": [3, 4]}
    videos = {k: [video_set(rng, 1, t, 28, shift=14.0 if k == "gen" else 0.0)[0][:, :, :22].copy()
                  for t in ts] for k, ts in lengths.items()}
    clips = {k: [disco_clip(v) for v in vids] for k, vids in videos.items()}

    net = InceptionI3d(400, in_channels=3)
    sd = seeded_state_dict(net, Unit3D, clips["gen"][0])
    path = os.path.join(args.out, "fvd_disco_i3d_seeded.pth")
    torch.save(sd, path)   # a plain state dict, as DisCo loads i3d_pretrained_400.pt

    # DisCo: feat_model = InceptionI3d(400, in_channels=3); load_state_dict(torch.load(...)); eval().
    net32 = InceptionI3d(400, in_channels=3)
    net32.load_state_dict(torch.load(path))
    net32.eval()
    net64 = InceptionI3d(400, in_channels=3).double()
    net64.load_state_dict({k: v.double() for k, v in torch.load(path).items()})
    net64.eval()

    tensors, feats32, feats64 = {}, {}, {}
    with torch.no_grad():
        for k in ("gen", "real"):
            f32, f64 = [], []
            for i, (v, c) in enumerate(zip(videos[k], clips[k])):
                tensors[f"{k}.{i}.video"] = torch.from_numpy(v)
                # compute_3d_video_prediction: model(batch).mean(0, keepdims=True), batch size 1.
                f32.append(net32(c).numpy().mean(0, keepdims=True))
                f64.append(net64(c.double()).numpy().mean(0, keepdims=True))
            feats32[k] = np.concatenate(f32)
            feats64[k] = np.concatenate(f64)
            tensors[f"{k}.features"] = torch.from_numpy(feats64[k])
    # The preprocessing of gen video 0: the top-left 6x6 pixels of its frames 0 and 8.
    tensors["gen.0.clip_crop"] = clips["gen"][0][0, :, [0, 8], :6, :6].contiguous()
    feat_floor = max(float(np.abs(feats32[k] - feats64[k]).max() / np.abs(feats64[k]).max())
                     for k in ("gen", "real"))
    fvd64 = fid_from_feats(feats64["gen"], feats64["real"])
    fvd32 = fid_from_feats(feats32["gen"], feats32["real"])   # DisCo's own run: float32 features
    fvd_floor = abs(fvd32 - fvd64) / abs(fvd64)
    save_safetensors(os.path.join(args.out, "fvd_disco_cases.safetensors"), tensors, metadata={
        "fvd": repr(fvd64), "fvd_f32": repr(fvd32), "floor_f32_rel": repr(feat_floor),
        "floor_fvd_f32_rel": repr(fvd_floor), "torch": torch.__version__, "numpy": np.__version__,
        "scipy": scipy.__version__, "disco_commit": args.disco_commit,
    })
    print(f"DisCo FVD (float64 features) {fvd64!r}, float32 features {fvd32!r}")
    print(f"floors: features {feat_floor:.3g} (rel. to max |f| = {np.abs(feats64['gen']).max():.3g}), "
          f"FVD {fvd_floor:.3g} (rel.)")
    for name in ("fvd_disco_i3d_seeded.pth", "fvd_disco_cases.safetensors"):
        print(f"  {name}: {os.path.getsize(os.path.join(args.out, name))} bytes")


if __name__ == "__main__":
    main()
