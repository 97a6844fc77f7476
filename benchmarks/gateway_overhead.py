"""Latency and throughput switchman adds in front of an instant upstream, next to LiteLLM.

One run starts the instant upstream (benchmarks/gateway_bench_upstream.py), ``switchman
serve`` and, when installed (benchmarks/setup_litellm.sh), LiteLLM's proxy, each in its own
process, then drives each target with ``wrk`` (C, cheap: it must not eat the 2 cores the
servers share) at each concurrency for a fixed time:

* ``direct``: the upstream itself (the baseline the added latency is measured against);
* ``pinned``: switchman, ``model`` = a pool model;
* ``auto``: switchman, ``model`` = the prior-based ``switchman/auto``;
* ``learned``: switchman, ``model`` = the learned router (``--router DIR``, trained with
  ``switchman train``), when one is given;
* ``learning``: the same router learning online (``learn: true``: the learner's decision,
  its context kept for feedback, the bill learned) under a budget (reserved before the
  call, settled after, paced): the request path with every part this gateway has on it;
* ``litellm``: LiteLLM's proxy to the same upstream;
* ``python floor proxy``: benchmarks/gateway_floor_proxy.py, a pass-through on switchman's
  HTTP stack (uvicorn + aiohttp) that does nothing else: what the stack alone adds here.

Added latency = the target's percentile minus the direct percentile at the same
concurrency; ``x floor`` = the target's throughput over the floor proxy's at the same
concurrency. Then the gateway gets more load until it has served ``--total`` requests,
and its RSS is reported.

    .venv/bin/python benchmarks/gateway_overhead.py [--seconds 10] [--router DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

logger = logging.getLogger("gateway_overhead")
ROOT = Path(__file__).resolve().parent.parent
LITELLM = ROOT / ".bench-venv" / "bin" / "litellm"
_LUA = """
wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
local errors = 0
response = function(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "seconds": %%f, "p50_us": %%d, '
    .. '"p99_us": %%d, "socket_errors": %%d}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.3)
    raise TimeoutError(url)


@contextlib.contextmanager
def process(cmd: list[str], ready_url: str, log: Path,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, **(env or {})})
    try:
        wait_ready(ready_url, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wrk(url: str, body: dict, concurrency: int, seconds: float, tmp: Path) -> dict:
    script = tmp / f"wrk-{os.getpid()}.lua"
    script.write_text(_LUA % json.dumps(body))
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[7:])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def router_models(path: str) -> list[str]:
    """Model names a trained router chooses among (the pool is made of these)."""
    sys.path.insert(0, str(ROOT))  # run as a script from a checkout
    from switchman.router import Router

    return list(Router.load(path).models)


def gateway_config(tmp: Path, upstream: str, router: str | None) -> Path:
    names = router_models(router) if router else ["small", "medium", "large"]
    prices = [(0.1 + i, 0.3 + 0.6 * i / max(1, len(names) - 1)) for i in range(len(names))]
    models = [{"name": n, "endpoint": upstream, "input_per_mtok": p, "output_per_mtok": p,
               "quality_prior": q, "context_window": 128000} for n, (p, q) in zip(
                   names, prices, strict=True)]
    routers = [{"name": "switchman/auto"}]
    budgets = []
    if router:
        routers.append({"name": "switchman/learned", "path": router})
        routers.append({"name": "switchman/learning", "path": router, "learn": True})
        budgets.append({"name": "bench", "usd": 1e9, "period": "day",
                        "routers": ["switchman/learning"]})
    path = tmp / "switchman.yaml"
    path.write_text(yaml.safe_dump({
        "models": models, "routers": routers, "budgets": budgets,
        "log": {"path": str(tmp / "log.sqlite")},
        "server": {"max_in_flight": 4096},
        "reliability": {"max_in_flight": 4096}}))
    return path


def start_servers(stack: contextlib.ExitStack, tmp: Path, config: Path, up_port: int,
                  gw_port: int, floor_port: int) -> tuple[subprocess.Popen, subprocess.Popen]:
    """The instant upstream, ``switchman serve`` and the floor proxy in front of it, each
    ready before this returns and stopped when ``stack`` closes: (gateway, floor)."""
    upstream = f"http://127.0.0.1:{up_port}/v1"
    stack.enter_context(process(
        [sys.executable, str(ROOT / "benchmarks" / "gateway_bench_upstream.py"),
         "--port", str(up_port)], f"http://127.0.0.1:{up_port}/", tmp / "up.log"))
    gateway = stack.enter_context(process(
        [sys.executable, "-m", "switchman.gateway", "serve", "--config", str(config),
         "--port", str(gw_port)], f"http://127.0.0.1:{gw_port}/healthz", tmp / "gw.log"))
    floor = stack.enter_context(process(
        [sys.executable, str(ROOT / "benchmarks" / "gateway_floor_proxy.py"),
         "--port", str(floor_port), "--upstream", upstream],
        f"http://127.0.0.1:{floor_port}/", tmp / "floor.log"))
    return gateway, floor


def litellm_config(tmp: Path, upstream: str, model: str) -> Path:
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": model, "litellm_params": {
            "model": f"openai/{model}", "api_base": upstream, "api_key": "sk-none"}}],
        "litellm_settings": {"drop_params": True, "telemetry": False}}))
    return path


