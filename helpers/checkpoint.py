"""
Checkpoint I/O: what a run folder holds, written so that nothing already there is ever half-written.

    out_dir/ckpt.pt        model, optimizer, configs, dataset meta, iteration, RNG states
    out_dir/config.json    the resolved configuration of the run
    out_dir/metrics.jsonl  one JSON line per evaluation (the plots are drawn from it)

Files are written to a temp file and renamed onto their name, so a crash leaves the old file or the
new one, never a broken one; metrics.jsonl grows by one whole line per evaluation (strict JSON: a
NaN is written null). A full disk or a missing permission is one line naming the file, and leaves
no temp file behind; a temp file left by a killed save is removed when the next run starts.
"""

import errno
import glob
import json
import math
import os
import sys
from dataclasses import asdict

import torch

from helpers.config import UserError
from helpers.data import check_token_ids
from model import GPT, GPTConfig


def write_error(e, path):
    """An OSError while writing path as a UserError: what happened, in the system's words, where, and
    what to do."""
    what = (e.strerror or str(e)).lower()
    todo = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "choose a folder you can write to"
    kept = f"; the {os.path.basename(path)} there before is untouched" if os.path.isfile(path) else ""
    return UserError(f"{what} while writing {path}: {todo} and run again{kept}")


def atomic_write(path, write):
    """write(tmp_path), then rename onto path: readers see the old file or the new one, never half.
    If anything fails the temp file is removed; a full disk or a missing permission is one line."""
    tmp = path + ".tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise write_error(e, path) from None
        raise


def atomic_write_text(path, text):
    """atomic_write for a text."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def load_checkpoint(path):
    """torch.load with a one-line error for a missing, corrupt or truncated file."""
    if not os.path.exists(path):
        raise UserError(f"no checkpoint at {path}: train one first, or point --out_dir at a run that has one")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        ckpt["model"], ckpt["model_args"]  # noqa: B018 (must exist)
    except Exception as e:
        raise UserError(f"could not read checkpoint {path} ({type(e).__name__}); it is corrupt or truncated") from None
    # checkpoints from torch.compile'd models (e.g. nanoGPT's) carry an _orig_mod. prefix
    ckpt["model"] = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    return ckpt


def model_from_checkpoint(ckpt):
    """A GPT built from a checkpoint's config, with its weights."""
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    return model


def read_metrics(out_dir):
    """The rows of out_dir/metrics.jsonl, oldest first ([] when there is none). A torn last line (a
    write cut short by a full disk or a kill) is left out with a one-line warning."""
    path = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
    rows = []
    for n, line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n != lines[-1][0]:
                raise UserError(f"line {n} of {path} is not JSON: delete that line (or the file) and run again")
            print(f"warning: ignoring the torn last line of {path} (a write that was cut short)", file=sys.stderr)
    return rows


def json_line(row):
    """One row as a line of strict JSON: NaN and infinities (a diverged eval) become null."""
    def finite(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, list):
            return [finite(x) for x in v]
        return {k: finite(x) for k, x in v.items()} if isinstance(v, dict) else v
    return json.dumps(finite(row), allow_nan=False) + "\n"


def save_metrics_row(out_dir, row):
    """Append one evaluation's row to out_dir/metrics.jsonl, as one line."""
    path = os.path.join(out_dir, "metrics.jsonl")
    try:
        with open(path, "a") as f:
            f.write(json_line(row))
    except OSError as e:
        raise write_error(e, path) from None


def same_tokens(meta_a, meta_b):
    """Whether two datasets (or a checkpoint's and a dataset's meta) use the same tokenizer and vocabulary."""
    return (meta_a["tokenizer"], meta_a["vocab_size"]) == (meta_b["tokenizer"], meta_b["vocab_size"])


