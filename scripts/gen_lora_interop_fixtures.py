#!/usr/bin/env python3
"""LoRA interop fixtures: adapter files read or written by the peers' OWN Python code, with the
peers' forward output, for tests/lora/test_lora_interop.cpp.

  a. ipa -> diffusers: an adapter in exactly ipa's `save_adapter` spelling, loaded into the tiny
     diffusers WanTransformer3DModel of tests/fixtures/diffusers/wan_t2v by diffusers' own
     `WanPipeline.load_lora_weights` (peft underneath).
  b. DiffSynth-Studio -> ipa: a tiny DiffSynth `WanModel` with LoRA injected by DiffSynth's
     training module (`DiffusionTrainingModule.add_lora_to_model`, default targets of its
     parser), saved by its `ModelLogger.save_model`, loaded back by its pipeline's `load_lora`.
  c. ComfyUI/kohya spelling of the factors of (a); expected output = the script's own merge
     W + (alpha/r) up @ down into the diffusers weights (ComfyUI's documented rule, NOT its code).
  d. ipa VACE adapter -> diffusers: an adapter on the main AND the VACE blocks in ipa's spelling
     (`<name>.safetensors` + `<name>.vace.safetensors`), which diffusers' WanVACEPipeline.
     load_lora_weights refuses (recorded), and the same factors as diffusers' own
     `save_lora_weights` writes them (peft state dict + `lora_adapter_metadata`), which it loads
     into the tiny WanVACETransformer3DModel of tests/fixtures/diffusers/wan_vace.
  e. bf16 diffusers/peft file: a peft adapter (alpha != rank, kept only in the metadata) cast
     to bfloat16 and saved by WanPipeline.save_lora_weights, as diffusers' training scripts do.
  f. DiffSynth-Studio VACE LoRA, trained in bfloat16: `lora_base_model="vace"` on a tiny
     WanModel + VaceWanModel pipeline, real AdamW steps on FlowMatchSFTLoss, saved by ModelLogger,
     loaded back into a float32 pipeline by its load_lora.
The DiffSynth t2v LoRA of (b) is trained the same way (float32), so lora_B is non-zero by training.

All peer code is imported from the installed packages at run time; none lives in this repository.

    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_lora_interop_fixtures.py \
        --out tests/fixtures/lora_interop
"""

import argparse
import copy
import math
import os
import platform
import sys
import tempfile
import warnings

import torch

import diffusers
import peft
import safetensors
import safetensors.torch
from diffusers import WanPipeline, WanTransformer3DModel, WanVACEPipeline, WanVACETransformer3DModel
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

import diffsynth
from diffsynth.diffusion.logger import ModelLogger
from diffsynth.diffusion.loss import FlowMatchSFTLoss
from diffsynth.diffusion.parsers import add_lora_config, add_output_config
from diffsynth.diffusion.training_module import DiffusionTrainingModule
from diffsynth.models.wan_video_dit import WanModel
from diffsynth.models.wan_video_vace import VaceWanModel
from diffsynth.pipelines.wan_video import WanVideoPipeline, model_fn_wan_video

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_diffusers_fixtures import TEXT_LEN, float64_throughout, randomise  # noqa: E402
from gen_diffusers_fixtures import forward as diffusers_forward  # noqa: E402
from gen_wan_fixtures import save_safetensors  # noqa: E402

REPO = os.path.dirname(HERE)
DIFFUSERS_T2V = os.path.join(REPO, 'tests', 'fixtures', 'diffusers', 'wan_t2v')
DIFFUSERS_T2V_IO = os.path.join(REPO, 'tests', 'fixtures', 'diffusers', 'wan_t2v.io.safetensors')
DIFFUSERS_VACE = os.path.join(REPO, 'tests', 'fixtures', 'diffusers', 'wan_vace')
DIFFUSERS_VACE_IO = os.path.join(REPO, 'tests', 'fixtures', 'diffusers', 'wan_vace.io.safetensors')

RANK, ALPHA = 4, 6.0  # rank != alpha: scale 1.5
SEED = 1301
DIFFUSERS_NAMES = {'q': 'to_q', 'k': 'to_k', 'v': 'to_v'}

# DiffSynth case: the tiny config of the diffusers t2v fixture, in DiffSynth's (official) names.
DS_CONFIG = dict(dim=40, in_dim=4, ffn_dim=32, out_dim=4, text_dim=24, freq_dim=16, eps=1e-6, patch_size=(1, 2, 2),
                 num_heads=2, num_layers=2, has_image_input=False)
DS_SEED = 1302
DS_RANK = 4
# diffsynth/diffusion/parsers.py: --lora_target_modules default (read at run time below).
# Training: DiffSynth's AdamW (weight decay 0.01, launch_training_task) on FlowMatchSFTLoss. Its
# default learning rate is 1e-4; 1e-2 and a few steps make the trained adapter's effect on the
# output far above the float32 floor the tests bound with.
DS_LR, DS_STEPS = 1e-2, 3
DS_VACE_CONFIG = dict(DS_CONFIG, dim=24, ffn_dim=16, num_layers=3)
DS_VACE_LAYERS, DS_VACE_IN = (0, 2), 6
DS_VACE_SEED = 1304
VACE_SEED = 1303
BF16_SEED, BF16_RANK, BF16_ALPHA = 1305, 4, 8.0
BF16_TARGETS = ['to_q', 'to_k', 'to_v', 'to_out.0']  # diffusers' training scripts' default


