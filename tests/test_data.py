"""Tests of the outcomes table: importers round-trip real data, errors say file + row + problem."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from switchman.data import (
    COLUMNS,
    FALLBACK_OUTPUT_TOKENS,
    DataError,
    import_llmrouter,
    import_routerbench,
    load_outcomes,
    load_prompts,
    split_by_prompt,
    to_matrices,
    validate_outcomes,
)
from switchman.pool import load_price_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ROUTING = SHARED / "routing"

pytestmark = pytest.mark.skipif(
    not (ROUTING / "routerbench.parquet").is_file(),
    reason=f"shared routing data not found at {ROUTING} (the repo expects ../shared/data)",
)


def _first_prompts(path: Path, n: int) -> pd.DataFrame:
    df = pd.read_parquet(path)
    keep = df["prompt_id"].drop_duplicates().iloc[:n]
    return df[df["prompt_id"].isin(keep)].reset_index(drop=True)


@pytest.fixture(scope="module")
def bench() -> pd.DataFrame:
    """The first 50 prompts (x 11 models) of RouterBench, as stored."""
    return _first_prompts(ROUTING / "routerbench.parquet", 50)


def _canon(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["prompt_id", "model"]).reset_index(drop=True)[list(COLUMNS)]


def _assert_same(got: pd.DataFrame, want: pd.DataFrame, **kw) -> None:
    pd.testing.assert_frame_equal(_canon(got), _canon(want), **kw)


def _wide(long: pd.DataFrame, tokens: bool = False) -> pd.DataFrame:
    """A RouterBench-shaped wide table built from the long one."""
    wide = long.drop_duplicates("prompt_id")[["prompt_id", "prompt", "task"]]
    wide = wide.rename(columns={"prompt_id": "sample_id", "task": "eval_name"})
    wide = wide.set_index("sample_id")
    fields = {"": "quality", "|total_cost": "cost_usd", "|model_response": "response"}
    if tokens:
        fields |= {"|input_tokens": "input_tokens", "|output_tokens": "output_tokens"}
    for suffix, col in fields.items():
        piv = long.pivot(index="prompt_id", columns="model", values=col)
        wide = wide.join(piv.rename(columns=lambda m, s=suffix: f"{m}{s}"))
    wide["oracle_model_to_route_to"] = "claude-1"  # RouterBench has it; importers ignore it
    return wide.reset_index()


def _llmrouter_records(long: pd.DataFrame, full: bool = True) -> list[dict]:
    records = []
    for pid, g in long.groupby("prompt_id", sort=False):
        rec = {"id": pid, "question": g["prompt"].iat[0], "task": g["task"].iat[0]}
        rec["scores"] = dict(zip(g["model"], g["quality"].astype(float), strict=True))
        if full:
            for key, col in (("costs", "cost_usd"), ("responses", "response")):
                rec[key] = dict(zip(g["model"], g[col], strict=True))
        for key in ("input_tokens", "output_tokens"):
            rec[key] = {m: int(v) for m, v in zip(g["model"], g[key], strict=True)}
        records.append(rec)
    return records


# --------------------------------------------------------------------------- formats


def test_canonical_parquet_loads_unchanged() -> None:
    path = ROUTING / "routerbench.parquet"
    pd.testing.assert_frame_equal(load_outcomes(path), pd.read_parquet(path))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_canonical_round_trip(bench: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"outcomes{suffix}"
    if suffix == ".csv":
        bench.to_csv(path, index=False)
    elif suffix == ".jsonl":
        bench.to_json(path, orient="records", lines=True)
    else:
        bench.to_parquet(path)
    _assert_same(load_outcomes(path), bench)


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".csv"])
def test_routerbench_wide_round_trip(bench: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"wide{suffix}"
    wide = _wide(bench)
    wide.to_csv(path, index=False) if suffix == ".csv" else wide.to_pickle(path)
    got = load_outcomes(path)
    # Real RouterBench has no token columns: tokens are estimated as ceil(chars / 4).
    want = bench.assign(
        input_tokens=[math.ceil(len(p) / 4) for p in bench["prompt"]],
        output_tokens=[math.ceil(len(r) / 4) for r in bench["response"]],
    )
    _assert_same(got, want)
    assert set(got["cost_source"]) == {"measured"}


def test_routerbench_wide_with_tokens_is_exact(bench: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "wide.pkl"
    _wide(bench, tokens=True).to_pickle(path)
    _assert_same(load_outcomes(path), bench)
    _assert_same(import_routerbench(_wide(bench, tokens=True), "memory"), bench)


def test_routerbench_without_ids_hashes_the_prompt(bench: pd.DataFrame) -> None:
    wide = _wide(bench).drop(columns=["sample_id", "eval_name"])
    got = import_routerbench(wide, "memory")
    assert got["prompt_id"].nunique() == 50 and set(got["task"]) == {"unknown"}
    assert got["prompt_id"].str.fullmatch(r"p-[0-9a-f]{16}").all()


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_llmrouter_round_trip(bench: pd.DataFrame, tmp_path: Path, suffix: str) -> None:
    records = _llmrouter_records(bench)
    path = tmp_path / f"llmrouter{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(records))
    else:
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    _assert_same(load_outcomes(path), bench)
    _assert_same(import_llmrouter(records, "memory"), bench)


def test_llmrouter_costs_from_price_table(tmp_path: Path) -> None:
    """LLMRouter ships no dollars: prices.json x tokens reproduces the shared estimates."""
    long = _first_prompts(ROUTING / "llmrouter.parquet", 40)
    path = tmp_path / "llmrouter.json"
    path.write_text(json.dumps(_llmrouter_records(long, full=False)))
    with pytest.raises(DataError, match=re.escape(f"{path}: row 1 (prompt_id=")):
        load_outcomes(path)  # no price table: cost is missing
    got = load_outcomes(path, prices=SHARED / "prices.json")
    want = long.assign(response=pd.Series([None] * len(long), dtype="str"))
    _assert_same(got, want, check_exact=False, rtol=1e-12)


def test_price_table_fills_cost_from_estimated_tokens(bench: pd.DataFrame) -> None:
    prices = load_price_table(SHARED / "prices.json")
    bare = bench[["prompt_id", "prompt", "model", "quality"]]
    got = validate_outcomes(bare, "bare.csv", prices=prices)
    tok_in = np.ceil(bench["prompt"].str.len().to_numpy() / 4)
    price_in = bench["model"].map(lambda m: prices[m][0]).to_numpy()
    price_out = bench["model"].map(lambda m: prices[m][1]).to_numpy()
    want = tok_in * price_in / 1e6 + FALLBACK_OUTPUT_TOKENS * price_out / 1e6
    np.testing.assert_allclose(got["cost_usd"].to_numpy(), want, rtol=1e-12)
    assert set(got["cost_source"]) == {"estimated"} and set(got["task"]) == {"unknown"}
    assert got["response"].isna().all() and (got["output_tokens"] == FALLBACK_OUTPUT_TOKENS).all()


def test_price_table_missing_model(bench: pd.DataFrame) -> None:
    bare = bench.drop(columns=["cost_usd"])
    prices = {m: (1.0, 2.0) for m in bench["model"].unique() if m != "claude-2"}
    with pytest.raises(DataError, match=r"x\.csv: no price for model\(s\) \['claude-2'\]"):
        validate_outcomes(bare, "x.csv", prices=prices)
    # Only rows without dollars need a price: a measured table loads without one.
    validate_outcomes(bench, "x.csv", prices={})


# --------------------------------------------------------------------------- validation


def _tiny() -> pd.DataFrame:
    """Two prompts x two models, in file order: rows 1-4."""
    return pd.DataFrame({
        "prompt_id": ["p1", "p1", "p2", "p2"],
        "prompt": ["What is 2+2?", "What is 2+2?", "Name a colour.", "Name a colour."],
        "model": ["a", "b", "a", "b"],
        "quality": [1.0, 0.0, 0.5, 1.0],
        "cost_usd": [0.001, 0.01, 0.002, 0.02],
    })  # fmt: skip


def _errors(df: pd.DataFrame, tmp_path: Path, suffix: str = ".csv") -> str:
    path = tmp_path / f"bad{suffix}"
    df.to_parquet(path) if suffix == ".parquet" else df.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load_outcomes(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message[len(str(path)) + 2 :]


def test_tiny_table_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    _tiny().to_csv(path, index=False)
    got = load_outcomes(path)
    assert list(got.columns) == list(COLUMNS) and got["input_tokens"].tolist() == [3, 3, 4, 4]
    assert set(got["cost_source"]) == {"measured"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.drop(columns=["quality"]), "missing column(s) ['quality']"),
        (lambda d: d.drop(columns=["cost_usd"]), "missing column(s) ['cost_usd'] (or pass a"),
        (lambda d: d.iloc[:0], "the outcomes table is empty"),
        (lambda d: d.assign(quality=[1, 0, 1.5, 1]),
         "row 3 (prompt_id='p2', model='a'): quality 1.5 is outside [0, 1]"),
        (lambda d: d.assign(quality=[1, 0, 1, -0.1]),
         "row 4 (prompt_id='p2', model='b'): quality -0.1 is outside [0, 1]"),
        (lambda d: d.assign(quality=[1, None, 1, None]),
         "row 2 (prompt_id='p1', model='b'): quality is missing (2 rows affected)"),
        (lambda d: d.assign(quality=["1", "0", "yes", "1"]),
         "row 3 (prompt_id='p2', model='a'): quality is not a number: 'yes'"),
        (lambda d: d.assign(cost_usd=[0.1, -0.5, 0.1, 0.1]),
         "row 2 (prompt_id='p1', model='b'): cost_usd -0.5 is negative"),
        (lambda d: d.assign(cost_usd=[0.1, 0.1, None, 0.1]),
         "row 3 (prompt_id='p2', model='a'): cost_usd is missing (pass a price table"),
        (lambda d: d.assign(model=[None, "b", "a", "b"]),
         "row 1 (prompt_id='p1', model=nan): model is missing"),
        (lambda d: d.assign(model=["a", "b", "a", "a"]),
         "rows [3, 4] repeat prompt_id='p2', model='a' (1 duplicated pairs)"),
        (lambda d: d.assign(prompt=["What is 2+2?", "What is 3+3?", "x", "x"]),
         "rows 1 and 2: prompt_id 'p1' has different prompt texts (1 prompt ids affected)"),
        (lambda d: d.iloc[[0, 1, 2]],
         "prompt_id 'p2' (row 3) lacks model(s) ['b']; 1 of 2 prompts lack at least one of "
         "the 2 models"),
    ],
)  # fmt: skip
def test_validation_errors_name_file_row_problem(tmp_path: Path, change, expected: str) -> None:
    for suffix in (".csv", ".parquet"):
        assert _errors(change(_tiny()), tmp_path, suffix).startswith(expected)


def test_outcomes_jsonl_with_nested_prompt(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    _tiny().assign(prompt=["x", "x", ["y"], ["y"]]).to_json(path, orient="records", lines=True)
    with pytest.raises(DataError, match=re.escape(
            f"{path}: row 3 (prompt_id='p2', model='a'): prompt is a JSON array, not text "
            "(2 rows affected)")):
        load_outcomes(path)


def test_wide_errors_name_the_wide_row(bench: pd.DataFrame, tmp_path: Path) -> None:
    wide = _wide(bench)
    wide.loc[3, "claude-2"] = 2.0
    message = _errors_pickle(wide, tmp_path)
    sid = wide.loc[3, "sample_id"]
    assert message == f"row 4 (prompt_id='{sid}', model='claude-2'): quality 2 is outside [0, 1]"
    message = _errors_pickle(_wide(bench).drop(columns=["yi-34b-chat"]), tmp_path)
    assert message == "model(s) ['yi-34b-chat'] have '|' columns but no quality column"


def _errors_pickle(wide: pd.DataFrame, tmp_path: Path) -> str:
    path = tmp_path / "bad.pkl"
    wide.to_pickle(path)
    with pytest.raises(DataError, match=re.escape(f"{path}: ")) as info:
        load_outcomes(path)
    return str(info.value)[len(str(path)) + 2 :]


def test_bad_json_line_is_named(bench: pd.DataFrame, tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in _llmrouter_records(bench.iloc[:33])]
    lines.insert(2, '{"question": "broken", ')
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=re.escape(f"{path}: line 3: invalid JSON")):
        load_outcomes(path)
    path.write_text(lines[0] + "\n\n" + json.dumps({"question": "no scores"}))
    with pytest.raises(DataError, match=re.escape(f"{path}: row 3: need 'question' and 'scores'")):
        load_outcomes(path)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"question": "not a list"}))
    with pytest.raises(DataError, match=re.escape(f"{path}: expected a JSON list of objects")):
        load_outcomes(path)


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        load_outcomes(tmp_path / "x.txt")
    with pytest.raises(DataError, match="cannot read"):
        load_outcomes(tmp_path / "absent.parquet")


# --------------------------------------------------------------------------- helpers


def test_to_matrices_matches_pivot(bench: pd.DataFrame) -> None:
    mats = to_matrices(bench)
    assert mats.models == sorted(bench["model"].unique())
    assert list(mats.prompt_ids) == list(bench["prompt_id"].drop_duplicates())
    assert mats.quality.shape == mats.cost.shape == mats.output_tokens.shape == (50, 11)
    for col, grid in (("quality", mats.quality), ("cost_usd", mats.cost),
                      ("output_tokens", mats.output_tokens)):  # fmt: skip
        piv = bench.pivot(index="prompt_id", columns="model", values=col)
        np.testing.assert_array_equal(grid, piv.loc[mats.prompt_ids, mats.models].to_numpy())
    first = bench.drop_duplicates("prompt_id")
    assert mats.prompts == first["prompt"].tolist() and list(mats.tasks) == first["task"].tolist()
    mean_in = bench.groupby("prompt_id", sort=False)["input_tokens"].mean()
    np.testing.assert_allclose(mats.input_tokens, mean_in.to_numpy())


def test_to_matrices_rejects_incomplete(bench: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="exactly one row per"):
        to_matrices(bench.iloc[1:])


def test_mmlupro_load_and_matrices_are_fast() -> None:
    start = time.perf_counter()
    df = load_outcomes(ROUTING / "mmlupro.parquet")
    loaded = time.perf_counter()
    mats = to_matrices(df)
    done = time.perf_counter()
    assert mats.quality.shape == (8403, 28) and not np.isnan(mats.quality).any()
    assert done - loaded < 2.0, f"to_matrices took {done - loaded:.2f}s"
    assert done - start < 10.0, f"load + validate + to_matrices took {done - start:.2f}s"


def test_split_by_prompt_text(bench: pd.DataFrame) -> None:
    # Give two prompt ids the same text: they must land on the same side.
    df = bench.copy()
    twin = df["prompt_id"] == df["prompt_id"].iat[-1]
    df.loc[twin, "prompt"] = df["prompt"].iat[0]
    train, test = split_by_prompt(df, test_fraction=0.3, seed=1)
    assert set(train["prompt"]).isdisjoint(test["prompt"])
    assert len(train) + len(test) == len(df) and test["prompt"].nunique() == 15
    again = split_by_prompt(df.sample(frac=1, random_state=7), test_fraction=0.3, seed=1)[1]
    assert set(again["prompt_id"]) == set(test["prompt_id"])  # deterministic, order-free
    other = split_by_prompt(df, test_fraction=0.3, seed=2)[1]
    assert set(other["prompt_id"]) != set(test["prompt_id"])
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_prompt(df, test_fraction=1.0)


# --------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_load_prompts_ignores_other_columns(
    bench: pd.DataFrame, tmp_path: Path, suffix: str
) -> None:
    df = bench.drop_duplicates("prompt_id").assign(prompt_id=range(100, 150))
    path = tmp_path / f"prompts{suffix}"
    if suffix == ".parquet":
        df.to_parquet(path)
    elif suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    got = load_prompts(path)
    assert list(got.columns) == ["prompt_id", "prompt"]
    assert got["prompt_id"].tolist() == [str(i) for i in range(100, 150)]
    assert got["prompt"].tolist() == df["prompt"].tolist()


def test_load_prompts_from_an_outcomes_table(bench: pd.DataFrame, tmp_path: Path) -> None:
    """One row per (prompt, model) collapses to one row per prompt, in file order."""
    path = tmp_path / "outcomes.parquet"
    bench.to_parquet(path)
    got = load_prompts(path)
    want = bench.drop_duplicates("prompt_id")[["prompt_id", "prompt"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_missing_columns_error_lists_only_the_files_columns(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(path, index=False)
    with pytest.raises(DataError) as caught:
        load_outcomes(path)
    assert str(caught.value).endswith("; found ['a', 'b']")


def test_load_prompts_rejects_nested_json(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt_id": "a", "prompt": "fine"}\n'
                    '{"prompt_id": "b", "prompt": ["not", "text"]}\n'
                    '{"prompt_id": {"x": 1}, "prompt": "fine"}\n')
    with pytest.raises(DataError, match=re.escape(f"{path}: row 3: prompt_id is a JSON object")):
        load_prompts(path)
    path.write_text('{"prompt_id": "a", "prompt": "fine"}\n'
                    '{"prompt_id": "b", "prompt": ["not", "text"]}\n')
    with pytest.raises(DataError, match=re.escape(f"{path}: row 2: prompt is a JSON array, "
                                                  "not text (1 rows)")):
        load_prompts(path)


def test_load_prompts_errors(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    pd.DataFrame({"id": ["a"], "prompt": ["hi"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=re.escape(f"{path}: missing column(s) ['prompt_id']")):
        load_prompts(path)
    pd.DataFrame({"prompt_id": ["a", "b", "a"], "prompt": ["x", "y", "z"]}).to_csv(path)
    with pytest.raises(
        DataError, match=re.escape(f"{path}: rows [1, 3]: prompt_id 'a' has different prompts")
    ):
        load_prompts(path)
    pd.DataFrame({"prompt_id": ["a", "b"], "prompt": ["x", None]}).to_csv(path)
    with pytest.raises(DataError, match=re.escape(f"{path}: row 2: prompt is null")):
        load_prompts(path)
