"""Real models: GPT-2 weights in and out through transformers (parity both ways), fine-tuning, LoRA,
priming a pretrained base, and the entry points that take --init_from. All offline, on a tiny random
GPT-2 saved with save_pretrained (the hf_gpt2_dir fixture)."""

import os

import pytest
import torch
from transformers import GPT2LMHeadModel

import sample
import train
from conftest import straight_and_resumed, train_args
from helpers.checkpoint import load_checkpoint, load_source, model_from_checkpoint
from helpers.config import UserError
from model import GPT, GPTConfig, LoRALinear
from tools import analyze, export

IDX = torch.randint(50257, (2, 40), generator=torch.Generator().manual_seed(0))


def hf_model(path):
    return GPT2LMHeadModel.from_pretrained(path).eval()


@pytest.mark.parametrize("attn_impl", ["sdpa", "manual"])
def test_from_pretrained_logits_equal_transformers(hf_gpt2_dir, attn_impl):
    model = GPT.from_pretrained(hf_gpt2_dir, attn_impl=attn_impl).eval()
    assert model.config.mlp_act == "gelu_tanh" and model.config.vocab_size == 50257
    with torch.no_grad():
        torch.testing.assert_close(model(IDX)[0], hf_model(hf_gpt2_dir)(IDX).logits, atol=1e-4, rtol=0)


def test_greedy_generation_with_the_cache_gives_transformers_tokens(hf_gpt2_dir):
    model = GPT.from_pretrained(hf_gpt2_dir).eval()
    prompt = IDX[:1, :6]
    ours = model.generate(prompt, 20, temperature=0, use_cache=True)
    theirs = hf_model(hf_gpt2_dir).generate(prompt, max_new_tokens=20, do_sample=False, pad_token_id=0)
    assert ours.tolist() == theirs.tolist()
    assert len(set(ours[0, 6:].tolist())) > 1  # a decisive model, not one token repeated


def test_export_of_a_checkpoint_loads_in_transformers_with_the_same_logits(tiny_run, tmp_path):
    path = str(tmp_path / "hf")
    export.main([f"--out_dir={tiny_run}", f"--to={path}"])
    ours = model_from_checkpoint(load_checkpoint(os.path.join(tiny_run, "ckpt.pt"))).eval()
    idx = IDX[:, :20] % ours.config.vocab_size
    with torch.no_grad():
        torch.testing.assert_close(hf_model(path)(idx).logits, ours(idx)[0], atol=1e-4, rtol=0)
    # and back: meta.json keeps the char tokenizer, so --init_from=path works like the run folder
    assert load_source(path)["meta"]["tokenizer"] == "char"
    with pytest.raises(UserError, match="already exists"):
        export.main([f"--out_dir={tiny_run}", f"--to={path}"])


def test_export_without_biases_fills_zeros_and_refuses_variants(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=60, n_layer=2, n_head=2, n_embd=32, bias=False)).eval()
    hf = export.to_hf(model)
    idx = IDX[:, :16] % 60
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx)[0], atol=1e-4, rtol=0)
    with pytest.raises(UserError, match="HF's GPT-2 has no rotary"):
        export.to_hf(GPT(GPTConfig(block_size=16, vocab_size=60, n_layer=1, n_head=2, n_embd=32, rotary=True)))


# --- LoRA ---

def lora_model(hf_dir, rank=4, alpha=8.0):
    model = GPT.from_pretrained(hf_dir, lora_rank=rank, lora_alpha=alpha).eval()
    with torch.no_grad():  # a trained adapter: B away from zero
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0, 0.1)
    return model


def test_an_untrained_adapter_leaves_the_logits_unchanged(hf_gpt2_dir):
    base = GPT.from_pretrained(hf_gpt2_dir).eval()
    adapted = GPT.from_pretrained(hf_gpt2_dir, lora_rank=4).eval()
    assert sum(isinstance(m, LoRALinear) for m in adapted.modules()) == 4 * 2  # c_attn, c_proj, c_fc, c_proj per layer
    with torch.no_grad():
        torch.testing.assert_close(adapted(IDX)[0], base(IDX)[0])


def test_merged_equals_unmerged_and_the_math_is_peft_s(hf_gpt2_dir):
    peft = pytest.importorskip("peft")
    model = lora_model(hf_gpt2_dir)
    merged = model.merge_lora().eval()
    assert merged.config.lora_rank == 0 and not any("lora" in k for k in merged.state_dict())
    with torch.no_grad():
        logits = model(IDX)[0]
        torch.testing.assert_close(merged(IDX)[0], logits, atol=1e-4, rtol=0)
    # the same A and B in peft's LoRA layers (scale lora_alpha / r) give the same logits
    ref = peft.inject_adapter_in_model(
        peft.LoraConfig(r=4, lora_alpha=8.0, target_modules=["c_attn", "c_proj", "c_fc"]),
        GPT.from_pretrained(hf_gpt2_dir).eval())
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, LoRALinear):
                layer = ref.get_submodule(name)
                layer.lora_A["default"].weight.copy_(m.lora_A)
                layer.lora_B["default"].weight.copy_(m.lora_B)
        torch.testing.assert_close(ref(IDX)[0], logits, atol=1e-5, rtol=0)


def lora_args(hf_dir, data_dir, out_dir, *extra):
    return [f"--init_from={hf_dir}", f"--data_dir={data_dir}", f"--out_dir={out_dir}", "--block_size=32",
            "--batch_size=2", "--eval_iters=1", "--eval_interval=2", "--device=cpu", "--warmup_iters=0",
            "--learning_rate=1e-2", "--lora_rank=4", "--always_save_checkpoint=True", *extra]