def random_factors(gen, modules, fan_in, fan_out, rank):
    """A ~ N(0,1)/sqrt(fan_in), B ~ 0.5 N(0,1)/sqrt(rank): both non-zero, a visible change."""
    out = {}
    for m in modules:
        a = torch.randn(rank, fan_in, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
        b = 0.5 * torch.randn(fan_out, rank, generator=gen, dtype=torch.float64) / math.sqrt(rank)
        out[m] = (a.float(), b.float())
    return out


def ipa_spelling(factors):
    """Exactly what ipa::lora::save_adapter writes: fp32, `diffusion_model.<module>.lora_A.weight`,
    `.lora_B.weight`, scalar fp32 `.alpha`, plus its metadata keys."""
    t = {}
    for m, (a, b) in factors.items():
        t[f'diffusion_model.{m}.lora_A.weight'] = a
        t[f'diffusion_model.{m}.lora_B.weight'] = b
        t[f'diffusion_model.{m}.alpha'] = torch.tensor(ALPHA, dtype=torch.float32)
    meta = {'format': 'ipa.lora', 'format_version': '1', 'rank': str(RANK), 'alpha': f'{ALPHA:g}',
            'targets': 'self_attn.q,self_attn.k,self_attn.v', 'blocks': 'main'}
    return t, meta


def comfy_spelling(factors):
    t = {}
    for m, (a, b) in factors.items():
        t[f'diffusion_model.{m}.lora_down.weight'] = a
        t[f'diffusion_model.{m}.lora_up.weight'] = b
        t[f'diffusion_model.{m}.alpha'] = torch.tensor(ALPHA, dtype=torch.float32)
    return t


def load_io_inputs():
    io = safetensors.torch.load_file(DIFFUSERS_T2V_IO)
    return {k: io[k] for k in ('x', 't', 'context')}


def diffusers_f64(model_f32):
    """The float64 reference of gen_diffusers_fixtures.py: model in float64, diffusers' float32
    casts widened, RoPE tables rebuilt in float64."""
    m64 = copy.deepcopy(model_f32).double().eval()
    rope = m64.rope
    # Built under float64_throughout like gen_diffusers_fixtures.py: the constructor's own
    # `.float()` would otherwise round the tables to float32 before `.double()`.
    with float64_throughout():
        m64.rope = type(rope)(rope.attention_head_dim, rope.patch_size, rope.max_seq_len).double()
    assert m64.rope.freqs_cos.dtype == torch.float64
    return m64


def case_diffusers(out_dir, inp, results):
    cfg = WanTransformer3DModel.load_config(DIFFUSERS_T2V)
    n_layers, dim = cfg['num_layers'], cfg['num_attention_heads'] * cfg['attention_head_dim']
    modules = [f'blocks.{i}.self_attn.{p}' for i in range(n_layers) for p in ('q', 'k', 'v')]
    gen = torch.Generator().manual_seed(SEED)
    factors = random_factors(gen, modules, dim, dim, RANK)

    # (a) ipa spelling -> diffusers' own loader.
    tensors, meta = ipa_spelling(factors)
    ipa_path = os.path.join(out_dir, 'ipa_t2v.safetensors')
    save_safetensors(ipa_path, tensors, metadata=meta)

    base = WanTransformer3DModel.from_pretrained(DIFFUSERS_T2V, torch_dtype=torch.float32).eval()
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=None, scheduler=None, transformer=base)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        pipe.load_lora_weights(ipa_path, adapter_name='ipa')
    lora_model = pipe.transformer
    # diffusers put a peft LoRA on exactly the attn1.to_{q,k,v} layers of every block.
    lora_layers = sorted(n[:-len('.lora_A.ipa')] for n, _ in lora_model.named_modules() if n.endswith('.lora_A.ipa'))
    want = sorted(f'blocks.{i}.attn1.{DIFFUSERS_NAMES[p]}' for i in range(n_layers) for p in ('q', 'k', 'v'))
    assert lora_layers == want, (lora_layers, want)
    # and with alpha/rank folded into the factors (scale 1 in peft) or kept as peft scaling:
    # either way the effective delta must be (alpha/r) B A.
    for m, (a, b) in factors.items():
        i, p = m.split('.')[1], m.split('.')[-1]
        layer = lora_model.get_submodule(f'blocks.{i}.attn1.{DIFFUSERS_NAMES[p]}')
        delta = layer.lora_B['ipa'].weight.double() @ layer.lora_A['ipa'].weight.double() * layer.scaling['ipa']
        ref = (ALPHA / RANK) * b.double() @ a.double()
        assert torch.allclose(delta, ref, rtol=1e-6, atol=1e-7), m

    with torch.no_grad():
        out_base = diffusers_forward(WanTransformer3DModel.from_pretrained(DIFFUSERS_T2V, torch_dtype=torch.float32).eval(),
                                     inp, torch.float32)
        out = diffusers_forward(lora_model, inp, torch.float32)
        # float64: the same diffusers loading path on the float64 model, fed the file's tensors
        # widened to float64 (load_lora_weights takes a state dict too), so diffusers' folding
        # of alpha/rank into the factors happens in float64 instead of rounding them to float32.
        m64 = diffusers_f64(WanTransformer3DModel.from_pretrained(DIFFUSERS_T2V, torch_dtype=torch.float32))
        pipe64 = WanPipeline(tokenizer=None, text_encoder=None, vae=None, scheduler=None, transformer=m64)
        pipe64.load_lora_weights({k: v.double() for k, v in safetensors.torch.load_file(ipa_path).items()},
                                 adapter_name='ipa')
        m64 = pipe64.transformer.eval()
        for n, p in m64.named_parameters():
            assert p.dtype == torch.float64, n
        with float64_throughout():
            out64 = diffusers_forward(m64, inp, torch.float64)
            # diagnostic: float64 run of the adapter as loaded from the file (factors folded in float32)
            fold32 = diffusers_forward(diffusers_f64(lora_model), inp, torch.float64)
    io = dict(inp, out=out, out_f64=out64)
    save_safetensors(os.path.join(out_dir, 'ipa_t2v.io.safetensors'), io,
                     metadata={'generator': 'scripts/gen_lora_interop_fixtures.py', 'peer': 'diffusers',
                               'diffusers': diffusers.__version__, 'peft': peft.__version__,
                               'torch': torch.__version__})
    results['ipa_t2v'] = dict(floor=(out.double() - out64).abs().max().item(), scale=out64.abs().max().item(),
                              lora_effect=(out - out_base).abs().max().item(), layers=len(lora_layers),
                              fold32_gap=(fold32 - out64).abs().max().item(),
                              warnings=sorted({str(w.message)[:160] for w in caught}))

    # (c) ComfyUI / kohya spelling of the same factors; expected output by the merge rule
    # W' = W + (alpha/r) up @ down applied by this script to diffusers' weights (float64 merge,
    # stored float32 for the float32 run; float64 merged weights for the float64 run).
    comfy_path = os.path.join(out_dir, 'comfy_t2v.safetensors')
    save_safetensors(comfy_path, comfy_spelling(factors), metadata={'ss_network_dim': str(RANK),
                                                                    'ss_network_alpha': f'{ALPHA:g}'})
    merged = WanTransformer3DModel.from_pretrained(DIFFUSERS_T2V, torch_dtype=torch.float32).eval()
    m64 = diffusers_f64(merged)
    with torch.no_grad():
        for m, (a, b) in factors.items():
            i, p = m.split('.')[1], m.split('.')[-1]
            name = f'blocks.{i}.attn1.{DIFFUSERS_NAMES[p]}'
            d = (ALPHA / RANK) * b.double() @ a.double()
            w32 = merged.get_submodule(name).weight
            w32.copy_((w32.double() + d).float())
            w64 = m64.get_submodule(name).weight
            w64.copy_(w64 + d)
        out_c = diffusers_forward(merged, inp, torch.float32)
        with float64_throughout():
            out_c64 = diffusers_forward(m64, inp, torch.float64)
    save_safetensors(os.path.join(out_dir, 'comfy_t2v.io.safetensors'), dict(inp, out=out_c, out_f64=out_c64),
                     metadata={'generator': 'scripts/gen_lora_interop_fixtures.py',
                               'peer': 'merge rule W + (alpha/r) up@down applied by the script (not ComfyUI code)',
                               'diffusers': diffusers.__version__, 'torch': torch.__version__})
    results['comfy_t2v'] = dict(floor=(out_c.double() - out_c64).abs().max().item(),
                                scale=out_c64.abs().max().item(),
                                lora_effect=(out_c - out_base).abs().max().item(),
                                vs_peft64=(out_c64 - out64).abs().max().item())


