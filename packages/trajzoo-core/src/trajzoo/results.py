"""Result tables: the side-by-side summary of several runs on one city."""
from __future__ import annotations

import pandas as pd

#: Metrics where smaller is better; every other metric is larger-is-better.
LOWER_IS_BETTER = {"MAE", "MAPE", "RMSE"}


def _fmt(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 100 else f"{x:.1f}"


def summary_table(parts: pd.DataFrame) -> pd.DataFrame:
    """Runs as rows, (task, metric) as columns: the mean over seeds, its standard deviation
    (0 for one seed), the number of seeds and of test trajectories.

    Args:
        parts: long table with columns run, task, metric, value, n_test (and optionally seed).

    Returns:
        Long DataFrame with columns run, task, metric, mean, std, n_seeds, n_test.
    """
    if "seed" not in parts:
        parts = parts.assign(seed=0)
    g = parts.groupby(["run", "task", "metric"], sort=False)
    out = g["value"].agg(mean="mean", std=lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                         n_seeds="count").reset_index()
    out["n_test"] = g["n_test"].first().to_numpy()
    return out


def rank_marks(table: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """``{(run, task, metric): "best" | "second"}`` by mean, smaller is better for
    :data:`LOWER_IS_BETTER`; ties share a mark."""
    marks = {}
    for (task, metric), group in table.groupby(["task", "metric"], sort=False):
        values = sorted(set(group["mean"].dropna()), reverse=metric not in LOWER_IS_BETTER)
        for run, v in zip(group["run"], group["mean"]):
            if values and v == values[0]:
                marks[(run, task, metric)] = "best"
            elif len(values) > 1 and v == values[1]:
                marks[(run, task, metric)] = "second"
    return marks


def improvement(table: pd.DataFrame, model_run: str, baseline_runs: list[str]) -> dict[tuple[str, str], float]:
    """Relative improvement of ``model_run`` over the best of ``baseline_runs`` per (task, metric):
    (m - b) / b when larger is better, (b - m) / b when smaller is better (paper Table 2's row)."""
    out = {}
    base = table[table["run"].isin(baseline_runs)]
    for (task, metric), group in table[table["run"] == model_run].groupby(["task", "metric"], sort=False):
        b = base[(base["task"] == task) & (base["metric"] == metric)]["mean"]
        if b.empty:
            continue
        m = float(group["mean"].iloc[0])
        lower = metric in LOWER_IS_BETTER
        best = float(b.min() if lower else b.max())
        if best != 0:
            out[(task, metric)] = (best - m) / abs(best) if lower else (m - best) / abs(best)
    return out


def summary_markdown(city: str, parts: pd.DataFrame, qc: pd.DataFrame, model_run: str | None = None,
                     baseline_runs: list[str] | None = None) -> str:
    """Markdown with one row per run and one column per (task, metric): mean (± std over seeds),
    best in bold, second best in italics, an improvement row of ``model_run`` over the best of
    ``baseline_runs``, the number of test trajectories per task, and the city's data accounting.

    Args:
        parts: columns run, task, metric, value, n_train, n_test (, seed).
        qc: columns stage, outcome, count (ingest, map matching, split).
    """
    table = summary_table(parts)
    marks = rank_marks(table) if table["run"].nunique() > 1 else {}
    cols = list(dict.fromkeys(zip(table["task"], table["metric"])))
    runs = list(dict.fromkeys(table["run"]))
    lines = [f"# {city}: downstream results", ""]
    header = ["run"] + [f"{t} {m} {'↓' if m in LOWER_IS_BETTER else '↑'}" for t, m in cols]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    cell = {(r.run, r.task, r.metric): r for r in table.itertuples()}
    for run in runs:
        row = [run]
        for task, metric in cols:
            r = cell.get((run, task, metric))
            if r is None:
                row.append("")
                continue
            text = _fmt(r.mean) + (f" ± {_fmt(r.std)}" if r.n_seeds > 1 else "")
            mark = marks.get((run, task, metric))
            row.append(f"**{text}**" if mark == "best" else f"*{text}*" if mark == "second" else text)
        lines.append("| " + " | ".join(row) + " |")
    if model_run and baseline_runs:
        imp = improvement(table, model_run, baseline_runs)
        if imp:
            lines.append("| " + " | ".join([f"improvement of {model_run}"] +
                                          [f"{imp[c] * 100:+.2f}%" if c in imp else "" for c in cols]) + " |")
    lines += ["", "Best in bold, second best in italics. Test trajectories per task (train in brackets):", ""]
    counts = parts.groupby(["run", "task"], sort=False)[["n_train", "n_test"]].first().reset_index()
    for task, group in counts.groupby("task", sort=False):
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
