"""Result tables: the side-by-side summary of several runs on one city."""
from __future__ import annotations

import pandas as pd

#: Metrics where smaller is better; every other metric is larger-is-better.
LOWER_IS_BETTER = {"MAE", "MAPE", "RMSE"}


def _fmt(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 100 else f"{x:.1f}"


def summary_markdown(city: str, parts: pd.DataFrame, qc: pd.DataFrame) -> str:
    """Markdown with one row per run and one column per (task, metric), the best value in bold,
    the number of test trajectories per task, and the city's data accounting.

    Args:
        parts: columns run, task, metric, value, n_train, n_test.
        qc: columns stage, outcome, count (ingest, map matching, split).
    """
    wide = parts.pivot_table(index="run", columns=["task", "metric"], values="value", aggfunc="first")
    lines = [f"# {city}: downstream results", ""]
    header = ["run"] + [f"{t} {m} {'↓' if m in LOWER_IS_BETTER else '↑'}" for t, m in wide.columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    best = {}
    for col in wide.columns:
        series = wide[col].dropna()
        if len(series):
            best[col] = series.min() if col[1] in LOWER_IS_BETTER else series.max()
    for run, row in wide.iterrows():
        cells = []
        for col in wide.columns:
            v = row[col]
            cell = "" if pd.isna(v) else _fmt(v)
            if cell and len(wide) > 1 and v == best.get(col):
                cell = f"**{cell}**"
            cells.append(cell)
        lines.append("| " + " | ".join([run] + cells) + " |")
    lines += ["", "Test trajectories per task (train in brackets):", ""]
    counts = parts.groupby(["run", "task"])[["n_train", "n_test"]].first().reset_index()
    for task, group in counts.groupby("task"):
        pairs = ", ".join(f"{r.run}: {r.n_test} ({r.n_train})" for r in group.itertuples())
        lines.append(f"- {task}: {pairs}")
    lines += ["", "## Data accounting (trajectories)", "", "| stage | outcome | count |", "|---|---|---|"]
    for r in qc.itertuples():
        lines.append(f"| {r.stage} | {r.outcome} | {r.count} |")
    return "\n".join(lines) + "\n"


def qc_markdown(city: str, qc: pd.DataFrame) -> str:
    """Markdown of a city's data accounting: per stage, trajectories in, kept and rejected by
    reason, and whether in == kept + rejected; other rows (e.g. GPS fix counts) listed as they are.

    Args:
        qc: columns stage, outcome, count (see :func:`trajzoo.qc.stage_counts`).
    """
    lines = [f"# {city}: data accounting", "",
             "| stage | in | kept | rejected | balanced | rejected by reason | other counts |",
             "|---|---|---|---|---|---|---|"]
    for stage, group in qc.groupby("stage", sort=False):
        counts = dict(zip(group["outcome"], group["count"]))
        rejected = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("rejected:")}
        other = {k: v for k, v in counts.items() if k not in ("in", "kept") and not k.startswith("rejected:")}
        n_in, kept, n_rej = counts.get("in", 0), counts.get("kept", 0), sum(rejected.values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "-"
        others = ", ".join(f"{k} {v}" for k, v in other.items()) or "-"
        ok = "yes" if n_in == kept + n_rej else "**NO**"
        lines.append(f"| {stage} | {n_in} | {kept} | {n_rej} | {ok} | {reasons} | {others} |")
    return "\n".join(lines) + "\n"
