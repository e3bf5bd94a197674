#!/usr/bin/env python3
"""Operator table of a Chrome trace: self (exclusive) and total time per operator name,
summed over the trace. Reads the traces of `ipa-train --profile-step N` and of
torch.profiler's export_chrome_trace (scripts/bench_ipa_step_upstream.py --trace), so the
two programs' steps can be put side by side:

    scripts/profile_summary.py ipa=RUN/profile/step-3.trace.json upstream=/tmp/up.json \
        [--top 25] [--phase backward]

Both programs mark their phases as `phase::NAME` ranges (prelude, reference, policy,
backward, update); the phase table sums the time inside each, and --phase restricts the
operator table to one of them.
"""

import argparse
import collections
import json


def load(path):
    with open(path) as f:
        d = json.load(f)
    events = d['traceEvents'] if isinstance(d, dict) else d
    out = []
    for e in events:
        if e.get('ph') != 'X' or 'dur' not in e:
            continue
        cat = e.get('cat', '')
        if cat and cat not in ('cpu_op', 'Operator', 'operator', 'user_annotation'):
            continue  # torch.profiler also records python frames, kernels, runtime calls
        out.append((e.get('pid'), e.get('tid'), float(e['ts']), float(e['dur']), e['name']))
    return out


def self_times(events, phase=None):
    """Exclusive time per name: each event's duration minus its direct children's; with
    `phase`, only events inside the `phase::PHASE` range. Also the time of each phase range."""
    total, self_t, calls, phases = (collections.Counter() for _ in range(4))
    by_thread = collections.defaultdict(list)
    for pid, tid, ts, dur, name in events:
        by_thread[(pid, tid)].append((ts, -dur, name))
    for evs in by_thread.values():
        evs.sort()
        stack = []  # [end, name, child time, duration, enclosing phase]

        def pop():
            end, name, child, dur, inside = stack.pop()
            if phase is None or inside == phase:
                self_t[name] += dur - child
                total[name] += dur
                calls[name] += 1

        for ts, neg, name in evs:
            dur = -neg
            while stack and ts >= stack[-1][0] - 1e-6:
                pop()
            if stack:
                stack[-1][2] += dur
            inside = stack[-1][4] if stack else None
            if name.startswith('phase::'):
                inside = name[len('phase::'):]
                phases[inside] += dur
            stack.append([ts + dur, name, 0.0, dur, inside])
        while stack:
            pop()
    for n in list(self_t):
        if n.startswith('phase::'):
            del self_t[n]
    return self_t, total, calls, phases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('traces', nargs='+', help='LABEL=trace.json')
    ap.add_argument('--top', type=int, default=25)
    ap.add_argument('--phase', default=None, help='only operators inside this phase (e.g. backward)')
    args = ap.parse_args()
    tables = []
    for t in args.traces:
        label, _, path = t.partition('=')
        s, total, calls, phases = self_times(load(path), args.phase)
        tables.append((label, s, total, calls, phases))
    print(f"{'phase (ms)':40s}" + ''.join(f'{lab:>21s}' for lab, *_ in tables))
    for ph in ('prelude', 'reference', 'policy', 'backward', 'update'):
        print(f'{ph:40s}' + ''.join(f'{t[4].get(ph, 0) / 1e3:21.1f}' for t in tables))
    print()
    names = collections.Counter()
    for _, s, _, _, _ in tables:
        for n, v in s.items():
            names[n.replace('aten::', '')] += v
    head = f"{'operator (self time, ms)':40s}" + ''.join(f'{lab:>14s}{"calls":>7s}' for lab, *_ in tables)
    print(head)
    for name, _ in names.most_common(args.top):
        row = f'{name[:40]:40s}'
        for _, s, _, c, _ in tables:
            v = s.get('aten::' + name, 0) + s.get(name, 0)
            k = c.get('aten::' + name, 0) + c.get(name, 0)
            row += f'{v / 1e3:14.1f}{k:7d}'
        print(row)
    row = f"{'all operators':40s}"
    for _, s, _, c, _ in tables:
        row += f'{sum(s.values()) / 1e3:14.1f}{sum(c.values()):7d}'
    print(row)


if __name__ == '__main__':
    main()