FLOOR = "python floor proxy"


def table(rows: list[dict]) -> str:
    """One line per target and concurrency; ``x floor`` is its throughput over the floor
    proxy's at the same concurrency (the issue's targets are stated that way)."""
    floor = {r["concurrency"]: r["rps"] for r in rows if r["target"] == FLOOR}
    head = (f"{'target':<24}{'conc':>5}{'rps':>9}{'x floor':>8}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'+p50 ms':>9}{'+p99 ms':>9}{'errors':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = r["rps"] / floor[r["concurrency"]] if r["concurrency"] in floor else float("nan")
        lines.append(f"{r['target']:<24}{r['concurrency']:>5}{r['rps']:>9.0f}{ratio:>8.2f}"
                     f"{r['p50_us'] / 1000:>9.2f}{r['p99_us'] / 1000:>9.2f}"
                     f"{r['added_p50_ms']:>9.2f}{r['added_p99_ms']:>9.2f}"
                     f"{r['non200_or_socket']:>8}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--router", help="trained router directory (adds the learned row)")
    parser.add_argument("--total", type=int, default=100_000,
                        help="requests the gateway must have served before RSS is read")
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if shutil.which("wrk") is None:
        logger.error("wrk is not installed (apt-get install -y wrk); it is the load generator")
        return 2
    notes: list[str] = []
    if args.router:
        try:
            router_models(args.router)
        except Exception as exc:  # whatever breaks loading, the benchmark reports it
            notes.append(f"learned router {args.router} could not be loaded ({exc}); "
                         "no learned row")
            args.router = None
    up_port, gw_port, ll_port, floor_port = free_port(), free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        config = gateway_config(tmp, upstream, args.router)
        pool = yaml.safe_load(config.read_text())["models"]
        pinned = pool[len(pool) // 2]["name"]
        routers = (["switchman/auto", "switchman/learned", "switchman/learning"] if args.router
                   else ["switchman/auto"])
        if not args.router:
            notes.append("no --router given: no learned row")
        messages = [{"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "What is the capital of France?"}]
        body = {"model": pinned, "max_tokens": 16, "messages": messages}
        gw_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        targets = [("direct", f"{upstream}/chat/completions", body),
                   ("switchman pinned", gw_url, body),
                   *((f"switchman {name.split('/')[1]}", gw_url, {**body, "model": name})
                     for name in routers)]
        stack = contextlib.ExitStack()
        with stack:
            gateway, _floor = start_servers(stack, tmp, config, up_port, gw_port, floor_port)
            targets.append((FLOOR,
                            f"http://127.0.0.1:{floor_port}/v1/chat/completions", body))
            if args.no_litellm:
                notes.append("LiteLLM: skipped (--no-litellm)")
            elif not LITELLM.exists():
                notes.append(f"LiteLLM: not installed at {LITELLM}; run "
                             "benchmarks/setup_litellm.sh")
            else:
                try:
                    stack.enter_context(process(
                        [str(LITELLM), "--config", str(litellm_config(tmp, upstream, pinned)),
                         "--port", str(ll_port), "--num_workers", "1"],
                        f"http://127.0.0.1:{ll_port}/health/liveliness", tmp / "litellm.log",
                        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                             "LITELLM_MASTER_KEY": "sk-bench",
                             "LITELLM_TELEMETRY": "False"}))
                    targets.append(("litellm proxy",
                                    f"http://127.0.0.1:{ll_port}/v1/chat/completions", body))
                except (RuntimeError, TimeoutError) as exc:
                    log = (tmp / "litellm.log").read_text(errors="replace")[-800:]
                    notes.append(f"LiteLLM: could not start ({exc}): {log}")
            served = 0
            for _target, url, payload in targets:  # warm-up: imports, connection pools
                wrk(url, payload, 8, 2, tmp)
            for conc in args.concurrency:
                base = None
                for target, url, payload in targets:
                    r = wrk(url, payload, conc, args.seconds, tmp)
                    base = base or r
                    if target.startswith("switchman"):
                        served += r["requests"]
                    rows.append({"target": target, "concurrency": conc, **r,
                                 "added_p50_ms": (r["p50_us"] - base["p50_us"]) / 1000,
                                 "added_p99_ms": (r["p99_us"] - base["p99_us"]) / 1000,
                                 "non200_or_socket": r["socket_errors"]})
                    logger.info("%s c=%d: %.0f rps", target, conc, r["rps"])
            while served < args.total:
                served += wrk(targets[1][1], targets[1][2], 32, 10, tmp)["requests"]
            rss = rss_mb(gateway.pid)
    sys.stdout.write(table(rows) + "\n")
    sys.stdout.write(f"\nswitchman gateway RSS after {served} requests: {rss:.0f} MB\n")
    for note in notes:
        sys.stdout.write(f"note: {note}\n")
    sys.stdout.write(f"cpus: {os.cpu_count()}; wrk, upstream, gateway and LiteLLM share them\n")
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "gateway_overhead.json").write_text(json.dumps(
        {"rows": rows, "rss_mb": rss, "served": served, "notes": notes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
