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


def interrupt_at(w, n):
    """Ctrl-C in the n-th training step."""
    steps = [0]
    real_step = train.train_step

    def train_step(*args, **kwargs):
        steps[0] += 1
        if steps[0] == n:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)
    w.monkeypatch.setattr(train, "train_step", train_step)


@case("interrupted")
def _(w):
    interrupt_at(w, 13)
    run = str(w.tmp_path / "run")
    out = said(lambda: train.main(train_args(w.facts_dir, run, "--max_iters=100", "--eval_interval=5",
                                             "--always_save_checkpoint=True")), w.capsys)
    assert torch.load(f"{run}/ckpt.pt", weights_only=True)["iter_num"] == 10  # the last save, whole
    assert not [f for f in os.listdir(run) if f.endswith(".tmp")]
    return out


@case("interrupted-before-a-checkpoint")
def _(w):
    interrupt_at(w, 4)
    return said(lambda: train.main(train_args(w.facts_dir, str(w.tmp_path / "run"), "--max_iters=100",
                                              "--eval_interval=50")), w.capsys)


# A save beyond the file-size limit (ulimit -f): a process of its own, since the limit cannot be lifted again.
FSIZE_SCRIPT = """
import resource, signal, sys
sys.path.insert(0, sys.argv[1])
import train
from helpers.config import main_guard
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that a write past the limit is OSError EFBIG, not a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]),) * 2)
main_guard(lambda: train.main(sys.argv[3:]))
"""


