#!/usr/bin/python3
"""Parity fixtures for the C++ umT5 text encoder and tokenizer (part `t5`).

Runs the OFFICIAL upstream module wan/modules/t5.py (github.com/Wan-Video/Wan2.1, class
`T5Encoder` and `T5RelativeEmbedding`) on tiny configs with seeded random weights, and
the SentencePiece Python binding on a small unigram model trained here. No upstream code
lives in this repository: t5.py is read at run time from an extracted tree (--wan-src)
or a bare git directory (--wan-git) and executed in a private fake package.

Run with Debian's packages (python3-torch 1.13 CPU, python3-sentencepiece):
    /usr/bin/python3 scripts/gen_t5_fixtures.py --wan-src /tmp/Wan2.1 --out tests/fixtures/t5

Also writes src/models/t5/html_entities.inc (Python's html.unescape tables) unless
--no-tables. Everything is deterministic (fixed seeds, one thread).
"""

import argparse
import collections
import hashlib
import html
import html.entities
import io
import json
import os
import re
import subprocess
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_wan_fixtures import save_safetensors  # noqa: E402

torch.set_num_threads(1)

# ----------------------------------------------------------------------------------------------
# Upstream cleaning (wan/modules/tokenizers.py) minus ftfy.fix_text, without the `regex` module.
# Upstream's `regex.sub(r'\s+', ' ', text)`: the `regex` module's \s is the Unicode White_Space
# property (its CHARSET_ESCAPES map \s to the SPACE property). Python's `re` \s (= str.isspace)
# would also match U+001C..U+001F; str.strip() (used by upstream too) does strip those.
# ----------------------------------------------------------------------------------------------
WHITE_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
               (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]
_WS_RE = re.compile('[' + ''.join('\\U%08x-\\U%08x' % r for r in WHITE_SPACE) + ']+')


def basic_clean_no_ftfy(text):
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = _WS_RE.sub(' ', text)
    return text.strip()


def clean(text):
    return whitespace_clean(basic_clean_no_ftfy(text))


# ----------------------------------------------------------------------------------------------
# Upstream t5.py, loaded into a fake package
# ----------------------------------------------------------------------------------------------
T5_PATH = 'wan/modules/t5.py'
# Float64 floor run: widen only the two hard fp32 casts of the math (T5LayerNorm's variance and
# the attention softmax). `rel_pos.float()` of the bucket computation stays float32: it decides
# integer buckets and is part of the reference's definition, not rounding noise.
F64_REWRITES = (
    ('x.float().pow(2)', 'x.double().pow(2)'),
    ('F.softmax(attn.float(), dim=-1)', 'F.softmax(attn.double(), dim=-1)'),
)


def read_upstream(args):
    if args.wan_git:
        src = subprocess.run(['git', '--git-dir', args.wan_git, 'show', f'{args.wan_rev}:{T5_PATH}'],
                             check=True, capture_output=True, text=True).stdout
        commit = subprocess.run(['git', '--git-dir', args.wan_git, 'rev-parse', args.wan_rev + '^{commit}'],
                                check=True, capture_output=True, text=True).stdout.strip()
        origin = f'{args.wan_git}@{args.wan_rev}:{T5_PATH}'
    else:
        with open(os.path.join(args.wan_src, T5_PATH), encoding='utf-8') as f:
            src = f.read()
        commit = args.wan_commit or 'unknown'
        origin = os.path.join(args.wan_src, T5_PATH)
    return src, commit, origin


def load_upstream(src, origin, pkg_name, f64):
    if f64:
        for a, b in F64_REWRITES:
            assert src.count(a) == 1, (a, src.count(a))
            src = src.replace(a, b)
    pkg = types.ModuleType(pkg_name)
    pkg.__path__ = []
    sys.modules[pkg_name] = pkg
    # t5.py imports HuggingfaceTokenizer (transformers, ftfy) at the top; the encoder never uses it.
    tok = types.ModuleType(pkg_name + '.tokenizers')
    tok.HuggingfaceTokenizer = None
    sys.modules[tok.__name__] = tok
    mod = types.ModuleType(pkg_name + '.t5')
    mod.__package__ = pkg_name
    mod.__file__ = origin
    sys.modules[mod.__name__] = mod
    # `T5EncoderModel.__init__(device=torch.cuda.current_device())` is evaluated at import time.
    saved = torch.cuda.current_device
    torch.cuda.current_device = lambda: 'cpu'
    try:
        exec(compile(src, origin, 'exec'), mod.__dict__)
    finally:
        torch.cuda.current_device = saved
    return mod


