"""lm-eval itself (the pinned package, through its Python API) scores a model of this repo two ways and
gets the same per-item loglikelihoods: the folder tools/export.py writes (`--model hf`, its own
tokenizer), and the same model served by tools/serve.py (`--model local-completions`, the server's
logprobs). For a GPT-2-token model, a character model and a trained-BPE model, on tiny local tasks:
loglikelihood, multiple choice, and greedy generation with more stop strings than OpenAI allows."""

import json
import os
import string

import pytest
import torch

from helpers.checkpoint import GPT2_META
from model import GPT, GPTConfig
from prepare.common import EOT, get_tokenizer
from prepare.facts import ALPHABET
from tools import export, serve

from conftest import shared_file

# Everything lm-eval reads is local: no dataset or model download is tried.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BLOCK = 48  # the tiny models' context (every item fits), which lm-eval is told on the served route
# Short documents, each ending with "." and then the end-of-text token: a model trained on them a few
# steps predicts end-of-text after " Tulvek.", which is what lm-eval's one sampled token then is.
DOCS = ["Q: Where does Mibe Saro live? A: Tulvek.", "Q: Where does Vorin live? A: Dashmur.",
        "Mibe Saro keeps a red fox.", "Q: What does Vorin keep? A: a grey owl.", "Vorin works as a potter."]
LL = [{"context": "Q: Where does Mibe Saro live? A:", "continuation": " Tulvek."},  # end-of-text follows
      {"context": "Vorin works as a", "continuation": " potter"},
      {"context": "Q: What does Vorin keep? A:", "continuation": " a grey owl"}]
MC = [{"question": "Q: Where does Mibe Saro live? A:", "choices": [" Tulvek.", " Dashmur.", " a red fox."], "answer": 0},
      {"question": "Mibe Saro keeps a", "choices": [" red fox.", " grey owl.", " potter."], "answer": 0}]
TASKS = {
    "tiny_ll": "output_type: loglikelihood\ndoc_to_text: '{{context}}'\ndoc_to_target: '{{continuation}}'\n"
               "metric_list:\n  - metric: acc\n",
    "tiny_mc": "output_type: multiple_choice\ndoc_to_text: '{{question}}'\ndoc_to_choice: '{{choices}}'\n"
               "doc_to_target: '{{answer}}'\nmetric_list:\n  - metric: acc\n",
    # greedy generation with more stop strings than OpenAI's 4 (lm-eval adds the end-of-text text to them)
    "tiny_gen": "output_type: generate_until\ndoc_to_text: '{{context}}'\ndoc_to_target: '{{continuation}}'\n"
                "generation_kwargs:\n  until: [\"\\n\", '?', 'Q:', 'A:', '!', ' Vorin']\n  max_gen_toks: 8\n"
                "metric_list:\n  - metric: exact_match\n",
}
ITEMS = {"tiny_ll": LL, "tiny_mc": MC, "tiny_gen": LL}


@pytest.fixture(scope="module")
def task_manager(tmp_path_factory):
    """lm-eval's task index over the task YAMLs in a temp folder, reading local JSON lines, nothing else."""
    from lm_eval.tasks import TaskManager

    folder = tmp_path_factory.mktemp("tasks")
    for name, items in ITEMS.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in items))
        (folder / f"{name}.yaml").write_text(
            f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / name}.jsonl\n"
            f"  cache_dir: {folder / 'cache'}\ntest_split: test\ntarget_delimiter: ''\n{TASKS[name]}")
    return TaskManager(include_path=str(folder), include_defaults=False)


