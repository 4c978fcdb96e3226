"""
Export a model to Hugging Face's GPT-2 format, so that transformers, lm-eval and other HF tools load it.

    python tools/export.py --out_dir=out-shakespeare --to=hf-shakespeare
    python tools/export.py --init_from=gpt2 --to=hf-gpt2            # any model train.py can start from

The folder gets config.json and model.safetensors (written by transformers' save_pretrained), and
meta.json: the dataset's tokenizer, which --init_from=hf-shakespeare reads back. LoRA adapters are
merged into the weights. GPT-2's architecture is all that exports: a variant flag is refused in one
line. A model trained without biases (bias=False) gets zero biases, which compute the same function.
"""

import json
import os
import shutil
from dataclasses import dataclass, fields

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import torch

from helpers.checkpoint import model_from_checkpoint, read_model
from helpers.config import UserError, configure, main_guard
from model import GPTConfig, swap_conv1d

# GPTConfig keys an HF GPT-2 can hold; every other key must be at its default (GPT-2's)
EXPORTABLE = {"block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "attn_impl", "mlp_act",
              "tie_dims", "lora_rank", "lora_alpha", "n_kv_head"}
HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new"}


@dataclass
class ExportConfig:
    init_from: str = "resume"  # "resume": the checkpoint in out_dir; or gpt2..gpt2-xl, an HF directory, a run folder
    out_dir: str = "out-facts"  # run directory holding ckpt.pt
    ckpt: str = ""  # explicit checkpoint path; "" means out_dir/ckpt.pt
    to: str = ""  # the directory to write
    overwrite: bool = False  # replace an existing directory at --to


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


def to_hf(model):
    """A transformers GPT2LMHeadModel with the same weights and outputs as model (LoRA merged)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if model.config.lora_rank:
        model = model.merge_lora()
    c = model.config
    check_exportable(c)
    hf = GPT2LMHeadModel(GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        activation_function=HF_ACTIVATION[c.mlp_act], resid_pdrop=c.dropout, embd_pdrop=c.dropout,
        attn_pdrop=c.dropout, tie_word_embeddings=c.tie_dims == -1))
    sd = swap_conv1d(model.state_dict())
    for k, v in hf.state_dict().items():  # bias=False: the biases HF expects, as zeros
        if k not in sd and k.endswith(".bias") and not k.endswith(".attn.bias"):
            sd[k] = torch.zeros_like(v)
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    if unexpected or any(not k.endswith(".attn.bias") for k in missing):
        raise UserError(f"could not map the weights onto GPT-2 (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return hf.eval()


def export(model, meta, path, overwrite=False):
    """Write model as an HF GPT-2 directory at path (plus meta.json), whole or not at all."""
    if os.path.exists(path) and not overwrite:
        raise UserError(f"{path} already exists: pass --overwrite=True to replace it, or choose another --to")
    hf = to_hf(model)
    tmp, old = path.rstrip("/") + ".tmp", path.rstrip("/") + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    hf.save_pretrained(tmp)
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump({k: v for k, v in meta.items() if k != "splits"}, f, indent=1)
    if os.path.exists(path):
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def main(argv=None):
    (cfg,), _ = configure([ExportConfig()], argv, description=__doc__)
    if not cfg.to:
        raise UserError("pass --to=DIR, the directory to write the HF model to")
    ckpt = read_model(cfg.init_from, cfg.out_dir, cfg.ckpt)
    model = model_from_checkpoint(ckpt)
    path = export(model, ckpt["meta"], cfg.to, cfg.overwrite)
    print(f"wrote {path}: GPT-2 with {model.get_num_params() / 1e6:.2f}M parameters and {ckpt['meta']['tokenizer']} "
          f"tokens; GPT2LMHeadModel.from_pretrained({path!r}) loads it")


if __name__ == "__main__":
    main_guard(main)
