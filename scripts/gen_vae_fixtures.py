#!/usr/bin/python3
"""Parity fixtures for the C++ Wan 2.1 VAE, made by running the OFFICIAL upstream module
(github.com/Wan-Video/Wan2.1 wan/modules/vae.py: `WanVAE_` with its chunked causal
encode/decode and feature cache) on a tiny config with seeded random weights.

No upstream code lives in this repository: vae.py is read at run time from a checkout or
extracted tree (--wan-src DIR) or a bare git directory (--wan-git GITDIR) and executed in a
private module namespace. Debian's python3-torch 1.13 lacks two things vae.py uses, which
are shimmed here:
  * `einops.rearrange`: only the two patterns vae.py uses ('b c t h w -> (b t) c h w' and
    '(b t) c h w -> b c t h w'), as permute + reshape;
  * `F.scaled_dot_product_attention` (torch >= 2.0): exact softmax(q kᵀ / sqrt(C)) v.
The float64 reference run widens vae.py's one hard cast (`.float()` in Upsample) textually.

Run with Debian's torch (CPU):
    /usr/bin/python3 scripts/gen_vae_fixtures.py --wan-src /tmp/Wan2.1 --out tests/fixtures/vae

Writes tiny.weights.pth (F16-exact weights), <case>.safetensors per case, the key list of the
real config (wan2.1-vae.keys.txt) and README.md. See tests/fixtures/vae/README.md.
"""

import argparse
import collections
import hashlib
import math
import os
import sys
import types
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_wan_fixtures import UpstreamSource, on_meta_device, save_safetensors  # noqa: E402

warnings.filterwarnings('ignore', message='.*CUDA is not available.*')
warnings.filterwarnings('ignore', message='.*torch.cuda.amp.autocast.*')

VAE_FILE = 'wan/modules/vae.py'

TINY = dict(dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
            temperal_downsample=[False, True, True], dropout=0.0)
REAL = dict(TINY, dim=96)
# Official latent statistics (wan/modules/vae.py WanVAE), as float32 tensors like upstream.
MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


# ----------------------------------------------------------------------------------------------
# Shims
# ----------------------------------------------------------------------------------------------
def rearrange(x, pattern, **axes):
    p = pattern.replace(' ', '')
    if p == 'bcthw->(bt)chw':
        b, c, t, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    if p == '(bt)chw->bcthw':
        t = axes['t']
        bt, c, h, w = x.shape
        return x.reshape(bt // t, t, c, h, w).permute(0, 2, 1, 3, 4)
    raise NotImplementedError(f'rearrange shim: pattern {pattern!r}')


def exact_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    assert attn_mask is None and dropout_p == 0.0 and not is_causal
    s = torch.matmul(q, k.transpose(-2, -1)) * (scale if scale is not None else 1.0 / math.sqrt(q.size(-1)))
    return torch.matmul(s.softmax(dim=-1), v)


def load_upstream_vae(source, name, widen=False):
    einops = types.ModuleType('einops')
    einops.rearrange = rearrange
    sys.modules['einops'] = einops
    if not hasattr(F, 'scaled_dot_product_attention'):
        F.scaled_dot_product_attention = exact_sdpa
    src = source.read(VAE_FILE)
    digest = hashlib.sha256(src.encode()).hexdigest()
    n_casts = src.count('.float()')
    if widen:  # Upsample's `x.float()` (and WanVAE's output casts, unused here)
        src = src.replace('.float()', '.double()')
    mod = types.ModuleType(name)
    mod.__file__ = source.origin(VAE_FILE)
    sys.modules[name] = mod
    exec(compile(src, mod.__file__, 'exec'), mod.__dict__)
    return mod, digest, n_casts


# ----------------------------------------------------------------------------------------------
# Deterministic inputs: an integer hash of the flat index, mapped to multiples of 2^-23 in
# [-1, 1) (exact in float32 and float64). tests/vae/test_vae_parity.cpp has the same function.
# ----------------------------------------------------------------------------------------------
def det_uniform(shape, seed):
    n = int(np.prod(shape))
    m = np.uint64(0xFFFFFFFF)
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B1) + np.uint64((seed * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF)) & m
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x2C1B3C6D)) & m
    h ^= h >> np.uint64(12)
    h = (h * np.uint64(0x297A2D39)) & m
    h ^= h >> np.uint64(15)
    v = (h >> np.uint64(8)).astype(np.float64) / float(1 << 23) - 1.0
    return torch.from_numpy(v.reshape(shape)).float()


