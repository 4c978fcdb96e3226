"""prepare/: each script on local files writes bins that decode back to the text, with the right meta."""

import json
import os

import numpy as np
import pytest
from conftest import shared_file

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
