#!/usr/bin/env python3
"""Runs the OFFICIAL Wan 2.1 flow samplers (wan/utils/fm_solvers_unipc.py
FlowUniPCMultistepScheduler and wan/utils/fm_solvers.py FlowDPMSolverMultistepScheduler),
loaded at run time from an upstream checkout (no upstream code is copied here), on an
analytic velocity field, and writes tests/fixtures/sampler/.

    /usr/bin/python3 scripts/gen_sampler_fixtures.py --wan-src /tmp/Wan2.1 --out tests/fixtures/sampler

Per case (sampler, steps, shift): the schedule (timesteps int64, sigmas float32) and the
trajectory x_0 … x_N of the loop `v = 0.3·x + 0.001·t·(1 + cos x); x = step(v, t, x)` from a
seeded x_0, in float32 and in float64 (the same upstream code with its float32 casts
widened), which gives the float64 floor the C++ tolerance is based on.
"""
import argparse
import hashlib
import math
import os
import sys
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_wan_fixtures import UpstreamSource, save_safetensors  # noqa: E402

FILES = {'unipc': 'wan/utils/fm_solvers_unipc.py', 'dpm++': 'wan/utils/fm_solvers.py'}
CLASSES = {'unipc': 'FlowUniPCMultistepScheduler', 'dpm++': 'FlowDPMSolverMultistepScheduler'}
# float64 run: the schedulers store sigmas as float32 and cast samples to float32.
F64_REWRITES = [('np.float32', 'np.float64'), ('torch.float32', 'torch.float64')]


def install_diffusers_shim():
    """The schedulers read self.config.*: register_to_config records every constructor
    argument (defaults included) in a namespace."""
    import inspect

    class ConfigMixin:
        def register_to_config(self, **kw):
            for k, v in kw.items():
                setattr(self.config, k, v)

    def register_to_config(init):
        sig = inspect.signature(init)

        def wrapper(self, *args, **kwargs):
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            cfg = dict(bound.arguments)
            cfg.pop('self')
            object.__setattr__(self, 'config', types.SimpleNamespace(**cfg))
            init(self, *args, **kwargs)

        return wrapper

    class SchedulerMixin:
        pass

    class SchedulerOutput:
        def __init__(self, prev_sample):
            self.prev_sample = prev_sample

    def deprecate(*a, **k):
        pass

    mods = {name: types.ModuleType(name) for name in (
        'diffusers', 'diffusers.configuration_utils', 'diffusers.schedulers',
        'diffusers.schedulers.scheduling_utils', 'diffusers.utils', 'diffusers.utils.torch_utils')}
    mods['diffusers.configuration_utils'].ConfigMixin = ConfigMixin
    mods['diffusers.configuration_utils'].register_to_config = register_to_config
    su = mods['diffusers.schedulers.scheduling_utils']
    su.KarrasDiffusionSchedulers, su.SchedulerMixin, su.SchedulerOutput = [], SchedulerMixin, SchedulerOutput
    mods['diffusers.utils'].deprecate = deprecate
    mods['diffusers.utils'].is_scipy_available = lambda: False
    mods['diffusers.utils.torch_utils'].randn_tensor = None
    sys.modules.update(mods)


def load(source, kind, f64):
    src = source.read(FILES[kind])
    digest = hashlib.sha256(src.encode()).hexdigest()
    if f64:
        for a, b in F64_REWRITES:
            assert a in src, (kind, a)
            src = src.replace(a, b)
    mod = types.ModuleType(f'upstream_{kind}_{int(f64)}')
    exec(compile(src, source.origin(FILES[kind]), 'exec'), mod.__dict__)
    return getattr(mod, CLASSES[kind]), digest


def velocity(x, t):
    return 0.3 * x + 0.001 * float(t) * (1.0 + torch.cos(x))


def run(cls, kind, steps, shift, x0, dtype):
    if kind == 'unipc':  # as wan/text2video.py / vace.py
        s = cls(num_train_timesteps=1000, shift=1, use_dynamic_shifting=False)
        s.set_timesteps(steps, device='cpu', shift=shift)
    else:
        s = cls(num_train_timesteps=1000, shift=1, use_dynamic_shifting=False)
        sigma = np.linspace(1, 0, steps + 1)[:steps]  # wan get_sampling_sigmas
        sigma = shift * sigma / (1 + (shift - 1) * sigma)
        s.set_timesteps(device='cpu', sigmas=sigma)
    x = x0.to(dtype)
    traj = [x.clone()]
    for t in s.timesteps:
        v = velocity(x, t)
        x = s.step(v, t, x, return_dict=False)[0]
        traj.append(x.clone())
    return s.timesteps.clone(), s.sigmas.clone(), torch.stack(traj)


