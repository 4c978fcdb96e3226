"""
Serve a model with OpenAI's completions API, so any OpenAI client (or lm-eval, or `tools/analyze.py
logprobs --api`) can sample from it and read its logprobs.

    python tools/serve.py --init_from=gpt2 --port=8000          # OpenAI's GPT-2 (transformers downloads it)
    python tools/serve.py --out_dir=out-facts --port=8000       # a run of this repo
    curl localhost:8000/v1/completions -d '{"prompt": "Q: Where does", "max_tokens": 5, "logprobs": 3}'

GET /v1/models lists the model; POST /v1/completions takes prompt (a string, a list of strings, token
ids or lists of them), max_tokens, temperature, top_p, n, stop, logprobs (the top k per token), echo
(the prompt's tokens with their logprobs, the first null, as OpenAI and vLLM answer echo with
max_tokens=0), seed, and stream=false. Anything else, or a bad value, gets a 400 with a JSON error
naming the field. Logprobs are the model's log-softmax before temperature and top_p, as vLLM reports.

The standard library's HTTP server answers requests, one model call at a time: a research server needs
no web framework, and this one installs nothing.
"""

import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import torch
import torch.nn.functional as F

from helpers.checkpoint import model_from_checkpoint, read_model
from helpers.config import UserError, configure, main_guard
from prepare.common import get_tokenizer


@dataclass
class ServeConfig:
    init_from: str = "resume"  # "resume": the checkpoint in out_dir; or gpt2..gpt2-xl, an HF directory, a run folder
    out_dir: str = "out-facts"  # run directory holding ckpt.pt
    ckpt: str = ""  # explicit checkpoint path; "" means out_dir/ckpt.pt
    host: str = "127.0.0.1"  # the address to listen on (0.0.0.0: every interface)
    port: int = 8000  # 0 picks a free port (printed at start)
    model_name: str = ""  # the name clients pass as `model`; "" means init_from (or out_dir's name)
    device: str = "cpu"  # "cpu", "cuda", ...


class RequestError(Exception):
    """A bad request: answered with this status and OpenAI's error JSON, naming the field (param)."""

    def __init__(self, message, param=None, status=400):
        super().__init__(message)
        self.param, self.status = param, status


# field -> (check, what it must be); None and absent take the default
FIELDS = {
    "model": (lambda v: isinstance(v, str), "a string"),
    "prompt": (lambda v: True, "a string, a list of strings, or token ids"),  # checked by prompts()
    "max_tokens": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "temperature": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 2, "a number in [0, 2]"),
    "top_p": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1, "a number in (0, 1]"),
    "n": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16, "an integer in 1..16"),
    "stop": (lambda v: isinstance(v, str) or isinstance(v, list) and len(v) <= 4 and all(isinstance(s, str) and s for s in v),
             "a string or a list of up to 4 strings"),
    "logprobs": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 20, "an integer in 0..20"),
    "echo": (lambda v: isinstance(v, bool), "true or false"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "stream": (lambda v: v is False, "false (streaming is not supported)"),
    "user": (lambda v: isinstance(v, str), "a string"),
    # accepted at their neutral values only
    "best_of": (lambda v: v == 1, "1 (best_of is not supported)"),
    "presence_penalty": (lambda v: v == 0, "0 (penalties are not supported)"),
    "frequency_penalty": (lambda v: v == 0, "0 (penalties are not supported)"),
    "logit_bias": (lambda v: v == {}, "empty (logit_bias is not supported)"),
}


