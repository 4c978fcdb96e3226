"""Loading never runs code: a ckpt.pt (or an HF pytorch_model.bin) whose unpickling would call a function is
refused in one line by every script that reads one, and the function never runs. A path that does not exist
never goes to the Hugging Face hub."""

import os
import shutil
import time

import pytest
import torch
from conftest import train_args

import sample
import train
from helpers.checkpoint import load_checkpoint, load_source, read_model
from helpers.config import UserError
from tools import analyze, export, serve
from tools import induction as tools_induction

REFUSED = "holds objects other than tensors and plain data; loading it could run code from it, so it is refused"


class WritesMarker:
    """Unpickling this calls exec, which writes a marker file: what a malicious checkpoint could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


@pytest.fixture
def evil_run(tiny_run, tmp_path):
    """A copy of tiny_run (config.json, metrics.jsonl, a real checkpoint's keys) whose ckpt.pt also holds
    WritesMarker; returns (its folder, the marker's path)."""
    folder, marker = str(tmp_path / "evil"), str(tmp_path / "marker")
    shutil.copytree(tiny_run, folder)
    ckpt = torch.load(os.path.join(tiny_run, "ckpt.pt"), weights_only=True)
    ckpt["config"]["note"] = WritesMarker(marker)
    torch.save(ckpt, os.path.join(folder, "ckpt.pt"))
    torch.load(os.path.join(folder, "ckpt.pt"), weights_only=False)  # the file really runs code when trusted
    assert os.path.exists(marker)
    os.remove(marker)
    return folder, marker


def refuses(main, marker):
    with pytest.raises(UserError, match=REFUSED) as e:
        main()
    assert "\n" not in str(e.value) and "ckpt.pt" in str(e.value)
    assert not os.path.exists(marker)


def test_every_reader_refuses_a_checkpoint_that_holds_code(evil_run, facts_dir, tmp_path):
    folder, marker = evil_run
    refuses(lambda: load_checkpoint(os.path.join(folder, "ckpt.pt")), marker)
    refuses(lambda: read_model("resume", folder), marker)
    refuses(lambda: sample.main([f"--out_dir={folder}", "--device=cpu", "--max_new_tokens=2"]), marker)
    refuses(lambda: sample.main([f"--ckpt={folder}/ckpt.pt", "--device=cpu", "--max_new_tokens=2"]), marker)
    refuses(lambda: train.main(train_args(facts_dir, str(tmp_path / "ft"), f"--init_from={folder}", "--max_iters=1")),
            marker)
    refuses(lambda: train.main(train_args(facts_dir, str(tmp_path / "p"), f"--base={folder}/ckpt.pt",
                                          "--freeze_base=True", "--priming=True", "--max_iters=1")), marker)
    refuses(lambda: train.main(train_args(facts_dir, folder, "--init_from=resume", "--max_iters=40")), marker)
    refuses(lambda: serve.main([f"--out_dir={folder}", "--device=cpu", "--port=0"]), marker)
    refuses(lambda: analyze.main(["tokens", f"--out_dir={folder}", f"--plot_dir={tmp_path}/plots",
                                  "--text=Mibe Saro lives."]), marker)
    refuses(lambda: export.main([f"--out_dir={folder}", f"--to={tmp_path}/hf"]), marker)
    refuses(lambda: tools_induction.main(["heads", f"--out_dir={folder}", f"--plot_dir={tmp_path}/heads"]), marker)
    assert not os.path.exists(tmp_path / "ft") and not os.path.exists(tmp_path / "hf")


def test_the_repos_own_checkpoints_are_plain_data(tiny_run):
    ckpt = torch.load(os.path.join(tiny_run, "ckpt.pt"), weights_only=True)
    assert set(ckpt) >= {"model", "optimizer", "model_args", "config", "meta", "iter_num", "best_val_loss", "rng"}


def test_a_corrupt_checkpoint_is_still_called_corrupt(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_checkpoint(str(path))


@pytest.fixture(scope="module")
def hf_bin_dirs(tmp_path_factory):
    """A tiny random GPT-2 in HF's format with pickled weights (pytorch_model.bin, no safetensors), and a copy whose
    pytorch_model.bin also holds WritesMarker: (plain, evil, marker)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64))
    root = tmp_path_factory.mktemp("hfbin")
    plain, evil, marker = str(root / "plain"), str(root / "evil"), str(root / "marker")
    hf.save_pretrained(plain, safe_serialization=False)
    sd = {k: v.contiguous() for k, v in hf.state_dict().items()}
    for f in os.listdir(plain):  # (recent transformers write safetensors whatever the flag says)
        if f.endswith((".safetensors", ".bin", ".json")) and f != "config.json":
            os.remove(os.path.join(plain, f))
    torch.save(sd, os.path.join(plain, "pytorch_model.bin"))
    shutil.copytree(plain, evil)
    torch.save({**sd, "note": WritesMarker(marker)}, os.path.join(evil, "pytorch_model.bin"))
    return plain, evil, marker


def test_an_hf_folder_with_pickled_weights_loads_when_plain_and_is_refused_when_it_holds_code(hf_bin_dirs, tmp_path):
    plain, evil, marker = hf_bin_dirs
    assert load_source(plain)["model_args"]["n_layer"] == 2
    with pytest.raises(UserError, match=f"pytorch_model.bin {REFUSED}") as e:
        load_source(evil)
    assert "\n" not in str(e.value) and not os.path.exists(marker)
    with pytest.raises(UserError, match=REFUSED):
        sample.main([f"--init_from={evil}", "--device=cpu", "--max_new_tokens=2"])
    assert not os.path.exists(marker)


@pytest.mark.parametrize("spec", ["./no-such-run", "/no/such/run", "~/no-such-run", "runs/a/b", "no-such-run",
                                  "bad..name/x", "out/ckpt.pt", "org/name\\x"])
def test_a_path_that_does_not_exist_is_one_line_at_once(spec, facts_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("helpers.checkpoint.hub_reachable", lambda: pytest.fail("asked the hub"))
    t = time.time()
    with pytest.raises(UserError, match=r"^no (model|checkpoint) at "):
        train.main(train_args(facts_dir, str(tmp_path / "o"), f"--init_from={spec}", "--max_iters=1"))
    assert time.time() - t < 5 and not os.path.exists(tmp_path / "o")


def test_a_hub_id_without_a_network_is_one_line_at_once(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)  # as on a machine with no network
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://hub.invalid")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))  # nothing downloaded before
    for spec in ("gpt2", "some-org/some-model"):
        t = time.time()
        with pytest.raises(UserError, match=f"could not load '{spec}' with transformers: the Hugging Face hub "
                                            f"cannot be reached") as e:
            load_source(spec)
        assert "\n" not in str(e.value) and time.time() - t < 10



def test_a_hub_id_downloaded_before_loads_without_a_network(hf_gpt2_dir, monkeypatch, tmp_path):
    snapshot = tmp_path / "models--some-org--tiny-gpt2" / "snapshots" / "abc123"
    shutil.copytree(hf_gpt2_dir, snapshot)
    (tmp_path / "models--some-org--tiny-gpt2" / "refs").mkdir()
    (tmp_path / "models--some-org--tiny-gpt2" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))  # as huggingface_hub lays it out
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://hub.invalid")
    assert load_source("some-org/tiny-gpt2")["model_args"]["n_embd"] == 32
