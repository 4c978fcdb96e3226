"""
Export a model to Hugging Face's GPT-2 format, so that transformers, lm-eval and other HF tools load it.

    python tools/export.py --out_dir=out-shakespeare --to=hf-shakespeare
    python tools/export.py --init_from=gpt2 --to=hf-gpt2            # any model train.py can start from

The folder gets config.json and model.safetensors (written by transformers' save_pretrained), the
tokenizer in HF's format (tokenizer.json and tokenizer_config.json, built with HF tokenizers), so that
AutoTokenizer.from_pretrained(folder) gives this repo's token ids with no network, and meta.json: the
dataset's tokenizer, which --init_from=hf-shakespeare reads back. Every tokenizer exports: GPT-2's
(or another tiktoken encoding), characters, words, and a trained BPE. config.json's bos/eos ids are the
model's own end-of-text token, or absent when its tokenizer has none (characters); such a tokenizer
gets <|endoftext|> one past its vocabulary, only because lm-eval requires one. LoRA adapters are
merged into the weights. GPT-2's architecture is all that exports: a variant flag is refused in one
line. A model trained without biases (bias=False) gets zero biases, which compute the same function.

It never writes into the folder it reads from (nor one containing it, nor one inside it), and
--overwrite=True replaces only a folder an earlier export wrote (it leaves a .exported-by-small-gpt-lab
file there); anything else at --to is refused. The folder is written whole or not at all.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, fields

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import torch

from helpers.checkpoint import model_from_checkpoint, os_error_in, read_model, write_error
from helpers.config import Interrupted, UserError, configure, main_guard
from model import GPTConfig, swap_conv1d
from prepare.common import EOT, CharTokenizer, get_tokenizer

# GPTConfig keys an HF GPT-2 can hold; every other key must be at its default (GPT-2's)
EXPORTABLE = {"block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "attn_impl", "mlp_act",
              "tie_dims", "lora_rank", "lora_alpha", "n_kv_head"}
HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new"}
UNKNOWN = "<unk>"  # a word outside a vocabulary with an end-of-text token: encoding it fails, as it does in this repo
MARKER = ".exported-by-small-gpt-lab"  # in every folder export writes: --overwrite replaces only such a folder


@dataclass
class ExportConfig:
    init_from: str = "resume"  # "resume": the checkpoint in out_dir; or gpt2..gpt2-xl, an HF directory, a run folder
    out_dir: str = "out-facts"  # run directory holding ckpt.pt
    ckpt: str = ""  # explicit checkpoint path; "" means out_dir/ckpt.pt
    to: str = ""  # the directory to write
    overwrite: bool = False  # replace the folder at --to, only if an earlier export wrote it


def check_exportable(config):
    """A one-line error for a model HF's GPT-2 cannot represent."""
    default = GPTConfig()
    changed = [f.name for f in fields(GPTConfig)
               if f.name not in EXPORTABLE and getattr(config, f.name) != getattr(default, f.name)]
    if config.n_kv_head not in (0, config.n_head):
        changed.append(f"n_kv_head={config.n_kv_head}")
    if config.mlp_act not in HF_ACTIVATION:
        changed.append(f"mlp_act={config.mlp_act}")
    if config.tie_dims not in (-1, 0):
        changed.append(f"tie_dims={config.tie_dims}")
    if changed:
        raise UserError(f"HF's GPT-2 has no {', '.join(changed)}: only GPT-2 models (LoRA merged) export")


def to_hf(model, eot=None):
    """A transformers GPT2LMHeadModel with the same weights and outputs as model (LoRA merged); eot is
    its end-of-text id (config.json's bos and eos), or None for a tokenizer without one."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if model.config.lora_rank:
        model = model.merge_lora()
    c = model.config
    check_exportable(c)
    hf = GPT2LMHeadModel(GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        activation_function=HF_ACTIVATION[c.mlp_act], resid_pdrop=c.dropout, embd_pdrop=c.dropout,
        attn_pdrop=c.dropout, tie_word_embeddings=c.tie_dims == -1, bos_token_id=eot, eos_token_id=eot))
    sd = swap_conv1d(model.state_dict())
    for k, v in hf.state_dict().items():  # bias=False: the biases HF expects, as zeros
        if k not in sd and k.endswith(".bias") and not k.endswith(".attn.bias"):
            sd[k] = torch.zeros_like(v)
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    if unexpected or any(not k.endswith(".attn.bias") for k in missing):
        raise UserError(f"could not map the weights onto GPT-2 (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return hf.eval()


def hf_tokenizer(meta, max_length):
    """The dataset's tokenizer (meta) as a transformers tokenizer giving the same ids, built with HF tokenizers."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = get_tokenizer(meta)
    if meta["tokenizer"] == "bpe":  # trained with HF tokenizers: its own file
        hf = Tokenizer.from_str(tok.json)
    elif isinstance(tok, CharTokenizer):  # one vocabulary entry per character (or word)
        vocab = {u: i for i, u in enumerate(tok.chars)}
        if tok.eot_token is None:  # the end-of-text token added below also stands for a character outside the
            vocab[EOT] = tok.n_vocab  # vocabulary, so that lm-eval can encode any stop string (the model never sees it)
        hf = Tokenizer(models.WordLevel(vocab, unk_token=EOT if EOT in vocab else UNKNOWN))
        if tok.name == "char":  # split into single characters, joined back with nothing between
            hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
            hf.decoder = decoders.Fuse()
        else:  # split at whitespace; tokenizers joins words back with a space
            hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    else:  # a tiktoken encoding (GPT-2's): its ranks, split pattern and special tokens, converted by transformers
        from transformers.convert_slow_tokenizer import TikTokenConverter

        enc = tok.enc
        converter = TikTokenConverter(pattern=enc._pat_str, extra_special_tokens=enc._special_tokens)
        converter.load_tiktoken_bpe = lambda _: enc._mergeable_ranks  # the ranks in memory, not read from a URL
        hf = converter.converted()
    if tok.eot_token is None:  # lm-eval needs a bos/eos token to exist: one past the vocabulary, never in the data
        hf.add_special_tokens([AddedToken(EOT, special=True, normalized=False)])
    eot = EOT if tok.eot_token is None else hf.id_to_token(tok.eot_token)
    return PreTrainedTokenizerFast(tokenizer_object=hf, model_max_length=max_length, bos_token=eot, eos_token=eot,
                                   clean_up_tokenization_spaces=False)


