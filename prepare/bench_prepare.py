"""
Benchmark of the prepare path: throughput (tokens/s) with 1 and 2 tokenizer processes, and peak memory,
on the TinyStories sample and on a synthetic text of --mb megabytes (TinyStories' format, generated
into a temp directory and deleted afterwards). Peak RSS must not grow with the input's size.

    python prepare/bench_prepare.py                 # ../shared/data sample + 200 MB synthetic, 1 and 2 processes
    python prepare/bench_prepare.py --mb 20 --procs 1

Each measurement runs `prepare/tinystories.py --data_files FILE` in a fresh process (offline, with a
throw-away HF cache), after a warm-up that imports `datasets` and reads a tiny file, so the times are
those of reading, cutting into stories, tokenizing (GPT-2 BPE) and writing the bins. Peak RSS is the
main process's ru_maxrss and the largest of its tokenizer processes'. Prints a Markdown table.
"""

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
SAMPLE = os.path.join(SHARED, "tinystories_validation_head.txt")


def child(path, num_proc, out):
    """One measurement, in this (fresh) process: prints a JSON line."""
    import datasets

    from prepare import tinystories

    warm = os.path.join(out, "warm.txt")
    with open(warm, "w") as f:
        f.write("Once upon a time.\n")
    list(datasets.load_dataset("text", data_files=warm, split="train", streaming=True))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    meta = tinystories.main(["--data_files", path, "--out", os.path.join(out, "data"), f"--num_proc={num_proc}"])
    wall = time.perf_counter() - t
    tokens = sum(s["tokens"] for s in meta["splits"].values())
    print(json.dumps({"tokens": tokens, "wall_s": wall, "rss_before_mb": base,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def synthetic(path, mb, seed=0):
    """About mb megabytes of TinyStories: the sample's stories in random order, `<|endoftext|>` between."""
    with open(SAMPLE, encoding="utf-8") as f:
        paragraphs = f.read().strip().split("\n\n")
    stories, cur = [], []
    for p in paragraphs:  # the stories as tinystories.py cuts them
        if p.startswith("Once upon a time") and cur:
            stories.append("\n".join(cur))
            cur = []
        cur.append(p)
    stories.append("\n".join(cur))
    rng, size = random.Random(seed), 0
    with open(path, "w", encoding="utf-8") as f:
        while size < mb * 1e6:
            rng.shuffle(stories)
            chunk = "".join(s + "\n<|endoftext|>\n" for s in stories)
            f.write(chunk)
            size += len(chunk.encode("utf-8"))
    return size


def measure(path, num_proc):
    out = tempfile.mkdtemp(prefix="bench-prepare-")
    env = dict(os.environ, HF_HOME=os.path.join(out, "hf"), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    if os.path.isdir(os.path.join(SHARED, "tiktoken_cache")):
        env.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(SHARED, "tiktoken_cache"))
    try:
        r = subprocess.run([sys.executable, __file__, "--child", path, str(num_proc), out], env=env,
                           capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"error: the measurement failed:\n{r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None):
    if argv is None and sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=200, help="size of the synthetic text in MB (0: skip it)")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="tokenizer process counts to compare")
    args = p.parse_args(argv)
    if not os.path.exists(SAMPLE):
        sys.exit(f"error: {SAMPLE} not found: the benchmark needs ../shared/data beside the repo")
    tmp = tempfile.mkdtemp(prefix="bench-prepare-text-")
    rows = []
    try:
        inputs = [("TinyStories sample", SAMPLE, os.path.getsize(SAMPLE))]
        if args.mb > 0:
            big = os.path.join(tmp, "synthetic.txt")
            inputs.append(("synthetic TinyStories", big, synthetic(big, args.mb)))
        for label, path, size in inputs:
            for n in args.procs:
                r = measure(path, n)
                rows.append((label, size, n, r))
                print(f"{label}: {n} process(es): {r}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}\n")
    print("| input | size | processes | tokens | time | tokens/s | peak RSS, main | peak RSS, tokenizer processes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, size, n, r in rows:
        workers = f"{r['rss_workers_mb']:.0f} MB" if n > 1 else "-"
        print(f"| {label} | {size / 1e6:.1f} MB | {n} | {r['tokens']:,} | {r['wall_s']:.1f} s | "
              f"{r['tokens'] / r['wall_s'] / 1e6:.2f}M | {r['rss_mb']:.0f} MB | {workers} |")


if __name__ == "__main__":
    main()
