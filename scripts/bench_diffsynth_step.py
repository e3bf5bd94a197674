#!/usr/bin/env python3
"""CPU timing of ONE LoRA training step done by DiffSynth-Studio's OWN Wan / VACE training code,
a peer trainer to put beside `ipa-train` and scripts/bench_ipa_step_upstream.py (same shapes,
same synthetic inputs, same output lines).

Nothing of DiffSynth is re-implemented here; the step calls the installed package:
  - model: diffsynth.models.wan_video_dit.WanModel (+ diffsynth.models.wan_video_vace.VaceWanModel
    for VACE configs, which DiffSynth keeps as a separate `pipe.vace` module), built from the
    model YAML with DiffSynth's constructor names, inside a diffsynth.pipelines.wan_video.
    WanVideoPipeline (no VAE / T5 / tokenizer loaded: inputs are precomputed latents/embeddings,
    as in DiffSynth's own two-stage "data_process" -> "train" mode);
  - LoRA: diffsynth.diffusion.training_module.DiffusionTrainingModule.switch_pipe_to_training_mode
    (scheduler.set_timesteps(1000, training=True), pipe.freeze_except([]),
    add_lora_to_model -> peft.inject_adapter_in_model, LoRA upcast to the pipeline dtype);
  - loss/forward: diffsynth.diffusion.loss.FlowMatchSFTLoss(pipe, input_latents=..., context=...,
    vace_context=...), which samples one timestep per batch from the shifted Wan grid, noises with
    scheduler.add_noise, calls pipe.model_fn (pipelines.wan_video.model_fn_wan_video) and weights
    the MSE with scheduler.training_weight;
  - optimiser: AdamW(module.trainable_modules(), lr, weight_decay=0.01) as
    diffsynth.diffusion.runner.launch_training_task builds it. That trainer does not clip
    gradients (no clip_grad_norm_ anywhere in its loop); --clip-grad-norm adds ipa's clip 1.0.

Run with the reference venv (torch 2.11, diffsynth 2.1.12, peft):
    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/bench_diffsynth_step.py \
        --model configs/models/tiny.yaml --frames 9 --size 64 64 --batch 2 --rank 8 \
        --steps 6 --warmup 2 [--targets self_attn.q,self_attn.k,self_attn.v] [--threads N] \
        [--dtype bf16] [--grad-checkpointing] [--clip-grad-norm 1.0] [--print-times]
--targets is passed to DiffSynth verbatim (its --lora_target_modules; peft matches module-name
suffixes): its default "q,k,v,o,ffn.0,ffn.2" also hits cross_attn.{q,k,v,o}; ipa's QKV-only
adapter (self-attention q/k/v of the main blocks) is "self_attn.q,self_attn.k,self_attn.v".
"""

import argparse
import importlib.metadata
import importlib.util
import os
import resource
import statistics
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DIFFSYNTH_DEFAULT_TARGETS = 'q,k,v,o,ffn.0,ffn.2'  # diffsynth/diffusion/parsers.py --lora_target_modules
TEXT_ROWS = 6  # real (non-padding) text rows, as synthetic_batch in bench_ipa_step_upstream.py


