"""`switchman serve --workers 2`: two processes accepting on one port, one decision log."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx
import yaml
from gateway_support import serve_process


def test_two_workers_answer_on_one_port_and_log_every_request(upstream, tmp_path: Path) -> None:
    log = tmp_path / "log.sqlite"
    config = tmp_path / "switchman.yaml"
    config.write_text(yaml.safe_dump({
        "models": [{"name": "mid", "endpoint": f"{upstream.url}/v1", "upstream_model": "mid-up",
                    "input_per_mtok": 1, "output_per_mtok": 2, "quality_prior": 0.6}],
        "log": {"path": str(log)}}))
    body = {"model": "mid", "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 8}

    async def burst(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body)
                                          for _ in range(60)))

    with serve_process(config, tmp_path / "serve.log", options=("--workers", "2")) as url:
        replies = asyncio.run(burst(url))
        started = (tmp_path / "serve.log").read_text()
    assert [r.status_code for r in replies] == [200] * 60
    assert {r.headers["x-switchman-model"] for r in replies} == {"mid"}
    assert "2 workers on 127.0.0.1:" in started
    ids = {r.json()["id"] for r in replies}
    deadline = time.monotonic() + 10  # each worker flushes its rows as it stops
    while time.monotonic() < deadline:
        with sqlite3.connect(log) as db:
            logged = {row[0] for row in db.execute("SELECT request_id FROM decisions")}
        if ids <= logged:
            break
        time.sleep(0.2)
    assert ids <= logged
