"""Router on a small slice of real RouterBench data, with the real offline encoder.

The encoder's ONNX export and the embeddings are cached once per test session in a temporary
directory (shared with tests/test_cli.py through the session's base temp dir), so each
prompt is embedded once however many routers are trained on it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from blocked_imports import block_imports  # noqa: E402
from shared_data import ROUTING, requires_routing_data, sample_prompts  # noqa: E402

from switchman import policy  # noqa: E402
from switchman.data import load_prompts, to_matrices  # noqa: E402
from switchman.embed import Encoder  # noqa: E402
from switchman.encoders import default_encoder  # noqa: E402
from switchman.estimators import ROUTER_NAMES  # noqa: E402
from switchman.eval.sweep import sweep_decisions  # noqa: E402
from switchman.router import (  # noqa: E402
    FORMAT_VERSION,
    Router,
    RouterLoadError,
    _store_once,
    new_router,
)

pytestmark = requires_routing_data


def bench_slices() -> tuple[pd.DataFrame, pd.DataFrame]:
    """RouterBench: 150 training prompts and 50 others (x 11 models). Same in test_cli."""
    df = sample_prompts(ROUTING / "routerbench.parquet", 200)
    ids = df["prompt_id"].drop_duplicates()
    train_ids = set(ids.iloc[:150])
    return (df[df["prompt_id"].isin(train_ids)].reset_index(drop=True),
            df[~df["prompt_id"].isin(train_ids)].reset_index(drop=True))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One encoder cache for the session; SWITCHMAN_CACHE_DIR points at it."""
    path = tmp_path_factory.getbasetemp() / "switchman-cache"
    path.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWITCHMAN_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def encoder(cache_dir: Path) -> Encoder:
    return default_encoder(cache_dir)


@pytest.fixture(scope="module")
def slices() -> tuple[pd.DataFrame, pd.DataFrame]:
    return bench_slices()


@pytest.fixture(scope="module")
def test_prompts(slices: tuple[pd.DataFrame, pd.DataFrame]) -> list[str]:
    return to_matrices(slices[1]).prompts


@pytest.fixture(scope="module")
def default_router(slices: tuple[pd.DataFrame, pd.DataFrame], encoder: Encoder) -> Router:
    return new_router("default", encoder=encoder).fit(slices[0])


@pytest.fixture(scope="module")
def saved(default_router: Router, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return default_router.save(tmp_path_factory.mktemp("router") / "default")


def _copy(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "router"))


# --------------------------------------------------------------------------- save / load


def test_save_load_gives_identical_estimates(default_router: Router, saved: Path,
                                             test_prompts: list[str]) -> None:
    before = default_router.estimate(test_prompts)
    loaded = Router.load(saved)  # the encoder named in router.json, cache from the env
    after = loaded.estimate(test_prompts)
    assert loaded.models == default_router.models == before.models == after.models
    assert loaded.name == "default"
    assert loaded.default_cost_weight == default_router.default_cost_weight
    assert np.array_equal(before.quality, after.quality)
    assert np.array_equal(before.cost, after.cost)
    ids = [f"p{i}" for i in range(len(test_prompts))]
    pd.testing.assert_frame_equal(sweep_decisions(before, ids, 25),
                                  sweep_decisions(after, ids, 25))


