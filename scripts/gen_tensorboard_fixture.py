#!/usr/bin/env python3
"""Writes tests/fixtures/tensorboard/scalars.tfevents with PyTorch's SummaryWriter (tensorboard's
EventFileWriter underneath) for tests/core/test_tensorboard.cpp, which writes the same events
with ipa::TensorBoardWriter and requires the same bytes.

The first record (Event{wall_time, file_version}) takes time.time() inside the writer's
constructor: it is patched to a fixed value while the writer is created.

  /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_tensorboard_fixture.py
  # and to check that TensorBoard reads a file written by the C++ side:
  /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_tensorboard_fixture.py --check FILE
"""
import argparse
import glob
import os
import shutil
import sys
import tempfile
from unittest import mock

# Must match tests/core/test_tensorboard.cpp.
FIRST_WALL_TIME = 1767225600.25
EVENTS = [  # (step, wall_time, [(tag, value), ...]); one value per add_scalar, several via add_summary
    (0, 1767225601.5, [("train/loss", 0.6931471805599453)]),
    (1, 1767225602.75, [("train/loss", 0.5), ("train/gap", -1.25e-4), ("train/lr", 3e-5)]),
    (1000, 1767225603.0, [("train/reward_accuracy", 0.0)]),
    (123456789012, 1767225604.125, [("x", 1e30), ("y", -7.0)]),
]


def write(out_path):
    import torch.utils.tensorboard as tb
    from tensorboard.compat.proto.summary_pb2 import Summary

    with tempfile.TemporaryDirectory() as tmp:
        with mock.patch("time.time", return_value=FIRST_WALL_TIME):
            w = tb.SummaryWriter(log_dir=tmp)
            fw = w._get_file_writer()
        for step, wall, values in EVENTS:
            if len(values) == 1:
                w.add_scalar(values[0][0], values[0][1], global_step=step, walltime=wall)
            else:
                s = Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in values])
                fw.add_summary(s, global_step=step, walltime=wall)
        w.close()
        (src,) = glob.glob(os.path.join(tmp, "events.out.tfevents.*"))
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        shutil.copyfile(src, out_path)
    print(f"wrote {out_path} ({os.path.getsize(out_path)} bytes)")


def check(path):
    """Prints the scalars tensorboard's own loader reads from `path` (CRCs checked)."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event

    n = 0
    for raw in RawEventFileLoader(path, detect_file_replacement=False).Load():
        e = Event.FromString(raw)
        if e.HasField("file_version"):
            print(f"wall_time {e.wall_time:.3f} file_version {e.file_version}")
        for v in e.summary.value:
            print(f"step {e.step} wall_time {e.wall_time:.3f} {v.tag} = {v.simple_value!r}")
            n += 1
    print(f"{n} scalars")
    return n


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "tensorboard", "scalars.tfevents"))
    ap.add_argument("--check", help="read this event file with tensorboard's loader instead")
    a = ap.parse_args()
    if a.check:
        sys.exit(0 if check(a.check) > 0 else 1)
    write(os.path.normpath(a.out))


if __name__ == "__main__":
    main()