def ds_default_targets():
    """The defaults of DiffSynth's training CLI (diffsynth/diffusion/parsers.py)."""
    p = argparse.ArgumentParser()
    add_lora_config(p)
    add_output_config(p)
    return p.get_default('lora_target_modules'), p.get_default('lora_rank'), p.get_default('remove_prefix_in_ckpt')


def ds_training_inputs(inp, dtype):
    """FlowMatchSFTLoss inputs as in scripts/bench_diffsynth_step.py (DiffSynth's 'train' stage on
    precomputed latents / embeddings): the fixture's x as clean latents, context padded to 512."""
    ctx = inp['context']
    ctx = torch.cat([ctx, ctx.new_zeros(ctx.shape[0], TEXT_LEN - ctx.shape[1], ctx.shape[2])], 1)
    d = dict(input_latents=inp['x'].to(dtype), context=ctx.to(dtype), cfg_scale=1, tiled=False,
             use_gradient_checkpointing=False, use_gradient_checkpointing_offload=False, cfg_merge=False,
             max_timestep_boundary=1.0, min_timestep_boundary=0.0)
    if 'vace_context' in inp:
        d.update(vace_context=inp['vace_context'].to(dtype), vace_scale=1)
    return d


def ds_train(pipe, lora_base_model, targets, inputs, seed):
    """DiffSynth's own training set-up and DS_STEPS optimiser steps: switch_pipe_to_training_mode
    (LoRA via add_lora_to_model, upcast to the pipeline dtype, B = 0 as peft initialises it),
    AdamW(trainable_modules(), lr, weight_decay=0.01) as launch_training_task builds it,
    FlowMatchSFTLoss forward/backward. Returns the training module and the losses."""
    module = DiffusionTrainingModule()
    module.pipe = pipe
    module.switch_pipe_to_training_mode(pipe, trainable_models=None, lora_base_model=lora_base_model,
                                        lora_target_modules=targets, lora_rank=DS_RANK)
    params = list(module.trainable_modules())
    assert all(float(p.detach().abs().max()) == 0 for n, p in module.named_parameters() if '.lora_B.' in n)
    opt = torch.optim.AdamW(params, lr=DS_LR, weight_decay=0.01)
    torch.manual_seed(seed)  # FlowMatchSFTLoss draws its timestep and noise from the global generator
    losses = []
    for _ in range(DS_STEPS):
        loss = FlowMatchSFTLoss(pipe, **inputs)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    b_max = max(float(p.detach().abs().max()) for n, p in module.named_parameters() if '.lora_B.' in n)
    assert b_max > 0, 'lora_B still zero after training'
    return module, losses, b_max


