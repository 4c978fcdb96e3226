"""
Which heads are induction heads? Score every head of a checkpoint on batches of repeated random tokens
[A][A] (helpers/induction.py; docs/induction.md): its previous-token, duplicate-token and induction
scores (mean attention on TransformerLens's detection patterns), and the model's loss on the first and
the repeated half. Writes heads.png (a heat map per score) and heads.json.

    python tools/heads.py --out_dir=out-induction/synthetic/attn_only_2l_s0      # a run folder's ckpt.pt
    python tools/heads.py --out_dir=out-x --half=32 --batch=64 --plot_dir=plots/heads
"""

import json
import os
import sys
from dataclasses import dataclass

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

from helpers.checkpoint import atomic_write_text, model_from_checkpoint, read_model
from helpers.config import UserError, configure, main_guard
from helpers.data import ROOT
from helpers.induction import head_scores
from helpers.plotting import plot_head_scores, run_title


@dataclass
class HeadsConfig:
    out_dir: str = "out-induction/synthetic/attn_only_2l_s0"  # run folder holding ckpt.pt
    init_from: str = "resume"  # "resume": out_dir's checkpoint; or a checkpoint file, run folder, gpt2, HF dir
    plot_dir: str = ""  # where heads.png and heads.json go; "" means plots/heads
    half: int = 0  # tokens in A; 0: block_size // 2
    batch: int = 32  # [A][A] sequences scored
    seed: int = 0  # seeds the random tokens
    device: str = "cpu"  # "cpu", "cuda", ...


def score_run(model, vocab_size, cfg, title, plot_dir):
    """Score model's heads, write heads.json and heads.png into plot_dir; returns (scores, paths)."""
    if cfg.half < 0 or 2 * cfg.half > model.config.block_size:
        raise UserError(f"half must be 1..{model.config.block_size // 2} (two copies fit in the context), "
                        f"or 0 for that maximum; got {cfg.half}")
    if cfg.batch < 1:
        raise UserError(f"batch must be >= 1, got {cfg.batch}")
    scores = head_scores(model, vocab_size, cfg.half or None, cfg.batch, cfg.seed)
    os.makedirs(plot_dir, exist_ok=True)
    path_json = os.path.join(plot_dir, "heads.json")
    atomic_write_text(path_json, json.dumps({"half": cfg.half or model.config.block_size // 2, "batch": cfg.batch,
                                             "seed": cfg.seed, **scores}, indent=1))
    loss = f"loss on A {scores['first_half_loss']:.3f}, on its repeat {scores['repeat_loss']:.3f}"
    path_png = plot_head_scores(scores, os.path.join(plot_dir, "heads.png"),
                                f"{title}\nhead scores on repeated random tokens [A][A]; {loss}")
    return scores, [path_png, path_json]


def main(argv=None):
    (cfg,), _ = configure([HeadsConfig()], argv, description=__doc__)
    ckpt = read_model(cfg.init_from, cfg.out_dir)
    model = model_from_checkpoint(ckpt).to(cfg.device)
    vocab = ckpt["meta"]["vocab_size"] if ckpt.get("meta") else model.config.vocab_size  # the tokenizer's ids
    title = run_title(cfg.out_dir) if cfg.init_from == "resume" else cfg.init_from
    scores, paths = score_run(model, vocab, cfg, title, cfg.plot_dir or os.path.join(ROOT, "plots", "heads"))
    best = max((v, i, h) for i, row in enumerate(scores["induction"]) for h, v in enumerate(row))
    print(f"strongest induction head: layer {best[1]} head {best[2]}, score {best[0]:.3f}; "
          f"loss on A {scores['first_half_loss']:.3f}, on its repeat {scores['repeat_loss']:.3f}")
    for p in paths:
        print(f"wrote {p}")


if __name__ == "__main__":
    main_guard(main)
