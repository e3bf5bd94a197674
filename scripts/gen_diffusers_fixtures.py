#!/usr/bin/env python3
"""Interop fixtures: tiny Wan 2.1 / VACE transformers saved by diffusers' own `save_pretrained`
(sharded), with diffusers' own forward output in float32 and float64.

The transformers are diffusers' `WanTransformer3DModel` and `WanVACETransformer3DModel`,
imported from the installed diffusers package at run time (no diffusers code lives in this
repository). Every parameter is re-initialised with seeded random values (diffusers
zero-inits nothing here, but its defaults leave norms at 1 and biases at 0, which would hide
a swapped gain or bias). Each model is written with `save_pretrained(dir, max_shard_size=...)`
so the folder is exactly what diffusers publishes: `config.json`, a shard index and 2+ shards
in diffusers' key names.

Run with the reference venv (torch 2.11, diffusers pinned in scripts/requirements-ref.txt):
    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_diffusers_fixtures.py \
        --out tests/fixtures/diffusers

Writes, per case: <case>/ (the save_pretrained folder) and <case>.io.safetensors (inputs,
`out` = float32 forward of the folder as reloaded by `from_pretrained`, `out_f64` = the same
weights run in float64), plus README.md. See tests/fixtures/diffusers/README.md.
"""

import argparse
import contextlib
import hashlib
import inspect
import json
import math
import os
import platform
import shutil
import sys

import torch

import diffusers
import safetensors
from diffusers import WanTransformer3DModel, WanVACETransformer3DModel
from diffusers.models import embeddings as d_embeddings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_wan_fixtures import save_safetensors  # noqa: E402  (sorted, byte-reproducible writer)

# diffusers pads prompt embeddings to this length in its pipelines (max_sequence_length=512,
# zero rows); the transformer itself does not pad. ipa pads to WanConfig::text_len (512).
TEXT_LEN = 512

CASES = [
    dict(name='wan_t2v', cls=WanTransformer3DModel, seed=11, max_shard_size='80KB',
         config=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=20, in_channels=4,
                     out_channels=6, text_dim=24, freq_dim=16, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                     qk_norm='rms_norm_across_heads', eps=1e-6),
         batch=2, latent=(3, 4, 6), ctx_lens=(5, 3), t=(937.0, 250.5)),
    dict(name='wan_vace', cls=WanVACETransformer3DModel, seed=12, max_shard_size='80KB',
         config=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=14, in_channels=4,
                     out_channels=4, text_dim=24, freq_dim=16, ffn_dim=24, num_layers=4, cross_attn_norm=True,
                     qk_norm='rms_norm_across_heads', eps=1e-6, vace_layers=[0, 2], vace_in_channels=6),
         batch=2, latent=(3, 4, 6), ctx_lens=(5, 2), t=(999.0, 37.75), context_scale=0.7),
]


def randomise(model, gen):
    """Overwrite EVERY parameter: weights N(0,1)/sqrt(fan_in), biases 0.1 N(0,1), norm gains
    1 + 0.1 N(0,1), scale_shift_table N(0,1)/sqrt(dim) (the recipe of gen_wan_fixtures.py)."""
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            z = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if n.endswith('scale_shift_table'):
                v = z / math.sqrt(p.shape[-1])
            elif n.endswith('.bias'):
                v = 0.1 * z
            elif p.dim() == 1:  # RMSNorm / affine LayerNorm gains
                v = 1.0 + 0.1 * z
            else:  # Linear [out, in], Conv3d [out, in, kt, kh, kw]
                v = z / math.sqrt(p[0].numel())
            p.copy_(v.to(p.dtype))


