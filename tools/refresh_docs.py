"""
Refresh the curated copies that the docs show (docs/results/<experiment>/) from the runs that made them.

Runs never touch tracked files: they write into ignored folders (out-*/, plots/). This is the one
command that copies their outputs into the docs, and only when you ask for it.

    python tools/refresh_docs.py                       # every experiment whose outputs exist
    python tools/refresh_docs.py main_job analysis     # only these (an error if their outputs are missing)
    python tools/refresh_docs.py --list                # what each experiment copies, and the command that makes it
"""

import os
import shutil
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
DOCS = os.path.join(ROOT, "docs", "results")

ANALYSIS = ("tokens/tokens.png", "distribution/distribution.png", "logprobs/logprobs.png",
            "logprobs/logprobs_bounds.png", "shape/shape.png", "embeddings/embeddings.png",
            "attention/attention.png", "lens/lens.png", "lens/lens_loss.png", "patch/patch.png")

INDUCTION = ("results.md", "results.json", "training.png", "heads_attn_only_1l.png", "heads_attn_only_2l.png",
             "heads_full_2l.png")


@dataclass
class Experiment:
    source: str  # the folder its outputs are in, relative to the repository
    files: tuple  # paths under source; each is copied to docs/results/<experiment>/<its file name>
    command: str  # what writes them


