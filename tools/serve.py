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
naming the field. A completion that ends at the end-of-text token has that token last in its logprobs
(tokens, token_logprobs, top_logprobs, text_offset) but not in its text, as OpenAI and vLLM answer:
lm-eval reads the last token as the one it asked for. Logprobs are the model's log-softmax before
temperature and top_p, as vLLM reports. GET /openapi.json describes the request (and /docs shows it).

FastAPI declares and checks the request (CompletionRequest); uvicorn speaks HTTP (h11), with limits on
the body, the headers, idle and half-sent connections. One model worker thread samples one completion
at a time, taking them round-robin across the requests waiting, so a big request cannot starve a
small one.
"""

import asyncio
import collections
import concurrent.futures
import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal, Optional, Union

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401

import h11
import torch
import torch.nn.functional as F
import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

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
    # limits: a request past one gets a 4xx naming it
    max_body_bytes: int = 1_000_000  # a larger request body gets a 413
    max_choices: int = 64  # prompts x n per request; more gets a 400
    max_header_bytes: int = 16384  # request line and headers (h11's limit); more gets a 400
    backlog: int = 2048  # connections the kernel queues before they are accepted
    max_connections: int = 1024  # open connections at once; past it new requests get a 503
    keep_alive_s: int = 5  # an idle connection is closed after this many seconds
    request_timeout_s: float = 30.0  # a request whose headers and body have not all arrived by then is dropped


GREEDY_BELOW = 1e-5  # a temperature or top_p under this samples greedily (the top token), as OpenAI does


class RequestError(Exception):
    """A bad request: answered with this status and OpenAI's error JSON, naming the field (param)."""

    def __init__(self, message, param=None, status=400):
        super().__init__(message)
        self.param, self.status = param, status


# --- the request, declared: FastAPI checks it and publishes its schema at /openapi.json ---

Number = Union[StrictInt, StrictFloat]  # a JSON number (true and false are not numbers)


class CompletionRequest(BaseModel):
    """POST /v1/completions. null or absent takes the default; any other field is refused."""
    model_config = ConfigDict(extra="forbid")

    prompt: Union[StrictStr, list[StrictStr], list[StrictInt], list[list[StrictInt]]]
    model: Optional[StrictStr] = None
    max_tokens: Optional[Annotated[StrictInt, Field(ge=0)]] = None
    temperature: Optional[Annotated[Number, Field(ge=0, le=2, allow_inf_nan=False)]] = None
    top_p: Optional[Annotated[Number, Field(gt=0, le=1, allow_inf_nan=False)]] = None
    n: Optional[Annotated[StrictInt, Field(ge=1, le=16)]] = None
    stop: Optional[Union[StrictStr, list[StrictStr]]] = None
    logprobs: Optional[Annotated[StrictInt, Field(ge=0, le=20)]] = None
    echo: Optional[StrictBool] = None
    seed: Optional[StrictInt] = None
    stream: Optional[Literal[False]] = None
    user: Optional[StrictStr] = None
    # accepted at their neutral values only
    best_of: Optional[Literal[1]] = None
    presence_penalty: Optional[Annotated[Number, Field(ge=0, le=0)]] = None
    frequency_penalty: Optional[Annotated[Number, Field(ge=0, le=0)]] = None
    logit_bias: Optional[Annotated[dict[str, Number], Field(max_length=0)]] = None


WHAT = {  # field -> what it must be, for the one-line error
    "model": "a string", "prompt": "a string, a list of strings, token ids, or lists of token ids",
    "max_tokens": "an integer >= 0", "temperature": "a number in [0, 2]", "top_p": "a number in (0, 1]",
    "n": "an integer in 1..16", "stop": "a string or a list of strings", "logprobs": "an integer in 0..20",
    "echo": "true or false", "seed": "an integer", "stream": "false (streaming is not supported)",
    "user": "a string", "best_of": "1 (best_of is not supported)",
    "presence_penalty": "0 (penalties are not supported)", "frequency_penalty": "0 (penalties are not supported)",
    "logit_bias": "empty (logit_bias is not supported)",
}
DEFAULTS = {"model": None, "max_tokens": 16, "temperature": 1.0, "top_p": 1.0, "n": 1, "stop": [],
            "logprobs": None, "echo": False, "seed": None}


