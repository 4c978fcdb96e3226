"""tools/serve.py: OpenAI's completions API over loopback, spoken to with the official openai client."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import openai
import pytest
import torch

from conftest import ROOT
from helpers.checkpoint import GPT2_META
from model import GPT
from prepare.common import get_tokenizer
from tools import serve

NAME = "tiny-gpt2"


@pytest.fixture(scope="module")
def server(hf_gpt2_dir):
    """The tiny GPT-2 served on 127.0.0.1 (a free port) in a thread; yields (base_url, model, tokenizer)."""
    model = GPT.from_pretrained(hf_gpt2_dir)
    tok = get_tokenizer(GPT2_META)
    srv = serve.make_server(model, tok, NAME).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", model.eval(), tok
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0], api_key="none", max_retries=0, timeout=30)


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == [NAME]


def test_echo_with_no_new_tokens_returns_the_prompts_logprobs(client, server):
    _, model, tok = server
    prompt = "The cat sat on the mat because"
    r = client.completions.create(model=NAME, prompt=prompt, max_tokens=0, echo=True, logprobs=3)
    lp = r.choices[0].logprobs
    ids = tok.encode(prompt)
    assert r.choices[0].text == prompt and "".join(lp.tokens) == prompt
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    with torch.no_grad():
        want = torch.log_softmax(model(torch.tensor([ids]))[0][0], -1)
    for t in range(1, len(ids)):
        assert lp.token_logprobs[t] == pytest.approx(want[t - 1, ids[t]].item(), abs=1e-4)
        assert 3 <= len(lp.top_logprobs[t]) <= 4  # the top 3, and the prompt's own token
        assert max(lp.top_logprobs[t].values()) == pytest.approx(want[t - 1].max().item(), abs=1e-4)
    assert lp.text_offset == [sum(len(p) for p in lp.tokens[:i]) for i in range(len(ids))]
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == 0


def test_greedy_completion_is_the_models_greedy_continuation(client, server):
    _, model, tok = server
    r = client.completions.create(model=NAME, prompt="Hello, my name is", max_tokens=8, temperature=0, logprobs=2)
    ids = tok.encode("Hello, my name is")
    want = model.generate(torch.tensor([ids]), 8, temperature=0)[0, len(ids):].tolist()
    want = want[:want.index(tok.eot_token) + 1] if tok.eot_token in want else want  # end-of-text ends it, kept
    assert r.choices[0].text == tok.decode([t for t in want if t != tok.eot_token])
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(want) and all(v <= 0 for v in lp.token_logprobs)
    for tok_lp, top in zip(lp.token_logprobs, lp.top_logprobs):  # greedy: the chosen token is the top one
        assert tok_lp == pytest.approx(max(top.values()), abs=1e-5)


def test_seed_n_list_prompts_and_stop(client):
    kw = dict(model=NAME, prompt=["Once upon a time", "In the beginning"], max_tokens=6, temperature=1.0, n=2)
    a = client.completions.create(seed=7, **kw)
    b = client.completions.create(seed=7, **kw)
    assert [c.text for c in a.choices] == [c.text for c in b.choices] and len(a.choices) == 4
    assert [c.index for c in a.choices] == [0, 1, 2, 3]
    text = a.choices[0].text
    if len(text) > 2:  # stop at a string the same seeded sample contains: cut right before it
        stop = text[2:4]
        c = client.completions.create(seed=7, stop=stop, **kw)
        assert c.choices[0].text == text[:text.find(stop)] and c.choices[0].finish_reason == "stop"


def test_end_of_text_is_the_last_logprob_and_adds_no_text(hf_gpt2_dir):
    """lm-eval's loglikelihood request (echo, max_tokens=1, logprobs=1) reads the last token as the sampled
    one: when that is end-of-text it is there, as OpenAI and vLLM answer, so the prompt's own last token is
    not dropped. The model is the tiny GPT-2 made to predict end-of-text after every token."""
    model, tok = GPT.from_pretrained(hf_gpt2_dir).eval(), get_tokenizer(GPT2_META)
    with torch.no_grad():  # ln_f always outputs 3 x wte[eot], whose dot product is largest with wte[eot] itself
        model.transformer.wte.weight[tok.eot_token] *= 3
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(model.transformer.wte.weight[tok.eot_token])
    prompt = "The cat sat on the mat"
    ids = tok.encode(prompt)
    with torch.no_grad():
        want = torch.log_softmax(model(torch.tensor([ids]))[0][0], -1)
    srv = serve.make_server(model, tok, NAME).start()
    try:
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1", api_key="none", max_retries=0)
        r = c.completions.create(model=NAME, prompt=ids, max_tokens=1, echo=True, logprobs=1, temperature=0)
        lp = r.choices[0].logprobs
        assert r.choices[0].text == prompt and r.choices[0].finish_reason == "stop"
        assert lp.tokens == [tok.decode([t]) for t in ids] + ["<|endoftext|>"]
        assert lp.token_logprobs[1:] == pytest.approx([want[t - 1, i].item() for t, i in
                                                       enumerate(ids[1:] + [tok.eot_token], 1)], abs=1e-4)
        assert lp.top_logprobs[-1] == {"<|endoftext|>": pytest.approx(lp.token_logprobs[-1])}
        assert lp.text_offset == [len(tok.decode(ids[:t])) for t in range(len(ids) + 1)]  # the last at the end
        assert r.usage.completion_tokens == 1
        r = c.completions.create(model=NAME, prompt=prompt, max_tokens=5, logprobs=0, temperature=0)
        assert r.choices[0].text == "" and r.choices[0].logprobs.tokens == ["<|endoftext|>"]
        assert r.choices[0].finish_reason == "stop" and r.choices[0].logprobs.text_offset == [0]
    finally:
        srv.stop()


@pytest.mark.parametrize("kwargs, status, param", [
    (dict(prompt="x", suffix="y"), 400, "suffix"),
    (dict(prompt="x", temperature="hot"), 400, "temperature"),
    (dict(prompt="x", top_p=2), 400, "top_p"),
    (dict(prompt="x", stream=True), 400, "stream"),
    (dict(prompt="word " * 70, max_tokens=0), 400, "max_tokens"),  # 70 tokens > the 64-token context
    (dict(prompt="x", max_tokens=64), 400, "max_tokens"),  # 1 + 64 > 64
    (dict(prompt=[[1, 2, 99999]]), 400, "prompt"),
    (dict(prompt="x", model="gpt-4"), 404, "model"),
])
def test_bad_requests_get_a_json_error_naming_the_field(server, kwargs, status, param):
    body = {"model": NAME, **kwargs}
    req = urllib.request.Request(server[0] + "/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == status
    err = json.load(e.value)["error"]
    assert err["param"] == param and err["message"] and err["type"] == "invalid_request_error"


def test_the_openai_client_sees_a_bad_request_and_the_server_keeps_serving(client):
    with pytest.raises(openai.BadRequestError, match="maximum context length is 64"):
        client.completions.create(model=NAME, prompt="word " * 70, max_tokens=1)
    raw = urllib.request.Request(client.base_url.__str__() + "completions", data=b"{not json",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError, match="400"):
        urllib.request.urlopen(raw, timeout=30)
    assert client.completions.create(model=NAME, prompt="still here", max_tokens=1).choices


def test_the_command_line_serves_a_run_folder(tiny_run):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "tools/serve.py", f"--out_dir={tiny_run}", "--port=0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving out (") and " at http://127.0.0.1:" in line, line
        url = line.split(" at ")[1].split()[0]
        c = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=30)
        r = c.completions.create(model="out", prompt="Q: Where", max_tokens=4, temperature=0, echo=True, logprobs=1)
        assert r.choices[0].text.startswith("Q: Where") and len(r.choices[0].logprobs.tokens) == len("Q: Where") + 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_logprobs_tool_scores_the_same_table_through_the_api(server, hf_gpt2_dir, tmp_path):
    """analyze logprobs --api against the server equals the same tool run on the local model (clean values)."""
    from tools import analyze

    keys = ["--contexts=Mibe lives in Tulvek. Q: Where does Mibe live? A:|Vorin keeps an owl. A:",
            "--phrases= Tulvek| owl", "--perturbations=8", "--noise=0.2"]
    analyze.main(["logprobs", f"--api={server[0]}", f"--model={NAME}", *keys, f"--plot_dir={tmp_path}/api"])
    analyze.main(["logprobs", f"--init_from={hf_gpt2_dir}", *keys, f"--plot_dir={tmp_path}/local"])

    def clean_values(folder):
        rows = [r for r in (tmp_path / folder / "logprobs.md").read_text().splitlines() if r.startswith("| 0") or r.startswith("| 1")]
        return [float(r.split("|")[3].strip(" *")) for r in rows]

    api, local = clean_values("api"), clean_values("local")
    assert len(api) == 4 and api == pytest.approx(local, abs=2e-3)  # the table prints 3 decimals
    with pytest.raises(Exception, match="--model"):
        analyze.main(["logprobs", f"--api={server[0]}", *keys])
    with pytest.raises(Exception, match="joins the end of the context"):  # " world" is one GPT-2 token
        analyze.main(["logprobs", f"--api={server[0]}", f"--model={NAME}", "--contexts=hello wor", "--phrases=ld",
                      f"--plot_dir={tmp_path}/split"])
