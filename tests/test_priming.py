"""Priming bias layers (model.BiasLayer, train.py --freeze_base, prepare/priming.py, prime.py)."""

import json
import os

import numpy as np
import pytest
import torch

import train
from helpers.checkpoint import load_checkpoint, model_from_checkpoint
from helpers.config import UserError
from helpers.data import PrimingBatches
from model import GPT, GPTConfig
from prepare import priming as priming_data
from tools import prime

BASE = dict(block_size=24, vocab_size=75, n_layer=3, n_head=2, n_embd=32, dropout=0.0, bias=True)
TINY = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=8", "--eval_iters=2",
        "--log_interval=5", "--device=cpu", "--warmup_iters=2"]


def base_and_primed(**priming):
    """A random base model and a priming model holding the same base weights."""
    torch.manual_seed(0)
    base = GPT(GPTConfig(**BASE)).eval()
    model = GPT(GPTConfig(**BASE, priming=True, priming_dim=16, **priming)).eval()
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("bias_layers.") for k in missing)
    return base, model


def randomize_bias_layers(model):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.startswith("bias_layers."):
                p.normal_(0, 0.3)


DOCS = torch.randint(0, 75, (3, 10), generator=torch.Generator().manual_seed(1))
PROMPTS = torch.randint(0, 75, (3, 8), generator=torch.Generator().manual_seed(2))
VARIANTS = [{}, dict(priming_pool="last"), dict(priming_pool="attention"), dict(priming_shared=True),
            dict(priming_layers=(2,)), dict(priming_layers=(0, 2), priming_shared=True),
            dict(priming_pool="attention", priming_slots=3)]


@pytest.mark.parametrize("kw", VARIANTS)
def test_untrained_bias_layers_give_exactly_the_base_model(kw):
    base, model = base_and_primed(**kw)
    state = model.prime(DOCS, torch.tensor([10, 4, 7]))
    slots = (model.config.priming_slots,) if model.config.priming_slots > 1 else ()
    assert state.shape == (len(model.config.primed_layers()), 3, *slots, 16) and state.abs().sum() > 0
    want = base(PROMPTS)[0]
    assert torch.equal(model(PROMPTS)[0], want)  # not primed: the bias layers are skipped
    assert torch.equal(model(PROMPTS, priming=state)[0], want)  # primed, but c_out is still zero
    randomize_bias_layers(model)  # the check can fail: trained bias layers change the output when primed
    assert not torch.allclose(model(PROMPTS, priming=model.prime(DOCS))[0], want)
    assert torch.equal(model(PROMPTS)[0], want)  # ... and still not when unprimed


@pytest.mark.parametrize("other", [dict(layer_widths=(32, 48, 32)), dict(n_shared_blocks=1), dict(cross_layer_kv=True),
                                   dict(zero_value_attn=True, residual_root="learned", attn_impl="manual")])
def test_priming_combines_with_the_other_variants(other):
    torch.manual_seed(0)
    base = GPT(GPTConfig(**{**BASE, **other})).eval()
    model = GPT(GPTConfig(**{**BASE, **other}, priming=True, priming_dim=16)).eval()
    model.load_state_dict(base.state_dict(), strict=False)
    assert torch.equal(model(PROMPTS, priming=model.prime(DOCS))[0], base(PROMPTS)[0])
    randomize_bias_layers(model)
    state = model.prime(DOCS)
    assert not torch.allclose(model(PROMPTS, priming=state)[0], base(PROMPTS)[0])
    assert torch.equal(model.generate(PROMPTS, 8, temperature=0, priming=state),
                       model.generate(PROMPTS, 8, temperature=0, priming=state, use_cache=False))


def test_priming_depends_on_the_document_and_generation_uses_it_with_the_kv_cache():
    _, model = base_and_primed()
    randomize_bias_layers(model)
    a, b = model.prime(DOCS), model.prime(DOCS.flip(1))
    assert not torch.allclose(model(PROMPTS, priming=a)[0], model(PROMPTS, priming=b)[0])
    for doc_state in (a, b):
        cached = model.generate(PROMPTS, 10, temperature=0, priming=doc_state)
        assert torch.equal(cached, model.generate(PROMPTS, 10, temperature=0, priming=doc_state, use_cache=False))
    assert torch.equal(model.generate(PROMPTS, 6, temperature=0, priming=(DOCS, None)),
                       model.generate(PROMPTS, 6, temperature=0, priming=a))