def trained(meta, steps=40):
    """A tiny GPT in meta's tokens, trained a few steps on DOCS, each followed by end-of-text (a newline
    for characters, which have none)."""
    tok = get_tokenizer(meta)
    end = tok.encode("\n") if tok.eot_token is None else [tok.eot_token]  # characters: a newline between documents
    stream = [t for d in DOCS for t in tok.encode(d) + end]
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=BLOCK, vocab_size=meta["vocab_size"], n_layer=2, n_head=2, n_embd=32,
                          bias=True, dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    starts = range(0, len(stream) - BLOCK, BLOCK // 2)
    x = torch.tensor([stream[i:i + BLOCK] for i in starts])
    y = torch.tensor([stream[i + 1:i + BLOCK + 1] for i in starts])
    for _ in range(steps):
        opt.zero_grad()
        model(x, y)[1].backward()
        opt.step()
    return model.eval()


def bpe_meta():
    """A byte-level BPE of 300 tokens trained on DOCS with HF tokenizers, in the meta a dataset carries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator(DOCS * 4, trainers.BpeTrainer(vocab_size=300, special_tokens=[EOT],
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return {"tokenizer": "bpe", "tokenizer_json": hf.to_str(), "vocab_size": hf.get_vocab_size(),
            "eot_id": hf.token_to_id(EOT)}


@pytest.fixture(scope="module", params=["gpt2", "char", "bpe"])
def exported(request, tmp_path_factory):
    """(model, meta, export folder): a tiny model in GPT-2's tokens, characters (the facts alphabet,
    no end-of-text token) or a trained BPE, trained here and written by tools/export.py."""
    if request.param == "gpt2":
        shared_file("tiktoken_cache")
    meta = {"gpt2": lambda: GPT2_META, "bpe": bpe_meta,
            "char": lambda: {"tokenizer": "char", "chars": ALPHABET, "vocab_size": len(ALPHABET), "eot_id": None}}
    meta = meta[request.param]()
    model = trained(meta)
    folder = export.export(model, meta, str(tmp_path_factory.mktemp("hf") / request.param))
    return model, meta, folder


def evaluate(model, model_args, task_manager):
    """lm-eval's simple_evaluate on the tiny tasks: {task: per item, its answers: (loglikelihood, is_greedy)
    for each continuation or choice, or the generated text}."""
    import lm_eval

    out = lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=list(TASKS),
                                  task_manager=task_manager, log_samples=True, batch_size=1, device="cpu")
    return {task: [[r[0] for r in s["resps"]] for s in sorted(samples, key=lambda s: s["doc_id"])]
            for task, samples in out["samples"].items()}


def test_lm_eval_scores_the_export_and_the_server_alike(exported, task_manager):
    model, meta, folder = exported
    tok = get_tokenizer(meta)
    config = json.load(open(os.path.join(folder, "config.json")))
    assert {config.get("bos_token_id"), config.get("eos_token_id")} == {tok.eot_token}  # None for characters
    if tok.eot_token is not None:  # the item the end-of-text bug hit: lm-eval's sampled token is end-of-text
        ids = tok.encode(LL[0]["context"] + LL[0]["continuation"])
        with torch.no_grad():
            assert model(torch.tensor([ids]))[0][0, -1].argmax().item() == tok.eot_token

    local = evaluate("hf", {"pretrained": folder, "dtype": "float32"}, task_manager)
    srv = serve.make_server(model, tok, "tiny").start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1/completions"
        served = evaluate("local-completions", {"model": "tiny", "base_url": url, "tokenizer_backend": "huggingface",
                                                "tokenizer": folder, "max_length": BLOCK}, task_manager)
    finally:
        srv.stop()
    assert {t: len(served[t]) for t in TASKS} == {t: len(items) for t, items in ITEMS.items()}
    for want, got in zip(local["tiny_ll"] + local["tiny_mc"], served["tiny_ll"] + served["tiny_mc"]):
        assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in want], abs=1e-4)
        assert [greedy for _, greedy in got] == [greedy for _, greedy in want]
    assert served["tiny_gen"] == local["tiny_gen"]


def test_the_exported_tokenizer_gives_the_repos_ids_offline(exported):
    """AutoTokenizer.from_pretrained(folder) encodes and decodes as this repo's tokenizer does."""
    from transformers import AutoTokenizer

    _, meta, folder = exported
    tok, hf = get_tokenizer(meta), AutoTokenizer.from_pretrained(folder)
    texts = DOCS + ["  two  spaces,\nnew lines\n\n and a tail ", "Q:A:?.,"]
    if meta["tokenizer"] != "char":  # characters outside the facts alphabet, for the byte-level tokenizers
        texts += ["naïve café — 東京 🤖\u200b", "1234567 3.14159 1,000,000", "tabs\tand\r\nCRLF", "it's we'll I'M",
                  "x = f(y) + 2**10  # note\n    return", "\u00a0nbsp\u3000wide", "Ñandú ℵ₀ ∑x²", "a" * 200]
    for text in texts:
        ids = hf(text, add_special_tokens=False)["input_ids"]
        assert ids == tok.encode(text), text
        assert hf.decode(ids) == text
    assert hf.eos_token_id == (tok.n_vocab if tok.eot_token is None else tok.eot_token)


def test_a_word_vocabulary_exports_its_tokenizer_too(tmp_path):
    from transformers import AutoTokenizer

    meta = {"tokenizer": "words", "words": ["a", "cat", "sat", "<eot>"], "vocab_size": 4, "eot_id": 3}
    export.export(GPT(GPTConfig(block_size=8, vocab_size=4, n_layer=1, n_head=1, n_embd=8)), meta, str(tmp_path / "w"))
    hf, tok = AutoTokenizer.from_pretrained(str(tmp_path / "w")), get_tokenizer(meta)
    assert hf("a cat  sat\n a <eot>", add_special_tokens=False)["input_ids"] == tok.encode("a cat sat a <eot>")
    assert hf.decode(tok.encode("a cat sat")) == "a cat sat" and hf.eos_token_id == 3


def test_a_character_vocabulary_has_no_gpt2_special_ids(tmp_path):
    """No 50256 in a 27-token model: config.json has no bos/eos; the tokenizer's (lm-eval needs one) is id 27."""
    from transformers import AutoTokenizer

    meta = {"tokenizer": "char", "chars": sorted(set(string.ascii_lowercase + " ")), "vocab_size": 27, "eot_id": None}
    export.export(GPT(GPTConfig(block_size=8, vocab_size=27, n_layer=1, n_head=1, n_embd=8)), meta, str(tmp_path / "c"))
    for name in ("config.json", "generation_config.json"):
        config = json.load(open(tmp_path / "c" / name))
        assert config.get("bos_token_id") is None and config.get("eos_token_id") is None, name
    assert config.get("pad_token_id") is None and json.load(open(tmp_path / "c" / "config.json"))["vocab_size"] == 27
    hf = AutoTokenizer.from_pretrained(str(tmp_path / "c"))
    assert hf.eos_token_id == hf.bos_token_id == 27 and hf("a cab")["input_ids"] == [1, 0, 3, 1, 2]
    assert hf("a!")["input_ids"] == [1, 27]  # a character outside the vocabulary (a stop string lm-eval encodes)
