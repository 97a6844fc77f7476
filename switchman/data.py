"""The outcomes table: what each model scored and cost on each prompt, and how to read it.

Every estimator trains on one long table (``COLUMNS``; see DESIGN "Data: the outcomes
table"), so importers turn other public formats (RouterBench's wide table, LLMRouter's
``{question, scores}`` JSON) into it and ``validate_outcomes`` rejects anything a router
would silently mis-learn from. Errors name the file, the row and the problem, because the
person fixing them is looking at that file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from switchman.pool import load_price_table

logger = logging.getLogger(__name__)

COLUMNS = (
    "prompt_id", "prompt", "task", "model", "quality", "cost_usd",
    "input_tokens", "output_tokens", "cost_source", "response",
)  # fmt: skip
REQUIRED = ("prompt_id", "prompt", "model", "quality")
#: Output tokens assumed when a row has neither a count nor a response text to estimate one
#: from (the data README's typical length of a short / multiple-choice answer).
FALLBACK_OUTPUT_TOKENS = 64
_STRINGS = ("prompt_id", "prompt", "task", "model", "cost_source", "response")
_ROW = "_row"  # 1-based row of the source file, carried so errors can point at it
#: RouterBench per-model columns ``<model>|<suffix>``; the token ones are our extension.
_WIDE_SUFFIXES = {
    "cost_usd": "total_cost", "response": "model_response",
    "input_tokens": "input_tokens", "output_tokens": "output_tokens",
}  # fmt: skip
#: LLMRouter record keys (preferred, alternative) holding {model: value} or one value for all.
_LLMROUTER_FIELDS = {
    "cost_usd": ("costs", "cost"), "response": ("responses", "response"),
    "input_tokens": ("input_tokens", None), "output_tokens": ("output_tokens", None),
}  # fmt: skip

#: Tables the CLI writes (decisions, selected prompts), by file suffix.
TABLE_SUFFIXES = (".parquet", ".csv", ".jsonl")

#: A price table (model -> (input, output) USD per Mtok, as ``pool.load_price_table`` returns)
#: or the path of a ``prices.json``.
Prices = Mapping[str, tuple[float, float]] | str | Path


class DataError(ValueError):
    """An outcomes or prompts file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class OutcomeMatrices:
    """The outcomes table as dense arrays: row i is ``prompt_ids[i]``, column j ``models[j]``.

    ``quality``, ``cost`` and ``output_tokens`` are (n, m); ``input_tokens`` is (n,), the mean
    over models (the prompt is the same text for all of them; tokenisers differ slightly).
    """

    prompt_ids: np.ndarray
    prompts: list[str]
    tasks: np.ndarray
    models: list[str]
    quality: np.ndarray
    cost: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray

    @property
    def n_prompts(self) -> int:
        return len(self.prompts)


def load_outcomes(path: str | Path, prices: Prices | None = None,
                  complete: bool = True) -> pd.DataFrame:
    """Read an outcomes file in any supported format as a validated canonical table.

    Formats: the canonical long table (.parquet, .csv, .jsonl); a RouterBench wide table
    (.pkl/.pickle, .csv, .parquet); LLMRouter records (.json list or .jsonl). ``prices``
    (a table or a ``prices.json`` path) fills ``cost_usd`` where the source has no dollars.
    ``complete=False`` accepts models scored on different prompts (profiles are estimated
    one model at a time). Pickles run code when loaded: only load pickles you trust.
    """
    path, source = Path(path), str(path)
    if path.suffix.lower() in (".json", ".jsonl"):
        records, rows = _read_json_records(path)
        if records and ("scores" in records[0] or "question" in records[0]):
            frame = _llmrouter_raw(records, source, rows)
        else:
            frame = pd.DataFrame.from_records(records).assign(**{_ROW: rows})
    else:
        frame = _read_frame(path)
        if "model" not in frame.columns and any("|" in str(c) for c in frame.columns):
            frame = _routerbench_raw(frame, source)
    out = validate_outcomes(frame, source, prices=prices, complete=complete)
    n_prompts, n_models = out["prompt_id"].nunique(), out["model"].nunique()
    logger.info("loaded %s: %d rows, %d prompts, %d models", source, len(out), n_prompts, n_models)
    return out