@contextlib.contextmanager
def float64_throughout(sinusoid=True):
    """diffusers hard-casts to float32 inside the model (`.float()` before every LayerNorm
    and modulation, FP32LayerNorm, the timestep sinusoid built in float32). A plain
    `model.double()` therefore still rounds to float32 at those points and is no float64
    reference. For the float64 run only: `Tensor.float()` returns float64 and the sinusoid is
    built in float64 (get_timestep_embedding's source with torch.float32 -> torch.float64,
    executed at run time in diffusers' own module namespace)."""
    orig_float = torch.Tensor.float
    orig_gte = d_embeddings.get_timestep_embedding
    src = inspect.getsource(orig_gte)
    assert src.count('torch.float32') == 1, 'diffusers get_timestep_embedding changed; review the widening'
    ns = dict(d_embeddings.__dict__)
    exec(compile(src.replace('torch.float32', 'torch.float64'), inspect.getsourcefile(orig_gte), 'exec'), ns)
    torch.Tensor.float = lambda self, *a, **k: self.double()
    if sinusoid:
        d_embeddings.get_timestep_embedding = ns['get_timestep_embedding']
    try:
        yield
    finally:
        torch.Tensor.float = orig_float
        d_embeddings.get_timestep_embedding = orig_gte


def make_inputs(cs, cfg, gen):
    b, (f, h, w) = cs['batch'], cs['latent']
    x = torch.randn(b, cfg['in_channels'], f, h, w, generator=gen)
    L = max(cs['ctx_lens'])
    ctx = torch.zeros(b, L, cfg['text_dim'])
    for i, n in enumerate(cs['ctx_lens']):  # per-prompt lengths, zero rows after (as the pipeline)
        ctx[i, :n] = torch.randn(n, cfg['text_dim'], generator=gen)
    inp = dict(x=x, t=torch.tensor(cs['t'], dtype=torch.float32), context=ctx)
    if 'vace_layers' in cfg:
        inp['vace_context'] = torch.randn(b, cfg['vace_in_channels'], f, h, w, generator=gen)
        inp['context_scale'] = torch.tensor([cs['context_scale']], dtype=torch.float32)
    return inp


def forward(model, inp, dtype):
    ctx = inp['context']
    ctx = torch.cat([ctx, ctx.new_zeros(ctx.shape[0], TEXT_LEN - ctx.shape[1], ctx.shape[2])], 1)
    kw = dict(hidden_states=inp['x'].to(dtype), timestep=inp['t'].to(dtype), encoder_hidden_states=ctx.to(dtype),
              return_dict=False)
    if 'vace_context' in inp:
        n = len(model.config.vace_layers)
        kw['control_hidden_states'] = inp['vace_context'].to(dtype)
        kw['control_hidden_states_scale'] = inp['context_scale'].to(dtype).expand(n).clone()
    return model(**kw)[0]


