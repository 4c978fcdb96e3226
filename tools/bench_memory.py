"""
Peak memory of training must not grow with the dataset: train the same model on a small and on a huge
train.bin and compare the peak RSS of the two runs.

    python tools/bench_memory.py                       # 200 iterations on 2 MB and on 2 GB (sparse) train.bin
    python tools/bench_memory.py --iters=20 --big_gb=0.5

The small dataset is tiny Shakespeare's train.bin (data/shakespeare_char, 2 MB); the big one is the same
file extended to --big_gb with `truncate` (a sparse file: no disk space, reads as zeros). Both live in a
temporary directory that is removed at the end. Each run is a fresh `train.py` process (nanoGPT's CPU
recipe model), whose peak RSS the kernel reports when it ends (os.wait4's ru_maxrss, which counts the
pages of memory-mapped files it touched). Peak RSS stays flat because train.py never keeps a map of the data open: each batch
opens a fresh np.memmap (nanoGPT's fix) and the unigram count reads bounded chunks.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
RECIPE = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20", "--block_size=64",
          "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--dropout=0.0"]


def make_dataset(src, dst, train_bytes):
    """A copy of the dataset in src whose train.bin is extended (sparsely) to train_bytes."""
    os.makedirs(dst)
    for f in ("val.bin", "train.docs.npy", "val.docs.npy"):
        shutil.copy(os.path.join(src, f), dst)
    shutil.copy(os.path.join(src, "train.bin"), dst)
    with open(os.path.join(src, "meta.json")) as f:
        meta = json.load(f)
    size = os.path.getsize(os.path.join(dst, "train.bin"))
    if train_bytes > size:
        os.truncate(os.path.join(dst, "train.bin"), train_bytes)  # the rest is a hole: zeros, no disk
        size = train_bytes
    tokens = size // 2  # uint16
    meta["splits"]["train"].update(tokens=tokens, bytes=tokens)
    with open(os.path.join(dst, "meta.json"), "w") as f:
        json.dump(meta, f)
    return size


def peak_rss_mb(cmd):
    """Run cmd to its end and return its peak resident memory in MB (Linux reports ru_maxrss in KiB)."""
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)  # (so Popen does not wait for it again)
        if p.returncode:
            err.seek(0)
            sys.exit(f"error: {' '.join(cmd[:2])} failed: {err.read().strip().splitlines()[-1:]}")
    return usage.ru_maxrss / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=200, help="training iterations per run")
    p.add_argument("--big_gb", type=float, default=2.0, help="size of the big train.bin in GB (2^30 bytes)")
    p.add_argument("--data", default=os.path.join(ROOT, "data", "shakespeare_char"), help="the small dataset")
    p.add_argument("--tolerance_mb", type=float, default=50.0, help="allowed difference of the two peaks")
    args = p.parse_args(argv)
    if not os.path.exists(os.path.join(args.data, "meta.json")):
        sys.exit(f"error: {args.data} not found: run `python prepare/shakespeare_char.py` first")

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        for name, size in (("small", 0), ("big", int(args.big_gb * 2**30))):
            data_dir = os.path.join(tmp, name)
            nbytes = make_dataset(args.data, data_dir, size)
            cmd = [sys.executable, "train.py", *RECIPE, f"--data_dir={data_dir}", f"--out_dir={tmp}/out_{name}",
                   f"--max_iters={args.iters}", f"--lr_decay_iters={args.iters}", f"--eval_interval={args.iters}",
                   f"--log_interval={args.iters}"]
            peak = peak_rss_mb(cmd)
            results[name] = {"train_bin_mb": round(nbytes / 2**20, 1), "peak_rss_mb": round(peak, 1)}
            print(f"{name}: train.bin {nbytes / 2**20:,.1f} MB, {args.iters} iterations, peak RSS {peak:,.1f} MB")
    diff = results["big"]["peak_rss_mb"] - results["small"]["peak_rss_mb"]
    ok = abs(diff) <= args.tolerance_mb
    print(f"difference {diff:+.1f} MB: {'within' if ok else 'OVER'} {args.tolerance_mb:.0f} MB")
    print(json.dumps({**results, "diff_mb": round(diff, 1), "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
