#!/usr/bin/python3
"""CPU timing of the OFFICIAL upstream Wan 2.1 / VACE DiT, mirroring `ipa-inspect bench-forward`
(src/tools/inspect.cpp, bench_forward) so the two can be compared line by line.

The upstream modules are loaded at run time with the loader and shims of
scripts/gen_wan_fixtures.py (diffusers stand-ins; flash_attention replaced by an exact masked
softmax attention, so attention here is plain einsum/softmax, not a fused kernel).

Run with Debian's torch (CPU):
    /usr/bin/python3 scripts/bench_wan_upstream.py --wan-src /tmp/Wan2.1 \
        --model configs/models/tiny.yaml --latent 3 16 16 [--batch 1] [--layers N] \
        [--iters 3] [--warmup 1] [--threads N] [--no-backward]
"""

import argparse
import importlib.util
import os
import resource
import time

import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def import_fixture_tools():
    spec = importlib.util.spec_from_file_location('gen_wan_fixtures',
                                                  os.path.join(HERE, 'gen_wan_fixtures.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # also installs its warning filters (no-op cuda autocast)
    return mod


def load_config(path, layers):
    """The model YAML (upstream constructor names); --layers N keeps blocks < N and the VACE
    hints that land in them, like the C++ tool (no hint left -> plain t2v WanModel)."""
    if not os.path.exists(path):  # a preset name, as WanConfig::resolve accepts
        path = os.path.join(HERE, '..', 'configs', 'models', path + '.yaml')
    with open(path) as f:
        cfg = yaml.safe_load(f)
    cfg['patch_size'] = tuple(cfg['patch_size'])
    if layers > 0:
        cfg['num_layers'] = layers
        if 'vace_layers' in cfg:
            cfg['vace_layers'] = [l for l in cfg['vace_layers'] if l < layers]
    if not cfg.get('vace_layers'):  # C++ is_vace() == !vace_layers.empty()
        cfg.pop('vace_layers', None)
        cfg.pop('vace_in_dim', None)
        if cfg.get('model_type') == 'vace':
            cfg['model_type'] = 't2v'
    elif cfg.get('vace_in_dim') is None:
        cfg['vace_in_dim'] = cfg['in_dim']
    return cfg


def format_bytes(n):  # io::format_bytes
    units, u = ('B', 'KiB', 'MiB', 'GiB', 'TiB'), 0
    while n >= 1024.0 and u < 4:
        n, u = n / 1024.0, u + 1
    return f'{n:.0f} {units[u]}' if u == 0 else f'{n:.2f} {units[u]}'


def time_it(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    best, total = float('inf'), 0.0
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total = min(best, dt), total + dt
    return best, total / max(1, iters)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--wan-src', required=True, help='Wan2.1 checkout or extracted tree')
    ap.add_argument('--model', required=True, help='model YAML (or preset name)')
    ap.add_argument('--latent', type=int, nargs=3, required=True, metavar=('F', 'H', 'W'))
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--layers', type=int, default=0, help='override num_layers (0: keep)')
    ap.add_argument('--iters', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--threads', type=int, default=0, help='0: os.cpu_count()')
    ap.add_argument('--no-backward', action='store_true')
    args = ap.parse_args()

    torch.set_num_threads(args.threads if args.threads > 0 else os.cpu_count())
    fx = import_fixture_tools()
    mods, _ = fx.load_upstream(fx.UpstreamSource(src_dir=args.wan_src, commit='-'),
                               '_wan_upstream_bench')
    cfg = load_config(args.model, args.layers)
    vace = 'vace_layers' in cfg

    torch.manual_seed(0)
    model = fx.build(mods, cfg).float()
    B, (F, H, W) = args.batch, args.latent
    pt, ph, pw = cfg['patch_size']
    x = torch.randn(B, cfg['in_dim'], F, H, W)
    t = torch.full((B,), 500.0)
    context = torch.randn(B, cfg['text_len'], cfg['text_dim'])
    vc = torch.randn(B, cfg['vace_in_dim'], F, H, W) if vace else None
    seq_len = (F // pt) * (H // ph) * (W // pw)  # per sample: no padding tokens
    tokens = B * seq_len

    def forward():  # upstream takes lists of per-sample tensors and returns a list
        if vace:
            out = model(list(x), t, list(vc), list(context), seq_len, vace_context_scale=1.0)
        else:
            out = model(list(x), t=t, context=list(context), seq_len=seq_len)
        return torch.stack(out)

    def fwd_only():
        with torch.no_grad():
            forward()

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        forward().pow(2).mean().backward()

    fwd = time_it(fwd_only, args.warmup, args.iters)
    fb = None if args.no_backward else time_it(fwd_bwd, args.warmup, args.iters)

    params = sum(p.numel() for p in model.parameters())
    print(f"model {args.model} ({cfg['num_layers']} layers, dim {cfg['dim']}, {params} params), "
          f'{tokens} tokens (batch {B}, latent {F}x{H}x{W}), fp32 on cpu, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    print(f'forward            best {fwd[0]:9.4f} s  mean {fwd[1]:9.4f} s  '
          f'{tokens / fwd[0]:10.1f} tokens/s')
    if fb is not None:
        print(f'forward+backward   best {fb[0]:9.4f} s  mean {fb[1]:9.4f} s  '
              f'{tokens / fb[0]:10.1f} tokens/s')
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(f'peak memory        {format_bytes(peak)}')


if __name__ == '__main__':
    main()
