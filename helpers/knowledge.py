"""
Knowledge in and out of the model (design note 004, "Separation of Reason and Knowledge"): the metrics
of the fixed-world corpus (prepare/world.py) and the forgetting loss.

Metrics, on the val questions of the dataset's questions.jsonl, each as exact match (the model's argmax
at the answer is the answer: every answer is one token) and answer loss (nats):
    closed_book            people of the world (group A), no facts given: what the weights remember
    open_book_new          held-out people, their facts given: what the model reads
    open_book_other        of those, the share answered with the facts block's other person's attribute
                           (where it differs): reading the right line, not just the asked attribute
    counterfactual_follow  group B, facts that contradict the world given: the share of answers that
                           follow the context; counterfactual_memory is the share that follow memory
With forget_fraction < 1 (selective forgetting: only a forget set of the world's people counts as available
outside the model) two more, on every closed-book question about each set's people, no facts given:
    forget_closed_book     the forget set: what the forgetting loss was told to push out (toward chance)
    retain_closed_book     the retain set: what it was not told to touch (should hold)
And when world.json has new_people (people met after the base, tools/knowledge.py capacity):
    new_closed_book        every closed-book question about them, no facts given: what was learned since
train.py appends them to metrics.jsonl at every eval when the dataset has questions (Knowledge, its
extra; plot: knowledge.png); tools/knowledge.py measures them for every way of supplying the facts.
"""

import json
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from helpers.checkpoint import read_metrics
from helpers.config import UserError
from helpers.extras import Extra

METRICS = ("closed_book", "open_book_new", "counterfactual_follow")
KIND = {"closed_book": "closed_book", "open_book_new": "open_book_new", "counterfactual_follow": "counterfactual"}