def request_dict(body: CompletionRequest):
    """The checked request as a dict with the defaults filled in, the stop strings a list of non-empty ones,
    a tiny temperature or top_p made greedy, and the seed reduced to 63 bits."""
    req = {**DEFAULTS, **{k: v for k, v in body.model_dump().items() if v is not None}}
    stop = [req["stop"]] if isinstance(req["stop"], str) else req["stop"]
    req["stop"] = [s for s in stop if s]  # "" matches everywhere: an empty stop string stops nothing
    if req["temperature"] < GREEDY_BELOW or req["top_p"] < GREEDY_BELOW:
        req["temperature"], req["top_p"] = 0.0, 1.0
    if req["seed"] is not None:
        req["seed"] %= 2**63  # any integer seeds: torch takes 64 bits
    return req


def validation_error(exc: RequestValidationError):
    """The first of pydantic's errors as (message, param), in the words the old checks used."""
    err = exc.errors()[0]
    loc = [p for p in err["loc"] if p != "body"]
    key = loc[0] if loc and isinstance(loc[0], str) else None
    if err["type"] == "json_invalid":
        return f"the request body is not valid JSON ({err.get('ctx', {}).get('error', err['msg'])})", None
    if key is None:
        return "the request body must be a JSON object", None
    if err["type"] == "extra_forbidden":
        return f"unsupported field {key!r}; supported: {', '.join(CompletionRequest.model_fields)}", key
    if err["type"] == "missing":
        return f"{key} is required", key
    body = exc.body if isinstance(exc.body, dict) else {}
    got = json.dumps(body.get(key, err.get("input")), default=str)
    got = got if len(got) <= 80 else got[:77] + "..."
    return f"{key} must be {WHAT.get(key, 'valid')}, got {got}", key


def prompts(prompt, tok):
    """The request's prompts as lists of token ids: a string, a list of strings, token ids, or lists of them."""
    if isinstance(prompt, str) or prompt and all(isinstance(t, int) for t in prompt):
        prompt = [prompt]
    if not prompt:
        raise RequestError("prompt must be a string, a list of strings, token ids, or lists of token ids", "prompt")
    out = []
    for p in prompt:
        try:
            ids = tok.encode(p) if isinstance(p, str) else p
        except (ValueError, UnicodeError) as e:  # a character outside a char-level vocabulary, a lone surrogate
            raise RequestError(f"the prompt cannot be encoded: {e}", "prompt") from None
        if any(not 0 <= t < tok.n_vocab for t in ids):
            raise RequestError(f"token ids must be in 0..{tok.n_vocab - 1}", "prompt")
        out.append(ids)
    return out


class Completer:
    """The model behind the API: checks a request against the model, then samples one completion at a time."""

    def __init__(self, model, tok, name):
        self.model, self.tok, self.name = model.eval(), tok, name
        self.device = next(model.parameters()).device

    def token_str(self, t):
        """One token's text (a padded vocabulary's unused ids have none)."""
        return self.tok.decode([t]) if t < self.tok.n_vocab else f"<|unused {t}|>"

    def new_text(self, t):
        """The text a sampled token adds to the completion: none for the end-of-text token that ends it."""
        return "" if t == self.tok.eot_token else self.token_str(t)

    def plan(self, req, max_choices):
        """The request's prompts as token ids, each checked against the context; a RequestError if any is bad."""
        if req["model"] is not None and req["model"] != self.name:
            raise RequestError(f"model {req['model']!r} not found; this server serves {self.name!r}", "model", 404)
        batch = prompts(req["prompt"], self.tok)
        if len(batch) * req["n"] > max_choices:
            raise RequestError(f"{len(batch)} prompts x n={req['n']} is {len(batch) * req['n']} completions; "
                               f"this server answers at most {max_choices} per request", "n")
        ctx = self.model.config.block_size
        out = []
        for ids in batch:
            if not ids:  # an empty prompt starts from the end-of-text token, as GPT-2 was trained
                if self.tok.eot_token is None:
                    raise RequestError("the prompt is empty and this tokenizer has no end-of-text token to start from", "prompt")
                ids = [self.tok.eot_token]
            if len(ids) + req["max_tokens"] > ctx:
                raise RequestError(f"this model's maximum context length is {ctx} tokens, but {len(ids)} prompt tokens + "
                                   f"{req['max_tokens']} max_tokens were requested", "max_tokens")
            out.append(ids)
        return out

    def answer(self, req, batch, choices):
        """OpenAI's response for the choices sampled from batch (n per prompt, in order)."""
        n_prompt = sum(len(ids) for ids in batch)
        n_completion = sum(c.pop("n_completion") for c in choices)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.name, "choices": [{"index": i, **c} for i, c in enumerate(choices)],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_completion,
                          "total_tokens": n_prompt + n_completion}}

    @torch.no_grad()
    def one_choice(self, ids, req, gen):
        """Sample one completion, cut it at a stop string or the end-of-text token, then score every token."""
        x = torch.tensor([ids], device=self.device)
        seq = self.model.generate(x, req["max_tokens"], temperature=req["temperature"], top_p=req["top_p"],
                                  generator=gen)[0].tolist() if req["max_tokens"] else list(ids)
        new = seq[len(ids):]
        finish = "length"
        if self.tok.eot_token is not None and self.tok.eot_token in new:
            # the end-of-text token stays among the completion's tokens and logprobs, as OpenAI and vLLM
            # answer (lm-eval takes the last one as the sampled token); it adds no text
            new, finish = new[:new.index(self.tok.eot_token) + 1], "stop"
        pieces = [self.new_text(t) for t in new]
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
        # (T, vocab): row t predicts token t + 1; clamped because -inf is not JSON
        lp = F.log_softmax(logits[0].float(), dim=-1).clamp(min=-1e4)
        first = 0 if echo else len(ids)
        tokens, token_lp, top, offsets, pos = [], [], [], [], 0
        for t in range(first, len(seq)):
            piece = self.token_str(seq[t])
            tokens.append(piece)
            offsets.append(pos)
            pos += len(piece if t < len(ids) else self.new_text(seq[t]))  # where the next token's text starts
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


