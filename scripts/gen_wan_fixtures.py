#!/usr/bin/python3
"""Parity fixtures for the C++ Wan 2.1 / VACE DiT, made by running the OFFICIAL upstream
PyTorch modules (github.com/Wan-Video/Wan2.1: wan/modules/model.py `WanModel`,
wan/modules/vace_model.py `VaceWanModel`) on tiny configs with seeded random weights.

No upstream code lives in this repository: the two module files are read at run time from
a checkout / extracted tree (--wan-src DIR) or from a bare git directory (--wan-git GITDIR,
read with `git show REV:path`), and executed inside a private fake package so that the
`wan` package __init__ (T5, CLIP, pipelines) is never imported.

Run with Debian's torch (CPU):
    /usr/bin/python3 scripts/gen_wan_fixtures.py --wan-src /tmp/Wan2.1 --out tests/fixtures/wan

Writes, per case: <case>.yaml, <case>.weights.safetensors, <case>.io.safetensors, and for the
first case <case>.grads.safetensors; plus the key lists vace-14b.keys.txt and
wan-t2v-1.3b.keys.txt (built on the 'meta' device, nothing allocated) and README.md.
See tests/fixtures/wan/README.md for the file contents.
"""

import argparse
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import types
import warnings

import torch
import torch.nn as nn

# Upstream wraps regions in torch.cuda.amp.autocast; without CUDA (or with CPU tensors) it is a
# no-op that warns. Silence that warning only.
warnings.filterwarnings('ignore', message='.*CUDA is not available.*')
warnings.filterwarnings('ignore', message='.*torch.cuda.amp.autocast.*')

MODULE_FILES = ('wan/modules/model.py', 'wan/modules/vace_model.py')


# ----------------------------------------------------------------------------------------------
# Upstream source access
# ----------------------------------------------------------------------------------------------
class UpstreamSource:

    def __init__(self, src_dir=None, git_dir=None, rev='HEAD', commit=None):
        assert (src_dir is None) != (git_dir is None), 'give exactly one of --wan-src / --wan-git'
        self.src_dir, self.git_dir, self.rev = src_dir, git_dir, rev
        self.commit = commit
        if self.commit is None:
            self.commit = self._detect_commit()

    def _detect_commit(self):
        try:
            if self.git_dir:
                cmd = ['git', '--git-dir', self.git_dir, 'rev-parse', self.rev + '^{commit}']
            else:
                cmd = ['git', '-C', self.src_dir, 'rev-parse', 'HEAD']
            return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
        except Exception:  # an extracted tree without .git: caller may pass --wan-commit
            return None

    def read(self, path):
        if self.git_dir:
            return subprocess.run(['git', '--git-dir', self.git_dir, 'show', f'{self.rev}:{path}'],
                                  check=True, capture_output=True, text=True).stdout
        with open(os.path.join(self.src_dir, path), encoding='utf-8') as f:
            return f.read()

    def origin(self, path):
        return f'{self.git_dir}@{self.rev}:{path}' if self.git_dir else os.path.join(self.src_dir, path)


# ----------------------------------------------------------------------------------------------
# Shims for modules missing on Debian (diffusers, flash_attn)
# ----------------------------------------------------------------------------------------------
def install_diffusers_shim():
    """Model code only needs ModelMixin / ConfigMixin as bases and register_to_config as a
    decorator: a plain nn.Module base and a pass-through decorator (it records the
    constructor arguments in `self.config`, which nothing here reads)."""
    if 'diffusers' in sys.modules:
        return

    class ModelMixin(nn.Module):
        pass

    class ConfigMixin:
        pass

    def register_to_config(init):

        def wrapper(self, *args, **kwargs):
            init(self, *args, **kwargs)
            if not hasattr(self, 'config'):
                object.__setattr__(self, 'config', dict(kwargs))

        wrapper.__wrapped__ = init
        return wrapper

    d = types.ModuleType('diffusers')
    cu = types.ModuleType('diffusers.configuration_utils')
    cu.ConfigMixin, cu.register_to_config = ConfigMixin, register_to_config
    dm = types.ModuleType('diffusers.models')
    mu = types.ModuleType('diffusers.models.modeling_utils')
    mu.ModelMixin = ModelMixin
    d.configuration_utils, d.models, dm.modeling_utils = cu, dm, mu
    sys.modules.update({
        'diffusers': d,
        'diffusers.configuration_utils': cu,
        'diffusers.models': dm,
        'diffusers.models.modeling_utils': mu,
    })


