"""
Knowledge out of the model (design note 004, "Separation of Reason and Knowledge"), the whole table in
one command:

    python tools/knowledge.py config/sweeps/knowledge.py

1. writes the fixed world with prepare/world.py (once for every seed), unless it is there;
2. for each seed trains, with train.py, unless a finished run with the same keys is there:
     base        a GPT from scratch on the world: its people's facts end up in the weights
     forgetting  the base fine-tuned with forget_weight (init_from=the base's run folder)
     continued   its control: the same fine-tune with forget_weight=0
     priming     bias layers on the frozen base, trained to be primed by a document's facts block
     lora        LoRA adapters on the base, trained on the store's facts lines of the people asked about
                 in open_book_new and counterfactual (the held-out people, and group B's updated facts)
3. scores every arm on the same val questions (helpers/knowledge.py; closed_book never gets facts):
     baseline    the base, no facts supplied
     context     the base, the facts block before the question
     retrieval   the base, the retrieval_k facts lines BM25 (bm25s) ranks first in the store (library.jsonl)
                 for the question, before it; retrieval_recall: the share of questions whose person's
                 line is among them
     priming     the priming model primed on the facts block (tools/prime.py's evaluate_conditions), the
                 question alone
     lora        the base with the adapters, the question alone
     forgetting  the forgetting model, the facts block before the question
     continued   the control fine-tune, the facts block before the question
   and writes <out_root>/<name>/: results.json ({arm: {metric: {mean, std, values}}}, retrieval_recall,
   timings, the command), results.md, arms.png (every arm and metric) and curves.png (the metrics over
   training: the base, then the forgetting fine-tune).

Each training is a train.py process in <out_root>/<name>/s<seed>/<run>/, reused when asked again with
the same keys; each seed's scores are kept in eval.json beside them, recomputed when a run changes.

Selective forgetting (TOFU, Maini et al. 2024: forget quality on a forget set, model utility on a retain set):

    python tools/knowledge.py config/sweeps/knowledge.py --forget_fractions="(0.1, 0.5, 0.9)" --selective_arms="{'forget_retain': {'retain_weight': 1.0}, 'neglect_retain': {'forget_weight': 0.0, 'retain_weight': 1.0}}"

runs, in place of the table above, per seed the same base and `continued` control (reused) and one fine-tune
per fraction and arm: forgetting (forget_fraction: that share of the people is the forget set, prepare/world.py
forget_split; the rest, the retain set, keeps its closed-book LM loss) and each of selective_arms (more
train.py keys on top; here forget_retain adds retain_weight, and neglect_retain, its control, sets
forget_weight=0). Every arm is scored per fraction on
forget_closed_book and retain_closed_book (every closed-book question about each set's people, no facts) and
open_book_new (reading: held-out people, facts in context). `continued` is the control for every fraction:
the same 300 steps from the same base with forget_weight=0, which rehearses the retain set's closed-book
questions just as the forgetting arms do (and the forget set's too). Writes <out_root>/<name>/selective/:
results.json (per arm and fraction, {mean, std, values} over the seeds; the arms' keys; the forget set of each
fraction; timings; the command), results.md and selective.png.

Reader against memorizer, by model size (can a smaller model read the facts a larger one memorizes?):

    python tools/knowledge.py config/sweeps/knowledge_sizes.py

trains, in place of the table above, per seed the base at each of sizes (train.py keys on top of the base's:
n_layer, n_embd, n_head), all for the base's steps, and scores each on closed_book (memory), open_book_new
with the facts block in context (reading) and with the retrieval_k facts lines BM25 ranks first (retrieval).
A size whose keys are the base's is the base's run (reused). Writes <out_root>/<name>/sizes/: results.json
(per size the parameter counts and {mean, std, values} over the seeds; the smallest reader that matches the
largest memorizer, or the gap at each size; timings; the command), results.md and sizes.png.
A LoRA that carries facts (Allen-Zhu and Li, "Physics of Language Models 3.1": knowledge augmentation and
mixed training):

    python tools/knowledge.py config/sweeps/knowledge_lora.py

runs, in place of the table, per seed the same base and plain `lora` (reused) and one LoRA per arm of
lora_facts, trained on paraphrased statements of the held-out people's facts (the targets: statements only)
and paraphrased statements and Q&A of qa_people new people (prepare/world.py lora_facts_documents), with a
share of the base's training documents replayed (replay). Every run is scored on FACTS: the targets asked
without facts, the Q&A people, the memorized world (closed_book) and reading. Writes
<out_root>/<name>/lora_facts/: results.json, results.md and lora_facts.png.
"""

import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import numpy as np

from helpers.checkpoint import atomic_write_text, load_checkpoint, model_from_checkpoint, read_metrics
from helpers.config import UserError, configure, main_guard
from helpers.knowledge import (KIND, METRICS, closed_book_questions, knowledge_metrics, load_questions, open_book_other,
                               score, split_metrics)
from helpers.launch import read_stamp, train_or_reuse
from helpers.plotting import plt, save
from prepare import world
from prepare.common import get_tokenizer, text_docs, write_dataset
from tools.compare import mean_std
from tools.prime import args, evaluate_conditions, prepare_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ARMS = ("baseline", "forgetting", "continued", "context", "retrieval", "priming", "lora")
RUNS = ("base", "forgetting", "continued", "priming", "lora")
SIZED = ("closed_book", "open_book_new", "retrieval", "open_book_other")  # memory, reading, retrieval, binding error
SELECTIVE = ("forget_closed_book", "retain_closed_book", "open_book_new")  # selective forgetting's metrics
# a LoRA that carries facts: the data keys of an arm and their defaults (the rest of its keys go to train.py)
FACTS_DATA = {"paraphrases": 8, "qa_share": 0.25, "replay": 0.0}
# its metrics: the held-out people (targets) asked without facts, every question (3 per person) and the table's
# open_book_new questions; their facts as a statement to complete; the Q&A people; the world; reading
FACTS = ("target_closed_book", "open_book_new_alone", "target_statement", "qa_closed_book", "closed_book",
         "open_book_new")
PROBES = {"city": "{} lives in", "job": "{} works as", "pet": "{} keeps"}  # target_statement: completed by the fact


@dataclass
class KnowledgeConfig:
    name: str = ""  # experiment name: runs and results in <out_root>/<name>/
    data: dict = field(default_factory=dict)  # prepare/world.py options, e.g. {"people": 400}
    seeds: tuple[int, ...] = (0, 1, 2)  # every run is trained once per seed (the world stays the same)
    base: dict = field(default_factory=dict)  # train.py keys of the base model
    forgetting: dict = field(default_factory=dict)  # train.py keys of the forgetting fine-tune (forget_weight, ...)
    priming: dict = field(default_factory=dict)  # train.py keys of the bias-layer run (priming_dim, max_iters, ...)
    lora: dict = field(default_factory=dict)  # train.py keys of the LoRA run (lora_rank, max_iters, ...)
    retrieval_k: int = 2  # facts lines retrieved per question
    new_people: int = 0  # 0: off; n: after the selective sweep, learn n new people (capacity; needs forget_fractions)
    capacity_arms: tuple[str, ...] = ("forget_retain", "continued")  # runs the new people are learned from
    capacity: dict = field(default_factory=dict)  # train.py keys of learning the new people, on top of forgetting's
    new_share: float = 0.5  # share of the capacity documents' questions about new people; the rest: the retain set
    forget_fractions: tuple[float, ...] = ()  # (): the arms table; fractions: the selective-forgetting sweep instead
    selective_arms: dict = field(default_factory=dict)  # more arms of the sweep: {name: train.py keys added to forgetting's}
    sizes: dict = field(default_factory=dict)  # {}: off; {label: train.py keys on top of base's}: the base at each size instead
    lora_facts: dict = field(default_factory=dict)  # {}: off; {arm: keys}: LoRA arms that carry facts, in place of the table (FACTS_DATA's keys, then train.py's)
    qa_people: int = 100  # lora_facts: new people (none held out) whose statements and Q&A the arms train on
    device: str = "cpu"  # where training and evaluation run
    data_dir: str = ""  # where the world goes; "" = data/knowledge_<name>
    out_root: str = "out-knowledge"  # where experiments go