def sha256_file(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def generate(cs, out_dir):
    name, cfg = cs['name'], cs['config']
    gen = torch.Generator().manual_seed(cs['seed'])
    torch.manual_seed(cs['seed'])
    model = cs['cls'](**cfg).float().eval()
    randomise(model, gen)
    ref_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}

    folder = os.path.join(out_dir, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, max_shard_size=cs['max_shard_size'], safe_serialization=True)
    files = sorted(os.listdir(folder))
    shards = [f for f in files if f.endswith('.safetensors')]
    assert len(shards) >= 2 and any(f.endswith('.safetensors.index.json') for f in files), files

    # Everything below runs on the folder as diffusers reads it back.
    loaded = cs['cls'].from_pretrained(folder, torch_dtype=torch.float32).eval()
    sd = loaded.state_dict()
    assert sd.keys() == ref_sd.keys()
    for k in sd:
        assert torch.equal(sd[k], ref_sd[k]), k
        assert sd[k].abs().min() > 0 or sd[k].numel() == 0, f'{k} has zeros'

    inp = make_inputs(cs, cfg, gen)

    # Every parameter takes part: non-zero gradient everywhere.
    loaded.zero_grad()
    forward(loaded, inp, torch.float32).pow(2).sum().backward()
    for n, p in loaded.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, f'{n}: zero gradient'
    loaded.zero_grad()

    with torch.no_grad():
        out = forward(loaded, inp, torch.float32)
        m64 = cs['cls'].from_pretrained(folder, torch_dtype=torch.float32).double().eval()
        plain64 = forward(m64, inp, torch.float64)  # diffusers' own casts left in place
        with float64_throughout():
            rope32_64 = forward(m64, inp, torch.float64)
            # from_pretrained casts the RoPE cos/sin tables (non-persistent buffers, built in
            # float64 by the constructor) to float32; `.double()` cannot undo that rounding.
            # The float64 reference rebuilds them in float64.
            assert loaded.rope.freqs_cos.dtype == torch.float32
            rope = m64.rope
            m64.rope = type(rope)(rope.attention_head_dim, rope.patch_size, rope.max_seq_len).double()
            assert m64.rope.freqs_cos.dtype == torch.float64
            out64 = forward(m64, inp, torch.float64)
        with float64_throughout(sinusoid=False):  # diagnostic: only the sinusoid in float32
            sin32_64 = forward(m64, inp, torch.float64)
    assert out.dtype == torch.float32 and out64.dtype == torch.float64

    io = dict(inp)
    io['out'] = out
    io['out_f64'] = out64
    io_path = os.path.join(out_dir, f'{name}.io.safetensors')
    save_safetensors(io_path, io,
                     metadata={'generator': 'scripts/gen_diffusers_fixtures.py', 'diffusers': diffusers.__version__,
                               'torch': torch.__version__, 'text_len': str(TEXT_LEN)})

    floor = (out.double() - out64).abs().max().item()
    plain_gap = (plain64 - out64).abs().max().item()
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in files) + os.path.getsize(io_path)
    res = dict(name=name, cls=cs['cls'].__name__, files=files, shards=len(shards), floor=floor,
               plain_gap=plain_gap, rope32_gap=(rope32_64 - out64).abs().max().item(),
               sin32_gap=(sin32_64 - out64).abs().max().item(),
               scale=out64.abs().max().item(), size=size, tokens=math.prod(cs['latent']) // 4,
               io={k: (str(v.dtype).replace('torch.', ''), list(v.shape)) for k, v in io.items()},
               params=sum(p.numel() for p in loaded.parameters()), tensors=len(sd))
    print(f"{name}: {res['cls']} {res['params']} params in {res['tensors']} tensors, {len(shards)} shards, "
          f"{size} bytes; max|out|={res['scale']:.3f} floor(fp32 vs fp64)={floor:.3g} "
          f"plain .double() vs fp64={plain_gap:.3g} float32 RoPE tables in fp64={res['rope32_gap']:.3g} "
          f"float32 sinusoid in fp64={res['sin32_gap']:.3g}")
    return res