class Worker:
    """The one thread that runs the model. Each request's completions wait in a queue of their own; the
    worker takes one completion at a time from each waiting request in turn (round-robin, in order of
    arrival), so a request of 800 completions delays a request of one by about one completion."""

    def __init__(self):
        self.waiting = collections.deque()  # one deque of (job, future) per request, oldest first
        self.cv = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self.loop, daemon=True, name="model-worker")
        self.thread.start()

    def submit(self, jobs):
        """Queue a request's jobs (functions of no arguments), run in this order; their futures."""
        queue = collections.deque((job, concurrent.futures.Future()) for job in jobs)
        futures = [f for _, f in queue]
        with self.cv:
            if queue:
                self.waiting.append(queue)
                self.cv.notify()
        return futures

    def loop(self):
        while True:
            with self.cv:
                while not self.waiting and not self.stopped:
                    self.cv.wait()
                if self.stopped:
                    return
                queue = self.waiting.popleft()
                job, future = queue.popleft()
                if queue:  # the request's next completion goes to the back of the line
                    self.waiting.append(queue)
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(job())
                except Exception as e:  # handed to the request, answered there
                    future.set_exception(e)

    def stop(self):
        with self.cv:
            self.stopped = True
            self.cv.notify()
        self.thread.join(timeout=30)


def error_json(status, message, param=None):
    """OpenAI's error shape."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status_code=status)


ROUTES = "GET /v1/models, POST /v1/completions"


class ReadBody:
    """ASGI middleware that reads the whole body before the app sees it: over max_bytes it answers 413,
    whether Content-Length says so or a chunked body grows past it. The body is read as JSON whatever
    its Content-Type says (curl -d sends a form's), as OpenAI's API does."""

    def __init__(self, app, max_bytes):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        headers.append((b"content-type", b"application/json"))
        length = int(dict(scope["headers"]).get(b"content-length", b"0"))  # h11 has checked it is digits
        body, more = b"", length <= self.max_bytes
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False) and len(body) <= self.max_bytes
        if max(length, len(body)) > self.max_bytes:
            return await error_json(413, f"the request body is over this server's limit of {self.max_bytes} bytes "
                                         f"(--max_body_bytes)")(scope, receive, send)

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


def make_app(completer, cfg=None):
    """The FastAPI app answering for completer, with cfg's limits (ServeConfig)."""
    cfg = cfg or ServeConfig()
    worker = Worker()
    app = FastAPI(title="small-gpt-lab completions", version="1.0",
                  description="OpenAI's completions API for a model of this repository.")
    app.state.worker = worker

    @app.exception_handler(RequestError)
    async def request_error(request, exc):
        return error_json(exc.status, str(exc), exc.param)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        return error_json(400, *validation_error(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        if exc.status_code == 404:
            return error_json(404, f"no route {request.url.path}: {ROUTES}")
        if exc.status_code == 405:
            return error_json(405, f"{request.method} is not allowed on {request.url.path}: {ROUTES}")
        return error_json(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def bug(request, exc):  # a bug must not take the server down: report it, keep serving
        return error_json(500, f"{type(exc).__name__}: {exc}")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": completer.name, "object": "model", "created": 0,
                                            "owned_by": "small-gpt-lab"}]}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        req = request_dict(body)
        batch = completer.plan(req, cfg.max_choices)
        gen = torch.Generator(device=completer.device)
        gen.manual_seed(req["seed"] if req["seed"] is not None else int.from_bytes(os.urandom(4), "little"))
        jobs = [lambda ids=ids: completer.one_choice(ids, req, gen) for ids in batch for _ in range(req["n"])]
        choices = await asyncio.gather(*(asyncio.wrap_future(f) for f in worker.submit(jobs)))
        return completer.answer(req, batch, list(choices))

    return ReadBody(app, cfg.max_body_bytes)


def protocol(request_timeout_s):
    """uvicorn's h11 protocol, plus a deadline: a connection that has not sent a whole request (headers
    and body) within request_timeout_s of its first byte, or of opening, is closed. uvicorn alone
    closes only connections idle after an answer (keep_alive_s)."""

    class Protocol(H11Protocol):
        deadline = None

        def arm(self):
            self.deadline = self.loop.call_later(request_timeout_s, self.expire)

        def disarm(self):
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def expire(self):
            self.deadline = None
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport):
            super().connection_made(transport)
            self.arm()

        def data_received(self, data):
            if self.deadline is None and self.conn.their_state is h11.IDLE:  # a new request begins
                self.arm()
            super().data_received(data)

        def on_response_complete(self):
            self.disarm()
            super().on_response_complete()

        def connection_lost(self, exc):
            self.disarm()
            super().connection_lost(exc)

    return Protocol


