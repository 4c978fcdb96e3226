"""
Check that model.py computes exactly what an earlier model.py did: for every variant config of the test
matrix (tests/test_variants.py, plus priming and LoRA), both attention paths and dropout 0 and 0.1.

    python tools/model_identity.py                 # against the last commit (HEAD)
    python tools/model_identity.py --rev=53def3a   # against any git revision

For each case, with the same seed in both: the initial state dicts (keys, order and values), the logits and
loss in training mode (dropout draws included), every gradient, the logits at every hook point, and the
tokens sampled with and without the KV cache must be bit-identical. Prints one line per mismatch and exits 1
if there is any. A refactoring of model.py is done when this prints nothing but the summary.
"""

import argparse
import dataclasses
import importlib.util
import os
import subprocess
import sys
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
EXTRA = {  # what the test matrix leaves out: the additions to a pretrained model
    "priming_mean": dict(priming=True, priming_dim=8),
    "priming_attention_shared": dict(priming=True, priming_dim=8, priming_pool="attention", priming_shared=True),
    "priming_layers_last": dict(priming=True, priming_dim=8, priming_layers=(0, 2), priming_pool="last",
                                n_shared_blocks=2, rotary=True),
    "lora_gelu_tanh": dict(lora_rank=2, mlp_act="gelu_tanh"),
    "relu2_alone": dict(mlp_act="relu2"),
}


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(module, cfg):
    torch.manual_seed(0)
    model = module.GPT(module.GPTConfig(**cfg))
    with torch.no_grad():  # zero-initialised variant parameters would hide differences: randomise them
        g = torch.Generator().manual_seed(1)
        for n, p in model.named_parameters():
            if n.endswith(("sink_key", "kv_offsets", "root", "lora_B", "c_out.weight", "pool_query")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            if cfg.get("zero_init_proj") and n.endswith("c_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def run_case(old, new, cfg, report):
    """Compare one config; report(what) records a mismatch."""
    a, b = build(old, cfg), build(new, cfg)
    sa, sb = a.state_dict(), b.state_dict()
    if list(sa) != list(sb):
        return report(f"state-dict keys differ: {sorted(set(sa) ^ set(sb))[:4]} or their order")
    for k in sa:
        if not torch.equal(sa[k], sb[k]):
            report(f"initial {k} differs")
    if [n for n, _ in a.named_parameters()] != [n for n, _ in b.named_parameters()]:
        report("parameter order differs (an optimizer state would not resume)")
    V, T = cfg["vocab_size"], cfg["block_size"]
    g = torch.Generator().manual_seed(2)
    idx, tgt = torch.randint(0, V, (3, T), generator=g), torch.randint(0, V, (3, T), generator=g)
    kw = {}
    if cfg.get("prefix_lm"):
        kw["prefix_len"] = torch.tensor([5, 0, T])
    if cfg.get("priming"):
        kw["priming"] = (torch.randint(0, V, (3, 7), generator=g), torch.tensor([7, 3, 1]))
    outs = []
    for m in (a, b):
        m.train()
        torch.manual_seed(3)
        logits, loss = m(idx, tgt, **kw)
        loss.backward()
        outs.append((logits, loss, {n: p.grad for n, p in m.named_parameters() if p.grad is not None}))
    (la, lossa, ga), (lb, lossb, gb) = outs
    if not torch.equal(la, lb) or not torch.equal(lossa, lossb):
        report(f"training-mode logits or loss differ (max {(la - lb).abs().max().item():.3g})")
    if set(ga) != set(gb):
        report(f"different parameters get gradients: {sorted(set(ga) ^ set(gb))[:4]}")
    for n in set(ga) & set(gb):
        if not torch.equal(ga[n], gb[n]):
            report(f"gradient of {n} differs (max {(ga[n] - gb[n]).abs().max().item():.3g})")
    a.eval(), b.eval()
    ca, cb = (m.run_with_cache(idx, **kw)[1] for m in (a, b))
    for n in set(ca) | set(cb):
        if n not in ca or n not in cb:
            if (n in ca and ca[n] is not None) or (n in cb and cb[n] is not None):
                report(f"hook {n} fires in only one model")
        elif not torch.equal(ca[n], cb[n]):
            report(f"hook {n} differs")
    gen_kw = dict(priming=(kw["priming"][0][:2], kw["priming"][1][:2])) if "priming" in kw else {}
    prompt = idx[:2, :6]
    for use_cache in (True, False):
        toks = []
        for m in (a, b):
            gen = torch.Generator().manual_seed(4)
            toks.append(m.generate(prompt, T + 3, temperature=1.0, top_k=20, top_p=0.9, use_cache=use_cache,
                                   generator=gen, **gen_kw))
        if not torch.equal(*toks):
            report(f"sampled tokens differ (use_cache={use_cache})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--rev", default="HEAD", help="the git revision whose model.py is the reference")
    args = p.parse_args(argv)
    source = subprocess.run(["git", "show", f"{args.rev}:model.py"], cwd=ROOT, capture_output=True, text=True)
    if source.returncode:
        sys.exit(f"error: cannot read model.py at {args.rev}: {source.stderr.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model_reference.py")
        with open(path, "w") as f:
            f.write(source.stdout)
        old = load(path, "model_reference")
    new = load(os.path.join(ROOT, "model.py"), "model_current")
    matrix = load(os.path.join(ROOT, "tests", "test_variants.py"), "variant_matrix")
    configs = {**matrix.VARIANTS, **EXTRA}
    known = {f.name for f in dataclasses.fields(old.GPTConfig)}
    new_flags = {name for name, flags in configs.items() if set(flags) - known}  # variants the reference lacks
    bad, cases = 0, 0
    for name, flags in configs.items():
        if name in new_flags:
            continue
        for impl in ("sdpa", "manual"):
            for dropout in (0.0, 0.1):
                cfg = {**matrix.BASE, **flags, "attn_impl": impl, "dropout": dropout}
                cases += 1
                problems = []
                run_case(old, new, cfg, problems.append)
                for what in problems:
                    print(f"{name} {impl} dropout={dropout}: {what}")
                bad += bool(problems)
    print(f"{cases - bad} of {cases} cases bit-identical to model.py at {args.rev} "
          f"({len(configs) - len(new_flags)} configs x 2 paths x 2 dropouts)")
    if new_flags:
        print(f"not compared (flags model.py at {args.rev} does not have): {', '.join(sorted(new_flags))}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