def test_pooling_ignores_padding_and_reads_what_it_says():
    _, model = base_and_primed(priming_pool="mean")
    padded = torch.cat([DOCS[:1, :6], torch.randint(0, 75, (1, 4))], dim=1)
    assert torch.allclose(model.prime(padded, torch.tensor([6])), model.prime(DOCS[:1, :6]), atol=1e-6)
    _, last = base_and_primed(priming_pool="last")
    acts = {}
    with last.hooks({f"transformer.h.{i}.hook_resid_post": (lambda o, i=i: acts.__setitem__(i, o)) for i in range(3)}):
        last(DOCS[:1, :6])
    bl = last.bias_layers[1]
    assert torch.allclose(last.prime(padded, torch.tensor([6]))[1, 0], bl.activations(acts[1], bl.c_in.bias)[0, 5])


def test_slots_pool_one_bias_per_query_and_each_token_mixes_them():
    _, model = base_and_primed(priming_pool="attention", priming_slots=2)
    randomize_bias_layers(model)
    bl = model.bias_layers[0]
    h = torch.rand(2, 6, 16)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    slots = bl.pool(h, mask, "attention")
    for k in range(2):  # slot k: softmax over the real tokens of (h . query k / sqrt(D)), times h
        w = (h[1, :4] @ bl.pool_query[k] / 4).softmax(0)
        assert torch.allclose(slots[1, k], w @ h[1, :4], atol=1e-6)
    x = torch.randn(2, 5, 32)
    one = bl.activations(x, slots[:, :1])  # a single slot is that slot's bias, as without slots
    assert torch.allclose(one, bl.activations(x, slots[:, 0]), atol=1e-6)
    same = bl.activations(x, slots[:, [0, 0]])
    assert torch.allclose(same, one, atol=1e-6)
    mixed = bl.activations(x, slots)
    assert not torch.allclose(mixed, one) and torch.allclose(bl.activations(x, slots.flip(1)), mixed, atol=1e-6)
    with torch.no_grad():  # every token's selector reads unit 0, where slot 1 is far larger: slot 1 wins
        bl.ln.weight.zero_()
        bl.ln.bias.zero_()
        bl.ln.bias[0] = 1.0  # ln(x) = e_0 for every x
        bl.c_sel.weight.zero_()
        bl.c_sel.weight[0, 0] = 10.0
        slots[:, 1, 0] = slots[:, 0, 0] + 10.0  # score 25 above slot 0's
    assert torch.allclose(bl.activations(x, slots), bl.activations(x, slots[:, 1]), atol=1e-6)
    assert not torch.allclose(bl.activations(x, slots), bl.activations(x, slots[:, 0]), atol=1e-3)


def test_gradient_reaches_the_projections_through_the_priming_pass():
    _, model = base_and_primed()
    for n, p in model.named_parameters():
        p.requires_grad = n.startswith("bias_layers.")
    with torch.no_grad():  # a trained-looking c_out, so the loss depends on the primed bias
        for bl in model.bias_layers:
            bl.c_out.weight.normal_(0, 0.3)
    _, loss = model(PROMPTS, PROMPTS.roll(-1, 1), priming=(DOCS, None))
    loss.backward()
    # c_in's own bias is overridden in the prompt pass: its gradient can only come through prime()
    assert all(bl.c_in.bias.grad.abs().sum() > 0 for bl in model.bias_layers)
    assert all(bl.c_in.weight.grad.abs().sum() > 0 and bl.c_out.weight.grad.abs().sum() > 0 for bl in model.bias_layers)
    model.zero_grad()
    _, loss = model(PROMPTS, PROMPTS.roll(-1, 1), priming=model.prime(DOCS).detach())
    loss.backward()
    assert all(bl.c_in.bias.grad is None or bl.c_in.bias.grad.abs().sum() == 0 for bl in model.bias_layers)