# ----------------------------------------------------------------------------------------------
# html.unescape tables for the C++ port
# ----------------------------------------------------------------------------------------------
def write_tables(path):
    ents = sorted(html.entities.html5.items())
    lines = ['// Generated by scripts/gen_t5_fixtures.py from Python %s `html` (html.entities.html5,'
             % sys.version.split()[0],
             '// html._invalid_charrefs, html._invalid_codepoints). Do not edit; regenerate.',
             '// {name as matched after "&" (with or without ";"), code point, second code point or 0}',
             'constexpr HtmlEntity kHtml5Entities[] = {']
    row = []
    for name, value in ents:
        cps = [ord(c) for c in value]
        assert 1 <= len(cps) <= 2 and name.isascii() and '"' not in name and '\\' not in name
        row.append('{"%s", 0x%X, 0x%X}' % (name, cps[0], cps[1] if len(cps) > 1 else 0))
        if len(row) == 5:
            lines.append('    ' + ', '.join(row) + ',')
            row = []
    if row:
        lines.append('    ' + ', '.join(row) + ',')
    lines.append('};')
    inv = sorted(html._invalid_charrefs.items())
    lines.append('// numeric reference -> replacement code point')
    lines.append('constexpr std::pair<uint32_t, uint32_t> kInvalidCharrefs[] = {')
    for i in range(0, len(inv), 8):
        lines.append('    ' + ', '.join('{0x%X, 0x%X}' % (k, ord(v)) for k, v in inv[i:i + 8]) + ',')
    lines.append('};')
    cps = sorted(html._invalid_codepoints)
    lines.append('// numeric references that unescape to nothing')
    lines.append('constexpr uint32_t kInvalidCodepoints[] = {')
    for i in range(0, len(cps), 10):
        lines.append('    ' + ', '.join('0x%X' % c for c in cps[i:i + 10]) + ',')
    lines.append('};')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return len(ents)


# ----------------------------------------------------------------------------------------------
# A small SentencePiece unigram model (stand-in for google/umt5-xxl spiece.model, which is not
# available offline): T5 id layout (<pad> 0, </s> 1, <unk> 2, no BOS), nmt_nfkc normalisation,
# byte fallback, trained on a small multilingual corpus written here.
# ----------------------------------------------------------------------------------------------
SPM_VOCAB = 600

EN = ('a woman dances in the rain while a man plays the guitar on a busy street at night '
      'the camera slowly pans across a field of sunflowers under a bright blue sky '
      'close up of two hands playing the piano with soft warm light from the window '
      'a small dog runs along the beach chasing waves in slow motion golden hour '
      'an old man reads a newspaper in a quiet cafe people walking by outside '
      'high quality detailed realistic video smooth motion natural hand gestures fingers').split()
ZH = ('一个女人在雨中跳舞，镜头缓慢移动。阳光下的向日葵田野，天空湛蓝。'
      '色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，'
      '低质量，压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，'
      '形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走。'
      '一只小狗在海滩上奔跑，慢动作，金色时刻。老人在安静的咖啡馆里看报纸。')
ACCENTS = 'café crème brûlée naïve façade Zürich señor São Paulo Ærøskøbing déjà vu über résumé'.split()
EMOJI = ['🐱', '💃', '🎸', '🌻', '☔', '😀', '👍', '🔥', '✨', '🎬']


def corpus_lines():
    g = torch.Generator().manual_seed(1234)

    def pick(seq, n):
        idx = torch.randint(len(seq), (n,), generator=g).tolist()
        return [seq[i] for i in idx]

    lines = []
    for i in range(400):
        lines.append(' '.join(pick(EN, 8 + i % 7)) + ('.' if i % 3 else ','))
    zh_sents = [s for s in re.split('[。]', ZH) if s]
    for i in range(300):
        lines.append(''.join(pick(zh_sents, 1 + i % 2)) + '。')
    for i in range(150):
        lines.append(' '.join(pick(ACCENTS, 5)) + ' ' + ' '.join(pick(EN, 4)))
    for i in range(120):
        n = torch.randint(100000, (3,), generator=g).tolist()
        lines.append('frame %05d at %d fps, %dx%d, %.2f seconds, take %d' % (n[0], 24 + i % 7, 640 + n[1] % 1300,
                                                                             480 + n[2] % 700, n[1] / 997.0, i))
    for i in range(100):
        lines.append(' '.join(pick(EN, 5)) + ' ' + ''.join(pick(EMOJI, 2)) + ' ' + ' '.join(pick(EN, 3)))
    return lines


