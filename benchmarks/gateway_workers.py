"""Throughput of `switchman serve --workers N` for N = 1 and 2, pinned and learned routing.

The same instant upstream and wrk as benchmarks/gateway_overhead.py, and its gateway
configuration, with the workers sharing no state store (a benchmark of CPU, not of
Redis round trips). Runs alternate between 1 and 2 workers, so load from elsewhere on the
machine hits both alike; the median of the rounds is printed. On a machine whose cores
wrk and the upstream already fill, a second worker can only move contention around: the
figure that carries over to a bigger machine is CPU per request (gateway_cpu.py).

    .venv/bin/python benchmarks/gateway_workers.py [--router DIR] [--rounds 3]
        [--seconds 10] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from gateway_overhead import ROOT, free_port, gateway_config, process, wrk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", help="trained router directory (adds the learned rows)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    results: dict[tuple[int, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as name, contextlib.ExitStack() as stack:
        tmp = Path(name)
        config = gateway_config(tmp, upstream, args.router)
        pool = yaml.safe_load(config.read_text())["models"]
        body = {"model": pool[len(pool) // 2]["name"], "max_tokens": 16,
                "messages": [{"role": "user", "content": "What is the capital of France?"}]}
        targets = {"pinned": body}
        if args.router:
            targets["learned"] = {**body, "model": "switchman/learned"}
        stack.enter_context(process(
            [sys.executable, str(ROOT / "benchmarks" / "gateway_bench_upstream.py"),
             "--port", str(up_port)], f"http://127.0.0.1:{up_port}/", tmp / "up.log"))
        for _ in range(args.rounds):
            for workers in (1, 2):
                port = free_port()
                with process([sys.executable, "-m", "switchman.gateway", "serve", "--config",
                              str(config), "--port", str(port), "--workers", str(workers)],
                             f"http://127.0.0.1:{port}/healthz", tmp / f"gw{workers}.log"):
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    for label, request in targets.items():
                        wrk(url, request, args.concurrency, 2, tmp)  # warm every worker
                        result = wrk(url, request, args.concurrency, args.seconds, tmp)
                        results.setdefault((workers, label), []).append(result["rps"])
    print(f"{'target':<10} {'1 worker':>10} {'2 workers':>10} {'ratio':>7}   "
          f"(requests/s, median of {args.rounds} alternating rounds, wrk -c{args.concurrency})")
    for label in targets:
        one = statistics.median(results[(1, label)])
        two = statistics.median(results[(2, label)])
        print(f"{label:<10} {one:10.0f} {two:10.0f} {two / one:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
