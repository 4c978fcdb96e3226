"""
Launching runs: the tools that train many models (tools/compare.py, tools/prime.py) start each one as
its own `python train.py` process, exactly what a person would type, and reuse finished runs.
"""

import json
import os
import subprocess
import sys
import time

from helpers.checkpoint import atomic_write_text
from helpers.config import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository


def train_or_reuse(out_dir, args, inputs=()):
    """Run `python train.py ARGS --out_dir=OUT_DIR --overwrite=True` (its output in out_dir/train.log)
    unless out_dir holds a finished run of the very same arguments; returns the seconds it took.

    out_dir/run.json records the arguments and the time once the run has finished, so a run that
    crashed or was interrupted is trained again, and one that finished is never trained twice.
    inputs: run folders this run starts from (a base checkpoint): when one of them was trained
    again, this run is too.
    """
    args = [*args, f"--out_dir={out_dir}"]
    after = {d: read_stamp(d) for d in inputs}
    stamp = os.path.join(out_dir, "run.json")
    done = read_stamp(out_dir)
    if done and done["args"] == args and done.get("inputs", {}) == after:
        print(f"reusing {out_dir}")
        return done["seconds"]
    print(f"training {out_dir}", flush=True)
    os.makedirs(out_dir, exist_ok=True)
    t0, log = time.time(), os.path.join(out_dir, "train.log")
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args, "--overwrite=True"],
                           stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        with open(log) as f:
            last = f.read().strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"training {out_dir} failed: {last[0]} (whole output in {log})")
    seconds = round(time.time() - t0, 1)
    atomic_write_text(stamp, json.dumps({"args": args, "seconds": seconds, "inputs": after}))
    return seconds


def read_stamp(out_dir):
    """out_dir/run.json (what train_or_reuse recorded of a finished run), or None."""
    path = os.path.join(out_dir, "run.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
