"""prepare/recall.py: associative-recall documents with a fixed layout, so each answer has its own position."""

import json
import os

import numpy as np
import pytest

from prepare import recall


def test_every_document_asks_keys_of_its_pairs_and_answers_sit_at_fixed_positions(tmp_path):
    recall.main(["--train_docs=300", "--val_docs=20", f"--out={tmp_path}"])
    meta = json.load(open(tmp_path / "meta.json"))
    words = meta["words"]
    for split, n in (("train", 300), ("val", 20)):
        ids = np.fromfile(tmp_path / f"{split}.bin", dtype=meta["dtype"])
        docs = np.load(tmp_path / f"{split}.docs.npy")
        assert len(docs) == n and len(ids) == 19 * n  # 2 pairs (3 tokens each) + 3 questions (4 each) + <eot>
        for doc in ids.reshape(n, 19)[:50]:
            text = [words[i] for i in doc]
            pairs = {text[0]: text[1], text[3]: text[4]}
            assert len(pairs) == 2 and text[-1] == "<eot>"  # distinct keys
            for t in (7, 11, 15):  # the position that predicts an answer holds the asked key
                assert text[t - 1] == "?" and text[t + 1] == pairs[text[t]]
    first = np.fromfile(tmp_path / "train.bin", dtype=meta["dtype"])
    recall.main(["--train_docs=300", "--val_docs=20", f"--out={tmp_path / 'again'}"])
    assert np.array_equal(first, np.fromfile(tmp_path / "again" / "train.bin", dtype=meta["dtype"]))  # seeded


@pytest.mark.parametrize("argv", [["--pairs=0"], ["--pairs=41"], ["--queries=0"], ["--values=1"]])
def test_bad_sizes_are_one_line_errors_before_anything_is_written(tmp_path, argv):
    with pytest.raises(SystemExit, match="error: need 1 <= --pairs"):
        recall.main([*argv, f"--out={tmp_path / 'x'}"])
    assert not os.path.exists(tmp_path / "x")