@pytest.mark.parametrize("name", [n for n in ROUTER_NAMES if n != "default"])
def test_every_family_round_trips(name: str, default_router: Router, encoder: Encoder,
                                  slices: tuple[pd.DataFrame, pd.DataFrame],
                                  test_prompts: list[str], tmp_path: Path) -> None:
    train = to_matrices(slices[0])
    feats = default_router.features(train.prompts)  # cached: no re-embedding
    router = new_router(name, encoder=encoder).fit_features(
        feats, train.models, train.quality, train.cost, train.input_tokens,
        train.output_tokens, tasks=train.tasks)
    # the task classifier is fitted only for a family that reads tasks
    assert (router.task_classifier_ is not None) == (name == "task")
    loaded = Router.load(router.save(tmp_path / name), encoder=encoder)
    before, after = router.estimate(test_prompts), loaded.estimate(test_prompts)
    # n-grams are made only where the task classifier reads them, and change nothing else
    assert (loaded.features(test_prompts).lexical is not None) == (name == "task")
    with_grams = router.estimate_features(default_router.features(test_prompts))
    assert np.array_equal(before.quality, with_grams.quality)
    assert np.array_equal(before.cost, with_grams.cost)
    assert np.array_equal(before.quality, after.quality)
    assert np.array_equal(before.cost, after.cost)
    assert loaded.name == name and loaded.estimator.kind == router.estimator.kind


