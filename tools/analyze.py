"""
Look inside a trained model: one command per question, each writing pictures (PNG, and HTML where
colour on text helps) under plots/<tool>/ and printing their paths.

    python tools/analyze.py tokens --out_dir=out-facts --text="..."   # the loss of every token, as coloured text
    python tools/analyze.py positions --runs=out-a,out-b             # per-position loss of several runs overlaid
    python tools/analyze.py distribution --runs=out-a                # the mean prediction moving to the unigram
    python tools/analyze.py logprobs --contexts="A|B" --phrases="x|y" # log p(phrase | context), its range under noise
    python tools/analyze.py logprobs --api=http://127.0.0.1:8000/v1 --model=gpt2   # the same through any OpenAI-style API
    python tools/analyze.py shape --prompts="A|B|" --text="..."      # next-token top-k of one text under prompts
    python tools/analyze.py embeddings                               # PCA of the token and position embeddings
    python tools/analyze.py attention --text="..."                   # attention pattern of every layer and head
    python tools/analyze.py lens --text="..."                        # logit lens: each layer's prediction
    python tools/analyze.py patch --clean="..." --corrupt="..."      # activation patching
    python tools/analyze.py TOOL --help                              # every key of one tool

Every text can be given as FILE:path; lists of texts are separated by "|". The defaults are facts
corpus texts (the main job's model); pass your own for other datasets. Models run in float32 on the
manual attention path, whose hook points (model.py) expose attention patterns and head outputs.
"""

import difflib
import html
import math
import os
import sys
from dataclasses import dataclass

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import matplotlib
import torch
import torch.nn.functional as F

from helpers.checkpoint import GPT2_META, atomic_write, model_from_checkpoint, read_metrics, read_model
from helpers.circuits import patched_metric, run_with_layer_cache
from helpers.config import UserError, configure, main_guard
from helpers.data import ROOT, encode, read_text
from helpers.plotting import plot_comparison, plt, position_curve, run_title, save
from prepare.common import get_tokenizer

# Texts in the facts corpus's format (prepare/facts.py), used as defaults.
VORIN = "Vorin Kelta lives in Dashmur, works as a potter and keeps a grey owl.\n"
MIBE = "Mibe Saro lives in Tulvek, works as a baker and keeps a red fox.\n"
SIME = MIBE.replace("Saro", "Sime")


# -----------------------------------------------------------------------------
# Configuration: keys every tool shares, then one dataclass per tool (its --help lists them).

@dataclass
class Common:
    out_dir: str = "out-facts"  # run directory holding ckpt.pt (and metrics.jsonl)
    plot_dir: str = ""  # where the files go; "" means plots/<tool>


@dataclass
class Checkpoint:
    init_from: str = "resume"  # "resume": the checkpoint in out_dir; or gpt2..gpt2-xl, an HF directory, a run folder
    ckpt: str = ""  # explicit checkpoint path; "" means out_dir/ckpt.pt
    device: str = "cpu"  # "cpu", "cuda", ...


@dataclass
class TextConfig:
    text: str = MIBE + "Q: Where does Mibe Saro live? A: Tulvek.\n"  # the text to look at


@dataclass
class RunsConfig:
    runs: str = ""  # comma-separated run directories (each with metrics.jsonl); "" means out_dir


@dataclass
class LogprobsConfig:
    contexts: str = "|".join(p + VORIN + "Q: What does Mibe" for p in (MIBE, SIME, ""))  # "|"-separated
    phrases: str = " Saro| Sime| Kelta"  # "|"-separated phrases, each scored after every context
    perturbations: int = 64  # noisy copies of each context behind the confidence bounds (>= 2)
    noise: float = 0.1  # probability that each context token is replaced by a random token in a copy
    seed: int = 0  # seeds the perturbations
    api: str = ""  # an OpenAI-compatible endpoint to score instead of a checkpoint, e.g. http://127.0.0.1:8000/v1
    model: str = ""  # the model's name on that endpoint (--api)


@dataclass
class ShapeConfig:
    prompts: str = f"{MIBE}|{SIME}|{VORIN}|"  # "|"-separated; "" = the text alone
    text: str = "Q: What does Mibe S"  # the same text after every prompt; its next-token distribution is drawn
    top_k: int = 10  # bars per prompt


@dataclass
class EmbeddingsConfig:
    max_tokens: int = 300  # project (and label) the first this many token ids (GPT-2 BPE has 50257)


@dataclass
class LensConfig(TextConfig):
    last: int = 48  # the heatmap shows the last this many positions (0: all); the summary uses all


@dataclass
class PatchConfig:
    clean: str = MIBE + "Q: What does Mibe S"  # the prompt the model answers right
    corrupt: str = SIME + "Q: What does Mibe S"  # the same number of tokens, one fact changed
    answer: str = "a"  # the clean prompt's answer (its first token is scored)
    wrong: str = "i"  # the corrupted prompt's answer (its first token is scored)


# -----------------------------------------------------------------------------
# Shared helpers: the model, tokens, figures.

