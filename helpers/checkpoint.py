"""
Checkpoint I/O: what a run folder holds, written so that nothing already there is ever half-written.

    out_dir/ckpt.pt        model, optimizer, configs, dataset meta, iteration, RNG states; a run that
                           trains parts added to a frozen base (LoRA, freeze_base) stores only those
                           parts and names its base, with the sha256 of the base's files
    out_dir/config.json    the resolved configuration of the run
    out_dir/metrics.jsonl  one JSON line per evaluation (the plots are drawn from it)

Files are written to a temp file and renamed onto their name, so a crash leaves the old file or the
new one, never a broken one; metrics.jsonl grows by one whole line per evaluation (strict JSON: a
NaN is written null). A full disk or a missing permission is one line naming the file, and leaves
no temp file behind; a temp file left by a killed save is removed when the next run starts.
"""

import errno
import glob
import hashlib
import json
import math
import os
import pickle
import re
import socket
import sys
from dataclasses import asdict, fields, replace

import torch

from helpers.config import UserError
from helpers.data import check_token_ids
from model import GPT, NEW_PARAMS, GPTConfig

GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")  # OpenAI's GPT-2 on the Hugging Face hub
GPT2_META = {"tokenizer": "gpt2", "vocab_size": 50257, "eot_id": 50256}  # their tokens: tiktoken's GPT-2 BPE
# what fine-tuning may set on top of another model's config: keys that keep its weights meaningful
FINETUNE_KEYS = ("dropout", "block_size", "attn_impl", "lora_rank", "lora_alpha", "priming")


def write_error(e, path):
    """An OSError while writing path as a UserError: what happened, in the system's words, where, and
    what to do."""
    what = (e.strerror or str(e)).lower()
    todo = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else \
        "raise the file-size limit (ulimit -f)" if e.errno == errno.EFBIG else \
        "choose a folder you can write to"
    kept = f"; the {os.path.basename(path)} there before is untouched" if os.path.isfile(path) else ""
    return UserError(f"{what} while writing {path}: {todo} and run again{kept}")


def os_error_in(e):
    """The OSError behind e, if any: torch.save reports a write that failed (a full disk, the file-size
    limit) as a RuntimeError from its zip writer, raised while handling the OSError."""
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    return e


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
        if isinstance(e, Exception) and os_error_in(e) is not None:
            raise write_error(os_error_in(e), path) from None
        raise


def atomic_write_text(path, text):
    """atomic_write for a text."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def refused_code(path, e):
    """The one-line error for a file that torch's weights-only unpickler refused because it names a function or
    class (which unpickling would call), or None when e is some other unpickling error (a corrupt file)."""
    msg = str(e)
    why = msg.partition("WeightsUnpickler error:")[2]  # (after torch's general advice)
    if "Weights only load failed" not in msg or not re.search(r"GLOBAL|add_safe_globals|reduce", why):
        return None
    named = re.search(r"GLOBAL (\S+?)(?: |$)", msg)
    named = f"it names {named.group(1)}; " if named else ""
    return UserError(f"{path} holds objects other than tensors and plain data; loading it could run code from it, "
                     f"so it is refused ({named}if you trust where it came from, load it in Python with "
                     f"torch.load, weights_only set to False, and save only its tensors and plain values)")


def load_checkpoint(path):
    """torch.load with a one-line error for a missing, corrupt or truncated file. weights_only=True: only
    tensors and plain data (numbers, strings, lists, tuples, dicts) are unpickled, so loading never runs code."""
    if not os.path.exists(path):
        raise UserError(f"no checkpoint at {path}: train one first, or point --out_dir at a run that has one")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        ckpt["model"], ckpt["model_args"]  # noqa: B018 (must exist)
    except Exception as e:
        refused = refused_code(path, e) if isinstance(e, pickle.UnpicklingError) else None
        raise refused or UserError(f"could not read checkpoint {path} ({type(e).__name__}); it is corrupt or truncated") \
            from None
    # checkpoints from torch.compile'd models (e.g. nanoGPT's) carry an _orig_mod. prefix
    ckpt["model"] = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    if "base" in ckpt:  # adapters only: every reader gets the whole model, rebuilt from the base
        ckpt["model"] = with_base(ckpt, path)
    return ckpt


# --- adapter checkpoints: what a LoRA or freeze_base run trains, beside a reference to its frozen base ---

def sha256_file(path):
    """The sha256 of a file's bytes, in hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def hf_dir_files(folder):
    """The files of an HF directory that decide its model: the weights (safetensors or .bin, shards and their
    index) and config.json."""
    names = [n for n in sorted(os.listdir(folder)) if n.endswith((".safetensors", ".bin", ".index.json"))]
    return names + ["config.json"]


