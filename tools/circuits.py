"""
Which heads carry a prediction: direct logit attribution and activation patching by head and position
(helpers/circuits.py), on a checkpoint, writing a JSON and a PNG each into --plot_dir.

    python tools/circuits.py attribution --out_dir=out-induction   # each head's, MLP's, embedding's share of the logit difference
    python tools/circuits.py patch --out_dir=out-induction         # clean into corrupted, one head and position at a time
    python tools/circuits.py path --out_dir=out-induction          # path patching: sender head -> receiver's q, k or v
    python tools/circuits.py patch --task=text --clean="..." --corrupt="..." --answer=a --wrong=b
    python tools/circuits.py TOOL --help                           # every key of one tool

The default task is induction: random tokens repeated, [A A] against [A' A], scored on the second copy
(the right next token against the corrupted copy's). --task=text scores one prompt's last position.
The checkpoint is read as tools/analyze.py reads it (--out_dir, --init_from, --ckpt, --device).
"""

import json
import os
import textwrap
from dataclasses import asdict, dataclass

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import matplotlib
import torch

from helpers.checkpoint import atomic_write
from helpers.circuits import Task, induction_task, logit_attribution, patch_heads, path_patch
from helpers.config import UserError, main_guard
from helpers.data import encode
from helpers.plotting import plt, save
from tools.analyze import label, run_tool, to_batch, tool


@dataclass
class TaskConfig:
    task: str = "induction"  # "induction": repeated random tokens; "text": --clean/--corrupt, scored at the last position
    half: int = 0  # induction: tokens in each copy; 0 = min(32, block_size // 2)
    batch: int = 16  # induction: sequences averaged over
    seed: int = 0  # induction: seeds the random tokens
    clean: str = ""  # text: the prompt the model answers right
    corrupt: str = ""  # text: the same number of tokens, what the answer depends on changed
    answer: str = ""  # text: the clean prompt's next token (the first token of this text)
    wrong: str = ""  # text: the token it is measured against


