#!/usr/bin/env python3
"""LPIPS parity fixtures for ipa_eval (tests/eval/test_lpips.cpp), made by the `lpips` package
itself (lpips 0.1.4: `lpips.LPIPS(net='alex'|'vgg')`, its torchvision AlexNet / VGG16 feature
slices, ScalingLayer, normalize_tensor, NetLinLayer, spatial average, sum over layers).

No real weights are used. The script writes random weights in the formats of the real files and
lets lpips load them through its own paths:

  * backbone: a torchvision `alexnet()` / `vgg16()` state dict (every key, classifier included)
    saved under the real file name (`alexnet-owt-7be5be79.pth`, `vgg16-397923af.pth`) in a
    private TORCH_HOME hub cache, so that `lpips.LPIPS(pnet_rand=False)` -> torchvision's
    `alexnet(pretrained=True)` -> `torch.hub.load_state_dict_from_url` loads it like the real
    download (an existing cache file is not hash-checked and nothing is fetched);
  * lin layers: `lin0..lin4.model.1.weight` as in lpips' `weights/v0.1/<net>.pth`, passed as
    `model_path`.

Compact and reproducible: every conv / linear weight is an overlapping strided view with
stride 1 in every dimension of a short seeded storage (W[o, i, h, w] = s[o + i + h + w]), which
torch.save stores as it is (AlexNet's file is 157 KB instead of 244 MB); biases are views of one
shared storage. Conv storages are rescaled and conv biases set so that every conv output
channel is centred with unit spread (+ a random offset) on the first input (activations stay
O(1) and input-dependent through the random network). All files are in the zip format of
torch.save, which the
restricted .pth reader reads. lpips ships its lin weights in the legacy (pre-1.6, non-zip)
format, which ipa refuses with a re-save hint: `lpips_alex_lin_legacy.pth` (the same tensors,
legacy format) pins that error. Legacy files are not byte-reproducible (their storage keys are
memory addresses); the zip files are.

Inputs: seeded smooth uint8 RGB images (as gen_eval_fixtures.py), generated = ground truth +
noise; lpips input = uint8 / 127.5 - 1 (lpips.im2tensor). Outputs per net: the LPIPS value of
each pair and each layer's term, from a float64 run (the reference); the float32 floor = the
largest |lpips float32 - float64| over the cases, with torch's default and channels_last conv
layouts.

    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_lpips_fixtures.py --out tests/fixtures/eval
"""

import argparse
import collections
import contextlib
import os
import sys
import tempfile

import numpy as np
import torch
import torchvision
import lpips

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_eval_fixtures import perturb, save_safetensors, smooth_image  # noqa: E402

NETS = {
    "alex": dict(ctor=torchvision.models.alexnet, file="alexnet-owt-7be5be79.pth", chns=[64, 192, 384, 256, 256]),
    "vgg": dict(ctor=torchvision.models.vgg16, file="vgg16-397923af.pth", chns=[64, 128, 256, 512, 512]),
}


def strided_state_dict(net, gen):
    """Weights W[o, i, ...] = s[o + i + ...] of short storages; biases views of one storage."""
    bias_pool = 0.1 * torch.randn(8192, generator=gen)
    sd = collections.OrderedDict()
    for i, (k, v) in enumerate(net.state_dict().items()):
        if v.dim() >= 2:
            fan_in = v[0].numel()
            storage = torch.randn(sum(s - 1 for s in v.shape) + 1, generator=gen) * (2.0 / fan_in) ** 0.5
            sd[k] = storage.as_strided(v.shape, (1,) * v.dim())
        else:
            sd[k] = bias_pool.as_strided(v.shape, (1,), (97 * i) % (bias_pool.numel() - v.numel() + 1))
    return sd


def calibrate(net, sd, x, gen):
    """Per conv, on x: the weight storage divided by the output's spread and the bias set so each
    output channel is centred plus 0.2 N(0, 1) (the strided weights give every channel of a layer
    nearly the same response to the input mean; without the centring deep VGG layers die)."""
    net.load_state_dict(sd, strict=True)
    fix, hooks = {}, []
    for name, m in net.features.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            def hook(mod, inp, out, name=name):
                mean = out.mean(dim=(0, 2, 3))
                spread = float((out - mean.view(1, -1, 1, 1)).std())
                beta = 0.2 * torch.randn(out.shape[1], generator=gen)
                fix[name] = (spread, (mod.bias - mean) / spread + beta)
                return (out - mean.view(1, -1, 1, 1)) / spread + beta.view(1, -1, 1, 1)
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        net.features(x)
    for h in hooks:
        h.remove()
    for name, (spread, bias) in fix.items():
        w = sd[f"features.{name}.weight"]
        base = torch.as_strided(w, (sum(n - 1 for n in w.shape) + 1,), (1,)) / spread
        sd[f"features.{name}.weight"] = base.as_strided(w.shape, (1,) * w.dim())
        sd[f"features.{name}.bias"] = bias.detach().clone()
    return sd


def lin_state_dict(chns, gen):
    """Non-negative like the trained lin layers (lpips clamps them at 0 when training)."""
    return collections.OrderedDict(
        (f"lin{k}.model.1.weight", (0.1 + torch.rand(c, generator=gen)).view(1, c, 1, 1)) for k, c in enumerate(chns))