EXPERIMENTS = {
    "main_job": Experiment("out-facts", ("position_loss.png", "loss.png", "mean_p.png"), "python train.py"),
    "first_experiment": Experiment("out-first", ("positions.png",),
                                   "the three commands of README.md, 'Your first experiment'"),
    "analysis": Experiment("plots", ANALYSIS, "the commands of docs/analysis.md, 'The example figures'"),
    "compare_shakespeare_char": Experiment(
        "out-compare/shakespeare_char", ("results.md", "results.json", "val_loss.png", "position_loss.png"),
        "python tools/compare.py config/sweeps/compare_shakespeare_char.py"),
    "compare_shakespeare_char_speed": Experiment(
        "out-compare/shakespeare_char", ("bench.md",),
        "python tools/compare.py config/sweeps/compare_shakespeare_char.py --bench=True"),
    "compare_shakespeare_char_budgets_small": Experiment(
        "out-compare/shakespeare_char_budgets_small", ("budgets.md", "budgets.json", "budget_loss.png",
                                                       "multiplier.png", "bench.md"),
        "python tools/compare.py config/sweeps/compare_shakespeare_char_budgets.py --name=shakespeare_char_budgets_small "
        "--budgets=\"(500,1000,2000)\" --only=\"('layer_windows_8_32',)\" (after the same with --bench=True)"),
    "compare_shakespeare_char_budgets": Experiment(
        "out-compare/shakespeare_char_budgets", ("budgets.md", "budgets.json", "budget_loss.png", "multiplier.png",
                                                 "bench.md"),
        "python tools/compare.py config/sweeps/compare_shakespeare_char_budgets.py --workers=2 "
        "--only=\"('layer_windows_8_32',)\" (after the same with --bench=True)"),
    "compare_datasets": Experiment("out-compare/datasets", ("results.md", "results.json", "val_loss.png",
                                                            "position_loss.png"),
                                   "python tools/compare.py config/sweeps/compare_datasets.py"),
    "compare_vocab": Experiment("out-compare/vocab", ("results.md", "results.json", "bench.md"),
                                "python tools/compare.py config/sweeps/compare_vocab.py (and --bench=True first)"),
    "compare_vocab_long": Experiment("out-compare/vocab_long", ("results.md", "results.json"),
                                     "python tools/compare.py config/sweeps/compare_vocab_long.py"),
    "grokking": Experiment("out-compare/grokking", ("results.md", "results.json", "accuracy.png", "val_loss.png"),
                           "python tools/compare.py config/sweeps/compare_grokking.py"),
    "shakespeare_char_tangent": Experiment(
        "out-compare/shakespeare_char_tangent", ("results.md", "results.json", "val_loss.png"),
        "python tools/compare.py config/sweeps/compare_shakespeare_char_tangent.py"),
    "compare_attn_gate": Experiment("out-compare/attn_gate", ("results.md", "results.json", "val_loss.png"),
                                    "python tools/compare.py config/sweeps/compare_attn_gate.py"),
    "compare_compress_past": Experiment("out-compare/compress_past", ("results.md", "results.json", "val_loss.png",
                                                                      "position_loss.png"),
                                        "python tools/compare.py config/sweeps/compare_compress_past.py"),
    "compare_kv_shift": Experiment("out-compare/kv_shift", ("results.md", "results.json", "val_loss.png", "position_loss.png"),
                                   "python tools/compare.py config/sweeps/compare_kv_shift.py"),
    "compare_recall": Experiment("out-compare/recall", ("results.md", "results.json", "val_loss.png", "position_loss.png"),
                                 "python tools/compare.py config/sweeps/compare_recall.py"),
    "induction_synthetic": Experiment(
        "out-induction/synthetic", INDUCTION + ("attention/attention.png", "patch/patch.png"),
        "python tools/induction.py config/sweeps/induction_synthetic.py, then the attention and patch commands of "
        "docs/induction.md"),
    "induction_synthetic_dense": Experiment(
        "out-induction/synthetic_dense",
        INDUCTION + ("attention/attention.png", "patch/patch.png", "path/path.png"),
        "python tools/induction.py config/sweeps/induction_synthetic_dense.py, then the attention, patch and path "
        "commands of docs/induction.md"),
    "induction_shakespeare_char": Experiment("out-induction/shakespeare_char", INDUCTION[:-1],
                                             "python tools/induction.py config/sweeps/induction_shakespeare_char.py"),
    "induction_shakespeare_char_full": Experiment(
        "out-induction/shakespeare_char_full", ("results.md", "results.json", "training.png", "heads_full_2l.png"),
        "python tools/induction.py config/sweeps/induction_shakespeare_char.py --name=shakespeare_char_full "
        "--runs=\"{'full_2l': {'n_layer': 2}}\""),
    "compare_shakespeare_char_budget": Experiment(
        "out-compare/shakespeare_char_budget", ("results.md", "results.json", "val_loss.png"),
        "python tools/compare.py config/sweeps/compare_shakespeare_char_budget.py --seeds=\"(0,)\" --workers=2"),
    "compare_shakespeare_char_converged": Experiment(
        "out-compare/shakespeare_char_converged", ("results.md", "results.json", "val_loss.png", "position_loss.png"),
        "python tools/compare.py config/sweeps/compare_shakespeare_char_converged.py --workers=2"),
    "sweep_speed": Experiment(
        "out-bench-sweep", ("bench_sweep.md",),
        "python tools/bench_sweep.py config/sweeps/compare_shakespeare_char.py --steps=600 --rounds=4"),
    "priming_facts": Experiment("out-priming/facts", ("results.md", "results.json", "details.json", "conditions.png",
                                                      "runs.png"),
                                "python tools/prime.py config/sweeps/priming_facts.py"),
    "priming_one_fact": Experiment("out-priming/one_fact", ("results.md", "results.json", "details.json",
                                                            "conditions.png"),
                                   "python tools/prime.py config/sweeps/priming_one_fact.py"),
    "priming_binding": Experiment("out-priming/binding", ("results.md", "results.json", "details.json", "conditions.png",
                                                          "runs.png", "seeds.png"),
                                  "python tools/prime.py config/sweeps/priming_binding.py"),
    "priming_base_kv_shift": Experiment("out-priming/base_kv_shift", ("results.md", "details.json"),
                                        "python tools/prime.py config/sweeps/priming_base_binding.py"),
    "priming_base_4x128": Experiment(
        "out-priming/base_4x128", ("results.md", "details.json"),
        "python tools/prime.py config/sweeps/priming_base_binding.py --name=base_4x128 --base=\"{'block_size': 32, "
        "'n_layer': 4, 'n_head': 4, 'n_embd': 128, 'dropout': 0.0, 'bias': False, 'batch_size': 32, "
        "'learning_rate': 3e-3, 'min_lr': 3e-4, 'warmup_iters': 50, 'max_iters': 4000, 'lr_decay_iters': 4000, "
        "'eval_interval': 500, 'eval_iters': 20, 'log_interval': 500}\""),
    "knowledge_world": Experiment("out-knowledge/world", ("results.md", "results.json", "arms.png", "curves.png"),
                                  "python tools/knowledge.py config/sweeps/knowledge.py"),
    "knowledge_selective": Experiment(
        "out-knowledge/world/selective", ("results.md", "results.json", "selective.png"),
        "python tools/knowledge.py config/sweeps/knowledge.py --forget_fractions=\"(0.1, 0.5, 0.9)\" "
        "--selective_arms=\"{'forget_retain': {'retain_weight': 1.0}, 'neglect_retain': {'forget_weight': 0.0, "
        "'retain_weight': 1.0}}\""),
    **{f"knowledge_capacity_n{n}": Experiment(
        f"out-knowledge/world/capacity_n{n}", ("results.md", "results.json", "capacity.png"),
        "python tools/knowledge.py config/sweeps/knowledge.py --forget_fractions=\"(0.5,)\" "
        f"--selective_arms=\"{{'forget_retain': {{'retain_weight': 1.0}}}}\" --new_people={n} "
        "--capacity=\"{'eval_interval': 10, 'eval_iters': 5, 'log_interval': 50}\"") for n in (100, 300)},
    "knowledge_sizes": Experiment("out-knowledge/world/sizes", ("results.md", "results.json", "sizes.png"),
                                  "python tools/knowledge.py config/sweeps/knowledge_sizes.py"),
    "knowledge_sizes_1000": Experiment("out-knowledge/world_1000/sizes", ("results.md", "results.json", "sizes.png"),
                                       "python tools/knowledge.py config/sweeps/knowledge_sizes_1000.py"),
    "knowledge_sizes_echo": Experiment("out-knowledge/world_echo/sizes", ("results.md", "results.json", "sizes.png"),
                                       "python tools/knowledge.py config/sweeps/knowledge_sizes_echo.py"),
    "knowledge_sizes_echo_1000": Experiment(
        "out-knowledge/world_echo_1000/sizes", ("results.md", "results.json", "sizes.png"),
        "python tools/knowledge.py config/sweeps/knowledge_sizes_echo_1000.py"),
    "knowledge_priming": Experiment("out-knowledge/world_priming", ("results.md", "results.json", "arms.png", "curves.png"),
                                    "python tools/knowledge.py config/sweeps/knowledge_priming.py"),
    "knowledge_lora": Experiment("out-knowledge/world/lora_facts", ("results.md", "results.json", "lora_facts.png"),
                                 "python tools/knowledge.py config/sweeps/knowledge_lora.py"),
}


