"""tools/serve.py under load and odd requests, over 127.0.0.1: its limits, numeric edge cases, fairness
between a big and a small request, a burst of 64 clients, and a schemathesis fuzz of its OpenAPI document."""

import concurrent.futures
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from helpers.checkpoint import GPT2_META
from model import GPT
from prepare.common import get_tokenizer
from tools import serve

NAME = "tiny-gpt2"
BODY_LIMIT = 10_000


@pytest.fixture(scope="module")
def tiny(hf_gpt2_dir):
    return GPT.from_pretrained(hf_gpt2_dir).eval(), get_tokenizer(GPT2_META)


@pytest.fixture(scope="module")
def server(tiny):
    """The tiny GPT-2 on a free port with short timeouts and a small body limit; yields (base_url, port)."""
    srv = serve.make_server(*tiny, NAME, max_body_bytes=BODY_LIMIT, max_choices=64, request_timeout_s=1,
                            keep_alive_s=1).start()
    port = srv.server_address[1]
    yield f"http://127.0.0.1:{port}/v1", port
    srv.stop()


def post(url, body, timeout=30):
    """(status, JSON answer) of POST url/completions."""
    req = urllib.request.Request(url + "/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def raw(port, data, wait=10):
    """Everything the server sends back on a fresh connection after data, and whether it then closed it."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(wait)
    out, closed = b"", False
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            out += chunk
    except socket.timeout:
        pass
    except OSError:  # reset after the answer: the server closed it while we were still sending
        closed = True
    finally:
        s.close()
    return out, closed


def status(answer):
    return int(answer.split(b" ", 2)[1]) if answer else None


def greedy(body):
    return {"model": NAME, "prompt": "Once upon a time", "max_tokens": 6, "temperature": 0, **body}


# --- limits ---

def test_a_body_over_the_limit_gets_a_413_by_length_or_chunked(server):
    url, port = server
    out, _ = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                         % (BODY_LIMIT + 1))
    assert status(out) == 413 and b"max_body_bytes" in out
    chunk = b"x" * 6000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    out, _ = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert status(out) == 413 and json.loads(out.split(b"\r\n\r\n", 1)[1])["error"]["message"]
    assert post(url, {"prompt": "x" * (BODY_LIMIT + 1)})[0] == 413


def test_a_chunked_body_is_read(server):
    body = json.dumps(greedy({})).encode()
    out, _ = raw(server[1], b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            b"Connection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert status(out) == 200
    answer = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert answer["choices"][0]["text"] == post(server[0], greedy({}))[1]["choices"][0]["text"]


@pytest.mark.parametrize("head", [b"Content-Length: -1\r\n", b"Content-Length: abc\r\n",
                                  b"Content-Length: 5\r\nContent-Length: 6\r\n"])
def test_a_bad_content_length_gets_a_400(server, head):
    out, closed = raw(server[1], b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n{}")
    assert status(out) == 400 and closed


def test_headers_past_the_limit_get_a_400(server):
    out, closed = raw(server[1], b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000)
    assert status(out) == 400 and closed


@pytest.mark.parametrize("sent", [b"", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le",
                                  b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro"])
def test_idle_and_half_sent_connections_are_closed(server, sent):
    out, closed = raw(server[1], sent)  # request_timeout_s=1: closed long before raw's 10 s wait
    assert closed and out == b""


def test_an_idle_connection_after_an_answer_is_closed(server):
    out, closed = raw(server[1], b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive, then idle
    assert status(out) == 200 and closed


def test_too_many_completions_and_too_many_tokens_get_a_400(server):
    code, answer = post(server[0], greedy({"prompt": ["a"] * 5, "n": 13}))  # 65 > max_choices=64
    assert code == 400 and answer["error"]["param"] == "n" and "64" in answer["error"]["message"]
    assert post(server[0], greedy({"prompt": ["a"] * 4, "n": 16, "max_tokens": 1}))[0] == 200  # 64 is fine
    for max_tokens in (64, 2**100):
        code, answer = post(server[0], greedy({"max_tokens": max_tokens}))
        assert code == 400 and answer["error"]["param"] == "max_tokens"


@pytest.mark.parametrize("path, method, code", [("/v1/nothing", "GET", 404), ("/v1/models", "DELETE", 405),
                                                ("/v1/completions", "GET", 405)])
def test_unknown_routes_and_methods_get_a_json_error(server, path, method, code):
    req = urllib.request.Request(server[0][:-3] + path, method=method)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == code and json.load(e.value)["error"]["message"]


@pytest.mark.parametrize("body, param", [
    ({"prompt": "x", "temperature": True}, "temperature"),
    ({"prompt": "x", "n": 1.5}, "n"),
    ({"prompt": ["a", 1]}, "prompt"),
    ({"prompt": []}, "prompt"),
    ({"prompt": "x", "stop": [1]}, "stop"),
    ({"prompt": "x", "model": "../../etc/passwd"}, "model"),
    ({}, "prompt"),
])
def test_odd_fields_get_a_4xx_naming_them(server, body, param):
    code, answer = post(server[0], body)
    assert code in (400, 404) and answer["error"]["param"] == param and answer["error"]["message"]


# --- numeric edge cases ---

def test_a_tiny_temperature_or_top_p_is_greedy(server):
    want = post(server[0], greedy({}))[1]["choices"][0]["text"]
    for extra in ({"temperature": 1e-9}, {"temperature": 5e-324}, {"temperature": 1, "top_p": 1e-9}):
        code, answer = post(server[0], greedy({**extra, "seed": 3}))
        assert code == 200 and answer["choices"][0]["text"] == want


def test_any_integer_seed_is_taken(server):
    body = greedy({"temperature": 1, "n": 2})
    big = post(server[0], {**body, "seed": 2**100 + 5})
    assert big[0] == 200 and big[1]["choices"] == post(server[0], {**body, "seed": (2**100 + 5) % 2**63})[1]["choices"]
    assert post(server[0], {**body, "seed": -1})[0] == 200


def test_an_empty_stop_string_stops_nothing_and_any_number_of_stops_is_taken(server):
    want = post(server[0], greedy({}))[1]["choices"]
    for stop in ("", [""], ["", ""], []):
        assert post(server[0], greedy({"stop": stop}))[1]["choices"] == want
    stops = [f"never{i}" for i in range(10)]
    assert post(server[0], greedy({"stop": stops}))[1]["choices"] == want


# --- fairness and load ---

def test_the_worker_takes_requests_in_turn():
    """Two requests queued at once: the small one's completion runs second, not after the big one's 20."""
    worker, order, gate = serve.Worker(), [], threading.Event()
    try:
        blocker = worker.submit([gate.wait])  # holds the worker while both requests queue
        big = worker.submit([lambda i=i: order.append(("big", i)) for i in range(20)])
        small = worker.submit([lambda: order.append(("small", 0))])
        gate.set()
        concurrent.futures.wait(blocker + big + small, timeout=30)
    finally:
        worker.stop()
    assert order.index(("small", 0)) == 1 and len(order) == 21


def test_a_small_request_is_answered_while_a_big_one_runs(tiny):
    srv = serve.make_server(*tiny, NAME, max_choices=160).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            big = pool.submit(post, url, {"prompt": ["Once"] * 10, "n": 16, "max_tokens": 2})
            while not srv.app.app.state.worker.waiting and not big.done():
                time.sleep(0.001)  # until the big request is queued
            small = post(url, greedy({}))
            assert small[0] == 200 and not big.done()
            assert big.result()[0] == 200 and len(big.result()[1]["choices"]) == 160
    finally:
        srv.stop()


def test_a_burst_of_64_clients_each_get_the_solo_answer(server):
    bodies = [greedy({"prompt": f"Client {i} says", "logprobs": 1}) for i in range(8)]
    solo = [post(server[0], b)[1]["choices"] for b in bodies]
    start = threading.Barrier(64)

    def client(i):
        start.wait()
        return post(server[0], bodies[i % 8], timeout=60)

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(client, range(64)))
    assert [code for code, _ in answers] == [200] * 64
    assert all(a["choices"] == solo[i % 8] for i, (_, a) in enumerate(answers))


# --- fuzz ---

def test_fuzzing_the_openapi_document_finds_no_5xx(tiny):
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    srv = serve.make_server(*tiny, NAME, max_choices=4).start()  # small requests: the fuzz stays quick
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        seen = []
        for path, method in (("/v1/completions", "POST"), ("/v1/models", "GET")):
            @settings(max_examples=50 if method == "POST" else 5, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=schema[path][method].as_strategy())
            def check(case):
                response = case.call(base_url=base, timeout=30)
                seen.append(response.status_code)
                assert response.status_code < 500, response.text

            check()
        assert 200 in seen and any(400 <= s < 500 for s in seen)
        assert urllib.request.urlopen(base + "/v1/models", timeout=30).status == 200
    finally:
        srv.stop()