def train_spm(out_dir):
    import sentencepiece as spm
    text = '\n'.join(corpus_lines()) + '\n'
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines()), model_writer=model, model_type='unigram', vocab_size=SPM_VOCAB,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=True, character_coverage=0.9995,
        normalization_rule_name='nmt_nfkc', num_threads=1, minloglevel=2)
    data = model.getvalue()
    with open(os.path.join(out_dir, 'spiece.model'), 'wb') as f:
        f.write(data)
    sp = spm.SentencePieceProcessor(model_proto=data)
    assert sp.get_piece_size() == SPM_VOCAB and sp.id_to_piece(0) == '<pad>' and sp.id_to_piece(1) == '</s>'
    assert sp.is_byte(sp.piece_to_id('<0xF0>'))
    return sp, len(data)


def tokenize(sp, prompt, text_len=512):
    """Upstream HuggingfaceTokenizer(clean='whitespace', seq_len=text_len) with SentencePiece in
    place of the HF fast tokenizer: pieces truncated to text_len-1, EOS appended (padding implied)."""
    cleaned = clean(prompt)
    pieces = sp.encode(cleaned)
    ids = pieces[:text_len - 1] + [1]
    return cleaned, pieces, ids


LONG = ('The camera follows a dancer through a crowded market at dusk, lanterns swaying above the stalls, '
        'while vendors call out prices and children run between the tables. ')


def tokenizer_prompts(sp):
    prompts = collections.OrderedDict()
    prompts['english'] = 'A woman dances in the rain while a man plays the guitar on a busy street at night.'
    prompts['chinese_negative'] = ('色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，'
                                   '低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，'
                                   '毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走')
    prompts['emoji'] = 'A cat 🐱 dancing 💃🏽 in the rain ☔ with a 🦙 and 🇯🇵 flags'
    prompts['accents'] = 'Café crème brûlée, naïve façade — Zürich, São Paulo; Ærøskøbing déjà vu'
    prompts['html_entities'] = ('Tom &amp; Jerry &lt;3 &quot;quoted&quot; &#39;single&#39; &amp;amp; &#x1F600; '
                                '&copy 2024 &notit; &ampfoo &#128; &#0; &bogus;')
    prompts['whitespace_runs'] = ('  leading\t\ttabs \n\n newlines\u3000ideographic\u00a0nbsp \u2003em\u200bzw '
                                  '\x1cfs\x1f   trailing \r\n ')
    prompts['numbers'] = 'Frame 0001 at 24fps, 1920x1080, 3.14159, -42, 1,000,000 and 2e-5'
    prompts['unseen_scripts'] = 'こんにちは 안녕하세요 Привет мир שלום'
    prompts['nfkc'] = 'ＡＢＣ１２３ ﬁne ① ㎏ Ⅻ ｶﾀｶﾅ'
    prompts['empty'] = ''
    prompts['only_whitespace'] = '  \t\n\u3000 '
    prompts['long'] = LONG * 40
    # Exactly at the truncation boundary: n copies of "a " are n pieces "▁a" (asserted).
    unit = 'a '
    n_unit = len(sp.encode(clean(unit * 10))) / 10.0
    assert n_unit == 1.0, n_unit
    prompts['pieces_511'] = unit * 511   # 511 pieces + EOS = 512: no truncation
    prompts['pieces_512'] = unit * 512   # truncated to 511 + EOS
    return prompts