def base_reference(spec):
    """What an adapter checkpoint records about its base, with the sha256 of the files it was read from
    (hashed once, when the run starts): a checkpoint file or a run folder's ckpt.pt ("file"), an HF
    directory ("hf_dir"), or a hub name ("hub": the files of the copy downloaded into the hub's cache,
    and its revision; no hash when no copy is there, then only the name is checked)."""
    if os.path.isfile(os.path.join(spec, "ckpt.pt")) or os.path.isfile(spec):
        path = os.path.abspath(os.path.join(spec, "ckpt.pt") if os.path.isdir(spec) else spec)
        return {"kind": "file", "spec": spec, "path": path, "sha256": {os.path.basename(path): sha256_file(path)}}
    if os.path.isfile(os.path.join(spec, "config.json")):
        path = os.path.abspath(spec)
        return {"kind": "hf_dir", "spec": spec, "path": path,
                "sha256": {n: sha256_file(os.path.join(path, n)) for n in hf_dir_files(path)}}
    folder = hub_snapshot(spec)
    return {"kind": "hub", "spec": spec, "path": spec, "revision": folder and os.path.basename(folder),
            "sha256": folder and {n: sha256_file(os.path.join(folder, n)) for n in hf_dir_files(folder)}}


def hub_snapshot(spec, revision=None):
    """The hub cache's folder of spec at revision (None: its newest download), or None when it is not there;
    never asks the hub."""
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(spec, revision=revision, local_files_only=True)
    except (OSError, ValueError):
        return None


def current_hashes(ref, folder=None):
    """The sha256 of the files ref names, as they are now (a hub base: in folder, or the newest download);
    None when the base is not there."""
    if ref["kind"] == "file":
        return {os.path.basename(ref["path"]): sha256_file(ref["path"])} if os.path.isfile(ref["path"]) else None
    folder = ref["path"] if ref["kind"] == "hf_dir" else folder or hub_snapshot(ref["path"])
    if folder is None or not os.path.isfile(os.path.join(folder, "config.json")):
        return None
    return {n: sha256_file(os.path.join(folder, n)) for n in hf_dir_files(folder)}


def check_base(ref, now, path):
    """A one-line error when the base that ref records is missing (now None) or its files changed since."""
    hub = ref["kind"] == "hub"
    where = f"{ref['path']} (Hugging Face hub)" if hub else ref["path"]
    if now is None:
        raise UserError(f"{path} holds only the trained parameters of a model based on {where}, which is missing: "
                        f"put that base back there, or train again on a base that exists")
    if now != ref["sha256"]:
        name = next(n for n in ref["sha256"] if now.get(n) != ref["sha256"][n])
        todo = f"download revision {ref['revision']} again" if hub else "put back the base it was trained on"
        raise UserError(f"{path} holds only the trained parameters of a model based on {where}, whose {name} has "
                        f"changed since (sha256 {ref['sha256'][name][:12]} then, {now.get(name, 'none')[:12]} now): "
                        f"{todo}, or train again on this one")


def with_base(ckpt, path):
    """The whole state dict of an adapter checkpoint: its base (refused in one line when missing or changed
    since: other weights under the same adapters are another model), built as the run built it (a cropped
    block_size, new parts at their init), with the checkpoint's trained parameters loaded over it. A hub
    base is read from the cached copy of the recorded revision when it is there, else by its name."""
    ref = ckpt["base"]
    if ref["kind"] != "hub":  # a file or a folder: checked before it is read
        check_base(ref, current_hashes(ref), path)
        base = load_source(ref["path"])
    else:
        folder = ref["revision"] and hub_snapshot(ref["path"], ref["revision"])
        base = load_source(folder or ref["path"])  # (by its name: from the hub, or the newest download)
        if ref["sha256"]:
            check_base(ref, current_hashes(ref, folder), path)
    with torch.random.fork_rng(devices=[]):  # (building draws the new parts' init: readers' seeds stay as they were)
        model = on_base(GPTConfig(**ckpt["model_args"]), base, ref["spec"])
    unexpected = [k for k in ckpt["model"] if k not in model.state_dict()]
    if unexpected:
        raise UserError(f"could not read checkpoint {path}: its parameters {unexpected[:3]} are not in the model "
                        f"its model_args describe; it is corrupt")
    model.load_state_dict(ckpt["model"], strict=False)
    return model.state_dict()