def test_lora_fine_tuning_trains_only_the_adapters_resumes_exactly_and_exports_merged(hf_gpt2_dir, gpt2_facts_dir,
                                                                                      tmp_path):
    straight, split = straight_and_resumed(
        lambda out, *a: train.main(lora_args(hf_gpt2_dir, gpt2_facts_dir, out, "--lr_decay_iters=4", *a)), tmp_path, 4)
    a, b = (load_checkpoint(os.path.join(d, "ckpt.pt")) for d in (straight, split))
    assert a["iter_num"] == b["iter_num"] == 4
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], atol=0, rtol=0, msg=k)
    base = GPT.from_pretrained(hf_gpt2_dir).state_dict()
    trained = model_from_checkpoint(a)
    assert trained.config.block_size == 32  # cropped from the base's 64 positions
    for k, v in a["model"].items():
        if "lora_" in k:
            continue
        ref = base[k][:32] if k.endswith("wpe.weight") else base[k]
        assert torch.equal(v, ref), f"{k} changed: the base must stay frozen"
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in a["model"].items() if k.endswith("lora_B"))
    path = str(tmp_path / "hf")
    export.main([f"--out_dir={straight}", f"--to={path}"])
    idx = IDX[:, :32]
    with torch.no_grad():
        torch.testing.assert_close(hf_model(path)(idx).logits, trained.eval()(idx)[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("extra, msg", [
    (["--n_layer=3"], "keeps that model's architecture.*not n_layer"),
    (["--rotary=True"], "not rotary"),
    (["--block_size=128"], "block_size can only shrink"),
    (["--optimizer=muon"], "Muon"),
    (["--priming=True"], "lora_rank and priming"),
])
def test_fine_tuning_refuses_what_would_change_the_pretrained_model(hf_gpt2_dir, gpt2_facts_dir, tmp_path, extra,
                                                                   msg):
    with pytest.raises(UserError, match=msg):
        train.main(lora_args(hf_gpt2_dir, gpt2_facts_dir, str(tmp_path / "o"), "--max_iters=1", *extra))
    assert not os.path.exists(tmp_path / "o")


def test_lora_needs_a_model_to_adapt_and_tokens_must_match(hf_gpt2_dir, facts_dir, gpt2_facts_dir, tmp_path):
    with pytest.raises(UserError, match="lora_rank trains adapters"):
        train.main(train_args(gpt2_facts_dir, str(tmp_path / "a"), "--lora_rank=4", "--max_iters=1"))
    with pytest.raises(UserError, match="trained on gpt2 tokens .* holds char"):
        train.main(lora_args(hf_gpt2_dir, facts_dir, str(tmp_path / "b"), "--max_iters=1"))
    with pytest.raises(UserError, match="no model at"):
        train.main(lora_args(str(tmp_path / "missing"), gpt2_facts_dir, str(tmp_path / "c"), "--max_iters=1"))
    with pytest.raises(UserError, match="could not load 'gpt2' with transformers"):  # HF_HUB_OFFLINE: no cached copy
        load_source("gpt2")


def test_full_fine_tuning_and_the_gpt2_configs_run_on_a_local_directory(hf_gpt2_dir, gpt2_facts_dir, tmp_path,
                                                                        capsys):
    local = [f"--init_from={hf_gpt2_dir}", f"--data_dir={gpt2_facts_dir}", "--device=cpu", "--block_size=32"]
    train.main(["config/eval_gpt2.py", *local, "--eval_iters=2", "--batch_size=2", f"--out_dir={tmp_path}/eval"])
    assert "val loss" in capsys.readouterr().out and not os.path.exists(tmp_path / "eval")  # eval_only writes nothing
    out = str(tmp_path / "ft")
    train.main(["config/finetune_shakespeare.py", *local, f"--out_dir={out}", "--max_iters=2", "--eval_interval=1",
                "--eval_iters=1", "--gradient_accumulation_steps=2", "--always_save_checkpoint=True"])
    tuned = load_checkpoint(os.path.join(out, "ckpt.pt"))
    base = GPT.from_pretrained(hf_gpt2_dir).state_dict()
    assert tuned["model_args"]["lora_rank"] == 0 and tuned["meta"]["tokenizer"] == "gpt2"
    assert not torch.equal(tuned["model"]["transformer.h.0.mlp.c_fc.weight"], base["transformer.h.0.mlp.c_fc.weight"])


def test_priming_on_a_pretrained_base_trains_only_the_bias_layers(hf_gpt2_dir, gpt2_facts_dir, tmp_path):
    out = str(tmp_path / "primed")
    train.main([f"--base={hf_gpt2_dir}", "--freeze_base=True", "--priming=True", "--priming_dim=8",
                f"--data_dir={gpt2_facts_dir}", f"--out_dir={out}", "--device=cpu", "--max_iters=2",
                "--eval_interval=1", "--eval_iters=1", "--batch_size=2", "--always_save_checkpoint=True"])
    ckpt = load_checkpoint(os.path.join(out, "ckpt.pt"))
    base = GPT.from_pretrained(hf_gpt2_dir).state_dict()
    for k, v in ckpt["model"].items():
        if not k.startswith("bias_layers."):
            assert torch.equal(v, base[k]), k
    assert ckpt["model_args"]["priming"] and ckpt["model_args"]["n_embd"] == 32


def test_sample_and_the_analysis_tools_take_init_from(hf_gpt2_dir, tmp_path, capsys):
    sample.main([f"--init_from={hf_gpt2_dir}", "--start=Hello, my name is", "--max_new_tokens=5",
                 "--temperature=0", "--device=cpu"])
    assert capsys.readouterr().out.startswith("Hello, my name is")
    analyze.main(["lens", f"--init_from={hf_gpt2_dir}", "--text=The cat sat on the mat.", f"--plot_dir={tmp_path}"])
    assert os.path.exists(tmp_path / "lens.png")
