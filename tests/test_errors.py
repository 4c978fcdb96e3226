"""Every row of the bad-input table in docs/errors.md: the case is run, and what it prints is the row's
message (… matching anything). Cases that write nothing leave no out_dir behind."""

import atexit
import errno
import json
import os
import re
import shutil
import sys
import tempfile

# before anything imports `datasets`: no network, nothing written under ~ (as in test_datasets.py)
if "HF_HOME" not in os.environ:
    _HF_HOME = tempfile.mkdtemp(prefix="hf-test-")
    atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=_HF_HOME,
                      HF_DATASETS_CACHE=os.path.join(_HF_HOME, "datasets"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import ROOT, shared_file, train_args  # noqa: E402

import sample  # noqa: E402
import train  # noqa: E402
from helpers.checkpoint import read_metrics  # noqa: E402
from helpers.config import main_guard  # noqa: E402
from prepare import openwebtext, text  # noqa: E402


def table():
    """{case: message} from docs/errors.md's table."""
    rows = re.findall(r"^\| `([\w-]+)` \| .* \| `([^`]*)` \|$", open(os.path.join(ROOT, "docs", "errors.md")).read(),
                      flags=re.M)
    return dict(rows)


CASES = {}


def case(name):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


def said(main, capsys):
    """Everything main() prints, run as the scripts run it: a UserError becomes `error: ...`, a prepare
    script's sys.exit("error: ...") its message."""
    try:
        main_guard(main)
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    out = capsys.readouterr()
    return out.out + out.err


def copy(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


@case("negative-learning-rate")
def _(w):
    return said(lambda: train.main(train_args(w.facts_dir, w.out, "--learning_rate=-1")), w.capsys)


@case("beta-out-of-range")
def _(w):
    return said(lambda: train.main(train_args(w.facts_dir, w.out, "--beta2=1.5")), w.capsys)


@case("grad-projection")
def _(w):
    return said(lambda: train.main(train_args(w.facts_dir, w.out, "--grad_projection=radial")), w.capsys)


@case("config-syntax-error")
def _(w):
    path = w.tmp_path / "typo.py"
    path.write_text("learning_rate = = 1e-3\n")
    return said(lambda: train.main([str(path), *train_args(w.facts_dir, w.out)]), w.capsys)


@case("token-ids-beyond-vocab")
def _(w):
    data = copy(w.facts_dir, w.tmp_path / "data")
    meta = json.load(open(f"{data}/meta.json"))
    del meta["max_token_id"]  # as in a meta.json from before it was recorded: the bins are sampled
    json.dump(meta, open(f"{data}/meta.json", "w"))
    ids = np.fromfile(f"{data}/train.bin", dtype=np.uint16)
    ids[-5] = 70
    ids.tofile(f"{data}/train.bin")
    return said(lambda: train.main(train_args(data, w.out)), w.capsys)


@case("empty-val-split")
def _(w):
    data = copy(w.facts_dir, w.tmp_path / "data")
    meta = json.load(open(f"{data}/meta.json"))
    meta["splits"]["val"] = {"tokens": 0, "docs": 0, "bytes": 0}
    json.dump(meta, open(f"{data}/meta.json", "w"))
    open(f"{data}/val.bin", "wb").close()
    np.save(f"{data}/val.docs.npy", np.zeros((0, 2), dtype=np.int64))
    return said(lambda: train.main(train_args(data, w.out)), w.capsys)


@case("read-only-out-dir")
def _(w):
    os.makedirs(w.out)
    real_open = open

    def read_only(path, mode="r", *args, **kwargs):  # what a folder without write permission does
        if str(path).startswith(w.out) and mode[0] in "wa":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, mode, *args, **kwargs)
    w.monkeypatch.setattr("builtins.open", read_only)
    out = said(lambda: train.main(train_args(w.facts_dir, w.out)), w.capsys)
    assert os.listdir(w.out) == []
    return out


@case("disk-full")
def _(w):
    run = copy(w.tiny_run, w.tmp_path / "run")

    def full_disk(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    w.monkeypatch.setattr(torch, "save", full_disk)
    return said(lambda: train.main(train_args(w.facts_dir, run, "--init_from=resume", "--max_iters=35",
                                              "--eval_interval=5")), w.capsys)


@case("diverged")
def _(w):
    run = copy(w.tiny_run, w.tmp_path / "run")
    return said(lambda: train.main(train_args(w.facts_dir, run, "--init_from=resume", "--max_iters=60",
                                              "--learning_rate=1e6", "--warmup_iters=0")), w.capsys)


@case("torn-metrics-line")
def _(w):
    run = copy(w.tiny_run, w.tmp_path / "run")
    with open(f"{run}/metrics.jsonl", "a") as f:
        f.write('{"iter": 45, "val_')
    read_metrics(run)
    return w.capsys.readouterr().err


@case("sample-temperature")
def _(w):
    return said(lambda: sample.main([f"--out_dir={w.out}", "--temperature=-1"]), w.capsys)


@case("sample-top-p")
def _(w):
    return said(lambda: sample.main([f"--out_dir={w.out}", "--top_p=2"]), w.capsys)


@case("sample-num-samples")
def _(w):
    return said(lambda: sample.main([f"--out_dir={w.out}", "--num_samples=0"]), w.capsys)


@case("one-line-text")
def _(w):
    (w.tmp_path / "one_line.txt").write_text("all of it on one line")
    return said(lambda: text.main(["--input", str(w.tmp_path / "one_line.txt"), "--out", w.out, "--num_proc=1",
                                   "--tokenizer=char"]), w.capsys)


@case("one-book")
def _(w):
    return said(lambda: text.main(["--input", shared_file("gutenberg_11_alice_in_wonderland.txt"), "--out",
                                   str(w.tmp_path / "alice"), "--num_proc=1", "--tokenizer=char"]), w.capsys)


@case("loading-script")
def _(w):
    import datasets

    def load_dataset(path, *args, **kwargs):  # datasets 4+ on a repository with a loading script
        if kwargs.get("revision") != "refs/convert/parquet":
            raise RuntimeError("Dataset scripts are no longer supported, but found openwebtext.py")
        return datasets.Dataset.from_dict({"text": ["one page.", "another page.", "a third page."]})
    w.monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return said(lambda: openwebtext.main(["--out", str(w.tmp_path / "owt"), "--num_proc=1"]), w.capsys)


@case("init-from-missing")
def _(w):
    return said(lambda: train.main(train_args(w.facts_dir, w.out, "--init_from=out-nothing")), w.capsys)


@case("lora-from-scratch")
def _(w):
    return said(lambda: train.main(train_args(w.facts_dir, w.out, "--lora_rank=8")), w.capsys)


@case("finetune-architecture")
def _(w):
    return said(lambda: train.main(train_args(w.facts_dir, w.out, f"--init_from={w.tiny_run}", "--rotary=True")),
                w.capsys)



class CallsExec:
    """Unpickling this would call exec: what a malicious file could hold."""

    def __reduce__(self):
        return exec, ("raise SystemExit('it ran')",)


@case("checkpoint-holds-code")
def _(w):
    run = copy(w.tiny_run, w.tmp_path / "evil")
    ckpt = torch.load(f"{run}/ckpt.pt", weights_only=True)
    torch.save({**ckpt, "note": CallsExec()}, f"{run}/ckpt.pt")
    return said(lambda: train.main(train_args(w.facts_dir, w.out, f"--init_from={run}")), w.capsys)


@case("hf-weights-hold-code")
def _(w):
    from transformers import GPT2Config
    hf = w.tmp_path / "hf"
    hf.mkdir()
    GPT2Config(n_layer=1, n_head=1, n_embd=8, n_positions=32).save_pretrained(hf)
    torch.save({"note": CallsExec()}, hf / "pytorch_model.bin")
    return said(lambda: sample.main([f"--init_from={hf}", "--device=cpu"]), w.capsys)


@case("init-from-path-missing")
def _(w):
    return said(lambda: train.main(train_args(w.facts_dir, w.out, "--init_from=./out-nothing")), w.capsys)


@case("hub-unreachable")
def _(w):
    w.monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(w.tmp_path))  # nothing downloaded before
    return said(lambda: train.main(train_args(w.facts_dir, w.out, "--init_from=gpt2")), w.capsys)

def test_the_table_has_a_row_for_every_case_and_a_case_for_every_row():
    assert sorted(table()) == sorted(CASES)


class Where:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_bad_input_gets_the_documented_line(name, facts_dir, tiny_run, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "out")
    w = Where(facts_dir=facts_dir, tiny_run=tiny_run, tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
              out=out)
    printed = CASES[name](w)
    message = table()[name]
    pattern = ".*?".join(re.escape(part) for part in message.split("…"))
    lines = [line for line in printed.splitlines() if re.fullmatch(pattern, line.strip())]
    assert len(lines) == 1, f"{name}: {message!r} not in:\n{printed[-2000:]}"
    if message.startswith("error:"):
        assert printed.rstrip().endswith(lines[0].strip())  # the last thing said: no traceback after it
        assert not os.path.exists(out) or not os.listdir(out)  # nothing written