def ds_save(module, remove_prefix, out_path):
    """DiffSynth's ModelLogger.save_model (trainable parameters, prefix removed, accelerate's
    save), rewritten with the same tensors/names/metadata by the sorted writer."""
    from accelerate import Accelerator
    with tempfile.TemporaryDirectory() as tmp:
        logger = ModelLogger(tmp, remove_prefix_in_ckpt=remove_prefix)
        logger.save_model(Accelerator(cpu=True), module, 'lora.safetensors')
        lora_sd = safetensors.torch.load_file(os.path.join(tmp, 'lora.safetensors'))
        with safetensors.safe_open(os.path.join(tmp, 'lora.safetensors'), 'pt') as f:
            ds_meta = dict(sorted(f.metadata().items()))  # safe_open's order is not stable
    save_safetensors(out_path, lora_sd, metadata=ds_meta)
    assert set(safetensors.torch.load_file(out_path)) == set(lora_sd)
    return lora_sd, ds_meta


def ds_load(base_sd, lora_path, dtype, vace):
    """A fresh float32 DiffSynth model (and VACE module) from `base_sd`, cast to `dtype`, with the
    LoRA file fused by DiffSynth's own WanVideoPipeline(torch_dtype=dtype).load_lora."""
    dit = WanModel(**(DS_VACE_CONFIG if vace else DS_CONFIG)).float().eval()
    dit.load_state_dict({k: v for k, v in base_sd.items() if not k.startswith('vace_')})
    dit = dit.to(dtype)
    mods = dict(dit=dit)
    if vace:
        vm = VaceWanModel(**ds_vace_kwargs()).float().eval()
        vm.load_state_dict({k: v for k, v in base_sd.items() if k.startswith('vace_')})
        mods['vace'] = vm.to(dtype)
    if lora_path is not None:
        WanVideoPipeline(device='cpu', torch_dtype=dtype).load_lora(mods['vace' if vace else 'dit'], lora_path)
    for m in mods.values():
        for n, p in m.named_parameters():
            assert p.dtype == dtype, n
    return mods


def ds_vace_kwargs():
    c = DS_VACE_CONFIG
    return dict(vace_layers=DS_VACE_LAYERS, vace_in_dim=DS_VACE_IN, patch_size=c['patch_size'], has_image_input=False,
                dim=c['dim'], num_heads=c['num_heads'], ffn_dim=c['ffn_dim'], eps=c['eps'])


def ds_forward(mods, inp, dtype):
    ctx = inp['context']
    ctx = torch.cat([ctx, ctx.new_zeros(ctx.shape[0], TEXT_LEN - ctx.shape[1], ctx.shape[2])], 1)
    kw = dict(latents=inp['x'].to(dtype), timestep=inp['t'].to(dtype), context=ctx.to(dtype))
    if 'vace' in mods:
        kw.update(vace=mods['vace'], vace_context=inp['vace_context'].to(dtype),
                  vace_scale=float(inp['context_scale'].item()))
    return model_fn_wan_video(dit=mods['dit'], **kw)


def ds_reference(base_sd, lora_path, inp, vace):
    """float32 / float64 forwards of DiffSynth's model_fn_wan_video with the file loaded by its own
    loader (a float64 pipeline fuses in float64), and the base alone."""
    with torch.no_grad():
        out = ds_forward(ds_load(base_sd, lora_path, torch.float32, vace), inp, torch.float32)
        out_base = ds_forward(ds_load(base_sd, None, torch.float32, vace), inp, torch.float32)
        with float64_throughout():  # DiffSynth's RMSNorm casts with .float()
            out64 = ds_forward(ds_load(base_sd, lora_path, torch.float64, vace), inp, torch.float64)
    return out, out64, out_base


