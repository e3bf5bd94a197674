#!/usr/bin/python3
"""CPU timing of ONE IPA (or SFT) LoRA training step done the way the official IPA code does it,
to compare with `ipa-train` (scripts/bench_train_step.sh runs both side by side).

Model: the OFFICIAL upstream Wan 2.1 / VACE DiT, loaded with scripts/gen_wan_fixtures.py and
configured by scripts/bench_wan_upstream.py (same YAML handling, same attention shim).
Step: the IPA README snippet (docs/pose-hands.md §3) — HALO-weighted
flow-matching error, a reference model that is a full `copy.deepcopy` of the policy (so its memory
shows), -logsigmoid preference loss, grad clip 1.0, AdamW on the LoRA parameters.

Run with Debian's torch (CPU):
    /usr/bin/python3 scripts/bench_ipa_step_upstream.py --wan-src /tmp/Wan2.1 \
        --model configs/models/tiny.yaml --frames 9 --size 64 64 --batch 2 --rank 8 \
        --loss ipa --steps 6 --warmup 2 [--layers N] [--threads N] [--grad-checkpointing]
"""

import argparse
import copy
import functools
import importlib.util
import math
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
BETA, HAND_WEIGHT, NUM_TRAIN_TIMESTEPS = 600.0, 10.0, 1000.0  # IPA README values


def import_script(name):  # reuse the sibling scripts as modules (no code duplication)
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class LoRALinear(nn.Module):
    """base(x) + (alpha/r) * B(A(x)), peft's default init: A kaiming-uniform(a=sqrt(5)), B zeros."""

    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x):
        return self.base(x) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale


def add_lora(model, rank, alpha):
    """Freeze the model; wrap self_attn.q/k/v of every MAIN block (not the VACE blocks)."""
    model.requires_grad_(False)
    for block in model.blocks:
        for name in ('q', 'k', 'v'):
            setattr(block.self_attn, name, LoRALinear(getattr(block.self_attn, name), rank, alpha))
    return [p for n, p in model.named_parameters() if 'lora_' in n]


def enable_grad_checkpointing(model):
    """Re-run each block's forward in backward (non-reentrant: block inputs may not need grad)."""
    for block in list(model.blocks) + list(getattr(model, 'vace_blocks', [])):
        orig = block.forward  # bound method; blocks are called with keyword arguments
        block.forward = lambda *a, _f=orig, **kw: checkpoint(functools.partial(_f, **kw), *a,
                                                             use_reentrant=False)


def synthetic_batch(cfg, B, frames, size, text_len=6, seed=0):
    """Like ipa-train's synthetic cache: reference latent frame first, then the video latents;
    a hand blob moving across the video frames; VACE context = [latents/2, small noise]."""
    g = torch.Generator().manual_seed(seed)
    tv = 1 + (frames - 1) // 4                     # video latent frames (Wan VAE: 1, 4, 4, ...)
    T, H, W = 1 + tv, size[0] // 8, size[1] // 8   # + 1 reference-image latent in front
    C = cfg['in_dim']
    base = F.interpolate(torch.randn(B, C, 2, 2, generator=g), size=(H, W), mode='bilinear')
    x0 = base.unsqueeze(2).repeat(1, 1, T, 1, 1) + 0.3 * torch.randn(B, C, T, H, W, generator=g)
    ys, xs = torch.arange(H).view(H, 1).float(), torch.arange(W).view(1, W).float()
    mask = torch.stack([((ys - (H - 1) * (0.3 + 0.4 * f / tv)) ** 2 +
                         (xs - (W - 1) * (0.6 - 0.3 * f / tv)) ** 2 <= 2.5).float()
                        for f in range(tv)])
    batch = dict(x0=x0, hand_mask=mask.expand(B, 1, tv, H, W).clone(),
                 context=torch.randn(B, text_len, cfg['text_dim'], generator=g))
    if 'vace_layers' in cfg:
        extra = 0.1 * torch.randn(B, cfg['vace_in_dim'] - C, T, H, W, generator=g)
        batch['vace_context'] = torch.cat([0.5 * x0, extra], 1)
    return batch