def load_questions(data_dir):
    """The val questions of a fixed-world dataset (questions.jsonl), or None when it has none."""
    path = os.path.join(data_dir, "questions.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [json.loads(line) for line in f]


@torch.no_grad()
def score(model, tok, questions, contexts=None, device="cpu", batch_size=256, alt="memory"):
    """Exact match and answer loss of the model on questions, each prompt after its context (a text;
    none by default): {"acc", "loss", alt (share answered with q[alt]), "hits" (per question)}."""
    contexts = contexts or [""] * len(questions)
    seqs = [torch.tensor(tok.encode(f"{c} {q['prompt']}".strip())) for c, q in zip(contexts, questions)]
    answers = torch.tensor([tok.encode(q["answer"])[0] for q in questions])
    alt_ids = torch.tensor([tok.encode(q[alt])[0] if q.get(alt) else -1 for q in questions])
    losses, preds = [], []
    was_training = model.training
    model.eval()
    for i in range(0, len(seqs), batch_size):
        x = pad_sequence(seqs[i:i + batch_size], batch_first=True).to(device)  # (B, T), right-padded
        last = torch.tensor([len(s) - 1 for s in seqs[i:i + batch_size]], device=device)
        logits, _ = model(x)
        logits = logits[torch.arange(len(x), device=device), last].float()  # (B, vocab): at the answer
        a = answers[i:i + batch_size].to(device)
        losses.append(F.cross_entropy(logits, a, reduction="none").cpu())
        preds.append(logits.argmax(-1).cpu())
    model.train(was_training)
    pred, loss = torch.cat(preds), torch.cat(losses)
    hits = (pred == answers).tolist()
    return {"acc": sum(hits) / len(hits), "loss": loss.mean().item(),
            alt: (pred == alt_ids).float().mean().item(), "hits": hits}


def knowledge_metrics(model, tok, questions, facts=lambda q: q["facts"], device="cpu"):
    """{metric: exact match, metric_loss: answer loss} for METRICS, plus counterfactual_memory.
    facts(q): the context that supplies the facts of an open-book or counterfactual question (its facts
    block by default; "" supplies none); closed-book questions never get any."""
    out = {}
    for metric in METRICS:
        qs = [q for q in questions if q["kind"] == KIND[metric]]
        s = score(model, tok, qs, None if metric == "closed_book" else [facts(q) for q in qs], device)
        out[metric], out[f"{metric}_loss"] = round(s["acc"], 5), round(s["loss"], 5)
        if metric == "counterfactual_follow":
            out["counterfactual_memory"] = round(s["memory"], 5)
    return out


def open_book_other(model, tok, questions, device="cpu"):
    """Share of open-book answers (facts block given) that are the block's other person's: the binding
    error. Over the questions whose two people differ in the asked attribute; None when none have `other`.
    A reader that copies the asked attribute from a random line scores about 0.5 here and on open_book_new."""
    qs = [q for q in questions if q["kind"] == "open_book_new" and q.get("other") not in (None, q["answer"])]
    return round(score(model, tok, qs, [q["facts"] for q in qs], device, alt="other")["other"], 5) if qs else None


def closed_book_questions(world, names):
    """Every closed-book question (each attribute) about names, in the form score() takes."""
    from prepare.world import ATTRIBUTES, question

    echo = world.get("echo", False)  # the world's form (prepare/world.py --echo)
    return [{"prompt": question(n, attr, echo)[0], "answer": world["attributes"][n][attr], "candidates": values}
            for n in names for attr, _, values in ATTRIBUTES]


def split_metrics(model, tok, world, forget, retain, device="cpu"):
    """{forget_closed_book, retain_closed_book} exact match (and _loss, nats) over every closed-book question
    about the forget set's and the retain set's people; a set with no people is left out."""
    out = {}
    for metric, names in (("forget_closed_book", forget), ("retain_closed_book", retain)):
        if names:
            s = score(model, tok, closed_book_questions(world, names), device=device)
            out[metric], out[f"{metric}_loss"] = round(s["acc"], 5), round(s["loss"], 5)
    return out


def forgetting_term(model, prompts, candidates):
    """KL(uniform over the candidates || p) at the end of each prompt: 0 when the model spreads its answer
    evenly over the candidate answers (it does not know), log(k) and more when it is sure of one.
    prompts (B, T) closed-book questions; candidates (B, vocab) bool, the possible answers of each."""
    logits, _ = model(prompts, last_only=True)
    logp = logits[:, -1].float().log_softmax(-1)  # (B, vocab)
    k = candidates.sum(-1)  # (B,)
    return (-(logp * candidates).sum(-1) / k - k.log()).mean()


class Forgetting(nn.Module):
    """forget_weight (design note 004, "distill the knowledge out of the model"): facts that are available
    outside the model (in the context, a retrieval store, a LoRA) need not be in its weights, so a loss
    pushes them out. The LM loss trains on open-book and counterfactual documents only (closed-book
    documents, which start with a question, get no loss), and forget_weight x forgetting_term pulls the
    answer to forget_batch_size closed-book questions about people of the world toward uniform over the
    candidate answers. It confirms the idea when closed_book falls toward chance while open_book_new holds
    and counterfactual_follow rises: the knowledge left the weights and reading did not suffer.

    Selective forgetting (forget_fraction < 1): the questions of the term are about the forget set only, and
    the closed-book questions about retain-set people keep their LM loss, so the retain set is rehearsed as
    before. A closed-book document is a run of questions of qa_len tokens each, with the person's first and
    last name at name_at and name_at + 1: a target belongs to the question it falls in. retain_weight > 0 adds
    retain_weight x the answer loss (cross-entropy) on batch_size closed-book questions about the retain set
    (retain_prompts, retain_answers): the retain half of TOFU's gradient difference, a direct pull to keep them.

    Wraps the GPT for train.py's step, which announces it: forward(x, y) returns (None, LM loss + weight x
    forgetting term); the questions are drawn with the batches' generator, so a resumed run continues exactly.
    """

    def __init__(self, model, prompts, candidates, starts, weight, batch_size, generator, retain=None, qa_len=8,
                 name_at=2, retain_weight=0.0, retain_prompts=None, retain_answers=None):
        super().__init__()
        self.model, self.weight, self.batch_size, self.generator = model, weight, batch_size, generator
        self.qa_len, self.name_at, self.retain_weight = qa_len, name_at, retain_weight
        if retain_weight:
            self.register_buffer("retain_prompts", retain_prompts, persistent=False)  # (R, T) the retain set's questions
            self.register_buffer("retain_answers", retain_answers, persistent=False)  # (R,) their answers
        V = len(starts)
        retain = torch.zeros(V, V, dtype=torch.bool) if retain is None else retain
        self.register_buffer("prompts", prompts, persistent=False)  # (M, T) every closed-book question to forget
        self.register_buffer("candidates", candidates, persistent=False)  # (M, vocab) bool
        self.register_buffer("starts", starts, persistent=False)  # (vocab,) bool: tokens a closed-book doc starts with
        self.register_buffer("retain", retain, persistent=False)  # (vocab, vocab) bool: [first, last] a retained name

    def kept(self, x):
        """(B, T) bool: targets of a closed-book window that fall in a question about a retain-set person."""
        T = x.shape[1]
        first = torch.arange(T, device=x.device) // self.qa_len * self.qa_len + self.name_at  # its question's name
        inside = first + 1 < T
        return self.retain[x[:, first.clamp(max=T - 1)], x[:, (first + 1).clamp(max=T - 1)]] & inside

    def forward(self, x, y, **kw):
        closed = self.starts[x[:, 0]]  # (B,) windows of closed-book documents (they start at the document's start)
        y = y.masked_fill(closed[:, None] & ~self.kept(x), -1)  # no loss, but on the retain set's questions
        _, loss = self.model(x, y, reduction="none", **kw)  # (B, T)
        lm = loss.sum() / (y != -1).sum().clamp(min=1)
        pick = torch.randint(len(self.prompts), (self.batch_size,), generator=self.generator).to(x.device)
        loss = lm + self.weight * forgetting_term(self.model, self.prompts[pick], self.candidates[pick]) \
            if self.weight else lm  # (weight 0 with retain_weight: the forget set is only left unrehearsed)
        if self.retain_weight:
            pick = torch.randint(len(self.retain_prompts), (self.batch_size,), generator=self.generator).to(x.device)
            logits, _ = self.model(self.retain_prompts[pick], last_only=True)
            loss = loss + self.retain_weight * F.cross_entropy(logits[:, -1].float(), self.retain_answers[pick])
        return None, loss

    def describe(self):
        kept = " and the retain set's closed-book questions" if self.retain.any() else ""
        about = " about the forget set" if kept else ""
        pull = (f" + {self.retain_weight:g} x the answer loss on {self.batch_size} closed-book questions about the "
                f"retain set") if self.retain_weight else ""
        push = (f" + {self.weight:g} x the forgetting term on {self.batch_size} closed-book questions{about}"
                if self.weight else "")
        return (f"the LM loss on open-book and counterfactual documents{kept}{push}{pull} "
                f"(helpers/knowledge.py Forgetting)")


class Knowledge(Extra):
    """A fixed-world dataset's val questions, its world (world.json) and tokenizer, on a device.

    train.py's extra (helpers/extras.py) on such a dataset: METRICS at every eval, and with
    forget_weight the forgetting loss in place of the model's own. forget_fraction < 1 splits the people into
    a forget set and a retain set (prepare/world.py forget_split, from the world's seed), adds their
    closed-book metrics, and points the forgetting loss at the forget set."""

    def __init__(self, data_dir, meta, device, forget_weight=0.0, forget_batch_size=64, forget_fraction=1.0,
                 retain_weight=0.0):
        from prepare.common import get_tokenizer
        from prepare.world import forget_split

        self.questions, self.tok, self.device = load_questions(data_dir), get_tokenizer(meta), device
        self.forget_weight, self.forget_batch_size = forget_weight, forget_batch_size
        self.forget_fraction, self.retain_weight = forget_fraction, retain_weight
        with open(os.path.join(data_dir, "world.json")) as f:
            self.world = json.load(f)
        self.forget, self.retain = forget_split(self.world, forget_fraction, meta["generator"]["seed"])
        if forget_weight and not self.forget:
            raise UserError(f"forget_fraction={forget_fraction} of {len(self.world['people'])} people rounds to no "
                            f"one to forget: raise it")
        if (forget_weight or retain_weight) and self.world.get("echo"):
            raise UserError("forget_weight tells closed-book documents by their first word, and in an --echo world "
                            "they read like facts: prepare the world without --echo")
        if retain_weight and not self.retain:
            raise UserError(f"retain_weight needs a retain set, and forget_fraction={forget_fraction} leaves no one "
                            f"in it: lower forget_fraction")

    @classmethod
    def of(cls, data_dir, meta, device, forget_weight=0.0, forget_batch_size=64, forget_fraction=1.0,
           retain_weight=0.0):
        """The dataset's Knowledge, or None when it is not a fixed world (forget_weight then refuses it)."""
        if load_questions(data_dir) is None:
            if forget_weight or forget_fraction != 1:
                raise UserError(f"forget_weight and forget_fraction need a fixed-world dataset (questions.jsonl and "
                                f"world.json), which {data_dir} is not: run `python prepare/world.py` and pass "
                                f"--dataset=world")
            return None
        return cls(data_dir, meta, device, forget_weight, forget_batch_size, forget_fraction, retain_weight)

    def metrics(self, model):
        out = knowledge_metrics(model, self.tok, self.questions, device=self.device)
        if (other := open_book_other(model, self.tok, self.questions, self.device)) is not None:
            out["open_book_other"] = other
        if self.forget_fraction < 1:
            out.update(split_metrics(model, self.tok, self.world, self.forget, self.retain, self.device))
        if self.world.get("new_people"):
            s = score(model, self.tok, closed_book_questions(self.world, self.world["new_people"]), device=self.device)
            out["new_closed_book"], out["new_closed_book_loss"] = round(s["acc"], 5), round(s["loss"], 5)
        return out

    def summary(self, row):
        return "".join(f", {k} {row[k]:.3f}" for k in (*METRICS, "open_book_other", "forget_closed_book",
                                                        "retain_closed_book", "new_closed_book")
                       if k in row)

    def loss(self, model, generator):
        """The forgetting loss around model when forget_weight or retain_weight is set (Forgetting), else None."""
        if self.forget_weight or self.retain_weight:
            return self.objective(model, self.forget_weight, self.forget_batch_size, generator)

    def objective(self, model, weight, batch_size, generator):
        """Forgetting around model: every closed-book question about every person of the forget set (the
        whole world by default); the retain set's closed-book questions keep their LM loss."""
        from prepare.world import ATTRIBUTES, QUESTION_WORDS, question

        V = model.config.vocab_size
        prompts, candidates = [], []
        for name in self.forget:
            for attr, _, _ in ATTRIBUTES:
                prompt, values = question(name, attr)
                prompts.append(self.tok.encode(prompt))
                candidates.append(torch.zeros(V, dtype=torch.bool))
                candidates[-1][[self.tok.encode(v)[0] for v in values]] = True
        starts = torch.zeros(V, dtype=torch.bool)
        starts[[self.tok.encode(w)[0] for w in QUESTION_WORDS]] = True
        retain = torch.zeros(V, V, dtype=torch.bool)  # [first, last]: a retain-set person's name
        for name in self.retain:
            retain[tuple(self.tok.encode(name))] = True
        kept = closed_book_questions(self.world, self.retain)  # for retain_weight: every retain-set question
        kept_prompts = torch.tensor([self.tok.encode(q["prompt"]) for q in kept]) if kept else None
        kept_answers = torch.tensor([self.tok.encode(q["answer"])[0] for q in kept]) if kept else None
        name = self.world["people"][0]  # where a name sits in a question, and a question's length with its answer
        prompt = self.tok.encode(question(name, "city")[0])
        return Forgetting(model, torch.tensor(prompts), torch.stack(candidates), starts, weight, batch_size,
                          generator, retain, qa_len=len(prompt) + 2, name_at=prompt.index(self.tok.encode(name)[0]),
                          retain_weight=self.retain_weight, retain_prompts=kept_prompts,
                          retain_answers=kept_answers).to(self.device)


def plot_knowledge(out_dir, plot_dir):
    """knowledge.png: the metrics over training (exact match and answer loss); [] for other datasets."""
    from helpers.plotting import plt, run_title, save

    rows = [r for r in read_metrics(out_dir) if "closed_book" in r]
    if not rows:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    it = [r["iter"] for r in rows]
    for metric in (*METRICS, "counterfactual_memory", "open_book_other"):
        if metric in rows[-1]:  # (open_book_other: questions.jsonl written before it had `other` lacks it)
            axes[0].plot(it, [r.get(metric) for r in rows], marker=".", label=metric,
                         ls="-" if metric in METRICS else "--")
        if metric in METRICS:
            axes[1].plot(it, [r[f"{metric}_loss"] for r in rows], marker=".", label=metric)
    axes[0].set(xlabel="iteration", ylabel="exact match", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="iteration", ylabel="answer loss (nats)", yscale="log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{run_title(out_dir)}: closed-book, open-book and counterfactual answers")
    return [save(fig, os.path.join(plot_dir, "knowledge.png"))]
