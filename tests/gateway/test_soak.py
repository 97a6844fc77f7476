"""Soak: a gateway process under steady concurrent load with random upstream faults.

Asserts that every request ended with an answer or a clear error, that the decision log
has exactly one row per request, and that the gateway's memory stayed flat after warm-up.
``SWITCHMAN_SOAK_SECONDS`` (default 60) sets the duration.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml
from fault_support import FaultServer, sse_events

from switchman.gateway.execute.local import free_port

SECONDS = float(os.environ.get("SWITCHMAN_SOAK_SECONDS", "60"))
CONCURRENCY = 24
ERROR_CODES = {"upstream_failed", "upstream_rejected", "overloaded", "circuit_open"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def soak_config(upstream: str, log: Path) -> dict[str, Any]:
    v1 = f"{upstream}/v1"
    models = [{"name": name, "endpoint": v1, "upstream_model": up, "quality_prior": q,
               **extra} for name, up, q, extra in [
        ("chaos1", "chaos@1", 0.9, {"fallbacks": ["chaos2"]}), ("chaos2", "chaos@2", 0.8, {}),
        ("steady", "ok@steady", 0.5, {})]]
    return {"models": models, "log": {"path": str(log)},
            "routers": [{"name": "switchman/auto", "cost_weight": 0}],
            "conversations": {"max_entries": 1000},
            "server": {"max_in_flight": 64},
            "reliability": {"timeouts": {"connect_s": 1, "first_byte_s": 1, "total_s": 3},
                            "retries": {"attempts": 2, "backoff_base_s": 0.02},
                            "breaker": {"window_s": 5, "cooldown_s": 1}}}


def check(status: int, text: str, stream: bool) -> str:
    """Classify one response; fail on anything that is neither an answer nor a clear error."""
    if status != 200:
        err = json.loads(text)["error"]
        assert err["code"] in ERROR_CODES and err["message"], text
        return f"error {status} {err['code']}"
    if not stream:
        content = json.loads(text)["choices"][0]["message"]["content"]
        assert content.startswith("answer from "), text
        return "answer"
    events = sse_events(text)
    if events and events[-1] == "[DONE]":
        words = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1]
                        if e.get("choices"))
        assert words.startswith("answer from "), text
        return "answer"
    assert "[DONE]" not in events, text
    assert events[-1]["error"]["code"] == "upstream_failed_mid_stream", text
    return "stream error event"


async def drive(url: str, seconds: float, marks: dict[str, Any], pid: int) -> list[str]:
    ids: list[str] = []
    outcomes: Counter[str] = Counter()
    rng = random.Random(1)
    end = time.monotonic() + seconds
    warm = time.monotonic() + seconds * 0.25

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < end:
            stream = rng.random() < 0.5
            prefs: dict[str, Any] = {}
            model = rng.choice(["switchman/auto", "chaos1", "chaos2"])
            if rng.random() < 0.2:
                prefs = {"fallback": False}
            body = {"model": model, "stream": stream, "switchman": prefs,
                    "messages": [{"role": "user", "content": f"q{rng.randrange(50)}"}]}
            async with session.post(url, json=body) as r:
                text = await r.text()
                ids.append(r.headers["x-switchman-request-id"])
                outcomes[check(r.status, text, stream)] += 1
            if "warm_rss" not in marks and time.monotonic() > warm:
                marks["warm_rss"] = rss_mb(pid)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    marks["outcomes"] = outcomes
    return ids


@pytest.mark.soak
def test_soak_with_random_faults(fault_upstream: FaultServer, tmp_path: Path) -> None:
    fault_upstream.reset()
    log = tmp_path / "soak.sqlite"
    config = tmp_path / "soak.yaml"
    config.write_text(yaml.safe_dump(soak_config(fault_upstream.url, log)))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "switchman.gateway", "serve", "--config",
                             str(config), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        marks: dict[str, Any] = {}
        ids = asyncio.run(drive(f"{base}/v1/chat/completions", SECONDS, marks, proc.pid))
        end_rss = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)  # graceful: the decision log is flushed on the way
        proc.wait(30)
    outcomes = marks["outcomes"]
    print(f"\nsoak: {len(ids)} requests in {SECONDS:.0f}s, {dict(outcomes)}; RSS after "
          f"warm-up {marks['warm_rss']:.1f} MB, at end {end_rss:.1f} MB")
    assert len(ids) == len(set(ids)) and len(ids) > 20 * SECONDS
    assert outcomes["answer"] > 0.7 * len(ids)
    with sqlite3.connect(log) as conn:
        logged = Counter(r[0] for r in conn.execute("SELECT request_id FROM decisions"))
    assert set(logged) == set(ids) and sum(logged.values()) == len(ids)
    assert end_rss - marks["warm_rss"] < 30, "gateway memory grew under steady load"


def test_serve_tunes_the_garbage_collector_for_a_server() -> None:
    # In a fresh interpreter: freezing the collector would leak into this test process. The
    # soak test above runs `serve` with this tuning and holds its memory flat.
    probe = ("import gc; from switchman.gateway.commands import _collect_garbage_less_often; "
             "before = gc.get_freeze_count(); _collect_garbage_less_often(); "
             "print(before, gc.get_freeze_count(), *gc.get_threshold())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    before, frozen, young, *_ = map(int, out)
    assert before == 0 and frozen > 1000  # start-up objects are out of the collector's way
    assert young == 20_000
