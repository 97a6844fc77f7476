"""Running the `switchman` command as a user does, for the CLI tests: a subprocess, and the
checks every run's outcome gets (success without a traceback, or one clear error line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def switchman(cache_dir: Path, cwd: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """``python -m switchman.cli ARGS`` in ``cwd``, with the tests' shared encoder cache."""
    env = dict(os.environ, SWITCHMAN_CACHE_DIR=str(cache_dir))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "switchman.cli", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The run failed with exit code 2 and ended on one ``switchman: error:`` line that
    holds every needle."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("switchman: error:")]
    assert len(lines) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
