"""model.py reads as GPT-2 first: the plain forward is short, part 1 reads no variant flag, a config with
every flag off builds part 1's classes alone, and every variant comment links to a section of the docs."""

import ast
import os
import re
import sys
from dataclasses import fields

import torch

import model as model_module
from model import GPT, MLP, Block, CausalSelfAttention, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_PY = os.path.join(ROOT, "model.py")
GPT2_KEYS = {"block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "attn_impl"}
VARIANT_KEYS = {f.name for f in fields(GPTConfig)} - GPT2_KEYS


def part_one():
    """The source lines of model.py's part 1 (between its "1. GPT-2" and "2. The variants" banners)."""
    lines = open(MODEL_PY).read().splitlines()
    start = next(i for i, s in enumerate(lines) if s.startswith("# 1. GPT-2"))
    end = next(i for i, s in enumerate(lines) if s.startswith("# 2. The variants"))
    return start + 1, end + 1


def trace_plain_forward():
    """(distinct model.py lines run, functions entered, their total source span) for one GPT-2 forward + loss."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=64, n_layer=2, n_head=2, n_embd=32)).eval()
    idx, tgt = torch.randint(0, 64, (2, 16)), torch.randint(0, 64, (2, 16))
    lines, funcs = set(), set()

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != MODEL_PY:
            return None
        if event == "call":
            funcs.add((frame.f_code.co_name, frame.f_code.co_firstlineno))
        lines.add(frame.f_lineno)
        return tracer

    sys.settrace(tracer)
    try:
        model(idx, tgt)
    finally:
        sys.settrace(None)
    spans = {}
    for node in ast.walk(ast.parse(open(MODEL_PY).read())):
        if isinstance(node, ast.FunctionDef):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            for key in (first, node.lineno):
                spans[(node.name, key)] = node.end_lineno - node.lineno + 1
    named = {f for f in funcs if not f[0].startswith("<")}
    return lines, named, sum(spans[f] for f in named)


def test_plain_forward_stays_within_one_and_a_half_times_nanogpt():
    # nanoGPT's forward + loss: 38 lines in 5 functions spanning 61 lines
    lines, funcs, span = trace_plain_forward()
    assert len(lines) <= 55, f"{len(lines)} lines executed"
    assert len(funcs) <= 7, f"functions entered: {sorted(funcs)}"
    assert span <= 90, f"the functions span {span} lines"
    start, end = part_one()
    assert all(start <= n <= end for n in lines), "the plain forward leaves part 1"


def test_gpt2_part_reads_no_variant_field():
    start, end = part_one()
    tree = ast.parse(open(MODEL_PY).read())
    read = {}
    for cls in tree.body:
        # GPTConfig declares every field; its helpers (widths, block_of_layer) belong to the config itself
        if not (start <= cls.lineno <= end) or getattr(cls, "name", "") == "GPTConfig":
            continue
        for node in ast.walk(cls):
            if isinstance(node, ast.Attribute) and node.attr in VARIANT_KEYS:
                read.setdefault(node.attr, node.lineno)
            if isinstance(node, ast.Constant) and node.value in VARIANT_KEYS:  # getattr(config, "rotary")
                read.setdefault(node.value, node.lineno)
    assert not read, f"part 1 reads variant fields (field: line): {read}"


def test_every_flag_off_builds_part_one_alone():
    model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=32))
    assert type(model) is GPT
    assert {type(m) for m in model.transformer.h} == {Block}
    assert type(model.transformer.h[0].attn) is CausalSelfAttention and type(model.transformer.h[0].mlp) is MLP
    assert list(model.state_dict()) == [  # nanoGPT's keys, in nanoGPT's order
        "transformer.wte.weight", "transformer.wpe.weight",
        *[f"transformer.h.{i}.{k}" for i in range(2) for k in (
            "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
            "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
            "mlp.c_proj.bias")],
        "transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]


def test_a_variant_flag_builds_its_subclasses_and_the_same_config_the_same_class():
    a = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=32, rotary=True))
    b = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=32, rotary=True))
    assert isinstance(a, model_module.VariantGPT) and type(a) is type(b)
    assert isinstance(a.transformer.h[0].attn, model_module.VariantAttention)
    only_mlp = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=32, mlp_act="relu2"))
    assert not isinstance(only_mlp, model_module.VariantGPT)  # an MLP variant leaves the rest GPT-2's
    assert isinstance(only_mlp.transformer.h[0].mlp, model_module.ReLU2MLP)


def anchors(markdown):
    """GitHub's anchors for a markdown file's headings."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return out


def test_every_docs_link_in_model_py_names_a_section_and_no_design_note_tags_remain():
    source = open(MODEL_PY).read()
    links = re.findall(r"docs/(\w+\.md)#([\w-]+)", source)
    assert len(links) >= 15
    for doc, anchor in links:
        assert anchor in anchors(open(os.path.join(ROOT, "docs", doc)).read()), f"docs/{doc}#{anchor}"
    assert not re.search(r"note 00\d", source), "a fork has no design notes: link docs/variants.md instead"