def import_script(name):  # reuse the sibling scripts as modules (no code duplication)
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_pipe(cfg, dtype):
    """A WanVideoPipeline holding only the DiT (and the VACE module), built from the YAML."""
    from diffsynth.pipelines.wan_video import WanVideoPipeline
    from diffsynth.models.wan_video_dit import WanModel
    from diffsynth.models.wan_video_vace import VaceWanModel
    # DiffSynth's WanModel has q/k RMSNorm and the affine cross-attention norm built in.
    if not (cfg.get('qk_norm', True) and cfg.get('cross_attn_norm', True)):
        raise SystemExit('DiffSynth WanModel always has qk_norm and cross_attn_norm')
    pipe = WanVideoPipeline(device='cpu', torch_dtype=dtype)
    # same kwargs as the Wan2.1 T2V / VACE entries of diffsynth/configs/model_configs.py
    pipe.dit = WanModel(dim=cfg['dim'], in_dim=cfg['in_dim'], ffn_dim=cfg['ffn_dim'],
                        out_dim=cfg['out_dim'], text_dim=cfg['text_dim'], freq_dim=cfg['freq_dim'],
                        eps=cfg['eps'], patch_size=list(cfg['patch_size']),
                        num_heads=cfg['num_heads'], num_layers=cfg['num_layers'],
                        has_image_input=False)
    if 'vace_layers' in cfg:
        pipe.vace = VaceWanModel(vace_layers=tuple(cfg['vace_layers']), vace_in_dim=cfg['vace_in_dim'],
                                 patch_size=tuple(cfg['patch_size']), has_image_input=False,
                                 dim=cfg['dim'], num_heads=cfg['num_heads'], ffn_dim=cfg['ffn_dim'],
                                 eps=cfg['eps'])
    # DiffSynth's models use PyTorch default init (no zero-init head / after_proj), so the weights
    # are random and non-zero already: LoRA gets real gradients (a checkpoint costs the same).
    return pipe.to(dtype=dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', required=True, help='model YAML (or preset name)')
    ap.add_argument('--layers', type=int, default=0, help='override num_layers (0: keep)')
    ap.add_argument('--frames', type=int, default=9, help='video pixel frames (4n+1)')
    ap.add_argument('--size', type=int, nargs=2, default=(64, 64), metavar=('H', 'W'))
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--rank', type=int, default=8, help='LoRA rank (alpha = rank, as DiffSynth)')
    ap.add_argument('--targets', default=DIFFSYNTH_DEFAULT_TARGETS,
                    help='DiffSynth --lora_target_modules (default: DiffSynth\'s own)')
    ap.add_argument('--dtype', choices=('fp32', 'bf16'), default='fp32',
                    help='pipeline dtype (DiffSynth trains Wan in bf16; fp32 = like ipa on CPU)')
    ap.add_argument('--lr', type=float, default=1e-4)
    ap.add_argument('--weight-decay', type=float, default=0.01, help="DiffSynth's default")
    ap.add_argument('--clip-grad-norm', type=float, default=0.0,
                    help='0: none, like DiffSynth\'s trainer; 1.0: like ipa / the IPA snippet')
    ap.add_argument('--grad-checkpointing', action='store_true',
                    help='DiffSynth --use_gradient_checkpointing (per-block, non-reentrant)')
    ap.add_argument('--steps', type=int, default=6)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=0, help='0: os.cpu_count()')
    ap.add_argument('--print-times', action='store_true', help='also print every timed step')
    args = ap.parse_args()

    torch.set_num_threads(args.threads if args.threads > 0 else os.cpu_count())
    from diffsynth.diffusion.training_module import DiffusionTrainingModule
    from diffsynth.diffusion.loss import FlowMatchSFTLoss

    bench = import_script('bench_wan_upstream')         # YAML handling (same as the others)
    upstream_step = import_script('bench_ipa_step_upstream')  # synthetic_batch (same inputs)
    cfg = bench.load_config(args.model, args.layers)
    vace = 'vace_layers' in cfg
    dtype = torch.float32 if args.dtype == 'fp32' else torch.bfloat16

    torch.manual_seed(0)
    pipe = build_pipe(cfg, dtype)
    module = DiffusionTrainingModule()
    module.pipe = pipe
    module.switch_pipe_to_training_mode(pipe, trainable_models=None, lora_base_model='dit',
                                        lora_target_modules=args.targets, lora_rank=args.rank)
    params = list(module.trainable_modules())
    n_lora = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)  # launch_training_task
    sched = torch.optim.lr_scheduler.ConstantLR(opt)

    B = args.batch
    batch = upstream_step.synthetic_batch(cfg, B, args.frames, args.size, text_len=TEXT_ROWS)  # same seed
    x0 = batch['x0'].to(dtype)
    _, _, T, H, W = x0.shape
    pt, ph, pw = cfg['patch_size']
    seq_len = (T // pt) * (H // ph) * (W // pw)
    # DiffSynth's prompt unit returns the T5 output at the tokenizer's padded length (text_len) with
    # the padding rows zeroed; its DiT does not pad (the official one pads to text_len inside).
    context = torch.zeros(B, cfg['text_len'], cfg['text_dim'], dtype=dtype)
    rows = min(TEXT_ROWS, cfg['text_len'])
    context[:, :rows] = batch['context'][:, :rows].to(dtype)
    inputs = dict(input_latents=x0, context=context, cfg_scale=1, tiled=False,
                  use_gradient_checkpointing=args.grad_checkpointing,
                  use_gradient_checkpointing_offload=False, cfg_merge=False,
                  max_timestep_boundary=1.0, min_timestep_boundary=0.0)
    if vace:
        inputs.update(vace_context=batch['vace_context'].to(dtype), vace_scale=1)

    def step():
        loss = FlowMatchSFTLoss(pipe, **inputs)  # mutates only its own kwargs copy
        loss.backward()
        if args.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad()  # set_to_none=True is torch's default, as in DiffSynth's loop
        return loss.item()

    for _ in range(args.warmup):
        step()
    times, losses = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)

    med, best = statistics.median(times), min(times)
    print(f"diffsynth {importlib.metadata.version('diffsynth')} sft step: model {args.model} ({cfg['num_layers']} layers, "
          f"dim {cfg['dim']}{', VACE ' + str(list(cfg['vace_layers'])) if vace else ''}), batch {B}, "
          f'latent {T}x{H}x{W} ({seq_len} tokens/sample), text {cfg["text_len"]} rows, '
          f'LoRA rank {args.rank} on "{args.targets}" ({n_lora} params), {args.dtype}, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    print(f'step time          median {med:.4f} s  best {best:.4f} s  {B / med:.2f} samples/s')
    if args.print_times:
        print('step times         ' + ' '.join(f'{t:.4f}' for t in times))
    print('losses             ' + ' '.join(f'{l:.4g}' for l in losses))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    print(f'peak memory        {peak:.2f} MiB')


if __name__ == '__main__':
    main()