def lora_data(data_dir):
    """<data_dir>/lora/: the store's facts lines of the people asked about with facts (held-out people and
    group B), one document each, as train and val: what the LoRA adapter learns. Written again when the
    world is."""
    out = os.path.join(data_dir, "lora")
    w = json.load(open(os.path.join(data_dir, "world.json")))
    asked = set(w["held_out"]) | set(w["group_b"])
    with open(os.path.join(data_dir, "library.jsonl")) as f:
        lines = [r["text"] for r in map(json.loads, f) if r["entity"] in asked]
    meta = os.path.join(out, "meta.json")
    if not os.path.exists(meta) or os.path.getmtime(meta) < os.path.getmtime(os.path.join(data_dir, "library.jsonl")):
        tok = get_tokenizer(json.load(open(os.path.join(data_dir, "meta.json"))))
        write_dataset(out, {"train": text_docs(lines, tok), "val": text_docs(lines, tok)}, tok, "world_lora")
    return out


def retrieve(data_dir, questions, k):
    """{prompt: the top-k facts lines of the store for it, joined} and the retrieval recall over the
    questions that get facts (the asked person's line among the k)."""
    import bm25s

    with open(os.path.join(data_dir, "library.jsonl")) as f:
        store = [json.loads(line) for line in f]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([r["text"] for r in store], stopwords=None, show_progress=False),
                    show_progress=False)
    asked = [q for q in questions if q["kind"] != "closed_book"]
    prompts = sorted({q["prompt"] for q in asked})
    ranked, _ = retriever.retrieve(bm25s.tokenize(prompts, stopwords=None, show_progress=False), k=k,
                                   show_progress=False)  # (n, k) indices into the store
    found = {p: [store[i] for i in row] for p, row in zip(prompts, ranked.tolist())}
    recall = float(np.mean([any(r["entity"] == q["entity"] for r in found[q["prompt"]]) for q in asked]))
    return {p: " ".join(r["text"] for r in rows) for p, rows in found.items()}, recall


def score_arms(models, tok, questions, retrieved, device):
    """{arm: knowledge metrics} of one seed's models (base, forgetting, priming, lora)."""
    base = models["base"]
    none = lambda q: ""  # noqa: E731 (no facts supplied)
    out = {"baseline": knowledge_metrics(base, tok, questions, none, device),
           "context": knowledge_metrics(base, tok, questions, device=device),
           "retrieval": knowledge_metrics(base, tok, questions, lambda q: retrieved[q["prompt"]], device),
           "lora": knowledge_metrics(models["lora"], tok, questions, none, device),
           "forgetting": knowledge_metrics(models["forgetting"], tok, questions, device=device),
           "continued": knowledge_metrics(models["continued"], tok, questions, device=device)}
    primed = knowledge_metrics(models["priming"], tok, questions, none, device)  # unprimed: closed_book
    for metric in ("open_book_new", "counterfactual_follow"):
        triples = [{"document": q["facts"], "prompt": q["prompt"], "answer": q["answer"]}
                   for q in questions if q["kind"] == KIND[metric]]
        res = evaluate_conditions(base, models["priming"], triples, tok, device)
        primed[metric], primed[f"{metric}_loss"] = res["primed"]["exact_match"], res["primed"]["answer_loss"]
        primed[f"{metric}_wrong_doc"] = res["primed_wrong_doc"]["exact_match"]  # the control: must not help
        primed.pop("counterfactual_memory", None)  # (evaluate_conditions scores the context's answer only)
    out["priming"] = primed
    return out


def fine_tune(c, common, dirs, run, **keys):
    """Train (or reuse) dirs[run]: the forgetting keys, plus keys, from the seed's base; returns its seconds.
    The fine-tune's last model is kept: its val loss rises as it forgets, so the best would be iteration 0."""
    return train_or_reuse(dirs[run], args({**common, **c.forgetting, "init_from": dirs["base"],
                                           "always_save_checkpoint": True, **keys}), [dirs["base"]])


def run_seed(c, data_dir, seed, questions, tok, retrieved):
    """Train (or reuse) one seed's four runs and score the arms; returns (scores, train seconds per run)."""
    root = os.path.join(c.out_root, c.name, f"s{seed}")
    dirs = {r: os.path.join(root, r) for r in RUNS}
    common = {"data_dir": data_dir, "device": c.device, "seed": seed}
    base_ckpt = os.path.join(dirs["base"], "ckpt.pt")
    seconds = {"base": train_or_reuse(dirs["base"], args({**common, **c.base}))}
    # the fine-tune's last model is scored: its val loss rises as it forgets, so the best would be iteration 0
    seconds["forgetting"] = fine_tune(c, common, dirs, "forgetting")
    # its control: the same fine-tune without the forgetting term (the LM loss on every document)
    seconds["continued"] = fine_tune(c, common, dirs, "continued", forget_weight=0.0)
    seconds["priming"] = train_or_reuse(dirs["priming"], args({**common, **c.priming, "freeze_base": True,
                                                               "priming": True, "base": base_ckpt}), [dirs["base"]])
    seconds["lora"] = train_or_reuse(dirs["lora"], args({**common, **c.lora, "data_dir": lora_data(data_dir),
                                                         "init_from": dirs["base"]}), [dirs["base"]])
    stamp = os.path.join(root, "eval.json")
    evaluated = {"runs": {r: read_stamp(d) for r, d in dirs.items()}, "questions": len(questions),
                 "retrieval_k": c.retrieval_k}
    if os.path.exists(stamp) and json.load(open(stamp))["evaluated"] == evaluated:
        return json.load(open(stamp))["scores"], seconds
    t0 = time.time()
    models = {r: model_from_checkpoint(load_checkpoint(os.path.join(d, "ckpt.pt"))).to(c.device).eval()
              for r, d in dirs.items()}
    scores = score_arms(models, tok, questions, retrieved, c.device)
    scores["eval_s"] = round(time.time() - t0, 1)
    atomic_write_text(stamp, json.dumps({"evaluated": evaluated, "scores": scores}))
    return scores, seconds


def summarize(per_seed, keys):
    """{key: {mean, std, values}} over seeds (std: sample std, null with one seed)."""
    out = {}
    for k in keys:
        vals = [s[k] for s in per_seed]
        m, sd = mean_std(vals)
        out[k] = {"mean": round(m, 4), "std": None if np.isnan(sd) else round(sd, 4), "values": vals}
    return out


def write_report(root, lines, figures, notes=()):
    """results.md from lines; prints the lines, then notes, then what was written (results.json beside it)."""
    atomic_write_text(os.path.join(root, "results.md"), "\n".join(lines) + "\n")
    print("\n".join([*lines, *notes]))
    print(f"wrote {root}/results.json, results.md, {', '.join(figures)}")