def cleaning_cases():
    """Edge cases of the cleaning alone (raw -> upstream-minus-ftfy cleaned)."""
    return [
        'plain text', '  padded  ', 'a\t\tb\n\nc', 'a\u3000\u3000b', 'a\u00a0b\u2007c\u202fd\u205fe', 'a\u0085b',
        'a\u2028b\u2029c', 'a\u1680b', 'a\u200bb', 'a\u180eb', '\x1cedge\x1f', 'in\x1cside', '\x1c \x1d',
        'a\x0bb\x0cc\rd', '&amp;', '&amp;amp;', '&amp;amp;amp;', '&lt;b&gt;bold&lt;/b&gt;', '&#39;&#34;', '&#x27;&#X41;',
        '&#65', '&#x41g', '&#0;', '&#13;', '&#128;&#129;&#150;&#159;', '&#xD800;', '&#xDFFF;', '&#1114111;',
        '&#1114112;', '&#99999999999999999999;', '&#x110000;', '&#1;', '&#x7F;', '&#xFDD0;', '&#xFFFE;',
        '&#x10FFFF;', '&#x1FFFF;', '&#xB;', '&#;', '&#x;', '&# 65;', '&copy', '&copy;', '&COPY;', '&ampfoo',
        '&amp', '&notit;', '&notin;', '&NotEqualTilde;', '&nbsp;&nbsp;x&nbsp;', '&ensp;y&emsp;',
        '&unknown;', '&&amp;', 'a & b', '&;', '&' + 'a' * 40 + ';', '&ampé', '&ltx;', '&lt&gt', '&#x1F600;&#128512;',
        '&Aacute&aacute;&Eacute', '&fjlig;', '&bne;', '&amp;#38;', '&amp;lt;', '&amp;#x3C;', '&amp;amp;amp;lt;',
        'x&#x9;y', '&#x3000;z', '&#12288;&#12288;', '', ' ', '\t\n', '中文，测试。', '🐱\u200d🐈 emoji zwj',
        'e\u0301 combining', 'ﬁ ligature', '\u00adsoft\u00adhyphen', '\ufeffbom', 'A&B&C;&D', '&amp&lt',
        '&AMP;', '&AMP', '&Amp;', '&lt;&lt;&lt;', '&#0065;&#x0041;', '&#x00000041;',
    ]


# ----------------------------------------------------------------------------------------------
# Encoder cases
# ----------------------------------------------------------------------------------------------
TINY = dict(vocab=SPM_VOCAB + 8, dim=32, dim_attn=32, dim_ffn=48, num_heads=4, num_layers=2, num_buckets=32,
            shared_pos=False)
SHARED = dict(vocab=64, dim=16, dim_attn=24, dim_ffn=20, num_heads=3, num_layers=2, num_buckets=16,
              shared_pos=True)


def build(mod, cfg):
    return mod.T5Encoder(dropout=0.0, **cfg).eval()


def randomise(model, seed):
    """Non-zero random weights, rounded to bf16 (so one set of values serves the fp32, fp64 and
    bf16 runs): matrices N(0,1)/sqrt(fan_in), the token embedding N(0,1), relative position
    embeddings 0.5*N(0,1) (a visible bias), norm gains 1 + 0.1*N(0,1)."""
    g = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name.endswith('norm1.weight') or name.endswith('norm2.weight') or name == 'norm.weight':
                v = 1 + 0.1 * r
            elif 'pos_embedding' in name:
                v = 0.5 * r
            elif name == 'token_embedding.weight':
                v = r
            else:
                v = r / p.shape[1] ** 0.5
            v = v.to(torch.bfloat16)
            sd[name] = v
    return sd


def run(mod, cfg, sd, ids, mask, dtype):
    m = build(mod, cfg)
    m.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()})
    m = m.to(dtype)
    with torch.no_grad():
        return m(ids, mask)


def encoder_case(mods, name, cfg, sd, ids, mask, out_dir):
    out32 = run(mods[32], cfg, sd, ids, mask, torch.float32)
    out64 = run(mods[64], cfg, sd, ids, mask, torch.float64)
    outbf = run(mods[32], cfg, sd, ids, mask, torch.bfloat16)
    floor = (out32.double() - out64).abs().max().item()
    bf_err = (outbf.double() - out64).abs().max().item()
    save_safetensors(os.path.join(out_dir, name + '.io.safetensors'),
                     {'ids': ids, 'mask': mask, 'out': out32, 'out_f64': out64, 'out_bf16': outbf.float()})
    return dict(name=name, cfg=cfg, batch=ids.shape[0], length=ids.shape[1], lens=mask.sum(1).tolist(),
                max_abs=out64.abs().max().item(), floor=floor, bf16_vs_f64=bf_err)


def save_pth(path, sd):
    torch.save(collections.OrderedDict(sd), path)


