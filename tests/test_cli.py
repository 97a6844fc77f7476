"""The `switchman` command as a user runs it: a subprocess on small slices of real data.

Every run shares one SWITCHMAN_CACHE_DIR for the test session (the same directory as
tests/test_router.py), warmed in-process first, so the ONNX export and the embeddings happen
once. Most runs use the cheap `knn` / `prior` routers; the default router is trained once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from cli_run import ok as _ok  # noqa: E402
from cli_run import one_error_line as _one_error_line  # noqa: E402
from cli_run import switchman  # noqa: E402
from shared_data import ROUTING, requires_routing_data, sample_prompts  # noqa: E402

from switchman.data import to_matrices  # noqa: E402
from switchman.encoders import default_encoder  # noqa: E402
from switchman.router import Router  # noqa: E402

DECISION_COLUMNS = {"point", "cost_weight", "prompt_id", "model"}

pytestmark = requires_routing_data


def _first(path: Path, n: int, skip: int = 0) -> pd.DataFrame:
    df = pd.read_parquet(path)
    keep = set(df["prompt_id"].drop_duplicates().iloc[skip : skip + n])
    return df[df["prompt_id"].isin(keep)].reset_index(drop=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[str, Path]:
    """Small slices on disk, their prompts embedded once into the shared cache."""
    d = tmp_path_factory.mktemp("cli-data")
    bench = sample_prompts(ROUTING / "routerbench.parquet", 200)
    ids = bench["prompt_id"].drop_duplicates()
    is_train = bench["prompt_id"].isin(set(ids.iloc[:150]))
    tables = {
        "bench_train": bench[is_train],
        "bench_test": bench[~is_train],
        "llm_train": _first(ROUTING / "llmrouter.parquet", 120),
        "llm_test": _first(ROUTING / "llmrouter.parquet", 40, skip=120),
    }
    out = {}
    for name, table in tables.items():
        out[name] = d / f"{name}.parquet"
        table.reset_index(drop=True).to_parquet(out[name], index=False)
    prompts = bench[~is_train].drop_duplicates("prompt_id")[["prompt_id", "prompt"]]
    out["bench_prompts"] = d / "bench_prompts.parquet"
    prompts.to_parquet(out["bench_prompts"], index=False)
    default_encoder(cache_dir).encode(["warm up"])  # builds the encoder once for the session
    return out


@pytest.fixture(scope="module")
def knn_router(files: dict[str, Path], cache_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("knn") / "router"
    _ok(switchman(cache_dir, out.parent, "train", "--data", files["bench_train"],
                  "--router", "knn", "--out", out))
    return out


@pytest.fixture(scope="module")
def default_router(files: dict[str, Path], cache_dir: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("default") / "router"
    _ok(switchman(cache_dir, out.parent, "train", "--data", files["bench_train"], "--out", out))
    return out


def _observed(decisions: pd.DataFrame, outcomes: Path) -> pd.DataFrame:
    """Each decision joined with the test table's observed quality and cost."""
    table = pd.read_parquet(outcomes, columns=["prompt_id", "model", "quality", "cost_usd"])
    merged = decisions.merge(table, on=["prompt_id", "model"], how="left", validate="m:1")
    assert merged["cost_usd"].notna().all()
    return merged


# --------------------------------------------------------------------------- train / route


def test_train_writes_a_router(knn_router: Path, default_router: Path) -> None:
    for d in (knn_router, default_router):
        assert sorted(p.name for p in d.iterdir()) == ["arrays.npz", "router.json",
                                                       "training_prompts.parquet"]
    assert json.loads((knn_router / "router.json").read_text())["estimator"]["kind"] == "knn"
    config = json.loads((default_router / "router.json").read_text())
    assert config["estimator"]["kind"] == "stacking" and config["name"] == "default"


