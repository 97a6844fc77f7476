"""The report files exist, the PNG is a PNG and the HTML names everything (escaped)."""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path

import numpy as np

from switchman.eval.metrics import oracle_point, single_model_points, summarize
from switchman.eval.report import format_table, write_report

MODELS = ["small-7b", "big<model>&co"]
QUALITY = np.array([[1, 1], [0, 1], [0, 0], [1, 1]], dtype=float)
COST = np.array([[0.0001, 0.002]] * 4)


def _inputs() -> tuple[dict, dict, dict, tuple[float, float]]:
    curves = {
        "knn<k=5>": [(0.0001, 0.5), (0.0006, 0.75), (0.002, 0.75)],
        "random": [(0.0001, 0.5), (0.00105, 0.625), (0.002, 0.75)],
    }
    shares = {"knn<k=5>": [0.0, 0.25, 1.0], "random": [0.0, 0.5, 1.0]}
    summary = summarize(QUALITY, COST, MODELS, curves, shares)
    singles = single_model_points(QUALITY, COST, MODELS)
    return summary, curves, singles, oracle_point(QUALITY, COST)


def test_write_report_files(tmp_path: Path) -> None:
    summary, curves, singles, oracle = _inputs()
    paths = write_report(summary, curves, singles, oracle, tmp_path / "out", "Test & <run>")
    assert set(paths) == {"png", "html"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths["html"].read_text(encoding="utf-8")
    for name in [*curves, *MODELS]:
        assert html.escape(name) in page
    assert "<model>" not in page and "<k=5>" not in page  # escaped, not markup
    assert "Test &amp; &lt;run&gt;" in page
    assert f'src="{paths["png"].name}"' in page
    assert "APGR" in page


def test_zero_cost_model_still_plots(tmp_path: Path) -> None:
    summary, curves, singles, oracle = _inputs()
    singles = {**singles, "free-local": (0.0, 0.3)}
    paths = write_report(summary, curves, singles, oracle, tmp_path, "zero cost")
    assert paths["png"].stat().st_size > 0


def test_format_table_lists_routers_and_baselines() -> None:
    summary, curves, _, _ = _inputs()
    text = format_table(summary)
    for name in curves:
        assert name in text
    assert "AIQ" in text and "q@0.25x" in text and "CPT(80%)" in text
    assert "best single: big<model>&co" in text and "oracle" in text


def test_format_table_marks_never() -> None:
    summary = summarize(QUALITY, COST, MODELS, {"weak-only": [(0.0001, 0.5)]})
    row = next(line for line in format_table(summary).splitlines() if "weak-only" in line)
    assert "never" in row
    assert "APGR" not in format_table(summary)  # no shares given


def test_import_has_no_matplotlib_side_effect() -> None:
    code = "import sys, switchman.eval; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
