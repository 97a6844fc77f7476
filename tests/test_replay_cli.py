"""`switchman replay` as a user runs it: a subprocess on a small slice of real RouterBench data
(read from ../shared/data, written to a temporary directory, never committed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from switchman.learning.learner import OnlineLearner

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from shared_data import ROUTING, requires_routing_data, sample_prompts  # noqa: E402
from test_cli import _ok, switchman  # noqa: E402  (the subprocess runner test_cli uses)

COLUMNS = {"step", "prompt_id", "model", "cost_usd", "quality", "explored"}

pytestmark = requires_routing_data


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A knn router trained on 150 RouterBench prompts and a stream of 80 others."""
    d = tmp_path_factory.mktemp("replay")
    table = sample_prompts(ROUTING / "routerbench.parquet", 230, seed=7)
    ids = table["prompt_id"].drop_duplicates()
    train = table[table["prompt_id"].isin(set(ids.iloc[:150]))]
    stream = table[~table["prompt_id"].isin(set(ids.iloc[:150]))]
    paths = {"train": d / "train.parquet", "stream": d / "stream.parquet",
             "router": d / "router", "cache": d / "cache"}
    train.to_parquet(paths["train"], index=False)
    stream.to_parquet(paths["stream"], index=False)
    _ok(switchman(paths["cache"], d, "train", "--data", paths["train"], "--router", "knn",
                  "--out", paths["router"]))
    return paths


def _replay(setup: dict[str, Path], cwd: Path,
            *args: str | Path) -> subprocess.CompletedProcess:
    return switchman(setup["cache"], cwd, "replay", "--router", setup["router"], "--stream",
                     setup["stream"], *args)


def _decisions(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "decisions.parquet").sort_values("step")


def test_replay_learns_within_a_budget(setup: dict[str, Path], tmp_path: Path) -> None:
    stream = pd.read_parquet(setup["stream"])
    gpt4 = stream[stream["model"] == "gpt-4-1106-preview"]["cost_usd"].sum()
    budget = round(0.25 * gpt4, 6)
    out = tmp_path / "learn"
    result = _ok(_replay(setup, tmp_path, "--out", out, "--learn", "--budget-usd", budget))
    assert "mean quality" in result.stdout
    d = _decisions(out)
    assert set(d.columns) >= COLUMNS
    assert list(d["prompt_id"]) == list(dict.fromkeys(stream["prompt_id"]))  # file order
    assert d["cost_usd"].cumsum().max() <= budget  # at every step
    observed = stream.merge(d[["prompt_id", "model"]], on=["prompt_id", "model"])
    assert len(observed) == len(d)  # every decision's outcome is the stream's own
    pd.testing.assert_series_equal(
        observed.set_index("prompt_id")["quality"].loc[d["prompt_id"]].reset_index(drop=True),
        d["quality"].reset_index(drop=True), check_names=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["budget_usd"] == budget and summary["learn"] is True
    assert len(summary["quality_by_quarter"]) == 4
    assert summary["mean_quality"] == pytest.approx(d["quality"].mean())
    assert summary["total_cost"] == pytest.approx(d["cost_usd"].sum())
    assert {"no_learn", "best_single"} <= set(summary["baselines"])
    assert (out / "replay.png").stat().st_size > 0
    state = json.loads((out / "learner.json").read_text())
    assert OnlineLearner.from_state(state).models == state["models"] and state["models"]


def test_no_learn_is_the_offline_router(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "offline"
    _ok(_replay(setup, tmp_path, "--out", out, "--no-learn", "--cost-weight", "50"))
    d = _decisions(out)
    assert not d["explored"].any()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cost_weight"] == 50 and summary["learn"] is False
    assert summary["mean_quality"] == pytest.approx(
        summary["baselines"]["no_learn"]["mean_quality"])
    assert not (out / "learner.json").exists()


def test_models_restricts_the_choice(setup: dict[str, Path], tmp_path: Path) -> None:
    """Only the named models answer; a name the router lacks is warned about, not fatal."""
    out = tmp_path / "some"
    allowed = {"gpt-4-1106-preview", "gpt-3.5-turbo-1106"}
    result = _ok(_replay(setup, tmp_path, "--out", out, "--models",
                           "gpt-4-1106-preview,no-such-model,gpt-3.5-turbo-1106",
                           "--feedback-rate", "0.1", "--seed", "3"))
    assert "no-such-model" in result.stderr
    d = _decisions(out)
    assert set(d["model"]) <= allowed
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["feedback_steps"] < 0.3 * len(d)
    assert set(summary["models"]) == allowed


def test_replay_usage_errors_are_one_line(setup: dict[str, Path], tmp_path: Path) -> None:
    both = _replay(setup, tmp_path, "--out", tmp_path / "x", "--budget-usd", "1",
                     "--cost-weight", "2")
    assert both.returncode == 2 and "not allowed with" in both.stderr
    rate = _replay(setup, tmp_path, "--out", tmp_path / "x", "--feedback-rate", "2")
    assert rate.returncode == 2 and "between 0 and 1" in rate.stderr
    none = _replay(setup, tmp_path, "--out", tmp_path / "x", "--models", "nope")
    assert none.returncode == 2 and "Traceback" not in none.stderr
    assert "names none of the models" in none.stderr