def model_from_checkpoint(ckpt, **overrides):
    """A GPT built from a checkpoint's config (overrides: keys that change no weight, e.g. attn_impl), with its weights."""
    model = GPT(GPTConfig(**{**ckpt["model_args"], **overrides}))
    model.load_state_dict(ckpt["model"])
    return model


def hub_id(spec):
    """Whether spec can only mean a model on the Hugging Face hub: a GPT-2 name, or "org/name" that is not a
    path (no leading ".", "/" or "~", one "/", no "\\", no ".pt") and that the hub accepts as a name."""
    if spec in GPT2_NAMES:
        return True
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1 or "\\" in spec or spec.endswith(".pt"):
        return False
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    try:
        validate_repo_id(spec)
    except HFValidationError:
        return False
    return True


def hub_reachable(timeout=3.0):
    """Whether the Hugging Face hub answers at all (a quick connect): without a network, transformers retries for
    about a minute before it gives up. True when offline mode is off but a proxy is set (the proxy decides)."""
    from urllib.parse import urlparse

    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def from_hub_cache(spec):
    """The local folder of a hub model downloaded before, for when the hub cannot be reached (one line if none)."""
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(spec, local_files_only=True)
    except (OSError, ValueError):
        raise UserError(f"could not load {spec!r} with transformers: the Hugging Face hub cannot be reached (no "
                        f"network, or HF_HUB_OFFLINE is set) and no copy was downloaded before: connect to the "
                        f"internet once, or give a run folder, a checkpoint file or a local HF directory") from None


def load_source(spec):
    """The model to start from, as a checkpoint-like dict {model, model_args, meta}: a checkpoint file, a run
    folder (its ckpt.pt), a GPT-2 name from the Hugging Face hub ("gpt2", "gpt2-xl", "org/name"), or a local
    directory in HF's GPT-2 format (tools/export.py writes one; its meta.json, when present, names the
    tokenizer, else it is GPT-2's). A path that does not exist is one line at once, never a hub request."""
    if os.path.isfile(os.path.join(spec, "ckpt.pt")):
        return load_checkpoint(os.path.join(spec, "ckpt.pt"))
    if os.path.isfile(spec) or spec.endswith(".pt"):
        return load_checkpoint(spec)
    local = os.path.isfile(os.path.join(spec, "config.json"))
    if not local and (os.path.exists(spec) or not hub_id(spec)):
        raise UserError(f"no model at {spec!r}: give a run folder, a checkpoint file, one of {', '.join(GPT2_NAMES)}, "
                        f"or a directory in HF's GPT-2 format (config.json and weights)")
    folder = spec if local or hub_reachable() else from_hub_cache(spec)
    try:
        model = GPT.from_pretrained(folder)
    except pickle.UnpicklingError as e:  # a pytorch_model.bin that transformers loads with weights_only=True
        bins = glob.glob(os.path.join(glob.escape(folder), "*.bin"))
        raise refused_code(bins[0] if len(bins) == 1 else folder, e) or \
            UserError(f"could not load {spec!r} with transformers: its weights are corrupt ({one_line(e)})") from None
    except (OSError, ValueError, KeyError) as e:  # (the hub's errors are OSErrors: no such model, no connection)
        raise UserError(f"could not load {spec!r} with transformers: {one_line(e)}") from None
    meta_path = os.path.join(folder, "meta.json")
    meta = json.load(open(meta_path)) if os.path.isfile(meta_path) else GPT2_META
    if model.config.vocab_size < meta["vocab_size"]:
        raise UserError(f"{spec} has {model.config.vocab_size} token embeddings, fewer than the "
                        f"{meta['vocab_size']} of its tokenizer ({meta['tokenizer']}): add a meta.json naming its tokenizer")
    return {"model": model.state_dict(), "model_args": asdict(model.config), "meta": meta}


def one_line(e):
    """An exception's first line (its type when it has no message)."""
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def read_model(init_from, out_dir, ckpt=""):
    """What sample.py and the tools read: out_dir's checkpoint (or ckpt) for "resume", else load_source."""
    if init_from == "resume":
        return load_checkpoint(ckpt or os.path.join(out_dir, "ckpt.pt"))
    return load_source(init_from)


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
    """Whether two datasets (or a checkpoint's and a dataset's meta) use the same tokenizer and vocabulary.
    Two trained BPEs of one size are the same only with the same tokens and merges (learned from the same text)."""
    if (meta_a["tokenizer"], meta_a["vocab_size"]) != (meta_b["tokenizer"], meta_b["vocab_size"]):
        return False
    return meta_a["tokenizer"] != "bpe" or bpe_model(meta_a) == bpe_model(meta_b)