def test_train_with_the_contextual_encoder_records_it(files: dict[str, Path], cache_dir: Path,
                                                     tmp_path: Path) -> None:
    """--encoder picks the contextual MiniLM; route then embeds with the same encoder."""
    out = tmp_path / "router"
    _ok(switchman(cache_dir, tmp_path, "train", "--data", files["bench_train"], "--router",
                  "task", "--encoder", "minilm-l6-int8-v1-128-32", "--out", out))
    assert json.loads((out / "router.json").read_text())["encoder"] == "minilm-l6-int8-v1-128-32"
    _ok(switchman(cache_dir, tmp_path, "route", "--router", out, "--prompts",
                  files["bench_prompts"], "--out", tmp_path / "d.parquet"))
    assert len(pd.read_parquet(tmp_path / "d.parquet")) > 0
    assert (cache_dir / "embeddings.sqlite").is_file()  # the contextual encoder is cached


def test_train_with_an_unknown_encoder_is_a_clear_error(files: dict[str, Path], cache_dir: Path,
                                                        tmp_path: Path) -> None:
    result = switchman(cache_dir, tmp_path, "train", "--data", files["bench_train"],
                       "--encoder", "bert-huge", "--out", tmp_path / "r")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown encoder 'bert-huge'" in result.stderr
    assert "minilm-l6-static-v2" in result.stderr  # names the ones that exist
    assert not (tmp_path / "r").exists()


def test_route_default_sweep(default_router: Path, files: dict[str, Path], cache_dir: Path,
                             tmp_path: Path) -> None:
    out = tmp_path / "out" / "decisions.parquet"  # parent directory does not exist yet
    _ok(switchman(cache_dir, tmp_path, "route", "--router", default_router,
                  "--prompts", files["bench_prompts"], "--out", out))
    decisions = pd.read_parquet(out)
    assert set(decisions.columns) >= DECISION_COLUMNS
    assert set(decisions.columns) <= DECISION_COLUMNS | {"models_called"}
    prompts = pd.read_parquet(files["bench_prompts"])
    n_points = decisions["point"].nunique()
    assert n_points >= 20
    assert sorted(decisions["point"].unique()) == list(range(n_points))
    assert len(decisions) == n_points * len(prompts)
    for _, group in decisions.groupby("point"):
        assert sorted(group["prompt_id"]) == sorted(prompts["prompt_id"])
    weights = decisions.groupby("point")["cost_weight"].agg(["min", "max"])
    assert (weights["min"] == weights["max"]).all()  # one weight per point
    assert np.all(np.diff(weights["min"].to_numpy()) <= 0) and weights["min"].iloc[-1] == 0
    router = Router.load(default_router, encoder=default_encoder(cache_dir))
    assert set(decisions["model"]) <= set(router.models)

    observed = _observed(decisions, files["bench_test"])
    by_point = observed.groupby("point")[["cost_usd", "quality"]].mean()
    assert by_point["cost_usd"].iloc[0] < by_point["cost_usd"].iloc[-1]
    assert by_point["quality"].iloc[0] <= by_point["quality"].iloc[-1]

    # The ends of the sweep are what the router predicts: cheapest, then best quality.
    est = router.estimate(prompts["prompt"].tolist())
    models = np.asarray(est.models, dtype=object)
    first = decisions[decisions["point"] == 0].set_index("prompt_id").loc[prompts["prompt_id"]]
    last = decisions[decisions["point"] == n_points - 1].set_index("prompt_id").loc[
        prompts["prompt_id"]]
    assert (first["model"].to_numpy() == models[np.argmin(est.cost, axis=1)]).all()
    best = np.argmax(est.quality - 1e-6 * est.cost, axis=1)
    assert (last["model"].to_numpy() == models[best]).all()


