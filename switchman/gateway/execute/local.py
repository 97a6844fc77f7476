"""A llama.cpp server process that lives and dies with switchman.

``python -m llama_cpp.server`` already speaks the OpenAI API, so a local model is just an
OpenAI-compatible upstream whose process we own: listen on its port, start it, wait until it
answers ``/v1/models`` as the model we asked for, and stop it (TERM, then KILL) when the
gateway stops. On Linux the child also gets SIGTERM if switchman dies without cleaning up,
so no orphan keeps the port.

The port is bound here, by switchman, and the listening socket is handed to the child
(``llama_cpp.server`` runs under uvicorn on that socket). So a pinned port that is taken (by
another gateway's local model, say) is a clear error before anything starts, an unpinned
port is free and stays ours (no window between choosing it and the child binding it), and
what answers on the port can only be the child: without this, a child that died on a taken
port left the gateway talking to whichever process held it.
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

#: What ``python -m llama_cpp.server`` imports beyond llama_cpp (its ``[server]`` extra).
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "pydantic_settings", "sse_starlette",
                  "starlette_context", "yaml")

#: Every GGUF file starts with these bytes; anything else makes llama.cpp exit at load.
GGUF_MAGIC = b"GGUF"

#: Environment variable naming the inherited listening socket's file descriptor.
LISTEN_FD_ENV = "SWITCHMAN_LISTEN_FD"

#: Runs ``llama_cpp.server``'s own command line, but serves on the inherited socket
#: instead of binding ``--host``/``--port`` itself (those still name it in its logs).
_LAUNCHER = """\
import os, runpy, socket, sys
import uvicorn
sock = socket.socket(fileno=int(os.environ.pop("SWITCHMAN_LISTEN_FD")))
def run(app, host=None, port=None, **kwargs):
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, **kwargs)).run(sockets=[sock])
uvicorn.run = run
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


class LocalModelError(RuntimeError):
    """A local model that cannot start: the message says which and why."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 = a free port); raises ``OSError``.

    ``SO_REUSEADDR`` as uvicorn sets it: a port left in TIME_WAIT by a gateway that just
    stopped is reusable, a port another process listens on is not.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def listen_problem(host: str, port: int) -> str | None:
    """Why nothing could listen on ``host:port`` right now, or ``None`` if it could."""
    try:
        listen(host, port).close()
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def missing_modules() -> list[str]:
    """Modules ``llama_cpp.server`` needs that this interpreter lacks (none imported)."""
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def gguf_problem(path: Path) -> str | None:
    """Why ``path`` is not a loadable GGUF file (missing, unreadable, not GGUF), or None."""
    if not path.is_file():
        return f"no file at {path}"
    try:
        with path.open("rb") as f:
            magic = f.read(len(GGUF_MAGIC))
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if magic != GGUF_MAGIC:
        return f"{path} is not a GGUF file (it does not start with {GGUF_MAGIC!r})"
    return None


def local_problems(config: LocalModelConfig, where: str) -> list[str]:
    """What would stop this local model from starting, found without starting it."""
    problems = []
    missing = missing_modules()
    if missing:
        problems.append(f"{where}: needs llama-cpp-python[server] (missing {', '.join(missing)})"
                        ": pip install 'switchman[local]'")
    if config.gguf:
        problem = gguf_problem(Path(config.gguf).expanduser())
        if problem:
            problems.append(f"{where}.gguf: {problem}")
    else:
        from switchman.gateway.defaults import find_smollm2_gguf

        try:
            find_smollm2_gguf()
        except FileNotFoundError as exc:
            problems.append(f"{where}.gguf: null means the bundled SmolLM2, but {exc}")
    return problems


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
        """The child's command line: llama_cpp.server's options, run by the launcher."""
        cfg = self.config
        cmd = [self.python, "-c", _LAUNCHER, "--model", str(self.gguf_path()),
               "--host", self.host, "--port", str(self.port), "--n_threads", str(cfg.n_threads),
               "--n_ctx", str(cfg.n_ctx), "--model_alias", cfg.name, "--verbose", "False"]
        if cfg.chat_format:
            cmd += ["--chat_format", cfg.chat_format]
        return cmd

    def _listen(self) -> socket.socket:
        pinned = self.config.port
        try:
            return listen(self.host, pinned or 0)
        except OSError as exc:
            why = exc.strerror or str(exc)
            hint = (" (another process holds it, perhaps another gateway's local model: stop "
                    "it, pin another local port, or leave port null for a free one)"
                    if pinned else "")
            raise LocalModelError(f"local model {self.config.name!r}: cannot listen on "
                                  f"{self.host}:{pinned or 0}: {why}{hint}") from None

    def start(self) -> str:
        """Launch the server and block until it serves; returns its ``/v1`` base URL."""
        if self._process is not None:
            return self.endpoint
        if self.python == sys.executable and missing_modules():
            raise LocalModelError(f"local model {self.config.name!r} needs "
                                  "llama-cpp-python[server]: pip install 'switchman[local]'")
        gguf = self.gguf_path()
        sock = self._listen()
        try:
            self.port = int(sock.getsockname()[1])
            cmd = self.command()
            self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as the process)
                prefix=f"switchman-{self.config.name}-", suffix=".log", delete=False)
            logger.info("starting local model %s on %s:%d: llama_cpp.server --model %s",
                        self.config.name, self.host, self.port, gguf)
            self._process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                env={**os.environ, LISTEN_FD_ENV: str(sock.fileno())},
                pass_fds=(sock.fileno(),),
                preexec_fn=_die_with_parent if os.name == "posix" else None)  # noqa: PLW1509
        finally:
            sock.close()  # the child has its copy: the port lives exactly as long as it does
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
                    code = None if self._process is None else self._process.returncode
                    raise LocalModelError(f"local model {self.config.name!r} exited during "
                                          f"start-up (exit code {code}):\n{self.why_failed()}")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    response = client.get(url)
                    if response.status_code == 200:
                        self._check_identity(response.json())
                        return
                time.sleep(0.2)
        raise TimeoutError(f"local model {self.config.name!r} not ready after "
                           f"{self.config.startup_timeout_s:g}s:\n{self.log_tail()}")

    def _check_identity(self, listing: object) -> None:
        """The answer must come from a server of this model (its ``--model_alias``)."""
        data = listing.get("data") if isinstance(listing, dict) else None
        ids = [m.get("id") for m in data if isinstance(m, dict)] if isinstance(data, list) \
            else []
        if self.config.name not in ids:
            raise LocalModelError(f"local model {self.config.name!r}: the server on "
                                  f"{self.host}:{self.port} answers as "
                                  f"{repr(ids or listing)[:200]}, not as this model")

    def alive(self) -> bool:
        """Process running (no I/O: cheap enough for every /healthz)."""
        return self._process is not None and self._process.poll() is None

    def why_failed(self) -> str:
        """The end of the process's log, as the reason it failed: a Python traceback's last
        line (the exception) is the reason; its frames are llama_cpp's, not the operator's."""
        whole = self.log_tail(lines=10_000)
        if "Traceback (most recent call last):" in whole:
            return whole.strip().splitlines()[-1]
        return self.log_tail()

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