def resolve_model(cfg, mcfg, given, meta, data_dir):
    """The run's GPTConfig and the checkpoints it starts from: (config, checkpoint to resume, base to freeze).

    scratch: the model keys as given, vocab_size from the data unless set, and never over an existing
    checkpoint (unless overwrite). resume: out_dir/ckpt.pt's own config; changing a model key is
    refused. freeze_base: base_ckpt's config plus the priming keys given here.
    """
    ckpt_path = os.path.join(cfg.out_dir, "ckpt.pt")
    ckpt = base = None
    if cfg.init_from == "resume":
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.get("meta") and not same_tokens(ckpt["meta"], meta):
            raise UserError(f"checkpoint was trained on {ckpt['meta']['tokenizer']} tokens (vocab "
                            f"{ckpt['meta']['vocab_size']}) but {data_dir} holds {meta['tokenizer']} (vocab "
                            f"{meta['vocab_size']}): use the same --dataset")
        changed = [k for k in given if k in ckpt["model_args"] and getattr(mcfg, k) != ckpt["model_args"][k]]
        if changed:
            raise UserError(f"cannot change model key(s) {', '.join(changed)} when resuming")
        was = ckpt.get("config", {}).get("train", {}).get("optimizer", "adamw")  # (nanoGPT's have no config)
        if was != cfg.optimizer:
            raise UserError(f"the checkpoint was trained with optimizer={was}: pass --optimizer={was} to resume it")
        mcfg = GPTConfig(**ckpt["model_args"])
    elif os.path.exists(ckpt_path) and not cfg.overwrite:
        raise UserError(f"{ckpt_path} already exists: pass --init_from=resume to continue it, "
                        f"--overwrite=True to replace it, or choose another --out_dir")
    elif cfg.freeze_base:
        base = load_checkpoint(cfg.base_ckpt)
        changed = [k for k in given if hasattr(mcfg, k) and not k.startswith("priming")
                   and getattr(mcfg, k) != base["model_args"].get(k)]
        if changed:
            raise UserError(f"freeze_base keeps the base model as it is: only priming keys may be set, "
                            f"not {', '.join(changed)}")
        if not mcfg.priming:
            raise UserError("freeze_base trains bias layers: pass --priming=True")
        if base.get("meta") and not same_tokens(base["meta"], meta):
            raise UserError(f"{cfg.base_ckpt} was trained on {base['meta']['tokenizer']} tokens but {data_dir} "
                            f"holds {meta['tokenizer']}: prime on the base model's own dataset")
        priming_keys = {k: v for k, v in asdict(mcfg).items() if k.startswith("priming")}
        mcfg = GPTConfig(**{**base["model_args"], **priming_keys})
    elif "vocab_size" not in given:
        mcfg = GPTConfig(**{**asdict(mcfg), "vocab_size": meta["vocab_size"]})
    if mcfg.vocab_size < meta["vocab_size"]:
        raise UserError(f"the model's vocab_size {mcfg.vocab_size} is smaller than the data's "
                        f"{meta['vocab_size']} ({data_dir}/meta.json)")
    check_token_ids(data_dir, meta, mcfg.vocab_size)
    return mcfg, ckpt, base


def build_model(mcfg, ckpt=None, base=None, base_path="", freeze_base=False):
    """The run's GPT: fresh, or with the weights of the checkpoint it resumes, or of the base model it
    primes (base). With freeze_base only the bias layers are trainable, also when resuming."""
    model = GPT(mcfg)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    if base is not None:
        missing, unexpected = model.load_state_dict(base["model"], strict=False)
        if unexpected or any(not k.startswith("bias_layers.") for k in missing):
            raise UserError(f"{base_path} does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if freeze_base:
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("bias_layers.")
    return model


def save_checkpoint(path, model, optimizer, config_record, meta, iter_num, best_val_loss, gen, device_type):
    """Everything needed to continue exactly: weights, optimizer, configs, data meta, random streams.
    Weights that are not finite are never saved: the checkpoint there stays the last good one."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"the weights are not finite ({bad[0]}, ...): not saving them over {path}; the run diverged, "
                        f"try a lower --learning_rate or --grad_clip")
    ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "model_args": config_record["model"],
            "config": config_record, "iter_num": iter_num, "best_val_loss": best_val_loss, "meta": meta,
            "rng": {"torch": torch.get_rng_state(), "batches": gen.get_state(),
                    "cuda": torch.cuda.get_rng_state() if device_type == "cuda" else None}}

    def write(tmp):
        with open(tmp, "wb") as f:  # through a Python file, a full disk is an OSError that says so
            torch.save(ckpt, f)
    atomic_write(path, write)


def restore_rng(ckpt, gen, device_type):
    """Put every random stream back where save_checkpoint found it: batches, dropout, CUDA."""
    gen.set_state(ckpt["rng"]["batches"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if device_type == "cuda" and ckpt["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"])


def start_run_folder(out_dir, config_record, keep_until=None):
    """Write config.json, and start metrics.jsonl afresh; on resume (keep_until) keep its rows up to
    the checkpoint's iteration, so the file describes exactly the run that continues (a torn last
    line dropped). Temp files left by a save that was killed are removed first."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        for tmp in glob.glob(os.path.join(glob.escape(out_dir), "*.tmp")):
            os.remove(tmp)
            print(f"removed {tmp}, left by an interrupted save")
    except OSError as e:
        raise write_error(e, out_dir) from None
    atomic_write_text(os.path.join(out_dir, "config.json"), json.dumps(config_record, indent=1))
    kept = [r for r in read_metrics(out_dir) if keep_until is not None and r["iter"] <= keep_until]
    atomic_write_text(os.path.join(out_dir, "metrics.jsonl"), "".join(json_line(r) for r in kept))
