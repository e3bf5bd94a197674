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
from diffusers import WanPipeline, WanTransformer3DModel

import diffsynth
from diffsynth.diffusion.logger import ModelLogger
from diffsynth.diffusion.parsers import add_lora_config, add_output_config
from diffsynth.diffusion.training_module import DiffusionTrainingModule
from diffsynth.models.wan_video_dit import WanModel
from diffsynth.pipelines.wan_video import WanVideoPipeline, model_fn_wan_video

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_diffusers_fixtures import TEXT_LEN, float64_throughout, randomise  # noqa: E402
from gen_diffusers_fixtures import forward as diffusers_forward  # noqa: E402
from gen_wan_fixtures import save_safetensors  # noqa: E402

REPO = os.path.dirname(HERE)
DIFFUSERS_T2V = os.path.join(REPO, 'tests', 'fixtures', 'diffusers', 'wan_t2v')
DIFFUSERS_T2V_IO = os.path.join(REPO, 'tests', 'fixtures', 'diffusers', 'wan_t2v.io.safetensors')

RANK, ALPHA = 4, 6.0  # rank != alpha: scale 1.5
SEED = 1301
DIFFUSERS_NAMES = {'q': 'to_q', 'k': 'to_k', 'v': 'to_v'}

# DiffSynth case: the tiny config of the diffusers t2v fixture, in DiffSynth's (official) names.
DS_CONFIG = dict(dim=40, in_dim=4, ffn_dim=32, out_dim=6, text_dim=24, freq_dim=16, eps=1e-6, patch_size=(1, 2, 2),
                 num_heads=2, num_layers=2, has_image_input=False)
DS_SEED = 1302
DS_RANK = 4
# diffsynth/diffusion/parsers.py: --lora_target_modules default (read at run time below).


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


def ds_forward(dit, inp, dtype):
    ctx = inp['context']
    ctx = torch.cat([ctx, ctx.new_zeros(ctx.shape[0], TEXT_LEN - ctx.shape[1], ctx.shape[2])], 1)
    return model_fn_wan_video(dit=dit, latents=inp['x'].to(dtype), timestep=inp['t'].to(dtype),
                              context=ctx.to(dtype))


