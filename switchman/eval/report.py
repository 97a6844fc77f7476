"""Human-readable views of a :func:`switchman.eval.metrics.summarize` result.

A terminal table, a cost-quality plot (PNG) and a self-contained ``report.html`` that shows
the same numbers. matplotlib is an optional extra (``switchman[report]``), so it is imported
only when a plot is drawn.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

Point = tuple[float, float]

PLOT_NAME = "cost_quality.png"
HTML_NAME = "report.html"

# (summary key, column header, format) for each router metric, in display order.
ROUTER_COLUMNS: list[tuple[str, str, str]] = [
    ("aiq", "AIQ", "{:.4f}"),
    ("iso_quality_cost_ratio", "iso-cost", "{:.3f}"),
    ("quality_at_0.25x", "q@0.25x", "{:.4f}"),
    ("quality_at_0.5x", "q@0.5x", "{:.4f}"),
    ("max_quality", "max q", "{:.4f}"),
]
PAIR_COLUMNS: list[tuple[str, str, str]] = [
    ("apgr", "APGR", "{:.4f}"),
    ("cpt50", "CPT(50%)", "{:.3f}"),
    ("cpt80", "CPT(80%)", "{:.3f}"),
]


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    """None / non-finite is a meaningful outcome (never reached), not an error."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return spec.format(value)


def _columns(summary: Mapping) -> list[tuple[str, str, str]]:
    """Router columns, plus the two-model ones when any router has them."""
    rows = summary.get("routers", {}).values()
    pair = any("apgr" in row for row in rows)
    return ROUTER_COLUMNS + (PAIR_COLUMNS if pair else [])


def _router_rows(summary: Mapping) -> list[list[str]]:
    """Routers, then the single-model frontier baseline, formatted cell by cell."""
    cols = _columns(summary)
    named = list(summary.get("routers", {}).items())
    if "single_frontier" in summary:
        named.append(("(single-model frontier)", summary["single_frontier"]))
    out = []
    for name, row in named:
        cells = [str(name)]
        for key, _, spec in cols:
            if key not in row:  # metric not computed for this row (e.g. no strong shares)
                cells.append("")
                continue
            missing = "never" if key in ("iso_quality_cost_ratio", "cpt50", "cpt80") else "-"
            cells.append(_fmt(row[key], spec, missing))
        out.append(cells)
    return out


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def format_table(summary: Mapping) -> str:
    """A plain-text table for the terminal: one row per router, then best single and oracle.

    Costs are mean dollars per prompt; the iso-cost ratio is relative to the best single
    model's cost and q@x are at x times that cost.
    """
    header = ["router", *(h for _, h, _ in _columns(summary))]
    parts = [_text_table(header, _router_rows(summary))]
    base_rows = []
    best = summary.get("best_single")
    if best:
        base_rows.append([f"best single: {best['model']}", f"{best['quality']:.4f}",
                          f"{best['cost']:.3g}"])
    oracle = summary.get("oracle")
    if oracle:
        base_rows.append(["oracle", f"{oracle['quality']:.4f}", f"{oracle['cost']:.3g}"])
    if base_rows:
        parts.append(_text_table(["baseline", "quality", "$/prompt"], base_rows))
    serve = summary.get("serve")
    if serve:
        parts.append(_text_table(["serve point", "cost weight", "quality", "$/prompt"],
                                 [[name, f"{row['cost_weight']:.4g}", f"{row['quality']:.4f}",
                                   f"{row['cost']:.3g}"] for name, row in serve.items()]))
    return "\n\n".join(parts) + "\n"