def source_folder(init_from, out_dir, ckpt=""):
    """The local folder the model is read from (None for a hub name such as gpt2)."""
    if init_from == "resume":
        return os.path.dirname(ckpt) or "." if ckpt else out_dir
    if os.path.isdir(init_from):
        return init_from
    return os.path.dirname(init_from) or "." if os.path.isfile(init_from) else None


def check_destination(path, source=None, overwrite=False):
    """Refuse a --to that would write over what export reads, or over anything an earlier export did not write."""
    if not path.strip("/"):
        raise UserError(f"--to={path!r} is not a folder to write: give a new folder, e.g. --to=hf-model")
    if source is not None:
        dest, src = os.path.realpath(path), os.path.realpath(source)
        if os.path.commonpath([dest, src]) in (dest, src):  # the same folder, or one inside the other
            where = "is" if dest == src else "contains" if os.path.commonpath([dest, src]) == dest else "is inside"
            raise UserError(f"--to={path} {where} the folder the model is read from ({source}): "
                            f"export writes a new folder, choose a --to outside it")
    if os.path.lexists(path):
        if not overwrite:
            raise UserError(f"{path} already exists: pass --overwrite=True to replace it, or choose another --to")
        if not os.path.isfile(os.path.join(path, MARKER)):
            raise UserError(f"{path} was not written by tools/export.py (it has no {MARKER}), so --overwrite "
                            f"leaves it alone: choose another --to, or move it away yourself")


def export(model, meta, path, overwrite=False, source=None):
    """Write model as an HF GPT-2 directory at path (plus meta.json), whole or not at all.

    It is written into a temp folder beside path, then renamed onto it; on any failure (a full disk,
    a folder you cannot write to, Ctrl-C) the temp folder is removed and what was at path stays."""
    check_destination(path, source, overwrite)
    hf = to_hf(model, get_tokenizer(meta).eot_token)
    tokenizer = hf_tokenizer(meta, model.config.block_size)
    path = path.rstrip("/")
    parent, name = os.path.dirname(path) or ".", os.path.basename(path)
    tmp = old = None
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f"{name}.tmp-", dir=parent)  # a fresh name: never one the user has
        hf.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump({k: v for k, v in meta.items() if k != "splits"}, f, indent=1)
        with open(os.path.join(tmp, MARKER), "w") as f:  # what lets --overwrite replace this folder later
            f.write("written by tools/export.py; --overwrite=True may replace this folder\n")
        if os.path.lexists(path):  # (an earlier export, checked above) moved aside until the new one is in place
            old = tempfile.mkdtemp(prefix=f"{name}.old-", dir=parent)
            os.replace(path, old)
        os.replace(tmp, path)
        tmp = None
    except BaseException as e:
        if old is not None and not os.path.lexists(path):
            os.replace(old, path)  # put the earlier export back
            old = None
        for d in (tmp, old):  # only the folders made here
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        if isinstance(e, KeyboardInterrupt):
            raise Interrupted(f"interrupted: nothing written at {path}") from None
        if isinstance(e, Exception) and os_error_in(e) is not None:
            raise write_error(os_error_in(e), path) from None
        if isinstance(e, Exception):  # e.g. safetensors' own error for a full disk, which is no OSError
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"could not write {path} ({type(e).__name__}: {first}): nothing was written there; "
                            f"check the free space and permissions of {parent}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def main(argv=None):
    (cfg,), _ = configure([ExportConfig()], argv, description=__doc__)
    if not cfg.to:
        raise UserError("pass --to=DIR, the directory to write the HF model to")
    source = source_folder(cfg.init_from, cfg.out_dir, cfg.ckpt)
    check_destination(cfg.to, source, cfg.overwrite)  # before the (slow) read of the model
    ckpt = read_model(cfg.init_from, cfg.out_dir, cfg.ckpt)
    model = model_from_checkpoint(ckpt)
    path = export(model, ckpt["meta"], cfg.to, cfg.overwrite, source)
    print(f"wrote {path}: GPT-2 with {model.get_num_params() / 1e6:.2f}M parameters and {ckpt['meta']['tokenizer']} "
          f"tokens; GPT2LMHeadModel.from_pretrained({path!r}) loads it")


if __name__ == "__main__":
    main_guard(main)