def import_routerbench(df: pd.DataFrame, source: str, prices: Prices | None = None) -> pd.DataFrame:
    """Canonical table from a RouterBench wide table (one quality column per model).

    Per model ``m``: quality ``m``, dollars ``m|total_cost``, answer ``m|model_response`` and,
    if present, ``m|input_tokens`` / ``m|output_tokens``. ``sample_id`` becomes the prompt_id
    (else a hash of the prompt text) and ``eval_name`` the task.
    """
    return validate_outcomes(_routerbench_raw(df, source), source, prices=prices)


def import_llmrouter(
    records: Iterable[Mapping[str, Any]], source: str, prices: Prices | None = None
) -> pd.DataFrame:
    """Canonical table from LLMRouter records ``{question, scores: {model: value}, ...}``.

    Optional per record: ``id``, ``task``/``task_name`` and, per model (a dict keyed by
    model, or one value for all), ``costs``/``cost``, ``input_tokens``, ``output_tokens``,
    ``responses``/``response``. LLMRouter ships no dollars, so usually pass ``prices``.
    """
    records = list(records)
    raw = _llmrouter_raw(records, source, list(range(1, len(records) + 1)))
    return validate_outcomes(raw, source, prices=prices)


def table_writer(path: Path) -> Callable[[pd.DataFrame], None]:
    """A function writing a frame to ``path`` in the format its suffix names.

    Checked before any work, so a typo in the suffix costs nothing: parquet bytes silently
    written to ``decisions.csv`` would only fail in whatever reads them next.
    """
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: unsupported output format {suffix or '(no suffix)'!r}; "
                         f"use one of {', '.join(TABLE_SUFFIXES)}")

    def write(frame: pd.DataFrame) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_parquet(path, index=False)

    return write