def bpe_model(meta):
    """A trained BPE's tokens and merges, from the tokenizer.json a meta carries."""
    return json.loads(meta["tokenizer_json"])["model"]


def resolve_model(cfg, mcfg, given, meta, data_dir):
    """The run's GPTConfig and the checkpoints it starts from: (config, checkpoint to resume, base weights).

    scratch: the model keys as given, vocab_size from the data unless set, and never over an existing
    checkpoint (unless overwrite). resume: out_dir/ckpt.pt's own config; changing a model key is
    refused. Fine-tuning (init_from=gpt2, an HF directory, a run folder): that model's config plus
    the FINETUNE_KEYS given here. freeze_base: base's config plus the priming keys given here.
    """
    ckpt_path = os.path.join(cfg.out_dir, "ckpt.pt")
    ckpt = base = None
    if cfg.init_from == "resume":
        ckpt = load_checkpoint(cfg.resume_from or ckpt_path)  # resume_from: a cooldown branch's start
        check_tokens(ckpt, meta, "the checkpoint", data_dir)
        changed = [k for k in given if k in ckpt["model_args"] and getattr(mcfg, k) != ckpt["model_args"][k]]
        if changed:
            raise UserError(f"cannot change model key(s) {', '.join(changed)} when resuming")
        was = ckpt.get("config", {}).get("train", {}).get("optimizer", "adamw")  # (nanoGPT's have no config)
        if was != cfg.optimizer:
            raise UserError(f"the checkpoint was trained with optimizer={was}: pass --optimizer={was} to resume it")
        mcfg = GPTConfig(**ckpt["model_args"])
    elif os.path.exists(ckpt_path) and not cfg.overwrite and not cfg.eval_only:
        raise UserError(f"{ckpt_path} already exists: pass --init_from=resume to continue it, "
                        f"--overwrite=True to replace it, or choose another --out_dir")
    elif cfg.freeze_base or cfg.init_from != "scratch":
        source = cfg.base if cfg.freeze_base else cfg.init_from
        base = load_source(source)
        check_tokens(base, meta, source, data_dir)
        keep = ("priming",) if cfg.freeze_base else FINETUNE_KEYS
        model_keys = {f.name for f in fields(GPTConfig)}
        changed = [k for k in given if k in model_keys and not k.startswith(keep)
                   and getattr(mcfg, k) != base["model_args"].get(k, getattr(GPTConfig, k))]
        if changed:
            what = "freeze_base keeps the base model as it is: only priming keys may be set" if cfg.freeze_base else \
                f"init_from={source} keeps that model's architecture: only {', '.join(FINETUNE_KEYS)} keys may be set"
            raise UserError(f"{what}, not {', '.join(changed)}")
        if cfg.freeze_base and not mcfg.priming:
            raise UserError("freeze_base trains bias layers: pass --priming=True")
        if mcfg.block_size > base["model_args"]["block_size"] and "block_size" in given:
            raise UserError(f"block_size can only shrink when fine-tuning: {source} has "
                            f"{base['model_args']['block_size']} positions, got {mcfg.block_size}")
        mcfg = GPTConfig(**{**base["model_args"], **{k: getattr(mcfg, k) for k in given if k in model_keys}})
    elif "vocab_size" not in given:
        mcfg = GPTConfig(**{**asdict(mcfg), "vocab_size": meta["vocab_size"]})
    if mcfg.vocab_size < meta["vocab_size"]:
        raise UserError(f"the model's vocab_size {mcfg.vocab_size} is smaller than the data's "
                        f"{meta['vocab_size']} ({data_dir}/meta.json)")
    if mcfg.lora_rank and ckpt is None and (base is None or cfg.freeze_base):
        raise UserError("lora_rank trains adapters on the frozen weights of another model: pass "
                        "--init_from=gpt2 (or an HF directory, a run folder or a checkpoint file)")
    if mcfg.lora_rank and cfg.optimizer == "muon":
        raise UserError("LoRA's adapters are low-rank matrices, which Muon does not optimize: use --optimizer=adamw")
    check_token_ids(data_dir, meta, mcfg.vocab_size)
    return mcfg, ckpt, base