def halo_error(pred, target, hand_mask):
    """IPA README: frame 0 (reference latent) unweighted, w = 1 + (10-1)*mask on frames 1:,
    plain mean per sample (not normalised by the weights)."""
    se = (pred.float() - target.float()) ** 2
    weight = 1 + (HAND_WEIGHT - 1) * hand_mask.clamp(0, 1)
    return torch.cat([se[:, :, :1], se[:, :, 1:] * weight], dim=2).flatten(1).mean(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--wan-src', required=True, help='Wan2.1 checkout or extracted tree')
    ap.add_argument('--model', required=True, help='model YAML (or preset name)')
    ap.add_argument('--layers', type=int, default=0, help='override num_layers (0: keep)')
    ap.add_argument('--frames', type=int, default=9, help='video pixel frames (4n+1)')
    ap.add_argument('--size', type=int, nargs=2, default=(64, 64), metavar=('H', 'W'))
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--rank', type=int, default=8)
    ap.add_argument('--loss', choices=('ipa', 'sft'), default='ipa')
    ap.add_argument('--steps', type=int, default=6)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=0, help='0: os.cpu_count()')
    ap.add_argument('--grad-checkpointing', action='store_true')
    ap.add_argument('--print-times', action='store_true', help='also print every timed step')
    ap.add_argument('--trace', default='', help='also profile one more step: Chrome trace to this file '
                    '(scripts/profile_summary.py puts it beside ipa-train --profile-step)')
    args = ap.parse_args()

    torch.set_num_threads(args.threads if args.threads > 0 else os.cpu_count())
    bench = import_script('bench_wan_upstream')       # YAML -> upstream constructor config
    fx = bench.import_fixture_tools()                 # upstream loader + attention shim
    mods, _ = fx.load_upstream(fx.UpstreamSource(src_dir=args.wan_src, commit='-'),
                               '_wan_upstream_ipa_step')
    cfg = bench.load_config(args.model, args.layers)
    vace = 'vace_layers' in cfg

    torch.manual_seed(0)
    model = fx.build(mods, cfg).float()
    # Upstream zero-inits head.head (and VACE before/after_proj): with that the output ignores the
    # blocks and every LoRA gradient is 0. Random weights stand in for a checkpoint (same cost).
    fx.randomise(model, torch.Generator().manual_seed(0))
    params = add_lora(model, args.rank, alpha=args.rank)
    ref = None
    if args.loss == 'ipa':  # official: reference = full deep copy after the adapter is attached
        ref = copy.deepcopy(model).eval().requires_grad_(False)
    if args.grad_checkpointing:
        enable_grad_checkpointing(model)
    model.train()
    opt = torch.optim.AdamW(params, lr=1e-4)

    B = args.batch
    batch = synthetic_batch(cfg, B, args.frames, args.size)
    x0, mask = batch['x0'], batch['hand_mask']
    _, _, T, H, W = x0.shape
    pt, ph, pw = cfg['patch_size']
    seq_len = (T // pt) * (H // ph) * (W // pw)

    def predict(m, x_t, t):  # upstream takes lists of per-sample tensors and returns a list
        if vace:
            out = m(list(x_t), t, list(batch['vace_context']), list(batch['context']), seq_len,
                    vace_context_scale=1.0)
        else:
            out = m(list(x_t), t=t, context=list(batch['context']), seq_len=seq_len)
        return torch.stack(out)

    def step():
        sigma = torch.rand(B)
        noise = torch.randn_like(x0)
        s = sigma.view(B, 1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * noise          # flow matching: x_t, velocity target
        target = noise - x0
        t = sigma * NUM_TRAIN_TIMESTEPS
        phase = torch.autograd.profiler.record_function  # named like ipa-train's phases in a trace
        if ref is not None:
            with torch.no_grad(), phase('phase::reference'):  # reference error first, no graph
                err_ref = halo_error(predict(ref, x_t, t), target, mask)
        with phase('phase::policy'):
            err = halo_error(predict(model, x_t, t), target, mask)
        with phase('phase::backward'):
            if ref is not None:
                logits = 0.5 * BETA * (1 - sigma) ** 2 * (err_ref - err)
                loss = -F.logsigmoid(logits).mean()
            else:
                loss = err.mean()
            loss.backward()
        with phase('phase::update'):
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)

    if args.trace:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            step()
        prof.export_chrome_trace(args.trace)

    med, best = statistics.median(times), min(times)
    print(f"upstream {args.loss} step: model {args.model} ({cfg['num_layers']} layers, "
          f"dim {cfg['dim']}), batch {B}, latent {T}x{H}x{W} ({seq_len} tokens/sample), "
          f'LoRA rank {args.rank}, {torch.get_num_threads()} threads, torch {torch.__version__}')
    print(f'step time          median {med:.4f} s  best {best:.4f} s  {B / med:.2f} samples/s')
    if args.print_times:
        print('step times         ' + ' '.join(f'{t:.4f}' for t in times))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    print(f'peak memory        {peak:.2f} MiB')


if __name__ == '__main__':
    main()