def check_request(body):
    """The request's fields with defaults, or a RequestError for the first bad one."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    for key, value in body.items():
        if key not in FIELDS:
            raise RequestError(f"unsupported field {key!r}; supported: {', '.join(FIELDS)}", key)
        ok, what = FIELDS[key]
        if value is not None and not ok(value):
            raise RequestError(f"{key} must be {what}, got {json.dumps(value)}", key)
    if "prompt" not in body:
        raise RequestError("prompt is required", "prompt")
    defaults = {"max_tokens": 16, "temperature": 1.0, "top_p": 1.0, "n": 1, "stop": [], "logprobs": None,
                "echo": False, "seed": None}
    req = {**defaults, **{k: v for k, v in body.items() if v is not None}}
    if isinstance(req["stop"], str):
        req["stop"] = [req["stop"]]
    return req


def prompts(prompt, tok):
    """The request's prompts as lists of token ids: a string, a list of strings, token ids, or lists of them."""
    def is_ids(p):
        return isinstance(p, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in p)
    if isinstance(prompt, str) or is_ids(prompt):
        prompt = [prompt]
    if not isinstance(prompt, list) or not prompt or not all(isinstance(p, str) or is_ids(p) for p in prompt):
        raise RequestError("prompt must be a string, a list of strings, token ids, or lists of token ids", "prompt")
    out = []
    for p in prompt:
        try:
            ids = tok.encode(p) if isinstance(p, str) else p
        except ValueError as e:  # a character outside a char-level vocabulary
            raise RequestError(f"the prompt cannot be encoded: {e}", "prompt") from None
        if any(not 0 <= t < tok.n_vocab for t in ids):
            raise RequestError(f"token ids must be in 0..{tok.n_vocab - 1}", "prompt")
        out.append(ids)
    return out


class Completer:
    """The model behind the API: one request at a time, each answered in OpenAI's response shape."""

    def __init__(self, model, tok, name):
        self.model, self.tok, self.name = model.eval(), tok, name
        self.device = next(model.parameters()).device
        self.lock = threading.Lock()

    def token_str(self, t):
        """One token's text (a padded vocabulary's unused ids have none)."""
        return self.tok.decode([t]) if t < self.tok.n_vocab else f"<|unused {t}|>"

    @torch.no_grad()
    def complete(self, body):
        req = check_request(body)
        if req.get("model", self.name) != self.name:
            raise RequestError(f"model {req['model']!r} not found; this server serves {self.name!r}", "model", 404)
        ctx = self.model.config.block_size
        batch = prompts(req["prompt"], self.tok)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(req["seed"] if req["seed"] is not None else int.from_bytes(os.urandom(4), "little"))
        choices, n_prompt, n_completion = [], 0, 0
        for ids in batch:
            if not ids:  # an empty prompt starts from the end-of-text token, as GPT-2 was trained
                if self.tok.eot_token is None:
                    raise RequestError("the prompt is empty and this tokenizer has no end-of-text token to start from", "prompt")
                ids = [self.tok.eot_token]
            if len(ids) + req["max_tokens"] > ctx:
                raise RequestError(f"this model's maximum context length is {ctx} tokens, but {len(ids)} prompt tokens + "
                                   f"{req['max_tokens']} max_tokens were requested", "max_tokens")
            n_prompt += len(ids)
            for _ in range(req["n"]):
                choice = self.one_choice(ids, req, gen)
                n_completion += choice.pop("n_completion")
                choices.append({"index": len(choices), **choice})
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.name, "choices": choices,
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_completion,
                          "total_tokens": n_prompt + n_completion}}

    def one_choice(self, ids, req, gen):
        """Sample one completion, cut it at a stop string or the end-of-text token, then score every token."""
        x = torch.tensor([ids], device=self.device)
        seq = self.model.generate(x, req["max_tokens"], temperature=req["temperature"], top_p=req["top_p"],
                                  generator=gen)[0].tolist() if req["max_tokens"] else list(ids)
        new = seq[len(ids):]
        finish = "length"
        if self.tok.eot_token is not None and self.tok.eot_token in new:
            new, finish = new[:new.index(self.tok.eot_token)], "stop"
        pieces = [self.token_str(t) for t in new]
        text = "".join(pieces)
        cuts = [text.find(s) for s in req["stop"] if s in text]
        if cuts:  # keep the tokens that end before the stop string; the text ends right at it
            cut, kept, end = min(cuts), 0, 0
            while kept < len(new) and end + len(pieces[kept]) <= cut:
                end += len(pieces[kept])
                kept += 1
            new, text, finish = new[:kept], text[:cut], "stop"
        out = {"text": (self.tok.decode(ids) if req["echo"] else "") + text, "logprobs": None, "finish_reason": finish,
               "n_completion": len(new)}
        if req["logprobs"] is not None:
            out["logprobs"] = self.logprobs(ids, new, req["logprobs"], req["echo"])
        return out

    def logprobs(self, ids, new, k, echo):
        """OpenAI's logprobs object for the completion tokens (and the prompt's, with echo; its first is null)."""
        seq = ids + new
        logits, _ = self.model(torch.tensor([seq], device=self.device))
        lp = F.log_softmax(logits[0].float(), dim=-1)  # (T, vocab): row t predicts token t + 1
        first = 0 if echo else len(ids)
        tokens, token_lp, top, offsets, pos = [], [], [], [], 0
        for t in range(first, len(seq)):
            piece = self.token_str(seq[t])
            tokens.append(piece)
            offsets.append(pos)
            pos += len(piece)
            if t == 0:  # nothing predicts the first token
                token_lp.append(None)
                top.append(None)
                continue
            row = lp[t - 1]
            token_lp.append(row[seq[t]].item())
            values, idx = row.topk(k) if k else (row[:0], row[:0].long())
            best = {self.token_str(i): v for i, v in zip(idx.tolist(), values.tolist())}
            best.setdefault(piece, row[seq[t]].item())  # the chosen token is always there (k + 1 at most)
            top.append(best)
        return {"tokens": tokens, "token_logprobs": token_lp, "top_logprobs": top, "text_offset": offsets}


