"""Models as profiles: the math on synthetic outcomes, the router on real slices, the CLI.

Real data comes from ../shared/data (a 160-prompt slice of llmrouter, never committed); the
CLI runs as a user runs it, in a subprocess (see tests/test_cli.py). The routers are the
cheap ``knn`` family: profiles read any family's predictions the same way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from shared_data import ROUTING, sample_prompts  # noqa: E402
from test_cli import _ok, switchman  # noqa: E402

from switchman.cost import CostModel  # noqa: E402
from switchman.encoders import default_encoder  # noqa: E402
from switchman.features import Features  # noqa: E402
from switchman.profile_file import ProfileFileError, read_profile_file  # noqa: E402
from switchman.profiles import (  # noqa: E402
    AddedModels,
    PopulationPrior,
    fit_profile,
    select_prompts,
)
from switchman.router import Router, new_router  # noqa: E402

NEW = ["gemma-2-9b-it", "llama-3.1-8b-instruct"]  # held out of training, added by profile


# ------------------------------------------------------------------ the profile's math


def _population(rng: np.random.Generator, n: int, m: int, level: float = 0.02,
                noise: float = 0.05) -> np.ndarray:
    """Outcome columns (n, m) drawn as the profile's prior assumes: a shared mean column,
    each model's deviation from two latent prompt traits, a level and noise of its own."""
    mean = rng.uniform(0.3, 0.7, n)
    traits = rng.normal(size=(n, 2)) * 0.2
    loadings = rng.normal(size=(2, m))
    levels = rng.normal(size=m) * np.sqrt(level)
    return mean[:, None] + traits @ loadings + levels + rng.normal(size=(n, m)) * np.sqrt(noise)


def test_the_prior_is_measured_on_the_trained_models() -> None:
    rng = np.random.default_rng(0)
    prior = PopulationPrior.fit(_population(rng, 400, 12))
    assert 0.5 * 0.02 < prior.level < 2.0 * 0.02
    # the others' own noise is part of their measured covariance, so some of a column's
    # noise is read as shared variation: noise is a little over, shared under one
    assert 0.05 < prior.noise < 1.5 * 0.05
    assert prior.shared > 0.1  # the left-out model varies as the others do
    noisy = PopulationPrior.fit(_population(rng, 400, 12, noise=0.2))
    assert noisy.noise > 2 * prior.noise


def test_a_model_that_answers_like_a_trained_one_follows_it() -> None:
    rng = np.random.default_rng(1)
    trained = _population(rng, 300, 6)
    prior = PopulationPrior.fit(trained)
    emb = Features(np.zeros((300, 4), np.float32), np.zeros(300))
    profile = fit_profile("new", "t", trained[:, 2], trained, emb, prior)
    assert profile.weights.argmax() == 2
    assert np.isclose(profile.weights.sum(), 1.0)
    elsewhere = _population(np.random.default_rng(2), 50, 6)
    unlike = Features(np.zeros((50, 4), np.float32), np.zeros(50))
    predicted = profile.predict(np.clip(elsewhere, 0, 1), unlike)
    target, average = np.clip(elsewhere[:, 2], 0, 1), np.clip(elsewhere, 0, 1).mean(axis=1)
    assert np.abs(predicted - target).mean() < 0.5 * np.abs(average - target).mean()


def test_a_shifted_model_keeps_its_level_as_its_answers_accumulate() -> None:
    rng = np.random.default_rng(3)
    trained = np.clip(_population(rng, 400, 5, noise=0.01), 0.0, 0.7)
    prior = PopulationPrior.fit(trained)
    observed = trained[:, 1] + 0.25 + rng.normal(size=400) * 0.1
    errors = []
    for n in (10, 40, 400):
        emb = Features(np.zeros((n, 4), np.float32), np.zeros(n))
        profile = fit_profile("new", "t", observed[:n], trained[:n], emb, prior)
        placed = trained @ profile.weights + profile.offsets[0]  # on all 400 prompts
        errors.append(abs(float((placed - trained[:, 1]).mean()) - 0.25))
    assert errors[2] < 0.03 and errors[2] < errors[0]