@contextlib.contextmanager
def torch_home(path):
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = old


def to_input(u8, dtype):
    """lpips.im2tensor: RGB uint8 HWC -> [N, 3, H, W] in [-1, 1] (x / 127.5 - 1)."""
    return torch.from_numpy(u8).permute(0, 3, 1, 2).to(dtype) / 127.5 - 1


def run_lpips(model, gen_u8, gt_u8, dtype, channels_last=False):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(dtype=dtype, memory_format=fmt)
    a, b = (to_input(u8, dtype).contiguous(memory_format=fmt) for u8 in (gen_u8, gt_u8))
    with torch.no_grad():
        val, layers = model(a, b, retPerLayer=True)
    model.to(memory_format=torch.contiguous_format)
    return val.flatten(), torch.stack([r.flatten() for r in layers])


def make_inputs(rng):
    """Two 64x64 frames of one clip and a 48x80 frame; generated = ground truth + noise."""
    cases = {}
    for name, (h, w, n, amp) in {"clip": (64, 64, 2, 18.0), "wide": (48, 80, 1, 40.0)}.items():
        gt = np.stack([smooth_image(rng, h, w) for _ in range(n)])
        gen = np.stack([perturb(rng, g, amp) for g in gt])
        cases[name] = (gen, gt)
    return cases


def net_case(out, name, spec, cases, seed):
    gen = torch.Generator().manual_seed(seed)
    tv_net = spec["ctor"](weights=None).eval()
    sd = strided_state_dict(tv_net, gen)
    first = to_input(cases["clip"][1], torch.float32)
    sd = calibrate(tv_net, sd, (first - torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1))
                   / torch.tensor([.458, .448, .450]).view(1, 3, 1, 1), gen)
    lin = lin_state_dict(spec["chns"], gen)
    backbone_path = os.path.join(out, f"lpips_{name}_backbone.pth")
    lin_path = os.path.join(out, f"lpips_{name}_lin.pth")
    torch.save(sd, backbone_path)
    torch.save(lin, lin_path)
    if name == "alex":  # the format lpips ships its weights in, which ipa refuses with a re-save hint
        torch.save(lin, os.path.join(out, "lpips_alex_lin_legacy.pth"), _use_new_zipfile_serialization=False)
    with tempfile.TemporaryDirectory() as home:
        os.makedirs(os.path.join(home, "hub", "checkpoints"))
        os.symlink(os.path.abspath(backbone_path), os.path.join(home, "hub", "checkpoints", spec["file"]))
        with torch_home(home):
            model = lpips.LPIPS(pretrained=True, net=name, pnet_rand=False, model_path=lin_path, verbose=False)
    check_loaded(model, sd, lin)
    tensors, floor, scale = {}, 0.0, 0.0
    for case, (g, t) in cases.items():
        # float32 floor: lpips in float32 with both of torch's conv layouts (other kernels, other
        # rounding; channels_last rounds 3-4x further from float64 here), the larger error.
        v32, _ = run_lpips(model, g, t, torch.float32)
        v32_cl, _ = run_lpips(model, g, t, torch.float32, channels_last=True)
        v64, l64 = run_lpips(model, g, t, torch.float64)
        assert (l64 > 1e-3 * v64).all(), f"{name} {case}: a layer term is ~0 (dead random layer)"
        floor = max(floor, float((v32.double() - v64).abs().max()), float((v32_cl.double() - v64).abs().max()))
        scale = max(scale, float(v64.abs().max()))
        tensors.update({f"{case}.generated": torch.from_numpy(g), f"{case}.ground_truth": torch.from_numpy(t),
                        f"{case}.{name}.lpips_f64": v64, f"{case}.{name}.lpips_f32": v32,
                        f"{case}.{name}.layers_f64": l64})
        print(f"lpips {name} {case}: {v64.tolist()} (layers {l64.tolist()})")
    return tensors, floor, scale


def check_loaded(model, sd, lin):
    """lpips really runs our weights: its slices hold the backbone, its lins the lin file."""
    params = dict(model.net.named_parameters())
    for k, v in sd.items():
        if k.startswith("features."):
            idx, kind = k.split(".")[1:]
            match = [p for n, p in params.items() if n.split(".")[1:] == [idx, kind]]
            assert len(match) == 1 and torch.equal(match[0].float(), v), k
    for k, v in lin.items():
        assert torch.equal(model.state_dict()[k].float(), v), k


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/eval")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    print("versions:", dict(torch=torch.__version__, torchvision=torchvision.__version__, numpy=np.__version__,
                            lpips="0.1.4"))
    cases = make_inputs(np.random.default_rng(20240611))
    tensors, meta = {}, {"generator": "scripts/gen_lpips_fixtures.py", "lpips": "0.1.4", "torch": torch.__version__,
                         "torchvision": torchvision.__version__}
    for seed, (name, spec) in enumerate(NETS.items()):
        t, floor, scale = net_case(args.out, name, spec, cases, 4321 + seed)
        tensors.update(t)
        meta[f"{name}_floor_f32"] = repr(floor)
        meta[f"{name}_max_abs"] = repr(scale)
        print(f"lpips {name}: float32 floor {floor:.3g} (max |lpips| {scale:.3g})")
    save_safetensors(os.path.join(args.out, "lpips_cases.safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