def test_route_points_option(knn_router: Path, files: dict[str, Path], cache_dir: Path,
                             tmp_path: Path) -> None:
    out = tmp_path / "decisions.parquet"
    # the outcomes table works as a prompts file: its other columns are ignored
    _ok(switchman(cache_dir, tmp_path, "route", "--router", knn_router,
                  "--prompts", files["bench_test"], "--out", out, "--points", "5"))
    decisions = pd.read_parquet(out)
    assert sorted(decisions["point"].unique()) == [0, 1, 2, 3, 4]
    n_prompts = pd.read_parquet(files["bench_prompts"]).shape[0]
    assert decisions.groupby("point")["prompt_id"].nunique().tolist() == [n_prompts] * 5
    assert len(decisions) == 5 * n_prompts
    by_point = _observed(decisions, files["bench_test"]).groupby("point")["cost_usd"].mean()
    assert by_point.iloc[0] < by_point.iloc[-1]


def test_route_writes_csv_and_jsonl_by_suffix(knn_router: Path, files: dict[str, Path],
                                              cache_dir: Path, tmp_path: Path) -> None:
    for name in ("decisions.parquet", "decisions.csv", "decisions.jsonl"):
        _ok(switchman(cache_dir, tmp_path, "route", "--router", knn_router,
                      "--prompts", files["bench_prompts"], "--out", tmp_path / name,
                      "--points", "3"))
    tables = {
        "parquet": pd.read_parquet(tmp_path / "decisions.parquet"),
        "csv": pd.read_csv(tmp_path / "decisions.csv", dtype={"prompt_id": str}),
        "jsonl": pd.read_json(tmp_path / "decisions.jsonl", lines=True,
                              dtype={"prompt_id": str}),
    }
    columns = ["point", "prompt_id", "model"]
    for name in ("csv", "jsonl"):
        pd.testing.assert_frame_equal(tables[name][columns], tables["parquet"][columns])
        np.testing.assert_allclose(tables[name]["cost_weight"], tables["parquet"]["cost_weight"])


def test_error_route_output_suffix(knn_router: Path, files: dict[str, Path], cache_dir: Path,
                                   tmp_path: Path) -> None:
    out = tmp_path / "decisions.xlsx"
    result = switchman(cache_dir, tmp_path, "route", "--router", knn_router,
                       "--prompts", files["bench_prompts"], "--out", out)
    _one_error_line(result, str(out), "unsupported output format '.xlsx'")
    assert not out.exists()


# --------------------------------------------------------------------------- eval


