"""Knowledge out of the model: the fixed world (prepare/world.py), its metrics and the forgetting loss
(helpers/knowledge.py), retrieval and the one command (tools/knowledge.py)."""

import json
import os
import random

import numpy as np
import pytest
import torch

import train
from conftest import TINY_MODEL
from helpers.checkpoint import read_metrics
from helpers.config import UserError
from helpers.knowledge import Forgetting, forgetting_term, knowledge_metrics, open_book_other, score
from model import GPT, GPTConfig
from prepare import world
from prepare.common import WordTokenizer, get_tokenizer

TINY_WORLD = ["--people=30", "--held_out=8", "--group_size=6", "--name_parts=10", "--train_docs=300",
              "--val_docs=40", "--eval_questions=10"]


def make_world(out, *extra):
    world.main([*TINY_WORLD, *extra, f"--out={out}"])
    return str(out)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("data") / "world")


def read_split(data_dir, split):
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    return get_tokenizer(meta).decode(np.fromfile(os.path.join(data_dir, f"{split}.bin"), dtype=meta["dtype"]))


def test_the_world_is_the_same_from_the_same_seed_and_differs_from_another(world_dir, tmp_path):
    again, other = make_world(tmp_path / "again"), make_world(tmp_path / "other", "--seed=5")
    for f in ("train.bin", "val.bin", "train.docs.npy", "world.json", "questions.jsonl", "library.jsonl"):
        assert open(os.path.join(world_dir, f), "rb").read() == open(os.path.join(again, f), "rb").read(), f
    assert open(os.path.join(world_dir, "train.bin"), "rb").read() != open(os.path.join(other, "train.bin"), "rb").read()


def test_new_people_leave_the_world_as_it_was_and_are_nobody_in_it(world_dir):
    w, more = world.make_world(0, 30, 8, 10, 6), world.make_world(0, 30, 8, 10, 6, new_people=12)
    new = more["new_people"]
    assert "new_people" not in w and len(new) == len(set(new)) == 12
    assert not set(new) & (set(w["people"]) | set(w["held_out"]))
    assert {n: a for n, a in more["attributes"].items() if n not in new} == w["attributes"]
    assert {k: v for k, v in more.items() if k not in ("new_people", "attributes")} == \
        {k: v for k, v in w.items() if k != "attributes"}  # people, groups, updates, fresh: as without new people
    assert json.load(open(os.path.join(world_dir, "world.json"))) == {k: v for k, v in w.items() if k != "fresh"}
    # capacity documents: closed-book questions about new people and the retain set only, both asked, true answers
    tok = get_tokenizer(json.load(open(os.path.join(world_dir, "meta.json"))))
    retain = world.forget_split(more, 0.5, 0)[1]
    attr = {"live": "city", "do": "job", "keep": "pet"}
    asked = [words[8 * q:8 * q + 8] for ids, _, _ in world.capacity_documents(more, 50, 1, retain, 0.5, tok)
             for words in [tok.decode(ids).split()] for q in range(4)]  # four questions of 8 words each
    names = {" ".join(q[2:4]) for q in asked}
    assert names <= set(new) | set(retain) and names & set(new) and names & set(retain)
    assert all(q[6] == more["attributes"][" ".join(q[2:4])][attr[q[4]]] for q in asked)


def test_held_out_people_are_never_in_train_and_only_open_book_in_val(world_dir):
    w = json.load(open(os.path.join(world_dir, "world.json")))
    train_text, val_text = read_split(world_dir, "train"), read_split(world_dir, "val")
    assert not [n for n in w["held_out"] if n in train_text]
    assert [n for n in w["held_out"] if n in val_text]  # the check can fail: they are in val
    for doc in val_text.split("<eot>"):
        if doc.strip().startswith(world.QUESTION_WORDS):  # a closed-book document: people of the world only
            assert not [n for n in w["held_out"] if n in doc]
    kinds = {}
    for q in map(json.loads, open(os.path.join(world_dir, "questions.jsonl"))):
        kinds.setdefault(q["kind"], set()).add(q["entity"])
        assert q["answer"] in q["candidates"] and q["answer"] in q["facts"]
    assert kinds["open_book_new"] <= set(w["held_out"])
    assert kinds["closed_book"] <= set(w["group_a"]) and kinds["counterfactual"] <= set(w["group_b"])
    assert not set(w["group_a"]) & set(w["group_b"])