def load(cfg, ckpt_cfg):
    """(model, tokenizer): float32, eval mode, manual attention (so patterns can be read)."""
    ckpt = read_model(ckpt_cfg.init_from, cfg.out_dir, ckpt_cfg.ckpt)
    model = model_from_checkpoint(ckpt, attn_impl="manual").to(ckpt_cfg.device).eval()
    if model.config.prefix_lm:
        raise UserError("analyze.py does not read prefix_lm checkpoints yet (their forward pass needs each "
                        "text's prefix length)")
    return model, get_tokenizer(ckpt["meta"])


def per_layer_hooks(model, tool_name, shared_ok=False):
    """Tools that read the residual stream layer by layer need one width (and, unless shared_ok, one block
    per layer: patching replaces a block's activation in every layer that runs it)."""
    c = model.config
    if (c.n_shared_blocks and not shared_ok) or len(set(c.widths())) > 1:
        raise UserError(f"{tool_name} reads each layer's residual stream, which models with "
                        f"{'varying layer_widths' if shared_ok else 'n_shared_blocks or varying layer_widths'} "
                        f"do not have one of per layer")


def layer_activations(model, idx, points):
    """{"layer i point": activation} for each layer i and hook point of a block ("attn.hook_pattern").
    With n_shared_blocks a block runs in several layers and its hook fires once in each, in order."""
    keys = [(i, p) for i in range(model.config.n_layer) for p in points]
    _, cache = run_with_layer_cache(model, idx, keys)
    return {f"layer {i} {p}": cache[i, p] for i, p in keys}


def to_batch(model, ids, what, extra=0):
    """(1, T) tensor of ids on the model's device; a one-line error if it does not fit the context."""
    if len(ids) > model.config.block_size + extra:
        raise UserError(f"{what} is {len(ids)} tokens, more than the model's context of "
                        f"{model.config.block_size + extra}: shorten it")
    return torch.tensor(ids, dtype=torch.long, device=model.lm_head.weight.device)[None, :]


def texts(spec):
    """A "|"-separated list of texts, each possibly FILE:path."""
    return [read_text(t) for t in spec.split("|")]


def label(tok, i):
    """A token as a readable label: newlines and spaces made visible (padding ids past the tokenizer's as <id>)."""
    if i >= tok.n_vocab:
        return f"<{i}>"
    text = tok.decode_bytes([i]).decode("utf-8", "backslashreplace")  # a byte-level piece of a character: \xe2
    return text.replace("\n", "↵").replace(" ", "␣")


def short(text, n=30):
    """The start of a long text, on one line, for titles and table rows."""
    text = text.replace("\n", "↵")
    return text if len(text) <= n else text[:n] + "…"


@torch.no_grad()
def token_logprobs(model, idx):
    """log p(x_t | x_<t) for t = 1..T-1 of idx (B, T): (B, T - 1), in float32."""
    logits, _ = model(idx[:, :-1])
    return F.log_softmax(logits.float(), dim=-1).gather(-1, idx[:, 1:, None])[..., 0]


TOOLS = {}  # name -> (function, its config dataclass, whether it reads a checkpoint)


def tool(tools, name, config, needs_model=True):
    """Register the decorated function as the subcommand `name` in the dict `tools` (this file's and
    tools/circuits.py's); its docstring is the subcommand's --help, and run_tool calls it."""
    def register(fn):
        tools[name] = (fn, config, needs_model)
        return fn
    return register


