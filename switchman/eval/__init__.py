"""Evaluation: cost-quality metrics over outcome matrices and reports with plots.

Importing this package pulls in numpy only; matplotlib is imported when a report is drawn.
"""

from switchman.eval.metrics import (
    aiq,
    apgr,
    best_single,
    cpt,
    iso_quality_cost_ratio,
    max_quality,
    operating_point,
    oracle_picks,
    oracle_point,
    quality_at_cost,
    single_model_points,
    summarize,
    upper_hull,
)
from switchman.eval.report import format_table, write_report

__all__ = [
    "aiq",
    "apgr",
    "best_single",
    "cpt",
    "format_table",
    "iso_quality_cost_ratio",
    "max_quality",
    "operating_point",
    "oracle_picks",
    "oracle_point",
    "quality_at_cost",
    "single_model_points",
    "summarize",
    "upper_hull",
    "write_report",
]
