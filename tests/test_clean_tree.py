"""Runs never modify tracked files: after the README's quick start, its first experiment, every analysis
tool, sampling and its compare command, `git status --porcelain` of a fresh copy prints nothing."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, shared_file

# appended to every train.py command: the same commands, a few seconds instead of minutes
TINY = ["--max_iters=2", "--lr_decay_iters=2", "--eval_interval=2", "--eval_iters=1", "--warmup_iters=1",
        "--n_embd=32", "--block_size=192", "--batch_size=2"]

# runs each command as its script would run from the shell (sys.argv, __main__), in this one process
DRIVER = """
import json, os, runpy, sys
for argv in json.loads(sys.argv[1]):
    sys.argv = argv
    sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))  # the script's folder, as `python script.py` has it
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        if e.code:
            raise SystemExit(f"{' '.join(argv)} exited with {e.code}")
"""


def readme_block(title):
    """The commands of the first bash block under the README heading `title`."""
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index(f"## {title}"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def git(copy, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=copy, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """A fresh git repository holding exactly the tracked files of this one."""
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("needs git and this repository's git history")
    dst = str(tmp_path_factory.mktemp("clone") / "repo")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for rel in filter(None, tracked.decode().split("\0")):
        if os.path.exists(os.path.join(ROOT, rel)):  # (a file deleted but not yet committed is skipped)
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, rel), os.path.join(dst, rel))
    git(dst, "init", "-q")
    git(dst, "add", "-A")
    git(dst, "commit", "-qm", "copy")
    return dst


def test_quick_start_first_experiment_tools_and_compare_leave_git_status_clean(copy):
    commands = [["train.py", *TINY]]  # the quick start's main job (it also writes data/facts)
    first = readme_block("Your first experiment")
    assert [c[:2] for c in first] == [["python", "train.py"], ["python", "train.py"], ["python", "tools/analyze.py"]]
    commands += [c[1:] + (TINY if c[1] == "train.py" else []) for c in first]
    tools = ["tokens", "distribution", "logprobs", "shape", "embeddings", "attention", "lens", "patch"]
    commands += [["tools/analyze.py", t, "--out_dir=out-facts", *(["--perturbations=2"] if t == "logprobs" else [])]
                 for t in tools]
    commands += [["sample.py", "--out_dir=out-facts", "--temperature=0", "--max_new_tokens=3"]]
    # the README's compare command, at a tiny size, on Shakespeare prepared from ../shared
    compare = next(c for c in readme_block("The variants") if "tools/compare.py" in c)
    commands += [["prepare/shakespeare_char.py", "--input", shared_file("tinyshakespeare.txt")],
                 compare[1:] + ["--common=" + repr(dict(
                     dataset="shakespeare_char", device="cpu", n_layer=4, n_head=2, n_embd=16, block_size=32,
                     batch_size=2, max_iters=2, lr_decay_iters=2, eval_interval=2, eval_iters=1, warmup_iters=1))]]
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], cwd=copy, capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert os.path.exists(os.path.join(copy, "out-first", "positions.png"))
    assert os.path.exists(os.path.join(copy, "out-compare", "shakespeare_char", "results.md"))
    assert git(copy, "status", "--porcelain", "--untracked-files=all") == ""
