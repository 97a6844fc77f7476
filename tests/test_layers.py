"""The layer contracts of pyproject.toml hold, and they do catch an upward import.

import-linter reads the installed package through ``sys.path``; the second test runs it on
a copy of the source in which one low module imports a high one, and expects it to fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache", str(root / "pyproject.toml")], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "switchman", tmp_path / "switchman",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    policy = tmp_path / "switchman" / "policy.py"
    policy.write_text(policy.read_text() + "\n\ndef _upward():\n"
                      "    from switchman.router import Router\n    return Router\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "switchman.policy -> switchman.router" in result.stdout