def _plot(curves: Mapping[str, Sequence[Point]], singles: Mapping[str, Point],
          oracle: Point, path: Path, title: str,
          serve: Mapping[str, Point] | None = None) -> None:
    """Draw on an explicit Agg canvas: no pyplot global state, no backend switch for callers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, points in curves.items():
        pts = sorted((float(c), float(q)) for c, q in points)
        if pts:
            line = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3,
                           linewidth=1.5, label=name)[0]
            if serve and name in serve:
                ax.scatter([serve[name][0]], [serve[name][1]], color=line.get_color(),
                           edgecolor="black", marker="D", s=60, zorder=5,
                           label=f"{name}: serve point")
    for i, (name, (c, q)) in enumerate(singles.items()):
        label = "single models" if i == 0 else None
        ax.scatter([c], [q], color="black", marker="s", s=18, zorder=3, label=label)
        ax.annotate(name, (c, q), xytext=(4, 3), textcoords="offset points", fontsize=7)
    ax.scatter([oracle[0]], [oracle[1]], color="gold", edgecolor="black", marker="*", s=180,
               zorder=4, label="oracle")
    costs = [c for pts in curves.values() for c, _ in pts]
    costs += [c for c, _ in singles.values()] + [oracle[0]]
    costs += [c for c, _ in (serve or {}).values()]
    positive = [c for c in costs if c > 0]
    if positive and len(positive) == len(costs):
        ax.set_xscale("log")
    elif positive:  # zero-cost points (e.g. a local model) cannot sit on a log axis
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel("mean cost per prompt (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=130)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; }
td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
img { max-width: 100%; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
"""


def _html(summary: Mapping, singles: Mapping[str, Point], oracle: Point, title: str) -> str:
    router_header = ["router", *(h for _, h, _ in _columns(summary))]
    best = summary.get("best_single", {})
    best_name = best.get("model")
    model_rows = [
        [name + (" (best single)" if name == best_name else ""), f"{q:.4f}", f"{c:.4g}"]
        for name, (c, q) in sorted(singles.items(), key=lambda kv: -kv[1][1])
    ]
    model_rows.append(["oracle", f"{oracle[1]:.4f}", f"{oracle[0]:.4g}"])
    n = summary.get("n_prompts")
    note = (
        "AIQ: mean quality of the router's non-decreasing hull over costs from 0 to the most "
        "expensive single model's cost (RouterBench; zero below the router's cheapest point). "
        "iso-cost: cost at which the router first matches the best single model's quality, "
        "as a fraction of that model's cost (never = not reached). q@0.25x / q@0.5x: best "
        "quality at a quarter / half of the best single model's cost."
    )
    t = html.escape(title)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{t}</title><style>{_CSS}</style></head><body>",
        f"<h1>{t}</h1>",
        f"<p>{n} prompts.{_models_note(summary)}</p>" if n is not None else "",
        "<h2>Routers</h2>",
        _html_table(router_header, _router_rows(summary)),
        f'<p class="note">{html.escape(note)}</p>',
        "<h2>Cost and quality</h2>",
        f'<img src="{PLOT_NAME}" alt="{t}: mean quality against mean cost per prompt">',
        *_serve_section(summary),
        "<h2>Single models</h2>",
        _html_table(["model", "mean quality", "mean $ per prompt"], model_rows),
        *_task_section(summary),
        *_shares_section(summary),
        *_run_section(summary),
        "</body></html>",
        "",
    ])


def _models_note(summary: Mapping) -> str:
    """Where the test table and the routers' models differ: evaluated on the shared ones."""
    evaluated = summary.get("models_evaluated", {})
    parts = [f"{says}: {', '.join(evaluated[key])}"
             for key, says in (("router_only", "router models not in the test table"),
                               ("test_only", "test models unknown to the router"))
             if evaluated.get(key)]
    if not parts:
        return ""
    return html.escape(f" Routed among the {len(evaluated['models'])} models both have "
                       f"({'; '.join(parts)}).")


def _serve_section(summary: Mapping) -> list[str]:
    """The point ``serve`` runs each router at: its default cost weight."""
    serve = summary.get("serve")
    if not serve:
        return []
    rows = []
    for name, row in serve.items():
        ratio = row.get("cost_ratio_to_best_single")
        rows.append([name, f"{row['cost_weight']:.4g}", f"{row['quality']:.4f}",
                     f"{row['cost']:.4g}", _fmt(ratio, "{:.3f}"),
                     f"{row['quality_minus_best_single']:+.4f}"])
    note = ("The serve point is the policy at the router's default cost weight, the one "
            "`switchman serve` uses unless the configuration sets cost_weight: the cheapest "
            "trade-off whose out-of-fold training quality matched the best single model. "
            "It is marked on the plot with a diamond and scored apart from the sweep. "
            "Decisions here are on the router's own prices; a pool that configures other "
            "prices moves them.")
    return ["<h2>Serve point</h2>",
            _html_table(["router", "cost weight", "quality", "mean $ per prompt",
                         "cost / best single", "quality - best single"], rows),
            f'<p class="note">{html.escape(note)}</p>']