def exact_flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0., softmax_scale=None,
                          q_scale=None, causal=False, window_size=(-1, -1), deterministic=False,
                          dtype=torch.bfloat16, version=None):
    """Stand-in for wan.modules.attention.flash_attention with the same varlen semantics but
    exact arithmetic in the inputs' dtype (upstream casts to bf16 for flash-attn):
      * keys/values of sample i beyond k_lens[i] are masked out;
      * q_lens=None (the only way the DiT calls it): every query row is computed, padded rows
        included (they are trimmed at unpatchify);
      * default scale 1/sqrt(head_dim); q_scale multiplies q; Nq may be a multiple of Nk.
    q [B, Lq, Nq, C], k/v [B, Lk, Nk, C] -> [B, Lq, Nq, C] in q's dtype."""
    assert dropout_p == 0. and not causal and tuple(window_size) == (-1, -1)
    out_dtype = q.dtype
    b, lq, nq, c = q.shape
    lk, nk = k.size(1), k.size(2)
    q, k = q.to(v.dtype), k.to(v.dtype)  # as upstream: q/k follow v's dtype
    if q_scale is not None:
        q = q * q_scale
    if nq != nk:
        k = k.repeat_interleave(nq // nk, dim=2)
        v = v.repeat_interleave(nq // nk, dim=2)
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(c)
    s = torch.einsum('blhc,bmhc->bhlm', q, k) * scale
    if k_lens is not None:
        key_ok = torch.arange(lk)[None, :] < k_lens.to(torch.long).cpu()[:, None]  # [B, Lk]
        s = s.masked_fill(~key_ok[:, None, None, :].to(s.device), float('-inf'))
    x = torch.einsum('bhlm,bmhc->blhc', s.softmax(dim=-1), v)
    if q_lens is not None:  # rows a varlen kernel would not produce: zero
        q_ok = torch.arange(lq)[None, :] < q_lens.to(torch.long).cpu()[:, None]
        x = x * q_ok[:, :, None, None].to(x)
    return x.type(out_dtype)


# Float64 run: upstream hard-casts to float32 in RoPE (`torch.stack(output).float()`), the norms
# (`x.float()`), block/head modulation (`self.norm1(x).float()`, `asserts e.dtype ==
# torch.float32`, `amp.autocast(dtype=torch.float32)`), the time embedding
# (`sinusoidal_embedding_1d(...).float()`) and the output (`u.float()`). To run the SAME code in
# float64 these casts are widened textually at load time. Everything else (RoPE already in
# float64/complex128, the sinusoid in float64) is untouched.
F64_REWRITES = (
    ('.float()', '.double()'),
    ('torch.float32', 'torch.float64'),
    ('torch.complex64', 'torch.complex128'),
)


def widen_to_f64(src, name):
    counts = {}
    for a, b in F64_REWRITES:
        counts[a] = src.count(a)
        src = src.replace(a, b)
    if name.endswith('model.py') and not name.endswith('vace_model.py'):
        assert counts['.float()'] >= 5 and counts['torch.float32'] >= 5, counts
    return src, counts


def load_upstream(source, pkg_name, transform=None):
    """Executes model.py and vace_model.py as `<pkg_name>.model` / `<pkg_name>.vace_model`
    (relative imports resolve inside the fake package; `.attention` is the exact shim)."""
    install_diffusers_shim()
    pkg = types.ModuleType(pkg_name)
    pkg.__path__ = []
    sys.modules[pkg_name] = pkg
    att = types.ModuleType(pkg_name + '.attention')
    att.flash_attention = exact_flash_attention
    att.__all__ = ['flash_attention']
    sys.modules[pkg_name + '.attention'] = att
    info = {}
    mods = {}
    for path in MODULE_FILES:
        src = source.read(path)
        info[path] = hashlib.sha256(src.encode()).hexdigest()
        if transform is not None:
            src, counts = transform(src, path)
            info[path + ':rewrites'] = counts
        short = os.path.splitext(os.path.basename(path))[0]
        mod = types.ModuleType(f'{pkg_name}.{short}')
        mod.__package__ = pkg_name
        mod.__file__ = source.origin(path)
        sys.modules[mod.__name__] = mod
        exec(compile(src, mod.__file__, 'exec'), mod.__dict__)
        setattr(pkg, short, mod)
        mods[short] = mod
    return mods, info


# ----------------------------------------------------------------------------------------------
# safetensors writer (8-byte LE header length, JSON header padded with spaces to 8, raw LE data;
# F32, F64, I64, I32, BF16; optional __metadata__). Also used by the other fixture scripts.
# ----------------------------------------------------------------------------------------------
ST_DTYPES = {torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64', torch.int32: 'I32',
             torch.bfloat16: 'BF16'}


def save_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header['__metadata__'] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        arr = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
        raw = arr.astype(arr.dtype.newbyteorder('<'), copy=False).tobytes()
        header[name] = {'dtype': ST_DTYPES[t.dtype], 'shape': list(t.shape),
                        'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------
BASE = dict(model_type='t2v', patch_size=(1, 2, 2), text_len=8, in_dim=4, dim=40, ffn_dim=64,
            freq_dim=16, text_dim=24, out_dim=4, num_heads=2, num_layers=2, qk_norm=True,
            cross_attn_norm=True, eps=1e-6)


def case(name, seed, batch, latent, ctx_len, t, seq_pad=0, vace=None, context_scale=None,
         grads=False, **cfg):
    c = dict(BASE)
    c.update(cfg)
    if vace is not None:
        c['model_type'] = 'vace'  # upstream VaceWanModel default
        c['vace_layers'], c['vace_in_dim'] = vace
    return dict(name=name, seed=seed, batch=batch, latent=latent, ctx_len=ctx_len, t=t,
                seq_pad=seq_pad, context_scale=context_scale, grads=grads, cfg=c)


CASES = [
    # head_dim 20 -> RoPE split 4/3/3 complex channels; in_dim != out_dim; batch 2.
    case('t2v_b2', seed=1001, batch=2, latent=(3, 4, 6), ctx_len=5, t=[937.0, 250.5],
         grads=True, out_dim=6),
    # no norm3; 5 padding tokens (masked as keys, computed as queries, trimmed).
    case('t2v_seqpad_nonorm', seed=2002, batch=1, latent=(3, 4, 6), ctx_len=5, t=[500.25],
         seq_pad=5, cross_attn_norm=False),
    # VACE: hints into main blocks 0, 2, 3 of 4.
    case('vace_b2', seed=3003, batch=2, latent=(3, 4, 6), ctx_len=5, t=[999.0, 37.75],
         vace=([0, 2, 3], 6), context_scale=0.7, num_layers=4),
    # VACE with token padding; smaller dims to keep the fixtures small (2 heads of head_dim 8
    # -> RoPE split 2/1/1, still uneven), 3 context rows.
    case('vace_seqpad', seed=4004, batch=1, latent=(2, 2, 4), ctx_len=3, t=[1.5],
         seq_pad=3, vace=([0, 1], 6), context_scale=1.3, num_layers=3, dim=16, ffn_dim=24),
]

YAML_KEYS = ('model_type', 'patch_size', 'text_len', 'in_dim', 'dim', 'ffn_dim', 'freq_dim',
             'text_dim', 'out_dim', 'num_heads', 'num_layers', 'qk_norm', 'cross_attn_norm', 'eps',
             'vace_layers', 'vace_in_dim')


def ctor_kwargs(cfg):
    kw = {k: v for k, v in cfg.items() if k in YAML_KEYS}
    kw['window_size'] = (-1, -1)
    return kw


def build(mods, cfg):
    kw = ctor_kwargs(cfg)
    if 'vace_layers' in cfg:
        return mods['vace_model'].VaceWanModel(**kw)
    return mods['model'].WanModel(**kw)


def write_yaml(path, name, cfg):

    def fmt(v):
        if isinstance(v, bool):
            return 'true' if v else 'false'
        if isinstance(v, (list, tuple)):
            return '[' + ', '.join(str(x) for x in v) + ']'
        if isinstance(v, float):  # 1e-06 -> 1.0e-6 (a float for YAML 1.1 readers too)
            m, e = f'{v:.1e}'.split('e')
            return f'{m}e{int(e)}'
        return str(v)

    lines = [f'# Wan parity fixture "{name}": upstream constructor arguments '
             '(window_size is always (-1, -1)). Generated by scripts/gen_wan_fixtures.py.']
    lines += [f'{k}: {fmt(cfg[k])}' for k in YAML_KEYS if k in cfg]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def randomise(model, gen):
    """Overwrite EVERY parameter (upstream zero-inits head.head and VACE before/after_proj)."""
    dim = None
    for n, p in model.named_parameters():
        if n == 'head.modulation':
            dim = p.shape[-1]
    sd = {}
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            z = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if n.endswith('modulation'):
                v = z / math.sqrt(dim)
            elif n.endswith('.bias'):
                v = 0.1 * z
            elif p.dim() == 1:  # RMSNorm / affine LayerNorm gains
                v = 1.0 + 0.1 * z
            else:  # Linear [out, in], Conv3d [out, in, kt, kh, kw]
                v = z / math.sqrt(p[0].numel())
            p.copy_(v.to(p.dtype))
            sd[n] = p.detach().clone()
    return sd


def run(model, kind, inp, dtype, seq_len, context_scale):
    x = [u.to(dtype) for u in inp['x']]
    ctx = [u.to(dtype) for u in inp['context']]
    t = inp['t'].to(dtype)
    if kind == 'vace':
        vc = [u.to(dtype) for u in inp['vace_context']]
        out = model(x, t, vc, ctx, seq_len, vace_context_scale=context_scale)
    else:
        out = model(x, t=t, context=ctx, seq_len=seq_len)
    return torch.stack(out)


def generate_case(cs, mods32, mods64, out_dir):
    cfg, name = cs['cfg'], cs['name']
    kind = 'vace' if 'vace_layers' in cfg else 't2v'
    gen = torch.Generator().manual_seed(cs['seed'])
    m32 = build(mods32, cfg).float()
    sd = randomise(m32, gen)
    m64 = build(mods64, cfg)
    missing = m64.load_state_dict(sd, strict=True)
    m64 = m64.double()

    b, (F, H, W) = cs['batch'], cs['latent']
    pt, ph, pw = cfg['patch_size']
    tokens = (F // pt) * (H // ph) * (W // pw)
    seq_len = tokens + cs['seq_pad']
    x = torch.randn(b, cfg['in_dim'], F, H, W, generator=gen)
    context = torch.randn(b, cs['ctx_len'], cfg['text_dim'], generator=gen)
    t = torch.tensor(cs['t'], dtype=torch.float32)
    assert t.numel() == b
    io = dict(x=x, t=t, context=context)
    inp = dict(x=list(x), t=t, context=list(context))
    cscale = None
    if kind == 'vace':
        vc = torch.randn(b, cfg['vace_in_dim'], F, H, W, generator=gen)
        io['vace_context'] = vc
        inp['vace_context'] = list(vc)
        cs32 = torch.tensor([cs['context_scale']], dtype=torch.float32)
        io['context_scale'] = cs32
        cscale = float(cs32.item())  # the float32-rounded value, used by BOTH runs
    if seq_len != tokens:
        io['seq_len'] = torch.tensor([seq_len], dtype=torch.int64)

    grad_out = torch.randn(b, cfg['out_dim'], F, H, W, generator=gen)  # drawn for every case

    # float32 run with autograd. Every case checks that every parameter gets a non-zero
    # gradient (so no code path is dead in the test); only cases with grads=True store them.
    m32.zero_grad(set_to_none=True)
    out = run(m32, kind, inp, torch.float32, seq_len, cscale)
    assert out.dtype == torch.float32 and out.shape == (b, cfg['out_dim'], F, H, W), out.shape
    (out * grad_out).sum().backward()
    all_grads = {}
    for n, p in m32.named_parameters():
        assert p.grad is not None, f'{name}: no gradient for {n}'
        assert p.grad.abs().max().item() > 0, f'{name}: gradient of {n} is all zero'
        all_grads['grad.' + n] = p.grad.detach().clone()
    out = out.detach()
    grads = dict(all_grads, grad_out=grad_out) if cs['grads'] else None

    # float64 run of the same (widened) upstream code
    out64 = run(m64, kind, inp, torch.float64, seq_len, cscale)
    assert out64.dtype == torch.float64
    (out64 * grad_out.double()).sum().backward()
    grad_floor = 0.0  # max over params of max|g32 - g64| / max|g64|
    for n, p in m64.named_parameters():
        g32, g64 = all_grads['grad.' + n].double(), p.grad
        rel = (g32 - g64).abs().max().item() / max(g64.abs().max().item(), 1e-30)
        grad_floor = max(grad_floor, rel)
    out64 = out64.detach()

    io['out'], io['out_f64'] = out, out64
    floor = (out.double() - out64).abs().max().item()
    amax = out64.abs().max().item()

    write_yaml(os.path.join(out_dir, name + '.yaml'), name, cfg)
    save_safetensors(os.path.join(out_dir, name + '.weights.safetensors'), sd)
    save_safetensors(os.path.join(out_dir, name + '.io.safetensors'), io)
    if grads is not None:
        save_safetensors(os.path.join(out_dir, name + '.grads.safetensors'), grads)

    res = dict(name=name, kind=kind, floor=floor, amax=amax, grad_floor=grad_floor,
               n_params=sum(p.numel() for p in sd.values()), n_tensors=len(sd), tokens=tokens,
               seq_len=seq_len, io={k: (str(v.dtype).replace('torch.', ''), list(v.shape))
                                    for k, v in sorted(io.items())},
               n_grads=None if grads is None else len(grads))
    msg = (f'[{name}] max|out|={amax:.4f}  float32 floor max|out-out_f64|={floor:.3e}  '
           f'tensors={len(sd)} params={res["n_params"]} tokens={tokens} seq_len={seq_len}')
    msg += f'  grad floor (max over params of max|g32-g64|/max|g64|)={grad_floor:.3e}'
    print(msg)
    return res


# ----------------------------------------------------------------------------------------------
# Key lists of the real configs (no memory: parameters created on the 'meta' device)
# ----------------------------------------------------------------------------------------------
REAL = dict(patch_size=(1, 2, 2), text_len=512, in_dim=16, freq_dim=256, text_dim=4096, out_dim=16,
            qk_norm=True, cross_attn_norm=True, eps=1e-6)
KEYLISTS = [
    ('vace-14b', dict(REAL, model_type='t2v', dim=5120, ffn_dim=13824, num_heads=40, num_layers=40,
                      vace_layers=list(range(0, 40, 5)), vace_in_dim=96),
     (1331, 17_337_592_896)),
    ('wan-t2v-1.3b', dict(REAL, model_type='t2v', dim=1536, ffn_dim=8960, num_heads=12,
                          num_layers=30), (825, None)),
]


def on_meta_device(construct, names=('empty', 'ones', 'zeros', 'randn', 'rand')):
    """Calls `construct()` with parameters on the 'meta' device: torch 1.13 has no `with
    torch.device('meta')`, so the factory functions that nn.Linear / nn.Conv3d / nn.LayerNorm /
    RMS norms / modulation parameters use are routed to meta while it runs (tensors made with
    arange/ones_like, like the RoPE table, stay real; they are tiny). Upstream init
    (xavier_uniform_, normal_, zeros_) runs on meta. Also used by gen_vae_fixtures.py."""
    saved = {n: getattr(torch, n) for n in names}

    def on_meta(fn):

        def f(*a, **kw):
            if kw.get('device') is None:
                kw['device'] = 'meta'
            return fn(*a, **kw)

        return f

    try:
        for n in names:
            setattr(torch, n, on_meta(saved[n]))
        model = construct()
    finally:
        for n, fn in saved.items():
            setattr(torch, n, fn)
    for n, p in model.named_parameters():
        assert p.is_meta, f'{n} was allocated'
    return model


def build_on_meta(mods, cfg):
    return on_meta_device(lambda: build(mods, cfg))


def write_keylists(mods, out_dir):
    res = []
    for name, cfg, (want_n, want_p) in KEYLISTS:
        model = build_on_meta(mods, cfg)
        params = dict(model.named_parameters())
        n_params = sum(p.numel() for p in params.values())
        path = os.path.join(out_dir, name + '.keys.txt')
        with open(path, 'w') as f:
            for k in sorted(params):
                f.write(k + '\t' + ','.join(str(s) for s in params[k].shape) + '\n')
        print(f'[keys {name}] {len(params)} tensors, {n_params:,} parameters -> {path}')
        assert len(params) == want_n, (name, len(params), want_n)
        if want_p is not None:
            assert n_params == want_p, (name, n_params, want_p)
        res.append((name, len(params), n_params))
        del model
    return res


# ----------------------------------------------------------------------------------------------
# README
# ----------------------------------------------------------------------------------------------
def write_readme(out_dir, source, info, results, keys, argv):
    commit = source.commit or 'unknown (pass --wan-commit)'
    L = []
    L.append('# Wan 2.1 / VACE DiT parity fixtures\n')
    L.append('Generated by `scripts/gen_wan_fixtures.py` from the OFFICIAL upstream modules '
             '(github.com/Wan-Video/Wan2.1 `wan/modules/model.py` `WanModel` and '
             '`wan/modules/vace_model.py` `VaceWanModel`), loaded at run time (no upstream code '
             'is in this repository), on CPU with Debian `python3-torch` '
             f'{torch.__version__}. Do not edit by hand; regenerate instead.\n')
    L.append('```')
    L.append('git --git-dir=<mirror of Wan-Video/Wan2.1> archive ' + (source.commit or 'HEAD') +
             ' | tar -x -C /tmp/Wan2.1')
    L.append('/usr/bin/python3 scripts/gen_wan_fixtures.py ' + ' '.join(argv))
    L.append('```\n')
    L.append(f'Upstream commit: `{commit}`  ')
    for p in MODULE_FILES:
        L.append(f'sha256 `{p}`: `{info[p]}`  ')
    L.append('')
    L.append('## Files\n')
    L.append('* `<case>.yaml`: the model config with the upstream constructor argument names '
             '(`window_size` is always (-1, -1) and omitted).')
    L.append('* `<case>.weights.safetensors`: the full state dict, official key names, F32. Every '
             'parameter is random (upstream zero-initialises `head.head` and the VACE '
             '`before_proj`/`after_proj`): weights N(0,1)/sqrt(fan_in), biases 0.1*N(0,1), norm '
             'gains 1 + 0.1*N(0,1), `modulation` N(0,1)/sqrt(dim).')
    L.append('* `<case>.io.safetensors`: inputs `x` [B, in_dim, F, H, W] F32, `t` [B] F32 '
             '(non-integer timesteps allowed), `context` [B, L, text_dim] F32 with L < text_len '
             '(upstream zero-pads to text_len, no mask), for VACE `vace_context` [B, vace_in_dim, '
             'F, H, W] F32 and `context_scale` F32 [1]; `seq_len` I64 [1] only when it differs '
             'from the token count (the extra tokens are zeros, masked as keys, computed as '
             'queries, trimmed at unpatchify). Outputs: `out` [B, out_dim, F, H, W] F32 (float32 '
             'run) and `out_f64` (F64, the same upstream code run in float64). Upstream takes '
             'lists per sample and returns a list; these are stacked along B.')
    L.append('* `<case>.grads.safetensors` (first case only): `grad_out` (a fixed random '
             'cotangent shaped like `out`) and `grad.<param>` = d sum(out * grad_out) / d param '
             'for every parameter (float32 run). The script asserts every gradient is non-zero.')
    L.append('* `vace-14b.keys.txt`, `wan-t2v-1.3b.keys.txt`: `name<TAB>shape` of every parameter '
             'of the real configs, sorted by name, built from the upstream classes on the meta '
             'device.\n')
    L.append('## Shims used to run upstream\n')
    L.append('* `diffusers`: `ModelMixin` = plain `nn.Module`, `ConfigMixin` = empty base, '
             '`register_to_config` = pass-through decorator.')
    L.append('* `flash_attention` (flash-attn is CUDA-only): exact masked softmax attention in '
             'the inputs\' dtype with the same varlen semantics (keys beyond `k_lens` masked, every '
             'query row computed). Upstream itself would run it in bf16.')
    L.append('* `torch.cuda.amp.autocast` regions are left as they are; without CUDA they '
             'disable themselves, so everything runs in the tensors\' dtype.')
    L.append('* Only `model.py` and `vace_model.py` are executed, inside a fake package (the '
             '`wan` package `__init__` imports T5/CLIP/pipelines).')
    L.append('* Float64 run: the hard casts are widened textually at load time: `.float()` -> '
             '`.double()`, `torch.float32` -> `torch.float64` (RoPE output, RMSNorm/LayerNorm '
             'upcasts, modulation asserts/autocast dtype, time embedding, final output).')
    L.append('* `context_scale` is passed to both runs as its float32-rounded value; `t`, `x`, '
             '`context`, `vace_context` and the weights are float32 values, exact in float64.\n')
    L.append('## Cases and measured float32 floors\n')
    L.append('floor = max |out - out_f64| (float32 rounding noise of the reference itself). '
             'The C++ test compares its float32 output to `out_f64` with 10x this floor.\n')
    L.append('| case | model | config | tokens / seq_len | max abs(out) | floor |')
    L.append('|---|---|---|---|---|---|')
    for r, cs in results:
        c = cs['cfg']
        desc = (f"B={cs['batch']}, dim {c['dim']}, heads {c['num_heads']}, ffn {c['ffn_dim']}, "
                f"layers {c['num_layers']}, in/out {c['in_dim']}/{c['out_dim']}, "
                f"latent {'x'.join(map(str, cs['latent']))}, ctx {cs['ctx_len']}/{c['text_len']}, "
                f"t={cs['t']}, cross_attn_norm {c['cross_attn_norm']}")
        if r['kind'] == 'vace':
            desc += (f", vace_layers {c['vace_layers']}, vace_in_dim {c['vace_in_dim']}, "
                     f"context_scale {cs['context_scale']}")
        model = 'VaceWanModel' if r['kind'] == 'vace' else 'WanModel'
        L.append(f"| `{r['name']}` | {model} | {desc} | {r['tokens']} / {r['seq_len']} | "
                 f"{r['amax']:.3f} | {r['floor']:.2e} |")
    L.append('')
    L.append('Every case also checks that every parameter gets a non-zero gradient. Gradient '
             'floor (max over parameters of max|g32 - g64| / max|g64|, cotangent `grad_out` '
             'drawn per case; stored only for ' +
             ', '.join(f"`{r['name']}`" for r, _ in results if r['n_grads']) + '): ' +
             ', '.join(f"`{r['name']}` {r['grad_floor']:.2e}" for r, _ in results) + '.\n')
    L.append('Notes: VACE fixtures use `model_type: vace` (the `VaceWanModel` default; the '
             'state dict is the same with `t2v`). `vace_seqpad` uses dim 16 / ffn 24 (2 heads of '
             'head_dim 8, RoPE split 2/1/1) instead of dim 40 to keep the fixtures small. The '
             'generator is deterministic (fixed seeds, one CPU thread): a re-run with the same '
             'torch writes byte-identical files.\n')
    L.append('## Tensors per io file\n')
    for r, _ in results:
        L.append(f"* `{r['name']}.io.safetensors`: " +
                 ', '.join(f'`{k}` {dt} {s}' for k, (dt, s) in r['io'].items()))
    L.append('')
    L.append('## Key lists\n')
    for name, n, p in keys:
        L.append(f'* `{name}.keys.txt`: {n} tensors, {p:,} parameters.')
    L.append('\nBoth are built with `model_type: t2v` (VACE-14B: `VaceWanModel` with vace_layers '
             '0, 5, ..., 35, vace_in_dim 96). The counts are asserted against the spec '
             '(VACE-14B 1331 tensors / 17,337,592,896 parameters, T2V-1.3B 825 tensors).\n')
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir)
                if f.endswith(('.safetensors', '.yaml', '.keys.txt')))
    L.append(f'Total size of the safetensors, yaml and key-list files: {total:,} bytes.')
    L.append('')
    with open(os.path.join(out_dir, 'README.md'), 'w') as f:
        f.write('\n'.join(L))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument('--wan-src', help='Wan2.1 checkout or extracted tree')
    g.add_argument('--wan-git', help='bare git dir of Wan2.1 (read with git show)')
    ap.add_argument('--wan-rev', default='HEAD', help='revision for --wan-git')
    ap.add_argument('--wan-commit', help='commit hash to record when --wan-src has no .git')
    ap.add_argument('--out', required=True)
    ap.add_argument('--what', choices=('all', 'fixtures', 'keys'), default='all')
    args = ap.parse_args()

    torch.set_num_threads(1)  # reproducible reductions
    source = UpstreamSource(args.wan_src, args.wan_git, args.wan_rev, args.wan_commit)
    os.makedirs(args.out, exist_ok=True)
    mods32, info = load_upstream(source, '_wan_upstream_f32')
    print(f'upstream commit {source.commit}; ' +
          ', '.join(f'{p} sha256 {info[p][:12]}' for p in MODULE_FILES))

    keys = []
    if args.what in ('all', 'keys'):
        keys = write_keylists(mods32, args.out)
    results = []
    if args.what in ('all', 'fixtures'):
        mods64, info64 = load_upstream(source, '_wan_upstream_f64', widen_to_f64)
        print('float64 rewrites: ' + '; '.join(f'{p}: {info64[p + ":rewrites"]}'
                                               for p in MODULE_FILES))
        for cs in CASES:
            results.append((generate_case(cs, mods32, mods64, args.out), cs))
        total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out)
                    if f.endswith('.safetensors') or f.endswith('.yaml'))
        print(f'fixture bytes (safetensors + yaml): {total}')
    if args.what == 'all':
        write_readme(args.out, source, info, results, keys, sys.argv[1:])


if __name__ == '__main__':
    main()