class AnswerTable(torch.nn.Module):
    """A stand-in model whose logits after a whole token sequence come from a table (zeros elsewhere)."""

    def __init__(self, tok, table):
        super().__init__()
        self.tok, self.table = tok, {tuple(tok.encode(k)): v for k, v in table.items()}

    def forward(self, x):
        logits = torch.zeros(*x.shape, self.tok.n_vocab)
        for b in range(len(x)):
            for t in range(x.shape[1]):
                for token, logit in self.table.get(tuple(x[b, :t + 1].tolist()), {}).items():
                    logits[b, t, self.tok.encode(token)[0]] = logit
        return logits, None


def test_document_shape_flags_people_questions_and_facts_apart_and_bad_shapes_are_refused(tmp_path, capsys):
    w, rng = world.make_world(0, 30, 8, 10, 6), random.Random(0)
    doc = lambda kind: world.make_document(rng, w, kind, "train", 5, (4, 4))[0]  # noqa: E731
    for _ in range(20):
        assert (doc("open").count("lives in"), doc("open").count("?")) == (4, 5)
        assert doc("counterfactual").count("lives in") in (4, 5)  # (its person of the world is added if not drawn)
        assert doc("closed").count("?") == 6 and "lives in" not in doc("closed")  # one question more, as by default
    text, facts = world.make_document(rng, w, "open", "train", apart=True)
    sentences = facts.split(" . ")  # one per fact, each starting with the person's whole name
    assert len(sentences) in (6, 9) and all(sentences[i].split()[:2] == sentences[i - i % 3].split()[:2]
                                             for i in range(len(sentences)))
    apart = make_world(tmp_path / "apart", "--facts_apart=True")
    for line in open(os.path.join(apart, "library.jsonl")):
        entity, text = json.loads(line).values()
        assert text.count(entity) == 3 and text.count(" . ") == 2
    q = json.loads(next(line for line in open(os.path.join(apart, "questions.jsonl")) if "open_book" in line))
    assert q["facts"].count(q["entity"]) == 3 and q["facts"].count(" . ") == 5
    for bad in ("--open_people=1,3", "--open_people=3,2", "--open_people=3", "--questions=0"):
        with pytest.raises(SystemExit, match="open_people must be min,max"):
            make_world(tmp_path / "bad", bad)
    assert not (tmp_path / "bad").exists()  # refused before anything is written


def test_metrics_score_a_hand_made_answer_set():
    tok = WordTokenizer(["Ana", "Bo", "where", "does", "live", "?", "Pim", "Rom", "lives", "in", "."])
    q = lambda kind, name, answer, facts="", memory=None: {  # noqa: E731
        "kind": kind, "prompt": f"where does {name} live ?", "answer": answer, "facts": facts, "memory": memory,
        "candidates": ["Pim", "Rom"]}
    questions = [q("closed_book", "Ana", "Pim"), q("closed_book", "Bo", "Rom"),
                 q("open_book_new", "Ana", "Rom", "Ana lives in Rom ."),
                 q("counterfactual", "Bo", "Pim", "Bo lives in Pim .", memory="Rom")]
    # right on Ana, wrong on Bo when closed-book; reads the facts; follows memory on the counterfactual
    model = AnswerTable(tok, {"where does Ana live ?": {"Pim": 50.0}, "where does Bo live ?": {"Pim": 50.0},
                              "Ana lives in Rom . where does Ana live ?": {"Rom": 50.0},
                              "Bo lives in Pim . where does Bo live ?": {"Rom": 50.0}})
    m = knowledge_metrics(model, tok, questions)
    assert (m["closed_book"], m["open_book_new"], m["counterfactual_follow"], m["counterfactual_memory"]) == \
        (0.5, 1.0, 0.0, 1.0)
    assert m["closed_book_loss"] == pytest.approx(25.0, abs=1e-3)  # (0 + 50) / 2 nats
    # without its facts, the open-book question gets the memorized answer, which is wrong
    flat = score(model, tok, questions[2:3])
    assert flat["acc"] == 0.0 and flat["loss"] == pytest.approx(50.0, abs=1e-3)