@pytest.mark.parametrize("kw, msg", [
    (dict(priming_pool="max"), "priming_pool must be one of"),
    (dict(priming_layers=(0, 5)), "priming_layers must be distinct layers in 0..2"),
    (dict(priming_layers=(1, 1)), "priming_layers must be distinct"),
    (dict(priming_dim=0), "priming_dim must be >= 1"),
    (dict(priming_shared=True, layer_widths=(32, 64, 32), tie_dims=0), "priming_shared needs the primed layers equally wide"),
    (dict(prefix_lm=True), "does not combine with prefix_lm"),
    (dict(priming_slots=2), "> 1 only with priming_pool='attention'"),
    (dict(priming_slots=0, priming_pool="attention"), "priming_slots must be >= 1"),
])
def test_impossible_priming_configs_are_rejected(kw, msg):
    with pytest.raises(ValueError, match=msg):
        GPTConfig(**BASE, priming=True, **kw)


def test_priming_a_model_without_bias_layers_is_an_error():
    base = GPT(GPTConfig(**BASE))
    with pytest.raises(ValueError, match="priming=True"):
        base.prime(DOCS)
    with pytest.raises(ValueError, match="priming=True"):
        base(PROMPTS, priming=torch.zeros(3, 3, 16))


# --- data, train.py --freeze_base, prime.py ---

@pytest.fixture(scope="module")
def priming_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "priming"
    priming_data.main(["--train_docs=400", "--val_docs=40", f"--out={out}"])
    return str(out)


def test_triples_hold_out_names_and_the_answer_is_in_the_document(priming_dir):
    train_names, val_names = priming_data.name_pools(0)
    assert not set(train_names) & set(val_names) and len(val_names) == len(priming_data.SYLLABLES) ** 2 // 5
    val = [json.loads(line) for line in open(os.path.join(priming_dir, "val_triples.jsonl"))]
    for t in val:
        name = t["prompt"][2:-len(" lives in")]
        assert name in val_names and f"{name} lives in {t['answer']}" in t["document"]
    meta = json.load(open(os.path.join(priming_dir, "meta.json")))
    docs = np.load(os.path.join(priming_dir, "train.docs.npy"))
    assert meta["tokenizer"] == "words" and (docs[:, 1] == 0).any() and (docs[:, 1] > 0).mean() > 0.6


def test_priming_batches_split_each_document_at_its_prefix(priming_dir):
    meta = json.load(open(os.path.join(priming_dir, "meta.json")))
    tok = priming_data.WordTokenizer(meta["words"])
    b = PrimingBatches(priming_dir, meta, 32, 16, "cpu")
    x, y, extra = b.get("train", torch.Generator().manual_seed(0))
    doc, doc_len = extra["priming"]
    for i in range(16):
        d, rest = tok.decode(doc[i, :doc_len[i]].tolist()), tok.decode(x[i].tolist())
        question = rest[2:rest.index(" .") + 2]  # "? NAME lives in PLACE ." -> the fact it asks for
        assert rest.startswith("? ") and d.endswith(" .") and question in d
        n = int((y[i] != -1).sum())
        assert torch.equal(x[i, 1:n], y[i, :n - 1]) and y[i, n - 1] == meta["eot_id"]  # y is x shifted


@pytest.fixture(scope="module")
def primed_run(priming_dir, tmp_path_factory):
    """A tiny base model (6 steps) and its bias layers trained for 6 steps with the base frozen."""
    tmp = tmp_path_factory.mktemp("runs")
    base_dir, primed_dir = str(tmp / "base"), str(tmp / "primed")
    common = [f"--data_dir={priming_dir}", *TINY]
    train.main(common + [f"--out_dir={base_dir}", f"--plot_dir={base_dir}/p", "--max_iters=6", "--eval_interval=6"])
    train.main(common + [f"--out_dir={primed_dir}", f"--plot_dir={primed_dir}/p", "--max_iters=6",
                         "--eval_interval=6", "--freeze_base=True", f"--base={base_dir}/ckpt.pt",
                         "--priming=True", "--priming_dim=16", "--learning_rate=1e-2"])
    return base_dir, primed_dir