def case_diffsynth(out_dir, inp, results):
    targets, default_rank, remove_prefix = ds_default_targets()
    torch.manual_seed(DS_SEED)
    gen = torch.Generator().manual_seed(DS_SEED)
    dit = WanModel(**DS_CONFIG).float().eval()
    randomise(dit, gen)
    base_sd = {k: v.detach().clone().contiguous() for k, v in dit.state_dict().items()}
    base_path = os.path.join(out_dir, 'diffsynth_t2v.base.safetensors')
    save_safetensors(base_path, base_sd, metadata={'generator': 'scripts/gen_lora_interop_fixtures.py',
                                                   'class': 'diffsynth.models.wan_video_dit.WanModel'})

    # DiffSynth's training path on a float32 pipeline holding the model at pipe.dit (its
    # --lora_base_model dit, default targets and --remove_prefix_in_ckpt).
    pipe = WanVideoPipeline(device='cpu', torch_dtype=torch.float32)
    pipe.dit = dit
    module, losses, b_max = ds_train(pipe, 'dit', targets, ds_training_inputs(inp, torch.float32), DS_SEED)
    adapted = sorted(n[:-len('.lora_A.default')] for n, _ in dit.named_modules() if n.endswith('.lora_A.default'))
    trainable = sorted(module.trainable_param_names())
    assert all('.lora_' in n for n in trainable) and len(trainable) == 2 * len(adapted)
    with torch.no_grad():
        out_train = ds_forward(dict(dit=pipe.dit.eval()), inp, torch.float32)  # the peft-injected model itself

    lora_path = os.path.join(out_dir, 'diffsynth_t2v.safetensors')
    lora_sd, ds_meta = ds_save(module, remove_prefix, lora_path)
    out, out64, out_base = ds_reference(base_sd, lora_path, inp, vace=False)
    with torch.no_grad(), float64_throughout():
        # diagnostic: float64 run of the weights fused by the float32 pipeline
        fuse32 = ds_forward({k: copy.deepcopy(v).double() for k, v in
                             ds_load(base_sd, lora_path, torch.float32, False).items()}, inp, torch.float64)
    save_safetensors(os.path.join(out_dir, 'diffsynth_t2v.io.safetensors'), dict(inp, out=out, out_f64=out64),
                     metadata={'generator': 'scripts/gen_lora_interop_fixtures.py', 'peer': 'DiffSynth-Studio',
                               'diffsynth': diffsynth_version(), 'peft': peft.__version__,
                               'torch': torch.__version__})
    results['diffsynth_t2v'] = dict(
        floor=(out.double() - out64).abs().max().item(), scale=out64.abs().max().item(),
        lora_effect=(out - out_base).abs().max().item(), fused_vs_peft=(out - out_train).abs().max().item(),
        fuse32_gap=(fuse32 - out64).abs().max().item(), losses=losses, lora_B_max=b_max,
        targets=targets, default_rank=default_rank, remove_prefix=remove_prefix, adapted=adapted,
        keys=sorted(lora_sd), dtypes=sorted({str(v.dtype) for v in lora_sd.values()}), meta=ds_meta,
        base_keys=len(base_sd), base_params=sum(v.numel() for v in base_sd.values()))


def load_vace_inputs():
    io = safetensors.torch.load_file(DIFFUSERS_VACE_IO)
    return {k: io[k] for k in ('x', 't', 'context', 'vace_context', 'context_scale')}


def case_diffsynth_vace(out_dir, results):
    """(f) DiffSynth's VACE LoRA: --lora_base_model vace --remove_prefix_in_ckpt pipe.vace. (its
    examples/wanvideo/model_training/lora/Wan2.1-VACE-1.3B.sh), trained in bfloat16 (its
    pipelines' dtype), loaded back by its own loader into a float32 model."""
    targets, _, _ = ds_default_targets()
    inp = load_vace_inputs()
    inp['x'] = inp['x'][:, :DS_CONFIG['in_dim']]
    torch.manual_seed(DS_VACE_SEED)
    gen = torch.Generator().manual_seed(DS_VACE_SEED)
    dit = WanModel(**DS_VACE_CONFIG).float().eval()
    vace = VaceWanModel(**ds_vace_kwargs()).float().eval()
    randomise(dit, gen)
    randomise(vace, gen)
    base_sd = {k: v.detach().clone().contiguous() for k, v in dit.state_dict().items()}
    vace_sd = {k: v.detach().clone().contiguous() for k, v in vace.state_dict().items()}
    assert not set(base_sd) & set(vace_sd)
    base_sd.update(vace_sd)  # one file: the official VACE checkpoint layout
    save_safetensors(os.path.join(out_dir, 'diffsynth_vace.base.safetensors'), base_sd,
                     metadata={'generator': 'scripts/gen_lora_interop_fixtures.py',
                               'class': 'diffsynth WanModel + VaceWanModel (state dicts side by side)'})

    pipe = WanVideoPipeline(device='cpu', torch_dtype=torch.bfloat16)
    pipe.dit = dit.to(torch.bfloat16)
    pipe.vace = vace.to(torch.bfloat16)
    module, losses, b_max = ds_train(pipe, 'vace', targets, ds_training_inputs(inp, torch.bfloat16), DS_VACE_SEED)
    adapted = sorted(n[:-len('.lora_A.default')] for n, _ in pipe.vace.named_modules()
                     if n.endswith('.lora_A.default'))
    lora_path = os.path.join(out_dir, 'diffsynth_vace.safetensors')
    lora_sd, ds_meta = ds_save(module, 'pipe.vace.', lora_path)
    dtypes = sorted({str(v.dtype) for v in lora_sd.values()})
    assert dtypes == ['torch.bfloat16'], dtypes
    out, out64, out_base = ds_reference(base_sd, lora_path, inp, vace=True)
    save_safetensors(os.path.join(out_dir, 'diffsynth_vace.io.safetensors'), dict(inp, out=out, out_f64=out64),
                     metadata={'generator': 'scripts/gen_lora_interop_fixtures.py', 'peer': 'DiffSynth-Studio',
                               'diffsynth': diffsynth_version(), 'peft': peft.__version__,
                               'torch': torch.__version__})
    results['diffsynth_vace'] = dict(
        floor=(out.double() - out64).abs().max().item(), scale=out64.abs().max().item(),
        lora_effect=(out - out_base).abs().max().item(), losses=losses, lora_B_max=b_max, adapted=adapted,
        keys=len(lora_sd), dtypes=dtypes, meta=ds_meta, base_keys=len(base_sd),
        base_params=sum(v.numel() for v in base_sd.values()))