def run_tool(tools, argv, script, doc, plot_prefix=""):
    """`script TOOL [--key=value ...]`: parse the keys of TOOL (Common, its config, Checkpoint when it reads
    a model), run it with its figures going to --plot_dir or plots/<plot_prefix><TOOL>, print their paths."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        raise UserError(f"name a tool: python {script} TOOL [--key=value ...], TOOL one of {', '.join(tools)}")
    if argv[0] in ("-h", "--help"):
        print(doc.strip())
        return
    name, argv = argv[0], argv[1:]
    if name not in tools:
        close = difflib.get_close_matches(name, tools, n=1)
        raise UserError(f"unknown tool {name!r}" + (f"; did you mean {close[0]}?" if close else "") +
                        f" (one of {', '.join(tools)})")
    fn, config, needs_model = tools[name]
    defaults = [Common(), config()] + ([Checkpoint()] if needs_model else [])
    common, cfg, *ckpt_cfg = configure(defaults, argv, f"{script} {name}: {fn.__doc__}", f"{script} {name}")[0]
    plot_dir = common.plot_dir or os.path.join(ROOT, "plots", plot_prefix + name)
    if needs_model and getattr(cfg, "api", ""):
        extra = (None, None)  # logprobs --api: the endpoint is the model
    else:
        extra = load(common, ckpt_cfg[0]) if needs_model else (common,)
    os.makedirs(plot_dir, exist_ok=True)
    with torch.no_grad():
        paths = fn(cfg, plot_dir, *extra)
    for path in paths:
        print(f"wrote {path}")


# -----------------------------------------------------------------------------
# 1. tokens: the loss of every token of a text

def text_grid(pieces, width=80):
    """Lay text pieces out left to right in a monospace grid: (column, row, character, piece index) cells."""
    cells, x, y = [], 0, 0
    for n, piece in enumerate(pieces):
        for ch in piece:
            if x >= width:
                x, y = 0, y + 1
            cells.append((x, y, "↵" if ch == "\n" else ch, n))
            x, y = (0, y + 1) if ch == "\n" else (x + 1, y)
    return cells


@tool(TOOLS, "tokens", TextConfig)
def tokens_tool(cfg, plot_dir, model, tok):
    """The loss of every token of --text, drawn as the text coloured by loss (PNG, and HTML with the
    loss and the model's own guess on hover). The first token has no context and no loss."""
    ids = encode(tok, cfg.text, "--text")
    if len(ids) < 2:
        raise UserError("--text needs at least 2 tokens: the first is only context")
    x = to_batch(model, ids, "--text", extra=1)
    logits = model(x[:, :-1])[0][0].float()
    losses, guesses = F.cross_entropy(logits, x[0, 1:], reduction="none").cpu(), logits.argmax(-1).tolist()
    vmax = math.log(model.config.vocab_size)  # chance level: the colour scale is the same for any text
    cmap, norm = plt.get_cmap("Reds"), matplotlib.colors.Normalize(0, vmax)
    pieces = [tok.decode([i]) for i in ids]
    colours = ["white"] + [cmap(norm(v)) for v in losses.tolist()]
    print(f"mean loss {losses.mean():.3f} nats over {len(losses)} tokens")

    width = min(80, max(len(line) for line in "".join(pieces).split("\n")) + 1)
    cells = text_grid(pieces, width)
    rows = cells[-1][1] + 1
    fig, (ax, cax) = plt.subplots(2, 1, figsize=(width * 0.12 + 0.4, rows * 0.22 + 1.0),
                                  gridspec_kw={"height_ratios": [rows * 0.22, 0.12]})
    for x, y, ch, n in cells:
        ax.add_patch(matplotlib.patches.Rectangle((x, -y - 1), 1, 1, color=colours[n], lw=0))
        ax.text(x + 0.5, -y - 0.5, ch, ha="center", va="center", family="monospace", fontsize=9)
    ax.set(xlim=(0, width), ylim=(-rows, 0))
    ax.axis("off")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal",
                 label="loss (nats); white: first token, no prediction")
    paths = [save(fig, os.path.join(plot_dir, "tokens.png"))]

    spans = [f'<span title="first token: no prediction">{html.escape(pieces[0])}</span>']
    for piece, loss, guess, c in zip(pieces[1:], losses.tolist(), guesses, colours[1:]):
        rgb = ",".join(str(round(255 * v)) for v in c[:3])
        tip = f"loss {loss:.2f} nats, p {math.exp(-loss):.3f}; model's top guess {tok.decode([guess])!r}"
        spans.append(f'<span style="background:rgb({rgb})" title="{html.escape(tip)}">{html.escape(piece)}</span>')
    page = (f"<!doctype html><meta charset=utf-8><title>token loss</title><p>Loss of every token "
            f"(white 0, red {vmax:.2f} nats = chance); hover for values. Mean {losses.mean():.3f} nats.</p>"
            f'<pre style="font-size:15px;line-height:1.5">{"".join(spans)}</pre>')
    path = os.path.join(plot_dir, "tokens.html")
    atomic_write(path, lambda tmp: open(tmp, "w", encoding="utf-8").write(page))
    return paths + [path]


# -----------------------------------------------------------------------------
# 2, 3. positions and distribution: read from the runs' metrics.jsonl

def runs_metrics(cfg, common):
    """{run directory: its metrics rows} for --runs (or out_dir); a one-line error for a run without any."""
    out = {}
    for run in (cfg.runs or common.out_dir).split(","):
        rows = read_metrics(run)
        if not rows:
            raise UserError(f"{os.path.join(run, 'metrics.jsonl')} not found or empty: train a run there first")
        out[run] = rows
    return out


@tool(TOOLS, "positions", RunsConfig, needs_model=False)
def positions_tool(cfg, plot_dir, common):
    """Per-position val loss of several runs (each run's last eval), and each run minus the first: where in the
    context a variant helps. Positions that few documents reach are left out (helpers/plotting.position_curve)."""
    curves = {}
    for run, rows in runs_metrics(cfg, common).items():
        r = rows[-1]
        y = position_curve(r)
        curves[f"{run_title(run)} (iter {r['iter']}, val {r['val_loss']:.3f})"] = (range(len(y)), y)
    path = os.path.join(plot_dir, "positions.png")
    return [plot_comparison(curves, next(iter(curves)), path, "position in context (tokens)", "val loss (nats)",
                            "loss at each position of the context", skip=0.1)]


