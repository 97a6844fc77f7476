"""A trained router served with pool models taken in by profile files, and on the pool's
configured prices (issue 12, items 3 and 5).

Everything runs as a user runs it: `switchman train` and `switchman profile add` make the
router and the profile files from a slice of the shared llmrouter table, `switchman config
check` and `switchman serve` read a YAML file that names them by relative paths, and the
requests go over HTTP on loopback to the test upstream.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from gateway_support import serve_process  # noqa: E402
from gateway_upstream import ServerThread  # noqa: E402
from shared_data import ROUTING, sample_prompts  # noqa: E402
from test_cli import _ok, switchman  # noqa: E402

from switchman import policy  # noqa: E402
from switchman.config import load_config  # noqa: E402
from switchman.encoders import default_encoder  # noqa: E402
from switchman.gateway.api.server import server_options  # noqa: E402
from switchman.gateway.app import create_app  # noqa: E402
from switchman.gateway.execute.local import free_port  # noqa: E402
from switchman.router import Router  # noqa: E402

NEW = ["gemma-2-9b-it", "llama-3.1-8b-instruct"]  # held out of training, added by profile
ROUTER = "test/profiled"


@pytest.fixture(scope="module")
def work(
    tmp_path_factory: pytest.TempPathFactory, upstream: ServerThread, test_env: None
) -> dict[str, Any]:
    """A knn router trained on 90 llmrouter prompts without NEW, NEW's profile files (from
    the same 90 prompts), a second router trained on other prompts, 30 prompts to route."""
    if not (ROUTING / "llmrouter.parquet").is_file():
        pytest.skip(f"shared routing data not found at {ROUTING}")
    d = tmp_path_factory.mktemp("served-profiles")
    cache = tmp_path_factory.getbasetemp() / "switchman-cache"
    cache.mkdir(exist_ok=True)
    table = sample_prompts(ROUTING / "llmrouter.parquet", 150, seed=7)
    ids = table["prompt_id"].drop_duplicates()
    train = table[table["prompt_id"].isin(set(ids.iloc[:90]))]
    train[~train["model"].isin(NEW)].to_parquet(d / "old.parquet", index=False)
    train[train["model"].isin(NEW)].to_parquet(d / "new.parquet", index=False)
    other = table[table["prompt_id"].isin(set(ids.iloc[120:]))]
    other[~other["model"].isin(NEW)].to_parquet(d / "other.parquet", index=False)
    prompts = (
        table[table["prompt_id"].isin(set(ids.iloc[90:120]))]
        .drop_duplicates("prompt_id")["prompt"]
        .tolist()
    )
    default_encoder(cache).encode(["warm up"])
    for data, out in (("old.parquet", "router"), ("other.parquet", "other-router")):
        _ok(switchman(cache, d, "train", "--data", data, "--router", "knn", "--out", out))
        add = ["--router", out, "--outcomes", "new.parquet", "--out", f"{out}2"]
        _ok(switchman(cache, d, "profile", "add", *add))
    trained = [m for m in table["model"].unique() if m not in NEW]
    return {
        "dir": d,
        "cache": cache,
        "prompts": prompts,
        "trained": trained,
        "upstream": f"{upstream.url}/v1",
    }


def _pool(
    work: dict[str, Any], names: list[str], **per_model: dict[str, Any]
) -> list[dict[str, Any]]:
    return [
        {
            "name": n,
            "endpoint": work["upstream"],
            "upstream_model": "mid-up",
            **per_model.get(n, {}),
        }
        for n in names
    ]


def _write(work: dict[str, Any], name: str, raw: dict[str, Any]) -> Path:
    raw = {"log": {"path": f"{name}.sqlite"}, **raw}
    path = work["dir"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _cli(work: dict[str, Any], *args: str) -> subprocess.CompletedProcess:
    """``python -m switchman.gateway ARGS`` run from / (so relative paths must resolve
    against the configuration file), with the session's encoder cache."""
    env = {**os.environ, "SWITCHMAN_CACHE_DIR": str(work["cache"])}
    env.pop("SWITCHMAN_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "switchman.gateway", *args],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _profiled_config(work: dict[str, Any]) -> dict[str, Any]:
    """The trained models and NEW (by profile file) in a pool with a stranger the router
    never saw, a prior router over part of it."""
    names = [*work["trained"], *NEW, "stranger"]
    return {
        "models": _pool(work, names, **{work["trained"][0]: {"quality_prior": 0.4}}),
        "routers": [
            {
                "name": ROUTER,
                "path": "router",
                "profiles": [f"router2/profiles/{m}.json" for m in NEW],
            },
            {"name": "test/prior", "models": [work["trained"][0], "stranger"]},
        ],
    }


def test_config_check_says_where_each_pool_model_is_known_from(work: dict[str, Any]) -> None:
    conf = _write(work, "profiled", _profiled_config(work))
    check = _cli(work, "config", "check", str(conf))
    assert check.returncode == 0, check.stderr
    lines = check.stdout.splitlines()
    d = work["dir"]
    assert "  knowledge (where each router's estimate of each pool model comes from):" in lines
    for model in NEW:
        assert (
            f"    routers[0] {ROUTER}: {model} from profile {d}/router2/profiles/{model}"
            f".json (90 prompts of new.parquet)"
        ) in lines
    for model in work["trained"]:
        assert (
            f"    routers[0] {ROUTER}: {model} from training (90 prompts of old.parquet)" in lines
        )
    assert (
        f"    routers[0] {ROUTER}: stranger unknown to this router: never chosen by it "
        "(give it a profile: `switchman profile add`, then routers[].profiles)"
    ) in lines
    assert (
        f"    routers[1] test/prior: {work['trained'][0]} only from its quality_prior 0.4" in lines
    )
    assert (
        "    routers[1] test/prior: stranger only from the neutral 0.5 (no quality_prior)" in lines
    )
    # the warning lines tests and users rely on are still there
    assert (
        f"  warning: routers[0] {ROUTER}: pool models unknown to this router are never "
        "chosen by it: ['stranger']"
    ) in lines


def test_bad_profile_files_are_refused_by_check_and_serve_naming_the_key(
    work: dict[str, Any],
) -> None:
    d = work["dir"]
    (d / "junk.json").write_text("{not json")
    raw = _profiled_config(work)
    raw["routers"][0]["models"] = [*work["trained"], NEW[1]]  # gemma is not in its pool
    raw["routers"][0]["profiles"] = [
        "router2/profiles/llama-3.1-8b-instruct.json",
        "missing.json",
        "junk.json",
        "router2/profiles/gemma-2-9b-it.json",
        "other-router2/profiles/llama-3.1-8b-instruct.json",
        "router2/profiles/llama-3.1-8b-instruct.json",
    ]
    raw["routers"].append({"name": "test/bad", "profiles": ["router2/x.json"]})
    conf = _write(work, "bad-profiles", raw)
    check = _cli(work, "config", "check", str(conf))
    assert check.returncode == 1, check.stdout
    found = check.stderr.splitlines()[1:]
    assert "Traceback" not in check.stderr
    assert (
        found[0] == f"  routers[0].profiles[1]: {d}/missing.json: cannot read: No such "
        "file or directory"
    )
    assert found[1].startswith(f"  routers[0].profiles[2]: {d}/junk.json: not a profile file")
    assert found[2].startswith(
        f"  routers[0].profiles[3]: {d}/router2/profiles/gemma-2-9b-it"
        ".json is the profile of 'gemma-2-9b-it', which is not a pool "
        "model of this router"
    )
    assert found[3].startswith(
        f"  routers[0].profiles[4]: {d}/other-router2/profiles/llama-3.1-8b-instruct.json: "
        "made against another router (id "
    )
    assert found[4] == (
        f"  routers[0].profiles[5]: {d}/router2/profiles/llama-3.1-8b-instruct"
        ".json is a second profile of 'llama-3.1-8b-instruct' (after "
        "routers[0].profiles[0]); keep one"
    )
    assert found[5] == (
        "  routers[2].profiles: profiles extend a trained router: set path to "
        "the router they were made with"
    )
    assert len(found) == 6
    serve = _cli(work, "serve", "--config", str(conf))
    assert (serve.returncode, serve.stderr) == (2, check.stderr)


def _ask(http: httpx.Client, prompt: str, router: str = ROUTER, **prefs: Any) -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        json={
            "model": router,
            "messages": [{"role": "user", "content": prompt}],
            "switchman": prefs,
        },
    )