def randomise(model, gen):
    """Every parameter random and exactly representable in float16 (stored as F16):
    conv weights N(0,1)/sqrt(fan_in), biases 0.1·N(0,1), RMS_norm gains 1 + 0.1·N(0,1).
    Upstream zero-initialises the attention `proj` weight; here it is random too."""
    sd = collections.OrderedDict()
    with torch.no_grad():
        for n, p in model.named_parameters():
            z = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if n.endswith('.gamma'):
                v = 1.0 + 0.1 * z
            elif n.endswith('.bias'):
                v = 0.1 * z
            else:
                v = z / math.sqrt(p[0].numel())
            p.copy_(v.half().float())
            sd[n] = p.detach().half().clone()
    return sd


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------
CASES = [
    # encode: video [B, 3, T, H, W] -> normalised mu [B, 16, 1 + (T-1)/4, H/8, W/8]
    dict(name='enc_t1_16x24', kind='encode', shape=(1, 3, 1, 16, 24), seed=11, store_input=True),
    dict(name='enc_t5_16x24', kind='encode', shape=(1, 3, 5, 16, 24), seed=12),
    dict(name='enc_t9_24x40', kind='encode', shape=(1, 3, 9, 24, 40), seed=13),
    dict(name='enc_t17_16x24', kind='encode', shape=(1, 3, 17, 16, 24), seed=14, grads=True),
    dict(name='enc_b2_t5_16x16', kind='encode', shape=(2, 3, 5, 16, 16), seed=15),
    # decode: normalised latents [B, 16, t, h, w] -> video [B, 3, 1 + 4(t-1), 8h, 8w] (unclamped)
    dict(name='dec_t1_24x40', kind='decode', shape=(1, 16, 1, 3, 5), seed=21, store_input=True),
    dict(name='dec_t4_16x24', kind='decode', shape=(1, 16, 4, 2, 3), seed=22, grads=True),
    dict(name='dec_t5_16x16', kind='decode', shape=(1, 16, 5, 2, 2), seed=23),
    dict(name='dec_b2_t2_16x16', kind='decode', shape=(2, 16, 2, 2, 2), seed=24),
]


def scale_for(dtype):
    mean = torch.tensor(MEAN, dtype=torch.float32)
    inv_std = 1.0 / torch.tensor(STD, dtype=torch.float32)  # float32 like upstream's WanVAE.scale
    return [mean.to(dtype), inv_std.to(dtype)]


def run_case(cs, m32, m64):
    x = det_uniform(cs['shape'], cs['seed'])
    if cs['kind'] == 'decode':
        x = 2.0 * x  # latents in [-2, 2)
    fn32 = m32.encode if cs['kind'] == 'encode' else m32.decode
    fn64 = m64.encode if cs['kind'] == 'encode' else m64.decode
    grad_info = None
    if cs.get('grads'):
        m32.zero_grad(set_to_none=True)
        out = fn32(x, scale_for(torch.float32))
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(cs['seed']))
        (out * g).sum().backward()
        part = 'encoder.' if cs['kind'] == 'encode' else 'decoder.'
        tops = ('conv1.',) if cs['kind'] == 'encode' else ('conv2.',)
        zero, checked = [], 0
        for n, p in m32.named_parameters():
            if not (n.startswith(part) or n.startswith(tops)):
                continue
            grad = p.grad
            if n.startswith('conv1.'):  # only the mu half of the top conv1 reaches the output
                grad = grad[:m32.z_dim]
            checked += 1
            if grad is None or grad.abs().max().item() == 0:
                zero.append(n)
        assert not zero, f"{cs['name']}: zero gradient for {zero}"
        grad_info = checked
        out = out.detach()
    else:
        with torch.no_grad():
            out = fn32(x, scale_for(torch.float32))
    with torch.no_grad():
        out64 = fn64(x.double(), scale_for(torch.float64))
    assert out.dtype == torch.float32 and out64.dtype == torch.float64
    floor = (out.double() - out64).abs().max().item()
    io = dict(out=out, out_f64=out64.float(), floor=torch.tensor([floor], dtype=torch.float64))
    if cs.get('store_input'):  # to check the C++ generator; other inputs are regenerated
        io['input'] = x
    return io, floor, out64.abs().max().item(), grad_info


