"""Fixtures the CLI-level test modules share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's shared switchman cache: the encoder is built and prompts are embedded
    once for every module that uses it (modules that need a cache of their own define
    their own ``cache_dir``)."""
    path = tmp_path_factory.getbasetemp() / "switchman-cache"
    path.mkdir(exist_ok=True)
    return path
