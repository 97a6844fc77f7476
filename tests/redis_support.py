"""A real redis-server on 127.0.0.1 for tests: started on a free port, no persistence,
stopped afterwards. Tests that need it skip only where the binary is missing (CI's set-up
installs Debian's redis-server)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """The URL of a fresh redis-server; the process ends with the context."""
    binary = shutil.which("redis-server")
    if binary is None:
        import pytest

        pytest.skip("redis-server is not installed (scripts/bootstrap.sh installs it)")
    with running_redis(binary) as url:
        yield url


@contextlib.contextmanager
def running_redis(binary: str) -> Iterator[str]:
    """``binary`` serving on a free loopback port without persistence, until the context
    ends (also what benchmarks/gateway_learning.py runs)."""
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
