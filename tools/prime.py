"""
The priming experiment (design note 000), in one command:

    python tools/prime.py config/sweeps/priming_facts.py

1. writes the (document, prompt, answer) triples with prepare/priming.py, unless they are there;
2. trains the base model on them with train.py (documents, then prompts and answers, so it learns to
   look answers up in its context), unless a finished run with the same keys is there;
3. trains the bias layers of a priming model on top of the frozen base (train.py --freeze_base=True:
   prime on the document, then predict the prompt's continuation without it), and each variation;
4. evaluates the held-out triples (names never seen in training) under four conditions:
     no_doc            the base model, prompt only
     in_context        the base model, document + prompt in the context
     primed            the priming model, prompt only, primed by the document
     primed_wrong_doc  primed by another triple's document: a control that must not help
   and writes out-priming/<name>/: results.json (for the `headline` run: answer loss in nats per
   answer token and exact match of the greedy answer, per condition, and recovered_fraction =
   (no_doc - primed) / (no_doc - in_context)), details.json (every variation, the ordinary val loss of the base model
   with and without its bias layers, timings), results.md and conditions.png.

Each training is a train.py process; its run folder (out-priming/<name>/<run>/) is reused when asked
again with the same keys.
"""

import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import numpy as np
import torch

from helpers.checkpoint import atomic_write_text, load_checkpoint, model_from_checkpoint
from helpers.config import UserError, configure, main_guard
from helpers.data import Batches
from helpers.evaluate import evaluate
from helpers.launch import train_or_reuse
from helpers.plotting import plt, save
from prepare import priming as priming_data
from prepare.common import get_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONDITIONS = ("no_doc", "in_context", "primed", "primed_wrong_doc")


@dataclass
class PrimeConfig:
    name: str = ""  # experiment name: runs and results in <out_root>/<name>/
    data: dict = field(default_factory=dict)  # prepare/priming.py options, e.g. {"n_facts": "1,2"}
    base: dict = field(default_factory=dict)  # train.py keys of the base model
    priming: dict = field(default_factory=dict)  # train.py keys of the bias-layer run (priming_dim, max_iters, ...)
    variations: dict = field(default_factory=dict)  # {name: train.py keys}: more bias-layer runs, overriding `priming`
    only: tuple[str, ...] = ()  # train and report only these variations ("main" is always run)
    headline: str = "main"  # the run that results.json and conditions.png report ("main" or a variation)
    eval_docs: int = 500  # held-out triples evaluated per condition
    device: str = "cpu"  # where training and evaluation run
    data_dir: str = ""  # where the triples go; "" = data/priming_<name>
    out_root: str = "out-priming"  # where experiments go
    seeded: tuple[str, ...] = ()  # runs trained again with each of `seeds`, as <run>_seed<s>: reported as mean ± std
    seeds: tuple[int, ...] = ()  # train.py seeds for the `seeded` runs, besides the run itself (train.py's seed)


def prepare_data(c, script=priming_data, prefix="priming"):
    """data/<prefix>_<name>/, written by the prepare script (prepare/priming.py) unless it is there with the
    same options."""
    data_dir = c.data_dir or os.path.join(ROOT, "data", f"{prefix}_{c.name}")
    argv = [f"--{k}={v}" for k, v in c.data.items()] + [f"--out={data_dir}"]
    stamp = os.path.join(data_dir, "prime.json")
    if os.path.exists(stamp) and json.load(open(stamp)) == argv:
        print(f"reusing {data_dir}")
    else:
        script.main(argv)
        atomic_write_text(stamp, json.dumps(argv))
    return data_dir


def args(keys):
    """train.py's --key=value arguments for a dict of keys."""
    return [f"--{k}={v}" for k, v in keys.items()]