def test_eval_writes_the_report(files: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = _ok(switchman(cache_dir, tmp_path, "eval", "--train", files["llm_train"],
                           "--test", files["llm_test"], "--router", "knn", "--router", "prior",
                           "--out", out, "--points", "21"))
    assert {p.name for p in out.iterdir()} >= {"summary.json", "decisions.parquet",
                                              "cost_quality.png", "report.html"}
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["routers"]) == {"knn", "prior"}
    for row in summary["routers"].values():
        assert 0 <= row["aiq"] <= 1 and 0 <= row["max_quality"] <= 1
    test = to_matrices(pd.read_parquet(files["llm_test"]))
    best = int(np.argmax(test.quality.mean(axis=0)))
    assert summary["best_single"]["model"] == test.models[best]
    assert summary["best_single"]["quality"] == pytest.approx(test.quality.mean(axis=0)[best])
    assert summary["oracle"]["quality"] == pytest.approx(test.quality.max(axis=1).mean())
    assert summary["n_prompts"] == test.n_prompts == 40

    decisions = pd.read_parquet(out / "decisions.parquet")
    assert set(decisions["router"]) == {"knn", "prior"}
    assert set(decisions.columns) >= DECISION_COLUMNS
    assert decisions.groupby("router")["point"].nunique().tolist() == [21, 21]
    assert (out / "cost_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert "<table" in html and "cost_quality.png" in html and "knn" in html

    table = result.stdout
    for word in ("knn", "prior", "best single", "oracle", summary["best_single"]["model"]):
        assert word in table


# --------------------------------------------------------------------------- errors


def test_error_missing_data_file(cache_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-outcomes.parquet"
    result = switchman(cache_dir, tmp_path, "train", "--data", missing, "--out", tmp_path / "r")
    _one_error_line(result, str(missing))
    assert not (tmp_path / "r").exists()


def test_error_prompts_file_without_prompt_column(knn_router: Path, cache_dir: Path,
                                                  tmp_path: Path) -> None:
    bad = tmp_path / "prompts.parquet"
    pd.DataFrame({"prompt_id": ["a", "b"], "text": ["hi", "there"]}).to_parquet(bad)
    out = tmp_path / "decisions.parquet"
    result = switchman(cache_dir, tmp_path, "route", "--router", knn_router, "--prompts", bad,
                       "--out", out)
    line = _one_error_line(result, str(bad), "missing column")
    assert "'prompt'" in line
    assert not out.exists()


def test_error_router_directory_missing(files: dict[str, Path], cache_dir: Path,
                                        tmp_path: Path) -> None:
    missing = tmp_path / "no-router-here"
    out = tmp_path / "decisions.parquet"
    result = switchman(cache_dir, tmp_path, "route", "--router", missing,
                       "--prompts", files["bench_prompts"], "--out", out)
    _one_error_line(result, str(missing), "no such router directory")
    assert not out.exists()


@pytest.mark.parametrize(
    ("shrink", "expected"),
    [
        (lambda t: t[t["prompt_id"].isin(t["prompt_id"].unique()[:4])],
         "4 prompt(s); training needs at least 5"),
        (lambda t: t[t["model"] == t["model"].min()],
         "1 model (codegemma-7b); a router needs outcomes of at least 2 models"),
    ],
    ids=["too-few-prompts", "one-model"],
)
def test_error_table_too_small_to_train(shrink, expected: str,  # noqa: ANN001 - a lambda
                                        files: dict[str, Path], cache_dir: Path,
                                        tmp_path: Path) -> None:
    small = tmp_path / "small.parquet"
    shrink(pd.read_parquet(files["llm_test"])).to_parquet(small, index=False)
    for command in (["train", "--data", small, "--out", tmp_path / "r"],
                    ["eval", "--train", small, "--test", files["llm_test"],
                     "--out", tmp_path / "report"]):
        _one_error_line(switchman(cache_dir, tmp_path, *command), str(small), expected)
    assert not (tmp_path / "r").exists() and not (tmp_path / "report").exists()


def test_error_out_is_a_file(files: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    for command, kind in ((["train", "--data", files["llm_test"]], "router"),
                          (["eval", "--train", files["llm_test"], "--test", files["llm_test"]],
                           "report")):
        result = switchman(cache_dir, tmp_path, *command, "--router", "prior", "--out", taken)
        _one_error_line(result, str(taken), f"is a file; --out names the {kind}'s directory")
    assert taken.read_text() == "not a directory"


def test_error_quality_out_of_range(files: dict[str, Path], cache_dir: Path,
                                    tmp_path: Path) -> None:
    table = pd.read_parquet(files["llm_test"])
    table.loc[7, "quality"] = 1.5
    bad = tmp_path / "outcomes.parquet"
    table.to_parquet(bad, index=False)
    result = switchman(cache_dir, tmp_path, "train", "--data", bad, "--router", "prior",
                       "--out", tmp_path / "r")
    _one_error_line(result, str(bad), "row 8", "quality 1.5 is outside [0, 1]")
    assert not (tmp_path / "r").exists()


def test_error_corrupted_router(knn_router: Path, files: dict[str, Path], cache_dir: Path,
                                tmp_path: Path) -> None:
    broken = tmp_path / "router"
    broken.mkdir()
    (broken / "router.json").write_bytes((knn_router / "router.json").read_bytes())
    data = (knn_router / "arrays.npz").read_bytes()
    (broken / "arrays.npz").write_bytes(data[: len(data) // 2])
    result = switchman(cache_dir, tmp_path, "route", "--router", broken,
                       "--prompts", files["bench_prompts"], "--out", tmp_path / "d.parquet")
    _one_error_line(result, str(broken), "arrays.npz")