def write_keylist(mod, out_dir):
    """Parameter names + shapes of the real config, built from the upstream classes with
    parameters on the 'meta' device (gen_wan_fixtures.on_meta_device)."""
    model = on_meta_device(lambda: mod.WanVAE_(**REAL), names=('empty', 'ones', 'zeros'))
    params = dict(model.named_parameters())
    n_params = sum(p.numel() for p in params.values())
    assert len(params) == 194, len(params)
    path = os.path.join(out_dir, 'wan2.1-vae.keys.txt')
    with open(path, 'w') as f:
        for k in sorted(params):
            f.write(k + '\t' + ','.join(str(s) for s in params[k].shape) + '\n')
    print(f'[keys] {len(params)} tensors, {n_params:,} parameters -> {path}')
    return len(params), n_params


def write_readme(out_dir, source, digest, n_casts, results, keys, n_weights, argv):
    L = ['# Wan 2.1 VAE parity fixtures\n']
    L.append('Generated by `scripts/gen_vae_fixtures.py` from the OFFICIAL upstream module '
             '(github.com/Wan-Video/Wan2.1 `wan/modules/vae.py`, class `WanVAE_` with its own chunked '
             'encode/decode and feature cache), loaded at run time (no upstream code is in this '
             f'repository), on CPU with Debian `python3-torch` {torch.__version__}. Do not edit by '
             'hand; regenerate instead.\n')
    L.append('```')
    L.append('git --git-dir=<mirror of Wan-Video/Wan2.1> archive ' + (source.commit or 'HEAD') +
             ' | tar -x -C /tmp/Wan2.1')
    L.append('/usr/bin/python3 scripts/gen_vae_fixtures.py ' + ' '.join(argv))
    L.append('```\n')
    L.append(f'Upstream commit: `{source.commit}`  ')
    L.append(f'sha256 `{VAE_FILE}`: `{digest}`\n')
    L.append('## Files\n')
    L.append('* `tiny.weights.pth`: `torch.save` of the state dict of `WanVAE_(dim=4, z_dim=16, '
             'dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[], temperal_downsample=[False, '
             'True, True])` (the released structure at width 4: 194 tensors, '
             f'{n_weights:,} parameters), stored as F16. Every parameter is random and exactly '
             'representable in float16, so the F16 file holds the exact values both upstream runs '
             'used: conv weights N(0,1)/sqrt(fan_in), biases 0.1·N(0,1), RMS_norm gains '
             '1 + 0.1·N(0,1) (upstream zero-initialises the attention `proj`; here it is random). '
             'Read by the C++ test through the restricted .pth reader.')
    L.append('* `<case>.safetensors`: `out` F32 = upstream float32 output '
             '(`WanVAE_.encode(x, scale)`: normalised mu; `WanVAE_.decode(z, scale)`: the video '
             'BEFORE the [-1, 1] clamp of the `WanVAE` wrapper), `out_f64` = the float64 run of the '
             'same upstream code rounded to F32 (rounding ≤ 6e-8 relative, far below the floors), '
             '`floor` F64 [1] = max |out − out_f64| computed in float64 before rounding. `scale` is '
             '[mean, 1/std] as float32 tensors, like upstream `WanVAE` (widened to float64 for the '
             'float64 run). `enc_t1_16x24` and `dec_t1_24x40` also hold their `input` F32 (the video '
             '[B, 3, T, H, W] / the NORMALISED latents [B, 16, t, h, w]).')
    L.append('* `wan2.1-vae.keys.txt`: `name<TAB>shape` of all parameters of the real config '
             '(`_video_vae`: dim 96), sorted, built from the upstream classes on the meta device.\n')
    L.append('Inputs are not stored as random draws but generated by an integer hash of the flat '
             'index (`det_uniform(shape, seed)` in the script and in `tests/vae/vae_test_util.h`): '
             'values k·2^-23 − 1 in [−1, 1), exact in float32 and float64 (latents are 2× that). The '
             'two stored `input`s let the test check that its generator agrees.\n')
    L.append('## Shims used to run upstream\n')
    L.append('* `einops.rearrange`: the two patterns vae.py uses, as permute + reshape.')
    L.append('* `F.scaled_dot_product_attention` (torch ≥ 2.0 only): exact softmax(q kᵀ/√C) v in the '
             'inputs\' dtype.')
    L.append(f'* Float64 run: `.float()` → `.double()` textually ({n_casts} occurrences: the '
             '`Upsample` cast and the `WanVAE` wrapper\'s output casts, which are not used here); '
             'weights, inputs and `scale` are the float32 values, exact in float64.')
    L.append('* `torch.cuda.amp` is imported but not used by `WanVAE_`.\n')
    L.append('## Cases and measured float32 floors\n')
    L.append('floor = max |out − out_f64|: the float32 rounding noise of the reference itself. The '
             'C++ test requires max |ours − out| and max |ours − out_f64| below 10 × floor.\n')
    L.append('| case | input | output | max abs(out) | floor |')
    L.append('|---|---|---|---|---|')
    for cs, r in results:
        L.append(f"| `{cs['name']}` | {list(cs['shape'])} | {r['out_shape']} | {r['amax']:.3f} | "
                 f"{r['floor']:.2e} |")
    L.append('')
    grads = [(cs['name'], r['grads']) for cs, r in results if r['grads']]
    L.append('Coverage: in ' + ', '.join(f'`{n}` ({k} tensors)' for n, k in grads) + ' every '
             'encoder (+ top `conv1`, mu half) / decoder (+ top `conv2`) parameter gets a non-zero '
             'gradient, so no code path of the fixtures is dead (the decoder needs ≥ 4 latent '
             'frames for the first temporal upsampler\'s oldest tap, see docs/parity.md).\n')
    L.append(f'Key list: {keys[0]} tensors, {keys[1]:,} parameters (asserted: 194 tensors, as '
             'Appendix A of the spec).\n')
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir)
                if not f.endswith('.md'))
    L.append(f'Total size of the fixture files: {total:,} bytes. The generator is deterministic '
             '(fixed seeds, one thread).\n')
    with open(os.path.join(out_dir, 'README.md'), 'w') as f:
        f.write('\n'.join(L))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument('--wan-src', help='Wan2.1 checkout or extracted tree')
    g.add_argument('--wan-git', help='bare git dir of Wan2.1 (read with git show)')
    ap.add_argument('--wan-rev', default='HEAD')
    ap.add_argument('--wan-commit', help='commit hash to record when --wan-src has no .git')
    ap.add_argument('--out', required=True)
    args = ap.parse_args()

    torch.set_num_threads(1)
    source = UpstreamSource(args.wan_src, args.wan_git, args.wan_rev, args.wan_commit)
    os.makedirs(args.out, exist_ok=True)
    mod32, digest, n_casts = load_upstream_vae(source, '_wan_vae_f32')
    mod64, _, _ = load_upstream_vae(source, '_wan_vae_f64', widen=True)
    print(f'upstream commit {source.commit}; {VAE_FILE} sha256 {digest[:12]}')

    keys = write_keylist(mod32, args.out)

    m32 = mod32.WanVAE_(**TINY).float()
    sd = randomise(m32, torch.Generator().manual_seed(2024))
    m64 = mod64.WanVAE_(**TINY)
    m64.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    m64 = m64.double().eval()
    m32.eval()
    torch.save(sd, os.path.join(args.out, 'tiny.weights.pth'))
    n_weights = sum(v.numel() for v in sd.values())

    results = []
    for cs in CASES:
        io, floor, amax, grads = run_case(cs, m32, m64)
        save_safetensors(os.path.join(args.out, cs['name'] + '.safetensors'), io)
        r = dict(floor=floor, amax=amax, grads=grads, out_shape=list(io['out'].shape))
        results.append((cs, r))
        print(f"[{cs['name']}] in {list(cs['shape'])} out {r['out_shape']} max|out|={amax:.3f} "
              f"floor={floor:.3e}" + (f' grads checked on {grads} tensors' if grads else ''))
    write_readme(args.out, source, digest, n_casts, results, keys, n_weights, sys.argv[1:])
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f'fixture bytes: {total}')


if __name__ == '__main__':
    main()
