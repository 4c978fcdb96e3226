"""The dataset scripts (tinystories, wikitext, books, squad, openwebtext, dolma, text) on local files.

They read ../shared/data through the same `datasets` path as the hub; the hub itself is never reached
(offline mode, a throw-away HF cache), and what the hub path does when it is unreachable is tested.
"""

import atexit
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

# before anything imports `datasets` or `huggingface_hub`: no network, nothing written under ~
_HF_HOME = tempfile.mkdtemp(prefix="hf-test-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=_HF_HOME,
                  HF_DATASETS_CACHE=os.path.join(_HF_HOME, "datasets"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import ROOT, shared_file  # noqa: E402

from helpers.data import Batches, load_meta  # noqa: E402
from prepare import books, common, dolma, openwebtext, pipeline, squad, text, tinystories, wikitext  # noqa: E402

ONE = ["--num_proc=1"]


def shared_text(name):
    with open(shared_file(name), encoding="utf-8", newline="") as f:
        return f.read()


def read(out):
    """meta and, per split, the documents as (text, prefix text, ids without the end-of-text token)."""
    meta = json.load(open(os.path.join(out, "meta.json")))
    tok = common.get_tokenizer(meta)
    docs = {}
    for split in ("train", "val"):
        data = np.fromfile(os.path.join(out, f"{split}.bin"), dtype=meta["dtype"])
        index = np.load(os.path.join(out, f"{split}.docs.npy"))
        assert index.dtype == np.int64 and index.shape == (meta["splits"][split]["docs"], 2)
        assert len(data) == meta["splits"][split]["tokens"] and index[0, 0] == 0
        ends = list(index[1:, 0]) + [len(data)]
        assert all(s < e for s, e in zip(index[:, 0], ends))
        docs[split] = []
        for (start, prefix), end in zip(index, ends):
            ids = data[start:end].tolist()
            if meta["eot_id"] is not None:  # the end-of-text token follows every document, and only there
                assert ids[-1] == meta["eot_id"] and meta["eot_id"] not in ids[:-1]
                ids = ids[:-1]
            docs[split].append((tok.decode(ids), tok.decode(ids[:prefix]), ids))
        assert meta["splits"][split]["bytes"] == sum(len(tok.decode_bytes(d[2])) for d in docs[split])
    return meta, docs


def in_order(meta, docs):
    """The texts of all documents in input order, undoing the every-k-th hold-out."""
    k, offset = meta["holdout"]["every"], meta["holdout"]["offset"]
    its = {s: iter(d[0] for d in docs[s]) for s in docs}
    n = sum(len(d) for d in docs.values())
    return [next(its["val" if i % k == offset else "train"]) for i in range(n)]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    out = tmp_path_factory.mktemp("ts") / "head"
    tinystories.main(["--data_files", shared_file("tinystories_validation_head.txt"), "--out", str(out)] + ONE)
    return out


def test_tinystories_head_is_cut_into_stories_that_decode_back(head):
    meta, docs = read(head)
    assert (meta["name"], meta["tokenizer"], meta["vocab_size"], meta["dtype"], meta["eot_id"]) == \
        ("tinystories_local", "gpt2", 50257, "uint16", 50256)
    assert meta["holdout"] == {"every": 10, "offset": pipeline.holdout_rule(0.1, 0)[1]}
    stories = in_order(meta, docs)
    text_ = shared_text("tinystories_validation_head.txt")
    # a story starts at every paragraph that begins "Once upon a time" (and at the file's start)
    assert len(stories) == 1 + sum(p.startswith("Once upon a time") for p in text_.split("\n\n")[1:]) == 714
    assert all(s.startswith("Once upon a time") for s in stories[1:]) and stories[0].startswith("Spot.")
    assert "\n\n".join(stories) == text_.strip()  # the blank line between stories is the separator
    assert 60 <= len(docs["val"]) <= 80 and all(d[1] == "" for d in docs["train"])  # no prefixes
    assert meta["splits"]["train"]["bytes"] + meta["splits"]["val"]["bytes"] + 2 * 713 == len(text_.strip().encode())


def test_two_processes_and_threads_write_the_same_bins(head, tmp_path):
    tinystories.main(["--data_files", shared_file("tinystories_validation_head.txt"), "--out", str(tmp_path),
                      "--num_proc=2", "--num_threads=2"])  # encode_ordinary_batch in 2 processes
    for f in ("train.bin", "val.bin", "train.docs.npy", "val.docs.npy"):
        assert open(tmp_path / f, "rb").read() == open(head / f, "rb").read()


def test_max_tokens_is_a_sample_of_exactly_that_size(head, tmp_path):
    meta = tinystories.main(["--data_files", shared_file("tinystories_validation_head.txt"), "--out",
                             str(tmp_path), "--max_tokens=5000"] + ONE)
    assert meta["splits"]["train"]["tokens"] == 4500 and meta["splits"]["val"]["tokens"] == 500
    _, docs = read(tmp_path)
    _, full = read(head)
    for split in ("train", "val"):  # the first documents of the full run, the last one cut to fit
        n = len(docs[split])
        assert [d[0] for d in docs[split][:-1]] == [d[0] for d in full[split][:n - 1]]
        assert full[split][n - 1][2][:len(docs[split][-1][2])] == docs[split][-1][2]


def test_eot_separated_stories_and_the_char_tokenizer(tmp_path):
    path = shared_file("tinystories_sample_cs336.txt")
    stories = [s.strip() for s in open(path).read().split("<|endoftext|>") if s.strip()]
    meta = tinystories.main(["--data_files", path, "--out", str(tmp_path), "--tokenizer=char",
                             "--val_fraction=0.5"] + ONE)
    meta, docs = read(tmp_path)
    assert meta["name"] == "tinystories_local_char" and meta["eot_id"] is None and meta["tokenizer"] == "char"
    assert in_order(meta, docs) == stories
    assert meta["chars"] == sorted(set("".join(stories))) and meta["vocab_size"] == len(meta["chars"])
    train_chars = set("".join(d[0] for d in docs["train"]))
    assert meta["val_only_chars"] == "".join(sorted(set("".join(d[0] for d in docs["val"])) - train_chars))


def test_wikitext_articles_from_the_crlf_raw_file(tmp_path):
    text_ = shared_text("wikitext-2-raw_test.txt")
    assert "\r\n" in text_
    wikitext.main(["--data_files", shared_file("wikitext-2-raw_test.txt"), "--out", str(tmp_path)] + ONE)
    meta, docs = read(tmp_path)
    assert meta["name"] == "wikitext_local"
    articles = in_order(meta, docs)
    lf = text_.replace("\r\n", "\n")
    assert "".join(articles) == lf  # lines kept exactly: articles joined are the text (LF endings)
    assert len(articles) == sum(map(wikitext.is_title, lf.splitlines(keepends=True))) == 62
    assert all(a.startswith(" = ") and not a.startswith(" = = ") for a in articles)
    assert articles[0].startswith(" = Robert Boulter = \n")


def test_books_one_per_file_with_splits_named_on_the_command_line(tmp_path):
    names = ["gutenberg_1342_pride_and_prejudice.txt", "gutenberg_1661_sherlock_holmes.txt",
             "gutenberg_11_alice_in_wonderland.txt"]
    paths = [shared_file(n) for n in names]
    meta = books.main(["--data_files", f"train={paths[0]}", f"train={paths[1]}", f"val={paths[2]}",
                       "--out", str(tmp_path), "--max_tokens=40000"] + ONE)
    meta, docs = read(tmp_path)
    assert "holdout" not in meta and meta["name"] == "books_local"
    assert (meta["splits"]["train"]["tokens"], meta["splits"]["val"]["tokens"]) == (36000, 4000)
    # train: the first 36,000 tokens of the first book (cut to fit), val: the start of Alice
    assert len(docs["train"]) == 1 and len(docs["val"]) == 1
    assert shared_text(names[0]).strip().startswith(docs["train"][0][0][:-10])
    assert shared_text(names[2]).strip().startswith(docs["val"][0][0][:-10])


def test_books_whole_files_are_documents(tmp_path):
    paths = sorted(shared_file(n) for n in ["gutenberg_11_alice_in_wonderland.txt",
                                            "gutenberg_1661_sherlock_holmes.txt"])
    text.main(["--input", *paths, "--out", str(tmp_path), "--val_fraction=0.5"] + ONE)
    meta, docs = read(tmp_path)
    assert in_order(meta, docs) == [open(p).read().strip() for p in paths]


def squad_examples(keep_unanswerable=False):
    data = json.load(open(shared_file("squad-v2.0_dev_cs224n-half.json")))["data"]
    out = []
    for article in data:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                answers = [a["text"] for a in qa["answers"]]
                if answers or keep_unanswerable:
                    a = answers[0].strip() if answers else "unanswerable"
                    out.append((p["context"].strip() + "\n", f"Q: {qa['question'].strip()}\nA: {a}\n"))
    return out


def test_squad_preloaded_context_prefix_lengths_are_exact(tmp_path):
    squad.main(["--data_files", shared_file("squad-v2.0_dev_cs224n-half.json"), "--out", str(tmp_path)] + ONE)
    meta, docs = read(tmp_path)
    expected = squad_examples()
    assert len(expected) == 2910  # 6,078 questions, 3,168 unanswerable ones left out
    got = []
    for split in ("train", "val"):
        for full, prefix, ids in docs[split]:
            assert full.startswith(prefix) and full[len(prefix):].startswith("Q: ")
            got.append((prefix, full[len(prefix):]))
    assert sorted(got) == sorted(expected)
    # split by paragraph: no val context is in train, and about a tenth of them are in val
    contexts = {s: {d[1] for d in docs[s]} for s in docs}
    assert not contexts["train"] & contexts["val"]
    assert 0.07 < len(contexts["val"]) / (len(contexts["val"]) + len(contexts["train"])) < 0.13


def test_squad_can_keep_unanswerable_questions(tmp_path):
    squad.main(["--data_files", shared_file("squad-v2.0_dev_cs224n-half.json"), "--out", str(tmp_path),
                "--unanswerable=keep", "--max_tokens=20000"] + ONE)
    meta, docs = read(tmp_path)
    assert meta["unanswerable"] == "keep"
    answers = [d[0].rsplit("\nA: ", 1)[1] for s in docs for d in docs[s][:-1]]  # the last ones are cut
    assert "unanswerable\n" in answers and len(set(answers)) > 5


STORIES = ["One day a cat sat.", "Tom had a red ball.\n\nHe threw it.", "Sue ran home.", "The sun was hot.",
           "Ben found a shell by the sea.", "A bird sang a song."]


def test_openwebtext_reads_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(tmp_path / "a.jsonl", "w") as f:
        for s in STORIES[:4]:
            f.write(json.dumps({"text": "  " + s + "\n", "url": "x"}) + "\n")
    pq.write_table(pa.table({"text": STORIES[4:]}), tmp_path / "b.parquet")
    meta = openwebtext.main(["--data_files", str(tmp_path / "a.jsonl"), str(tmp_path / "b.parquet"),
                             "--out", str(tmp_path / "out"), "--val_fraction=0.5"] + ONE)
    assert meta["name"] == "openwebtext_local" and meta["source"]["val_fraction"] == 0.5
    meta, docs = read(tmp_path / "out")
    assert in_order(meta, docs) == STORIES


def test_dolma_takes_one_document_from_each_file_in_turn(tmp_path):
    for name, stories in (("a", STORIES[:4]), ("b", STORIES[4:])):
        with gzip.open(tmp_path / f"{name}.json.gz", "wt") as f:
            for i, s in enumerate(stories):
                f.write(json.dumps({"id": f"{name}{i}", "text": s, "source": name}) + "\n")
    dolma.main(["--data_files", str(tmp_path / "a.json.gz"), str(tmp_path / "b.json.gz"),
                "--out", str(tmp_path / "out"), "--val_fraction=0.5"] + ONE)
    meta, docs = read(tmp_path / "out")
    s = STORIES
    assert in_order(meta, docs) == [s[0], s[4], s[1], s[5], s[2], s[3]]


def test_text_separators_and_file_ends(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\ntwo\nlines\n<|endoftext|>three<|endoftext|>\n\n\nfour")
    (tmp_path / "b.txt").write_text("five\n")
    for sep, want in (("eot", ["one\n\ntwo\nlines", "three", "four", "five"]),
                      ("blank", ["one", "two\nlines", "three", "four", "five"]),
                      ("line", ["one", "two", "lines", "three", "four", "five"])):
        text.main(["--input", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--doc_sep", sep,
                   "--out", str(tmp_path / sep), "--val_fraction=0.5", "--tokenizer=char"] + ONE)
        meta, docs = read(tmp_path / sep)
        assert in_order(meta, docs) == want


@pytest.mark.parametrize("tokenizer", ["gpt2", "char"])
def test_one_book_holds_out_its_last_tenth_at_a_line_boundary(tmp_path, capsys, tokenizer):
    book = shared_text("gutenberg_11_alice_in_wonderland.txt").strip()
    text.main(["--input", shared_file("gutenberg_11_alice_in_wonderland.txt"), "--out", str(tmp_path / "o"),
               f"--tokenizer={tokenizer}"] + ONE)
    said = capsys.readouterr().out
    assert said.count("too few documents (1) to hold out one in 10 for val: holding out the last 10% of the text "
                     "instead, from a line boundary") == 1
    meta, docs = read(tmp_path / "o")
    (train_text, _, _), = docs["train"]
    (val_text, _, _), = docs["val"]
    assert train_text + val_text == book and train_text.endswith("\n")  # cut at the start of a line
    assert 0.09 < len(val_text) / len(book) < 0.11


def test_few_documents_hold_out_the_last_share_and_a_single_line_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("first story\n<|endoftext|>\nsecond story, longer than the first\n")
    text.main(["--input", str(tmp_path / "a.txt"), "--out", str(tmp_path / "o"), "--tokenizer=char"] + ONE)
    _, docs = read(tmp_path / "o")  # the last document is one line: it goes to val whole
    assert [d[0] for d in docs["train"]] == ["first story"]
    assert [d[0] for d in docs["val"]] == ["second story, longer than the first"]
    (tmp_path / "b.txt").write_text("a single line of text")
    with pytest.raises(SystemExit, match=r"^error: the text is one line, which cannot be split for val"):
        text.main(["--input", str(tmp_path / "b.txt"), "--out", str(tmp_path / "b"), "--tokenizer=char"] + ONE)
    assert not os.path.exists(tmp_path / "b")


def test_a_hub_dataset_with_a_loading_script_is_read_from_its_parquet_export(tmp_path, monkeypatch, capsys):
    import datasets

    calls = []

    def load_dataset(path, *args, **kwargs):  # the hub as datasets 4+ answers for a repo with a script
        calls.append(kwargs.get("revision"))
        if kwargs.get("revision") != "refs/convert/parquet":
            raise RuntimeError("Dataset scripts are no longer supported, but found openwebtext.py")
        return datasets.Dataset.from_dict({"text": STORIES})
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    openwebtext.main(["--out", str(tmp_path / "o"), "--val_fraction=0.5"] + ONE)
    assert calls == [None, "refs/convert/parquet"]
    assert ("Skylion007/openwebtext needs a loading script, which datasets " in capsys.readouterr().out)
    _, docs = read(tmp_path / "o")
    assert sorted(d[0] for s in docs for d in docs[s]) == sorted(STORIES)


def test_train_py_reads_the_prepared_data_within_documents(tmp_path):
    import torch

    squad.main(["--data_files", shared_file("squad-v2.0_dev_cs224n-half.json"), "--out", str(tmp_path),
                "--max_tokens=30000"] + ONE)
    meta = load_meta(str(tmp_path), "squad")  # sizes agree with meta.json
    batches = Batches(str(tmp_path), meta, block_size=256, batch_size=32, device="cpu")
    x, y, _ = batches.get("train", torch.Generator().manual_seed(0))
    starts = set(np.load(tmp_path / "train.docs.npy")[:, 0].tolist())
    data = np.fromfile(tmp_path / "train.bin", dtype=meta["dtype"])
    # every window lies inside one document: it never reads past an end-of-text token
    assert all(50256 not in row[:-1] for row in x.tolist())
    # a document that fits in the context (most do) is read from its start
    assert sum(any(np.array_equal(data[s:s + 8], row[:8]) for s in starts) for row in x.numpy()) > 16


# --- failures: one line that says what to do, and no output left behind ---

def test_missing_local_file(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: .*nope\.txt not found: pass existing local files"):
        books.main(["--data_files", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")])
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize("script, what", [(tinystories, "roneneldan/TinyStories"), (wikitext, "Salesforce/wikitext"),
                                          (squad, "rajpurkar/squad_v2"), (books, "emozilla/pg19"),
                                          (openwebtext, "Skylion007/openwebtext"), (dolma, "allenai/dolma")])
def test_unreachable_hub(tmp_path, script, what):
    with pytest.raises(SystemExit) as e:
        script.main(["--out", str(tmp_path / "o")] + ONE)
    msg = str(e.value)
    assert msg.startswith("error: could not ") and what in msg and "--data_files" in msg and "\n" not in msg
    assert not os.path.exists(tmp_path / "o")


def test_failure_midway_keeps_the_old_dataset_and_leaves_no_temp_files(tmp_path):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text("".join(json.dumps({"text": s}) + "\n" for s in STORIES))
    bad.write_text('{"text": "fine"}\n{"text": broken\n')
    out = tmp_path / "out"
    openwebtext.main(["--data_files", str(good), "--out", str(out), "--val_fraction=0.5"] + ONE)
    before = {p: open(out / p, "rb").read() for p in os.listdir(out)}
    with pytest.raises(SystemExit, match=r"^error: reading .*bad.jsonl failed"):
        openwebtext.main(["--data_files", str(good), str(bad), "--out", str(out), "--val_fraction=0.5"] + ONE)
    assert {p: open(out / p, "rb").read() for p in os.listdir(out)} == before
    (tmp_path / "empty.jsonl").write_text('{"text": "  "}\n')  # whitespace only: no document
    with pytest.raises(SystemExit, match=r"^error: the val split of openwebtext_local is empty: give more text, "
                                         r"or name a file for each split \(--data_files train=A val=B\)$"):
        openwebtext.main(["--data_files", f"train={good}", f"val={tmp_path / 'empty.jsonl'}",
                          "--out", str(tmp_path / "o2")] + ONE)
    assert not os.path.exists(tmp_path / "o2")


def test_scripts_run_from_the_command_line(tmp_path):
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "prepare/squad.py", "--out", str(tmp_path / "o")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error: could not load rajpurkar")
    assert not os.path.exists(tmp_path / "o")


def test_squad_flat_rows_like_the_hubs(tmp_path):
    rows = [{"id": "1", "title": "T", "context": "The sky is blue. ", "question": "What colour is the sky?",
             "answers": {"text": ["blue", "Blue"], "answer_start": [11, 11]}},
            {"id": "2", "title": "T", "context": "The sky is blue. ", "question": "Who painted it?",
             "answers": {"text": [], "answer_start": []}},
            {"id": "3", "title": "T", "context": "Grass is green.", "question": " What is green? ",
             "answers": {"text": ["Grass"], "answer_start": [0]}}]
    (tmp_path / "flat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    squad.main(["--data_files", str(tmp_path / "flat.jsonl"), "--out", str(tmp_path / "o"), "--val_fraction=0.5",
                "--seed=1"] + ONE)
    meta, docs = read(tmp_path / "o")
    got = sorted((d[1], d[0][len(d[1]):]) for s in docs for d in docs[s])
    assert got == [("Grass is green.\n", "Q: What is green?\nA: Grass\n"),
                   ("The sky is blue.\n", "Q: What colour is the sky?\nA: blue\n")]


@pytest.mark.parametrize("streaming", [True, False])
def test_the_hub_path_on_a_local_dataset_repository(tmp_path, streaming):
    """load_dataset(hub_id) reads a local folder like a hub repository: the hub code path, offline."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = tmp_path / "repo"
    repo.mkdir()
    pq.write_table(pa.table({"text": [" " + s + "\n" for s in STORIES[:4]]}), repo / "train.parquet")
    pq.write_table(pa.table({"text": STORIES[4:]}), repo / "validation.parquet")
    meta = tinystories.main(["--hub_id", str(repo), "--out", str(tmp_path / "o"),
                             "--streaming" if streaming else "--no-streaming"] + ONE)
    assert meta["name"] == "tinystories" and "holdout" not in meta and meta["source"]["hub_id"] == str(repo)
    _, docs = read(tmp_path / "o")
    assert [d[0] for d in docs["train"]] == STORIES[:4] and [d[0] for d in docs["val"]] == STORIES[4:]
    # wikitext's hub rows are lines, cut into articles like a local file
    lines = [" = A = \n", " \n", " a text . \n", " = = Part = = \n", " more . \n", " = B = \n", " b . \n"]
    pq.write_table(pa.table({"text": lines}), repo / "train.parquet")
    pq.write_table(pa.table({"text": lines[5:]}), repo / "validation.parquet")
    wikitext.main(["--hub_id", str(repo), "--out", str(tmp_path / "w"), "--hub_config=default"] + ONE)
    _, docs = read(tmp_path / "w")
    assert [d[0] for d in docs["train"]] == ["".join(lines[:5]), "".join(lines[5:])]


def test_a_trained_bpe_learns_from_the_train_documents_and_ends_each_with_eot(tmp_path, monkeypatch):
    learned_from = []

    def train_bpe(texts, *args, **kwargs):  # the real training, on the texts it was given (kept to look at)
        learned_from.extend(texts)
        return common.train_bpe(learned_from, *args, **kwargs)

    monkeypatch.setattr(pipeline, "train_bpe", train_bpe)
    path = shared_file("tinystories_validation_head.txt")
    tinystories.main(["--data_files", path, "--tokenizer=bpe", "--vocab_size=400", "--out", str(tmp_path / "a")] + ONE)
    meta, docs = read(tmp_path / "a")  # every document decodes, ends with the end-of-text token, bytes add up
    tok = common.get_tokenizer(meta)
    assert (meta["name"], meta["tokenizer"], meta["vocab_size"]) == ("tinystories_local_bpe400", "bpe", 400)
    assert meta["eot_id"] == tok.eot_token == tok.hf.token_to_id(common.EOT)
    assert learned_from == [d[0] for d in docs["train"]]  # the train documents, none of val
    assert open(tmp_path / "a" / "tokenizer.json", encoding="utf-8").read() == meta["tokenizer_json"]
    # two tokenizer processes get the tokenizer from meta and write the same bins
    tinystories.main(["--data_files", path, "--tokenizer=bpe", "--vocab_size=400", "--out", str(tmp_path / "b"),
                      "--num_proc=2", "--num_threads=2"])
    for f in ("train.bin", "val.bin", "train.docs.npy", "val.docs.npy", "tokenizer.json"):
        assert open(tmp_path / "b" / f, "rb").read() == open(tmp_path / "a" / f, "rb").read()


def test_bpe_needs_a_vocab_size_that_holds_every_byte(tmp_path):
    for extra, says in (([], "--tokenizer bpe needs --vocab_size"), (["--vocab_size=257"], "at least 258")):
        with pytest.raises(SystemExit, match=says):
            text.main(["--input", shared_file("tinystories_sample_cs336.txt"), "--tokenizer=bpe", *extra,
                       "--out", str(tmp_path / "o")] + ONE)
    assert not os.path.exists(tmp_path / "o")