def gen_encoder(mods, sp, out_dir):
    results = []
    # 1) the tokenizer-sized tiny umT5 (per-layer bias) as a Wan-style bf16 .pth
    m = build(mods[32], TINY)
    sd = randomise(m, 11)
    save_pth(os.path.join(out_dir, 'tiny_umt5.pth'), sd)
    g = torch.Generator().manual_seed(5)
    L = 140  # > max_dist: every bucket including the clamped ones occurs
    ids = torch.randint(TINY['vocab'], (2, L), generator=g)
    mask = torch.zeros(2, L, dtype=torch.long)
    mask[0, :] = 1
    mask[1, :97] = 1
    ids[1, 97:] = 0
    results.append(encoder_case(mods, 'enc_b2', TINY, sd, ids, mask, out_dir))
    # 2) shared position bias (T5 style), uneven head dim, its own weights (safetensors, F32)
    m = build(mods[32], SHARED)
    sd2 = randomise(m, 12)
    save_safetensors(os.path.join(out_dir, 'tiny_shared.weights.safetensors'),
                     {k: v.float() for k, v in sd2.items()})
    ids = torch.randint(SHARED['vocab'], (1, 21), generator=g)
    mask = torch.ones(1, 21, dtype=torch.long)
    mask[0, 18:] = 0
    results.append(encoder_case(mods, 'enc_shared', SHARED, sd2, ids, mask, out_dir))
    # 3) end to end as T5EncoderModel.__call__: prompts -> tokenizer -> 512 ids + mask -> encoder
    #    -> [u[:len]]; stored trimmed, per prompt.
    prompts = ['A woman dances in the rain.', '色调艳丽，过曝，静态，细节模糊不清，字幕', 'A cat 🐱 dancing 💃🏽 &amp; more']
    ids = torch.zeros(len(prompts), 512, dtype=torch.long)
    mask = torch.zeros(len(prompts), 512, dtype=torch.long)
    for i, p in enumerate(prompts):
        _, _, t = tokenize(sp, p)
        ids[i, :len(t)] = torch.tensor(t)
        mask[i, :len(t)] = 1
    lens = mask.gt(0).sum(dim=1).long()
    outs = {}
    for bits, dtype in ((32, torch.float32), (64, torch.float64), ('bf16', torch.bfloat16)):
        mm = mods[64] if bits == 64 else mods[32]
        o = run(mm, TINY, sd, ids, mask, dtype)
        outs[bits] = [u[:v] for u, v in zip(o, lens)]
    tensors = {}
    for i in range(len(prompts)):
        tensors['out.%d' % i] = outs[32][i]
        tensors['out_f64.%d' % i] = outs[64][i]
        tensors['out_bf16.%d' % i] = outs['bf16'][i].float()
    save_safetensors(os.path.join(out_dir, 'text_encoder.io.safetensors'), tensors,
                     {'prompts': json.dumps(prompts, ensure_ascii=True)})
    floor = max((a.double() - b).abs().max().item() for a, b in zip(outs[32], outs[64]))
    bf = max((a.double() - b).abs().max().item() for a, b in zip(outs['bf16'], outs[64]))
    results.append(dict(name='text_encoder', cfg=TINY, batch=len(prompts), length=512, lens=lens.tolist(),
                        max_abs=max(o.abs().max().item() for o in outs[64]), floor=floor, bf16_vs_f64=bf))
    return results


def gen_buckets(mod, out_dir):
    """Upstream bucket ids for relative positions -600..600 (bidirectional), two geometries."""
    t = {}
    for nb, md in ((32, 128), (16, 40)):
        rel = mod.T5RelativeEmbedding(nb, 1, bidirectional=True, max_dist=md)
        # rel_pos = k - q: query 600 against keys 0..1200 gives -600..600
        r = torch.arange(1201).unsqueeze(0) - torch.tensor([[600]])
        t['buckets_nb%d_md%d' % (nb, md)] = rel._relative_position_bucket(r)[0]
    t['rel_pos'] = torch.arange(-600, 601)
    save_safetensors(os.path.join(out_dir, 'buckets.safetensors'), t)


def gen_tokenizer(sp, out_dir):
    cases = []
    for name, p in tokenizer_prompts(sp).items():
        cleaned, pieces, ids = tokenize(sp, p)
        cases.append(dict(name=name, prompt=p, cleaned=cleaned, num_pieces=len(pieces), ids=ids, length=len(ids)))
    clean_cases = [dict(raw=r, cleaned=clean(r), unescaped=html.unescape(r)) for r in cleaning_cases()]
    spaces = [c for c in range(0x110000) if chr(c).isspace()]
    doc = dict(text_len=512, eos_id=1, pad_id=0, tokenizer=cases, cleaning=clean_cases, python_isspace=spaces)
    with open(os.path.join(out_dir, 'tokenizer_cases.json'), 'w', encoding='ascii') as f:
        json.dump(doc, f, ensure_ascii=True, indent=1)
        f.write('\n')
    return cases