def diffusers_module(m):
    """blocks.N.self_attn.q -> blocks.N.attn1.to_q (also for vace_blocks)."""
    head, _, p = m.rpartition('.self_attn.')
    return f'{head}.attn1.{DIFFUSERS_NAMES[p]}'


def refusal(load):
    try:
        load()
    except Exception as e:  # noqa: BLE001 - recorded, asserted below
        return f'{type(e).__name__}: {str(e)[:160]}'
    return None


def diffusers_saved(model, pipeline_cls, out_path):
    """What diffusers' training scripts save: get_peft_model_state_dict + save_lora_weights with
    the adapter's LoraConfig as transformer_lora_adapter_metadata."""
    sd = get_peft_model_state_dict(model)
    config = model.peft_config['default'].to_dict()
    # peft keeps target_modules as a set (its order follows the hash seed): sorted, the file is
    # byte-reproducible; the content is the same.
    config['target_modules'] = sorted(config['target_modules'])
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_cls.save_lora_weights(tmp, transformer_lora_layers=sd, transformer_lora_adapter_metadata=config)
        (name,) = os.listdir(tmp)
        tensors = safetensors.torch.load_file(os.path.join(tmp, name))
        with safetensors.safe_open(os.path.join(tmp, name), 'pt') as f:
            meta = dict(sorted(f.metadata().items()))  # safe_open's order is not stable
    save_safetensors(out_path, tensors, metadata=meta)
    return tensors, meta