def test_added_models_predict_as_one_map_what_each_profile_predicts() -> None:
    rng = np.random.default_rng(3)
    anchors = (rng.random((40, 3)) < [0.3, 0.6, 0.8]).astype(float)
    emb = rng.normal(size=(40, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    probs = rng.dirichlet(np.ones(4), size=40)
    by_task = Features(emb, np.zeros(40), task_probs=probs)
    by_kernel = Features(emb, np.zeros(40))
    observed = (rng.random((40, 4)) < 0.5).astype(float)  # residuals left for the local part
    profiles = [fit_profile(f"t{k}", "t", observed[:, k], anchors, by_task) for k in range(3)]
    profiles.insert(1, fit_profile("kernel", "t", observed[:, 3], anchors, by_kernel))
    predicted = rng.random((7, 3))
    routed = Features(emb[:7], np.zeros(7), task_probs=probs[:7])
    together = AddedModels(profiles).predict(predicted, routed)
    assert together.shape == (7, 4)
    for k, profile in enumerate(profiles):
        assert np.allclose(together[:, k], profile.predict(predicted, routed), atol=1e-12)


def test_selection_is_deterministic_and_covers_every_region() -> None:
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(5, 16))
    emb = (np.repeat(centres, 60, axis=0) + 0.05 * rng.normal(size=(300, 16))).astype(
        np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    picks = select_prompts(emb, 5)
    assert np.array_equal(picks, select_prompts(emb.copy(), 5))
    assert sorted(p // 60 for p in picks) == [0, 1, 2, 3, 4]  # one per region


def test_selection_gives_every_task_its_share_however_tight_its_prompts() -> None:
    # a tight task (templated prompts) beside a wide one (varied prompts): k-means alone
    # spends its clusters on the wide one; by task, each gets its share of the picks
    rng = np.random.default_rng(3)
    tight = rng.normal(size=16) + 0.02 * rng.normal(size=(240, 16))
    wide = rng.normal(size=(60, 16))
    emb = np.vstack([tight, wide]).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    tasks = np.array(["tight"] * 240 + ["wide"] * 60)
    assert (select_prompts(emb, 10) < 240).sum() <= 2  # by embeddings alone
    picks = select_prompts(emb, 10, tasks)
    assert (picks < 240).sum() == 8 and len(set(picks)) == 10  # 80% of the prompts, 8 of 10
    assert np.array_equal(picks, select_prompts(emb.copy(), 10, tasks.copy()))
    small = np.array(["a"] * 290 + ["b"] * 9 + ["c"])  # every task answered, even of one
    assert sorted(small[select_prompts(emb, 3, small)]) == ["a", "b", "c"]


@pytest.mark.parametrize("n, sizes, shares", [
    (50, [727, 617, 199], [24, 20, 6]),  # in proportion, largest remainders
    (10, [1, 1, 100], [1, 1, 8]),  # every task one at least while n covers them
    (2, [5, 3, 1], [1, 1, 0]),  # else in proportion
    (6, [1, 1, 9], [1, 1, 4]),
    (9, [8, 1], [8, 1]),  # never more than a task holds
])
def test_picks_are_shared_out_by_task_size(n: int, sizes: list[int], shares: list[int]) -> None:
    from switchman.profiles import _allocate

    assert _allocate(n, sizes) == shares


def test_few_answers_are_shrunk_toward_the_population_as_its_spread_says() -> None:
    rng = np.random.default_rng(5)
    trained = np.clip(_population(rng, 200, 6), 0, 1)
    observed = np.ones(10)  # ten right answers: a strong model, or a lucky one
    emb = Features(np.zeros((10, 4), np.float32), np.zeros(10))
    tight = PopulationPrior(shared=1.0, level=1e-4, noise=0.15)
    loose = PopulationPrior(shared=1.0, level=0.05, noise=0.15)
    levels = [float(fit_profile("new", "t", observed, trained[:10], emb, p).offsets[0])
              for p in (tight, loose)]
    assert 0.0 < levels[0] < 0.01 < levels[1]  # models that stray little are believed less


def test_a_bent_seen_on_a_few_answers_of_a_task_is_mostly_doubted() -> None:
    # Tasks 0 and 1 show the same bent (0.4 above what the mixture expects), task 0 on
    # three answers, task 1 on sixty; task 2 (sixty) shows none. Inner splits found a
    # few answers on a task say little about a model's bent there (see _TASK_SHRINKAGE).
    rng = np.random.default_rng(7)
    counts = [3, 60, 60]
    trained = np.clip(_population(rng, sum(counts), 6), 0, 1)
    task = np.repeat(np.arange(3), counts)
    observed = trained.mean(axis=1) + np.where(task < 2, 0.4, 0.0)
    features = Features(np.zeros((task.size, 4), np.float32), np.zeros(task.size),
                        task_probs=np.eye(3)[task])
    residuals = fit_profile("new", "t", observed, trained, features).task_residuals
    assert residuals is not None
    assert 0.0 < residuals[0] < 0.3 * residuals[1]


def test_cost_model_reprices_and_appends_columns() -> None:
    rng = np.random.default_rng(3)
    n = 50
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    feats = Features(emb / np.linalg.norm(emb, axis=1, keepdims=True),
                     np.log1p(rng.integers(100, 2000, n).astype(float)))
    tin = np.expm1(feats.log_chars) / 4
    tout = rng.integers(10, 200, (n, 2)).astype(float)
    prices = np.array([[1.0, 2.0], [10.0, 30.0]]) / 1e6
    cost = tin[:, None] * prices[:, 0] + tout * prices[:, 1]
    model = CostModel().fit(feats, ["a", "b"], tin, tout, cost)
    before = model.per_prompt(feats)
    model.reprice({1: (1.0, 2.0)})  # b now costs what a costs per token
    after = model.per_prompt(feats)
    assert np.allclose(after[:, 0], before[:, 0])
    assert after[:, 1].mean() < before[:, 1].mean() / 5
    model.append(feats, tin, tout[:, 0], cost[:, 0])  # a twin of a, prices recovered
    assert np.allclose(model.price_per_token_[2], prices[0], rtol=1e-3)
    assert model.per_prompt(feats).shape == (n, 3)
    model.drop(2)
    assert model.per_prompt(feats).shape == (n, 2)


# ------------------------------------------------------------------ the router


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[str, Path]:
    """160 llmrouter prompts: 120 to train on (without NEW), 40 to route; NEW's outcomes."""
    if not (ROUTING / "llmrouter.parquet").is_file():
        pytest.skip(f"shared routing data not found at {ROUTING}")
    d = tmp_path_factory.mktemp("profiles")
    table = sample_prompts(ROUTING / "llmrouter.parquet", 160, seed=4)
    ids = table["prompt_id"].drop_duplicates()
    train = table[table["prompt_id"].isin(set(ids.iloc[:120]))]
    out = {"old": d / "old.parquet", "new": d / "new.parquet", "prompts": d / "prompts.parquet",
           "test": d / "test.parquet"}
    train[~train["model"].isin(NEW)].to_parquet(out["old"], index=False)
    train[train["model"].isin(NEW)].to_parquet(out["new"], index=False)
    test = table[~table["prompt_id"].isin(set(ids.iloc[:120]))]
    test.to_parquet(out["test"], index=False)
    test.drop_duplicates("prompt_id")[["prompt_id", "prompt"]].to_parquet(out["prompts"],
                                                                         index=False)
    default_encoder(cache_dir).encode(["warm up"])
    out["router"] = d / "router"
    _ok(switchman(cache_dir, d, "train", "--data", out["old"], "--router", "knn",
                  "--out", out["router"]))
    return out


def _run(cache_dir: Path, tmp: Path, *args: object):  # noqa: ANN202
    return switchman(cache_dir, tmp, *map(str, args))


def test_select_is_deterministic_and_names_training_prompts(
        tables: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    for name in ("a.parquet", "b.parquet"):
        _ok(_run(cache_dir, tmp_path, "profile", "select", "--router", tables["router"],
                 "--n", 25, "--out", tmp_path / name))
    a, b = (pd.read_parquet(tmp_path / n) for n in ("a.parquet", "b.parquet"))
    assert a.equals(b) and list(a.columns) == ["prompt_id", "prompt"] and len(a) == 25
    train = pd.read_parquet(tables["old"]).drop_duplicates("prompt_id").set_index("prompt_id")
    assert set(a["prompt_id"]) <= set(train.index)
    assert (train.loc[a["prompt_id"], "prompt"].to_numpy() == a["prompt"].to_numpy()).all()
    too_many = _run(cache_dir, tmp_path, "profile", "select", "--router", tables["router"],
                    "--n", 10_000, "--out", tmp_path / "c.parquet")
    assert too_many.returncode == 2 and "choose between 1 and 120" in too_many.stderr
    first = Router.load(tables["router"]).select_prompts(25)
    assert first.equals(a)
    shares = train["task"].value_counts() / len(train)  # sampled task by task
    picked = train.loc[a["prompt_id"], "task"].value_counts()
    assert all(abs(picked.get(task, 0) - 25 * share) < 1 for task, share in shares.items())


def test_add_lists_and_routes_among_added_models(
        tables: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r2"
    _ok(_run(cache_dir, tmp_path, "profile", "add", "--router", tables["router"],
             "--outcomes", tables["new"], "--out", out))
    config = json.loads((out / "router.json").read_text())
    assert config["models"][-2:] == NEW and config["format_version"] == 4
    listing = _ok(_run(cache_dir, tmp_path, "models", "--router", out)).stdout
    for name in NEW:
        line = next(row for row in listing.splitlines() if row.startswith(name))
        assert "profile" in line and str(tables["new"]) in line and " 120 " in line
    assert "training" in listing.splitlines()[1]
    decisions = tmp_path / "d.parquet"
    _ok(_run(cache_dir, tmp_path, "route", "--router", out, "--prompts", tables["prompts"],
             "--out", decisions, "--models", ",".join(NEW)))
    assert set(pd.read_parquet(decisions)["model"]) <= set(NEW)
    all_models = tmp_path / "all.parquet"
    _ok(_run(cache_dir, tmp_path, "route", "--router", out, "--prompts", tables["prompts"],
             "--out", all_models))
    assert set(pd.read_parquet(all_models)["model"]) & set(NEW)  # the cheap gemma is used
    router = Router.load(out, encoder=default_encoder(cache_dir))
    prompts = pd.read_parquet(tables["prompts"])["prompt"].tolist()
    est = router.estimate(prompts)
    assert est.quality.shape == (len(prompts), 9)
    assert np.all((est.quality >= 0) & (est.quality <= 1)) and np.all(est.cost > 0)


def test_add_of_a_model_already_there_needs_replace(
        tables: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    old = pd.read_parquet(tables["old"])
    again = old[old["model"] == "qwen2.5-7b-instruct"].iloc[:30]
    again.to_parquet(tmp_path / "again.parquet", index=False)
    refused = _run(cache_dir, tmp_path, "profile", "add", "--router", tables["router"],
                   "--outcomes", tmp_path / "again.parquet", "--out", tmp_path / "r")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "already in the router" in refused.stderr and "--replace" in refused.stderr
    _ok(_run(cache_dir, tmp_path, "profile", "add", "--router", tables["router"], "--outcomes",
             tmp_path / "again.parquet", "--out", tmp_path / "r", "--replace"))
    router = Router.load(tmp_path / "r")
    assert router.models.count("qwen2.5-7b-instruct") == 1 and router.models[-1] == (
        "qwen2.5-7b-instruct")


def test_route_with_an_unknown_model_is_a_clear_error(
        tables: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    result = _run(cache_dir, tmp_path, "route", "--router", tables["router"], "--prompts",
                  tables["prompts"], "--out", tmp_path / "d.parquet", "--models",
                  "qwen2.5-7b-instruct,gpt-17")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "gpt-17" in result.stderr and "qwen2.5-7b-instruct" in result.stderr
    assert not (tmp_path / "d.parquet").exists()


def test_route_decides_on_the_prices_given(tables: dict[str, Path], cache_dir: Path,
                                          tmp_path: Path) -> None:
    """The cheapest operating point moves off a model priced 50,000x higher."""
    base = tmp_path / "base.parquet"
    _ok(_run(cache_dir, tmp_path, "route", "--router", tables["router"], "--prompts",
             tables["prompts"], "--out", base))
    cheapest = pd.read_parquet(base).query("point == 0")["model"].value_counts().index[0]
    (tmp_path / "prices.json").write_text(json.dumps(
        {cheapest: {"input_per_mtok": 5000.0, "output_per_mtok": 5000.0}}))
    repriced = tmp_path / "repriced.parquet"
    _ok(_run(cache_dir, tmp_path, "route", "--router", tables["router"], "--prompts",
             tables["prompts"], "--out", repriced, "--prices", tmp_path / "prices.json"))
    decisions = pd.read_parquet(repriced)
    assert cheapest not in set(decisions.query("point == 0")["model"])
    router = Router.load(tables["router"], encoder=default_encoder(cache_dir))
    before = router.estimate(["What is 2 + 2?"]).cost
    router.reprice({cheapest: (5000.0, 5000.0)})
    after = router.estimate(["What is 2 + 2?"]).cost
    j = router.models.index(cheapest)
    assert after[0, j] > 1000 * before[0, j]
    others = [i for i in range(len(router.models)) if i != j]
    assert np.allclose(after[0, others], before[0, others])


def test_a_version_3_router_routes_and_takes_profiles_but_cannot_select(
        tables: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "v3"
    shutil.copytree(tables["router"], old)
    config = json.loads((old / "router.json").read_text())
    for key in ("trained_models", "profiles", "training_source"):
        config.pop(key)
    config["format_version"] = 3
    (old / "router.json").write_text(json.dumps(config))
    (old / "training_prompts.parquet").unlink()
    with np.load(old / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("training.")
                  and k != "cost.mean_tokens"}
    np.savez(old / "arrays.npz", **arrays)
    _ok(_run(cache_dir, tmp_path, "route", "--router", old, "--prompts", tables["prompts"],
             "--out", tmp_path / "d.parquet"))
    refused = _run(cache_dir, tmp_path, "profile", "select", "--router", old, "--n", 5,
                   "--out", tmp_path / "s.parquet")
    assert refused.returncode == 2 and "retrain" in refused.stderr
    _ok(_run(cache_dir, tmp_path, "profile", "add", "--router", old, "--outcomes",
             tables["new"], "--out", tmp_path / "v4"))
    assert Router.load(tmp_path / "v4").models[-2:] == tuple(NEW)


def test_route_defaults_to_the_prices_the_router_was_trained_with(
        tables: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    """No --prices: the same decisions as a price file holding the trained prices."""
    trained = {r["model"]: {"input_per_mtok": r["input_per_mtok"],
                            "output_per_mtok": r["output_per_mtok"]}
               for r in Router.load(tables["router"]).describe_models()}
    (tmp_path / "trained.json").write_text(json.dumps(trained))
    runs = {"default": (), "trained": ("--prices", tmp_path / "trained.json")}
    for name, extra in runs.items():
        _ok(_run(cache_dir, tmp_path, "route", "--router", tables["router"], "--prompts",
                 tables["prompts"], "--out", tmp_path / f"{name}.parquet", *extra))
    default, explicit = (pd.read_parquet(tmp_path / f"{n}.parquet") for n in runs)
    assert default.equals(explicit)


def test_profile_files_carry_a_model_to_a_copy_of_the_router(
        tables: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    """`profile add --out DIR2` writes DIR2/profiles/<model>.json; `--out FILE.json` writes
    the same profile alone; the router it was made against takes it in and scores the
    model as DIR2 does."""
    _ok(_run(cache_dir, tmp_path, "profile", "add", "--router", tables["router"],
             "--outcomes", tables["new"], "--out", tmp_path / "r2"))
    assert sorted(p.name for p in (tmp_path / "r2" / "profiles").iterdir()) == [
        f"{m}.json" for m in NEW]
    one = pd.read_parquet(tables["new"]).query("model == @NEW[0]")
    one.to_parquet(tmp_path / "one.parquet", index=False)
    _ok(_run(cache_dir, tmp_path, "profile", "add", "--router", tables["router"],
             "--outcomes", tmp_path / "one.parquet", "--out", tmp_path / "one.json"))
    alone = read_profile_file(tmp_path / "one.json")
    beside = read_profile_file(tmp_path / "r2" / "profiles" / f"{NEW[0]}.json")
    assert alone.model == beside.model == NEW[0] and alone.router_id == beside.router_id
    assert alone.arrays.keys() == beside.arrays.keys()
    assert all(np.array_equal(alone.arrays[k], beside.arrays[k]) for k in alone.arrays)
    refused = _run(cache_dir, tmp_path, "profile", "add", "--router", tables["router"],
                   "--outcomes", tables["new"], "--out", tmp_path / "two.json")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "a profile file holds one model" in refused.stderr
    assert not (tmp_path / "two.json").exists()

    encoder = default_encoder(cache_dir)
    router = Router.load(tables["router"], encoder=encoder)
    assert router.trained_id == Router.load(tmp_path / "r2").trained_id == alone.router_id
    router.add_profile_file(alone)
    prompts = pd.read_parquet(tables["prompts"])["prompt"].tolist()
    mine = router.estimate(prompts)
    theirs = Router.load(tmp_path / "r2", encoder=encoder).estimate(prompts)
    assert mine.models[-1] == NEW[0]
    j = theirs.models.index(NEW[0])
    assert np.array_equal(mine.quality[:, -1], theirs.quality[:, j])
    # Cost to float rounding only: the cost model's one product over every model's column
    # can round a column by how many columns there are (BLAS blocks it by columns; here
    # relative 3e-7 between a router with one added model and one with two).
    np.testing.assert_allclose(mine.cost[:, -1], theirs.cost[:, j], rtol=1e-6)
    trained = list(router.trained_models_)
    assert np.array_equal(mine.quality[:, :len(trained)],
                          theirs.quality[:, [theirs.models.index(m) for m in trained]])
    # the profiles saved with a router follow its models: one dropped, its file goes too
    router.save(tmp_path / "r3")
    assert [p.name for p in (tmp_path / "r3" / "profiles").iterdir()] == [f"{NEW[0]}.json"]
    Router.load(tables["router"]).save(tmp_path / "r3")
    assert not (tmp_path / "r3" / "profiles").exists()


def test_a_profile_file_is_refused_by_another_router_and_when_damaged(
        tables: dict[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    _ok(_run(cache_dir, tmp_path, "profile", "add", "--router", tables["router"],
             "--outcomes", tables["new"], "--out", tmp_path / "r2"))
    path = tmp_path / "r2" / "profiles" / f"{NEW[0]}.json"
    profile = read_profile_file(path)
    old = pd.read_parquet(tables["old"])
    half = old[old["prompt_id"].isin(set(old["prompt_id"].unique()[:60]))]
    other = new_router("knn", encoder=default_encoder(cache_dir)).fit(half)
    assert other.trained_id != profile.router_id
    before = other.models
    with pytest.raises(ValueError, match="made against another router"):
        other.add_profile_file(profile)
    assert other.models == before and NEW[0] not in other.models
    document = json.loads(path.read_text())
    del document["arrays"]["profile.weights"]
    (tmp_path / "damaged.json").write_text(json.dumps(document))
    for name, text, fragment in (("damaged.json", None, "incomplete or damaged"),
                                 ("empty.json", "{}", "not a profile file"),
                                 ("text.json", "weights: 1", "not JSON")):
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(ProfileFileError, match=fragment) as info:
            read_profile_file(tmp_path / name)
        assert str(info.value).startswith(str(tmp_path / name))
