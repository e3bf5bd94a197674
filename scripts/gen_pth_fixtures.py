#!/usr/bin/python3
"""Tiny torch.save checkpoints for the C++ .pth reader (tests/io/test_pth.cpp).

Run with Debian's torch (python3-torch 1.13, CPU), not a pyenv python:
    /usr/bin/python3 scripts/gen_pth_fixtures.py [--out tests/fixtures/pth]

Writes into --out:
  state_dict_fp32.pth   OrderedDict state dict of a real nn.Module (Conv3d, Linear, LayerNorm;
                        carries `_metadata`), fp32; zip prefix = file stem (torch 1.13 style)
  dtypes.pth            bf16, fp16, fp64, int64, int32, int16, int8, uint8, bool tensors
  views.pth             a base tensor plus a transpose, an offset slice and a row of it (one
                        shared storage), a 0-d and an empty tensor
  parameter.pth         nn.Parameter values (torch._utils._rebuild_parameter)
  nested.pth            {"model": {...}, "step": 3, ...}: nested dicts and non-tensor leaves
  protocol4.pth         pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL), zip prefix "archive"
  forbidden_global.pth  pickles a reference to os.system; only WRITTEN here, never loaded
  truncated.pth         the first half of state_dict_fp32.pth
  legacy.pth            the pre-1.6 format (_use_new_zipfile_serialization=False)
  expected.json         per good fixture: every key in order with dtype, shape, stride,
                        storage_offset and exact values, plus the skipped (non-tensor) keys
"""

import argparse
import collections
import io
import json
import os
import pathlib

import torch
import torch.nn as nn

DTYPE_NAMES = {  # c10::toString(ScalarType) spelling, which the C++ test compares against
    torch.float32: 'Float', torch.float64: 'Double', torch.float16: 'Half',
    torch.bfloat16: 'BFloat16', torch.int64: 'Long', torch.int32: 'Int', torch.int16: 'Short',
    torch.int8: 'Char', torch.uint8: 'Byte', torch.bool: 'Bool',
}


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(2, 2, kernel_size=(1, 2, 2))
        self.fc = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)


class Evil:
    """Pickles as a call to os.system: the reader must refuse the global, not run it."""

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def flatten(obj, prefix, tensors, skipped):
    """The C++ reader's rule: dicts flatten with '.', tensors are kept, all else is skipped."""
    if isinstance(obj, dict) and (prefix == '' or len(obj) > 0):
        for k, v in obj.items():
            part = str(k)
            flatten(v, part if prefix == '' else prefix + '.' + part, tensors, skipped)
    elif isinstance(obj, torch.Tensor):
        tensors.append((prefix, obj))
    else:
        skipped.append(prefix)


def describe(obj):
    tensors, skipped = [], []
    flatten(obj, '', tensors, skipped)
    out = []
    for key, t in tensors:
        t = t.detach()
        values = t.flatten().tolist() if t.numel() > 0 else []
        if t.dtype in (torch.bfloat16, torch.float16):
            values = t.float().flatten().tolist()
        out.append({
            'key': key, 'dtype': DTYPE_NAMES[t.dtype], 'shape': list(t.shape),
            'stride': list(t.stride()), 'storage_offset': t.storage_offset(), 'values': values,
        })
    return {'tensors': out, 'skipped': skipped}


def build_fixtures():
    torch.manual_seed(0)
    fixtures = {}

    fixtures['state_dict_fp32'] = Tiny().state_dict()

    fixtures['dtypes'] = {
        'bf16': torch.randn(2, 3).bfloat16(),
        'f16': torch.randn(3).half(),
        'f64': torch.randn(2, 2, dtype=torch.float64),
        'i64': torch.tensor([-3, 0, 2**40, -(2**40)], dtype=torch.int64),
        'i32': torch.tensor([[-7, 2147483647], [0, -2147483648]], dtype=torch.int32),
        'i16': torch.tensor([-32768, 5, 32767], dtype=torch.int16),
        'i8': torch.tensor([-128, -1, 127], dtype=torch.int8),
        'u8': torch.tensor([0, 128, 255], dtype=torch.uint8),
        'bool': torch.tensor([True, False, True, True]),
    }

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    fixtures['views'] = collections.OrderedDict([
        ('base', base),
        ('t', base.t()),               # stride (1, 4)
        ('slice', base[1:, 1:3]),      # storage_offset 5, stride (4, 1)
        ('row', base[2]),              # storage_offset 8
        ('scalar', torch.tensor(7.5)),
        ('empty', torch.zeros(0, 3)),
    ])

    fixtures['parameter'] = {
        'weight': nn.Parameter(torch.randn(2, 2)),
        'frozen': nn.Parameter(torch.ones(3), requires_grad=False),
    }

    fixtures['nested'] = {
        'model': {'layer': {'w': torch.randn(2)}, 'b': torch.tensor([1.0, 2.0])},
        'step': 3,
        'name': 'run',
        'lr': 0.5,
        'betas': (0.9, 0.99),
        'none': None,
        'tags': ['a', 'b'],
        'blob': b'xy',
        'device': torch.device('cpu'),
        'dtype': torch.float16,
        'opt_state': {0: {'exp_avg': torch.tensor([0.25, -0.5])}},
        'empty': {},
    }

    shared = torch.randn(6)
    fixtures['protocol4'] = {'a': shared[:3], 'b': shared[3:], 'c': torch.ones(2, 2)}
    return fixtures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--out', default=str(pathlib.Path(__file__).resolve().parent.parent
                                         / 'tests' / 'fixtures' / 'pth'))
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    expected = {'torch_version': torch.__version__, 'fixtures': {}}
    for name, obj in build_fixtures().items():
        path = out / f'{name}.pth'
        if name == 'protocol4':
            buf = io.BytesIO()  # a buffer gets the zip prefix "archive", a path its stem
            torch.save(obj, buf, pickle_protocol=4)
            path.write_bytes(buf.getvalue())
        else:
            torch.save(obj, path)
        expected['fixtures'][path.name] = describe(obj)

    torch.save({'w': torch.ones(2), 'evil': Evil()}, out / 'forbidden_global.pth')
    good = (out / 'state_dict_fp32.pth').read_bytes()
    (out / 'truncated.pth').write_bytes(good[:len(good) // 2])
    torch.save({'w': torch.ones(2)}, out / 'legacy.pth', _use_new_zipfile_serialization=False)

    with open(out / 'expected.json', 'w') as f:
        json.dump(expected, f, indent=1)
        f.write('\n')
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f'wrote {len(list(out.iterdir()))} files, {total} bytes, to {out}')


if __name__ == '__main__':
    main()