def check_tokens(ckpt, meta, what, data_dir):
    """A one-line error when a model was trained on other tokens than the dataset holds."""
    if ckpt.get("meta") and not same_tokens(ckpt["meta"], meta):
        raise UserError(f"{what} was trained on {ckpt['meta']['tokenizer']} tokens (vocab {ckpt['meta']['vocab_size']}) "
                        f"but {data_dir} holds {meta['tokenizer']} (vocab {meta['vocab_size']})"
                        + (", learned from other text" if meta["tokenizer"] == ckpt["meta"]["tokenizer"] == "bpe"
                           else "")
                        + ": use a dataset prepared with the model's tokenizer")


def build_model(mcfg, ckpt=None, base=None, base_name="", freeze_base=False):
    """The run's GPT: fresh, or with the weights of the checkpoint it resumes, or of the base model it
    fine-tunes or primes (base; a smaller block_size crops its positions). Only the added parameters
    train with freeze_base (bias layers) and with lora_rank (the adapters), also when resuming."""
    if base is None:
        model = GPT(mcfg)
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
    else:
        model = on_base(mcfg, base, base_name)
    trainable = "bias_layers." if freeze_base else "lora_" if mcfg.lora_rank else None
    if trainable:
        for name, p in model.named_parameters():
            p.requires_grad = trainable in name
    # what save_checkpoint stores in place of the frozen base: a reference to it, kept when resuming
    model.base_ref = ckpt.get("base") if ckpt is not None else \
        base_reference(base_name) if base is not None and trainable else None
    return model


def on_base(mcfg, base, base_name):
    """A GPT of config mcfg holding base's weights; the parts mcfg adds (adapters, bias layers) at their init."""
    model = GPT(replace(mcfg, block_size=base["model_args"]["block_size"]))
    missing, unexpected = model.load_state_dict(base["model"], strict=False)
    if unexpected or any(not k.startswith("bias_layers.") and not k.endswith(NEW_PARAMS) for k in missing):
        raise UserError(f"{base_name} does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if mcfg.block_size < model.config.block_size:
        model.crop_block_size(mcfg.block_size)
    return model


def save_checkpoint(path, model, optimizer, config_record, meta, iter_num, best_val_loss, gen, device_type):
    """Everything needed to continue exactly: weights, optimizer, configs, data meta, random streams.
    Weights that are not finite are never saved: the checkpoint there stays the last good one. A model
    built on a frozen base (model.base_ref, set by build_model) saves only its trainable parameters and
    the reference to the base (the optimizer holds state for those alone); load_checkpoint rebuilds it."""
    state = model.state_dict()
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"the weights are not finite ({bad[0]}, ...): not saving them over {path}; the run diverged, "
                        f"try a lower --learning_rate or --grad_clip")
    base_ref = getattr(model, "base_ref", None)
    if base_ref is not None:
        trained = {n for n, p in model.named_parameters() if p.requires_grad}
        state = {k: v for k, v in state.items() if k in trained}
    ckpt = {"model": state, "optimizer": optimizer.state_dict(), "model_args": config_record["model"],
            "config": config_record, "iter_num": iter_num, "best_val_loss": best_val_loss, "meta": meta,
            "rng": {"torch": torch.get_rng_state(), "batches": gen.get_state(),
                    "cuda": torch.cuda.get_rng_state() if device_type == "cuda" else None}}
    if base_ref is not None:
        ckpt["base"] = base_ref

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


def start_run_folder(out_dir, config_record, keep_until=None, rows_from=None):
    """Write config.json, and start metrics.jsonl afresh; on resume (keep_until) keep its rows up to
    the checkpoint's iteration, so the file describes exactly the run that continues (a torn last
    line dropped); rows_from: take those rows from that run folder instead (a branch's trunk).
    Temp files left by a save that was killed are removed first."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        for tmp in glob.glob(os.path.join(glob.escape(out_dir), "*.tmp")):
            os.remove(tmp)
            print(f"removed {tmp}, left by an interrupted save")
    except OSError as e:
        raise write_error(e, out_dir) from None
    atomic_write_text(os.path.join(out_dir, "config.json"), json.dumps(config_record, indent=1))
    kept = [r for r in read_metrics(rows_from or out_dir) if keep_until is not None and r["iter"] <= keep_until]
    atomic_write_text(os.path.join(out_dir, "metrics.jsonl"), "".join(json_line(r) for r in kept))
