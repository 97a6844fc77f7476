"""What a labelling run has finished, on disk: the outcomes table and its failures sidecar.

Both files are rewritten whole and atomically (a temporary file renamed over the old one),
so a run killed at any moment leaves the last complete version of each, never half a
file. A rerun reads them back: pairs in the outcomes table are skipped; the sidecar keeps
the pairs that failed (retried by the next run) and, for a pair whose answer came but
whose judging failed, the answer itself, so the next run judges it again without paying
for it twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from switchman.data import COLUMNS, DataError, load_outcomes
from switchman.label.calls import Answer

#: Columns a labelled table adds to the canonical ones.
EXTRA_COLUMNS = (
    "latency_s",
    "scoring",
    "reference",
    "judge_model",
    "judge_verdict",
    "judge_cost_usd",
)

Pair = tuple[str, str]  # (prompt_id, model)


def failures_path(out: Path) -> Path:
    """The sidecar of ``out``: ``OUTCOMES.failures.jsonl`` beside it."""
    return out.with_name(out.stem + ".failures.jsonl")


def check_out_path(out: Path) -> None:
    if out.suffix.lower() != ".parquet":
        raise ValueError(
            f"--out {out}: labelling writes the outcomes table as parquet; name a .parquet file"
        )
    if out.exists() and not out.is_file():
        raise ValueError(f"--out {out}: is not a file")


def read_finished(out: Path, prompts: Mapping[str, str]) -> pd.DataFrame:
    """The rows an earlier run wrote to ``out`` (none if it does not exist yet).

    The file must be an outcomes table, and a prompt id it shares with ``prompts`` must
    carry the same text: otherwise it holds outcomes of other prompts, and resuming into
    it would mix them.
    """
    if not out.exists():
        return pd.DataFrame(columns=[*COLUMNS, *EXTRA_COLUMNS])
    load_outcomes(out, complete=False)  # an outcomes table at all, or a clear error
    rows = pd.read_parquet(out)
    rows["prompt_id"] = rows["prompt_id"].astype(str)
    known = rows["prompt_id"].map(prompts)
    stale = known.notna() & (known != rows["prompt"].astype(str))
    if stale.any():
        pid = rows["prompt_id"][stale].iat[0]
        raise DataError(
            f"{out}: prompt_id {pid!r} has another prompt text than in the "
            f"prompts file ({int(stale.sum())} rows): it holds outcomes of other "
            "prompts; name a new --out"
        )
    return rows


def finished_pairs(rows: pd.DataFrame) -> set[Pair]:
    return set(zip(rows["prompt_id"].astype(str), rows["model"].astype(str), strict=True))


def read_failures(out: Path) -> dict[Pair, dict[str, Any]]:
    """The sidecar's records by pair (none if there is no sidecar)."""
    path = failures_path(out)
    if not path.exists():
        return {}
    records: dict[Pair, dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            pair = (str(record["prompt_id"]), str(record["model"]))
        except (ValueError, KeyError, TypeError):
            raise DataError(
                f"{path}: line {lineno}: not a failure record; delete the file "
                "to start its failures afresh"
            ) from None
        records[pair] = record
    return records


def cached_answer(record: Mapping[str, Any]) -> Answer | None:
    """The answer a failure record kept (a pair whose judging failed), if any."""
    kept = record.get("answer")
    if not isinstance(kept, dict):
        return None
    try:
        return Answer(
            str(kept["text"]),
            int(kept["input_tokens"]),
            int(kept["output_tokens"]),
            float(kept["cost_usd"]),
            str(kept["cost_source"]),
            float(kept["latency_s"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def failure_record(
    pair: Pair, stage: str, reason: str, answer: Answer | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "prompt_id": pair[0],
        "model": pair[1],
        "stage": stage,
        "reason": reason,
    }
    if answer is not None:
        record["answer"] = asdict(answer)
    return record


def _replace(path: Path, write: Any) -> None:
    """Write through ``write(tmp)`` to a temporary file, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_finished(out: Path, rows: pd.DataFrame) -> None:
    """The outcomes table: the canonical columns first, then the labelling ones."""
    first = [c for c in (*COLUMNS, *EXTRA_COLUMNS) if c in rows.columns]
    ordered = rows[first + [c for c in rows.columns if c not in first]]
    _replace(out, lambda tmp: ordered.to_parquet(tmp, index=False))


def write_failures(out: Path, records: Mapping[Pair, Mapping[str, Any]]) -> None:
    """The sidecar with ``records``; removed when there are none."""
    path = failures_path(out)
    if not records:
        path.unlink(missing_ok=True)
        return
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values())
    _replace(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