def test_freeze_base_trains_only_the_bias_layers(primed_run):
    base_dir, primed_dir = primed_run
    base = torch.load(f"{base_dir}/ckpt.pt", weights_only=True)
    saved = torch.load(f"{primed_dir}/ckpt.pt", weights_only=True)  # the file: bias layers and a reference to the base
    assert saved["model"] and all(k.startswith("bias_layers.") for k in saved["model"])
    assert saved["base"]["path"] == os.path.abspath(f"{base_dir}/ckpt.pt")
    primed = load_checkpoint(f"{primed_dir}/ckpt.pt")  # the whole model, rebuilt from the base
    for k, v in base["model"].items():
        assert torch.equal(primed["model"][k], v), k  # bit-identical base weights
    c_out = [v for k, v in primed["model"].items() if k.endswith("c_out.weight") and k.startswith("bias_layers")]
    assert c_out and all(v.abs().sum() > 0 for v in c_out)  # the bias layers learned
    n_bias = sum(v.numel() for k, v in primed["model"].items() if k.startswith("bias_layers."))
    assert sum(p.numel() for g in primed["optimizer"]["state"].values() for p in [g["exp_avg"]]) == n_bias
    # once trained, priming changes the outputs, and which document primes matters
    model = model_from_checkpoint(primed).eval()
    x = torch.randint(0, 75, (2, 8))
    docs = torch.randint(0, 75, (2, 12))
    assert not torch.allclose(model(x, priming=model.prime(docs))[0], model(x)[0])
    assert not torch.allclose(model(x, priming=model.prime(docs))[0], model(x, priming=model.prime(docs.flip(0)))[0])


def test_a_freeze_base_run_resumes_with_the_base_still_frozen(primed_run, priming_dir, tmp_path):
    import shutil

    run = str(tmp_path / "primed")
    shutil.copytree(primed_run[1], run)
    base = torch.load(f"{primed_run[0]}/ckpt.pt", weights_only=True)
    train.main([f"--data_dir={priming_dir}", *TINY, f"--out_dir={run}", "--max_iters=8", "--eval_interval=2",
                "--freeze_base=True", "--priming=True", "--priming_dim=16", "--learning_rate=1e-2",
                "--init_from=resume", "--always_save_checkpoint=True"])
    resumed = load_checkpoint(f"{run}/ckpt.pt")
    assert resumed["iter_num"] == 8 and resumed["base"]["path"] == os.path.abspath(f"{primed_run[0]}/ckpt.pt")
    for k, v in base["model"].items():
        assert torch.equal(resumed["model"][k], v), k


def test_freeze_base_bad_input_is_one_line(priming_dir, primed_run, facts_dir, tmp_path):
    base = f"--base={primed_run[0]}/ckpt.pt"
    with pytest.raises(UserError, match="pass --priming=True"):
        train.main([f"--data_dir={priming_dir}", "--freeze_base=True", base, f"--out_dir={tmp_path}/a", *TINY])
    with pytest.raises(UserError, match="only priming keys may be set, not n_embd"):
        train.main([f"--data_dir={priming_dir}", "--freeze_base=True", "--priming=True", base, *TINY[:2], "--n_embd=64",
                    *TINY[3:], f"--out_dir={tmp_path}/b"])
    with pytest.raises(UserError, match="use a dataset prepared with the model's tokenizer"):
        train.main([f"--data_dir={facts_dir}", "--freeze_base=True", "--priming=True", base, f"--out_dir={tmp_path}/c",
                    "--n_layer=2", "--n_head=2", "--block_size=32", "--device=cpu"])
    with pytest.raises(UserError, match="Muon does not optimize"):
        train.main([f"--data_dir={priming_dir}", "--freeze_base=True", "--priming=True", base, "--optimizer=muon", *TINY])
    with pytest.raises(UserError, match="--base"):
        train.main([f"--data_dir={priming_dir}", "--freeze_base=True", "--priming=True", *TINY])
    with pytest.raises(UserError, match="no checkpoint"):
        train.main([f"--data_dir={priming_dir}", "--freeze_base=True", "--priming=True",
                    f"--base={tmp_path}/nothing.pt", f"--out_dir={tmp_path}/o", *TINY])