def _task_section(summary: Mapping) -> list[str]:
    """Quality and cost per task of the serve points, the best single model and the oracle."""
    rows = summary.get("by_task")
    if not rows:
        return []
    labels = [k for k in rows[0] if k not in ("task", "n_prompts")]
    header = ["task", "prompts"]
    for label in labels:
        header += [f"{label} quality", f"{label} $"]
    body = [[row["task"], str(row["n_prompts"]),
             *(cell for label in labels for cell in (f"{row[label]['quality']:.4f}",
                                                    f"{row[label]['cost']:.4g}"))]
            for row in rows]
    return ["<h2>By task</h2>", _html_table(header, body)]


def _shares_section(summary: Mapping) -> list[str]:
    """Per router, the share of prompts each model gets at every operating point."""
    points = summary.get("operating_points")
    if not points:
        return []
    out = ["<h2>Models chosen per operating point</h2>"]
    serve = summary.get("serve", {})
    for name, rows in points.items():
        models = list(rows[0]["shares"]) if rows else []
        header = ["point", "cost weight", "quality", "mean $", *models]
        body = [[str(r["point"]), f"{r['cost_weight']:.4g}", f"{r['quality']:.4f}",
                 f"{r['cost']:.4g}", *(_share(r["shares"][m]) for m in models)] for r in rows]
        if name in serve:
            row = serve[name]
            body.append(["serve", f"{row['cost_weight']:.4g}", f"{row['quality']:.4f}",
                         f"{row['cost']:.4g}", *(_share(row["shares"][m]) for m in models)])
        out += [f"<h3>{html.escape(name)}</h3>", _html_table(header, body)]
    return out


def _share(value: float) -> str:
    return f"{value:.0%}" if value else ""


def _run_section(summary: Mapping) -> list[str]:
    """What the figures were made from: seed, encoder, version, files and models."""
    run = summary.get("run")
    if not run:
        return []
    rows = [[key, str(run[key])] for key in ("switchman_version", "seed", "encoder", "split",
                                             "n_train_prompts", "n_points") if key in run]
    files = [(role, record) for role, record in run.get("data", {}).items()]
    if "router_dir" in run:
        rows.append(["router directory", run["router_dir"]["path"]])
        files += [(f"router: {name}", record)
                  for name, record in run["router_dir"]["files"].items()]
    evaluated = summary.get("models_evaluated", {})
    for key, says in (("router_only", "router models not in the test table"),
                      ("test_only", "test models unknown to the router")):
        if evaluated.get(key):
            rows.append([says, ", ".join(evaluated[key])])
    file_rows = [[role, record["path"], str(record["bytes"]), record["sha256"]]
                 for role, record in files]
    return ["<h2>Run</h2>", _html_table(["", "value"], rows),
            _html_table(["file", "path", "bytes", "sha256"], file_rows)]


def write_report(summary: Mapping, curves: Mapping[str, Sequence[Point]],
                 singles: Mapping[str, Point], oracle: Point, out_dir: Path | str,
                 title: str) -> dict[str, Path]:
    """Write ``cost_quality.png`` and ``report.html`` into ``out_dir``; return their paths.

    ``curves`` are each router's (mean cost, mean quality) operating points, ``singles`` each
    model's point and ``oracle`` the oracle's; ``summary`` supplies the metric tables. The
    HTML references the PNG by relative path, so the directory can be moved as a whole.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, page = out / PLOT_NAME, out / HTML_NAME
    serve = {name: (row["cost"], row["quality"]) for name, row in summary.get("serve", {}).items()}
    _plot(curves, singles, oracle, png, title, serve)
    page.write_text(_html(summary, singles, oracle, title), encoding="utf-8")
    return {"png": png, "html": page}