def test_open_book_other_counts_answers_taken_from_the_other_person_s_line():
    tok = WordTokenizer(["Ana", "Bo", "Cy", "where", "does", "live", "?", "Pim", "Rom", "lives", "in", "."])
    facts = "Ana lives in Rom . Bo lives in Pim ."
    q = lambda name, answer, other: {"kind": "open_book_new", "prompt": f"where does {name} live ?",  # noqa: E731
                                     "answer": answer, "other": other, "facts": facts, "candidates": ["Pim", "Rom"]}
    # reads Ana's line right, answers Bo's question from Ana's line; Cy's two lines agree, so Cy is left out
    model = AnswerTable(tok, {f"{facts} where does Ana live ?": {"Rom": 50.0},
                              f"{facts} where does Bo live ?": {"Rom": 50.0},
                              f"{facts} where does Cy live ?": {"Rom": 50.0}})
    questions = [q("Ana", "Rom", "Pim"), q("Bo", "Pim", "Rom"), q("Cy", "Rom", "Rom")]
    assert open_book_other(model, tok, questions) == 0.5
    assert open_book_other(model, tok, [{**x, "other": None} for x in questions]) is None  # older questions.jsonl


def tiny_gpt(vocab, block_size=16):
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=block_size, vocab_size=vocab, bias=False))


def test_forgetting_term_is_zero_when_the_answer_is_uniform_over_the_candidates_and_pulls_otherwise():
    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.nn.Parameter(logits)

        def forward(self, x, last_only=False):
            return self.logits.expand(len(x), 1, -1), None

    candidates = torch.tensor([[True, True, False, False]])
    flat = Fixed(torch.tensor([0.0, 0.0, -1e9, -1e9]))
    assert forgetting_term(flat, torch.zeros(1, 3, dtype=torch.long), candidates).item() == pytest.approx(0, abs=1e-6)
    sure = Fixed(torch.tensor([5.0, 0.0, 0.0, 0.0]))
    term = forgetting_term(sure, torch.zeros(1, 3, dtype=torch.long), candidates)
    term.backward()
    assert term.item() > 0.5 and sure.logits.grad.abs().sum() > 0


def test_forgetting_objective_at_weight_zero_is_the_open_book_lm_loss(world_dir):
    from helpers.knowledge import Knowledge

    meta = json.load(open(os.path.join(world_dir, "meta.json")))
    k, tok = Knowledge(world_dir, meta, "cpu"), get_tokenizer(meta)
    model = tiny_gpt(meta["vocab_size"])
    closed, opened = tok.encode("where does " + k.world["people"][0] + " live ?"), tok.encode(
        world.facts_line(k.world["people"][0], k.world["attributes"][k.world["people"][0]]))
    x = torch.tensor([closed + [0] * (len(opened) - len(closed)), opened])[:, :-1]
    y = torch.tensor([closed + [0] * (len(opened) - len(closed)), opened])[:, 1:]
    open_only = model(x[1:], y[1:])[1]
    for weight in (0.0, 1.0):
        gen = torch.Generator().manual_seed(0)
        loss = k.objective(model, weight, 8, gen)(x, y)[1]
        if weight == 0:
            assert loss.item() == pytest.approx(open_only.item())  # the closed-book row gets no loss
        else:
            assert loss.item() > open_only.item() + 1e-3
            loss.backward()
            assert model.transformer.wte.weight.grad.abs().sum() > 0
    assert isinstance(k.objective(model, 1.0, 8, gen), Forgetting)


def test_forget_weight_needs_a_fixed_world(facts_dir, tmp_path):
    from conftest import train_args

    with pytest.raises(UserError, match="fixed-world"):
        train.main(train_args(facts_dir, str(tmp_path / "out"), "--forget_weight=1.0", "--max_iters=1"))
    with pytest.raises(UserError, match="forget_weight must be >= 0"):
        train.main(train_args(facts_dir, str(tmp_path / "out"), "--forget_weight=-1.0"))
    with pytest.raises(UserError, match="fixed-world"):
        train.main(train_args(facts_dir, str(tmp_path / "out"), "--forget_fraction=0.5", "--max_iters=1"))
    with pytest.raises(UserError, match=r"forget_fraction must be in \(0, 1\]"):
        train.main(train_args(facts_dir, str(tmp_path / "out"), "--forget_fraction=0"))
    with pytest.raises(UserError, match="needs a retain set"):
        train.main(train_args(facts_dir, str(tmp_path / "out"), "--retain_weight=1.0"))