@case("file-size-limit")
def _(w):
    import subprocess

    run = copy(w.tiny_run, w.tmp_path / "run")
    before = open(f"{run}/ckpt.pt", "rb").read()
    limit = len(before) // 2  # room for config.json and metrics.jsonl, not for a checkpoint
    assert max(os.path.getsize(f"{run}/{f}") for f in ("config.json", "metrics.jsonl")) < limit
    p = subprocess.run([sys.executable, "-c", FSIZE_SCRIPT, ROOT, str(limit),
                        *train_args(w.facts_dir, run, "--init_from=resume", "--max_iters=35", "--eval_interval=5",
                                    "--always_save_checkpoint=True")],
                       capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert open(f"{run}/ckpt.pt", "rb").read() == before  # the previous checkpoint, intact
    assert not [f for f in os.listdir(run) if f.endswith(".tmp")]
    return p.stdout + p.stderr


@case("stale-max-token-id")
def _(w):
    data = copy(w.facts_dir, w.tmp_path / "data")
    ids = np.fromfile(f"{data}/train.bin", dtype=np.uint16)
    ids[-5] = 70  # the bin written again after meta.json, which still records max_token_id
    ids.tofile(f"{data}/train.bin")
    assert json.load(open(f"{data}/meta.json"))["max_token_id"] < 58
    return said(lambda: train.main(train_args(data, w.out)), w.capsys)


@case("empty-out-dir")
def _(w):
    return said(lambda: train.main(train_args(w.facts_dir, "")), w.capsys)


@case("not-utf8")
def _(w):
    from prepare import shakespeare_char

    (w.tmp_path / "old.txt").write_bytes("Fran\u00e7ois, caf\u00e9 et cr\u00e8me.\n".encode("latin-1") * 50)
    return said(lambda: shakespeare_char.main(["--input", str(w.tmp_path / "old.txt"), "--out", w.out]), w.capsys)


@case("empty-text")
def _(w):
    from prepare import shakespeare_char

    (w.tmp_path / "empty.txt").write_text("")
    return said(lambda: shakespeare_char.main(["--input", str(w.tmp_path / "empty.txt"), "--out", w.out]), w.capsys)


@case("facts-no-docs")
def _(w):
    from prepare import facts

    return said(lambda: facts.main(["--train_docs=0", f"--out={w.out}"]), w.capsys)


@case("sample-cold")
def _(w):
    out = said(lambda: sample.main([f"--out_dir={w.tiny_run}", "--temperature=1e-300", "--max_new_tokens=8",
                                    "--device=cpu"]), w.capsys)
    greedy = said(lambda: sample.main([f"--out_dir={w.tiny_run}", "--temperature=0", "--max_new_tokens=8",
                                       "--device=cpu"]), w.capsys)
    assert out.endswith(greedy)  # greedy decoding's one answer, after the note
    return out


@case("sample-temperature-nan")
def _(w):
    path = w.tmp_path / "cfg.py"
    path.write_text("temperature = float('nan')\n")
    return said(lambda: sample.main([str(path), f"--out_dir={w.out}"]), w.capsys)


def export_args(w, *extra):
    from tools import export

    return lambda: export.main([f"--out_dir={w.run}", *extra])


@case("export-into-its-run")
def _(w):
    w.run = copy(w.tiny_run, w.tmp_path / "run")
    before = sorted(os.listdir(w.run))
    out = said(export_args(w, f"--to={w.run}", "--overwrite=True"), w.capsys)
    assert sorted(os.listdir(w.run)) == before
    return out


@case("export-overwrite-other")
def _(w):
    w.run = w.tiny_run
    os.makedirs(w.tmp_path / "mine")
    (w.tmp_path / "mine" / "notes.txt").write_text("keep me")
    out = said(export_args(w, f"--to={w.tmp_path / 'mine'}", "--overwrite=True"), w.capsys)
    assert (w.tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    return out


def failing_export(w, error):
    def save_pretrained(self, folder, **kwargs):
        open(os.path.join(folder, "model.safetensors"), "wb").write(b"part of a model")
        raise error
    w.monkeypatch.setattr("transformers.GPT2LMHeadModel.save_pretrained", save_pretrained)
    w.run = w.tiny_run
    out = said(export_args(w, f"--to={w.out}"), w.capsys)
    assert os.listdir(w.tmp_path) == []  # no out, no out.tmp-...
    return out


@case("export-read-only")
def _(w):
    return failing_export(w, PermissionError(errno.EACCES, os.strerror(errno.EACCES)))


@case("export-disk-full")
def _(w):
    return failing_export(w, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))


@case("export-interrupted")
def _(w):
    return failing_export(w, KeyboardInterrupt())


def test_ctrl_c_ends_training_with_one_line_and_status_130(facts_dir, tmp_path):
    """SIGINT to a real training process: exit status 130, one line naming the checkpoint, no traceback."""
    import signal
    import subprocess

    run = str(tmp_path / "run")
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"),
                          *train_args(facts_dir, run, "--max_iters=100000", "--eval_interval=5",
                                      "--always_save_checkpoint=True")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                         # Ctrl-C as in a terminal: a suite started in the background inherits SIGINT ignored
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in p.stdout:  # wait for the first checkpoint
            if line.startswith("saved"):
                break
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 130
    assert re.fullmatch(r"error: interrupted at iteration \d+: .*/ckpt.pt holds iteration \d+ "
                        r"\(resume with --init_from=resume\)", err.strip()), err
    assert torch.load(f"{run}/ckpt.pt", weights_only=True)["iter_num"] >= 5



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

def lora_on_a_copy(w):
    """A LoRA run (its ckpt.pt: adapters and a reference) on a copy of the tiny run: (base folder, LoRA folder)."""
    base, lora = copy(w.tiny_run, w.tmp_path / "base"), str(w.tmp_path / "lora")
    train.main(train_args(w.facts_dir, lora, f"--init_from={base}", "--lora_rank=2", "--max_iters=2",
                          "--eval_interval=2", "--always_save_checkpoint=True"))
    w.capsys.readouterr()
    return base, lora


@case("adapter-base-changed")
def _(w):
    base, lora = lora_on_a_copy(w)
    ckpt = torch.load(f"{base}/ckpt.pt", weights_only=True)
    ckpt["model"]["lm_head.weight"][0, 0] += 1.0  # (tied: the token embedding too)
    torch.save(ckpt, f"{base}/ckpt.pt")
    return said(lambda: sample.main([f"--out_dir={lora}", "--device=cpu", "--max_new_tokens=2"]), w.capsys)


@case("adapter-base-missing")
def _(w):
    base, lora = lora_on_a_copy(w)
    shutil.rmtree(base)
    return said(lambda: train.main(train_args(w.facts_dir, lora, "--init_from=resume", "--lora_rank=2",
                                              "--max_iters=4")), w.capsys)


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


def test_a_bad_id_the_start_up_check_misses_is_caught_by_the_batch_that_reads_it(facts_dir, tmp_path):
    """check_token_ids reads only the ends of a bin; an id in the middle is one line when a batch reads it."""
    from helpers.config import UserError
    from helpers.data import Batches, check_token_ids

    data = copy(facts_dir, tmp_path / "data")
    meta = json.load(open(f"{data}/meta.json"))
    ids = np.fromfile(f"{data}/train.bin", dtype=np.uint16)
    ids[:] = np.minimum(ids, 57)
    ids[len(ids) // 2] = 70
    ids.tofile(f"{data}/train.bin")
    check_token_ids(data, meta, 58, sample=16)  # not in the first or last 16 tokens: not seen here
    batches = Batches(data, meta, 32, 64, "cpu", respect_doc_boundaries=False)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(UserError, match=r"train.bin holds token id 70, beyond the data's vocabulary \(58 tokens"):
        for _ in range(200):
            batches.get("train", gen)


def test_a_latin1_text_prepares_with_its_encoding_and_a_too_short_one_is_refused(tmp_path, capsys):
    from prepare import shakespeare_char

    (tmp_path / "old.txt").write_bytes("Fran\u00e7ois, caf\u00e9.\n".encode("latin-1") * 50)
    shakespeare_char.main(["--input", str(tmp_path / "old.txt"), "--out", str(tmp_path / "data"),
                           "--encoding=latin-1"])
    assert "\u00e7" in json.load(open(tmp_path / "data" / "meta.json"))["chars"]
    (tmp_path / "one.txt").write_text("a")
    with pytest.raises(SystemExit, match="has 1 character.*too few to split into train and val"):
        shakespeare_char.main(["--input", str(tmp_path / "one.txt"), "--out", str(tmp_path / "one")])
    assert not os.path.exists(tmp_path / "one")