def case_diffsynth(out_dir, inp, results):
    from accelerate import Accelerator

    targets, default_rank, remove_prefix = ds_default_targets()
    torch.manual_seed(DS_SEED)
    gen = torch.Generator().manual_seed(DS_SEED)
    dit = WanModel(**DS_CONFIG).float().eval()
    randomise(dit, gen)
    base_sd = {k: v.detach().clone().contiguous() for k, v in dit.state_dict().items()}
    base_path = os.path.join(out_dir, 'diffsynth_t2v.base.safetensors')
    save_safetensors(base_path, base_sd, metadata={'generator': 'scripts/gen_lora_interop_fixtures.py',
                                                   'class': 'diffsynth.models.wan_video_dit.WanModel'})

    # DiffSynth's training path: switch_pipe_to_training_mode -> add_lora_to_model(model,
    # target_modules=parse_lora_target_modules(model, args.lora_target_modules), lora_rank,
    # upcast_dtype) (no alpha: peft lora_alpha = rank).
    tm = DiffusionTrainingModule()
    tm.pipe = torch.nn.Module()
    tm.pipe.dit = tm.add_lora_to_model(dit, target_modules=tm.parse_lora_target_modules(dit, targets),
                                       lora_rank=DS_RANK, upcast_dtype=torch.float32)
    adapted = sorted(n[:-len('.lora_A.default')] for n, _ in dit.named_modules() if n.endswith('.lora_A.default'))
    # peft initialises B to zero: give both factors seeded random non-zero values.
    with torch.no_grad():
        for n, p in sorted(tm.named_parameters()):
            if p.requires_grad:
                fan = p.shape[1]
                scale = 1.0 if '.lora_A.' in n else 0.5
                p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64).float() / math.sqrt(fan))
    trainable = sorted(tm.trainable_param_names())
    assert all('.lora_' in n for n in trainable) and len(trainable) == 2 * len(adapted)
    with torch.no_grad():
        out_train = ds_forward(tm.pipe.dit, inp, torch.float32)  # the peft-injected model itself

    with tempfile.TemporaryDirectory() as tmp:
        logger = ModelLogger(tmp, remove_prefix_in_ckpt=remove_prefix)
        logger.save_model(Accelerator(cpu=True), tm, 'lora.safetensors')
        lora_sd = safetensors.torch.load_file(os.path.join(tmp, 'lora.safetensors'))
        with safetensors.safe_open(os.path.join(tmp, 'lora.safetensors'), 'pt') as f:
            ds_meta = f.metadata()
    lora_path = os.path.join(out_dir, 'diffsynth_t2v.safetensors')
    save_safetensors(lora_path, lora_sd, metadata=ds_meta)  # same tensors/names, sorted writer
    assert set(safetensors.torch.load_file(lora_path)) == set(lora_sd)

    # Load back with DiffSynth's own loader into a fresh model (pipeline.load_lora: fuses B A * alpha=1).
    fresh = WanModel(**DS_CONFIG).float().eval()
    fresh.load_state_dict(safetensors.torch.load_file(base_path))
    pipe = WanVideoPipeline(device='cpu', torch_dtype=torch.float32)
    pipe.load_lora(fresh, lora_path)
    # float64: the same loader of a float64 pipeline into the float64 base (DiffSynth fuses
    # B A into the weight in the pipeline's dtype; in float32 that rounds the fused weight).
    fresh64 = WanModel(**DS_CONFIG).float().eval()
    fresh64.load_state_dict(safetensors.torch.load_file(base_path))
    fresh64 = fresh64.double()
    WanVideoPipeline(device='cpu', torch_dtype=torch.float64).load_lora(fresh64, lora_path)
    for n, p in fresh64.named_parameters():
        assert p.dtype == torch.float64, n
    base_model = WanModel(**DS_CONFIG).float().eval()
    base_model.load_state_dict(safetensors.torch.load_file(base_path))
    with torch.no_grad():
        out = ds_forward(fresh, inp, torch.float32)
        out_base = ds_forward(base_model, inp, torch.float32)
        with float64_throughout():  # DiffSynth's RMSNorm casts with .float()
            out64 = ds_forward(fresh64, inp, torch.float64)
            # diagnostic: float64 run of the weights fused by the float32 pipeline
            fuse32 = ds_forward(copy.deepcopy(fresh).double(), inp, torch.float64)
    save_safetensors(os.path.join(out_dir, 'diffsynth_t2v.io.safetensors'), dict(inp, out=out, out_f64=out64),
                     metadata={'generator': 'scripts/gen_lora_interop_fixtures.py', 'peer': 'DiffSynth-Studio',
                               'diffsynth': diffsynth_version(), 'peft': peft.__version__,
                               'torch': torch.__version__})
    results['diffsynth_t2v'] = dict(
        floor=(out.double() - out64).abs().max().item(), scale=out64.abs().max().item(),
        lora_effect=(out - out_base).abs().max().item(), fused_vs_peft=(out - out_train).abs().max().item(),
        fuse32_gap=(fuse32 - out64).abs().max().item(),
        targets=targets, default_rank=default_rank, remove_prefix=remove_prefix, adapted=adapted,
        keys=sorted(lora_sd), dtypes=sorted({str(v.dtype) for v in lora_sd.values()}), meta=ds_meta,
        base_keys=len(base_sd), base_params=sum(v.numel() for v in base_sd.values()))


def diffsynth_version():
    from importlib.metadata import version
    return version('diffsynth')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    inp = load_io_inputs()
    results = {}
    case_diffusers(args.out, inp, results)
    case_diffsynth(args.out, inp, results)
    for k, v in results.items():
        print(k, v)
    sizes = {f: os.path.getsize(os.path.join(args.out, f)) for f in sorted(os.listdir(args.out))}
    print(sizes, sum(sizes.values()))
    print('versions', dict(diffusers=diffusers.__version__, peft=peft.__version__, diffsynth=diffsynth_version(),
                           torch=torch.__version__, safetensors=safetensors.__version__,
                           python=platform.python_version()))


if __name__ == '__main__':
    main()