def test_the_forget_split_is_deterministic_disjoint_nested_and_whole_at_one(world_dir):
    w = json.load(open(os.path.join(world_dir, "world.json")))
    forget, retain = world.forget_split(w, 0.5, 0)
    assert (forget, retain) == world.forget_split(w, 0.5, 0)  # the same from the same seed
    assert len(forget) == 15 and not set(forget) & set(retain) and sorted(forget + retain) == sorted(w["people"])
    assert world.forget_split(w, 0.5, 1)[0] != forget  # another world seed, another split
    assert set(world.forget_split(w, 0.1, 0)[0]) < set(forget) < set(world.forget_split(w, 0.9, 0)[0])
    assert world.forget_split(w, 1.0, 0) == (w["people"], [])  # everyone, in world order


def windows(world_dir, meta, n=64, seed=0):
    """n train windows of the world (80 tokens: a whole closed-book document and more)."""
    from helpers.data import Batches

    return Batches(world_dir, meta, 80, n, "cpu").get("train", torch.Generator().manual_seed(seed))[:2]


def test_forget_fraction_one_is_the_forgetting_loss_on_everyone(world_dir):
    from helpers.knowledge import Knowledge

    meta = json.load(open(os.path.join(world_dir, "meta.json")))
    k, tok = Knowledge(world_dir, meta, "cpu", 1.0, 8), get_tokenizer(meta)
    model = tiny_gpt(meta["vocab_size"], 80)
    f = k.objective(model, 1.0, 8, torch.Generator().manual_seed(0))
    # every closed-book question about every person, in world order, and no retained name
    assert [tok.decode(p.tolist()) for p in f.prompts] == [
        world.question(n, a)[0] for n in k.world["people"] for a, _, _ in world.ATTRIBUTES]
    assert not f.retain.any() and not k.retain
    # the loss: no LM loss on closed-book windows, + the term on questions drawn with the generator
    x, y = windows(world_dir, meta)
    closed = f.starts[x[:, 0]]
    assert 0 < closed.sum() < len(x)
    lm = model(x, y.masked_fill(closed[:, None], -1))[1]
    pick = torch.randint(len(f.prompts), (8,), generator=torch.Generator().manual_seed(0))
    expected = lm + forgetting_term(model, f.prompts[pick], f.candidates[pick])
    assert f(x, y)[1].item() == pytest.approx(expected.item(), rel=1e-6)
    assert "retain" not in f.describe() and "forget_closed_book" not in k.metrics(model)


def test_selective_forgetting_forgets_only_the_forget_set_and_rehearses_the_retain_set(world_dir):
    from helpers.knowledge import Knowledge

    meta = json.load(open(os.path.join(world_dir, "meta.json")))
    k, tok = Knowledge(world_dir, meta, "cpu", 1.0, 8, forget_fraction=0.5), get_tokenizer(meta)
    forget, retain = set(k.forget), set(k.retain)
    model = tiny_gpt(meta["vocab_size"], 80)
    f = k.objective(model, 1.0, 8, torch.Generator().manual_seed(0))
    asked = {" ".join(tok.decode(p.tolist()).split()[2:4]) for p in f.prompts}  # the name in each question
    assert asked == forget and len(f.prompts) == 3 * len(forget)
    # the LM loss: in closed-book windows, exactly the questions about retain-set people keep their targets
    x, y = windows(world_dir, meta)
    kept, checked = f.kept(x), {True: 0, False: 0}
    for row in range(len(x)):
        if not f.starts[x[row, 0]]:
            continue
        words = tok.decode(x[row].tolist()).split()
        for q in range(4):  # a closed-book document: four questions of 8 tokens
            name = " ".join(words[8 * q + 2:8 * q + 4])
            assert name in forget | retain
            assert kept[row, 8 * q:8 * q + 8].tolist() == [name in retain] * 8
            checked[name in retain] += 1
    assert checked[True] and checked[False]  # both kinds were seen
    assert "retain set's closed-book questions" in f.describe()
    m = k.metrics(model)
    assert 0 <= m["forget_closed_book"] <= 1 and 0 <= m["retain_closed_book"] <= 1
    # retain_weight: + the answer loss on questions about the retain set, drawn after the forget set's
    plain = f(x, y)[1]
    k.retain_weight = 1.0
    pulled = k.objective(model, 1.0, 8, torch.Generator().manual_seed(0))
    assert {" ".join(tok.decode(p.tolist()).split()[2:4]) for p in pulled.retain_prompts} == retain
    assert pulled(x, y)[1].item() > plain.item() + 0.1 and "about the retain set" in pulled.describe()
    with pytest.raises(UserError, match="retain set"):
        Knowledge(world_dir, meta, "cpu", 1.0, 8, forget_fraction=1.0, retain_weight=1.0)
    # forget_weight 0 with retain_weight: the same LM loss and pull, no forgetting term
    neglect = Knowledge(world_dir, meta, "cpu", 0.0, 8, forget_fraction=0.5, retain_weight=1.0).loss(
        model, torch.Generator().manual_seed(0))
    assert isinstance(neglect, Forgetting) and "forgetting term" not in neglect.describe()
    lm = model(x, y.masked_fill(f.starts[x[:, 0]][:, None] & ~f.kept(x), -1))[1]
    assert lm.item() < neglect(x, y)[1].item() < pulled(x, y)[1].item()


