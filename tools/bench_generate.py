"""
Generation speed and KV-cache size: greedy decoding, batch 1, in one process, for the baseline and
for fewer key/value heads (n_kv_head), with and without the KV cache.

    python tools/bench_generate.py                                   # 6 layers x 384, 6 heads, 256-token context
    python tools/bench_generate.py --n_kv_heads="(6,3,1)" --new_tokens=200 --repeats=3
    python tools/bench_generate.py --n_kv_heads="(6,)" --compress_pasts="(0,32)"   # compress_past's cache

Each row generates --new_tokens tokens after a 16-token prompt, past the context window when
new_tokens + 16 > block_size. "full head" is how generation ran before: the head computed at every
position each step (a peer in this process); "last position" computes it where sampling needs it.
Random weights: speed does not depend on them. Prints a markdown table and writes nothing.
"""

import time
from dataclasses import dataclass

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import torch

from helpers.config import UserError, configure, main_guard
from model import GPT, GPTConfig


@dataclass
class BenchGenerateConfig:
    n_layer: int = 6  # the model: nanoGPT's shakespeare_char size by default
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256
    vocab_size: int = 50304  # GPT-2's (padded): the head is then a large part of each step
    n_kv_heads: tuple[int, ...] = (6, 3, 1)  # one row group per value (n_head = the baseline)
    compress_pasts: tuple[int, ...] = (0,)  # and per compress_past value (0 = the baseline)
    new_tokens: int = 300  # tokens generated per run
    repeats: int = 3  # runs per row; the best is reported
    threads: int = 0  # torch threads; 0 leaves torch's default


@torch.no_grad()
def full_head_generate(model, idx, new_tokens):
    """Greedy decoding as before: no cache, the whole window re-run, logits at every position."""
    for _ in range(new_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    (c,), _ = configure([BenchGenerateConfig()], argv, description=__doc__)
    if c.threads:
        torch.set_num_threads(c.threads)
    if any(c.n_head % k for k in c.n_kv_heads) or c.new_tokens < 1 or c.repeats < 1:
        raise UserError("every n_kv_heads value must divide n_head, and new_tokens, repeats must be >= 1")
    prompt = torch.randint(0, c.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    print(f"greedy, batch 1, {c.new_tokens} new tokens after 16, {c.n_layer} layers x {c.n_embd}, "
          f"{c.n_head} heads, context {c.block_size}, {torch.get_num_threads()} threads\n")
    print("| n_kv_head | compress_past | KV cache at full context | generation | tokens/s | vs full head, no cache |")
    print("|---:|---:|---:|---|---:|---:|")
    for kv, cp in [(kv, cp) for kv in c.n_kv_heads for cp in c.compress_pasts]:
        torch.manual_seed(0)
        model = GPT(GPTConfig(n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd, block_size=c.block_size,
                              vocab_size=c.vocab_size, n_kv_head=kv, compress_past=cp)).eval()
        cache = model.new_cache()
        with torch.no_grad():
            model(prompt.new_zeros(1, c.block_size), cache=cache)
        kv_bytes = cache.nbytes()
        peer = best_time(lambda: full_head_generate(model, prompt, c.new_tokens), c.repeats)
        rows = [("full head, no cache", peer),
                ("last position, no cache", best_time(lambda: model.generate(prompt, c.new_tokens, temperature=0,
                                                                            use_cache=False), c.repeats)),
                ("last position, KV cache", best_time(lambda: model.generate(prompt, c.new_tokens, temperature=0),
                                                      c.repeats))]
        for name, dt in rows:
            print(f"| {kv} | {cp} | {kv_bytes / 2**10:,.0f} KiB | {name} | {c.new_tokens / dt:.1f} | {peer / dt:.2f}x |")


if __name__ == "__main__":
    main_guard(main)
