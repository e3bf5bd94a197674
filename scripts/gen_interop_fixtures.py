#!/usr/bin/env python3
"""Interop fixtures for the VAE, the text encoder and the tokenizer: written by the peers' own
code (diffusers `AutoencoderKLWan`, transformers `UMT5EncoderModel` and its fast tokenizer,
ftfy + upstream Wan's prompt cleaning), imported or executed at run time; no peer code lives
in this repository.

  vae:       a tiny AutoencoderKLWan (random non-zero weights everywhere, non-official latent
             statistics) saved with `save_pretrained` (sharded), encode / decode outputs in
             float32 and float64 (tests/vae/test_vae_diffusers.cpp).
  umt5:      a tiny UMT5EncoderModel saved with `save_pretrained`, last_hidden_state for
             ids + attention mask in float32 and float64 (tests/t5/test_t5_interop.cpp).
  tokenizer: prompts tokenized by upstream Wan's `HuggingfaceTokenizer` (wan/modules/tokenizers.py,
             executed from a Wan2.1 checkout: ftfy + html.unescape twice + whitespace collapse,
             then the transformers fast tokenizer of tests/fixtures/t5/spiece.model).

Run with the reference venv (torch 2.11; diffusers, transformers, sentencepiece, ftfy pinned in
scripts/requirements-ref.txt):
    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_interop_fixtures.py \
        --wan-git /work/.mirror/Wan-Video+Wan2.1/repo --out tests/fixtures/interop
"""

import argparse
import hashlib
import inspect
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import types

import torch