def test_retrieval_recall_on_a_known_store(tmp_path):
    from tools.knowledge import retrieve

    store = [{"entity": "Voka Tusel", "text": "Voka Tusel lives in Pelkor , works as smith , keeps fox ."},
             {"entity": "Voka Rano", "text": "Voka Rano lives in Odrin , works as baker , keeps owl ."},
             {"entity": "Mibe Rano", "text": "Mibe Rano lives in Tulvek , works as baker , keeps cat ."}]
    with open(tmp_path / "library.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in store)
    ask = lambda name: {"kind": "open_book_new", "entity": name, "prompt": f"where does {name} live ?"}  # noqa: E731
    found, recall = retrieve(str(tmp_path), [ask("Voka Rano"), ask("Mibe Rano")], k=1)
    assert recall == 1.0 and found["where does Voka Rano live ?"] == store[1]["text"]
    _, recall = retrieve(str(tmp_path), [ask("Voka Rano"), ask("Pim Saro")], k=1)  # Pim Saro is not in the store
    assert recall == 0.5


def tiny_knowledge(tmp_path, monkeypatch, iters, eval_interval=2):
    """tools/knowledge.py with train.py run in this process (the same runs, no interpreter start-ups; a run
    trained before is reused), the keys of a tiny run of `iters` steps as a dict literal (keys(*extra)), and the
    arguments every tiny experiment on TINY_WORLD shares."""
    from tools import knowledge

    def train_here(out_dir, args, inputs=()):
        if not os.path.exists(os.path.join(out_dir, "ckpt.pt")):
            train.main([*args, f"--out_dir={out_dir}", "--overwrite=True"])
        return 1.0
    monkeypatch.setattr(knowledge, "train_or_reuse", train_here)
    run = f"--max_iters={iters}", f"--lr_decay_iters={iters}", f"--eval_interval={eval_interval}", "--block_size=48"
    keys = lambda *extra: "{" + ", ".join(f"'{a[2:].split('=')[0]}': {a.split('=')[1]!r}"  # noqa: E731
                                          for a in (*TINY_MODEL, *run, *extra)) + "}"  # facts + question: 34 tokens
    argv = ["--name=tiny", f"--out_root={tmp_path / 'out'}", f"--data_dir={tmp_path / 'world'}", "--seeds=(0, 1)",
            "--data={" + ", ".join(f"'{a[2:].split('=')[0]}': {a.split('=')[1]}" for a in TINY_WORLD) + "}",
            f"--base={keys()}", f"--forgetting={keys('--forget_weight=1.0')}", f"--lora={keys('--lora_rank=2')}"]
    return knowledge, keys, argv


def test_one_command_writes_the_table_for_every_arm(tmp_path, monkeypatch):
    knowledge, keys, argv = tiny_knowledge(tmp_path, monkeypatch, 4)
    results = knowledge.main([*argv, f"--priming={keys('--priming_dim=8')}"])
    for arm in knowledge.ARMS:
        for metric in ("closed_book", "open_book_new", "counterfactual_follow"):
            r = results[arm][metric]
            assert 0 <= r["mean"] <= 1 and len(r["values"]) == 2 and r["std"] is not None
    assert 0 <= results["retrieval_recall"] <= 1 and results["command"].startswith("python tools/knowledge.py")
    out = tmp_path / "out" / "tiny"
    assert {"results.json", "results.md", "arms.png", "curves.png"} <= set(os.listdir(out))
    assert "closed_book" in read_metrics(str(out / "s0" / "forgetting"))[-1]  # train.py's evals score the questions

    # selective forgetting: the same base and control, one forgetting fine-tune per fraction
    sel = knowledge.main([
        "--name=tiny", f"--out_root={tmp_path / 'out'}", f"--data_dir={tmp_path / 'world'}", "--seeds=(0, 1)",
        "--data={" + ", ".join(f"'{a[2:].split('=')[0]}': {a.split('=')[1]}" for a in TINY_WORLD) + "}",
        f"--base={keys()}", f"--forgetting={keys('--forget_weight=1.0')}", f"--priming={keys('--priming_dim=8')}",
        f"--lora={keys('--lora_rank=2')}", "--forget_fractions=(0.3, 0.7)",
        "--selective_arms={'forget_retain': {'retain_weight': 1.0}}"])
    for arm in ("forgetting", "forget_retain", "continued", "base"):
        for f in ("0.3", "0.7"):
            for metric in knowledge.SELECTIVE:
                assert 0 <= sel[arm][f][metric]["mean"] <= 1 and len(sel[arm][f][metric]["values"]) == 2
    assert (sel["splits"]["0.3"]["forget_people"], sel["splits"]["0.7"]["forget_people"]) == (9, 21)
    assert set(sel["splits"]["0.3"]["forget"]) < set(sel["splits"]["0.7"]["forget"])
    assert {"results.json", "results.md", "selective.png"} <= set(os.listdir(out / "selective"))
    row = read_metrics(str(out / "s1" / "forgetting_f0.7"))[-1]
    assert "forget_closed_book" in row and "retain_closed_book" in row
    assert json.load(open(out / "s1" / "forgetting_f0.7" / "config.json"))["train"]["forget_fraction"] == 0.7

    # capacity: the sweep's runs (reused), then the new people learned from forget_retain and from continued
    cap = knowledge.main([
        "--name=tiny", f"--out_root={tmp_path / 'out'}", f"--data_dir={tmp_path / 'world'}", "--seeds=(0, 1)",
        "--data={" + ", ".join(f"'{a[2:].split('=')[0]}': {a.split('=')[1]}" for a in TINY_WORLD) + "}",
        f"--base={keys()}", f"--forgetting={keys('--forget_weight=1.0')}", f"--priming={keys('--priming_dim=8')}",
        f"--lora={keys('--lora_rank=2')}", "--forget_fractions=(0.3,)",
        "--selective_arms={'forget_retain': {'retain_weight': 1.0}}", "--new_people=10"])
    for run in ("forget_retain_f0.3", "continued_f0.3"):
        assert cap[run]["iters"] == [0, 2, 4] and len(cap[run]["steps_to_half"]["values"]) == 2
        for metric in knowledge.CAPACITY:
            assert len(cap[run][metric]["values"]) == 2 and all(0 <= v <= 1 for v in cap[run][metric]["mean"])
    assert "steps_minus_continued" in cap["forget_retain_f0.3"] and "steps_minus_continued" not in cap["continued_f0.3"]
    assert {"results.json", "results.md", "capacity.png"} <= set(os.listdir(out / "capacity_n10"))
    trained = json.load(open(out / "s0" / "capacity_n10_forget_retain_f0.3" / "config.json"))["train"]
    assert (trained["forget_weight"], trained["retain_weight"], trained["forget_fraction"]) == (0.0, 0.0, 0.3)
    assert trained["init_from"].endswith("forget_retain_f0.3")
    with pytest.raises(UserError, match="new_people needs"):
        knowledge.main(["--name=tiny", "--new_people=10", "--forgetting={'forget_weight': 1.0}",
                        "--lora={'lora_rank': 2}"])


def test_paraphrases_state_the_same_facts_in_different_forms():
    a = {"city": "Pelkor", "job": "smith", "pet": "fox"}
    assert world.statement("Voka Tusel", a) == world.facts_line("Voka Tusel", a)  # FORMS[0]: the store's line
    forms = world.paraphrases("Voka Tusel", a, len(world.FORMS), __import__("random").Random(0))
    assert len(set(forms)) == len(world.FORMS) == 12
    for text in forms:  # each states the three facts, and nothing but the world's words
        assert all(f" {v} " in f" {text} " for v in a.values()) and text.count("Voka Tusel") in (1, 3)


def test_a_lora_that_carries_facts_never_sees_a_question_about_its_targets(tmp_path, monkeypatch):
    knowledge, keys, argv = tiny_knowledge(tmp_path, monkeypatch, 2)
    argv += ["--qa_people=6",
             "--lora_facts={'facts': {'paraphrases': 3}, 'replay': {'paraphrases': 3, 'replay': 0.5}}"]
    results = knowledge.main(argv)
    w = json.load(open(tmp_path / "world" / "world.json"))
    plain, replayed = (str(tmp_path / "world" / f"lora_facts_q6_p3_s0.25_r{r}") for r in ("0", "0.5"))
    qa = json.load(open(os.path.join(plain, "world.json")))["new_people"]
    assert len(qa) == 6 and not set(qa) & (set(w["held_out"]) | set(w["people"]))
    docs = [d.strip() for d in read_split(plain, "train").split("<eot>")[:-1]]
    has = lambda name, doc: f" {name} " in f" {doc} "  # noqa: E731 (a whole name, not part of another)
    asked = [d for d in docs if d.strip().startswith(world.QUESTION_WORDS)]
    said = [d for d in docs if d not in asked]
    # the targets are stated, in 3 different forms each, and never asked about; the Q&A people are both
    assert not [n for n in w["held_out"] for d in asked if has(n, d)]
    assert all(len({d for d in said if has(n, d)}) == 3 for n in w["held_out"] + qa)
    assert asked and {" ".join(d.split()[i + 2:i + 4]) for d in asked for i in range(0, len(d.split()), 8)} <= set(qa)
    # replay adds the base's first training documents, and nothing else changes
    more = [d.strip() for d in read_split(replayed, "train").split("<eot>")[:-1]]
    world_docs = [d.strip() for d in read_split(str(tmp_path / "world"), "train").split("<eot>")]
    assert more[:len(docs)] == docs and more[len(docs):] == world_docs[:len(docs)] and len(more) == 2 * len(docs)
    for arm in ("base", "lora", "facts", "replay"):
        for metric in knowledge.FACTS:
            r = results[arm][metric]
            assert 0 <= r["mean"] <= 1 and len(r["values"]) == 2 and r["std"] is not None
    assert results["arms"]["replay"]["data"]["replay"] == 0.5
    assert {"results.json", "results.md", "lora_facts.png"} <= set(os.listdir(tmp_path / "out" / "tiny" / "lora_facts"))
    with pytest.raises(UserError, match="lora_facts arm 'x'"):
        knowledge.main([*argv, "--lora_facts={'x': {'qa_share': 1.0}}"])


def test_sizes_score_every_size_and_seed_and_name_the_smallest_reader(tmp_path, monkeypatch):
    knowledge, keys, common = tiny_knowledge(tmp_path, monkeypatch, 3, eval_interval=3)
    sizes = "{'2x32': {}, '1x8': {'n_layer': 1, 'n_embd': 8, 'n_head': 1}, '1x16': {'n_layer': 1, 'n_embd': 16}}"
    results = knowledge.main([*common, f"--sizes={sizes}"])
    assert results["sizes"] == ["1x8", "1x16", "2x32"]  # by parameters
    vocab = json.load(open(tmp_path / "world" / "meta.json"))["vocab_size"]
    for label, (n_layer, d) in {"1x8": (1, 8), "1x16": (1, 16), "2x32": (2, 32)}.items():
        r = results[label]
        assert r["params"] == n_layer * (12 * d * d + 13 * d) + 2 * d  # blocks and the final norm (bias=True)
        assert r["params_total"] - r["params"] == (vocab + 48) * d  # token and position embeddings
        for metric in knowledge.SIZED:
            assert len(r[metric]["values"]) == 2 and 0 <= r[metric]["mean"] <= 1 and r[metric]["std"] is not None
        assert results["reading_every_seed"][label] == (min(r["open_book_new"]["values"]) >= 0.5)
    assert results["2x32"]["run"] == "base" and results["1x8"]["run"] == "base_1x8"  # the base's own keys: its run
    a = results["answer"]
    assert a["memorizer"] == "2x32"
    for metric in ("open_book_new", "retrieval"):
        readers = [s for s in results["sizes"] if results[s][metric]["mean"] >= a["memorizer_closed_book"]]
        assert a[metric]["reader"] == (readers[0] if readers else None)
        assert set(a[metric]["gap"]) == set(results["sizes"])
    out = tmp_path / "out" / "tiny"
    assert {"results.json", "results.md", "sizes.png"} <= set(os.listdir(out / "sizes"))
    assert {"base", "base_1x8", "base_1x16"} <= set(os.listdir(out / "s1"))
    assert json.load(open(out / "s1" / "base_1x8" / "config.json"))["model"]["n_embd"] == 8
    # questions.jsonl written before `other` existed is written again (the same world), and every run is reused
    questions = tmp_path / "world" / "questions.jsonl"
    bins = (tmp_path / "world" / "train.bin").read_bytes()
    questions.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "other"}) + "\n"
                                 for line in questions.read_text().splitlines()))
    again = knowledge.main([*common, f"--sizes={sizes}"])
    assert all("other" in json.loads(line) for line in questions.read_text().splitlines())
    assert (tmp_path / "world" / "train.bin").read_bytes() == bins
    assert again["1x8"]["open_book_other"] == results["1x8"]["open_book_other"]
    with pytest.raises(UserError, match="sizes needs at least two"):
        knowledge.main([*common, "--sizes={'1x8': {'n_layer': 1, 'n_embd': 8, 'n_head': 1}}"])