def write_readme(out_dir, commit, sha, results, tok_cases, spm_bytes, n_entities, argv):
    L = ['# umT5 text encoder + tokenizer parity fixtures', '',
         'Generated by `scripts/gen_t5_fixtures.py`; do not edit by hand, regenerate instead:', '', '```',
         '/usr/bin/python3 ' + ' '.join(argv), '```', '',
         f'Upstream: github.com/Wan-Video/Wan2.1 commit `{commit}`, `wan/modules/t5.py` sha256 `{sha}`, executed '
         f'from the checkout at run time (no upstream code in this repository) under Python {sys.version.split()[0]}, '
         f'torch {torch.__version__} (CPU, 1 thread), sentencepiece (Python binding) of Debian.', '',
         '## Files', '',
         '* `spiece.model` (%d bytes): SentencePiece unigram model trained by the script on a small generated corpus '
         '(English, Chinese incl. Wan\'s default negative prompt, accented Latin, numbers, emoji). %d pieces, '
         'T5 id layout (`<pad>` 0, `</s>` 1, `<unk>` 2, no BOS), `nmt_nfkc` normalisation, byte fallback on. It is a '
         'stand-in: the real `google/umt5-xxl/spiece.model` (256,000 pieces) is not available offline.'
         % (spm_bytes, SPM_VOCAB),
         '* `tokenizer_cases.json`: `tokenizer`: prompts with upstream-minus-ftfy `cleaned` text and `ids` = '
         'SentencePiece (Python binding) pieces truncated to 511 + EOS (1), `length` = mask ones; padding to 512 with 0 '
         'is implied. `cleaning`: raw strings with `html.unescape(raw)` and the full cleaning. `python_isspace`: every '
         'code point for which `str.isspace()` is true.',
         '* `tiny_umt5.pth`: `torch.save` of the bf16 state dict (Wan key names, like '
         '`models_t5_umt5-xxl-enc-bf16.pth`) of the tiny umT5 below.',
         '* `tiny_shared.weights.safetensors`: F32 state dict of the shared-position-bias variant.',
         '* `<case>.io.safetensors`: `ids` [B, L] I64, `mask` [B, L] I64, `out` (float32 run), `out_f64` (float64 '
         'run), `out_bf16` (bf16 weights, upstream dtype flow, stored as F32) [B, L, dim].',
         '* `text_encoder.io.safetensors`: the upstream `T5EncoderModel.__call__` path: the prompts of the metadata '
         'entry `prompts` tokenized as above (512 ids + mask), encoded, trimmed to the true length: `out.i`, '
         '`out_f64.i`, `out_bf16.i` [len_i, 32].',
         '* `buckets.safetensors`: upstream `T5RelativeEmbedding._relative_position_bucket` (bidirectional) for '
         '`rel_pos` = -600..600, with (num_buckets, max_dist) = (32, 128) (umT5) and (16, 40).', '',
         'Weights: matrices N(0,1)/sqrt(fan_in), token embedding N(0,1), relative position embeddings 0.5*N(0,1), '
         'norm gains 1 + 0.1*N(0,1); all rounded to bf16 so the fp32, fp64 and bf16 runs share the same values.', '',
         '## Shims used to run upstream', '',
         '* `.tokenizers` (imports ftfy, regex, transformers; unused by `T5Encoder`) is replaced by an empty module.',
         '* `torch.cuda.current_device` is patched to return "cpu" while t5.py executes (a default argument of '
         '`T5EncoderModel.__init__` calls it at import time).',
         '* Float64 run: `x.float().pow(2)` (T5LayerNorm) and `F.softmax(attn.float(), ...)` are widened to double. '
         '`rel_pos.float()` in the bucket computation is kept float32: it decides integer buckets.', '',
         '## Cases and measured float32 floors', '',
         'floor = max |out - out_f64| (float32 rounding noise of the reference itself); bf16 = max |out_bf16 - '
         'out_f64| of upstream\'s own bf16 run.', '',
         '| case | config | B x L | true lengths | max abs(out) | fp32 floor | upstream bf16 vs f64 |',
         '|---|---|---|---|---|---|---|']
    for r in results:
        c = r['cfg']
        L.append('| `%s` | vocab %d, dim %d, dim_attn %d, ffn %d, heads %d, layers %d, buckets %d, shared_pos %s | '
                 '%d x %d | %s | %.3f | %.2e | %.2e |'
                 % (r['name'], c['vocab'], c['dim'], c['dim_attn'], c['dim_ffn'], c['num_heads'], c['num_layers'],
                    c['num_buckets'], c['shared_pos'], r['batch'], r['length'], r['lens'], r['max_abs'], r['floor'],
                    r['bf16_vs_f64']))
    L += ['', '## Tokenizer cases', '', '| name | pieces | ids (incl. EOS) |', '|---|---|---|']
    for c in tok_cases:
        L.append('| `%s` | %d | %d |' % (c['name'], c['num_pieces'], c['length']))
    L += ['', '`src/models/t5/html_entities.inc` (%d HTML5 entities) is written by the same script.' % n_entities, '',
          '## How this relates to the reference tokenizer', '',
          'Upstream tokenizes with the Hugging Face fast tokenizer (`AutoTokenizer.from_pretrained("google/umt5-xxl")`, '
          'a `tokenizers` Unigram model converted from `spiece.model`). The C++ port runs SentencePiece on '
          '`spiece.model` directly. Known or possible differences (not verifiable offline, no transformers here):', '',
          '* Added tokens: HF matches `<pad>`, `</s>`, `<unk>` and the 384 `<extra_id_N>` tokens (ids 256000-256383, '
          'not in `spiece.model`) literally in the text before the model runs; SentencePiece spells such text out '
          'as ordinary pieces. Only prompts containing these literal strings differ.',
          '* Byte fallback: SentencePiece uses `<0xXX>` pieces for characters outside the vocabulary when the model '
          'has byte_fallback; the HF Unigram honours it only when `tokenizer.json` says `"byte_fallback": true` '
          '(tokenizers >= 0.14). Otherwise HF emits `<unk>` (2), fusing runs of unknown characters into one.',
          '* Whitespace: SentencePiece (`remove_extra_whitespaces`) drops leading/trailing spaces and collapses runs; '
          'HF uses a `Replace(" {2,}", " ")` normaliser and the Metaspace pre-tokenizer (prefix `\u2581`). After '
          'upstream\'s cleaning (strip + collapse) the input has no such runs, so both see the same string.',
          '* Normalisation: both apply the same `precompiled_charsmap` (nmt_nfkc) from the model.', '',
          'Total size of the other files in this directory: %s bytes (kept under 1 MB).'
          % format(sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir) if f != 'README.md'),
                   ',')]
    with open(os.path.join(out_dir, 'README.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(L) + '\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--wan-src', help='extracted Wan2.1 tree')
    ap.add_argument('--wan-git', help='bare git dir of Wan2.1 (read with git show)')
    ap.add_argument('--wan-rev', default='HEAD')
    ap.add_argument('--wan-commit', help='commit of --wan-src, for the README')
    ap.add_argument('--out', default='tests/fixtures/t5')
    ap.add_argument('--tables', default='src/models/t5/html_entities.inc')
    ap.add_argument('--no-tables', action='store_true')
    args = ap.parse_args()
    assert (args.wan_src is None) != (args.wan_git is None), 'give exactly one of --wan-src / --wan-git'
    os.makedirs(args.out, exist_ok=True)
    src, commit, origin = read_upstream(args)
    sha = hashlib.sha256(src.encode()).hexdigest()
    mods = {32: load_upstream(src, origin, '_wan_t5_f32', False), 64: load_upstream(src, origin, '_wan_t5_f64', True)}
    n_entities = len(html.entities.html5)
    if not args.no_tables:
        n_entities = write_tables(args.tables)
    sp, spm_bytes = train_spm(args.out)
    tok_cases = gen_tokenizer(sp, args.out)
    gen_buckets(mods[32], args.out)
    results = gen_encoder(mods, sp, args.out)
    write_readme(args.out, commit, sha, results, tok_cases, spm_bytes, n_entities, sys.argv)
    for r in results:
        print('%-14s max|out| %.3f  floor %.2e  upstream bf16 vs f64 %.2e' % (r['name'], r['max_abs'], r['floor'],
                                                                            r['bf16_vs_f64']))


if __name__ == '__main__':
    main()