import diffusers
import safetensors
from diffusers import AutoencoderKLWan

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_diffusers_fixtures import float64_throughout  # noqa: E402  (Tensor.float -> float64 for one run)
from gen_wan_fixtures import save_safetensors  # noqa: E402  (sorted, byte-reproducible writer)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sha256_file(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def det_uniform(shape, seed):
    """Values k * 2^-23 - 1 in [-1, 1) from a seeded generator: exact in float32 and float64."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 1 << 24, shape, generator=g, dtype=torch.int64)
    return (k.double() / float(1 << 23) - 1.0).float()


def folder_size(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def maxdiff(a, b):
    return (a.double() - b.double()).abs().max().item()


# ---------------------------------------------------------------------------------------------
# diffusers AutoencoderKLWan

VAE_CONFIG = dict(base_dim=4, z_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=2, attn_scales=[],
                  temperal_downsample=[False, True, True])
VAE_CASES = [
    dict(name='enc_t9_16x24', kind='encode', shape=(1, 3, 9, 16, 24), seed=31),
    dict(name='enc_b2_t5_16x16', kind='encode', shape=(2, 3, 5, 16, 16), seed=32),
    dict(name='dec_t4_1x2', kind='decode', shape=(1, 8, 4, 1, 2), seed=33),
    dict(name='dec_b2_t2_1x2', kind='decode', shape=(2, 8, 2, 1, 2), seed=34),
]


def vae_randomise(model, gen):
    """Every parameter: conv weights N(0,1)/sqrt(fan_in), biases 0.1 N(0,1), RMS gains 1 + 0.1 N(0,1)."""
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            z = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if n.endswith('.bias'):
                v = 0.1 * z
            elif n.endswith('.gamma'):
                v = 1.0 + 0.1 * z
            else:
                v = z / math.sqrt(p[0].numel())
            p.copy_(v.to(p.dtype))


def pipeline_stats(model, dtype):
    """WanVACEPipeline.prepare_video_latents / WanPipeline decode: mean and 1/std tensors."""
    z = model.config.z_dim
    mean = torch.tensor(model.config.latents_mean, dtype=dtype).view(1, z, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(model.config.latents_std, dtype=dtype).view(1, z, 1, 1, 1)
    return mean, inv_std


class no_clamp:
    """For the diagnostic `raw` output only: torch.clamp as the identity inside AutoencoderKLWan._decode."""

    def __enter__(self):
        self.orig = torch.clamp
        torch.clamp = lambda x, *a, **k: x

    def __exit__(self, *exc):
        torch.clamp = self.orig


def vae_run(model, cs, x, dtype):
    """The pipelines' calls: encode -> latent_dist.mode() (sample_mode='argmax') -> (mu - mean) * (1/std);
    decode(z / (1/std) + mean).sample (clamped to [-1, 1] by diffusers)."""
    mean, inv_std = pipeline_stats(model, dtype)
    x = x.to(dtype)
    if cs['kind'] == 'encode':
        mu = model.encode(x).latent_dist.mode()
        return dict(mu=mu, latents=(mu - mean) * inv_std)
    z = x / inv_std + mean
    out = model.decode(z).sample
    with no_clamp():
        raw = model.decode(z).sample
    return dict(out=out, raw=raw)


def gen_vae(out_dir):
    gen = torch.Generator().manual_seed(30)
    torch.manual_seed(30)
    z = VAE_CONFIG['z_dim']
    stats = torch.randn(2, z, generator=gen, dtype=torch.float64)
    cfg = dict(VAE_CONFIG, latents_mean=[round(v, 4) for v in (0.5 * stats[0]).tolist()],
               latents_std=[round(v, 4) for v in (1.5 + 0.5 * stats[1].abs()).tolist()])
    model = AutoencoderKLWan(**cfg).float().eval()
    vae_randomise(model, gen)
    ref = {k: v.detach().clone() for k, v in model.state_dict().items()}
    folder = os.path.join(out_dir, 'vae_diffusers')
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, max_shard_size='200KB', safe_serialization=True)
    loaded = AutoencoderKLWan.from_pretrained(folder, torch_dtype=torch.float32).eval()
    sd = loaded.state_dict()
    assert sd.keys() == ref.keys()
    for k in sd:
        assert torch.equal(sd[k], ref[k]) and sd[k].abs().min() > 0, k
    m64 = AutoencoderKLWan.from_pretrained(folder, torch_dtype=torch.float32).double().eval()
    results = []
    for cs in VAE_CASES:
        x = det_uniform(cs['shape'], cs['seed'])
        if cs['kind'] == 'decode':
            x = 2.0 * x
        with torch.no_grad():
            r32 = vae_run(loaded, cs, x, torch.float32)
            with float64_throughout(sinusoid=False):  # WanUpsample's x.float() stays float64
                r64 = vae_run(m64, cs, x, torch.float64)
        io = {('video' if cs['kind'] == 'encode' else 'z'): x}
        for k in r32:
            io[k] = r32[k]
            io[k + '_f64'] = r64[k]
        path = os.path.join(out_dir, f"vae_{cs['name']}.io.safetensors")
        save_safetensors(path, io, metadata={'generator': 'scripts/gen_interop_fixtures.py',
                                             'diffusers': diffusers.__version__, 'torch': torch.__version__})
        floors = {k: maxdiff(r32[k], r64[k]) for k in r32}
        scales = {k: r64[k].abs().max().item() for k in r32}
        results.append(dict(cs=cs, floors=floors, scales=scales, size=os.path.getsize(path),
                            shapes={k: list(v.shape) for k, v in io.items()}))
        print(f"vae {cs['name']}: " + ', '.join(f'{k}: max {scales[k]:.3f} floor {floors[k]:.3g}' for k in r32))
    info = dict(files=sorted(os.listdir(folder)), bytes=folder_size(folder), tensors=len(sd),
                params=sum(p.numel() for p in loaded.parameters()), config=cfg)
    return info, results


# ---------------------------------------------------------------------------------------------
# transformers UMT5EncoderModel

# d_kv * num_heads = 36 != d_model 32 (Wan's dim_attn != dim path); max distance 20 (not the
# shapes-only default 128) so that the config.json must be read; 3 layers, a bias per layer.
UMT5_CONFIG = dict(vocab_size=608, d_model=32, d_kv=12, num_heads=3, d_ff=48, num_layers=3,
                   relative_attention_num_buckets=32, relative_attention_max_distance=20, layer_norm_epsilon=1e-6,
                   feed_forward_proj='gated-gelu', dropout_rate=0.0)
# Pieces the small spiece.model has for both tokenizers (see the tokenizer part for where they differ).
UMT5_PROMPTS = ['a red fox jumps over a river at dawn, cinematic lighting, slow motion.',
                'two people dance in the rain',
                'close up, a chef slices very thin cucumbers, steam rises, 30 fps, shallow depth of field, warm light.']


def umt5_randomise(model, gen):
    """Matrices N(0,1)/sqrt(fan_in), token embedding N(0,1), relative biases 0.5 N(0,1), norm gains 1 + 0.1 N(0,1)."""
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            z = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if n == 'shared.weight':
                v = z
            elif 'relative_attention_bias' in n:
                v = 0.5 * z
            elif p.dim() == 1:
                v = 1.0 + 0.1 * z
            else:
                v = z / math.sqrt(p.shape[1])
            p.copy_(v.to(p.dtype))


class umt5_float64:
    """For the float64 run only: UMT5LayerNorm's `hidden_states.to(torch.float32)` (the variance) becomes
    float64, re-executed from its own source in its module's namespace. Nothing else in the encoder casts
    (the bucket's `relative_position.float()` stays float32 as in Wan: it decides integer buckets)."""

    def __enter__(self):
        from transformers.models.umt5 import modeling_umt5 as mu
        self.mu, self.orig = mu, mu.UMT5LayerNorm.forward
        src = inspect.getsource(self.orig)
        assert src.count('torch.float32') == 1, 'UMT5LayerNorm changed; review the widening'
        src = '\n'.join(l[4:] for l in src.replace('torch.float32', 'torch.float64').split('\n'))
        ns = dict(mu.__dict__)
        exec(compile(src, inspect.getsourcefile(self.orig), 'exec'), ns)
        mu.UMT5LayerNorm.forward = ns['forward']

    def __exit__(self, *exc):
        self.mu.UMT5LayerNorm.forward = self.orig


def hf_tokenizer(spiece, byte_fallback=True):
    """The transformers tokenizer of a SentencePiece model, made the way AutoTokenizer makes one from a
    folder holding only `spiece.model` (T5Tokenizer, converted to a `tokenizers` Unigram; extra_ids=0:
    google/umt5-xxl adds its 384 <extra_id_N> as added tokens, see the README). transformers' T5
    conversion leaves `byte_fallback` off although the model has byte pieces; with `byte_fallback`
    the converted tokenizer.json is edited to say so (tokenizers >= 0.14 honours it)."""
    import tempfile
    from transformers import AutoTokenizer
    d = tempfile.mkdtemp()
    shutil.copy(spiece, d)
    with open(os.path.join(d, 'tokenizer_config.json'), 'w') as f:
        json.dump({'tokenizer_class': 'T5Tokenizer', 'extra_ids': 0}, f)
    tok = AutoTokenizer.from_pretrained(d)
    if byte_fallback:
        tok.save_pretrained(d)
        os.remove(os.path.join(d, 'spiece.model'))  # reload from tokenizer.json only
        with open(os.path.join(d, 'tokenizer.json')) as f:
            j = json.load(f)
        assert j['model']['type'] == 'Unigram' and j['model'].get('byte_fallback') is False
        j['model']['byte_fallback'] = True
        with open(os.path.join(d, 'tokenizer.json'), 'w') as f:
            json.dump(j, f)
        tok = AutoTokenizer.from_pretrained(d)
    shutil.rmtree(d)
    return tok


def gen_umt5(out_dir):
    import transformers
    from transformers import UMT5Config, UMT5EncoderModel
    gen = torch.Generator().manual_seed(40)
    torch.manual_seed(40)
    model = UMT5EncoderModel(UMT5Config(**UMT5_CONFIG)).float().eval()
    umt5_randomise(model, gen)
    folder = os.path.join(out_dir, 'umt5_transformers')
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, safe_serialization=True)
    loaded = UMT5EncoderModel.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation='eager').eval()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]) and v.abs().min() > 0, k
    m64 = UMT5EncoderModel.from_pretrained(folder, torch_dtype=torch.float64, attn_implementation='eager').eval()

    def run(ids, mask):
        with torch.no_grad():
            o32 = loaded(input_ids=ids, attention_mask=mask).last_hidden_state
            with umt5_float64():
                o64 = m64(input_ids=ids, attention_mask=mask).last_hidden_state
        return o32, o64

    # ids case: random pieces, per-sample true lengths (EOS last, 0 after), lengths past max distance.
    L, lens = 64, (64, 37)
    ids = torch.zeros(len(lens), L, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lens):
        ids[i, :n - 1] = torch.randint(3, UMT5_CONFIG['vocab_size'], (n - 1,), generator=gen)
        ids[i, n - 1] = 1
        mask[i, :n] = 1
    o32, o64 = run(ids, mask)
    meta = {'generator': 'scripts/gen_interop_fixtures.py', 'transformers': transformers.__version__,
            'torch': torch.__version__}
    save_safetensors(os.path.join(out_dir, 'umt5_ids.io.safetensors'),
                     dict(ids=ids, mask=mask, out=o32, out_f64=o64), metadata=meta)
    res = [dict(name='umt5_ids', lens=list(lens), L=L, scale=o64.abs().max().item(),
                floor=max(maxdiff(o32[i, :n], o64[i, :n]) for i, n in enumerate(lens)))]

    # prompts case: the diffusers WanPipeline call (padding='max_length', max_length=512, mask), trimmed.
    tok = hf_tokenizer(os.path.join(REPO, 'tests/fixtures/t5/spiece.model'))
    t = tok(UMT5_PROMPTS, padding='max_length', max_length=512, truncation=True, add_special_tokens=True,
            return_attention_mask=True, return_tensors='pt')
    o32, o64 = run(t.input_ids, t.attention_mask)
    lens = t.attention_mask.sum(1).tolist()
    io = {}
    for i, n in enumerate(lens):
        io[f'ids.{i}'] = t.input_ids[i, :n].clone()
        io[f'out.{i}'] = o32[i, :n].clone()
        io[f'out_f64.{i}'] = o64[i, :n].clone()
    meta = dict(meta, prompts=json.dumps(UMT5_PROMPTS))
    save_safetensors(os.path.join(out_dir, 'umt5_prompts.io.safetensors'), io, metadata=meta)
    res.append(dict(name='umt5_prompts', lens=lens, L=512, scale=o64.abs().max().item(),
                    floor=max(maxdiff(o32[i, :n], o64[i, :n]) for i, n in enumerate(lens))))
    for r in res:
        print(f"umt5 {r['name']}: lens {r['lens']} of {r['L']}, max {r['scale']:.3f}, floor {r['floor']:.3g}")
    info = dict(files=sorted(os.listdir(folder)), bytes=folder_size(folder),
                keys=sorted(loaded.state_dict().keys())[:3], version=transformers.__version__)
    return info, res