def test_echo_states_every_fact_as_its_question_then_the_value_and_its_readers_follow(tmp_path):
    from conftest import train_args

    echo = make_world(tmp_path / "echo", "--echo=True")
    w = json.load(open(os.path.join(echo, "world.json")))
    assert w["echo"] is True and "echo" not in json.load(open(os.path.join(make_world(tmp_path / "plain"), "world.json")))
    for line in open(os.path.join(echo, "questions.jsonl")):
        q = json.loads(line)
        assert q["prompt"] == f"{q['attribute']} of {q['entity']}"
        if q["kind"] == "open_book_new":  # the question is the start of the asked person's fact in the block
            assert f"{q['prompt']} {q['answer']} ." in q["facts"] and q["facts"].count(" of ") == 6
    for line in open(os.path.join(echo, "library.jsonl")):
        entity, text = json.loads(line).values()
        assert text.split(" . ")[0].split()[:4] == ["city", "of", *entity.split()]
    for doc in read_split(echo, "train").split("<eot>")[:50]:
        assert "?" not in doc and "lives" not in doc  # no word of the default form
    closed = __import__("helpers.knowledge", fromlist=["x"]).closed_book_questions(w, w["people"][:1])
    assert [q["prompt"].split()[0] for q in closed] == ["city", "job", "pet"]
    with pytest.raises(UserError, match="in an --echo world"):  # closed-book documents read like facts there
        train.main(train_args(echo, str(tmp_path / "out"), "--forget_weight=1.0", "--max_iters=1"))
    with pytest.raises(SystemExit, match="choose one"):
        make_world(tmp_path / "both", "--echo=True", "--facts_apart=True")
    assert not (tmp_path / "both").exists()


def test_an_echo_world_goes_with_the_sizes_sweep_only(tmp_path, monkeypatch):
    knowledge, keys, argv = tiny_knowledge(tmp_path, monkeypatch, 2)
    argv = [a[:-1] + ", 'echo': 'True'}" if a.startswith("--data=") else a for a in argv]
    with pytest.raises(UserError, match="sizes sweep only"):
        knowledge.main(argv)