def copy_atomic(src, dst):
    """Copy src onto dst through a temp file, so a reader sees the old copy or the new one."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst + ".tmp")
    os.replace(dst + ".tmp", dst)


def refresh(names, root=ROOT, docs=DOCS):
    """Copy the outputs of the named experiments; returns {name: the files copied, or None if missing}."""
    done = {}
    for name in names:
        exp = EXPERIMENTS[name]
        sources = [os.path.join(root, exp.source, f) for f in exp.files]
        if not all(os.path.exists(s) for s in sources):
            done[name] = None
            continue
        done[name] = []
        for src in sources:
            dst = os.path.join(docs, name, os.path.basename(src))
            copy_atomic(src, dst)
            done[name].append(os.path.relpath(dst, root))
    return done


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print(__doc__.strip())
        return 0
    if "--list" in argv:
        for name, exp in EXPERIMENTS.items():
            print(f"{name}: {exp.source}/{{{', '.join(exp.files)}}}\n    made by: {exp.command}")
        return 0
    unknown = [a for a in argv if a not in EXPERIMENTS]
    if unknown:
        sys.exit(f"error: unknown experiment(s) {', '.join(unknown)}; one of {', '.join(EXPERIMENTS)} (--list)")
    done = refresh(argv or list(EXPERIMENTS))
    for name, files in done.items():
        exp = EXPERIMENTS[name]
        if files is None:
            print(f"{name}: skipped, {exp.source}/ lacks some of its outputs; make them with: {exp.command}")
        else:
            print(f"{name}: copied {len(files)} files into docs/results/{name}/")
    missing = [n for n, files in done.items() if files is None]
    if argv and missing:
        sys.exit(f"error: no outputs to copy for {', '.join(missing)}: run the command above first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
