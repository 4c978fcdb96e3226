"""tools/export.py never deletes what it did not write: not the run it reads, not a folder of the
user's, and no temp folder is left behind when a write fails or is interrupted."""

import errno
import os
import shutil

import pytest

from helpers.config import Interrupted, UserError
from tools import export


def listing(folder):
    """{relative path: bytes} of every file under folder."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = open(p, "rb").read()
    return out


@pytest.fixture
def run(tiny_run, tmp_path):
    """A copy of the tiny run, alone in its own parent folder."""
    path = str(tmp_path / "runs" / "run")
    shutil.copytree(tiny_run, path)
    return path


@pytest.mark.parametrize("to", ["{run}", "{run}/", "{run}/hf", "{parent}", "{parent}/.."])
def test_export_never_writes_into_the_folder_it_reads_from(run, to):
    before = listing(os.path.dirname(run))
    dest = to.format(run=run, parent=os.path.dirname(run))
    with pytest.raises(UserError, match="the folder the model is read from.*choose a --to outside it"):
        export.main([f"--out_dir={run}", f"--to={dest}", "--overwrite=True"])
    with pytest.raises(UserError, match="the folder the model is read from"):  # a run folder as init_from, too
        export.main([f"--init_from={run}", f"--to={dest}", "--overwrite=True"])
    assert listing(os.path.dirname(run)) == before  # ckpt.pt, metrics and config all there, unchanged


def test_overwrite_replaces_only_an_earlier_export(run, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own file")
    with pytest.raises(UserError, match="was not written by tools/export.py.*choose another --to, or move it away"):
        export.main([f"--out_dir={run}", f"--to={mine}", "--overwrite=True"])
    assert listing(mine) == {"notes.txt": b"the user's own file"}
    (tmp_path / "a-file").write_text("x")  # a file at --to, too
    with pytest.raises(UserError, match="was not written by tools/export.py"):
        export.main([f"--out_dir={run}", f"--to={tmp_path / 'a-file'}", "--overwrite=True"])
    assert (tmp_path / "a-file").read_text() == "x"

    hf = str(tmp_path / "hf")
    export.main([f"--out_dir={run}", f"--to={hf}"])
    assert os.path.isfile(os.path.join(hf, export.MARKER))
    with pytest.raises(UserError, match="already exists: pass --overwrite=True"):
        export.main([f"--out_dir={run}", f"--to={hf}"])
    export.main([f"--out_dir={run}", f"--to={hf}", "--overwrite=True"])  # an earlier export: replaced
    assert {"config.json", "model.safetensors", "meta.json", export.MARKER} <= set(os.listdir(hf))
    assert sorted(os.listdir(tmp_path)) == ["a-file", "hf", "mine", "runs"]  # no temp or old folder left


def fail_while_writing(monkeypatch, error):
    """save_pretrained writes part of a file, then raises error (a full disk, Ctrl-C)."""
    def save_pretrained(self, folder, **kwargs):
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            f.write(b"half a model")
        raise error
    monkeypatch.setattr("transformers.GPT2LMHeadModel.save_pretrained", save_pretrained)


@pytest.mark.parametrize("error, match", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), r"^no space left on device while writing .*hf: free some space"),
    (KeyboardInterrupt(), r"^interrupted: nothing written at .*hf$"),
    (RuntimeError("Error while serializing: IoError(StorageFull)"), r"^could not write .*hf \(RuntimeError"),
])
@pytest.mark.parametrize("earlier", [False, True])
def test_a_failed_export_leaves_no_temp_folder_and_keeps_an_earlier_one(run, tmp_path, monkeypatch, error, match,
                                                                        earlier):
    out = tmp_path / "exports"
    hf = str(out / "hf")
    if earlier:
        export.main([f"--out_dir={run}", f"--to={hf}"])
    before = listing(out) if earlier else {}
    fail_while_writing(monkeypatch, error)
    with pytest.raises(UserError, match=match) as e:
        export.main([f"--out_dir={run}", f"--to={hf}", f"--overwrite={earlier}"])
    assert "\n" not in str(e.value)
    assert (e.value.status == 130) == isinstance(error, KeyboardInterrupt)
    assert isinstance(e.value, Interrupted) == isinstance(error, KeyboardInterrupt)
    assert listing(out) == before  # the earlier export as it was, or nothing
    assert os.listdir(out) == (["hf"] if earlier else [])  # no hf.tmp-... left


def test_a_destination_you_cannot_write_to_is_one_line_and_leaves_nothing(run, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: refuse the folder's writes as a read-only one would
        real_mkdir = os.mkdir

        def mkdir(path, *args, **kwargs):
            if str(path).startswith(str(locked)):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_mkdir(path, *args, **kwargs)
        monkeypatch.setattr(os, "mkdir", mkdir)
    else:
        locked.chmod(0o555)
    try:
        with pytest.raises(UserError, match=r"^permission denied while writing .*locked/hf: choose a folder you can"):
            export.main([f"--out_dir={run}", f"--to={locked / 'hf'}"])
    finally:
        locked.chmod(0o755)
    assert os.listdir(locked) == []