CASES = [('unipc', 10, 5.0), ('unipc', 12, 16.0), ('unipc', 3, 3.0), ('unipc', 1, 5.0),
         ('dpm++', 10, 5.0), ('dpm++', 20, 16.0), ('dpm++', 2, 5.0)]
SCHEDULES = [('unipc', 50, 16.0), ('unipc', 25, 16.0), ('unipc', 50, 5.0), ('dpm++', 50, 16.0)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--wan-src', required=True)
    ap.add_argument('--wan-commit', default=None)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    install_diffusers_shim()
    source = UpstreamSource(src_dir=a.wan_src, commit=a.wan_commit)
    os.makedirs(a.out, exist_ok=True)
    cls32 = {k: load(source, k, False) for k in FILES}
    cls64 = {k: load(source, k, True)[0] for k in FILES}
    g = torch.Generator().manual_seed(1234)
    x0 = torch.randn(1, 2, 2, 3, 4, generator=g)
    tensors = {'x0': x0}
    rows = []
    for kind, steps, shift in CASES:
        name = f'{kind.replace("+", "p")}_n{steps}_s{shift:g}'
        ts, sig, tr32 = run(cls32[kind][0], kind, steps, shift, x0, torch.float32)
        _, _, tr64 = run(cls64[kind], kind, steps, shift, x0, torch.float64)
        floor = (tr32.double() - tr64).abs().max().item()
        tensors[f'{name}.timesteps'] = ts.to(torch.int64)
        tensors[f'{name}.sigmas'] = sig.to(torch.float32)
        tensors[f'{name}.traj'] = tr32
        tensors[f'{name}.traj_f64'] = tr64
        rows.append((name, floor, tr32[-1].abs().max().item()))
    for kind, steps, shift in SCHEDULES:
        name = f'sched_{kind.replace("+", "p")}_n{steps}_s{shift:g}'
        ts, sig, _ = run(cls32[kind][0], kind, steps, shift, x0[..., :1], torch.float32)
        tensors[f'{name}.timesteps'] = ts.to(torch.int64)
        tensors[f'{name}.sigmas'] = sig.to(torch.float32)
    save_safetensors(os.path.join(a.out, 'samplers.safetensors'), tensors)
    with open(os.path.join(a.out, 'README.md'), 'w') as f:
        f.write('# Flow sampler parity fixtures\n\nGenerated by `scripts/gen_sampler_fixtures.py` from the OFFICIAL '
                'Wan 2.1 schedulers, loaded at run time (no upstream code in this repository); do not edit.\n\n')
        f.write('```\n/usr/bin/python3 ' + ' '.join(sys.argv) + '\n```\n\n')
        f.write(f'Upstream commit: `{source.commit}`  \n')
        for k in FILES:
            f.write(f'sha256 `{FILES[k]}`: `{cls32[k][1]}`  \n')
        f.write('\nShims: `diffusers` (ConfigMixin/register_to_config recording every constructor argument in '
                '`self.config`, SchedulerMixin, SchedulerOutput, deprecate, is_scipy_available = False). '
                'Float64 run: `np.float32`/`torch.float32` widened to float64 in the scheduler source.\n\n')
        f.write('Velocity field: `v = 0.3·x + 0.001·t·(1 + cos x)` with the integer timestep t; x_0 = '
                'randn(1,2,2,3,4, seed 1234). `<case>.traj` = x_0…x_N (float32 run), `.traj_f64` (float64 run).\n\n')
        f.write('| case | float64 floor (max abs) | max |x_N| |\n|---|---|---|\n')
        for name, floor, mx in rows:
            f.write(f'| {name} | {floor:.3e} | {mx:.3f} |\n')
    for r in rows:
        print('%-22s floor %.3e  max|x_N| %.3f' % r)


if __name__ == '__main__':
    main()
