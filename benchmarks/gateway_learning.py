"""Online learning through a real gateway on a real Redis, and its state across a restart.

Issue 15's gateway figure: 1,000 requests with feedback through ``switchman serve`` with its
state on a real ``redis-server``, then the same decisions read back after a restart.

* Data: routerbench (or ``--dataset``), split 70/30 by prompt with ``--seed``; the default
  router trained on the 70% (cached under ``--cache``); the 30%, shuffled, is the stream
  (cycled when it is shorter than ``--requests``).
* The upstream is the stream itself: a small HTTP server in this process answers each
  chat completion with usage whose tokens, at the pool's prices (the router's own), bill
  what the stream says that model's answer to that prompt cost. Quality reaches the gateway
  only as ``POST /v1/feedback`` with the stream's score of the model the gateway chose.
* Half-way through, the best single model breaks: from then on its answers score 0.
* The same config serves ``bench/learn`` (``learn: true``) and ``bench/offline`` (the same
  router, not learning): every stream prompt goes to both; only the learner gets feedback.
* Read back: ``--probes`` stream prompts are routed with ``explore: false`` twice before the
  gateway stops, after it restarts on the same Redis, and after a restart with Redis
  emptied (only the snapshot file beside the decision log remains). Decisions must agree
  with the last round before the stop. The probes' answers are billed like any other, and
  the learner learns their bills: the two rounds before the stop show what that alone
  changes (a near tie may turn), which a restart must not add to.

Prints quality per quarter for both routers, the broken model's share, latency medians, the
decision log's row and feedback counts, and the agreement of the probe decisions.

    .venv/bin/python benchmarks/gateway_learning.py [--requests 1000] [--probes 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from gateway_overhead import ROOT, free_port, process  # noqa: E402
from redis_support import running_redis  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "routing"


class StreamUpstream(ThreadingHTTPServer):
    """Answers ``model``'s completion of a prompt with the tokens its stream cost buys."""

    def __init__(self, bills: dict[tuple[str, str], tuple[int, int]]) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.bills = bills

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StreamUpstream

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        prompt = body["messages"][-1]["content"]
        prompt_tokens, completion_tokens = self.server.bills.get(
            (body["model"], prompt), (1, 1))
        answer = json.dumps({
            "id": "up", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}).encode()
        # One write: headers and body in separate segments would wait on delayed ACKs.
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(answer), answer))

    def log_message(self, *args: object) -> None:  # quiet
        pass


