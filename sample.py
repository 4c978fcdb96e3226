"""
Sample from a trained model, or find its most likely continuation with beam search.

    python sample.py --out_dir=out-facts --start="Q: Where does" --num_samples=3
    python sample.py --out_dir=out-shakespeare-char --start=FILE:prompt.txt --top_p=0.9
    python sample.py --out_dir=out-facts --start="Q: Where does" --beam=4 --max_new_tokens=20
    python sample.py --out_dir=out-priming/facts/main --prime=doc.txt --start="? mi be lives in"   # priming models
    python sample.py --init_from=gpt2 --start="The meaning of life is" --max_new_tokens=40          # OpenAI's GPT-2

The checkpoint carries its dataset's meta (tokenizer and vocabulary), so no data directory is needed.
"""

import math
import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from helpers.checkpoint import model_from_checkpoint, read_model
from helpers.config import UserError, configure, main_guard
from helpers.data import encode
from prepare.common import get_tokenizer


# Temperatures below this sample as greedy decoding: logits / 1e-300 overflow to inf and NaN, and
# anything this cold picks the most likely token anyway.
GREEDY_BELOW = 1e-5


@dataclass
class SampleConfig:
    init_from: str = "resume"  # "resume": the checkpoint in out_dir; or gpt2..gpt2-xl, an HF directory, a run folder
    out_dir: str = "out-facts"  # run directory holding ckpt.pt
    ckpt: str = ""  # explicit checkpoint path; "" means out_dir/ckpt.pt
    start: str = "\n"  # prompt text, or FILE:path to read it from a file
    num_samples: int = 3  # how many samples to draw (greedy decoding, temperature 0, gives one)
    max_new_tokens: int = 300  # tokens generated per sample
    temperature: float = 0.8  # 1.0 samples the model's distribution; lower is more conservative; 0 (or below 1e-5) is greedy
    top_k: int = 0  # keep only the k most likely tokens (0: no limit)
    top_p: float = 1.0  # keep the smallest set of tokens whose probability reaches p (1.0: no limit)
    seed: int = 1337  # sampling seed
    device: str = "auto"  # "cpu", "cuda", ...; "auto" is cuda when available
    dtype: str = "float32"  # "float32" or "bfloat16"
    beam: int = 0  # beam search with this many beams (prints the best num_samples); 0: sample
    prime: str = ""  # priming models: a document (a file path, FILE:path or the text) to prime with; not in the context


def check_sample_config(c):
    """Reject options that would sample something other than asked, before the checkpoint is read."""
    if c.dtype not in ("float32", "bfloat16"):
        raise UserError(f"dtype must be float32 or bfloat16, got {c.dtype!r}")
    if not 0 <= c.temperature < math.inf:  # (NaN fails every comparison)
        raise UserError(f"temperature must be >= 0 (0: greedy), got {c.temperature}")
    if not 0 < c.top_p <= 1:
        raise UserError(f"top_p must be in (0, 1] (1: no limit), got {c.top_p}")
    for name, low in (("num_samples", 1), ("max_new_tokens", 1), ("top_k", 0), ("beam", 0)):
        if getattr(c, name) < low:
            raise UserError(f"{name} must be >= {low}, got {getattr(c, name)}")


@torch.no_grad()
def beam_search(model, idx, beam, max_new_tokens, priming=None):
    """The `beam` most likely continuations of idx (1, T) of exactly max_new_tokens tokens.

    Keeps the `beam` best prefixes by summed log-probability; each step extends every one by every
    token and keeps the best `beam` of them. beam=1 is greedy decoding. No length normalisation
    (all candidates have the same length) and no KV cache (every step reruns the last block_size
    tokens: slower, but short). Returns (sequences (beam, T + max_new_tokens), their summed
    log-probabilities), best first. priming: a state from model.prime (one document), for every beam.
    """
    seqs, scores = idx, torch.zeros(1, device=idx.device)
    for _ in range(max_new_tokens):
        cropped = max(0, seqs.size(1) - model.config.block_size)
        prefix = None  # prefix_lm models read the prompt as their prefix, as in generate()
        if model.config.prefix_lm:
            prefix = torch.full((seqs.size(0),), max(0, idx.size(1) - cropped), device=idx.device)
        state = None if priming is None else priming.expand(-1, seqs.size(0), *priming.shape[2:])
        logits, _ = model(seqs[:, cropped:], prefix_len=prefix, priming=state)
        cand = (scores[:, None] + F.log_softmax(logits[:, -1].float(), dim=-1)).flatten()  # (n * vocab,)
        scores, flat = cand.topk(min(beam, cand.numel()))
        vocab = logits.size(-1)
        seqs = torch.cat([seqs[flat // vocab], (flat % vocab)[:, None]], dim=1)
    return seqs, scores


def main(argv=None):
    (cfg,), _ = configure([SampleConfig()], argv, description=__doc__)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    check_sample_config(cfg)
    temperature = cfg.temperature
    if 0 < temperature < GREEDY_BELOW:  # too cold to divide by: greedy, which it is in effect anyway
        print(f"temperature {temperature:g} is below {GREEDY_BELOW:g}: decoding greedily (as temperature=0)")
        temperature = 0.0
    ckpt = read_model(cfg.init_from, cfg.out_dir, cfg.ckpt)
    model = model_from_checkpoint(ckpt).to(device).eval()
    tok = get_tokenizer(ckpt["meta"])

    x = torch.tensor(encode(tok, cfg.start), dtype=torch.long, device=device)[None, :]
    state = None
    if cfg.prime:  # the priming pass: the model reads the document; generation sees only the prompt
        if not model.config.priming:
            raise UserError(f"--prime needs a priming model (priming=True); {cfg.ckpt or cfg.out_dir} has no bias layers")
        doc = cfg.prime if cfg.prime.startswith("FILE:") or not os.path.isfile(cfg.prime) else "FILE:" + cfg.prime
        doc_ids = encode(tok, doc, "the priming document")[:model.config.block_size]
        with torch.no_grad():
            state = model.prime(torch.tensor(doc_ids, dtype=torch.long, device=device)[None, :])

    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    ctx = nullcontext() if cfg.dtype == "float32" else torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
    with ctx:
        if cfg.beam > 0:
            seqs, scores = beam_search(model, x, cfg.beam, cfg.max_new_tokens, state)
            for seq, score in list(zip(seqs, scores))[:cfg.num_samples]:
                print(tok.decode(seq.tolist()))
                print(f"--------------- total log-probability {score.item():.3f}")
            return
        # greedy decoding has one answer: print it once
        for _ in range(1 if temperature == 0 else cfg.num_samples):
            y = model.generate(x, cfg.max_new_tokens, temperature=temperature, top_k=cfg.top_k or None,
                               top_p=cfg.top_p, generator=gen, priming=state)
            print(tok.decode(y[0].tolist()))
            print("---------------")


if __name__ == "__main__":
    main_guard(main)
