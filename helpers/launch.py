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


def train_or_reuse(out_dir, args):
    """Run `python train.py ARGS --out_dir=OUT_DIR --overwrite=True` (its output in out_dir/train.log)
    unless out_dir holds a finished run of the very same arguments; returns the seconds it took.

    out_dir/run.json records the arguments and the time once the run has finished, so a run that
    crashed or was interrupted is trained again, and one that finished is never trained twice.
    """
    args = [*args, f"--out_dir={out_dir}"]
    stamp = os.path.join(out_dir, "run.json")
    if os.path.exists(stamp):
        with open(stamp) as f:
            done = json.load(f)
        if done["args"] == args:
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
    atomic_write_text(stamp, json.dumps({"args": args, "seconds": seconds}))
    return seconds