def plot_arms(results, path, title, chance):
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(METRICS)
    for j, metric in enumerate(METRICS):
        xs = np.arange(len(ARMS)) + (j - 1) * width
        ax.bar(xs, [results[a][metric]["mean"] for a in ARMS], width,
               yerr=[results[a][metric]["std"] or 0 for a in ARMS], capsize=3, label=metric)
    ax.axhline(chance, color="k", ls=":", lw=1, label=f"chance ({chance:.2f})")
    ax.set_xticks(np.arange(len(ARMS)), ARMS)
    ax.set(ylabel="exact match (mean ± std over seeds)", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    save(fig, path)


def plot_curves(c, path, title):
    """The metrics over training, every seed: the base, then the forgetting fine-tune after it."""
    fig, ax = plt.subplots(figsize=(10, 4))
    colors = dict(zip(METRICS, ("#4c72b0", "#dd8452", "#55a868")))
    for seed in c.seeds:
        base = read_metrics(os.path.join(c.out_root, c.name, f"s{seed}", "base"))
        forget = read_metrics(os.path.join(c.out_root, c.name, f"s{seed}", "forgetting"))
        end = base[-1]["iter"]
        for metric in METRICS:
            ax.plot([r["iter"] for r in base], [r[metric] for r in base], color=colors[metric], alpha=0.8,
                    label=metric if seed == c.seeds[0] else None)
            ax.plot([end + r["iter"] for r in forget], [r[metric] for r in forget], color=colors[metric], ls="--",
                    alpha=0.8)
    ax.axvline(end, color="k", lw=1)
    ax.text(end, 1.0, " forgetting fine-tune (dashed)", va="top", fontsize=8)
    ax.set(xlabel="iteration", ylabel="exact match (closed_book without facts)", ylim=(-0.02, 1.05), title=title)
    ax.legend(fontsize=8, loc="upper left")
    save(fig, path)


def fraction_run(arm, f):
    return f"{arm}_f{f:g}"


def forgetting_arms(c):
    """{arm: its train.py keys on top of c.forgetting's}: forgetting, and selective_arms."""
    return {"forgetting": {}, **c.selective_arms}


def selective_seed(c, data_dir, seed, questions, tok, splits):
    """Selective forgetting, one seed: train (or reuse) the base, the control and a forgetting fine-tune per
    fraction; returns ({arm: {fraction: metrics}}, train seconds per run). Scores kept in selective.json."""
    root = os.path.join(c.out_root, c.name, f"s{seed}")
    arms = forgetting_arms(c)
    runs = ("base", "continued", *(fraction_run(a, f) for a in arms for f in c.forget_fractions))
    dirs = {r: os.path.join(root, r) for r in runs}
    common = {"data_dir": data_dir, "device": c.device, "seed": seed}
    seconds = {"base": train_or_reuse(dirs["base"], args({**common, **c.base})),
               "continued": fine_tune(c, common, dirs, "continued", forget_weight=0.0)}
    for arm, keys in arms.items():
        for f in c.forget_fractions:
            seconds[fraction_run(arm, f)] = fine_tune(c, common, dirs, fraction_run(arm, f), forget_fraction=f, **keys)
    stamp = os.path.join(root, "selective.json")
    evaluated = {"runs": {r: read_stamp(d) for r, d in dirs.items()}, "splits": splits}
    if os.path.exists(stamp) and json.load(open(stamp))["evaluated"] == evaluated:
        return json.load(open(stamp))["scores"], seconds
    models = {r: model_from_checkpoint(load_checkpoint(os.path.join(d, "ckpt.pt"))).to(c.device).eval()
              for r, d in dirs.items()}
    w = json.load(open(os.path.join(data_dir, "world.json")))
    reading = [q for q in questions if q["kind"] == "open_book_new"]
    scores = {}
    for arm in (*arms, "continued", "base"):
        for f in c.forget_fractions:
            model = models[fraction_run(arm, f) if arm in arms else arm]
            split = splits[f"{f:g}"]
            m = split_metrics(model, tok, w, split["forget"], split["retain"], c.device)
            m["open_book_new"] = round(score(model, tok, reading, [q["facts"] for q in reading], c.device)["acc"], 5)
            scores.setdefault(arm, {})[f"{f:g}"] = m
    atomic_write_text(stamp, json.dumps({"evaluated": evaluated, "scores": scores}))
    return scores, seconds


def plot_selective(results, fractions, path, title):
    """forget, retain and reading accuracy against the forget fraction: both arms and the base, mean ± std."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    styles = {"forgetting": dict(color="#c44e52", marker="o"), "continued": dict(color="#4c72b0", marker="s"),
              "base": dict(color="gray", marker=".", ls=":", alpha=0.6)}
    arms = [a for a in results["arms"] if a not in styles] + list(styles)
    for ax, metric in zip(axes, SELECTIVE):
        for i, arm in enumerate(arms):
            rows = [results[arm][f"{f:g}"][metric] for f in fractions]
            shift = 0.012 * (i - (len(arms) - 1) / 2)  # side by side, so the error bars do not hide each other
            ax.errorbar([f + shift for f in fractions], [r["mean"] for r in rows], yerr=[r["std"] or 0 for r in rows],
                        capsize=3, label=arm, **styles.get(arm, dict(marker="^", color=("#55a868", "#8172b3", "#937860")[i % 3])))
        if metric != "open_book_new":
            ax.axhline(results["chance"], color="k", ls=":", lw=1, label=f"chance ({results['chance']:.2f})")
        ax.set(xlabel="forget fraction (share of the people to forget)", title=metric, ylim=(0, 1.05),
               xticks=fractions)
    axes[0].set_ylabel("exact match (mean ± std over seeds)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    save(fig, path)


def selective(c, data_dir, questions, tok, argv):
    """The selective-forgetting sweep over c.forget_fractions and the seeds: results.json, results.md and
    selective.png in <out_root>/<name>/selective/."""
    t0 = time.time()
    w = json.load(open(os.path.join(data_dir, "world.json")))
    seed = json.load(open(os.path.join(data_dir, "meta.json")))["generator"]["seed"]
    splits = {}
    for f in c.forget_fractions:
        forget, retain = world.forget_split(w, f, seed)
        splits[f"{f:g}"] = {"forget": forget, "retain": retain}
    per_seed, seconds = [], []
    for s in c.seeds:
        scores, secs = selective_seed(c, data_dir, s, questions, tok, splits)
        per_seed.append(scores)
        seconds.append(secs)
        print(f"seed {s}: " + "; ".join(f"f={f:g} " + " ".join(
            f"{arm} " + "/".join(f"{scores[arm][f'{f:g}'][m]:.2f}" for m in SELECTIVE) for arm in scores)
            for f in c.forget_fractions))
    arms = (*forgetting_arms(c), "continued", "base")
    results = {arm: {f"{f:g}": summarize([s[arm][f"{f:g}"] for s in per_seed], SELECTIVE)
                     for f in c.forget_fractions} for arm in arms}
    results["arms"] = {a: {**c.forgetting, **keys} for a, keys in forgetting_arms(c).items()}
    results["arms"].update(continued={**c.forgetting, "forget_weight": 0.0}, base=c.base)
    results["chance"] = round(float(np.mean([1 / len(values) for _, _, values in world.ATTRIBUTES])), 4)
    results["splits"] = {f: {"world_seed": seed, "forget_people": len(v["forget"]), "retain_people": len(v["retain"]),
                             "forget": v["forget"]} for f, v in splits.items()}
    runs = list(seconds[0])
    results["timings"] = {"train_s": {r: summarize(seconds, [r])[r] for r in runs}, "total_s": round(time.time() - t0, 1)}
    results["seeds"], results["fractions"] = list(c.seeds), list(c.forget_fractions)
    results["command"] = "python tools/knowledge.py " + " ".join(sys.argv[1:] if argv is None else argv)
    root = os.path.join(c.out_root, c.name, "selective")
    os.makedirs(root, exist_ok=True)
    atomic_write_text(os.path.join(root, "results.json"), json.dumps(results, indent=1))

    ms = lambda r: f"{r['mean']:.3f} ± {r['std'] or 0:.3f}"  # noqa: E731
    lines = ["| forget fraction | forget / retain people | arm | " + " | ".join(SELECTIVE) + " |",
             "|---:|---:|---|" + "---:|" * len(SELECTIVE)]
    for f in c.forget_fractions:
        sp = results["splits"][f"{f:g}"]
        for arm in arms:
            lines.append(f"| {f:g} | {sp['forget_people']} / {sp['retain_people']} | {arm} | "
                         + " | ".join(ms(results[arm][f"{f:g}"][m]) for m in SELECTIVE) + " |")
    t = results["timings"]["train_s"]
    lines += ["", f"exact match, mean ± std over {len(c.seeds)} seeds; chance on the closed-book metrics "
              f"{results['chance']:.3f}; forget_closed_book and retain_closed_book: every closed-book question (3 per "
              f"person) about each set's people; open_book_new: {sum(q['kind'] == 'open_book_new' for q in questions)}"
              " held-out questions, facts in context. `base`: the base model before any fine-tune.", "",
              "train seconds per seed (mean): " + ", ".join(f"{r} {t[r]['mean']:.0f}" for r in runs)
              + f"; this invocation {results['timings']['total_s']:.0f} s (finished runs are reused).", "",
              f"`{results['command']}`"]
    plot_selective(results, list(c.forget_fractions), os.path.join(root, "selective.png"),
                   f"knowledge_{c.name}: selective forgetting, {len(c.seeds)} seeds")
    write_report(root, lines, ["selective.png"])
    return results


def size_run(c, keys):
    """The run folder name of the base at a size: "base" when its keys are the base's (reused), else base_<n>x<d>."""
    full = {**c.base, **keys}
    return "base" if full == c.base else f"base_{full['n_layer']}x{full['n_embd']}"


def parameters(model):
    """(non-embedding, total) parameter counts: non-embedding leaves out the token embeddings (tied with the
    head) and the position embeddings, which a vocabulary this small keeps small anyway."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    return total - emb, total


def sizes_seed(c, data_dir, seed, questions, tok, retrieved):
    """Train (or reuse) one seed's base at every size and score it; returns ({label: scores}, train seconds).
    Scores kept in sizes.json beside the runs, recomputed when a run changes."""
    root = os.path.join(c.out_root, c.name, f"s{seed}")
    dirs = {label: os.path.join(root, size_run(c, keys)) for label, keys in c.sizes.items()}
    common = {"data_dir": data_dir, "device": c.device, "seed": seed}
    seconds = {label: train_or_reuse(dirs[label], args({**common, **c.base, **keys})) for label, keys in c.sizes.items()}
    stamp = os.path.join(root, "sizes.json")
    evaluated = {"runs": {label: read_stamp(d) for label, d in dirs.items()}, "questions": len(questions),
                 "retrieval_k": c.retrieval_k, "metrics": list(SIZED)}
    if os.path.exists(stamp) and json.load(open(stamp))["evaluated"] == evaluated:
        return json.load(open(stamp))["scores"], seconds
    scores = {}
    for label, d in dirs.items():
        model = model_from_checkpoint(load_checkpoint(os.path.join(d, "ckpt.pt"))).to(c.device).eval()
        m = knowledge_metrics(model, tok, questions, device=c.device)  # closed_book bare, open_book_new in context
        r = knowledge_metrics(model, tok, questions, lambda q: retrieved[q["prompt"]], c.device)
        non_emb, total = parameters(model)
        scores[label] = {"closed_book": m["closed_book"], "open_book_new": m["open_book_new"],
                         "retrieval": r["open_book_new"], "open_book_other": open_book_other(model, tok, questions, c.device),
                         "params": non_emb, "params_total": total}
    atomic_write_text(stamp, json.dumps({"evaluated": evaluated, "scores": scores}))
    return scores, seconds


def reader_vs_memorizer(results, labels):
    """The smallest size whose reading (context, and retrieval) matches the largest size's closed-book mean,
    and the parameter ratio; when none does, the gap (reading minus that memory) at every size."""
    largest = max(labels, key=lambda label: results[label]["params"])
    memory = results[largest]["closed_book"]["mean"]
    out = {"memorizer": largest, "memorizer_closed_book": memory}
    for metric in ("open_book_new", "retrieval"):
        match = [label for label in labels if results[label][metric]["mean"] >= memory]
        reader = min(match, key=lambda label: results[label]["params"]) if match else None
        out[metric] = {"reader": reader,
                       "param_ratio": round(results[largest]["params"] / results[reader]["params"], 2) if reader else None,
                       "gap": {label: round(results[label][metric]["mean"] - memory, 4) for label in labels}}
    return out


def plot_sizes(results, labels, path, title):
    """Closed-book, open-book and retrieval accuracy against the non-embedding parameters, mean ± std."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    xs = [results[label]["params"] for label in labels]
    for metric, marker in zip(SIZED, ("o", "s", "^", "x")):
        ax.errorbar(xs, [results[label][metric]["mean"] for label in labels], capsize=3, marker=marker,
                    yerr=[results[label][metric]["std"] or 0 for label in labels], label=metric,
                    ls="--" if metric == "open_book_other" else "-")
    for x, label in zip(xs, labels):
        ax.annotate(label, (x, 0.02), ha="center", fontsize=8)
    ax.axhline(results["chance"], color="k", ls=":", lw=1, label=f"chance ({results['chance']:.2f})")
    ax.set(xscale="log", xlabel="non-embedding parameters (log)", ylabel="exact match (mean ± std over seeds)",
           ylim=(0, 1.05), title=title)
    ax.minorticks_off()  # (labelled minor ticks would overlap)
    ax.legend(fontsize=8)
    save(fig, path)


def model_sizes(c, data_dir, questions, tok, argv):
    """The base at every size of c.sizes, every seed: results.json, results.md and sizes.png in
    <out_root>/<name>/sizes/."""
    t0 = time.time()
    retrieved, recall = retrieve(data_dir, questions, c.retrieval_k)
    per_seed, seconds = [], []
    for seed in c.seeds:
        scores, secs = sizes_seed(c, data_dir, seed, questions, tok, retrieved)
        per_seed.append(scores)
        seconds.append(secs)
        print(f"seed {seed}: " + "; ".join(f"{label} " + "/".join(f"{scores[label][m]:.2f}" for m in SIZED)
                                           for label in c.sizes))
    labels = sorted(c.sizes, key=lambda label: per_seed[0][label]["params"])
    results = {label: {"params": per_seed[0][label]["params"], "params_total": per_seed[0][label]["params_total"],
                       "keys": {**c.base, **c.sizes[label]}, "run": size_run(c, c.sizes[label]),
                       **summarize([s[label] for s in per_seed], SIZED),
                       "train_s": summarize(seconds, [label])[label]} for label in labels}
    closed = [q for q in questions if q["kind"] == "closed_book"]
    results["chance"] = round(float(np.mean([1 / len(q["candidates"]) for q in closed])), 4)
    results["retrieval_recall"] = recall
    results["answer"] = reader_vs_memorizer(results, labels)
    results["reading_every_seed"] = {label: min(results[label]["open_book_new"]["values"]) >= 0.5 for label in labels}
    results["sizes"], results["seeds"] = labels, list(c.seeds)
    results["timings"] = {"train_s": round(sum(sum(s.values()) for s in seconds), 1), "total_s": round(time.time() - t0, 1)}
    results["command"] = "python tools/knowledge.py " + " ".join(sys.argv[1:] if argv is None else argv)
    root = os.path.join(c.out_root, c.name, "sizes")
    os.makedirs(root, exist_ok=True)
    atomic_write_text(os.path.join(root, "results.json"), json.dumps(results, indent=1))

    ms = lambda r: (f"{r['mean']:.3f}" + (f" ± {r['std']:.3f}" if r["std"] is not None else "")  # noqa: E731
                    + f" ({', '.join(f'{v:.3f}' for v in r['values'])})")
    lines = ["| size | params (non-emb / total) | " + " | ".join(SIZED) + " | train s per seed |",
             "|---|---:|" + "---:|" * (len(SIZED) + 1)]
    for label in labels:
        r = results[label]
        lines.append(f"| {label} | {r['params']:,} / {r['params_total']:,} | " + " | ".join(ms(r[m]) for m in SIZED)
                     + f" | {r['train_s']['mean']:.0f} |")
    a = results["answer"]
    lines += ["", f"exact match, mean ± std over {len(c.seeds)} seeds (per seed in brackets); closed_book: no facts "
              f"(chance {results['chance']:.3f}); open_book_new: held-out people, facts block in context; retrieval: "
              f"the same questions after the {c.retrieval_k} facts lines BM25 ranks first (recall "
              f"{recall:.3f}); open_book_other: of the open-book questions whose two people differ, the share answered with the "
              f"other person's value (the binding error; about 0.5 when a line is picked at random); {len(closed)} "
              f"questions per metric.", ""]
    for metric in ("open_book_new", "retrieval"):
        r = a[metric]
        lines.append(f"{metric}: " + (f"{r['reader']} is the smallest reader at or above {a['memorizer']}'s closed_book "
                                      f"({a['memorizer_closed_book']:.3f}); {a['memorizer']} has {r['param_ratio']}x its parameters"
                                      if r["reader"] else f"no size reads as well as {a['memorizer']} remembers "
                                      f"({a['memorizer_closed_book']:.3f})")
                     + "; gap (reading minus that memory): "
                     + ", ".join(f"{label} {g:+.3f}" for label, g in r["gap"].items()) + ".")
    lines += ["", "open_book_new >= 0.5 in every seed: " + ", ".join(
        f"{label} {'yes' if ok else 'no'}" for label, ok in results["reading_every_seed"].items()) + ".", "",
              f"Training took {results['timings']['train_s'] / 60:.0f} CPU minutes (as recorded when each run was "
              f"trained); this invocation {results['timings']['total_s']:.0f} s (finished runs are reused).", "",
              f"`{results['command']}`"]
    plot_sizes(results, labels, os.path.join(root, "sizes.png"),
               f"knowledge_{c.name}: reader vs memorizer by size, {len(c.seeds)} seeds")
    write_report(root, lines, ["sizes.png"])
    return results


def world_with_new_people(data_dir, n_new):
    """The world of data_dir drawn again with n_new new people (prepare/world.py make_world), checked to be the
    world of data_dir/world.json but for them."""
    gen = json.load(open(os.path.join(data_dir, "meta.json")))["generator"]
    w = world.make_world(gen["seed"], gen["people"], gen["held_out"], gen["name_parts"], gen["group_size"], n_new)
    same = {k: v for k, v in w.items() if k not in ("fresh", "new_people")}
    same["attributes"] = {n: a for n, a in w["attributes"].items() if n not in w["new_people"]}
    if json.loads(json.dumps(same)) != json.load(open(os.path.join(data_dir, "world.json"))):
        raise UserError(f"the world drawn again with new people differs from {data_dir}/world.json: write the world "
                        f"again (delete {data_dir}) with this prepare/world.py")
    return w


def capacity_data(data_dir, n_new, fraction, new_share):
    """<data_dir>/capacity_n<n>_f<fraction>_s<new_share>/: the world with n_new new people (prepare/world.py
    make_world, drawn after the rest, which is checked to be the world of data_dir) and closed-book documents
    about them and the retain set of fraction (capacity_documents), a quarter as many as the world's train
    documents. Its world.json has the new people, its questions.jsonl and generator are the world's, so
    train.py scores new_closed_book beside forget_ and retain_closed_book on it. Written unless it is there."""
    gen = json.load(open(os.path.join(data_dir, "meta.json")))["generator"]
    out = os.path.join(data_dir, f"capacity_n{n_new}_f{fraction:g}_s{new_share:g}")
    stamp = {"generator": gen, "new_people": n_new, "fraction": fraction, "new_share": new_share}
    if os.path.exists(os.path.join(out, "capacity.json")) and json.load(open(os.path.join(out, "capacity.json"))) == stamp:
        return out
    w = world_with_new_people(data_dir, n_new)
    _, retain = world.forget_split(w, fraction, gen["seed"])
    tok = get_tokenizer(json.load(open(os.path.join(data_dir, "meta.json"))))
    n = max(gen["train_docs"] // 4, 1)
    write_dataset(out, {"train": world.capacity_documents(w, n, gen["seed"] + 6, retain, new_share, tok),
                        "val": world.capacity_documents(w, max(n // 20, 1), gen["seed"] + 7, retain, new_share, tok)},
                  tok, "world_capacity", extra_meta={"generator": gen})
    atomic_write_text(os.path.join(out, "world.json"), json.dumps({k: v for k, v in w.items() if k != "fresh"}))
    atomic_write_text(os.path.join(out, "questions.jsonl"), open(os.path.join(data_dir, "questions.jsonl")).read())
    atomic_write_text(os.path.join(out, "capacity.json"), json.dumps(stamp))
    return out


CAPACITY = ("new_closed_book", "retain_closed_book", "forget_closed_book")  # tracked while the new people are learned


def first_reach(rows, metric, level=0.5):
    """The first eval iteration at which metric is at least level, or None if it never is."""
    return next((r["iter"] for r in rows if r.get(metric, -1) >= level), None)


def capacity(c, data_dir, argv):
    """Does forgetting free capacity? For each fraction, seed and run of capacity_arms (a forgetting arm of the
    sweep, or continued), train.py goes on from that run on capacity_data (new people and the retain set,
    forget_weight=0: the LM loss only), with the forgetting keys and c.capacity on top; the steps to reach
    new_closed_book 0.5 and the metrics at every eval are compared. Writes <out_root>/<name>/capacity_n<n>/."""
    t0 = time.time()
    per, seconds = {}, {}
    for f in c.forget_fractions:
        cap_dir = capacity_data(data_dir, c.new_people, f, c.new_share)
        for seed in c.seeds:
            root = os.path.join(c.out_root, c.name, f"s{seed}")
            common = {"data_dir": cap_dir, "device": c.device, "seed": seed}
            for arm in c.capacity_arms:
                src = os.path.join(root, arm if arm == "continued" else fraction_run(arm, f))
                run = os.path.join(root, f"capacity_n{c.new_people}_{fraction_run(arm, f)}")
                keys = {**common, **c.forgetting, "forget_weight": 0.0, "retain_weight": 0.0, "forget_fraction": f,
                        "init_from": src, "always_save_checkpoint": True, **c.capacity}
                secs = train_or_reuse(run, args(keys), [src])
                rows = [r for r in read_metrics(run) if "new_closed_book" in r]
                key = f"{arm}_f{f:g}"
                per.setdefault(key, []).append({"steps_to_half": first_reach(rows, "new_closed_book"),
                                                "iters": [r["iter"] for r in rows],
                                                **{m: [r[m] for r in rows] for m in CAPACITY}})
                seconds.setdefault(key, []).append(secs)
                print(f"seed {seed} {key}: steps to new_closed_book 0.5: {per[key][-1]['steps_to_half']}; "
                      + " ".join(f"{m} {per[key][-1][m][-1]:.3f}" for m in CAPACITY))
    results = {}
    for key, runs in per.items():
        reached = [r["steps_to_half"] for r in runs if r["steps_to_half"] is not None]
        m, sd = mean_std(reached) if reached else (float("nan"), float("nan"))
        results[key] = {"steps_to_half": {"mean": None if np.isnan(m) else round(m, 1),
                                          "std": None if np.isnan(sd) else round(sd, 1),
                                          "values": [r["steps_to_half"] for r in runs], "reached": len(reached)},
                        "iters": runs[0]["iters"],
                        **{mt: {"mean": [round(float(np.mean(v)), 4) for v in zip(*(r[mt] for r in runs))],
                                "std": [round(float(np.std(v, ddof=1)), 4) if len(runs) > 1 else None
                                        for v in zip(*(r[mt] for r in runs))],
                                "values": [r[mt] for r in runs]} for mt in CAPACITY},
                        "train_s": seconds[key]}
    for key in list(results):  # paired by seed (the same base): each arm's steps minus the control's
        control = per.get(f"continued_f{key.rsplit('_f', 1)[1]}")
        if control and not key.startswith("continued_"):
            d = [a["steps_to_half"] - b["steps_to_half"] for a, b in zip(per[key], control)
                 if a["steps_to_half"] is not None and b["steps_to_half"] is not None]
            m, sd = mean_std(d) if d else (float("nan"), float("nan"))
            results[key]["steps_minus_continued"] = {"mean": None if np.isnan(m) else round(m, 1),
                                                     "std": None if np.isnan(sd) else round(sd, 1), "values": d}
    results["setup"] = {"new_people": c.new_people, "new_share": c.new_share, "capacity": c.capacity,
                        "train_keys": {**c.forgetting, "forget_weight": 0.0, "retain_weight": 0.0, **c.capacity},
                        "arms": list(c.capacity_arms), "fractions": list(c.forget_fractions)}
    results["seeds"], results["total_s"] = list(c.seeds), round(time.time() - t0, 1)
    results["command"] = "python tools/knowledge.py " + " ".join(sys.argv[1:] if argv is None else argv)
    root = os.path.join(c.out_root, c.name, f"capacity_n{c.new_people}")
    os.makedirs(root, exist_ok=True)
    atomic_write_text(os.path.join(root, "results.json"), json.dumps(results, indent=1))

    keys = list(per)
    iters = results[keys[0]]["iters"]
    show = [i for i in iters if i in (0, 50, 100, 150, 200, 300) or i == iters[-1]]
    ms = lambda r, j: f"{r['mean'][j]:.3f} ± {r['std'][j] or 0:.3f}"  # noqa: E731
    lines = ["| run | steps to new_closed_book 0.5 | " + " | ".join(f"new @{i}" for i in show)
             + f" | retain @{iters[-1]} | forget @{iters[-1]} |", "|---|---:|" + "---:|" * (len(show) + 2)]
    for key in keys:
        r = results[key]
        st = r["steps_to_half"]
        reach = f"{st['mean']} ± {st['std'] or 0} ({st['reached']}/{len(c.seeds)} reached)" if st["reached"] \
            else f"not reached (0/{len(c.seeds)})"
        lines.append(f"| {key} | {reach} | " + " | ".join(ms(r["new_closed_book"], iters.index(i)) for i in show)
                     + f" | {ms(r['retain_closed_book'], -1)} | {ms(r['forget_closed_book'], -1)} |")
    lines += [""] + [f"{key}: steps minus continued's, paired by seed: {r['mean']} ± {r['std'] or 0} "
                     f"(values {r['values']})" for key in keys
                     for r in [results[key].get("steps_minus_continued")] if r]
    lines += ["", f"exact match on every closed-book question about the {c.new_people} new people (new), the retain set "
              f"and the forget set, mean ± std over {len(c.seeds)} seeds; steps: the first eval iteration at 0.5.",
              "", f"`{results['command']}`"]
    fig, axes = plt.subplots(1, len(CAPACITY), figsize=(13, 3.8), sharey=True)
    for ax, mt in zip(axes, CAPACITY):
        for key in keys:
            r = results[key][mt]
            ax.errorbar(iters, r["mean"], yerr=[s or 0 for s in r["std"]], capsize=2, marker=".", label=key)
        ax.axhline(0.5, color="k", ls=":", lw=1)
        ax.set(xlabel="iteration (learning the new people)", title=mt, ylim=(0, 1.05))
    axes[0].set_ylabel("exact match (mean ± std over seeds)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"knowledge_{c.name}: learning {c.new_people} new people after forgetting, {len(c.seeds)} seeds")
    save(fig, os.path.join(root, "capacity.png"))
    write_report(root, lines, ["capacity.png"])
    return results


def facts_data(data_dir, qa_people, paraphrases, qa_share, replay):
    """<data_dir>/lora_facts_q<qa_people>_p<paraphrases>_s<qa_share>_r<replay>/: what a LoRA that carries facts
    trains on (prepare/world.py lora_facts_documents): paraphrases of the facts of the held-out people (the
    targets: statements only) and of qa_people new people (make_world's, drawn after the rest), closed-book Q&A
    about the new people (qa_share of those documents), and with replay > 0 the base's first training documents
    (replay: their share of all). val: the same without the replayed ones. Its world.json has the new people
    and its questions.jsonl is the world's, so train.py scores the table's metrics and new_closed_book (the
    Q&A people) as it trains. Written unless it is there."""
    gen = json.load(open(os.path.join(data_dir, "meta.json")))["generator"]
    out = os.path.join(data_dir, f"lora_facts_q{qa_people}_p{paraphrases}_s{qa_share:g}_r{replay:g}")
    stamp = {"generator": gen, "qa_people": qa_people, "paraphrases": paraphrases, "qa_share": qa_share,
             "replay": replay}
    if os.path.exists(os.path.join(out, "facts.json")) and json.load(open(os.path.join(out, "facts.json"))) == stamp:
        return out
    w = world_with_new_people(data_dir, qa_people)
    tok = get_tokenizer(json.load(open(os.path.join(data_dir, "meta.json"))))
    facts = lambda: world.lora_facts_documents(w, w["held_out"], w["new_people"], paraphrases, qa_share,  # noqa: E731
                                               gen["seed"] + 8, tok)
    n = sum(1 for _ in facts())
    base_world = world.make_world(gen["seed"], gen["people"], gen["held_out"], gen["name_parts"], gen["group_size"])
    mix, shape = world.document_shape(gen)
    replayed = world.documents(base_world, round(replay / (1 - replay) * n), gen["seed"] + 1, "train", mix, tok,
                               **shape)  # the base's first documents
    write_dataset(out, {"train": itertools.chain(facts(), replayed), "val": facts()}, tok, "world_lora_facts",
                  extra_meta={"generator": gen})
    atomic_write_text(os.path.join(out, "world.json"), json.dumps({k: v for k, v in w.items() if k != "fresh"}))
    atomic_write_text(os.path.join(out, "questions.jsonl"), open(os.path.join(data_dir, "questions.jsonl")).read())
    atomic_write_text(os.path.join(out, "facts.json"), json.dumps(stamp))
    return out


def facts_arm_keys(c, arm):
    """(data keys, train.py keys) of a lora_facts arm: FACTS_DATA's defaults under its own."""
    keys = c.lora_facts[arm]
    return {k: keys.get(k, v) for k, v in FACTS_DATA.items()}, {k: v for k, v in keys.items() if k not in FACTS_DATA}


def facts_metrics(model, tok, w, questions, device):
    """{metric: exact match, metric_loss: answer loss} for FACTS (w: the world with the Q&A people)."""
    reading = [q for q in questions if q["kind"] == "open_book_new"]
    probes = [{"prompt": PROBES[attr].format(n), "answer": w["attributes"][n][attr]}
              for n in w["held_out"] for attr, _, _ in world.ATTRIBUTES]
    sets = {"target_closed_book": (closed_book_questions(w, w["held_out"]), None),
            "open_book_new_alone": (reading, None), "target_statement": (probes, None),
            "qa_closed_book": (closed_book_questions(w, w["new_people"]), None),
            "closed_book": ([q for q in questions if q["kind"] == "closed_book"], None),
            "open_book_new": (reading, [q["facts"] for q in reading])}
    out = {}
    for metric, (qs, contexts) in sets.items():
        s = score(model, tok, qs, contexts, device)
        out[metric], out[f"{metric}_loss"] = round(s["acc"], 5), round(s["loss"], 5)
    return out


def facts_seed(c, data_dir, seed, questions, tok, w, facts_dirs):
    """A LoRA that carries facts, one seed: train (or reuse) the base, the plain LoRA (the table's `lora`, the
    control) and one LoRA per lora_facts arm, score them all and the base on FACTS; returns ({arm: metrics},
    train seconds per run). Scores kept in lora_facts.json."""
    root = os.path.join(c.out_root, c.name, f"s{seed}")
    dirs = {"base": os.path.join(root, "base"), "lora": os.path.join(root, "lora"),
            **{arm: os.path.join(root, f"lora_{arm}") for arm in c.lora_facts}}
    common = {"data_dir": data_dir, "device": c.device, "seed": seed}
    seconds = {"base": train_or_reuse(dirs["base"], args({**common, **c.base})),
               "lora": train_or_reuse(dirs["lora"], args({**common, **c.lora, "data_dir": lora_data(data_dir),
                                                          "init_from": dirs["base"]}), [dirs["base"]])}
    for arm in c.lora_facts:  # the last model is scored: no checkpoint is picked by a val loss
        seconds[arm] = train_or_reuse(dirs[arm], args({**common, **c.lora, "init_from": dirs["base"],
                                                       "always_save_checkpoint": True, **facts_arm_keys(c, arm)[1],
                                                       "data_dir": facts_dirs[arm]}), [dirs["base"]])
    stamp = os.path.join(root, "lora_facts.json")
    evaluated = {"runs": {r: read_stamp(d) for r, d in dirs.items()}, "questions": len(questions),
                 "qa_people": c.qa_people}
    if os.path.exists(stamp) and json.load(open(stamp))["evaluated"] == evaluated:
        return json.load(open(stamp))["scores"], seconds
    scores = {r: facts_metrics(model_from_checkpoint(load_checkpoint(os.path.join(d, "ckpt.pt"))).to(c.device).eval(),
                               tok, w, questions, c.device) for r, d in dirs.items()}
    atomic_write_text(stamp, json.dumps({"evaluated": evaluated, "scores": scores}))
    return scores, seconds


def plot_facts(results, arms, path, title):
    """Every arm's FACTS metrics, mean ± std over the seeds, with chance."""
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / len(arms)
    for j, arm in enumerate(arms):
        xs = np.arange(len(FACTS)) + (j - (len(arms) - 1) / 2) * width
        ax.bar(xs, [results[arm][m]["mean"] for m in FACTS], width, yerr=[results[arm][m]["std"] or 0 for m in FACTS],
               capsize=3, label=arm)
    ax.axhline(results["chance"], color="k", ls=":", lw=1, label=f"chance ({results['chance']:.2f})")
    ax.set_xticks(np.arange(len(FACTS)), [m.replace("_", "_\n", 1) for m in FACTS], fontsize=8)
    ax.set(ylabel="exact match (mean ± std over seeds)", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=8, ncol=len(arms) + 1, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    save(fig, path)


def lora_facts(c, data_dir, questions, tok, argv):
    """A LoRA that carries facts (Allen-Zhu and Li's knowledge augmentation and mixed training): per seed the
    base, the plain LoRA and each arm of c.lora_facts, scored on FACTS. Writes <out_root>/<name>/lora_facts/:
    results.json (per arm and metric {mean, std, values} over the seeds; the arms' keys and data; timings; the
    command), results.md and lora_facts.png."""
    t0 = time.time()
    facts_dirs = {arm: facts_data(data_dir, c.qa_people, **facts_arm_keys(c, arm)[0]) for arm in c.lora_facts}
    w = world_with_new_people(data_dir, c.qa_people)
    per_seed, seconds = [], []
    for seed in c.seeds:
        scores, secs = facts_seed(c, data_dir, seed, questions, tok, w, facts_dirs)
        per_seed.append(scores)
        seconds.append(secs)
        print(f"seed {seed}: " + "; ".join(f"{arm} " + " ".join(f"{scores[arm][m]:.2f}" for m in FACTS)
                                           for arm in scores))
    arms = list(per_seed[0])
    results = {arm: summarize([s[arm] for s in per_seed], [*FACTS, *(f"{m}_loss" for m in FACTS)]) for arm in arms}
    results["arms"] = {"lora": {**c.lora, "data": "the store's facts lines of the held-out people and group B"},
                       **{arm: {**c.lora, "always_save_checkpoint": True, **facts_arm_keys(c, arm)[1],
                                "data": {**facts_arm_keys(c, arm)[0], "qa_people": c.qa_people,
                                         "documents": json.load(open(os.path.join(d, "meta.json")))["splits"]}}
                          for arm, d in facts_dirs.items()}}
    results["chance"] = round(float(np.mean([1 / len(values) for _, _, values in world.ATTRIBUTES])), 4)
    runs = list(seconds[0])
    results["timings"] = {"train_s": {r: summarize(seconds, [r])[r] for r in runs}, "total_s": round(time.time() - t0, 1)}
    results["seeds"] = list(c.seeds)
    results["command"] = "python tools/knowledge.py " + " ".join(sys.argv[1:] if argv is None else argv)
    root = os.path.join(c.out_root, c.name, "lora_facts")
    os.makedirs(root, exist_ok=True)
    atomic_write_text(os.path.join(root, "results.json"), json.dumps(results, indent=1))

    ms = lambda r: f"{r['mean']:.3f} ± {r['std'] or 0:.3f}"  # noqa: E731
    lines = ["| arm | " + " | ".join(FACTS) + " |", "|---|" + "---:|" * len(FACTS)]
    lines += [f"| {arm} | " + " | ".join(ms(results[arm][m]) for m in FACTS) + " |" for arm in arms]
    lines += ["", "per seed (" + ", ".join(map(str, c.seeds)) + "):", "",
              "| arm | " + " | ".join(FACTS) + " |", "|---|" + "---:|" * len(FACTS)]
    lines += [f"| {arm} | " + " | ".join(", ".join(f"{v:.2f}" for v in results[arm][m]["values"]) for m in FACTS)
              + " |" for arm in arms]
    t = results["timings"]["train_s"]
    lines += ["", f"exact match, mean ± std over {len(c.seeds)} seeds; chance {results['chance']:.3f}. Targets: the "
              f"{len(w['held_out'])} held-out people (statements only in the arms' data); target_closed_book: every "
              "question about them (3 each), the question alone; open_book_new_alone: the table's open_book_new "
              "questions, the question alone; target_statement: their facts as a statement to complete "
              "(\"<name> lives in\"); qa_closed_book: every question about the "
              f"{c.qa_people} Q&A people (trained on); closed_book: the memorized world (group A); open_book_new: "
              "reading, facts in context. `lora`: the table's plain LoRA (the store's facts lines); `base`: no "
              "adapter.", "", "train seconds per seed (mean): " + ", ".join(f"{r} {t[r]['mean']:.0f}" for r in runs)
              + f"; this invocation {results['timings']['total_s']:.0f} s (finished runs are reused).", "",
              f"`{results['command']}`"]
    plot_facts(results, arms, os.path.join(root, "lora_facts.png"),
               f"knowledge_{c.name}: a LoRA that carries facts, {len(c.seeds)} seeds")
    write_report(root, lines, ["lora_facts.png"])
    return results


def main(argv=None):
    (c,), _ = configure([KnowledgeConfig()], argv, description=__doc__)
    if not c.name:
        raise UserError("name is empty: set it in the config file (outputs go to <out_root>/<name>/)")
    if not c.seeds or c.retrieval_k < 1:
        raise UserError(f"give at least one seed and retrieval_k >= 1, got seeds={c.seeds}, retrieval_k={c.retrieval_k}")
    if not c.forgetting.get("forget_weight") or not c.lora.get("lora_rank"):
        raise UserError("the forgetting keys must set forget_weight > 0 and the lora keys lora_rank > 0")
    if not all(0 < f <= 1 for f in c.forget_fractions) or len(set(c.forget_fractions)) < len(c.forget_fractions):
        raise UserError(f"forget_fractions must be distinct shares in (0, 1], got {c.forget_fractions}")
    if c.new_people and (c.new_people < 0 or not c.forget_fractions or 1 in c.forget_fractions
                         or not 0 < c.new_share <= 1 or not c.capacity_arms
                         or not set(c.capacity_arms) <= {*forgetting_arms(c), "continued"}):
        raise UserError(f"new_people needs forget_fractions below 1, new_share in (0, 1] and capacity_arms among "
                        f"{[*forgetting_arms(c), 'continued']}, got new_people={c.new_people}, forget_fractions="
                        f"{c.forget_fractions}, new_share={c.new_share}, capacity_arms={c.capacity_arms}")
    if c.sizes and (c.forget_fractions or c.new_people or len(c.sizes) < 2
                    or not all(isinstance(k, dict) and {**c.base, **k}.get("n_layer") and {**c.base, **k}.get("n_embd")
                               for k in c.sizes.values())):
        raise UserError(f"sizes needs at least two {{label: train.py keys}} entries (n_layer and n_embd set here or "
                        f"in base) and no forget_fractions or new_people, got sizes={c.sizes}")
    for arm, keys in c.lora_facts.items():
        d = facts_arm_keys(c, arm)[0] if isinstance(keys, dict) else {}
        if not (d and 1 <= d["paraphrases"] <= len(world.FORMS) and 0 <= d["qa_share"] < 1
                and 0 <= d["replay"] < 1 and c.qa_people >= 1):
            raise UserError(f"lora_facts arm {arm!r} needs keys with paraphrases in 1..{len(world.FORMS)}, qa_share in "
                            f"[0, 1), replay in [0, 1), and qa_people >= 1; got {keys}, qa_people={c.qa_people}")
    if str(c.data.get("echo")) == "True" and not c.sizes:
        raise UserError("an --echo world goes with the sizes sweep only: the forgetting, priming and LoRA arms "
                        "state facts in the default form and tell closed-book documents by their first word")
    t0 = time.time()
    data_dir = prepare_data(c, world, "knowledge")
    questions = load_questions(data_dir)
    if any("other" not in q for q in questions):  # written before open_book_other: the same world, written again
        world.main(args(c.data) + [f"--out={data_dir}"])
        questions = load_questions(data_dir)
    tok = get_tokenizer(json.load(open(os.path.join(data_dir, "meta.json"))))
    if c.new_people:
        selective(c, data_dir, questions, tok, argv)
        return capacity(c, data_dir, argv)
    if c.lora_facts:
        return lora_facts(c, data_dir, questions, tok, argv)
    if c.forget_fractions:
        return selective(c, data_dir, questions, tok, argv)
    if c.sizes:
        return model_sizes(c, data_dir, questions, tok, argv)
    retrieved, recall = retrieve(data_dir, questions, c.retrieval_k)
    per_seed, seconds = [], []
    for seed in c.seeds:
        s, secs = run_seed(c, data_dir, seed, questions, tok, retrieved)
        per_seed.append(s)
        seconds.append(secs)
        print(f"seed {seed}: " + "; ".join(f"{a} " + " ".join(f"{s[a][m]:.2f}" for m in METRICS) for a in ARMS))

    metrics = [*METRICS, *(f"{m}_loss" for m in METRICS)]
    results = {a: summarize([s[a] for s in per_seed], metrics) for a in ARMS}
    closed = [q for q in questions if q["kind"] == "closed_book"]
    chance = float(np.mean([1 / len(q["candidates"]) for q in closed]))
    results["priming_wrong_doc"] = summarize([s["priming"] for s in per_seed],
                                             ["open_book_new_wrong_doc", "counterfactual_follow_wrong_doc"])
    results["counterfactual_memory"] = {a: summarize([s[a] for s in per_seed], ["counterfactual_memory"])
                                        ["counterfactual_memory"] for a in ARMS if a != "priming"}
    results["retrieval_recall"] = recall
    results["chance"] = round(chance, 4)
    results["sanity"] = {"baseline closed_book >= 0.3": results["baseline"]["closed_book"]["mean"] >= 0.3,
                         "context open_book_new >= 0.5": results["context"]["open_book_new"]["mean"] >= 0.5}
    results["timings"] = {"train_s": {r: summarize(seconds, [r])[r] for r in RUNS},
                          "eval_s": summarize(per_seed, ["eval_s"])["eval_s"], "total_s": round(time.time() - t0, 1)}
    results["seeds"] = list(c.seeds)
    results["command"] = "python tools/knowledge.py " + " ".join(sys.argv[1:] if argv is None else argv)
    root = os.path.join(c.out_root, c.name)
    atomic_write_text(os.path.join(root, "results.json"), json.dumps(results, indent=1))

    n = len(c.seeds)
    lines = [f"| arm | {' | '.join(METRICS)} |", "|---|" + "---:|" * len(METRICS)]
    for a in ARMS:
        lines.append(f"| {a} | " + " | ".join(
            f"{results[a][m]['mean']:.3f} ± {results[a][m]['std'] or 0:.3f} ({results[a][m + '_loss']['mean']:.2f})"
            for m in METRICS) + " |")
    t = results["timings"]["train_s"]
    lines += ["", f"exact match, mean ± std over {n} seeds (answer loss in nats in brackets); chance on closed_book "
              f"{chance:.3f}; {len(closed)} questions per metric. Retrieval recall@{c.retrieval_k} "
              f"{recall:.3f}. Primed by another question's facts (control): open_book_new "
              f"{results['priming_wrong_doc']['open_book_new_wrong_doc']['mean']:.3f}, counterfactual_follow "
              f"{results['priming_wrong_doc']['counterfactual_follow_wrong_doc']['mean']:.3f}. Share of "
              "counterfactual answers that follow memory: " + ", ".join(
                  f"{a} {v['mean']:.3f}" for a, v in results["counterfactual_memory"].items()) + ".",
              "", "train seconds per seed (mean): " + ", ".join(f"{r} {t[r]['mean']:.0f}" for r in RUNS)
              + f"; scoring every arm {results['timings']['eval_s']['mean']:.0f} s. Training every run of every "
              f"seed took {sum(sum(s.values()) for s in seconds) / 60:.0f} CPU minutes (as recorded when each was "
              f"trained); this invocation {results['timings']['total_s']:.0f} s (finished runs are reused).", "",
              f"`{results['command']}`"]
    plot_arms(results, os.path.join(root, "arms.png"), f"knowledge_{c.name}: {n} seeds", chance)
    plot_curves(c, os.path.join(root, "curves.png"), f"knowledge_{c.name}: the metrics over training, {n} seeds")
    write_report(root, lines, ["arms.png", "curves.png"],
                 [f"sanity {k}: {'holds' if ok else 'FAILS: the setup says nothing, change it'}"
                  for k, ok in results["sanity"].items()])
    return results


if __name__ == "__main__":
    main_guard(main)
