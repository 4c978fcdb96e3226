"""prepare/: each script on local files writes bins that decode back to the text, with the right meta."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, shared_file

from prepare import common, facts, shakespeare, shakespeare_char


def load(out):
    meta = json.load(open(os.path.join(out, "meta.json")))
    bins = {s: np.fromfile(os.path.join(out, f"{s}.bin"), dtype=meta["dtype"]) for s in ("train", "val")}
    docs = {s: np.load(os.path.join(out, f"{s}.docs.npy")) for s in ("train", "val")}
    return meta, bins, docs


def test_shakespeare_char_matches_nanogpt(tmp_path):
    path = shared_file("tinyshakespeare.txt")
    shakespeare_char.main(["--input", path, "--out", str(tmp_path)])
    meta, bins, _ = load(tmp_path)
    text = open(path).read()
    assert meta["vocab_size"] == 65 and meta["dtype"] == "uint16" and meta["tokenizer"] == "char"
    assert meta["eot_id"] is None
    # nanoGPT's numbers for this split: 1,003,854 train and 111,540 val tokens
    assert (len(bins["train"]), len(bins["val"])) == (1_003_854, 111_540)
    tok = common.get_tokenizer(meta)
    assert tok.decode(bins["train"].tolist()) + tok.decode(bins["val"].tolist()) == text


def test_shakespeare_bpe_matches_nanogpt(tmp_path):
    path = shared_file("tinyshakespeare.txt")
    shared_file("tiktoken_cache")
    shakespeare.main(["--input", path, "--out", str(tmp_path)])
    meta, bins, _ = load(tmp_path)
    assert meta["vocab_size"] == 50257 and meta["tokenizer"] == "gpt2" and meta["dtype"] == "uint16"
    assert (len(bins["train"]), len(bins["val"])) == (301_966, 36_059)  # nanoGPT's README numbers
    tok = common.get_tokenizer(meta)
    assert tok.decode(bins["train"].tolist()) + tok.decode(bins["val"].tolist()) == open(path).read()


def test_facts_documents_prefixes_and_determinism(tmp_path):
    facts.main(["--train_docs=30", "--val_docs=5", "--seed=3", f"--out={tmp_path}/a"])
    facts.main(["--train_docs=30", "--val_docs=5", "--seed=3", f"--out={tmp_path}/b"])
    meta, bins, docs = load(f"{tmp_path}/a")
    assert open(f"{tmp_path}/a/train.bin", "rb").read() == open(f"{tmp_path}/b/train.bin", "rb").read()
    assert meta["splits"]["train"]["docs"] == 30 and docs["train"].shape == (30, 2)
    tok = common.get_tokenizer(meta)
    starts = list(docs["train"][:, 0]) + [len(bins["train"])]
    for i, (start, prefix) in enumerate(docs["train"]):
        doc = tok.decode(bins["train"][start:starts[i + 1]].tolist())
        assert doc.endswith("\n\n") and "Q: " in doc
        head, tail = doc[:prefix], doc[prefix:]
        assert "Q:" not in head and tail.startswith("Q: ")  # the prefix is exactly the facts block
        for line in tail.strip().splitlines():  # every answer is stated in the facts
            name = line.split(" does ")[1].split(" ")[0:2]
            answer = line.split(" A: ")[1].rstrip(".")
            assert " ".join(name) in head and answer in head
    # train and val documents differ
    val_text = tok.decode(bins["val"].tolist())
    assert val_text not in tok.decode(bins["train"].tolist())


def test_facts_with_bpe_appends_end_of_text(tmp_path):
    shared_file("tiktoken_cache")
    facts.main(["--train_docs=5", "--val_docs=2", "--tokenizer=gpt2", f"--out={tmp_path}"])
    meta, bins, docs = load(tmp_path)
    assert meta["eot_id"] == 50256
    ends = list(docs["train"][1:, 0] - 1) + [len(bins["train"]) - 1]
    assert all(bins["train"][e] == 50256 for e in ends)
    assert (bins["train"] == 50256).sum() == 5


def test_uint32_for_large_vocabularies():
    assert common.dtype_for(65535) == np.uint16 and common.dtype_for(100277) == np.uint32


def test_failed_prepare_leaves_no_partial_output_and_keeps_the_old_dataset(tmp_path):
    facts.main(["--train_docs=5", "--val_docs=2", f"--out={tmp_path}"])
    before = {p: open(tmp_path / p, "rb").read() for p in os.listdir(tmp_path)}
    tok = common.CharTokenizer("ab")

    def docs_then_crash():
        yield tok.encode("abab"), 0, 4
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        common.write_dataset(str(tmp_path), {"train": docs_then_crash(), "val": iter([])}, tok, "x")
    assert {p: open(tmp_path / p, "rb").read() for p in os.listdir(tmp_path)} == before


def test_missing_input_file_is_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="input file .*nope.txt not found"):
        shakespeare_char.main(["--input", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")])
    assert not os.path.exists(tmp_path / "o")


# --- a byte-level BPE trained on the dataset's train split (common.train_bpe, --tokenizer=bpe) ---

def shakespeare_head(n=100_000):
    return open(shared_file("tinyshakespeare.txt"), encoding="utf-8").read()[:n]


def test_bpe_training_is_deterministic_and_has_the_requested_size():
    text = shakespeare_head()
    tok = common.train_bpe([text], 400)
    assert tok.n_vocab == 400 and tok.eot_token is None
    assert {t for t in tok.token_bytes if len(t) == 1} == {bytes([b]) for b in range(256)}  # every byte is a token
    assert common.train_bpe([text], 400).json == tok.json
    # another process (other hash seeds) learns the very same merges
    code = ("import sys; sys.path.insert(0, '.'); from prepare.common import train_bpe; "
            f"print(train_bpe([open({shared_file('tinyshakespeare.txt')!r}).read()[:100_000]], 400).json)")
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert other.strip() == tok.json
    with_eot = common.train_bpe([text], 400, special_tokens=(common.EOT,))
    assert with_eot.n_vocab == 400 and with_eot.decode([with_eot.eot_token]) == common.EOT


def test_bpe_round_trips_unseen_characters_and_their_exact_bytes():
    tok = common.train_bpe([shakespeare_head()], 400)
    text = "Señor Ñandú — 日本語 🙂 naïve\n\tend"
    ids = tok.encode(text)
    assert tok.decode(ids) == text and tok.decode_bytes(ids) == text.encode("utf-8")
    # a cut inside a character: decode() shows a replacement character, decode_bytes() the exact bytes
    cuts = [k for k in range(1, len(ids)) if "\ufffd" in tok.decode(ids[:k])]
    assert cuts and all(tok.decode_bytes(ids[:k]) + tok.decode_bytes(ids[k:]) == text.encode("utf-8") for k in cuts)
    with pytest.raises(ValueError, match="not in this vocabulary"):
        tok.decode_bytes([400])


@pytest.fixture(scope="module")
def bpe_shakespeare(tmp_path_factory):
    """The first 200,000 characters of tiny Shakespeare in a BPE of 512 tokens: (data dir, text)."""
    tmp = tmp_path_factory.mktemp("bpe")
    text = shakespeare_head(200_000)
    (tmp / "head.txt").write_text(text, encoding="utf-8")
    shakespeare.main(["--input", str(tmp / "head.txt"), "--tokenizer=bpe", "--vocab_size=512", "--out", str(tmp / "d")])
    return tmp / "d", text


def test_shakespeare_with_a_trained_bpe(bpe_shakespeare):
    from transformers import AutoTokenizer

    data_dir, text = bpe_shakespeare
    meta, bins, _ = load(data_dir)
    assert (meta["name"], meta["tokenizer"], meta["vocab_size"]) == ("shakespeare_bpe512", "bpe", 512)
    assert meta["eot_id"] is None  # one document: nothing to separate
    split = int(len(text) * 0.9)
    tok = common.get_tokenizer(meta)
    for s, part in (("train", text[:split]), ("val", text[split:])):  # bits per byte divide by these byte counts
        assert tok.decode_bytes(bins[s]) == part.encode("utf-8")
        assert meta["splits"][s]["bytes"] == len(part.encode("utf-8")) and meta["splits"][s]["tokens"] == len(bins[s])
    assert common.train_bpe([text[:split]], 512).json == meta["tokenizer_json"]  # learned from train only
    # the plain tokenizer.json beside meta.json is the same tokenizer, as transformers loads it
    assert open(data_dir / "tokenizer.json", encoding="utf-8").read() == meta["tokenizer_json"]
    hf = AutoTokenizer.from_pretrained(str(data_dir))
    assert hf(text[split:])["input_ids"] == bins["val"].tolist()


def test_train_sample_and_analyze_on_a_bpe_dataset(bpe_shakespeare, tmp_path, capsys):
    import math

    import sample
    import train
    from conftest import train_args
    from helpers.checkpoint import read_metrics
    from helpers.config import UserError
    from tools import analyze

    data_dir, out = bpe_shakespeare[0], str(tmp_path / "run")
    train.main(train_args(str(data_dir), out, "--max_iters=10", "--lr_decay_iters=10", "--eval_interval=10",
                          "--always_save_checkpoint=True"))
    meta = json.load(open(data_dir / "meta.json"))
    last = read_metrics(out)[-1]
    per_token = meta["splits"]["val"]["bytes"] / meta["splits"]["val"]["tokens"]
    assert last["val_bpb"] == pytest.approx(last["val_loss"] / math.log(2) / per_token)
    capsys.readouterr()
    sample.main([f"--out_dir={out}", "--start=ROMEO: señor", "--num_samples=1", "--max_new_tokens=10", "--seed=1"])
    assert capsys.readouterr().out.startswith("ROMEO: señor")
    analyze.main(["tokens", f"--out_dir={out}", "--text=ROMEO: señor, 'tis thee", f"--plot_dir={tmp_path}/plots"])
    assert os.path.exists(tmp_path / "plots" / "tokens.html")
    # a BPE of the same size learned from other text has other tokens: resuming on it is refused
    (tmp_path / "other.txt").write_text(shakespeare_head(300_000)[200_000:], encoding="utf-8")
    shakespeare.main(["--input", str(tmp_path / "other.txt"), "--tokenizer=bpe", "--vocab_size=512",
                      "--out", str(tmp_path / "other")])
    with pytest.raises(UserError, match=r"holds bpe \(vocab 512\), learned from other text"):
        train.main(train_args(str(tmp_path / "other"), out, "--init_from=resume", "--max_iters=20"))


@pytest.mark.parametrize("argv, says", [(["--vocab_size=256"], "at least 257"),
                                        ([], "--tokenizer=bpe needs --vocab_size"),
                                        (["--vocab_size=5000"], "only enough distinct pairs for a vocabulary of")])
def test_bad_bpe_sizes_are_one_line_errors(tmp_path, argv, says):
    path = tmp_path / "small.txt"
    path.write_text("to be, or not to be: that is the question\n" * 20)
    with pytest.raises(SystemExit, match=says) as e:
        shakespeare.main(["--input", str(path), "--tokenizer=bpe", *argv, "--out", str(tmp_path / "o")])
    assert "\n" not in str(e.value) and not os.path.exists(tmp_path / "o")