def build_task(cfg, model, tok):
    """The Task the flags describe, on the model's device."""
    dev = model.lm_head.weight.device
    if cfg.task == "induction":
        half = cfg.half or min(32, model.config.block_size // 2)
        if 2 * half > model.config.block_size:
            raise UserError(f"--half={half} makes sequences of {2 * half} tokens, more than the context of "
                            f"{model.config.block_size}: lower it")
        if cfg.batch < 1:
            raise UserError(f"--batch must be >= 1, got {cfg.batch}")
        t = induction_task(min(tok.n_vocab, model.config.vocab_size), half, cfg.batch, cfg.seed)
    elif cfg.task == "text":
        if not (cfg.clean and cfg.corrupt and cfg.answer and cfg.wrong):
            raise UserError("--task=text needs --clean, --corrupt, --answer and --wrong")
        clean, corrupt = encode(tok, cfg.clean, "--clean"), encode(tok, cfg.corrupt, "--corrupt")
        if len(clean) != len(corrupt):
            raise UserError(f"--clean is {len(clean)} tokens and --corrupt {len(corrupt)}: patching position by "
                            f"position needs the same number")
        answer, wrong = encode(tok, cfg.answer, "--answer")[0], encode(tok, cfg.wrong, "--wrong")[0]
        scored = torch.zeros(len(clean), dtype=torch.bool)
        scored[-1] = True
        t = Task(to_batch(model, clean, "--clean").cpu(), to_batch(model, corrupt, "--corrupt").cpu(),
                 torch.full((1, len(clean)), answer), torch.full((1, len(clean)), wrong), scored)
    else:
        raise UserError(f"--task must be induction or text, got {cfg.task!r}")
    return Task(*(x.to(dev) for x in (t.clean, t.corrupt, t.answer, t.wrong)), t.scored.to(dev))


def describe(cfg, task, tok):
    """One line saying what was measured, for titles and the JSON."""
    if cfg.task == "induction":
        half = task.clean.size(1) // 2
        return (f"induction: {task.clean.size(0)} x [A A], A = {half} random tokens, against [A' A]; "
                f"scored on the second copy, right next token minus the corrupted copy's")
    a, w = task.answer[0, -1].item(), task.wrong[0, -1].item()
    return f"text: {label(tok, a)!r} minus {label(tok, w)!r} after the last token"


def write_json(path, data):
    atomic_write(path, lambda tmp: open(tmp, "w").write(json.dumps(data, indent=1) + "\n"))
    return path


TOOLS = {}  # name -> (function, TaskConfig, True): registered and run as tools/analyze.py's


@tool(TOOLS, "attribution", TaskConfig)
def attribution_tool(cfg, plot_dir, model, tok):
    """Direct logit attribution on the clean prompt: what each head (its hook_z through its columns of c_proj),
    MLP, embedding and bias writes along the answer-minus-wrong direction, through the final norm with its
    scale frozen; the parts sum to the model's logit difference. attribution.json and attribution.png."""
    task = build_task(cfg, model, tok)
    parts, total = logit_attribution(model, task)
    L, nh = model.config.n_layer, model.config.n_head
    heads = torch.tensor([[parts[f"L{i}H{h}"] for h in range(nh)] for i in range(L)])
    others = {k: v for k, v in parts.items() if not (k[0] == "L" and "H" in k)}
    what = describe(cfg, task, tok)
    print(f"logit difference {total:.3f}; largest heads: " + ", ".join(
        f"L{i}H{h} {heads[i, h]:.2f}" for i, h in sorted(((i, h) for i in range(L) for h in range(nh)),
                                                          key=lambda ih: -abs(heads[ih]))[:3]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(4 + 0.6 * nh + 4, 0.45 * L + 2.6),
                                   gridspec_kw={"width_ratios": [nh + 1, 4]}, layout="constrained")
    lim = max(heads.abs().max().item(), 1e-6)
    im = ax1.imshow(heads.numpy(), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(L):
        for h in range(nh):
            ax1.text(h, i, f"{heads[i, h]:.2g}", ha="center", va="center", fontsize=7)
    ax1.set(xlabel="head", ylabel="layer", xticks=range(nh), yticks=range(L), title="each head")
    fig.colorbar(im, ax=ax1, label="logit difference (direct)", shrink=0.8)
    names = list(others) + ["all heads", "total (model)"]
    values = list(others.values()) + [heads.sum().item(), total]
    ax2.barh(range(len(names)), values, color=["tab:gray"] * len(others) + ["tab:blue", "black"])
    ax2.set_yticks(range(len(names)), names, fontsize=7)
    ax2.invert_yaxis()
    ax2.axvline(0, color="0.5", lw=0.5)
    ax2.set(xlabel="logit difference (direct)", title="the other parts, and the sum")
    fig.suptitle(textwrap.fill(f"direct logit attribution: {what}", 110), fontsize=8)
    data = {"task": what, "logit_diff": total, "parts": parts, "heads": heads.tolist(), "config": asdict(cfg)}
    return [write_json(os.path.join(plot_dir, "attribution.json"), data),
            save(fig, os.path.join(plot_dir, "attribution.png"))]


@tool(TOOLS, "patch", TaskConfig)
def patch_tool(cfg, plot_dir, model, tok):
    """Activation patching by head and position: run the clean and the corrupted prompts, copy one head's output
    (hook_z), or one MLP's output, from the clean run into the corrupted one, at every position at once and at
    one position at a time, and measure the share of the logit difference it restores,
    (patched - corrupt) / (clean - corrupt). patch.json and patch.png (rows: heads, then MLPs)."""
    task = build_task(cfg, model, tok)
    scores, clean, corrupt = patch_heads(model, task)
    L, nh, T = scores["heads"].shape
    what = describe(cfg, task, tok)
    print(f"logit difference: clean {clean:.3f}, corrupt {corrupt:.3f}")
    per_pos, every = scores["heads"].reshape(L * nh, T), scores["heads_all"].reshape(L * nh)
    names = [f"L{i}H{h}" for i in range(L) for h in range(nh)]
    if "mlps" in scores:
        per_pos, every = torch.cat([per_pos, scores["mlps"]]), torch.cat([every, scores["mlps_all"]])
        names += [f"L{i} MLP" for i in range(L)]
    fig, (ax0, ax) = plt.subplots(1, 2, figsize=(max(9.0, 0.16 * T + 5), 0.3 * len(names) + 2.2),
                                  gridspec_kw={"width_ratios": [1, max(8, T // 3)]}, layout="constrained")
    im0 = ax0.imshow(every[:, None].numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for r, v in enumerate(every.tolist()):
        ax0.text(0, r, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax0.set_yticks(range(len(names)), names, fontsize=7)
    ax0.set_xticks([])
    ax0.set_title("every position", fontsize=8)
    fig.colorbar(im0, ax=ax0, location="left", label="share restored (1 = clean, 0 = corrupted)", shrink=0.8)
    lim = max(per_pos.abs().max().item(), 1e-6)  # one position restores at most its share of the scored ones
    im = ax.imshow(per_pos.numpy(), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    ax.set_yticks([])
    if cfg.task == "induction":
        ax.axvline(T // 2 - 0.5, color="black", lw=0.8)
        ax.set_xlabel("position (left of the line: the first copy, corrupted; right: the repeat)")
    else:
        ids = task.clean[0].tolist()
        diff = (task.clean[0] != task.corrupt[0]).tolist()
        ax.set_xticks(range(T), [label(tok, i) + ("*" if d else "") for i, d in zip(ids, diff)], fontsize=5,
                      rotation=90)
        ax.set_xlabel("position (clean tokens; * = differs in the corrupted prompt)")
    scored = task.scored.nonzero().flatten().tolist()
    ax.add_patch(matplotlib.patches.Rectangle((scored[0] - 0.5, -0.5), len(scored), len(names), fill=False,
                                              lw=1.0, ls="--", color="tab:green"))
    fig.colorbar(im, ax=ax, label="share restored by one position (scale: ± the largest)", shrink=0.8)
    ax.set_title(f"one position at a time (green box: scored positions)\n{textwrap.fill(what, 100)}"
                 f"\nlogit difference clean {clean:.2f}, corrupt {corrupt:.2f}", fontsize=8)
    data = {"task": what, "clean_logit_diff": clean, "corrupt_logit_diff": corrupt, "scored_positions": scored,
            **{k: v.tolist() for k, v in scores.items()}, "config": asdict(cfg)}
    if "mlps" not in scores:
        data.update(mlps=None, mlps_all=None)
    return [write_json(os.path.join(plot_dir, "patch.json"), data), save(fig, os.path.join(plot_dir, "patch.png"))]


@tool(TOOLS, "path", TaskConfig)
def path_tool(cfg, plot_dir, model, tok):
    """Path patching: the share of the logit difference restored when one head's clean output reaches one later
    head only through that head's queries, keys or values (every other head frozen at its corrupted output).
    K-composition, the induction circuit's, shows in the keys panel. path.json and path.png."""
    task = build_task(cfg, model, tok)
    L, nh = model.config.n_layer, model.config.n_head
    if L < 2:
        raise UserError("path patching needs at least 2 layers: a sender and a later receiver")
    paths = path_patch(model, task)
    senders = [f"L{i}H{h}" for i in range(L - 1) for h in range(nh)]
    receivers = [f"L{i}H{h}" for i in range(1, L) for h in range(nh)]
    fig, axes = plt.subplots(1, 3, figsize=(3 + 3 * (0.45 * len(receivers) + 1.2), 0.4 * len(senders) + 2.2),
                             layout="constrained")
    for ax, (x, grid) in zip(axes, paths.items()):
        m = grid[:L - 1, :, 1:].reshape(len(senders), len(receivers))
        im = ax.imshow(m.numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(receivers)), receivers, fontsize=7, rotation=90)
        ax.set_yticks(range(len(senders)), senders, fontsize=7)
        ax.set(xlabel="receiver head", ylabel="sender head", title=f"through the receiver's {x}")
    fig.colorbar(im, ax=axes, label="share restored (1 = clean)", shrink=0.8)
    fig.suptitle(textwrap.fill(f"path patching: {describe(cfg, task, tok)}", 110), fontsize=8)
    data = {"task": describe(cfg, task, tok), "index": "[sender layer][sender head][receiver layer][receiver head]",
            **{x: [[[[None if v != v else v for v in r] for r in g2] for g2 in g1] for g1 in grid.tolist()]
               for x, grid in paths.items()}, "config": asdict(cfg)}
    return [write_json(os.path.join(plot_dir, "path.json"), data), save(fig, os.path.join(plot_dir, "path.png"))]


def main(argv=None):
    run_tool(TOOLS, argv, "tools/circuits.py", __doc__, plot_prefix="circuits_")


if __name__ == "__main__":
    main_guard(main)