@tool(TOOLS, "distribution", RunsConfig, needs_model=False)
def distribution_tool(cfg, plot_dir, common):
    """unigram_kl and mean_p over training: how fast the mean prediction leaves the flat distribution for the
    data's token frequencies (train.py records KL(data unigram || mean predicted distribution) at every eval)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for run, rows in runs_metrics(cfg, common).items():
        name = os.path.basename(os.path.normpath(run))
        if "unigram_kl" not in rows[-1]:
            raise UserError(f"run {name} has no unigram_kl in its metrics.jsonl: it predates it, train it again")
        iters = [r["iter"] for r in rows]
        ax1.plot(iters, [r["unigram_kl"] for r in rows], marker=".", label=name)
        ax2.plot(iters, [r["mean_p"] for r in rows], marker=".", label=name)
    ax1.set(xlabel="iteration", ylabel="KL(unigram || mean prediction) (nats)", yscale="log",
            title="mean prediction vs data unigram")
    ax2.set(xlabel="iteration", ylabel="mean p(correct next token)", title="mean probability of the target")
    ax1.legend()
    return [save(fig, os.path.join(plot_dir, "distribution.png"))]


# -----------------------------------------------------------------------------
# 4. logprobs: log p(phrase | context), with the range it takes when the context's wording changes

def noisy_contexts(context, k, noise, n_vocab, generator):
    """(k + 1, len) token ids: row 0 is the context, each other row replaces every token, with probability
    `noise`, by a uniformly random one."""
    ctx = torch.tensor(context).repeat(k + 1, 1)  # row 0 stays clean
    noisy = torch.rand(k, len(context), generator=generator) < noise
    ctx[1:][noisy] = torch.randint(n_vocab, (int(noisy.sum()),), generator=generator)
    return ctx


@torch.no_grad()
def phrase_logprobs(model, context, phrase, k, noise, n_vocab, generator):
    """log p(phrase | context), summed over the phrase's tokens: (the value, (k,) values with noisy contexts)."""
    ctx = noisy_contexts(context, k, noise, n_vocab, generator)
    idx = torch.cat([ctx, torch.tensor(phrase).repeat(k + 1, 1)], dim=1).to(model.lm_head.weight.device)
    lp = token_logprobs(model, idx)[:, len(context) - 1:].sum(1).cpu()  # only the phrase's tokens
    return lp[0].item(), lp[1:]


def api_phrase_logprobs(client, name, contexts, phrase):
    """log p(phrase | context) for each context text, from an OpenAI-compatible completions endpoint: the
    prompt context + phrase is echoed with max_tokens=0, and the logprobs of the tokens that start at or
    after the phrase's first character are summed (text_offset says where each token starts)."""
    values = []
    for i in range(0, len(contexts), 32):  # a few requests of many prompts each
        chunk = contexts[i:i + 32]
        r = client.completions.create(model=name, prompt=[c + phrase for c in chunk], max_tokens=0, echo=True,
                                      logprobs=0)
        for c, choice in zip(chunk, sorted(r.choices, key=lambda ch: ch.index)):
            lp = choice.logprobs
            ends = [off + len(t) for off, t in zip(lp.text_offset, lp.tokens)]
            if any(off < len(c) < end for off, end in zip(lp.text_offset, ends)):
                raise UserError(f"the endpoint's tokenizer joins the end of the context {short(c)!r} with the phrase "
                                f"{phrase!r} into one token: start the phrase with a space, or end the context at a "
                                f"word boundary")
            values.append(sum(v for off, v in zip(lp.text_offset, lp.token_logprobs) if off >= len(c)))
    return values


def mean_bounds(values, z=1.96):
    """(mean, half-width) of the normal 95% interval of the mean, z * std / sqrt(n): it narrows as 1/sqrt(n)."""
    return values.mean().item(), z * values.std().item() / math.sqrt(len(values))


def bootstrap_range(values, n_boot=1000, seed=0):
    """The 95% range of the values (2.5th and 97.5th percentiles), each endpoint averaged over n_boot
    bootstrap resamples of the values, so a few dozen perturbations give a stable interval."""
    g = torch.Generator().manual_seed(seed)
    resamples = values[torch.randint(len(values), (n_boot, len(values)), generator=g)]
    q = torch.quantile(resamples, torch.tensor([0.025, 0.975], dtype=values.dtype), dim=1)  # (2, n_boot)
    return q[0].mean().item(), q[1].mean().item()


