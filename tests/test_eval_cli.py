"""`switchman eval` as a user runs it on a router they trained: --router-dir, --split, the serve
point, per-task figures and model shares, and `train`'s refusal to overwrite a router.

Small slices of real data (100 routerbench prompts, three tasks), one encoder cache for the
session as in tests/test_cli.py. The default router is trained once by the CLI; the figures of
`eval --router-dir` on it are compared with those of `eval --train` on the same data and seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from cli_run import ok, one_error_line, switchman  # noqa: E402
from shared_data import ROUTING, requires_routing_data, sample_prompts  # noqa: E402

from switchman import policy  # noqa: E402
from switchman.data import split_by_prompt, to_matrices  # noqa: E402
from switchman.encoders import default_encoder  # noqa: E402
from switchman.router import Router  # noqa: E402

pytestmark = requires_routing_data
SEED = 4


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[str, Path]:
    """A table, its seeded 70/30 split by prompt as eval --split makes it, and a test table
    whose models differ from the router's."""
    d = tmp_path_factory.mktemp("eval-data")
    table = sample_prompts(ROUTING / "routerbench.parquet", 100, seed=2)
    train, test = split_by_prompt(table, 0.3, seed=SEED)
    mixed = test[~test["model"].isin(["claude-1", "yi-34b-chat"])].copy()
    mixed.loc[mixed["model"] == "claude-2", "model"] = "a-new-release"
    stranger = test.assign(model=test["model"] + "-elsewhere")
    out = {}
    for name, frame in (("table", table), ("train", train), ("test", test), ("mixed", mixed),
                        ("stranger", stranger)):
        out[name] = d / f"{name}.parquet"
        frame.to_parquet(out[name], index=False)
    default_encoder(cache_dir).encode(["warm up"])
    return out