def case_ipa_vace(out_dir, results):
    inp = load_vace_inputs()
    cfg = WanVACETransformer3DModel.load_config(DIFFUSERS_VACE)
    dim = cfg['num_attention_heads'] * cfg['attention_head_dim']
    main = [f'blocks.{i}.self_attn.{p}' for i in range(cfg['num_layers']) for p in ('q', 'k', 'v')]
    vace = [f'vace_blocks.{i}.self_attn.{p}' for i in range(len(cfg['vace_layers'])) for p in ('q', 'k', 'v')]
    gen = torch.Generator().manual_seed(VACE_SEED)
    factors = random_factors(gen, main + vace, dim, dim, RANK)

    # ipa's spelling: save_adapter with blocks: all writes the vace_blocks adapters to the sibling.
    main_path = os.path.join(out_dir, 'ipa_vace.safetensors')
    vace_path = os.path.join(out_dir, 'ipa_vace.vace.safetensors')
    t_main, meta = ipa_spelling({m: factors[m] for m in main})
    t_vace, _ = ipa_spelling({m: factors[m] for m in vace})
    meta['blocks'] = 'all'
    save_safetensors(main_path, t_main, metadata=meta)
    save_safetensors(vace_path, t_vace, metadata=meta)

    def vace_pipe():
        m = WanVACETransformer3DModel.from_pretrained(DIFFUSERS_VACE, torch_dtype=torch.float32).eval()
        return WanVACEPipeline(tokenizer=None, text_encoder=None, vae=None, scheduler=None, transformer=m)

    # diffusers' load_lora_weights on ipa's spelling: the main file loads (blocks only), the VACE
    # file and the two merged into one are refused by _convert_non_diffusers_wan_lora_to_diffusers.
    refused = dict(
        main=refusal(lambda: vace_pipe().load_lora_weights(main_path, adapter_name='ipa')),
        vace=refusal(lambda: vace_pipe().load_lora_weights(vace_path, adapter_name='ipa')),
        merged=refusal(lambda: vace_pipe().load_lora_weights(
            {**safetensors.torch.load_file(main_path), **safetensors.torch.load_file(vace_path)}, adapter_name='ipa')))
    assert refused['main'] is None and refused['vace'] and refused['merged'], refused

    # diffusers' own spelling of the same adapter: peft LoRA on attn1.to_{q,k,v} (suffixes: the
    # main AND the VACE blocks, = ipa's blocks: all), factors copied in, saved as its scripts do.
    model = WanVACETransformer3DModel.from_pretrained(DIFFUSERS_VACE, torch_dtype=torch.float32).eval()
    model.add_adapter(LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=['attn1.to_q', 'attn1.to_k', 'attn1.to_v']))
    adapted = sorted(n[:-len('.lora_A.default')] for n, _ in model.named_modules() if n.endswith('.lora_A.default'))
    assert adapted == sorted(diffusers_module(m) for m in main + vace), adapted
    with torch.no_grad():
        for m, (a, b) in factors.items():
            layer = model.get_submodule(diffusers_module(m))
            layer.lora_A['default'].weight.copy_(a)
            layer.lora_B['default'].weight.copy_(b)
    diff_path = os.path.join(out_dir, 'diffusers_vace.safetensors')
    tensors, dmeta = diffusers_saved(model, WanVACEPipeline, diff_path)

    pipe = vace_pipe()
    pipe.load_lora_weights(diff_path, adapter_name='ipa')
    lora_model = pipe.transformer
    for m, (a, b) in factors.items():
        layer = lora_model.get_submodule(diffusers_module(m))
        assert torch.equal(layer.lora_A['ipa'].weight, a) and torch.equal(layer.lora_B['ipa'].weight, b), m
        assert layer.scaling['ipa'] == ALPHA / RANK, (m, layer.scaling)
    with torch.no_grad():
        out_base = diffusers_forward(vace_pipe().transformer, inp, torch.float32)
        out = diffusers_forward(lora_model, inp, torch.float32)
        with float64_throughout():  # the same peft model widened (factors exact, scaling 1.5)
            out64 = diffusers_forward(diffusers_f64(lora_model), inp, torch.float64)
    save_safetensors(os.path.join(out_dir, 'ipa_vace.io.safetensors'), dict(inp, out=out, out_f64=out64),
                     metadata={'generator': 'scripts/gen_lora_interop_fixtures.py',
                               'peer': 'diffusers WanVACEPipeline.load_lora_weights(diffusers_vace.safetensors)',
                               'diffusers': diffusers.__version__, 'peft': peft.__version__,
                               'torch': torch.__version__})
    results['ipa_vace'] = dict(floor=(out.double() - out64).abs().max().item(), scale=out64.abs().max().item(),
                               lora_effect=(out - out_base).abs().max().item(), refused=refused,
                               diffusers_keys=len(tensors), layers=len(adapted),
                               metadata_keys=sorted(dmeta))


def case_diffusers_bf16(out_dir, inp, results):
    """(e) a bfloat16 adapter file written by diffusers/peft: LoraConfig(r=4, lora_alpha=8) on
    diffusers' default targets, the model cast to bfloat16 before get_peft_model_state_dict as
    diffusers' training scripts do at the final save (without --upcast_before_saving)."""
    model = WanTransformer3DModel.from_pretrained(DIFFUSERS_T2V, torch_dtype=torch.float32).eval()
    model.add_adapter(LoraConfig(r=BF16_RANK, lora_alpha=BF16_ALPHA, target_modules=BF16_TARGETS))
    gen = torch.Generator().manual_seed(BF16_SEED)
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            if '.lora_' in n:
                scale = 1.0 if '.lora_A.' in n else 0.5
                p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64).float() / math.sqrt(p.shape[1]))
        with float64_throughout():  # the float32 adapter before the bfloat16 cast, in float64
            out_unrounded64 = diffusers_forward(diffusers_f64(model), inp, torch.float64)
    path = os.path.join(out_dir, 'diffusers_t2v_bf16.safetensors')
    tensors, meta = diffusers_saved(copy.deepcopy(model).to(torch.bfloat16), WanPipeline, path)
    dtypes = sorted({str(v.dtype) for v in tensors.values()})
    assert dtypes == ['torch.bfloat16'], dtypes

    base = WanTransformer3DModel.from_pretrained(DIFFUSERS_T2V, torch_dtype=torch.float32).eval()
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=None, scheduler=None, transformer=base)
    pipe.load_lora_weights(path, adapter_name='peer')
    lora_model = pipe.transformer
    scalings = {layer.scaling['peer'] for _, layer in lora_model.named_modules() if hasattr(layer, 'scaling')
                and 'peer' in getattr(layer, 'scaling', {})}
    assert scalings == {BF16_ALPHA / BF16_RANK}, scalings
    n_layers = sum(1 for n, _ in lora_model.named_modules() if n.endswith('.lora_A.peer'))
    with torch.no_grad():
        out_base = diffusers_forward(WanTransformer3DModel.from_pretrained(DIFFUSERS_T2V).eval(), inp, torch.float32)
        out = diffusers_forward(lora_model, inp, torch.float32)
        with float64_throughout():
            out64 = diffusers_forward(diffusers_f64(lora_model), inp, torch.float64)
    rounding = (out_unrounded64 - out64).abs().max().item()
    save_safetensors(os.path.join(out_dir, 'diffusers_t2v_bf16.io.safetensors'),
                     dict(inp, out=out, out_f64=out64, out_unrounded_f64=out_unrounded64),
                     metadata={'generator': 'scripts/gen_lora_interop_fixtures.py',
                               'peer': 'diffusers WanPipeline.load_lora_weights(diffusers_t2v_bf16.safetensors)',
                               'diffusers': diffusers.__version__, 'peft': peft.__version__,
                               'torch': torch.__version__})
    results['diffusers_t2v_bf16'] = dict(floor=(out.double() - out64).abs().max().item(),
                                         scale=out64.abs().max().item(), lora_effect=(out - out_base).abs().max().item(),
                                         bf16_rounding_effect=rounding, layers=n_layers, keys=len(tensors),
                                         dtypes=dtypes)