def test_estimate_in_chunks_equals_one_pass(default_router: Router, test_prompts: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    whole = default_router.estimate_features(default_router.features(test_prompts))
    monkeypatch.setattr("switchman.router._ESTIMATE_CHUNK", 7)  # 50 prompts: 8 chunks
    chunked = default_router.estimate(test_prompts)
    assert np.allclose(chunked.quality, whole.quality, rtol=0, atol=1e-6)
    assert np.allclose(chunked.cost, whole.cost, rtol=1e-6, atol=0)
    assert default_router.estimate([]).quality.shape == (0, len(default_router.models))


def test_one_prompt_estimates_are_the_batch_ones(default_router: Router,
                                                 test_prompts: list[str]) -> None:
    """The gateway estimates one prompt at a time, through one-row paths (n-gram counts,
    neighbour search, blend, plan); they agree with the batch's estimates. The batch's
    float32 products may round their last bits differently, hence the tolerance."""
    batch = default_router.estimate(test_prompts)
    for i, prompt in enumerate(test_prompts):
        alone = default_router.estimate([prompt])
        assert np.allclose(alone.quality[0], batch.quality[i], rtol=0, atol=1e-6)
        assert np.allclose(alone.cost[0], batch.cost[i], rtol=1e-6, atol=0)


def test_saved_directory_is_json_plus_arrays(saved: Path, default_router: Router) -> None:
    assert sorted(p.name for p in saved.iterdir()) == ["arrays.npz", "router.json",
                                                        "training_prompts.parquet"]
    config = json.loads((saved / "router.json").read_text())
    assert config["format_version"] == FORMAT_VERSION
    assert config["models"] == list(default_router.models)
    assert config["encoder"] == default_router.encoder.name
    assert config["estimator"]["kind"] == "stacking"
    assert len(config["estimator"]["params"]["bases"]) == len(default_router.estimator.bases)
    with np.load(saved / "arrays.npz", allow_pickle=False) as npz:  # no pickled objects
        arrays = {k: npz[k] for k in npz.files}
    assert arrays and all(a.dtype != object for a in arrays.values())
    assert any(k.startswith("estimator.") for k in arrays)
    assert any(k.startswith("cost.") for k in arrays)
    # one task classifier for the whole router, shared by the estimator and the cost model
    assert "tasks.coef" in arrays and "tasks.lexical_coef" in arrays
    assert not [k for k in arrays if k.endswith("idf") and not k.startswith("tasks.")]


def test_each_distinct_array_is_stored_once() -> None:
    embeddings = np.arange(12, dtype=np.float32).reshape(4, 3)
    kept, shared = _store_once({
        "a.train_embeddings": embeddings,
        "b.train_embeddings": embeddings.copy(),  # equal content, another object
        "c.train_embeddings": embeddings + 1,
        "d.as_float64": embeddings.astype(np.float64),  # same values, another dtype
        "e.reshaped": embeddings.reshape(3, 4),  # same values, another shape
    })
    assert list(kept) == ["a.train_embeddings", "c.train_embeddings", "d.as_float64",
                          "e.reshaped"]
    assert shared == {"b.train_embeddings": "a.train_embeddings"}


def _rewrite(directory: Path, drop: str, add: dict[str, np.ndarray],
             shared: object) -> None:
    """Move arrays of a saved router around; ``shared`` replaces ``shared_arrays``, or
    adds to it if both are mappings."""
    with np.load(directory / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != drop}
    np.savez(directory / "arrays.npz", **arrays, **add)
    config = json.loads((directory / "router.json").read_text())
    config["shared_arrays"] = ({**config["shared_arrays"], **shared}
                               if isinstance(shared, dict) else shared)
    (directory / "router.json").write_text(json.dumps(config))


def test_load_resolves_shared_arrays(saved: Path, tmp_path: Path,
                                     test_prompts: list[str]) -> None:
    d = _copy(saved, tmp_path)
    with np.load(d / "arrays.npz", allow_pickle=False) as npz:
        prices = npz["cost.price_per_token"]
    _rewrite(d, "cost.price_per_token", {"stored.prices": prices},
             {"cost.price_per_token": "stored.prices"})
    before, after = Router.load(saved), Router.load(d)
    assert np.array_equal(before.estimate(test_prompts).cost,
                          after.estimate(test_prompts).cost)


@pytest.mark.parametrize("shared", [{"cost.price_per_token": "nowhere"}, ["not", "a", "map"]])
def test_load_shared_array_that_is_missing(saved: Path, tmp_path: Path, shared: object) -> None:
    d = _copy(saved, tmp_path)
    _rewrite(d, "cost.price_per_token", {}, shared)
    with pytest.raises(RouterLoadError, match="inconsistent"):
        Router.load(d)


def test_load_a_version_2_router(saved: Path, tmp_path: Path, test_prompts: list[str]) -> None:
    d = _copy(saved, tmp_path)  # version 2 stored every array under its own key
    with np.load(d / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    config = json.loads((d / "router.json").read_text())
    for key, stored_as in config.pop("shared_arrays").items():
        arrays[key] = arrays[stored_as]
    config["format_version"] = 2
    np.savez(d / "arrays.npz", **arrays)
    (d / "router.json").write_text(json.dumps(config))
    assert np.array_equal(Router.load(saved).estimate(test_prompts).quality,
                          Router.load(d).estimate(test_prompts).quality)


def test_load_arrays_without_the_task_classifier(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    with np.load(d / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("tasks.")}
    np.savez(d / "arrays.npz", **arrays)
    with pytest.raises(RouterLoadError, match="task classifier is not"):
        Router.load(d)


def test_load_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(RouterLoadError, match="no such router directory") as err:
        Router.load(missing)
    assert str(missing) in str(err.value)


def test_load_directory_without_router_json(tmp_path: Path) -> None:
    with pytest.raises(RouterLoadError, match=r"router\.json is missing") as err:
        Router.load(tmp_path)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 1, 0, "3", None])
def test_load_wrong_format_version(saved: Path, tmp_path: Path, version: object) -> None:
    d = _copy(saved, tmp_path)
    config = json.loads((d / "router.json").read_text())
    config["format_version"] = version
    (d / "router.json").write_text(json.dumps(config))
    with pytest.raises(RouterLoadError, match="format_version") as err:
        Router.load(d)
    assert "retrain" in str(err.value) and "router.json" in str(err.value)


def test_load_router_json_that_is_not_json(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    (d / "router.json").write_text("{ not json")
    with pytest.raises(RouterLoadError, match="cannot read"):
        Router.load(d)


def test_load_unknown_estimator_kind(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    config = json.loads((d / "router.json").read_text())
    config["estimator"]["kind"] = "crystal-ball"
    (d / "router.json").write_text(json.dumps(config))
    with pytest.raises(RouterLoadError, match="crystal-ball"):
        Router.load(d)


def test_load_missing_arrays(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    (d / "arrays.npz").unlink()
    with pytest.raises(RouterLoadError, match=r"arrays\.npz"):
        Router.load(d)


def test_load_arrays_that_are_not_an_npz(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    (d / "arrays.npz").write_bytes(b"this is not a numpy archive\n" * 20)
    with pytest.raises(RouterLoadError, match=r"arrays\.npz") as err:
        Router.load(d)
    assert str(d) in str(err.value)


def test_load_arrays_missing_an_entry(saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    with np.load(d / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "cost.price_per_token"}
    np.savez(d / "arrays.npz", **arrays)
    with pytest.raises(RouterLoadError, match="inconsistent") as err:
        Router.load(d)
    assert "price_per_token" in str(err.value)


@pytest.mark.parametrize("damage", ["truncate", "flip-bytes"])
def test_load_corrupted_arrays(saved: Path, tmp_path: Path, damage: str) -> None:
    d = _copy(saved, tmp_path)
    data = (d / "arrays.npz").read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # inside the first member's data: the zip directory is intact, the CRC is not
        data = data[:200] + bytes(b ^ 0xFF for b in data[200:400]) + data[400:]
    (d / "arrays.npz").write_bytes(data)
    # zipfile.BadZipFile is neither OSError nor ValueError: it must still be a load error
    with pytest.raises(RouterLoadError, match=r"arrays\.npz is not a valid router") as err:
        Router.load(d)
    assert str(d) in str(err.value)


def test_serving_a_router_needs_neither_pandas_nor_pyarrow(saved: Path, cache_dir: Path,
                                                          test_prompts: list[str]) -> None:
    """What a gateway does with a router (load, estimate, plan), in a process where the
    table stack cannot be imported: it used to cost a serving gateway ~70 MB."""
    code = block_imports(("pandas", "pyarrow")) + (
        "import json\n"
        "from switchman import policy\n"
        "from switchman.router import Router\n"
        f"router = Router.load({str(saved)!r})\n"
        f"estimates = [router.estimate([p]) for p in {test_prompts[:3]!r}]\n"
        "print(json.dumps({'plans': [policy.plan(e, 0.0) for e in estimates],\n"
        "                  'quality': [e.quality[0].tolist() for e in estimates]}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False,
                          env={**os.environ, "SWITCHMAN_CACHE_DIR": str(cache_dir)})
    assert done.returncode == 0, done.stderr
    served = json.loads(done.stdout.strip().splitlines()[-1])
    here = [Router.load(saved).estimate([p]) for p in test_prompts[:3]]
    assert np.allclose(served["quality"], [e.quality[0] for e in here])
    assert served["plans"] == [policy.plan(e, 0.0) for e in here]


def test_training_prompts_are_read_when_first_asked(saved: Path, tmp_path: Path,
                                                   default_router: Router) -> None:
    loaded = Router.load(saved)
    assert loaded.training_prompts_ is not None
    pd.testing.assert_frame_equal(loaded.training_prompts_, default_router.training_prompts_)
    broken = _copy(saved, tmp_path)
    (broken / "training_prompts.parquet").write_bytes(b"not parquet")
    router = Router.load(broken)  # routing does not read them
    with pytest.raises(RouterLoadError, match="training_prompts.parquet: cannot read"):
        router.select_prompts(5)


def test_router_load_error_is_a_value_error() -> None:
    # the CLI turns ValueError into "switchman: error: ..." with exit code 2
    assert issubclass(RouterLoadError, ValueError)


# --------------------------------------------------------------------------- predictions


def test_estimates_shape_and_range(default_router: Router, test_prompts: list[str]) -> None:
    est = default_router.estimate(test_prompts)
    assert est.quality.shape == est.cost.shape == (len(test_prompts), 11)
    assert est.models == tuple(sorted(est.models))
    assert np.isfinite(est.quality).all()
    assert est.quality.min() >= 0 and est.quality.max() <= 1
    assert default_router.estimate([]).quality.shape == (0, 11)


def test_cost_predictions_are_positive_and_rank_models_by_price(
        default_router: Router, slices: tuple[pd.DataFrame, pd.DataFrame],
        test_prompts: list[str]) -> None:
    test = to_matrices(slices[1])
    est = default_router.estimate(test_prompts)
    assert (est.cost > 0).all()
    predicted, observed = est.cost.mean(axis=0), test.cost.mean(axis=0)
    models = list(est.models)
    assert models[int(np.argmax(predicted))] == "gpt-4-1106-preview"
    assert models[int(np.argmin(predicted))] == "mistral-7b-instruct"
    # per prompt too: the $10/$30 model always above the $0.2/$0.2 one
    g, m = models.index("gpt-4-1106-preview"), models.index("mistral-7b-instruct")
    assert (est.cost[:, g] > 10 * est.cost[:, m]).all()
    # the ranking of mean predicted cost follows the observed one (rank correlation)
    rank_p, rank_o = np.argsort(np.argsort(predicted)), np.argsort(np.argsort(observed))
    assert np.corrcoef(rank_p, rank_o)[0, 1] > 0.95
    # and the level is right within a factor of 2 (token counts are predicted, not read)
    assert np.all((predicted / observed > 0.5) & (predicted / observed < 2.0))


def test_default_cost_weight_is_finite_and_non_negative(default_router: Router,
                                                        saved: Path) -> None:
    w = default_router.default_cost_weight
    assert math.isfinite(w) and w >= 0
    assert json.loads((saved / "router.json").read_text())["default_cost_weight"] == w


def test_routing_reads_only_prompt_id_and_prompt(saved: Path, slices: tuple, tmp_path: Path,
                                                 test_prompts: list[str]) -> None:
    router = Router.load(saved)
    ids = slices[1]["prompt_id"].drop_duplicates().tolist()
    clean = pd.DataFrame({"prompt_id": ids, "prompt": test_prompts})
    clean.to_parquet(tmp_path / "prompts.parquet", index=False)
    # The outcomes table itself as the prompts file, with its outcome columns made unusable:
    # a router that looked at quality or cost would fail or change its decisions.
    poisoned = slices[1].copy()
    poisoned["quality"] = np.nan
    poisoned["cost_usd"] = -1.0
    poisoned["model"] = "not-a-model"
    poisoned["response"] = None
    poisoned.to_parquet(tmp_path / "poisoned.parquet", index=False)

    frames = [load_prompts(tmp_path / name) for name in ("prompts.parquet", "poisoned.parquet")]
    for frame in frames:
        assert list(frame.columns) == ["prompt_id", "prompt"]
        assert frame["prompt_id"].tolist() == ids
    decisions = [sweep_decisions(router.estimate(f["prompt"].tolist()), f["prompt_id"].tolist(),
                                 25) for f in frames]
    pd.testing.assert_frame_equal(decisions[0], decisions[1])
    assert set(decisions[0]["model"]) <= set(router.models)


def test_cache_dir_env_is_used(cache_dir: Path, encoder: Encoder) -> None:
    assert os.environ["SWITCHMAN_CACHE_DIR"] == str(cache_dir)
    encoder.encode(["a prompt"])
    assert (cache_dir / "encoders" / "minilm-l6-static-v2" / "table-int8.npz").is_file()


def test_pinning_blas_to_one_thread_for_a_server_process() -> None:
    """In a fresh process (the pin is process-wide): BLAS at one thread, no per-call limit."""
    code = (
        "import contextlib\n"
        "from threadpoolctl import threadpool_info\n"
        "import switchman.router as r\n"
        "assert not isinstance(r._one_blas_thread(), contextlib.nullcontext)\n"
        "r.pin_blas_to_one_thread()\n"
        "assert isinstance(r._one_blas_thread(), contextlib.nullcontext)\n"
        "blas = [i for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "assert blas and all(i['num_threads'] == 1 for i in blas), blas\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