def write_readme(out_dir, results, argv):
    mods = [inspect.getsourcefile(m) for m in (sys.modules[WanTransformer3DModel.__module__],
                                               sys.modules[WanVACETransformer3DModel.__module__],
                                               d_embeddings, sys.modules['diffusers.models.normalization'])]
    root = os.path.dirname(os.path.dirname(mods[0]))  # .../diffusers/models
    L = ['# diffusers interop fixtures (Wan 2.1 / VACE transformers)', '',
         'Generated by `scripts/gen_diffusers_fixtures.py` with diffusers\' OWN classes '
         '(`diffusers.WanTransformer3DModel`, `diffusers.WanVACETransformer3DModel`), imported at run time from the '
         'installed package (no diffusers code is in this repository). Do not edit by hand; regenerate instead.', '',
         '```',
         '/root/.cache/ipa/venv-torch-2.11/bin/pip install -c scripts/constraints-torch.txt '
         '-r scripts/requirements-ref.txt   # or only diffusers + safetensors',
         '/root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_diffusers_fixtures.py ' + ' '.join(argv),
         '```', '',
         f'Versions: diffusers {diffusers.__version__}, torch {torch.__version__}, safetensors '
         f'{safetensors.__version__}, Python {platform.python_version()}, CPU, one thread.  ', '']
    for m in mods:
        L.append(f'sha256 `diffusers/models/{os.path.relpath(m, root)}`: `{sha256_file(m)}`  ')
    L += ['', '## Files', '',
          '* `<case>/`: the folder written by `model.save_pretrained(<case>, max_shard_size=...)`, untouched: '
          '`config.json`, `diffusion_pytorch_model.safetensors.index.json` and 2+ shards '
          '`diffusion_pytorch_model-0000k-of-0000n.safetensors`, diffusers key names, F32. Every parameter is '
          'random (weights N(0,1)/sqrt(fan_in), biases 0.1 N(0,1), norm gains 1 + 0.1 N(0,1), `scale_shift_table` '
          'N(0,1)/sqrt(dim)); the script asserts that no stored element is zero and that every parameter gets a '
          'non-zero gradient.',
          '* `<case>.io.safetensors`: inputs `x` [B, C, F, H, W], `t` [B] (non-integer allowed), `context` '
          f'[B, L, text_dim] with per-sample lengths (zero rows after each prompt), for VACE `vace_context` '
          '[B, vace_in_channels, F, H, W] and `context_scale` [1]; outputs `out` (float32, the forward of the model '
          'reloaded from the folder by `from_pretrained`) and `out_f64` (float64, same weights, see below).',
          '', '## How diffusers is called', '',
          '`model(hidden_states=x, timestep=t, encoder_hidden_states=ctx512, return_dict=False)`; VACE adds '
          '`control_hidden_states=vace_context, control_hidden_states_scale=full(len(vace_layers), context_scale)`. '
          f'`ctx512` is `context` zero-padded to {TEXT_LEN} rows: diffusers\' transformer does not pad, its pipelines '
          f'pad the prompt embeddings with zeros to `max_sequence_length` = 512, which is what the official code '
          'and ipa do inside the model (`text_len` 512). The zero rows are attended (no mask) in all three.', '',
          'Float64 run (`out_f64`): diffusers hard-casts to float32 inside the model (`.float()` before each '
          'LayerNorm and modulation, `FP32LayerNorm`, the timestep sinusoid built with `dtype=torch.float32` and '
          '`timesteps.float()`), so a plain `model.double()` is not a float64 reference. The script runs the float64 '
          'forward with `Tensor.float` returning float64 and with `get_timestep_embedding` re-executed from its own '
          'source with `torch.float32` -> `torch.float64` (both only for that run), and with the RoPE cos/sin tables '
          'rebuilt in float64 (`from_pretrained` casts these non-persistent buffers, which the constructor builds in '
          'float64, to float32; `.double()` cannot undo that rounding). Weights and inputs are float32 values, exact '
          'in float64.', '',
          '## Cases and measured float32 floors', '',
          'floor = max |out - out_f64|: the float32 rounding noise of diffusers itself. '
          '`tests/models/test_diffusers_parity.cpp` requires max |ipa fp32 - out_f64| < 10 x floor, and '
          'max |ipa fp64 - out_f64| < 1e-3 x floor. The last three columns are diagnostics (not stored): the '
          'float64 run with diffusers\' casts left in place (plain `.double()`), with only the sinusoid in float32, '
          'and with only the RoPE tables rounded to float32, each against `out_f64`.', '',
          '| case | class | config | shards | bytes | max abs(out) | floor | plain `.double()` | float32 sinusoid '
          '| float32 RoPE tables |',
          '|---|---|---|---|---|---|---|---|---|---|']
    for r, cs in results:
        c = cs['config']
        desc = (f"B={cs['batch']}, heads {c['num_attention_heads']} x head_dim {c['attention_head_dim']}, "
                f"ffn {c['ffn_dim']}, layers {c['num_layers']}, in/out {c['in_channels']}/{c['out_channels']}, "
                f"latent {'x'.join(map(str, cs['latent']))} ({r['tokens']} tokens), ctx lens "
                f"{list(cs['ctx_lens'])} padded to {TEXT_LEN}, t={list(cs['t'])}")
        if 'vace_layers' in c:
            desc += (f", vace_layers {c['vace_layers']}, vace_in_channels {c['vace_in_channels']}, "
                     f"context_scale {cs['context_scale']}")
        L.append(f"| `{r['name']}` | {r['cls']} | {desc} | {r['shards']} | {r['size']:,} | {r['scale']:.3f} | "
                 f"{r['floor']:.2e} | {r['plain_gap']:.2e} | {r['sin32_gap']:.2e} | {r['rope32_gap']:.2e} |")
    L += ['', 'bytes: the folder plus the io file.', '',
          '## diffusers vs the official Wan 2.1 code', '',
          'With the same weights, diffusers computes the same network as the official `WanModel` / `VaceWanModel` '
          '(ipa\'s float64 path reproduces `out_f64` to ~4e-14, see the test). The differences are in precision and '
          'in where things happen, not in the function:', '',
          '* **Timestep sinusoid in float32.** diffusers\' `Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0)` '
          'gives the official [cos, sin] layout and frequencies 10000^(-i/half), but forms t * freq in float32; the '
          'official `sinusoidal_embedding_1d` (and ipa) do it in float64. For t near 1000 that is most of diffusers\' '
          'float32 floor (column "float32 sinusoid").',
          '* **RoPE tables in float32 after loading.** The official code keeps `freqs` as a float64 attribute and '
          'rotates in float64; diffusers registers cos/sin as buffers, which `from_pretrained` (any `torch_dtype`; '
          '`rope` is in `_keep_in_fp32_modules`) leaves in float32, so a loaded diffusers model rotates with '
          'float32 tables. The split itself is the official one (t gets head_dim - 4*(head_dim//6), h and w '
          '2*(head_dim//6) each; interleaved real/imaginary pairs).',
          '* **No text padding in the transformer.** The official model and ipa zero-pad `context` to `text_len` = '
          '512 rows inside the forward; diffusers\' transformer takes what it is given and its pipelines pad the T5 '
          'output to `max_sequence_length` = 512 with zeros. Same result only when the caller pads to 512.',
          '* **VACE hint scale per layer.** `control_hidden_states_scale` is one scale per VACE layer; the official '
          '`context_scale` (and ipa\'s) is one number. Equal when all entries are equal, as here.',
          '* Names: `norm2` (diffusers, affine cross-attention norm) is the official `norm3`; `scale_shift_table` '
          'is `modulation`; VACE `proj_in` / `proj_out` are `before_proj` / `after_proj`; `attn2.norm_added_q` '
          'is ignored (src/models/wan/key_mapping.cpp). diffusers\' `config.json` carries the head count '
          '(`num_attention_heads`), which the weights cannot show; `WanConfig::detect` reads it.', '']
    L += ['RoPE splits: head_dim 20 -> 4/3/3 complex channels (t/h/w), head_dim 14 -> 3/2/2: uneven like the '
          'real 128 -> 22/21/21.', '', '## Files per case', '']
    for r, _ in results:
        L.append(f"* `{r['name']}/`: {', '.join('`' + f + '`' for f in r['files'])} "
                 f"({r['tensors']} tensors, {r['params']:,} parameters)")
        L.append(f"* `{r['name']}.io.safetensors`: " +
                 ', '.join(f'`{k}` {d} {s}' for k, (d, s) in sorted(r['io'].items())))
    L.append('')
    with open(os.path.join(out_dir, 'README.md'), 'w') as f:
        f.write('\n'.join(L))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)  # reproducible reductions
    os.makedirs(args.out, exist_ok=True)
    print(f'diffusers {diffusers.__version__}, torch {torch.__version__}')
    results = [(generate(cs, args.out), cs) for cs in CASES]
    write_readme(args.out, results, sys.argv[1:])


if __name__ == '__main__':
    main()
