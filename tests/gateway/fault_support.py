"""Helpers of the fault tests: the fault upstream process, its pool, log rows, SSE parsing."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from switchman.gateway.execute.local import free_port

HERE = Path(__file__).parent


class FaultServer:
    """tests/gateway/fault_upstream.py in a process of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> FaultServer:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "fault_upstream.py"),
                                      "--port", str(self.port)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError("fault upstream exited during start-up")
            time.sleep(0.1)
        raise TimeoutError("fault upstream did not start")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)

    def script(self, model: str, *behaviours: str) -> None:
        httpx.post(f"{self.url}/control", json={"model": model, "script": list(behaviours)},
                   timeout=5).raise_for_status()

    def calls(self, model: str) -> int:
        return int(httpx.get(f"{self.url}/stats", timeout=5).json().get(model, 0))

    def reset(self) -> None:
        httpx.post(f"{self.url}/reset", timeout=5).raise_for_status()


def fault_config(upstream_url: str, log_path: Path, **reliability: Any) -> dict[str, Any]:
    """primary -> (pinned fallback) backup; solo has no fallback; all behave as scripted."""
    v1 = f"{upstream_url}/v1"

    def model(name: str, prior: float, **kw: Any) -> dict[str, Any]:
        return {"name": name, "endpoint": v1, "upstream_model": f"ok@{name}",
                "quality_prior": prior, "capabilities": ["streaming"], **kw}

    rel: dict[str, Any] = {
        "timeouts": {"connect_s": 1, "first_byte_s": 0.5, "total_s": 3},
        "retries": {"attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05,
                    "retry_after_max_s": 1},
        "breaker": {"enabled": False}}
    for key, value in reliability.items():
        rel[key] = {**rel.get(key, {}), **value} if isinstance(value, dict) else value
    return {
        "models": [model("primary", 0.9, fallbacks=["backup"]), model("backup", 0.5),
                   model("solo", 0.7), model("third", 0.3)],
        "routers": [{"name": "test/chain", "models": ["primary", "backup", "third"],
                     "cost_weight": 0}],
        "log": {"path": str(log_path)},
        "reliability": rel,
    }


def log_rows(gw: Any, request_id: str) -> list[dict[str, Any]]:
    """Every decision-log row of a request (the tests expect exactly one)."""
    for _ in range(50):
        gw.log.flush()
        with sqlite3.connect(gw.log.path) as conn:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute(
                "SELECT * FROM decisions WHERE request_id = ?", (request_id,))]
        if rows:
            for row in rows:
                for key in ("plan", "tried", "errors"):
                    row[key] = json.loads(row[key])
            return rows
        time.sleep(0.05)
    return []


def sse_events(text: str) -> list[Any]:
    """The data of each SSE event ("[DONE]" kept as a string)."""
    events = []
    for block in text.strip().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events