def test_served_router_ranks_profiled_models_as_the_extended_router_does(
    work: dict[str, Any],
) -> None:
    """`serve` with `path: router` + `profiles:` decides as the router `profile add` wrote
    (router2) does, and chooses a profiled model where that one would."""
    conf = _write(work, "served", _profiled_config(work))
    extended = Router.load(work["dir"] / "router2", encoder=default_encoder(work["cache"]))
    est = extended.estimate(work["prompts"])
    weights = [0.0, extended.default_cost_weight, 10 * extended.default_cost_weight]
    expected = {
        (i, w): policy.plan(est.rows(np.array([i])), w)[0]
        for i in range(len(work["prompts"]))
        for w in weights
    }
    assert set(expected.values()) & set(NEW), "no profiled model wins anywhere: change data"
    log_path = conf.with_suffix(".log")
    env = {**os.environ, "SWITCHMAN_CACHE_DIR": str(work["cache"])}
    with (
        serve_process(conf, log_path, env, cwd="/", ready_s=120) as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        for (i, w), model in expected.items():
            r = _ask(http, work["prompts"][i], cost_weight=w)
            assert r.status_code == 200, r.text
            assert r.headers["x-switchman-model"] == model, (i, w)
        log = log_path.read_text()
    for model in NEW:
        assert (
            f"routers[0] {ROUTER}: {model} from profile {work['dir']}/router2/profiles/"
            f"{model}.json (90 prompts of new.parquet)"
        ) in log
    assert f"routers[0] {ROUTER}: stranger unknown to this router" in log


def test_gateway_estimates_equal_the_extended_routers(work: dict[str, Any]) -> None:
    """The scores behind those choices: the same numbers as `switchman route` reads."""
    config = load_config(_write(work, "equal", _profiled_config(work)))
    extended = Router.load(work["dir"] / "router2", encoder=default_encoder(work["cache"]))
    with ServerThread(create_app(config), free_port(), **server_options(config)) as gw:
        scorer = gw.app.state.gateway.routing.routers[ROUTER].scorer
        prior = gw.app.state.gateway.routing.routers["test/prior"].scorer
        got = scorer.estimate(work["prompts"])
        # read once the gateway runs, as it is: its start pins BLAS to one thread for the
        # whole process, which changes how a 90-prompt batch product rounds (~2e-7)
        want = extended.estimate(work["prompts"])
    # what an online learner's prior width follows: the 90 prompts of the training table and
    # of the profiles; a quality_prior is a guess, known from no prompt
    assert scorer.prompts_seen == {m: 90 for m in got.models}
    assert prior.prompts_seen == {work["trained"][0]: 0, "stranger": 0}
    order = [want.models.index(m) for m in got.models]
    assert set(got.models) == set(want.models)
    assert np.array_equal(got.quality, want.quality[:, order])
    assert np.allclose(got.cost, want.cost[:, order], rtol=1e-12)


# ------------------------------------------------- the pool's prices rule (item 5)


def _table_prices(router: Router) -> dict[str, dict[str, float]]:
    return {
        r["model"]: {"input_per_mtok": r["input_per_mtok"], "output_per_mtok": r["output_per_mtok"]}
        for r in router.describe_models()
    }


@contextlib.contextmanager
def _gateway(
    work: dict[str, Any], name: str, prices: dict[str, dict[str, float]]
) -> Iterator[httpx.Client]:
    raw = {
        "models": _pool(work, work["trained"], **prices),
        "routers": [{"name": ROUTER, "path": "router"}],
    }
    config = load_config(_write(work, name, raw))
    with (
        ServerThread(create_app(config), free_port(), **server_options(config)) as gw,
        httpx.Client(base_url=gw.url, timeout=60) as http,
    ):
        yield http


def test_cost_weight_and_max_cost_follow_the_configured_prices(work: dict[str, Any]) -> None:
    """A pool pricing one model 50,000x its training table's: the gateway decides on the
    configured price, for the cost weight and for max_cost_usd alike."""
    router = Router.load(work["dir"] / "router", encoder=default_encoder(work["cache"]))
    prompt = work["prompts"][0]
    weight = router.default_cost_weight
    est = router.estimate([prompt])
    dear = policy.plan(est, weight)[0]  # what the table's prices choose at this weight
    assert dear != policy.plan(est, 0.0)[0], "the pick must be one the cost weight makes"
    table = _table_prices(router)
    assert table[dear]["input_per_mtok"] > 0 and table[dear]["output_per_mtok"] > 0
    configured = {**table, dear: {k: 50_000 * v for k, v in table[dear].items()}}
    router.reprice({dear: tuple(configured[dear].values())})
    expected = policy.plan(router.estimate([prompt]), weight)[0]
    assert expected != dear
    table_cost = float(est.cost[0, est.models.index(dear)])
    cap = 2 * table_cost  # the table price allows it, 50,000x does not
    with _gateway(work, "table-prices", table) as http:
        r = _ask(http, prompt, cost_weight=weight)
        assert r.headers["x-switchman-model"] == dear, r.text
        r = _ask(http, prompt, cost_weight=weight, max_cost_usd=cap)
        assert r.headers["x-switchman-model"] == dear, r.text
    with _gateway(work, "configured-prices", configured) as http:
        r = _ask(http, prompt, cost_weight=weight)
        assert r.status_code == 200, r.text
        assert r.headers["x-switchman-model"] == expected
        r = _ask(http, prompt, cost_weight=0, max_cost_usd=cap, allowed_models=[dear])
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "no_eligible_model"
        assert f"{dear}: estimated cost $" in error["message"]
        assert f"> max_cost_usd ${cap}" in error["message"]
        r = _ask(http, prompt, cost_weight=weight, max_cost_usd=cap)
        assert r.status_code == 200 and r.headers["x-switchman-model"] != dear