def pad(seqs, value=0):
    """Right-pad lists of token ids into a (B, T) tensor; returns it and the (B,) lengths."""
    out = torch.full((len(seqs), max(map(len, seqs))), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out, torch.tensor([len(s) for s in seqs])


@torch.no_grad()
def evaluate_conditions(base, primed, triples, tok, device="cpu", batch_size=100):
    """{condition: {"answer_loss", "exact_match"}} over triples, and recovered_fraction.

    answer_loss: mean loss (nats) over the answer's tokens, the answer given after the context by
    teacher forcing. exact_match: share of triples whose greedy answer (as many tokens as the
    answer, KV-cached generate) is exactly the answer. by_n_facts: per number of facts in the
    document, the answer loss, exact match and other_fact, the share of greedy answers that are another
    person's place from the same document (binding lost), p_answer and p_other, the probability of the
    answer's first token and of the other places' first tokens where the answer starts, per condition,
    and recovered_fraction.
    """
    enc = [[tok.encode(t[k]) for k in ("document", "prompt", "answer")] for t in triples]
    n_facts = [t["document"].count(" lives in ") for t in triples]
    facts = [[f.strip().split(" lives in ") for f in t["document"].split(" .") if f.count(" lives in ") == 1]
             for t in triples]
    others = [[tok.encode(place + " .") for name, place in fs if t["prompt"] != f"? {name} lives in"]
              for fs, t in zip(facts, triples)]  # the places of the document's other people
    out, by_facts = {}, {}
    for cond in CONDITIONS:
        loss_sum, n_tokens, per_triple = 0.0, 0, []
        hit, other = np.zeros(len(enc), bool), np.zeros(len(enc), bool)
        p_answer, p_other = np.zeros(len(enc)), np.zeros(len(enc))  # the answer's first token, the others' places'
        for i in range(0, len(enc), batch_size):
            chunk = enc[i:i + batch_size]
            state, model = None, base
            if cond.startswith("primed"):
                donors = chunk if cond == "primed" else [enc[(j + 1) % len(enc)] for j in range(i, i + len(chunk))]
                doc, doc_len = pad([d for d, _, _ in donors])
                state, model = primed.prime(doc.to(device), doc_len.to(device)), primed
            contexts = [(d if cond == "in_context" else []) + p for d, p, _ in chunk]
            x, _ = pad([c + a[:-1] for c, (_, _, a) in zip(contexts, chunk)])
            y = torch.full_like(x, -1)
            for b, (c, (_, _, a)) in enumerate(zip(contexts, chunk)):
                y[b, len(c) - 1:len(c) - 1 + len(a)] = torch.tensor(a)
            logits, loss = model(x.to(device), y.to(device), reduction="none", priming=state)
            for b, c in enumerate(contexts):  # the next-token probabilities where the answer starts
                p = logits[b, len(c) - 1].float().softmax(-1)
                p_answer[i + b] = p[chunk[b][2][0]].item()
                p_other[i + b] = sum(p[o[0]].item() for o in others[i + b])
            loss_sum += loss.sum().item()
            n_tokens += int((y != -1).sum())
            per_triple += (loss.sum(1) / (y != -1).sum(1)).tolist()
            for length in sorted({len(c) for c in contexts}):  # generate in groups of equal context length
                rows = [b for b, c in enumerate(contexts) if len(c) == length]
                n_new = max(len(chunk[b][2]) for b in rows)
                idx = torch.tensor([contexts[b] for b in rows], device=device)
                g = model.generate(idx, n_new, temperature=0, priming=None if state is None else state[:, rows])
                for k, b in enumerate(rows):
                    answer = g[k, length:length + len(chunk[b][2])].tolist()
                    hit[i + b], other[i + b] = answer == chunk[b][2], answer in others[i + b]
        out[cond] = {"answer_loss": loss_sum / n_tokens, "exact_match": float(hit.mean())}
        for k in sorted(set(n_facts)):  # documents with one fact, with two, ...: is binding the hard part?
            sel = np.array(n_facts) == k
            by_facts.setdefault(str(k), {})[cond] = {"answer_loss": float(np.array(per_triple)[sel].mean()),
                                                     "exact_match": float(hit[sel].mean()),
                                                     "other_fact": float(other[sel].mean()),
                                                     "p_answer": float(p_answer[sel].mean()),
                                                     "p_other": float(p_other[sel].mean())}
    out["recovered_fraction"] = recovered({c: out[c]["answer_loss"] for c in CONDITIONS})
    for r in by_facts.values():
        r["recovered_fraction"] = recovered({c: r[c]["answer_loss"] for c in CONDITIONS})
    out["by_n_facts"] = by_facts
    return out


def recovered(loss):
    """(no_doc - primed) / (no_doc - in_context) from answer losses; None when the context does not help."""
    gap = loss["no_doc"] - loss["in_context"]
    return (loss["no_doc"] - loss["primed"]) / gap if gap > 0 else None


def recovered_exact(r):
    """The recovered fraction on exact match, (primed - no_doc) / (in_context - no_doc), from one run's
    {condition: {"exact_match"}}; None when the context does not help. Unlike the answer loss it does not reward
    hedging: a base that gives two places equal mass scores its greedy answers only."""
    return recovered({c: -r[c]["exact_match"] for c in CONDITIONS})


# what summarize_seeds reports per seed: recovered fractions, the primed exact match, the binding errors
SEED_METRICS = ("recovered", "recovered_1", "recovered_2", "recovered_exact", "recovered_exact_2", "exact", "other_2",
                "p_answer_2", "p_other_2")


def summarize_seeds(runs, seeded):
    """{run: {"per_seed": {name: metrics}, "mean": metrics, "std": metrics}} for each seeded run; std is
    the sample standard deviation (ddof=1) over its seeds."""
    out = {}
    for run, names in seeded.items():
        per = {}
        for n in names:
            r, one, two = runs[n], runs[n]["by_n_facts"].get("1"), runs[n]["by_n_facts"].get("2")  # nan if absent
            per[n] = {"recovered": r["recovered_fraction"], "exact": r["primed"]["exact_match"], "train_s": r["train_s"],
                      "recovered_1": one["recovered_fraction"] if one else float("nan"),
                      "recovered_2": two["recovered_fraction"] if two else float("nan"),
                      "recovered_exact": recovered_exact(r),
                      "recovered_exact_2": recovered_exact(two) if two else None,
                      "other_2": two["primed"]["other_fact"] if two else float("nan"),
                      "p_answer_2": two["primed"]["p_answer"] if two else float("nan"),
                      "p_other_2": two["primed"]["p_other"] if two else float("nan")}
        keys = [*SEED_METRICS, "train_s"]
        have = {k: [p[k] for p in per.values() if p[k] is not None] for k in keys}  # None: nothing to recover
        out[run] = {"per_seed": per, "mean": {k: float(np.mean(v)) if v else None for k, v in have.items()},
                    "std": {k: float(np.std(v, ddof=1)) if len(v) > 1 else None for k, v in have.items()}}
    return out


def plot_seeds(seeds, path, title):
    """Recovered fraction overall, on one-fact and on two-fact documents (answer loss, and exact match on two-fact
    documents), and the other-person share, per seeded run: mean bars, one dot per seed."""
    fig, ax = plt.subplots(figsize=(11, 4))
    labels = {"recovered": "recovered", "recovered_1": "recovered, 1 fact", "recovered_2": "recovered, 2 facts",
              "recovered_exact_2": "recovered on exact match, 2 facts", "other_2": "other person's place, 2 facts"}
    width = 0.8 / len(labels)

    def nan(v):  # None: nothing to recover
        return np.nan if v is None else v

    for j, (m, label) in enumerate(labels.items()):
        xs = np.arange(len(seeds)) + (j - (len(labels) - 1) / 2) * width
        ax.bar(xs, [nan(r["mean"][m]) for r in seeds.values()], width, yerr=[nan(r["std"][m]) for r in seeds.values()],
               label=label, capsize=3)
        for x, r in zip(xs, seeds.values()):
            ax.scatter([x] * len(r["per_seed"]), [nan(p[m]) for p in r["per_seed"].values()], color="k", s=6, zorder=3)
    ax.axhline(0.9, color="k", ls=":", lw=1)
    ax.set_xticks(np.arange(len(seeds)), list(seeds))
    ax.set(ylabel="fraction", title=title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    save(fig, path)


def val_loss(model, data_dir, meta, block_size, device):
    """The ordinary val loss (helpers.evaluate, unprimed) of a model on the dataset's val split."""
    batches = Batches(data_dir, meta, block_size, 32, device)
    bpt = {s: meta["splits"][s]["bytes"] / meta["splits"][s]["tokens"] for s in ("train", "val")}
    return evaluate(model, batches, 20, nullcontext(), 0, bpt)["val_loss"]


def plot_conditions(results, path, title):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colors = ["#999999", "#4c72b0", "#dd8452", "#c44e52"]
    for ax, key, label in zip(axes, ("answer_loss", "exact_match"), ("answer loss (nats per token)", "exact match")):
        vals = [results[c][key] for c in CONDITIONS]
        ax.bar(CONDITIONS, vals, color=colors)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=9)
        ax.set(ylabel=label)
        ax.tick_params(axis="x", labelrotation=15)
    rf = results["recovered_fraction"]
    fig.suptitle(f"{title}: recovered fraction {rf:.2f}" if rf is not None else title)
    save(fig, path)


def plot_runs(details, path, title):
    """Primed answer loss of every run, between the no_doc and in_context lines."""
    runs = details["runs"]
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * len(runs) + 1.5))
    names = list(runs)[::-1]
    ax.barh(names, [runs[n]["primed"]["answer_loss"] for n in names], color="#dd8452", label="primed")
    ax.scatter([runs[n]["primed_wrong_doc"]["answer_loss"] for n in names], names, color="#c44e52", marker="x",
               label="primed_wrong_doc", zorder=3)
    first = runs[names[-1]]
    for cond, style in (("no_doc", "--"), ("in_context", ":")):
        ax.axvline(first[cond]["answer_loss"], color="k", ls=style, label=cond)
    for i, n in enumerate(names):
        rf = runs[n]["recovered_fraction"]
        ax.text(runs[n]["primed"]["answer_loss"], i, f" {rf:.2f}" if rf is not None else "", va="center", fontsize=8)
    ax.set(xlabel="answer loss (nats per token); label: recovered fraction", title=title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    save(fig, path)


def main(argv=None):
    (c,), _ = configure([PrimeConfig()], argv, description=__doc__)
    if not c.name:
        raise UserError("name is empty: set it in the config file (outputs go to <out_root>/<name>/)")
    unknown = [v for v in c.only if v not in c.variations]
    if unknown:
        raise UserError(f"only names unknown variation(s) {unknown}; the config has {list(c.variations)}")
    if c.headline != "main" and (c.headline not in c.variations or (c.only and c.headline not in c.only)):
        raise UserError(f"headline must be 'main' or a variation that runs, got {c.headline!r}")
    unknown = [v for v in c.seeded if v != "main" and v not in c.variations]
    if unknown or bool(c.seeded) != bool(c.seeds):
        raise UserError(f"seeded names runs ('main' or variations) to train again with each of seeds: set both "
                        f"or neither; got seeded {list(c.seeded)} (unknown: {unknown}) and seeds {list(c.seeds)}")
    timings = {}
    t0 = time.time()
    data_dir = prepare_data(c)
    timings["prepare_s"] = round(time.time() - t0, 1)
    root = os.path.join(c.out_root, c.name)
    common = {"data_dir": data_dir, "device": c.device}
    base_dir = os.path.join(root, "base")
    timings["base_train_s"] = train_or_reuse(base_dir, args({**common, **c.base}))
    base_ckpt = load_checkpoint(os.path.join(base_dir, "ckpt.pt"))
    base = model_from_checkpoint(base_ckpt).to(c.device).eval()
    meta = base_ckpt["meta"]
    tok = get_tokenizer(meta)
    with open(os.path.join(data_dir, "val_triples.jsonl")) as f:
        triples = [json.loads(line) for line in f][:c.eval_docs]

    runs = {"main": c.priming, **{k: {**c.priming, **v} for k, v in c.variations.items() if not c.only or k in c.only}}
    seeded = {run: [run] + [f"{run}_seed{s}" for s in c.seeds] for run in c.seeded if run in runs}
    runs.update({f"{run}_seed{s}": {**runs[run], "seed": s} for run in seeded for s in c.seeds})
    details = {"runs": {}, "base_val_loss": val_loss(base, data_dir, meta, base.config.block_size, c.device)}
    for run, keys in runs.items():
        out_dir = os.path.join(root, run)
        secs = train_or_reuse(out_dir, args({**common, **keys, "freeze_base": True, "priming": True,
                                             "base": os.path.join(base_dir, "ckpt.pt")}), inputs=[base_dir])
        primed = model_from_checkpoint(load_checkpoint(os.path.join(out_dir, "ckpt.pt"))).to(c.device).eval()
        stamp = os.path.join(out_dir, "prime_eval.json")
        evaluated = {"run": json.load(open(os.path.join(out_dir, "run.json"))),
                     "base": json.load(open(os.path.join(base_dir, "run.json"))), "eval_docs": len(triples),
                     "metrics": "by_n_facts, p_other"}  # what evaluate_conditions reports
        if os.path.exists(stamp) and json.load(open(stamp))["evaluated"] == evaluated:
            res = json.load(open(stamp))["results"]  # the same run, base and triples: the same numbers
        else:
            t1 = time.time()
            res = evaluate_conditions(base, primed, triples, tok, c.device)
            res["train_s"], res["eval_s"] = secs, round(time.time() - t1, 1)
            atomic_write_text(stamp, json.dumps({"evaluated": evaluated, "results": res}))
        res["keys"] = {k: v for k, v in keys.items() if k.startswith("priming")} or {}
        res["params"] = sum(p.numel() for n, p in primed.named_parameters() if n.startswith("bias_layers."))
        details["runs"][run] = res
        print(f"{run}: " + ", ".join(f"{k} {res[k]['answer_loss']:.3f} ({res[k]['exact_match']:.2f})" for k in CONDITIONS)
              + f", recovered fraction {res['recovered_fraction']}")
        if run == c.headline:  # the base model with its bias layers, not primed: must be the base model
            details["base_val_loss_with_bias_layers"] = val_loss(primed, data_dir, meta, base.config.block_size, c.device)
    details["timings"] = timings
    details["eval_docs"] = len(triples)

    results_dir = root
    main_res = details["runs"][c.headline]
    details["headline"] = c.headline
    results = {k: main_res[k] for k in (*CONDITIONS, "recovered_fraction")}
    atomic_write_text(os.path.join(results_dir, "results.json"), json.dumps(results, indent=1))
    atomic_write_text(os.path.join(results_dir, "details.json"), json.dumps(details, indent=1))
    lines = ["| run | bias-layer params | " + " | ".join(CONDITIONS) + " | recovered fraction | train s |",
             "|---|---:|" + "---:|" * len(CONDITIONS) + "---:|---:|"]
    for run, r in details["runs"].items():
        rf = r["recovered_fraction"]
        lines.append(f"| {run} | {r['params']:,} | " + " | ".join(f"{r[k]['answer_loss']:.3f} ({r[k]['exact_match']:.2f})"
                                                               for k in CONDITIONS)
                     + f" | {'n/a' if rf is None else f'{rf:.2f}'} | {r['train_s']} |")
    lines.append(f"\nanswer loss in nats per answer token (exact match in brackets), {len(triples)} held-out triples. "
                 f"Base val loss {details['base_val_loss']:.4f}, with its bias layers unprimed "
                 f"{details['base_val_loss_with_bias_layers']:.4f}; base trained in {timings['base_train_s']} s.")
    lines += ["", f"answer loss of {c.headline} (results.json) by facts in the document:", "",
              "| facts | " + " | ".join(CONDITIONS) + " | recovered fraction |", "|---:|" + "---:|" * (len(CONDITIONS) + 1)]
    for k, r in main_res["by_n_facts"].items():
        rf = r["recovered_fraction"]
        lines.append(f"| {k} | " + " | ".join(f"{r[c]['answer_loss']:.3f}" for c in CONDITIONS)
                     + f" | {'n/a' if rf is None else f'{rf:.2f}'} |")
    lines += ["", "every run by facts in the document: recovered fraction; exact match of the primed greedy answer; "
              "other: the share of them that are another person's place from the document; p right, p other: the "
              "probability of the answer's first syllable and of the other places' where the answer starts", "",
              "| run | " + " | ".join(f"{h} ({k} fact{'' if k == '1' else 's'})" for k in main_res["by_n_facts"]
                                      for h in ("recovered", "exact", "other", "p right", "p other")) + " |",
              "|---|" + "---:|" * (5 * len(main_res["by_n_facts"]))]
    for cond in ("in_context", None):  # the base with the document in context, then every primed run
        for run, r in (details["runs"].items() if cond is None else [("base, document in context", main_res)]):
            cells = [("" if cond else f"{b['recovered_fraction']:.2f}" if b["recovered_fraction"] is not None else "n/a",
                      *(f"{b[cond or 'primed'][m]:.2f}" for m in ("exact_match", "other_fact", "p_answer", "p_other")))
                     for b in r["by_n_facts"].values()]
            lines.append(f"| {run} | " + " | ".join(x for cell in cells for x in cell) + " |")
    if seeded:
        details["seeds"] = results["seeds"] = summarize_seeds(details["runs"], seeded)
        atomic_write_text(os.path.join(results_dir, "results.json"), json.dumps(results, indent=1))
        atomic_write_text(os.path.join(results_dir, "details.json"), json.dumps(details, indent=1))
        lines += ["", f"mean ± std over {1 + len(c.seeds)} seeds (train.py's seed and {list(c.seeds)}); "
                  "other: share of primed greedy answers on two-fact documents that are the other person's place; "
                  "p right, p other: the probability of the right place's first syllable and of the other's; "
                  "recovered, exact: the recovered fraction on exact match instead of answer loss", "",
                  "| run | recovered | recovered (1 fact) | recovered (2 facts) | recovered, exact | "
                  "recovered, exact (2 facts) | exact | other (2 facts) | p right (2 facts) | p other (2 facts) | "
                  "train s |", "|---|" + "---:|" * 10]
        for run, r in results["seeds"].items():
            lines.append(f"| {run} | " + " | ".join("n/a" if r["mean"][m] is None else f"{r['mean'][m]:.2f} ± "
                                                     + ("n/a" if r["std"][m] is None else f"{r['std'][m]:.2f}")
                                                     for m in SEED_METRICS)
                         + f" | {r['mean']['train_s']:.0f} |")
        plot_seeds(results["seeds"], os.path.join(results_dir, "seeds.png"), f"priming_{c.name}: mean ± std over seeds")
    atomic_write_text(os.path.join(results_dir, "results.md"), "\n".join(lines) + "\n")
    plot_conditions(results, os.path.join(results_dir, "conditions.png"), f"priming_{c.name} ({c.headline})")
    if len(details["runs"]) > 1:
        plot_runs(details, os.path.join(results_dir, "runs.png"), f"priming_{c.name}: every bias-layer run")
    print("\n".join(lines))
    print(f"wrote {results_dir}/results.json, details.json, results.md, conditions.png, runs.png")
    return results, details


if __name__ == "__main__":
    main_guard(main)