class FirstFact:
    """A stand-in model that answers every prompt with the first place of the document it was primed with,
    or of its context: right when the prompt asks for the first person, the other person's place otherwise."""

    def __init__(self, tok):
        self.in_id, self.period = tok.encode("in")[0], tok.encode(".")[0]

    def prime(self, doc, doc_len):
        return doc[None]  # (1, B, T): the document itself

    def __call__(self, x, y, reduction, priming):
        return torch.zeros(*x.shape, 75), (y != -1).float()  # uniform over the 75 words, loss 1 per answer token

    def generate(self, idx, n, temperature, priming):
        rows = []
        for b in range(idx.size(0)):
            source = (priming[0, b] if priming is not None else idx[b]).tolist()
            j = source.index(self.in_id)
            place = source[j + 1:j + 3] if j + 3 <= len(source) else [self.period] * 2  # no document: no place
            rows.append(idx[b].tolist() + place + [self.period])
        return torch.tensor(rows)


def test_answers_from_the_other_fact_are_counted_as_binding_errors(priming_dir):
    meta = json.load(open(os.path.join(priming_dir, "meta.json")))
    tok = priming_data.WordTokenizer(meta["words"])
    triples = [json.loads(line) for line in open(os.path.join(priming_dir, "val_triples.jsonl"))]
    model = FirstFact(tok)
    res = prime.evaluate_conditions(model, model, triples, tok, batch_size=7)
    asks_first = [t["document"].startswith(t["prompt"][2:]) for t in triples]
    two = [t["document"].count(" lives in ") == 2 for t in triples]
    assert 0 < sum(a for a, t in zip(asks_first, two) if t) < sum(two)  # both kinds of two-fact triple are there
    for cond in ("in_context", "primed"):
        by = res["by_n_facts"]
        assert by["1"][cond]["exact_match"] == 1.0 and by["1"][cond]["other_fact"] == 0.0
        assert by["2"][cond]["exact_match"] == pytest.approx(np.mean([a for a, t in zip(asks_first, two) if t]))
        assert by["2"][cond]["other_fact"] == pytest.approx(1 - by["2"][cond]["exact_match"])
        assert res[cond]["exact_match"] == pytest.approx(np.mean(asks_first))
    assert res["no_doc"]["exact_match"] == 0.0 and res["by_n_facts"]["2"]["no_doc"]["other_fact"] == 0.0
    assert res["by_n_facts"]["2"]["no_doc"]["p_other"] == pytest.approx(1 / 75)  # one other place, uniform logits
    assert res["by_n_facts"]["1"]["primed"]["p_other"] == 0.0 and res["by_n_facts"]["1"]["primed"]["p_answer"] == pytest.approx(1 / 75)
    # the wrong document's first place is neither the answer nor the other person's (places are drawn fresh)
    assert res["by_n_facts"]["2"]["primed_wrong_doc"]["other_fact"] == 0.0


def test_recovered_exact_is_the_share_of_the_contexts_exact_match_gain():
    r = {"no_doc": {"exact_match": 0.1}, "in_context": {"exact_match": 0.5}, "primed": {"exact_match": 0.6},
         "primed_wrong_doc": {"exact_match": 0.0}}
    assert prime.recovered_exact(r) == pytest.approx(1.25)  # (0.6 - 0.1) / (0.5 - 0.1): better than in context
    r["primed"]["exact_match"] = 0.1
    assert prime.recovered_exact(r) == 0.0
    r["in_context"]["exact_match"] = 0.1  # the context does not help: nothing to recover
    assert prime.recovered_exact(r) is None