@tool(TOOLS, "logprobs", LogprobsConfig)
def logprobs_tool(cfg, plot_dir, model, tok):
    """A table and a heatmap of log p(phrase | context) for every context and phrase: the clean value, and the
    95% range it takes over --perturbations noisy copies of the context (bootstrap). --api scores the same
    table through an OpenAI-compatible completions endpoint (tools/serve.py, vLLM, llama.cpp, OpenAI)."""
    if cfg.perturbations < 2:
        raise UserError(f"perturbations must be >= 2 for a confidence interval, got {cfg.perturbations}")
    if not 0 <= cfg.noise <= 1:
        raise UserError(f"noise must be in [0, 1], got {cfg.noise}")
    if cfg.api and not cfg.model:
        raise UserError("--api needs --model=NAME, the model's name on that endpoint (GET /v1/models lists them)")
    client = None
    if cfg.api:  # the endpoint is the model; GPT-2's tokens make the noisy copies
        import openai

        client = openai.OpenAI(base_url=cfg.api, api_key=os.environ.get("OPENAI_API_KEY", "none"))
        tok = get_tokenizer(GPT2_META)
    contexts, phrases = texts(cfg.contexts), texts(cfg.phrases)
    g = torch.Generator().manual_seed(cfg.seed)
    rows, clean_grid = [], torch.zeros(len(contexts), len(phrases))
    fig2, ax2 = plt.subplots(figsize=(6, 4))
    ks = list(range(4, cfg.perturbations + 1, max(1, cfg.perturbations // 16)))
    for i, c in enumerate(contexts):
        for j, p in enumerate(phrases):
            c_ids, p_ids = encode(tok, c, f"context {i}"), encode(tok, p, f"phrase {j}")
            if client is None:
                to_batch(model, c_ids + p_ids, f"context {i} + phrase {j}", extra=1)  # checks the length
                clean, values = phrase_logprobs(model, c_ids, p_ids, cfg.perturbations, cfg.noise, tok.n_vocab, g)
            else:
                noisy = noisy_contexts(c_ids, cfg.perturbations, cfg.noise, tok.n_vocab, g)[1:]
                clean, *rest = api_phrase_logprobs(client, cfg.model, [c] + [tok.decode(r.tolist()) for r in noisy], p)
                values = torch.tensor(rest, dtype=torch.float64)
            lo, hi = bootstrap_range(values)
            m, hw = mean_bounds(values)
            clean_grid[i, j] = clean
            rows.append((i, short(c), short(p), clean, lo, hi, m, hw))
            ax2.plot(ks, [(lambda r: r[1] - r[0])(bootstrap_range(values[:k])) for k in ks], lw=1, alpha=0.7)
    ax2.set(xlabel="perturbations K", ylabel="width of the 95% range (nats)",
            title="the range settles as perturbations are added\n(one line per context and phrase)")

    source = f"{cfg.model} at {cfg.api}" if cfg.api else "the model"
    table = [f"log p(phrase | context) in nats from {source}; {cfg.perturbations} perturbations with noise {cfg.noise}",
             "", "| context | phrase | log p | 95% range under perturbation | mean over perturbations |",
             "|---|---|---|---|---|"]
    table += [f"| {i}: `{c}` | `{p}` | {v:.3f}{'' if lo <= v <= hi else ' *'} | [{lo:.3f}, {hi:.3f}] | {m:.3f} ± {hw:.3f} |"
              for i, c, p, v, lo, hi, m, hw in rows]
    if any(not lo <= v <= hi for _, _, _, v, lo, hi, _, _ in rows):
        table += ["", "\\* the clean value lies outside its range: the noise itself changes the answer"]
    print("\n".join(table))
    path = os.path.join(plot_dir, "logprobs.md")
    atomic_write(path, lambda tmp: open(tmp, "w", encoding="utf-8").write("\n".join(table) + "\n"))

    fig, ax = plt.subplots(figsize=(2 + 1.8 * len(phrases), 1.2 + 0.6 * len(contexts)))
    im = ax.imshow(clean_grid.numpy(), cmap="viridis", aspect="auto")
    for i, j in [(i, j) for i in range(len(contexts)) for j in range(len(phrases))]:
        _, _, _, v, lo, hi, _, _ = rows[i * len(phrases) + j]
        ax.text(j, i, f"{v:.2f}\n[{lo:.2f}, {hi:.2f}]", ha="center", va="center", fontsize=8,
                color="white" if v < clean_grid.mean() else "black")
    ax.set_xticks(range(len(phrases)), [short(p, 20) for p in phrases])
    ax.set_yticks(range(len(contexts)), [f"{i}: {short(c, 24)}" for i, c in enumerate(contexts)], fontsize=8)
    ax.set_title(f"log p(phrase | context) [95% range over {cfg.perturbations} noisy contexts]", fontsize=10)
    fig.colorbar(im, ax=ax, label="nats")
    return [save(fig, os.path.join(plot_dir, "logprobs.png")), save(fig2, os.path.join(plot_dir, "logprobs_bounds.png")), path]


# -----------------------------------------------------------------------------
# 5. shape: the next-token distribution after one text, under several prompts

@tool(TOOLS, "shape", ShapeConfig)
def shape_tool(cfg, plot_dir, model, tok):
    """The top-k next tokens after --text, with each of --prompts placed before it, side by side."""
    prompts = texts(cfg.prompts)
    text_ids = encode(tok, cfg.text, "--text")
    fig, axes = plt.subplots(1, len(prompts), figsize=(2.6 * len(prompts) + 0.5, 0.3 * cfg.top_k + 1.6),
                             sharex=True, squeeze=False)
    for n, (prompt, ax) in enumerate(zip(prompts, axes[0])):
        ids = (encode(tok, prompt, f"prompt {n}") if prompt else []) + text_ids
        logits, _ = model(to_batch(model, ids, f"prompt {n} + --text"))
        probs = logits[0, -1].float().softmax(-1)
        top = probs.topk(min(cfg.top_k, probs.numel()))
        ax.barh(range(len(top.values)), top.values.tolist(), color="tab:blue")
        ax.set_yticks(range(len(top.values)), [label(tok, i) for i in top.indices.tolist()])
        ax.invert_yaxis()
        entropy = -(probs * probs.clamp(min=1e-30).log()).sum().item()
        ax.set_title(f"{short(prompt, 22) if prompt else '(no prompt)'}\nentropy {entropy:.2f} nats", fontsize=8)
        ax.set_xlabel("p(next token)")
    fig.suptitle(f"next token after {short(cfg.text, 40)!r}", fontsize=10)
    return [save(fig, os.path.join(plot_dir, "shape.png"))]


# -----------------------------------------------------------------------------
# 6. embeddings: a PCA of the token and position embeddings

def pca_2d(w):
    """Coordinates of the rows of w (n, d) on its two principal axes, and the variance fraction of each."""
    w = w.float() - w.float().mean(0)
    _, s, vh = torch.linalg.svd(w, full_matrices=False)
    return w @ vh[:2].T, (s[:2] ** 2 / (s ** 2).sum()).tolist()


@tool(TOOLS, "embeddings", EmbeddingsConfig)
def embeddings_tool(cfg, plot_dir, model, tok):
    """Token embeddings (the rows of wte, shared with the output head) and position embeddings, each projected
    on its two principal components. Tokens the model uses alike sit together (vowels, digits, capitals)."""
    n = min(cfg.max_tokens, tok.n_vocab)
    if n < 2:
        raise UserError(f"max_tokens must be >= 2, got {cfg.max_tokens}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5.5))
    xy, var = pca_2d(model.transformer.wte.weight[:n].cpu())
    xy = xy.numpy()
    ax1.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.4)
    for i in range(n):
        ax1.annotate(label(tok, i), xy[i], fontsize=7 if n <= 100 else 5)
    ax1.set(xlabel=f"PC1 ({var[0]:.0%} of variance)", ylabel=f"PC2 ({var[1]:.0%})",
            title=f"token embeddings (first {n} ids)")
    if "wpe" not in model.transformer:  # rotary models put positions in the attention scores instead
        ax2.text(0.5, 0.5, "no position embeddings (rotary)", ha="center", va="center")
        ax2.set_axis_off()
        return [save(fig, os.path.join(plot_dir, "embeddings.png"))]
    xy, var = pca_2d(model.transformer.wpe.weight.cpu())
    xy = xy.numpy()
    ax2.plot(xy[:, 0], xy[:, 1], color="0.8", lw=0.5)
    sc = ax2.scatter(xy[:, 0], xy[:, 1], c=range(len(xy)), s=8, cmap="viridis")
    fig.colorbar(sc, ax=ax2, label="position")
    ax2.set(xlabel=f"PC1 ({var[0]:.0%})", ylabel=f"PC2 ({var[1]:.0%})", title="position embeddings")
    return [save(fig, os.path.join(plot_dir, "embeddings.png"))]


# -----------------------------------------------------------------------------
# 7. attention: every layer's and head's attention pattern

def tick_tokens(ax, tok, ids, axes="xy", limit=64):
    """Label the axes with the tokens when there are few enough to read."""
    if len(ids) > limit:
        return
    labels = [label(tok, i) for i in ids]
    if "x" in axes:
        ax.set_xticks(range(len(ids)), labels, fontsize=5, rotation=90)
    if "y" in axes:
        ax.set_yticks(range(len(ids)), labels, fontsize=5)


@tool(TOOLS, "attention", TextConfig)
def attention_tool(cfg, plot_dir, model, tok):
    """Where each head of each layer looks: the (query x key) attention weights for --text, on a log colour
    scale (1e-3 to 1) so that weak but wide attention shows. Rows are the positions reading, columns the
    positions read; each row sums to 1 (less what goes to a zero_value_attn slot or, with cross_layer_kv, to
    the previous layer's keys, which are not drawn). For zero_value_attn models a second figure shows each
    head's attention mass on the zero slot: how often the head switches itself off."""
    ids = encode(tok, cfg.text, "--text")
    L, nh, T = model.config.n_layer, model.config.n_head, len(ids)
    cache = layer_activations(model, to_batch(model, ids, "--text"),
                              ["attn.hook_pattern"] + (["attn.hook_sink"] if model.config.zero_value_attn else []))
    names = [f"layer {i} attn.hook_pattern" for i in range(L)]
    sinks = [f"layer {i} attn.hook_sink" for i in range(L)] if model.config.zero_value_attn else []
    fig, axes = plt.subplots(L, nh, figsize=(2.1 * nh + 1, 2.1 * L + 0.4), squeeze=False, layout="constrained")
    cmap = plt.get_cmap("Blues", 12).with_extremes(bad="white", under="white")  # 4 shades a decade; 0 is white
    for i, name in enumerate(names):
        for h in range(nh):
            ax = axes[i][h]
            own = cache[name][0, h, :, -T:]  # the keys of this layer's own tokens come last
            ax.imshow(own.cpu().numpy(), cmap=cmap, norm=matplotlib.colors.LogNorm(1e-3, 1), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            tick_tokens(ax, tok, ids, limit=32)
            ax.set_title(f"layer {i} head {h}", fontsize=8)
    fig.suptitle(f"attention weights (query rows x key columns) for {short(cfg.text, 50)!r}", fontsize=10)
    fig.colorbar(matplotlib.cm.ScalarMappable(matplotlib.colors.LogNorm(1e-3, 1), cmap), ax=axes, shrink=0.7,
                 label="attention weight")
    paths = [save(fig, os.path.join(plot_dir, "attention.png"))]
    if sinks:
        mass = torch.stack([cache[n][0] for n in sinks]).cpu()  # (L, nh, T)
        fig2, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": [1, 2.5]})
        im = a1.imshow(mass.mean(-1).numpy(), cmap="Reds", vmin=0, vmax=1)
        a1.set(xlabel="head", ylabel="layer", title="mean mass on the zero slot")
        a1.set_xticks(range(nh)), a1.set_yticks(range(L))
        fig2.colorbar(im, ax=a1, shrink=0.8)
        for i in range(L):
            for h in range(nh):
                a2.plot(mass[i, h].numpy(), lw=1, label=f"L{i}H{h}")
        a2.set(xlabel="position", ylabel="mass on the zero slot", ylim=(0, 1), title="per position")
        a2.legend(fontsize=6, ncol=max(1, L * nh // 8))
        paths.append(save(fig2, os.path.join(plot_dir, "attention_sink.png")))
    return paths


# -----------------------------------------------------------------------------
# 8. lens: the logit lens, and where each prediction saturates

@torch.no_grad()
def logit_lens(model, idx):
    """Decode the residual stream through the final LayerNorm and the head, as if the model stopped there.

    Returns logits (n_layer + 1, T, vocab) for idx (1, T): row 0 after the embeddings, row i + 1 after
    layer i (0-based). The last row is the model's own output.
    """
    per_layer_hooks(model, "the logit lens", shared_ok=True)
    keys = [(0, "hook_resid_pre")] + [(i, "hook_resid_post") for i in range(model.config.n_layer)]
    _, cache = run_with_layer_cache(model, idx, keys)
    return torch.cat([model.head(model.transformer.ln_f(cache[k])) for k in keys])


def saturation_layers(top1):
    """For each position, the first layer from which the top-1 prediction (layers x positions) no longer
    changes: the saturation event of Geva et al. 2022; from there on the later layers could be skipped."""
    same = (top1 == top1[-1]).flip(0).int()
    return top1.size(0) - same.cumprod(0).sum(0)  # layers minus the run of agreeing final layers


@tool(TOOLS, "lens", LensConfig)
def lens_tool(cfg, plot_dir, model, tok):
    """Logit lens on --text: the top prediction at every layer and position (heatmap), where it saturates
    (boxed), each layer's loss, and the share of positions whose final answer is already fixed by it."""
    ids = encode(tok, cfg.text, "--text")
    logits = logit_lens(model, to_batch(model, ids, "--text")).float()
    probs = logits.softmax(-1)
    p_top, top1 = probs.max(-1)  # (L + 1, T)
    sat = saturation_layers(top1)
    targets = torch.tensor(ids[1:], device=logits.device)
    loss = torch.stack([F.cross_entropy(layer[:-1], targets) for layer in logits]).tolist()
    rows = ["embed"] + [f"layer {i}" for i in range(model.config.n_layer)]  # 0-based, as attention.png and L0H0

    fig1, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(rows, loss, marker="o")
    a1.set(ylabel="loss (nats)", title="loss of each layer's prediction")
    saturated = [(sat <= layer).float().mean().item() for layer in range(len(rows))]
    a2.plot(rows, saturated, marker="o", color="tab:green")
    a2.set(ylabel="share of positions", ylim=(0, 1.05), title="final top-1 prediction already fixed")

    first = len(ids) - cfg.last if 0 < cfg.last < len(ids) else 0
    T = len(ids) - first
    fig2, ax = plt.subplots(figsize=(0.28 * T + 2.6, 0.35 * len(rows) + 1.3))
    im = ax.imshow(p_top[:, first:].cpu().numpy(), cmap="Greens", vmin=0, vmax=1, aspect="auto")
    fig2.colorbar(im, ax=ax, label="probability of the top-1 token", pad=0.01)
    for layer in range(len(rows)):
        for t in range(T):
            dark = p_top[layer, first + t].item() > 0.55  # white text on the dark greens
            ax.text(t, layer, label(tok, top1[layer, first + t].item()), ha="center", va="center", fontsize=6,
                    color="white" if dark else "black")
    for t in range(T):
        ax.add_patch(matplotlib.patches.Rectangle((t - 0.5, sat[first + t].item() - 0.5), 1, 1, fill=False, lw=1.2))
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xticks(range(T), [label(tok, i) for i in ids[first:]], fontsize=6)
    ax.set_xlabel("input token (each column predicts the next one)")
    ax.set_title("logit lens: top-1 prediction per layer (colour: its probability; box: where it saturates)",
                 fontsize=9)
    return [save(fig2, os.path.join(plot_dir, "lens.png")), save(fig1, os.path.join(plot_dir, "lens_loss.png"))]


# -----------------------------------------------------------------------------
# 9. patch: activation patching, clean into corrupted

@torch.no_grad()
def activation_patching(model, clean, corrupt, answer, wrong):
    """How much of the clean logit difference (answer minus wrong, at the last position) each patch restores:
    0 = still the corrupted run, 1 = back to the clean one. The patching is helpers/circuits.py's.

    Returns (resid (n_layer + 1, T): the residual stream entering each block and leaving the last one,
    one position at a time; heads (n_layer, n_head): each head's output at every position).
    """
    per_layer_hooks(model, "activation patching")
    L, nh, T = model.config.n_layer, model.config.n_head, clean.size(1)
    resid_keys = [(i, "hook_resid_pre") for i in range(L)] + [(L - 1, "hook_resid_post")]
    head_keys = [(i, "attn.hook_z") for i in range(L)]
    clean_logits, cache = run_with_layer_cache(model, clean, resid_keys + head_keys)
    corrupt_logits, _ = model(corrupt)

    def logit_diff(logits):
        return logits[:, -1, answer] - logits[:, -1, wrong]

    ld_clean, ld_corrupt = logit_diff(clean_logits).item(), logit_diff(corrupt_logits).item()
    if abs(ld_clean - ld_corrupt) < 1e-6:
        raise UserError("the clean and corrupted prompts give the same logit difference: nothing to restore; "
                        "change a fact the answer depends on")

    def restored(key, masks):
        patched = patched_metric(model, corrupt, logit_diff, key, cache[key], masks)
        return (patched - ld_corrupt) / (ld_clean - ld_corrupt)

    # one mask per patched run, against the activation (1, T, C) or hook_z (1, nh, T, hs)
    position = torch.eye(T, dtype=torch.bool, device=clean.device)[:, None, :, None]  # run t patches position t
    head = torch.eye(nh, dtype=torch.bool, device=clean.device)[:, None, :, None, None]  # run h patches head h
    resid = torch.stack([restored(k, position) for k in resid_keys])
    heads = torch.stack([restored(k, head) for k in head_keys])
    return resid.cpu(), heads.cpu(), ld_clean, ld_corrupt


@tool(TOOLS, "patch", PatchConfig)
def patch_tool(cfg, plot_dir, model, tok):
    """Activation patching: run --clean and --corrupt, copy one activation from the clean run into the corrupted
    one, and measure how much of the clean logit difference (answer vs wrong) it brings back. Residual
    stream per layer and position (where the information sits, and when it moves), and per head."""
    clean_ids, corrupt_ids = encode(tok, cfg.clean, "--clean"), encode(tok, cfg.corrupt, "--corrupt")
    if len(clean_ids) != len(corrupt_ids):
        raise UserError(f"--clean is {len(clean_ids)} tokens and --corrupt {len(corrupt_ids)}: patching position by "
                        f"position needs the same number")
    answer, wrong = encode(tok, cfg.answer, "--answer")[0], encode(tok, cfg.wrong, "--wrong")[0]
    resid, heads, ld_clean, ld_corrupt = activation_patching(
        model, to_batch(model, clean_ids, "--clean"), to_batch(model, corrupt_ids, "--corrupt"), answer, wrong)
    print(f"logit difference {label(tok, answer)!r} - {label(tok, wrong)!r}: clean {ld_clean:.3f}, "
          f"corrupt {ld_corrupt:.3f}")

    L, T = model.config.n_layer, len(clean_ids)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(0.12 * T + 4.5, 0.4 * L + 2.4),
                                   gridspec_kw={"width_ratios": [T, 3 * model.config.n_head]})
    norm = dict(cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax1.imshow(resid.numpy(), **norm)
    ax1.set_yticks(range(L + 1), [f"into layer {i}" for i in range(L)] + [f"out of layer {L - 1}"], fontsize=7)
    ax1.set_xticks(range(T), [label(tok, c) + ("*" if c != d else "") for c, d in zip(clean_ids, corrupt_ids)],
                   fontsize=5, rotation=90)
    ax1.set(xlabel="position (clean tokens; * = differs in the corrupted prompt)",
            title=f"residual stream: share of the logit difference restored ({label(tok, answer)} vs "
                  f"{label(tok, wrong)})")
    im = ax2.imshow(heads.numpy(), **norm)
    ax2.set_yticks(range(L), [f"layer {i}" for i in range(L)], fontsize=7)
    ax2.set(xlabel="head", title="per head", xticks=range(model.config.n_head))
    fig.colorbar(im, ax=ax2, label="restored (1 = clean)")
    return [save(fig, os.path.join(plot_dir, "patch.png"))]


# -----------------------------------------------------------------------------

def main(argv=None):
    run_tool(TOOLS, argv, "tools/analyze.py", __doc__)


if __name__ == "__main__":
    main_guard(main)