def load_prompts(path: str | Path, keep: Sequence[str] = ()) -> pd.DataFrame:
    """Read ``prompt_id, prompt`` for routing; every other column is dropped unread.

    A router must never see outcomes at routing time, so parquet and CSV do not even load
    quality or cost. ``keep`` names further columns to keep, as they are, where the file
    has them (labelling reads reference answers and tasks so).
    """
    path, source, cols = Path(path), str(path), ["prompt_id", "prompt"]
    wanted = cols + [c for c in keep if c not in cols]
    if path.suffix.lower() in (".json", ".jsonl"):
        records, rows = _read_json_records(path)
        frame = pd.DataFrame.from_records(records).assign(**{_ROW: rows})
    else:
        frame = _read_frame(path, columns=wanted)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; a prompts file needs {cols}")
    if frame.empty:
        raise DataError(f"{source}: no prompts")
    row_of = frame[_ROW].to_numpy()
    for col in cols:
        bad = np.flatnonzero(frame[col].isna().to_numpy())
        if bad.size:
            raise DataError(f"{source}: row {row_of[bad[0]]}: {col} is null ({bad.size} rows)")
        nested = np.flatnonzero(_nested(frame[col]))
        if nested.size:
            raise DataError(f"{source}: row {row_of[nested[0]]}: {col} is "
                            f"{_not_text(frame[col].iat[nested[0]])} ({nested.size} rows)")
    # Repeats of the same (id, text) pair are harmless (an outcomes table used as the prompts
    # file has one per model) and are collapsed; one id with two texts is ambiguous.
    kept = [c for c in wanted[len(cols):] if c in frame.columns]
    frame = frame[cols + kept].astype({c: "str" for c in cols})
    repeat = frame[cols].duplicated().to_numpy()
    frame, row_of = frame[~repeat].reset_index(drop=True), row_of[~repeat]
    dup = frame["prompt_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        first = frame["prompt_id"].iat[np.flatnonzero(dup)[0]]
        same = row_of[(frame["prompt_id"] == first).to_numpy()].tolist()
        n_ids = frame["prompt_id"][dup].nunique()
        raise DataError(
            f"{source}: rows {same[:5]}: prompt_id {first!r} has different prompts "
            f"({n_ids} ids affected)"
        )
    if repeat.any():
        logger.info("%s: collapsed %d repeated (prompt_id, prompt) rows", source, repeat.sum())
    return frame


def _nested(values: pd.Series) -> np.ndarray:
    """Which values are a JSON array or object: JSON input may nest, and str() of a list is
    not the text anybody meant."""
    return np.fromiter((isinstance(v, (list, dict)) for v in values), bool, len(values))


def _not_text(value: Any) -> str:
    return f"a JSON {'array' if isinstance(value, list) else 'object'}, not text"


def _read_frame(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A parquet / CSV / pickle file as a frame with its 1-based row numbers in ``_ROW``."""
    source, suffix = str(path), path.suffix.lower()
    try:
        if suffix == ".parquet":
            names = pq.read_schema(path).names
            frame = pd.read_parquet(path, columns=[c for c in columns or names if c in names])
        elif suffix == ".csv":
            # All text: ids keep leading zeros and an answer "NA" stays an answer, not a null.
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""],
                usecols=None if columns is None else (lambda c: c in columns),
            )  # fmt: skip
        elif suffix in (".pkl", ".pickle"):
            frame = pd.read_pickle(path)
        else:
            raise DataError(f"{source}: unsupported file type {suffix!r}")
    except DataError:
        raise
    except Exception as exc:  # the readers raise many types; all mean "unreadable file"
        raise DataError(f"{source}: cannot read: {exc}") from exc
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, found {type(frame).__name__}")
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    return frame.reset_index(drop=True).assign(**{_ROW: np.arange(1, len(frame) + 1)})


def _read_json_records(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Objects of a JSON list (row = position) or of a JSONL file (row = line number)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{source}: cannot read: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        if not isinstance(data, list):
            raise DataError(f"{source}: expected a JSON list of objects")
        pairs = list(enumerate(data, start=1))
    else:
        pairs = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                pairs.append((lineno, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{source}: line {lineno}: invalid JSON: {exc.msg}") from exc
    for row, obj in pairs:
        if not isinstance(obj, dict):
            raise DataError(f"{source}: row {row}: expected a JSON object")
    return [obj for _, obj in pairs], [row for row, _ in pairs]


def _routerbench_raw(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Melt the wide table, row-major, so rows stay in file order; values are checked later."""
    df = df.set_axis([str(c) for c in df.columns], axis=1)
    models = sorted({c.split("|", 1)[0] for c in df.columns if "|" in c})
    lacking = [m for m in models if m not in df.columns]
    if lacking:
        raise DataError(f"{source}: model(s) {lacking} have '|' columns but no quality column")
    if "prompt" not in df.columns:
        raise DataError(f"{source}: a RouterBench table needs a 'prompt' column")
    n, k = len(df), len(models)
    rows = df[_ROW].to_numpy() if _ROW in df.columns else np.arange(1, n + 1)
    if "sample_id" in df.columns:
        ids = df["sample_id"].astype("str").to_numpy(dtype=object)
    else:
        ids = df["prompt"].map(_text_id, na_action="ignore").to_numpy(dtype=object)
    task = df["eval_name"].to_numpy(dtype=object) if "eval_name" in df.columns else [None] * n
    long = {
        "prompt_id": np.repeat(ids, k),
        "prompt": np.repeat(df["prompt"].to_numpy(dtype=object), k),
        "task": np.repeat(np.asarray(task, dtype=object), k),
        "model": np.tile(np.asarray(models, dtype=object), n),
        "quality": df[models].to_numpy().ravel(),
        _ROW: np.repeat(rows, k),
    }
    for col, suffix in _WIDE_SUFFIXES.items():
        long[col] = df.reindex(columns=[f"{m}|{suffix}" for m in models]).to_numpy().ravel()
    return pd.DataFrame(long)


def _llmrouter_raw(records: list[Mapping[str, Any]], source: str, rows: list[int]) -> pd.DataFrame:
    out: list[dict[str, Any]] = []
    for row, rec in zip(rows, records, strict=True):
        scores, question = rec.get("scores"), rec.get("question")
        if not isinstance(scores, Mapping) or not scores or question is None:
            raise DataError(f"{source}: row {row}: need 'question' and 'scores': {{model: value}}")
        pid = rec.get("id", rec.get("prompt_id"))
        pid = _text_id(question) if pid is None and isinstance(question, str) else pid
        task = rec.get("task", rec.get("task_name"))
        fields = {col: rec.get(a, rec.get(b)) for col, (a, b) in _LLMROUTER_FIELDS.items()}
        for model, score in scores.items():
            entry = dict(prompt_id=pid, prompt=question, task=task, model=model, quality=score)
            for col, value in fields.items():
                entry[col] = value.get(model) if isinstance(value, Mapping) else value
            out.append({**entry, _ROW: row})
    return pd.DataFrame.from_records(out)


def _text_id(text: str) -> str:
    """A stable id from the prompt text, for sources that carry none."""
    return "p-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _resolve_prices(prices: Prices | None) -> dict[str, tuple[float, float]] | None:
    if prices is None:
        return None
    if isinstance(prices, str | Path):
        try:
            return load_price_table(prices)
        except ValueError as exc:
            raise DataError(str(exc)) from exc
    return {name: (float(p[0]), float(p[1])) for name, p in prices.items()}


def validate_outcomes(
    df: pd.DataFrame, source: str, *, prices: Prices | None = None, complete: bool = True
) -> pd.DataFrame:
    """Check and normalise an outcomes table; return it with exactly ``COLUMNS``, typed.

    Missing tokens are estimated as ceil(characters / 4) of the prompt / response; missing
    dollars are filled from tokens at ``prices`` (cost_source "estimated"). Raises DataError
    for what would corrupt training: bad quality or cost, duplicate or conflicting rows, and
    prompts not scored for every model (routers compare models on the same prompts; with
    ``complete=False`` that last check is skipped).
    """
    if df is None or len(df) == 0:
        raise DataError(f"{source}: the outcomes table is empty")
    df = df.reset_index(drop=True)
    rows = df[_ROW].to_numpy() if _ROW in df.columns else np.arange(1, len(df) + 1)
    table = _resolve_prices(prices)
    need = list(REQUIRED) + ([] if table is not None else ["cost_usd"])
    missing = [c for c in need if c not in df.columns]
    if missing:
        hint = " (or pass a price table to estimate cost_usd)" if "cost_usd" in missing else ""
        found = [str(c) for c in df.columns if c != _ROW]
        raise DataError(f"{source}: missing column(s) {missing}{hint}; found {found}")
    out = pd.DataFrame({c: df[c] if c in df.columns else None for c in COLUMNS})

    def fail(mask: np.ndarray, problem: str | Callable[[int], str]) -> None:
        bad = np.flatnonzero(mask)
        if bad.size:
            i = bad[0]
            more = f" ({bad.size} rows affected)" if bad.size > 1 else ""
            raise DataError(
                f"{source}: row {rows[i]} (prompt_id={out['prompt_id'].iat[i]!r}, "
                f"model={out['model'].iat[i]!r}): {problem(i) if callable(problem) else problem}"
                f"{more}"
            )

    for col in ("prompt_id", "prompt", "model"):
        fail(out[col].isna().to_numpy(), f"{col} is missing")
        fail(_nested(out[col]), lambda i, c=col: f"{c} is {_not_text(out[c].iat[i])}")
    for col in ("quality", "cost_usd", "input_tokens", "output_tokens"):
        raw = out[col]
        num = pd.to_numeric(raw, errors="coerce").astype("float64")
        not_number = (num.isna() & raw.notna()).to_numpy()
        fail(not_number, lambda i, c=col, r=raw: f"{c} is not a number: {r.iat[i]!r}")
        out[col] = num
    strings = {c: out[c].astype("str") for c in _STRINGS}
    out = out.assign(**strings)
    out["task"] = out["task"].fillna("unknown")

    prompt_len = out["prompt"].str.len().to_numpy()
    resp_len = out["response"].str.len().to_numpy(dtype="float64", na_value=np.nan)
    estimated_out = np.where(np.isnan(resp_len), FALLBACK_OUTPUT_TOKENS, np.ceil(resp_len / 4))
    for col, estimate in (
        ("input_tokens", np.ceil(prompt_len / 4)),
        ("output_tokens", estimated_out),
    ):
        values = out[col].to_numpy()
        fail(values < 0, f"{col} is negative")
        if np.isnan(values).any():
            logger.info("%s: estimating %s for %d rows", source, col, np.isnan(values).sum())
        out[col] = np.where(np.isnan(values), estimate, values).astype("int64")

    cost = out["cost_usd"].to_numpy()
    given = ~np.isnan(cost)
    if not given.all() and table is not None:
        unpriced = sorted(set(out["model"][~given]) - set(table))
        if unpriced:
            raise DataError(f"{source}: no price for model(s) {unpriced} to estimate cost_usd")
        in_p, out_p = (
            out["model"].map({m: p[k] for m, p in table.items()}).to_numpy(dtype="float64")
            for k in (0, 1)
        )
        tok_in, tok_out = out["input_tokens"].to_numpy(), out["output_tokens"].to_numpy()
        cost = np.where(given, cost, tok_in * in_p / 1e6 + tok_out * out_p / 1e6)
        out["cost_usd"] = cost
    fail(np.isnan(cost), "cost_usd is missing (pass a price table to estimate it from tokens)")
    out["cost_source"] = out["cost_source"].fillna(
        pd.Series(np.where(given, "measured", "estimated"), index=out.index, dtype="str")
    )
    quality = out["quality"].to_numpy()
    fail(np.isnan(quality), "quality is missing")
    fail((quality < 0) | (quality > 1), lambda i: f"quality {quality[i]:g} is outside [0, 1]")
    fail(cost < 0, lambda i: f"cost_usd {cost[i]:g} is negative")
    _check_structure(out, rows, source, complete)
    return out


def _check_structure(out: pd.DataFrame, rows: np.ndarray, source: str,
                     complete: bool = True) -> None:
    """Duplicates, conflicting prompt texts and incomplete prompts, all vectorised."""
    pid_codes, pids = pd.factorize(out["prompt_id"])
    model_codes, models = pd.factorize(out["model"])
    n, m = len(pids), len(models)
    cell = pid_codes.astype(np.int64) * m + model_codes
    counts = np.bincount(cell, minlength=n * m)
    if (counts > 1).any():
        dup_cells = np.flatnonzero(counts > 1)
        first = np.flatnonzero(cell == dup_cells[0])
        raise DataError(
            f"{source}: rows {rows[first].tolist()} repeat prompt_id={pids[dup_cells[0] // m]!r}, "
            f"model={models[dup_cells[0] % m]!r} ({dup_cells.size} duplicated pairs)"
        )
    text_codes, _ = pd.factorize(out["prompt"])
    first_row = np.unique(pid_codes, return_index=True)[1]  # first row of each prompt_id
    conflict = text_codes != text_codes[first_row[pid_codes]]
    if conflict.any():
        i = np.flatnonzero(conflict)[0]
        n_ids = np.unique(pid_codes[conflict]).size
        raise DataError(
            f"{source}: rows {rows[first_row[pid_codes[i]]]} and {rows[i]}: prompt_id "
            f"{out['prompt_id'].iat[i]!r} has different prompt texts ({n_ids} prompt ids affected)"
        )
    if not complete:
        return
    per_prompt = counts.reshape(n, m)
    incomplete = np.flatnonzero((per_prompt == 0).any(axis=1))
    if incomplete.size:
        p = incomplete[0]
        lacking = sorted(str(models[j]) for j in np.flatnonzero(per_prompt[p] == 0))
        raise DataError(
            f"{source}: prompt_id {pids[p]!r} (row {rows[first_row[p]]}) lacks model(s) "
            f"{lacking}; {incomplete.size} of {n} prompts lack at least one of the {m} models"
        )


def to_matrices(df: pd.DataFrame) -> OutcomeMatrices:
    """Dense (prompt x model) arrays of a validated table; prompts in first-seen order."""
    pid_codes, pids = pd.factorize(df["prompt_id"])
    model_codes, model_index = pd.factorize(df["model"], sort=True)
    n, m = len(pids), len(model_index)
    cell = pid_codes.astype(np.int64) * m + model_codes
    if not (np.bincount(cell, minlength=n * m) == 1).all():
        raise DataError("outcomes table: need exactly one row per (prompt_id, model)")

    def dense(col: str) -> np.ndarray:
        grid = np.empty(n * m, dtype=np.float64)
        grid[cell] = df[col].to_numpy(dtype=np.float64)
        return grid.reshape(n, m)

    first = np.unique(pid_codes, return_index=True)[1]
    input_tokens = (
        np.bincount(pid_codes, weights=df["input_tokens"].to_numpy(dtype=np.float64), minlength=n)
        / m
    )
    return OutcomeMatrices(
        prompt_ids=np.asarray(pids, dtype=str),
        prompts=df["prompt"].to_numpy(dtype=object)[first].tolist(),
        tasks=df["task"].to_numpy(dtype=object)[first].astype(str),
        models=[str(x) for x in model_index],
        quality=dense("quality"),
        cost=dense("cost_usd"),
        input_tokens=input_tokens,
        output_tokens=dense("output_tokens"),
    )


#: The fewest prompts a router trains on: the default's 5-fold out-of-fold fit needs at
#: least one held-out prompt per fold.
MIN_TRAINING_PROMPTS = 5


def check_trainable(outcomes: pd.DataFrame, source: str | Path) -> None:
    """Raise ``DataError`` unless a router can learn from the validated ``outcomes`` table.

    A valid outcomes table may still be useless for training: with one model there is
    nothing to choose between, and with a handful of prompts nothing to learn from.
    """
    models = sorted(outcomes["model"].unique())
    if len(models) < 2:
        raise DataError(f"{source}: {len(models)} model ({', '.join(models)});"
                        " a router needs outcomes of at least 2 models to choose between")
    n_prompts = outcomes["prompt_id"].nunique()
    if n_prompts < MIN_TRAINING_PROMPTS:
        raise DataError(f"{source}: {n_prompts} prompt(s); training needs at least "
                        f"{MIN_TRAINING_PROMPTS}")


def split_by_prompt(
    df: pd.DataFrame, test_fraction: float = 0.3, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train / test split in which no prompt text appears on both sides.

    Grouping by text (not id) keeps a benchmark item listed under two ids from leaking
    into the test set; groups are ordered by text, so the split ignores the row order.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    codes, texts = pd.factorize(df["prompt"])
    if len(texts) < 2:
        raise DataError("cannot split: fewer than two distinct prompts")
    by_text = np.argsort(np.asarray(texts, dtype=object), kind="stable")
    shuffled = by_text[np.random.default_rng(seed).permutation(len(texts))]
    n_test = min(max(round(test_fraction * len(texts)), 1), len(texts) - 1)
    is_test = np.zeros(len(texts), dtype=bool)
    is_test[shuffled[:n_test]] = True
    mask = is_test[codes]
    return df[~mask].reset_index(drop=True), df[mask].reset_index(drop=True)