def test_prime_py_end_to_end_on_a_tiny_config(tmp_path):
    cfg = tmp_path / "priming_tiny.py"
    cfg.write_text(f"""
name = "tiny_test"
data = dict(train_docs=300, val_docs=30)
base = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8, max_iters=8, eval_interval=8,
            eval_iters=2, log_interval=4, warmup_iters=2, lr_decay_iters=8)
priming = dict(priming_dim=8, max_iters=6, eval_interval=6, eval_iters=2, log_interval=3, warmup_iters=2,
               batch_size=8, learning_rate=1e-2)
variations = {{"pool_last": dict(priming_pool="last")}}
seeded = ("pool_last",)
seeds = (1,)
eval_docs = 20
out_root = "{tmp_path}/out"
data_dir = "{tmp_path}/data"
""")
    results, details = prime.main([str(cfg)])
    saved = json.load(open(tmp_path / "out" / "tiny_test" / "results.json"))
    assert set(saved) == {"no_doc", "in_context", "primed", "primed_wrong_doc", "recovered_fraction", "seeds"}
    for cond in prime.CONDITIONS:
        assert set(saved[cond]) == {"answer_loss", "exact_match"} and saved[cond]["answer_loss"] > 0
    gap = saved["no_doc"]["answer_loss"] - saved["in_context"]["answer_loss"]
    if gap > 0:
        assert saved["recovered_fraction"] == pytest.approx((saved["no_doc"]["answer_loss"] - saved["primed"]["answer_loss"]) / gap)
    assert details["base_val_loss"] == details["base_val_loss_with_bias_layers"]
    assert set(details["runs"]) == {"main", "pool_last", "pool_last_seed1"}
    seeds = saved["seeds"]["pool_last"]  # the run and its copy with train.py's seed 1: mean ± std of the two
    assert set(seeds["per_seed"]) == {"pool_last", "pool_last_seed1"}
    exact = [details["runs"][n]["primed"]["exact_match"] for n in ("pool_last", "pool_last_seed1")]
    assert seeds["mean"]["exact"] == pytest.approx(np.mean(exact)) and seeds["std"]["exact"] == pytest.approx(np.std(exact, ddof=1))
    for n, per in seeds["per_seed"].items():
        assert per["recovered_exact"] == prime.recovered_exact(details["runs"][n])
        assert per["recovered_exact_2"] == prime.recovered_exact(details["runs"][n]["by_n_facts"]["2"])
    assert "--seed=1" in json.load(open(tmp_path / "out" / "tiny_test" / "pool_last_seed1" / "run.json"))["args"]
    for png in ("conditions.png", "runs.png", "seeds.png"):
        assert os.path.getsize(tmp_path / "out" / "tiny_test" / png) > 1000
    # asked again, nothing is retrained
    again, _ = prime.main([str(cfg)])
    assert again == results


def test_sample_primes_with_a_document_file(primed_run, tmp_path, capsys):
    import sample

    _, primed_dir = primed_run
    doc = tmp_path / "doc.txt"
    doc.write_text("mi be lives in tu ve .")
    args = [f"--out_dir={primed_dir}", "--start=? mi be lives in", "--max_new_tokens=3", "--temperature=0",
            "--num_samples=1", "--device=cpu"]
    sample.main(args + [f"--prime={doc}"])
    primed = capsys.readouterr().out
    sample.main(args + ["--prime=FILE:" + str(doc), "--beam=2"])
    assert primed.startswith("? mi be lives in ") and capsys.readouterr().out.startswith("? mi be lives in ")
    with pytest.raises(UserError, match="not in this word vocabulary"):
        sample.main(args + ["--prime=hello world"])
    with pytest.raises(UserError, match="needs a priming model"):
        sample.main(args[1:] + [f"--out_dir={primed_run[0]}", f"--prime={doc}"])


def test_beam_search_primes_every_beam_with_a_slots_state():
    import sample

    _, model = base_and_primed(priming_pool="attention", priming_slots=2)
    randomize_bias_layers(model)
    state = model.prime(DOCS[:1])
    greedy = model.generate(PROMPTS[:1], 5, temperature=0, priming=state)
    assert torch.equal(sample.beam_search(model, PROMPTS[:1], 1, 5, priming=state)[0], greedy)  # beam 1 = greedy
    seqs, scores = sample.beam_search(model, PROMPTS[:1], 3, 5, priming=state)
    assert seqs.shape == (3, 13) and scores[0] >= scores[-1]
