"""The report files exist, the PNG is a PNG and the HTML names everything (escaped)."""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path

import numpy as np

from switchman.eval.breakdown import by_task, model_shares, operating_points
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


def _with_breakdowns() -> tuple[dict, dict, dict, tuple[float, float]]:
    """The inputs above, plus what eval adds: a serve point, shares, tasks and the run."""
    summary, curves, singles, oracle = _inputs()
    weights = np.array([2.0, 0.5, 0.0])
    picks = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 1]])
    serve = np.array([0, 1, 0, 1])
    summary["serve"] = {"knn<k=5>": {
        "cost_weight": 0.75, "cost": 0.00105, "quality": 0.75,
        "cost_ratio_to_best_single": 0.525, "quality_minus_best_single": 0.0,
        "shares": model_shares(serve, MODELS)}}
    summary["operating_points"] = {"knn<k=5>": operating_points(QUALITY, COST, weights, picks,
                                                                MODELS)}
    summary["by_task"] = by_task(QUALITY, COST, TASKS, {"knn<k=5> (serve)": serve})
    summary["models_evaluated"] = {"models": MODELS, "router_only": ["gone<1>"],
                                   "test_only": []}
    summary["run"] = {"switchman_version": "9.9", "seed": 7, "encoder": "enc<x>",
                      "data": {"test": {"path": "/d/t&t.parquet", "bytes": 12,
                                        "sha256": "ab" * 32}}}
    return summary, curves, singles, oracle


TASKS = np.array(["math", "code", "math", "code"])


def test_model_shares_and_operating_points() -> None:
    assert model_shares(np.array([0, 1, 1, 1]), MODELS) == {"small-7b": 0.25,
                                                            "big<model>&co": 0.75}
    rows = operating_points(QUALITY, COST, np.array([1.0, 0.0]),
                            np.array([[0, 0, 0, 0], [0, 1, 0, 1]]), MODELS)
    assert [r["point"] for r in rows] == [0, 1]
    assert rows[1]["quality"] == 0.75 and rows[1]["cost"] == (0.0001 + 0.002) / 2
    assert rows[1]["shares"] == {"small-7b": 0.5, "big<model>&co": 0.5}
    assert rows[0]["cost_weight"] == 1.0


def test_by_task_means_per_task_and_nothing_for_one_task() -> None:
    rows = by_task(QUALITY, COST, TASKS, {"a": np.array([0, 1, 0, 1]),
                                          "b": np.array([1, 1, 1, 1])})
    assert [r["task"] for r in rows] == ["code", "math"]
    code, math_ = rows
    assert code["n_prompts"] == 2 and code["a"] == {"quality": 1.0, "cost": 0.002}
    assert math_["a"] == {"quality": 0.5, "cost": 0.0001}
    assert math_["b"]["quality"] == 0.5 and code["b"]["quality"] == 1.0
    assert by_task(QUALITY, COST, np.array(["all"] * 4), {"a": np.zeros(4, int)}) == []


def test_report_shows_serve_point_tasks_shares_and_run(tmp_path: Path) -> None:
    summary, curves, singles, oracle = _with_breakdowns()
    page = write_report(summary, curves, singles, oracle, tmp_path, "run")["html"].read_text()
    for heading in ("Serve point", "By task", "Models chosen per operating point", "Run"):
        assert f"<h2>{heading}</h2>" in page
    assert "<td>serve</td><td>0.75</td>" in page  # the serve row of the shares table
    assert "<td>50%</td>" in page and "<td>100%</td>" in page
    assert "enc&lt;x&gt;" in page and "/d/t&amp;t.parquet" in page and "ab" * 32 in page
    assert "router models not in the test table: gone&lt;1&gt;" in page
    assert "<td>code</td><td>2</td>" in page
    text = format_table(summary)
    assert "serve point" in text and "0.75" in text.splitlines()[-1]
