"""
Sample from a trained model.

    python sample.py --out_dir=out-facts --start="Q: Where does" --num_samples=3
    python sample.py --out_dir=out-shakespeare-char --start=FILE:prompt.txt --top_p=0.9

The checkpoint carries its dataset's meta (tokenizer and vocabulary), so no data directory is needed.
"""

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from configurator import UserError, configure, main_guard
from prepare.common import get_tokenizer
from train import load_checkpoint, model_from_checkpoint


@dataclass
class SampleConfig:
    out_dir: str = "out-facts"  # run directory holding ckpt.pt
    ckpt: str = ""  # explicit checkpoint path; "" means out_dir/ckpt.pt
    start: str = "\n"  # prompt text, or FILE:path to read it from a file
    num_samples: int = 3  # how many samples to draw
    max_new_tokens: int = 300  # tokens generated per sample
    temperature: float = 0.8  # 1.0 samples the model's distribution; lower is more conservative; 0 is greedy
    top_k: int = 0  # keep only the k most likely tokens (0: no limit)
    top_p: float = 1.0  # keep the smallest set of tokens whose probability reaches p (1.0: no limit)
    seed: int = 1337  # sampling seed
    device: str = "auto"  # "cpu", "cuda", ...; "auto" is cuda when available
    dtype: str = "float32"  # "float32" or "bfloat16"


def main(argv=None):
    (cfg,), _ = configure([SampleConfig()], argv, description=__doc__)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.dtype not in ("float32", "bfloat16"):
        raise UserError(f"dtype must be float32 or bfloat16, got {cfg.dtype!r}")
    ckpt = load_checkpoint(cfg.ckpt or os.path.join(cfg.out_dir, "ckpt.pt"))
    model = model_from_checkpoint(ckpt).to(device).eval()
    tok = get_tokenizer(ckpt["meta"])

    start = cfg.start
    if start.startswith("FILE:"):
        path = start[5:]
        if not os.path.exists(path):
            raise UserError(f"prompt file {path} not found")
        with open(path, encoding="utf-8") as f:
            start = f.read()
    try:
        ids = tok.encode(start)
    except ValueError as e:
        raise UserError(f"cannot encode the prompt: {e}")
    if not ids:
        raise UserError("the prompt encodes to no tokens: give --start some text")
    x = torch.tensor(ids, dtype=torch.long, device=device)[None, :]

    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    ctx = nullcontext() if cfg.dtype == "float32" else torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
    with ctx:
        for _ in range(cfg.num_samples):
            y = model.generate(x, cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k or None,
                               top_p=cfg.top_p, generator=gen)
            print(tok.decode(y[0].tolist()))
            print("---------------")


if __name__ == "__main__":
    main_guard(main)