@pytest.fixture(scope="module")
def router_dir(files: dict[str, Path], cache_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "router"
    result = ok(switchman(cache_dir, out.parent, "train", "--data", files["train"], "--out", out,
                          "--seed", str(SEED)))
    assert "routing AIQ" in result.stderr and "out of fold" in result.stderr
    assert "higher is better" in result.stderr and "Default cost weight" in result.stderr
    return out


@pytest.fixture(scope="module")
def served(router_dir: Path, files: dict[str, Path], cache_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of eval --router-dir on the trained router."""
    out = tmp_path_factory.mktemp("served") / "report"
    ok(switchman(cache_dir, out.parent, "eval", "--router-dir", router_dir, "--test",
                 files["test"], "--out", out))
    return out


def _summary(report: Path) -> dict:
    return json.loads((report / "summary.json").read_text())


FIGURES = ("routers", "serve", "operating_points", "by_task", "best_single", "oracle",
           "single_frontier")


def test_router_dir_gives_the_figures_of_training_here(served: Path, files: dict[str, Path],
                                                      cache_dir: Path, tmp_path: Path) -> None:
    ok(switchman(cache_dir, tmp_path, "eval", "--train", files["train"], "--test", files["test"],
                 "--seed", str(SEED), "--out", tmp_path / "here"))
    ok(switchman(cache_dir, tmp_path, "eval", "--train", files["table"], "--split", "0.3",
                 "--seed", str(SEED), "--out", tmp_path / "split"))
    from_dir, here, split = (_summary(p) for p in (served, tmp_path / "here",
                                                   tmp_path / "split"))
    for key in FIGURES:
        assert from_dir[key] == here[key] == split[key], key
    decisions = [pd.read_parquet(p / "decisions.parquet")
                 for p in (served, tmp_path / "here", tmp_path / "split")]
    pd.testing.assert_frame_equal(decisions[0], decisions[1])
    pd.testing.assert_frame_equal(decisions[0], decisions[2])
    assert from_dir["run"]["router_dir"]["path"].endswith("router")
    assert split["run"]["split"] == 0.3 and split["run"]["seed"] == SEED


def test_split_is_deterministic_and_follows_the_seed(files: dict[str, Path], cache_dir: Path,
                                                     tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        ok(switchman(cache_dir, tmp_path, "eval", "--train", files["table"], "--split", "0.3",
                     "--seed", str(seed), "--router", "prior", "--out", tmp_path / name))
        runs[name] = pd.read_parquet(tmp_path / name / "decisions.parquet")
    pd.testing.assert_frame_equal(runs["a"], runs["b"])
    held_out = set(split_by_prompt(pd.read_parquet(files["table"]), 0.3, seed=1)[1]["prompt_id"])
    assert set(runs["a"]["prompt_id"]) == held_out
    assert set(runs["c"]["prompt_id"]) != held_out
    assert len(held_out) == 30


def test_serve_point_is_the_router_at_its_default_cost_weight(served: Path, router_dir: Path,
                                                             files: dict[str, Path],
                                                             cache_dir: Path) -> None:
    summary = _summary(served)
    router = Router.load(router_dir, encoder=default_encoder(cache_dir))
    test = to_matrices(pd.read_parquet(files["test"]))
    picks = policy.choose(router.estimate(test.prompts), router.default_cost_weight)
    rows = np.arange(test.n_prompts)
    serve = summary["serve"]["default"]
    assert serve["cost_weight"] == pytest.approx(router.default_cost_weight)
    assert serve["quality"] == pytest.approx(test.quality[rows, picks].mean())
    assert serve["cost"] == pytest.approx(test.cost[rows, picks].mean())
    counts = np.bincount(picks, minlength=len(test.models)) / test.n_prompts
    assert serve["shares"] == pytest.approx(dict(zip(test.models, counts, strict=True)))
    best = summary["best_single"]
    assert serve["quality_minus_best_single"] == pytest.approx(serve["quality"] - best["quality"])
    page = (served / "report.html").read_text()
    assert "Serve point" in page and f"{router.default_cost_weight:.4g}" in page
    assert "serve" in (served / "summary.json").read_text()

    # the per-task rows of the serve column are the same picks, prompt by prompt
    by_task = {row["task"]: row for row in summary["by_task"]}
    assert set(by_task) == set(test.tasks) and len(by_task) == 3
    best_j = test.models.index(best["model"])
    for task, row in by_task.items():
        mine = test.tasks == task
        assert row["n_prompts"] == int(mine.sum())
        assert row["default (serve)"]["quality"] == pytest.approx(
            test.quality[rows[mine], picks[mine]].mean())
        assert row["default (serve)"]["cost"] == pytest.approx(
            test.cost[rows[mine], picks[mine]].mean())
        assert row[f"best single: {best['model']}"]["quality"] == pytest.approx(
            test.quality[mine, best_j].mean())
        assert row["oracle"]["quality"] == pytest.approx(test.quality[mine].max(axis=1).mean())
    assert "By task" in page


def test_model_shares_per_operating_point_match_the_decisions(served: Path) -> None:
    summary = _summary(served)
    decisions = pd.read_parquet(served / "decisions.parquet")
    points = summary["operating_points"]["default"]
    assert [p["point"] for p in points] == sorted(decisions["point"].unique()) == list(range(41))
    models = summary["models"]
    for row in points:
        chosen = decisions[decisions["point"] == row["point"]]
        shares = chosen["model"].value_counts(normalize=True).reindex(models, fill_value=0.0)
        assert row["shares"] == pytest.approx(shares.to_dict())
        assert row["quality"] == pytest.approx(chosen["quality"].mean())
        assert row["cost"] == pytest.approx(chosen["cost_usd"].mean())
        assert row["cost_weight"] == pytest.approx(chosen["cost_weight"].iloc[0])
    assert set(decisions["task"]) == {row["task"] for row in summary["by_task"]}
    assert "Models chosen per operating point" in (served / "report.html").read_text()


def test_report_records_what_it_was_made_from(served: Path, files: dict[str, Path]) -> None:
    run = _summary(served)["run"]
    assert run["seed"] == SEED and run["encoder"] == "minilm-l6-static-v2"
    assert run["switchman_version"]
    record = run["data"]["test"]
    assert record["path"] == str(files["test"].resolve())
    assert record["bytes"] == files["test"].stat().st_size and len(record["sha256"]) == 64
    assert {"router.json", "arrays.npz"} <= set(run["router_dir"]["files"])
    page = (served / "report.html").read_text()
    assert record["sha256"] in page and "minilm-l6-static-v2" in page


def test_test_models_the_router_lacks_are_left_out_and_said(router_dir: Path,
                                                            files: dict[str, Path],
                                                            cache_dir: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "mixed"
    result = ok(switchman(cache_dir, tmp_path, "eval", "--router-dir", router_dir, "--test",
                          files["mixed"], "--out", out))
    assert "unknown to the router: a-new-release" in result.stderr
    assert "not in the test table: claude-1, claude-2, yi-34b-chat" in result.stderr
    summary = _summary(out)
    assert summary["models_evaluated"]["test_only"] == ["a-new-release"]
    assert summary["models_evaluated"]["router_only"] == ["claude-1", "claude-2", "yi-34b-chat"]
    assert len(summary["models"]) == 8 and "a-new-release" not in summary["models"]
    decisions = pd.read_parquet(out / "decisions.parquet")
    assert set(decisions["model"]) <= set(summary["models"])
    assert "a-new-release" in (out / "report.html").read_text()

    none = switchman(cache_dir, tmp_path, "eval", "--router-dir", router_dir, "--test",
                     files["stranger"], "--out", tmp_path / "none")
    one_error_line(none, "stranger.parquet", "none of its models", "nothing to evaluate")


@pytest.mark.parametrize(("extra", "needles"), [
    (["--split", "0.3"], ["--split", "not with --router-dir"]),
    (["--seed", "1"], ["--seed", "not with --router-dir"]),
    (["--router", "knn", "--encoder", "minilm-l6-static-v2"], ["--router, --encoder"]),
])
def test_router_dir_refuses_training_options(extra: list[str], needles: list[str],
                                             router_dir: Path, files: dict[str, Path],
                                             cache_dir: Path, tmp_path: Path) -> None:
    result = switchman(cache_dir, tmp_path, "eval", "--router-dir", router_dir, "--test",
                       files["test"], "--out", tmp_path / "r", *extra)
    one_error_line(result, *needles)
    assert not (tmp_path / "r").exists()


def test_bad_combinations_are_clear_errors(router_dir: Path, files: dict[str, Path],
                                          cache_dir: Path, tmp_path: Path) -> None:
    def run(*args: str | Path):  # noqa: ANN202 - a CompletedProcess
        return switchman(cache_dir, tmp_path, "eval", *args, "--out", tmp_path / "r")

    one_error_line(run("--router-dir", router_dir), "--test")
    one_error_line(run("--train", files["train"]), "--test", "--split")
    one_error_line(run("--train", files["train"], "--test", files["test"], "--split", "0.3"),
                   "exactly one of --test")
    one_error_line(run("--router-dir", tmp_path / "nowhere", "--test", files["test"]),
                   "nowhere", "no such router directory")
    for args, says in ((("--train", files["train"], "--router-dir", router_dir),
                        "not allowed with argument"),
                       (("--test", files["test"]), "one of the arguments --train --router-dir"),
                       (("--train", files["table"], "--split", "1.5"), "between 0 and 1")):
        result = run(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "switchman eval: error:" in result.stderr and says in result.stderr
    assert not (tmp_path / "r").exists()


def test_train_refuses_to_overwrite_a_router_unless_forced(files: dict[str, Path],
                                                         cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "router"
    ok(switchman(cache_dir, tmp_path, "train", "--data", files["train"], "--router", "prior",
                 "--out", out))
    before = (out / "router.json").read_text()
    refused = switchman(cache_dir, tmp_path, "train", "--data", files["train"], "--router", "knn",
                        "--out", out)
    one_error_line(refused, str(out), "already holds a router", "--force")
    assert (out / "router.json").read_text() == before
    ok(switchman(cache_dir, tmp_path, "train", "--data", files["train"], "--router", "knn",
                 "--out", out, "--force"))
    assert json.loads((out / "router.json").read_text())["name"] == "knn"
