"""Load on a running tools/serve.py: completion tokens/s at 1, 8 and 32
concurrent clients, and a small request's latency while a big one (50 prompts x n=16) runs.

    python tools/serve.py --init_from=DIR --port=8000 --max_choices=800 &
    python tools/bench_serve.py http://127.0.0.1:8000/v1 MODEL_NAME
"""

import argparse
import concurrent.futures
import json
import statistics
import time
import urllib.request


def post(url, body):
    req = urllib.request.Request(url + "/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def tokens_per_s(url, model, clients, requests_each=4, max_tokens=32):
    """Completion tokens per second over all clients, each sending requests_each requests in a row."""
    def client(i):
        return sum(post(url, {"model": model, "prompt": f"Client {i} request {j}:", "max_tokens": max_tokens,
                              "temperature": 1.0, "seed": i * 100 + j})["usage"]["completion_tokens"]
                   for j in range(requests_each))
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(client, range(clients)))
    return total / (time.perf_counter() - start)


def small_latency_under_big(url, model, tries=3):
    """Seconds a 1-prompt, 16-token request takes alone (the median of tries); the median and the
    longest of those sent one after another while a 50 x n=16 request of 16 tokens each runs; and the
    big request's seconds."""
    small = {"model": model, "prompt": "A small request", "max_tokens": 16, "temperature": 1.0}
    alone = statistics.median(timed(post, url, small) for _ in range(tries))
    big_body = {"model": model, "prompt": ["A big request"] * 50, "n": 16, "max_tokens": 16, "temperature": 1.0}
    big = concurrent.futures.ThreadPoolExecutor(1).submit(timed, post, url, big_body)
    time.sleep(2)  # the big request is under way
    loaded = [timed(post, url, small)]
    while not big.done():
        loaded.append(timed(post, url, small))
    return alone, statistics.median(loaded), max(loaded), big.result()


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("model", help="the served model's name (GET /v1/models lists it)")
    args = p.parse_args(argv)
    url, model = args.url, args.model
    post(url, {"model": model, "prompt": "warm up", "max_tokens": 4})
    for c in (1, 8, 32):
        print(f"{c:2d} clients: {tokens_per_s(url, model, c):7.1f} completion tokens/s", flush=True)
    alone, median, longest, big = small_latency_under_big(url, model)
    print(f"small request: {alone:.3f} s alone; while a 50 x n=16 request runs ({big:.1f} s): median {median:.3f} s, "
          f"longest {longest:.3f} s", flush=True)


if __name__ == "__main__":
    main()