# ---------------------------------------------------------------------------------------------
# Tokenizer + prompt cleaning: upstream Wan's HuggingfaceTokenizer, executed from a Wan2.1 checkout

TOKENIZER_PROMPTS = [
    ('english', 'A woman in a red coat walks through a snowy forest, camera tracking, 4k, cinematic.'),
    ('accents', 'Crème brûlée au café, señor Müller, Øresund, façade, naïve Zoë, Łódź, İstanbul.'),
    ('decomposed_accents', 'Cafe\u0301 in Re\u0301sume\u0301 with n\u0303 and u\u0308ber.'),
    ('emoji', 'A cat 🐱 dancing 💃🏽 with family 👨\u200d👩\u200d👧 under 🇯🇵 flags ✨🎉'),
    ('chinese', '色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止'),
    ('japanese_korean', '桜の木の下で猫が眠る。 한국어 문장도 있습니다.'),
    ('whitespace', '  leading and\ttabs\t\tand\n\nnewlines\r\n and\u00a0nbsp\u3000ideographic   runs   '),
    ('html_entities', 'Tom &amp; Jerry &lt;3 &quot;quoted&quot; it&#39;s &eacute;t&eacute; &amp;amp; &nbsp;x &#x1F600;'),
    ('double_escaped', 'fish &amp;amp; chips &amp;lt;b&amp;gt; bold'),
    ('html_with_tag', '<b>bold</b> &amp; &lt;i&gt; kept'),
    ('curly_quotes', '\u201cHello,\u201d she said \u2018quietly\u2019 \u2014 it\u2019s a \u201ccinematic\u201d shot.'),
    ('mojibake_utf8_as_latin1', 'cafÃ© crÃ¨me and naÃ¯ve piÃ±ata'),
    ('mojibake_cp1252_quotes', 'â€œsmart quotesâ€\x9d and donâ€™t'),
    ('ligatures_fullwidth', 'ﬁne ﬂowers ＡＢＣ ｆｕｌｌ ｗｉｄｔｈ １２３'),
    ('c1_and_controls', 'price \x80 100 and \x93quoted\x94 text\x00 with\x07bell'),
    ('terminal_escape', '\x1b[31mred text\x1b[0m normal'),
    ('numbers_punct', 'Scene 3/4: 1,024×768 @ 30fps — 50% slower... (really?!) [v2.1] {a|b} #tag ~x^2'),
    ('special_token_text', 'literal </s> and <pad> and <unk> in text'),
    ('empty', ''),
    ('only_whitespace', ' \t\n\u00a0 '),
    ('long', ' '.join(['a slow dolly shot across a neon city street at night with rain reflections'] * 60)),
]