def make_handler(completer):
    class Handler(BaseHTTPRequestHandler):
        def send_json(self, status, obj):
            data = json.dumps(obj, allow_nan=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def send_error_json(self, status, message, param=None):
            kind = "invalid_request_error" if status < 500 else "server_error"
            self.send_json(status, {"error": {"message": message, "type": kind, "param": param, "code": None}})

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                self.send_json(200, {"object": "list", "data": [{"id": completer.name, "object": "model",
                                                                  "created": 0, "owned_by": "small-gpt-lab"}]})
            else:
                self.send_error_json(404, f"no route {self.path}: GET /v1/models, POST /v1/completions")

        def do_POST(self):
            if self.path.rstrip("/") != "/v1/completions":
                return self.send_error_json(404, f"no route {self.path}: GET /v1/models, POST /v1/completions")
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            except (ValueError, UnicodeDecodeError) as e:
                return self.send_error_json(400, f"the request body is not valid JSON ({e})")
            try:
                with completer.lock:
                    answer = completer.complete(body)
                self.send_json(200, answer)
            except RequestError as e:
                self.send_error_json(e.status, str(e), e.param)
            except Exception as e:  # a bug must not take the server down: report it, keep serving
                self.send_error_json(500, f"{type(e).__name__}: {e}")

        def log_message(self, fmt, *args):  # one short line per request on stderr
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    return Handler


def make_server(model, tok, name, host="127.0.0.1", port=0):
    """An HTTP server (not yet serving) for model; server.server_address[1] is its port."""
    return ThreadingHTTPServer((host, port), make_handler(Completer(model, tok, name)))


def main(argv=None):
    (cfg,), _ = configure([ServeConfig()], argv, description=__doc__)
    if not 0 <= cfg.port <= 65535:
        raise UserError(f"port must be in 0..65535, got {cfg.port}")
    ckpt = read_model(cfg.init_from, cfg.out_dir, cfg.ckpt)
    model = model_from_checkpoint(ckpt).to(cfg.device)
    if model.config.prefix_lm or model.config.priming:
        raise UserError("serve.py samples plain causal models: prefix_lm and priming checkpoints need inputs "
                        "the completions API has no field for")
    run_name = os.path.basename(os.path.abspath(cfg.out_dir))
    name = cfg.model_name or (cfg.init_from if cfg.init_from != "resume" else run_name)
    try:
        server = make_server(model, get_tokenizer(ckpt["meta"]), name, cfg.host, cfg.port)
    except OSError as e:
        raise UserError(f"cannot listen on {cfg.host}:{cfg.port} ({e.strerror}): choose another --port") from None
    host, port = server.server_address[:2]
    print(f"serving {name} ({model.get_num_params() / 1e6:.2f}M parameters) at http://{host}:{port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main_guard(main)