def check_converted(path, io_path):
    """Loads an adapter file (e.g. `ipa-inspect convert-lora --to diffusers` output) with diffusers'
    own load_lora_weights into the model the io file belongs to and compares with its out_f64."""
    io = safetensors.torch.load_file(io_path)
    vace = 'vace_context' in io
    cls, pipe_cls, folder = ((WanVACETransformer3DModel, WanVACEPipeline, DIFFUSERS_VACE) if vace
                             else (WanTransformer3DModel, WanPipeline, DIFFUSERS_T2V))
    pipe = pipe_cls(tokenizer=None, text_encoder=None, vae=None, scheduler=None,
                    transformer=cls.from_pretrained(folder, torch_dtype=torch.float32).eval())
    pipe.load_lora_weights(path, adapter_name='converted')
    with torch.no_grad():
        out = diffusers_forward(pipe.transformer, io, torch.float32)
    floor = (io['out'].double() - io['out_f64']).abs().max().item()
    err = (out.double() - io['out_f64']).abs().max().item()
    n = sum(1 for k, _ in pipe.transformer.named_modules() if k.endswith('.lora_A.converted'))
    print(f'{path}: diffusers load_lora_weights put LoRA on {n} layers; max|out - out_f64| = {err:.3e} '
          f'({err / floor:.2f} x floor {floor:.3e})')
    return err <= 10 * floor


def check_diffsynth(path, io_path):
    """Loads an adapter (e.g. `ipa-inspect convert-lora --to diffsynth` output: main blocks in PATH
    for pipe.dit, VACE blocks in its .vace.safetensors sibling for pipe.vace) with DiffSynth's own
    WanVideoPipeline.load_lora into the DiffSynth base the io file belongs to; compares with out_f64."""
    io = safetensors.torch.load_file(io_path)
    vace = 'vace_context' in io
    fixtures = os.path.dirname(os.path.abspath(io_path))
    base_sd = safetensors.torch.load_file(os.path.join(fixtures, 'diffsynth_vace.base.safetensors' if vace
                                                       else 'diffsynth_t2v.base.safetensors'))
    mods = ds_load(base_sd, None, torch.float32, vace)
    sibling = path[:-len('.safetensors')] + '.vace.safetensors'
    loaded = []
    pipe = WanVideoPipeline(device='cpu', torch_dtype=torch.float32)
    for file, target in ((path, 'dit'), (sibling, 'vace')):
        if os.path.exists(file) and safetensors.torch.load_file(file):
            pipe.load_lora(mods[target], file)
            loaded.append(f'{os.path.basename(file)} -> pipe.{target}')
    with torch.no_grad():
        out = ds_forward(mods, io, torch.float32)
    floor = (io['out'].double() - io['out_f64']).abs().max().item()
    err = (out.double() - io['out_f64']).abs().max().item()
    print(f'{path}: DiffSynth load_lora {loaded}; max|out - out_f64| = {err:.3e} ({err / floor:.2f} x floor {floor:.3e})')
    return err <= 10 * floor


def diffsynth_version():
    from importlib.metadata import version
    return version('diffsynth')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', help='fixture folder to write')
    ap.add_argument('--check-diffusers', nargs=2, metavar=('ADAPTER', 'IO'),
                    help='instead: load ADAPTER with diffusers and compare with IO\'s out_f64')
    ap.add_argument('--check-diffsynth', nargs=2, metavar=('ADAPTER', 'IO'),
                    help='instead: load ADAPTER with DiffSynth-Studio and compare with IO\'s out_f64')
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.check_diffusers:
        sys.exit(0 if check_converted(*args.check_diffusers) else 1)
    if args.check_diffsynth:
        sys.exit(0 if check_diffsynth(*args.check_diffsynth) else 1)
    if not args.out:
        ap.error('--out is required')
    os.makedirs(args.out, exist_ok=True)
    inp = load_io_inputs()
    results = {}
    case_diffusers(args.out, inp, results)
    case_diffsynth(args.out, inp, results)
    case_ipa_vace(args.out, results)
    case_diffusers_bf16(args.out, inp, results)
    case_diffsynth_vace(args.out, results)
    for k, v in results.items():
        print(k, v)
    sizes = {f: os.path.getsize(os.path.join(args.out, f)) for f in sorted(os.listdir(args.out))}
    print(sizes, sum(sizes.values()))
    print('versions', dict(diffusers=diffusers.__version__, peft=peft.__version__, diffsynth=diffsynth_version(),
                           torch=torch.__version__, safetensors=safetensors.__version__,
                           python=platform.python_version()))


if __name__ == '__main__':
    main()