def load_upstream_tokenizers(wan_git, rev):
    """wan/modules/tokenizers.py from the bare git dir, executed in a private module (ftfy, regex,
    transformers imported by it from the venv). Returns (module, commit, sha256)."""
    src = subprocess.check_output(['git', '--git-dir', wan_git, 'show', f'{rev}:wan/modules/tokenizers.py'])
    commit = subprocess.check_output(['git', '--git-dir', wan_git, 'rev-parse', rev]).decode().strip()
    mod = types.ModuleType('_wan_tokenizers')
    exec(compile(src, 'wan/modules/tokenizers.py', 'exec'), mod.__dict__)
    return mod, commit, hashlib.sha256(src).hexdigest()


def gen_tokenizer(out_dir, wan_git, rev):
    import ftfy
    import tempfile
    import transformers
    up, commit, sha = load_upstream_tokenizers(wan_git, rev)
    tmp = tempfile.mkdtemp()
    hf_tokenizer(os.path.join(REPO, 'tests/fixtures/t5/spiece.model')).save_pretrained(tmp)
    tok = up.HuggingfaceTokenizer(name=tmp, seq_len=512, clean='whitespace')  # as Wan's T5EncoderModel
    no_ftfy, _, _ = load_upstream_tokenizers(wan_git, rev)  # a second copy: basic_clean without ftfy.fix_text
    no_ftfy.ftfy = types.SimpleNamespace(fix_text=lambda t: t)
    cases = []
    for name, raw in TOKENIZER_PROMPTS:
        ids, mask = tok([raw], return_mask=True)
        n = int(mask.sum())
        plain = no_ftfy.whitespace_clean(no_ftfy.basic_clean(raw))
        t = tok.tokenizer([plain], padding='max_length', truncation=True, max_length=512)
        plain_ids = t.input_ids[0][:sum(t.attention_mask[0])]
        cases.append(dict(name=name, raw=raw, cleaned=tok._clean(raw), cleaned_without_ftfy=plain,
                          ids=ids[0, :n].tolist(), ids_without_ftfy=plain_ids,
                          ftfy_differs=tok._clean(raw) != plain))
    shutil.rmtree(tmp)
    meta = dict(generator='scripts/gen_interop_fixtures.py', wan_commit=commit, tokenizers_py_sha256=sha,
                transformers=transformers.__version__, ftfy=ftfy.__version__,
                tokenizer=type(tok.tokenizer).__name__ + ' of tests/fixtures/t5/spiece.model (extra_ids=0)',
                text_len=512)
    with open(os.path.join(out_dir, 'tokenizer_interop.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(meta=meta, cases=cases), f, ensure_ascii=False, indent=1)
        f.write('\n')
    for c in cases:
        print(f"tokenizer {c['name']}: {len(c['ids'])} ids, ftfy differs: {c['ftfy_differs']}"
              + (f" ({c['cleaned']!r} vs {c['cleaned_without_ftfy']!r})" if c['ftfy_differs'] else ''))
    return meta, cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True)
    ap.add_argument('--wan-git', help='bare git dir of github.com/Wan-Video/Wan2.1 (tokenizer part)')
    ap.add_argument('--wan-rev', default='9737cba9c1c3c4d04b33fcad41c111989865d315')
    ap.add_argument('--only', choices=['vae', 'umt5', 'tokenizer'])
    args = ap.parse_args()
    torch.set_num_threads(1)  # reproducible reductions
    os.makedirs(args.out, exist_ok=True)
    if args.only in (None, 'vae'):
        gen_vae(args.out)
    if args.only in (None, 'umt5'):
        gen_umt5(args.out)
    if args.only in (None, 'tokenizer'):
        assert args.wan_git, '--wan-git is needed for the tokenizer part'
        gen_tokenizer(args.out, args.wan_git, args.wan_rev)


if __name__ == '__main__':
    main()
