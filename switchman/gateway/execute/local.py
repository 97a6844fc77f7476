"""A llama.cpp server process that lives and dies with switchman.

``python -m llama_cpp.server`` already speaks the OpenAI API, so a local model is just an
OpenAI-compatible upstream whose process we own: start it on a free port, wait until it
answers ``/v1/models``, and stop it (TERM, then KILL) when the gateway stops. On Linux the
child also gets SIGTERM if switchman dies without cleaning up, so no orphan keeps the port.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from switchman.config import LocalModelConfig

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalModelServer:
    """Start, health-check and stop one ``llama_cpp.server`` process."""

    def __init__(self, config: LocalModelConfig, host: str = "127.0.0.1",
                 python: str | None = None) -> None:
        self.config = config
        self.host = host
        self.python = python or sys.executable
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._log: tempfile._TemporaryFileWrapper | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError(f"local model {self.config.name!r} is not started")
        return f"http://{self.host}:{self.port}/v1"

    def gguf_path(self) -> Path:
        if self.config.gguf:
            path = Path(self.config.gguf).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"local[{self.config.name}].gguf: no file at {path}")
            return path
        from switchman.gateway.defaults import find_smollm2_gguf

        return find_smollm2_gguf()

    def command(self) -> list[str]:
        cfg = self.config
        cmd = [self.python, "-m", "llama_cpp.server", "--model", str(self.gguf_path()),
               "--host", self.host, "--port", str(self.port), "--n_threads", str(cfg.n_threads),
               "--n_ctx", str(cfg.n_ctx), "--model_alias", cfg.name, "--verbose", "False"]
        if cfg.chat_format:
            cmd += ["--chat_format", cfg.chat_format]
        return cmd

    def start(self) -> str:
        """Launch the server and block until it serves; returns its ``/v1`` base URL."""
        if self._process is not None:
            return self.endpoint
        if self.python == sys.executable and importlib.util.find_spec("llama_cpp") is None:
            raise RuntimeError(f"local model {self.config.name!r} needs llama-cpp-python[server]:"
                               " pip install 'switchman[local]'")
        self.port = self.config.port or free_port(self.host)
        cmd = self.command()
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the process)
            prefix=f"switchman-{self.config.name}-", suffix=".log", delete=False)
        logger.info("starting local model %s: %s", self.config.name, " ".join(cmd))
        self._process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if os.name == "posix" else None)  # noqa: PLW1509
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise
        logger.info("local model %s ready at %s", self.config.name, self.endpoint)
        return self.endpoint

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        url = f"{self.endpoint}/models"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    raise RuntimeError(f"local model {self.config.name!r} exited during start-up"
                                       f":\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                time.sleep(0.2)
        raise TimeoutError(f"local model {self.config.name!r} not ready after "
                           f"{self.config.startup_timeout_s:g}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        """Process running (no I/O: cheap enough for every /healthz)."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self._log is None:
            return ""
        try:
            return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            with contextlib.suppress(OSError):
                os.unlink(self._log.name)
            self._log = None

    def __enter__(self) -> LocalModelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