class Server:
    """uvicorn serving an app on a socket bound here, so a port of 0 is known before it serves.
    run() serves until interrupted; start() serves from a thread and stop() ends it."""

    def __init__(self, app, host, port, cfg):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(cfg.backlog)
        self.server_address = self.sock.getsockname()[:2]
        self.app = app
        self.uvicorn = uvicorn.Server(uvicorn.Config(
            app, http=protocol(cfg.request_timeout_s), backlog=cfg.backlog, timeout_keep_alive=cfg.keep_alive_s,
            limit_concurrency=cfg.max_connections, h11_max_incomplete_event_size=cfg.max_header_bytes,
            lifespan="off", log_level="warning", access_log=False))
        self.thread = None

    def run(self):
        try:
            self.uvicorn.run(sockets=[self.sock])
        finally:
            self.close()

    def start(self):
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.uvicorn.started and self.thread.is_alive():
            time.sleep(0.01)
        return self

    def stop(self):
        self.uvicorn.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.close()

    def close(self):
        self.sock.close()
        self.app.app.state.worker.stop()


def make_server(model, tok, name, host="127.0.0.1", port=0, cfg=None, **limits):
    """A server (not yet serving) for model, with cfg's limits (ServeConfig) and any overrides in limits;
    server.server_address[1] is its port."""
    cfg = dataclasses.replace(cfg or ServeConfig(), **limits)
    return Server(make_app(Completer(model, tok, name), cfg), host, port, cfg)


def main(argv=None):
    (cfg,), _ = configure([ServeConfig()], argv, description=__doc__)
    if not 0 <= cfg.port <= 65535:
        raise UserError(f"port must be in 0..65535, got {cfg.port}")
    for key in ("max_body_bytes", "max_choices", "max_header_bytes", "backlog", "max_connections",
                "keep_alive_s", "request_timeout_s"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"{key} must be > 0, got {getattr(cfg, key)}")
    ckpt = read_model(cfg.init_from, cfg.out_dir, cfg.ckpt)
    model = model_from_checkpoint(ckpt).to(cfg.device)
    if model.config.prefix_lm or model.config.priming:
        raise UserError("serve.py samples plain causal models: prefix_lm and priming checkpoints need inputs "
                        "the completions API has no field for")
    run_name = os.path.basename(os.path.abspath(cfg.out_dir))
    name = cfg.model_name or (cfg.init_from if cfg.init_from != "resume" else run_name)
    try:
        server = make_server(model, get_tokenizer(ckpt["meta"]), name, cfg.host, cfg.port, cfg)
    except OSError as e:
        raise UserError(f"cannot listen on {cfg.host}:{cfg.port} ({e.strerror}): choose another --port") from None
    host, port = server.server_address[:2]
    print(f"serving {name} ({model.get_num_params() / 1e6:.2f}M parameters) at http://{host}:{port}/v1", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main_guard(main)