def tokens_for(cost: float, prompt: str, price_in: float, price_out: float) -> tuple[int, int]:
    """(prompt, completion) tokens that bill about ``cost`` at these USD-per-Mtok prices."""
    prompt_tokens = max(1, len(prompt) // 4)
    rest = cost - prompt_tokens * price_in / 1e6
    if price_out <= 0 or rest <= 0:
        return prompt_tokens, 0
    return prompt_tokens, round(rest / price_out * 1e6)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (scripts/bootstrap.sh installs it)")
    with running_redis(binary) as url:
        yield url


def trained_router(dataset: str, seed: int, cache: Path):  # noqa: ANN201
    """(router directory, stream outcomes as matrices in stream order)."""
    from switchman.data import load_outcomes, split_by_prompt, to_matrices
    from switchman.router import Router, new_router

    train, test = split_by_prompt(load_outcomes(DATA / f"{dataset}.parquet"), 0.3, seed=seed)
    path = cache / f"{dataset}-s{seed}-default"
    if not (path / "router.json").is_file():
        new_router("default", seed=seed).fit(train).save(path)
    stream = to_matrices(test)
    order = np.random.default_rng(seed).permutation(stream.n_prompts)
    return path, Router.load(path), stream, order


def gateway_config(tmp: Path, router_dir: Path, describe: list[dict], upstream: str,
                   redis_url: str) -> Path:
    models = [{"name": row["model"], "endpoint": upstream,
               "input_per_mtok": row["input_per_mtok"], "output_per_mtok": row["output_per_mtok"],
               "context_window": 1_000_000} for row in describe]
    common = {"path": str(router_dir)}
    config = {"models": models,
              "routers": [{"name": "bench/learn", "learn": True, "explore_share": 0.05, **common},
                          {"name": "bench/offline", **common}],
              "state": {"url": redis_url, "prefix": "bench-learning"},
              "log": {"path": str(tmp / "decisions.sqlite")}}
    path = tmp / "switchman.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def serve(config: Path, tmp: Path, name: str):  # noqa: ANN201
    port = free_port()
    cmd = [sys.executable, "-m", "switchman.gateway", "serve", "--config", str(config),
           "--port", str(port)]
    return process(cmd, f"http://127.0.0.1:{port}/healthz", tmp / f"{name}.log"), \
        f"http://127.0.0.1:{port}"


def chat(http: httpx.Client, url: str, router: str, prompt: str,
         explore: bool = True) -> tuple[str, str, float]:
    """(response id, model, seconds) of one routed request."""
    body: dict = {"model": router, "messages": [{"role": "user", "content": prompt}]}
    if not explore:
        body["switchman"] = {"explore": False}
    started = time.perf_counter()
    r = http.post(f"{url}/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{router}: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()["id"], r.headers["x-switchman-model"], elapsed


def probe(http: httpx.Client, url: str, prompts: list[str]) -> list[str]:
    return [chat(http, url, "bench/learn", p, explore=False)[1] for p in prompts]


def quarters(values: list[float]) -> str:
    parts = np.array_split(np.asarray(values), 4)
    return " ".join(f"{part.mean():.4f}" for part in parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="routerbench")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir())
                    / "switchman-gateway-learning")
    args = ap.parse_args(argv)

    args.cache.mkdir(parents=True, exist_ok=True)
    router_dir, router, stream, order = trained_router(args.dataset, args.seed, args.cache)
    describe = router.describe_models()
    prices = {row["model"]: (row["input_per_mtok"], row["output_per_mtok"]) for row in describe}
    models = list(stream.models)
    steps = [order[i % len(order)] for i in range(args.requests)]
    prompts = [stream.prompts[i] for i in steps]
    quality = stream.quality[steps]
    broken = models[int(np.argmax(stream.quality.mean(axis=0)))]
    quality[args.requests // 2:, models.index(broken)] = 0.0
    bills = {(m, stream.prompts[i]): tokens_for(float(stream.cost[i, j]), stream.prompts[i],
                                                *prices[m])
             for i in range(stream.n_prompts) for j, m in enumerate(models)}
    probes = [stream.prompts[i] for i in order[-args.probes:]]

    with tempfile.TemporaryDirectory() as tmp_name, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        upstream = StreamUpstream(bills)
        threading.Thread(target=upstream.serve_forever, daemon=True).start()
        stack.callback(upstream.shutdown)
        redis_url = stack.enter_context(redis_server())
        config = gateway_config(tmp, router_dir, describe, upstream.url, redis_url)
        http = stack.enter_context(httpx.Client(timeout=60))

        served, url = serve(config, tmp, "first")
        learned_q, offline_q, chosen, chat_s, feedback_s = [], [], [], [], []
        with served:
            for step, prompt in enumerate(prompts):
                rid, model, seconds = chat(http, url, "bench/learn", prompt)
                score = float(quality[step, models.index(model)])
                started = time.perf_counter()
                r = http.post(f"{url}/v1/feedback", json={"id": rid, "score": score})
                feedback_s.append(time.perf_counter() - started)
                if r.status_code != 200 or r.json().get("learned") is not True:
                    raise RuntimeError(f"feedback on {rid}: {r.status_code} {r.text[:300]}")
                chat_s.append(seconds)
                learned_q.append(score)
                chosen.append(model)
                _, offline, _ = chat(http, url, "bench/offline", prompt)
                offline_q.append(float(quality[step, models.index(offline)]))
            # the probes' own answers are billed and their bills learned, so a second round
            # on the same gateway shows what they alone change: the baseline of a restart
            first = probe(http, url, probes)
            before = probe(http, url, probes)
        served, url = serve(config, tmp, "restarted")
        with served:
            after = probe(http, url, probes)
        import redis  # the benchmark empties the store to show the snapshot file suffices

        redis.Redis.from_url(redis_url).flushdb()
        served, url = serve(config, tmp, "snapshot-only")
        with served:
            from_file = probe(http, url, probes)
        with sqlite3.connect(tmp / "decisions.sqlite") as db:
            rows = db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
            rated = db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]

    half = args.requests // 2
    share = [np.mean([m == broken for m in chosen[:half]]),
             np.mean([m == broken for m in chosen[half:]])]
    print(f"## {args.dataset}, split seed {args.seed}: {args.requests} requests with feedback "
          f"through switchman serve on redis-server; {broken} breaks at request {half}")
    print(f"quality per quarter   learn   {quarters(learned_q)}")
    print(f"                      offline {quarters(offline_q)}")
    print(f"share of {broken}: first half {share[0]:.3f}, second half {share[1]:.3f}")
    print(f"client round trip p50: chat {np.median(chat_s) * 1e3:.2f} ms, "
          f"feedback {np.median(feedback_s) * 1e3:.2f} ms")
    print(f"decision log: {rows} rows, {rated} feedback rows "
          f"(expected {2 * args.requests + 4 * args.probes} and {args.requests})")
    for label, again in (("again before the restart (only the probes' own bills learned "
                          "in between)", first),
                         ("after a restart on the same Redis", after),
                         ("after a restart with Redis emptied (snapshot file)", from_file)):
        same = sum(a == b for a, b in zip(before, again, strict=True))
        print(f"probe decisions {label}: {same}/{len(before)} the same")
    return 0


if __name__ == "__main__":
    sys.exit(main())
