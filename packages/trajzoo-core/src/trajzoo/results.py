"""Result tables: the per-city summary of every model and setting, and the cross-city transfer matrices.

Every table here is built from the **long result format**, one row per (experiment, seed, task,
metric), with the columns of :data:`LONG_COLUMNS`:

- ``city``: the target city (where the model is evaluated);
- ``model``, ``variant`` (``"full"`` or an ablation name);
- ``setting``: one of :data:`SETTINGS` (``untrained``, ``in-city``, ``cross-city``, ``zero-shot``,
  ``few-shot``);
- ``train_fraction``: share of the target's train split used for fine-tuning (1.0 normally, 0.0 for
  zero-shot, F for few-shot);
- ``sources``: ``"none"`` or the source cities, sorted and joined by ``"+"``;
- ``task``, ``metric``, ``value``, ``n_train``, ``n_test``, ``seed``, ``config_digest``.

One *experiment* (one row of a summary) is one (model, variant, setting, train_fraction, sources);
:func:`run_label` names it.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

#: Metrics where smaller is better; every other metric is larger-is-better.
LOWER_IS_BETTER = {"MAE", "MAPE", "RMSE", "L1", "MeanRank"}  # L1: TrajGANR AOI function

#: The settings of an experiment, in the order tables list them.
SETTINGS: tuple[str, ...] = ("untrained", "in-city", "cross-city", "zero-shot", "few-shot")
#: Settings that use source cities: the rows of a transfer matrix.
TRANSFER_SETTINGS: tuple[str, ...] = ("cross-city", "zero-shot", "few-shot")
#: ``train_fraction`` of a setting when it is not few-shot (a different value is shown in the label).
DEFAULT_TRAIN_FRACTION: dict[str, float] = {"untrained": 1.0, "in-city": 1.0, "cross-city": 1.0, "zero-shot": 0.0}

#: Columns of the long result format.
LONG_COLUMNS = ["city", "model", "variant", "setting", "train_fraction", "sources", "task", "metric", "value",
                "n_train", "n_test", "seed", "config_digest"]
#: Columns that identify one experiment on one target.
EXPERIMENT_KEYS = ["model", "variant", "setting", "train_fraction", "sources"]
#: Columns of :func:`summary_table`.
SUMMARY_COLUMNS = ["run", *EXPERIMENT_KEYS, "task", "metric", "mean", "std", "n_seeds", "ci95", "n_test", "n_train",
                   "mark"]
#: Columns :func:`transfer_long` adds to the long rows.
TRANSFER_EXTRA_COLUMNS = ["setting_label", "in_city", "relative_change"]


def _fmt(x: float) -> str:
    if x is None or not np.isfinite(x):
        return ""
    return f"{x:.4f}" if abs(x) < 100 else f"{x:.1f}"


def _pct(fraction: float) -> str:
    """0.05 -> "5", 0.125 -> "12.5" (percent, up to 6 significant digits)."""
    return f"{100.0 * float(fraction):.6g}"


def _field(row: Any, key: str, default: Any = None) -> Any:
    if isinstance(row, Mapping) or hasattr(row, "get") and not hasattr(row, "_fields"):
        value = row.get(key, default)
    else:
        value = getattr(row, key, default)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return value


def setting_label(setting: str, train_fraction: float | None = None) -> str:
    """Short label of a setting: ``"few-shot-5"`` for few-shot on 5 % of the target's train split,
    the setting itself otherwise. Used in file names and matrix titles."""
    if setting == "few-shot":
        if train_fraction is None or (isinstance(train_fraction, float) and math.isnan(train_fraction)):
            raise ValueError("setting_label: a few-shot setting needs its train_fraction")
        return f"few-shot-{_pct(train_fraction)}"
    return str(setting)


def run_label(row: Any) -> str:
    """Readable, deterministic label of one experiment.

    ``model``, then ``" / <variant>"`` unless the variant is ``"full"``, then in brackets the setting
    (few-shot with its percentage of the train split), ``", <F>% of train"`` when a non-few-shot
    setting uses a train fraction other than its default (:data:`DEFAULT_TRAIN_FRACTION`), and
    ``" from <sources>"`` unless sources is ``"none"``. A row with no setting (older tables) is the
    bare model name. Examples::

        metatrl (in-city)
        transfertraj (few-shot 5% from chengdu+sanfrancisco)
        metatrl / no-mke-road-encoder (cross-city from sanfrancisco)

    Every part of (model, variant, setting, train_fraction, sources) that can differ is shown, so
    two different experiments never share a label.

    Args:
        row: a mapping, pandas Series or namedtuple with model and optionally variant, setting,
            train_fraction, sources.
    """
    model = str(_field(row, "model", _field(row, "run", "")))
    variant = str(_field(row, "variant", "full"))
    setting = str(_field(row, "setting", ""))
    fraction = _field(row, "train_fraction")
    sources = str(_field(row, "sources", "none"))
    label = model if variant == "full" else f"{model} / {variant}"
    if not setting:
        return label
    if setting == "few-shot":
        inner = f"few-shot {_pct(fraction)}%" if fraction is not None else "few-shot"
    else:
        inner = setting
        default = DEFAULT_TRAIN_FRACTION.get(setting)
        if fraction is not None and default is not None and not math.isclose(float(fraction), default):
            inner += f", {_pct(fraction)}% of train"
    if sources != "none":
        inner += f" from {sources}"
    return f"{label} ({inner})"


def _normalise(long: pd.DataFrame) -> pd.DataFrame:
    """Fill the optional experiment columns of older tables (a ``run`` column instead of ``model``)."""
    long = long.copy()
    if "model" not in long:
        if "run" not in long:
            raise ValueError("result table needs a model (or run) column")
        long["model"] = long["run"]
    defaults = {"variant": "full", "setting": "", "sources": "none", "seed": 0}
    for col, value in defaults.items():
        if col not in long:
            long[col] = value
        long[col] = long[col].fillna(value)
    if "train_fraction" not in long:
        long["train_fraction"] = long["setting"].map(lambda s: DEFAULT_TRAIN_FRACTION.get(s, 1.0))
    long["train_fraction"] = long["train_fraction"].astype(float).fillna(1.0)
    for col in ("n_train", "n_test"):
        if col not in long:
            long[col] = np.nan
    for col in ("model", "variant", "setting", "sources", "task", "metric"):
        long[col] = long[col].astype(str)
    return long


def _setting_order(setting: pd.Series) -> pd.Series:
    return setting.map(lambda s: SETTINGS.index(s) if s in SETTINGS else len(SETTINGS))


def _ci95(std: float, n: int) -> float:
    """Half-width of the 95 % confidence interval of a mean: t_{0.975, n-1} * std / sqrt(n)."""
    from scipy.stats import t

    if n < 2:
        return float("nan")
    return float(t.ppf(0.975, n - 1) * std / math.sqrt(n))


def summary_table(long: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, variant, setting, train_fraction, sources, task, metric): statistics over seeds.

    Args:
        long: the long result format (:data:`LONG_COLUMNS`; city and config_digest are not used;
            variant, setting, train_fraction, sources and seed are filled with defaults if absent).

    Returns:
        DataFrame with columns :data:`SUMMARY_COLUMNS`: ``run`` (:func:`run_label`), the experiment
        keys, task, metric, ``mean`` over seeds, ``std`` (ddof = 1; 0 for one seed), ``n_seeds``,
        ``ci95`` (half-width of the 95 % confidence interval of the mean, Student t with n_seeds - 1
        degrees of freedom, ``scipy.stats.t``; NaN for one seed), ``n_test`` and ``n_train`` (of the
        first seed), ``mark`` (``"best"``, ``"second"`` or ``""``; see :func:`rank_marks`).
        Sorted by model, variant (full first), setting (:data:`SETTINGS` order), train_fraction,
        sources, task, metric, so the table does not depend on the input row order.
    """
    long = _normalise(long)
    keys = EXPERIMENT_KEYS + ["task", "metric"]
    long = long.sort_values("seed", kind="stable")
    g = long.groupby(keys, sort=False)
    out = g["value"].agg(mean="mean", n_seeds="count").reset_index()
    std = g["value"].std(ddof=1).reset_index(drop=True)
    out["std"] = np.where(out["n_seeds"] > 1, std.to_numpy(), 0.0)
    out["ci95"] = [_ci95(s, n) for s, n in zip(out["std"], out["n_seeds"])]
    out["n_test"] = g["n_test"].first().to_numpy()
    out["n_train"] = g["n_train"].first().to_numpy()
    out["run"] = [run_label(r) for r in out[EXPERIMENT_KEYS].to_dict("records")]
    order = pd.DataFrame({"model": out["model"], "full": out["variant"] != "full", "variant": out["variant"],
                          "setting": _setting_order(out["setting"]), "train_fraction": out["train_fraction"],
                          "sources": out["sources"], "task": out["task"], "metric": out["metric"]})
    out = out.loc[order.sort_values(list(order.columns), kind="stable").index].reset_index(drop=True)
    marks = rank_marks(out)
    out["mark"] = [marks.get((r, t, m), "") for r, t, m in zip(out["run"], out["task"], out["metric"])]
    return out[SUMMARY_COLUMNS]


def rank_marks(table: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """``{(run, task, metric): "best" | "second"}`` by mean within each (task, metric); smaller is
    better for :data:`LOWER_IS_BETTER`. Ties share a mark; a (task, metric) with one row gets none."""
    marks = {}
    for (task, metric), group in table.groupby(["task", "metric"], sort=False):
        if len(group) < 2:
            continue
        values = sorted(set(group["mean"].dropna()), reverse=metric not in LOWER_IS_BETTER)
        for run, v in zip(group["run"], group["mean"]):
            if values and v == values[0]:
                marks[(run, task, metric)] = "best"
            elif len(values) > 1 and v == values[1]:
                marks[(run, task, metric)] = "second"
    return marks


def improvement(table: pd.DataFrame, reference_model: str) -> pd.DataFrame:
    """Relative improvement of each of the reference model's rows over the best row of the OTHER
    models in the same (task, metric): (m - b) / |b| when larger is better, (b - m) / |b| when
    smaller is better (so positive = the reference model is better; paper Table 2's row).

    Args:
        table: :func:`summary_table` output.
        reference_model: the model compared (named in config).

    Returns:
        DataFrame with columns run (the reference row's label), task, metric, reference (its mean),
        best_other_run, best_other (that run's mean), improvement; one row per reference row and
        (task, metric) that has another model's row; NaN improvement when the best other mean is 0.
    """
    cols = ["run", "task", "metric", "reference", "best_other_run", "best_other", "improvement"]
    rows = []
    ref = table[table["model"] == reference_model]
    others = table[(table["model"] != reference_model) & table["mean"].notna()]
    for r in ref.itertuples():
        cand = others[(others["task"] == r.task) & (others["metric"] == r.metric)]
        if cand.empty:
            continue
        lower = r.metric in LOWER_IS_BETTER
        best = cand.loc[cand["mean"].idxmin() if lower else cand["mean"].idxmax()]
        b, m = float(best["mean"]), float(r.mean)
        imp = float("nan") if b == 0 else ((b - m) if lower else (m - b)) / abs(b)
        rows.append((r.run, r.task, r.metric, m, best["run"], b, imp))
    return pd.DataFrame(rows, columns=cols)


def _arrow(metric: str) -> str:
    return "↓" if metric in LOWER_IS_BETTER else "↑"


def _markdown(df: pd.DataFrame) -> str:
    """Pipe table of string cells (numbers are already formatted; tabulate must not re-parse them)."""
    return df.to_markdown(index=False, tablefmt="pipe", disable_numparse=True)


def summary_markdown(city: str, long: pd.DataFrame, qc: pd.DataFrame, reference_model: str | None = None) -> str:
    """Markdown summary of every model and setting evaluated on ``city``.

    One row per experiment (:func:`run_label`), one column per (task, metric) with the mean
    (± std over seeds when there are several), best in **bold** and second best in *italics*
    (:func:`rank_marks`); then one ``improvement of <run>`` row per row of ``reference_model``
    with variant "full" and a setting other than "untrained" (:func:`improvement`); then the
    test (train) trajectory counts per experiment and task, and the city's data accounting.

    Args:
        city: the target city (title).
        long: the long result format (:data:`LONG_COLUMNS`); when it has a city column only the
            rows of ``city`` are used.
        qc: the city's accounting, columns stage, outcome, count.
        reference_model: model whose improvement over the best other model is shown; None or a
            model absent from ``long``: no improvement rows.
    """
    if "city" in long.columns:
        long = long[long["city"].astype(str) == str(city)]
    table = summary_table(long)
    lines = [f"# {city}: downstream results", ""]
    if table.empty:
        lines += ["No results.", ""]
    else:
        cols = list(dict.fromkeys(zip(table["task"], table["metric"])))
        names = [f"{t} {m} {_arrow(m)}" for t, m in cols]
        cell = {(r.run, r.task, r.metric): r for r in table.itertuples()}
        runs = list(dict.fromkeys(table["run"]))
        body = []
        for run in runs:
            row = {"run": run}
            for (task, metric), name in zip(cols, names):
                r = cell.get((run, task, metric))
                text = "" if r is None else _fmt(r.mean) + (f" ± {_fmt(r.std)}" if r.n_seeds > 1 else "")
                mark = "" if r is None else r.mark
                row[name] = f"**{text}**" if mark == "best" and text else f"*{text}*" if mark == "second" and text \
                    else text
            body.append(row)
        if reference_model:
            imp = improvement(table, reference_model)
            shown = table[(table["model"] == reference_model) & (table["variant"] == "full")
                          & (table["setting"] != "untrained")]["run"]
            for run in dict.fromkeys(shown):
                part = imp[imp["run"] == run]
                if part.empty:
                    continue
                values = {(t, m): v for t, m, v in zip(part["task"], part["metric"], part["improvement"])}
                row = {"run": f"improvement of {run}"}
                for c, name in zip(cols, names):
                    v = values.get(c)
                    row[name] = f"{v * 100:+.2f}%" if v is not None and np.isfinite(v) else ""
                body.append(row)
        lines += [_markdown(pd.DataFrame(body, columns=["run"] + names)), "",
                  "Mean over seeds (± standard deviation when there are several; the 95% confidence "
                  "interval is in summary.csv). Best in bold, second best in italics; ↓ lower is better, "
                  "↑ higher is better."]
        if reference_model:
            lines.append(f"Improvement: of {reference_model} over the best other model, per column.")
        counts = table.groupby(["run", "task"], sort=False)[["n_test", "n_train"]].first().reset_index()
        tasks = list(dict.fromkeys(counts["task"]))
        grid = counts.assign(cell=[f"{_count(a)} ({_count(b)})" for a, b in zip(counts["n_test"], counts["n_train"])])
        wide = grid.pivot(index="run", columns="task", values="cell").reindex(index=runs, columns=tasks).fillna("")
        lines += ["", "## Test trajectories per task (train in brackets)", "",
                  _markdown(wide.reset_index())]
    lines += ["", "## Data accounting (trajectories)", ""]
    q = qc[["stage", "outcome", "count"]].astype(str) if len(qc) else pd.DataFrame(columns=["stage", "outcome", "count"])
    lines.append(_markdown(q))
    return "\n".join(lines) + "\n"


def _count(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(int(x))


# --------------------------------------------------------------------------------------------
# transfer matrices


def transfer_long(long: pd.DataFrame) -> pd.DataFrame:
    """The transfer rows of the long table, each with its in-city reference.

    For every row whose setting is cross-city, zero-shot or few-shot (:data:`TRANSFER_SETTINGS`),
    adds:

    - ``setting_label``: :func:`setting_label` (``"few-shot-5"`` etc.);
    - ``in_city``: the mean over seeds of the in-city rows of the same (city, model, variant, task,
      metric); NaN when there is no in-city row;
    - ``relative_change``: the change relative to in-city, signed so that **positive means better
      than in-city**: ``(value - in_city) / |in_city|`` for larger-is-better metrics,
      ``(in_city - value) / |in_city|`` for :data:`LOWER_IS_BETTER` (MAE, MAPE, RMSE). NaN when
      ``in_city`` is NaN or 0.

    Example: in-city MAE 100 s and zero-shot MAE 110 s give -0.10 (10 % worse); in-city Micro-F1
    0.50 and cross-city 0.55 give +0.10 (10 % better).

    Args:
        long: the long result format (:data:`LONG_COLUMNS`), several cities at once.

    Returns:
        The transfer rows (input columns in input order) plus :data:`TRANSFER_EXTRA_COLUMNS`.
    """
    long = _normalise(long)
    if "city" not in long:
        raise ValueError("transfer_long: the long table needs a city column")
    keys = ["city", "model", "variant", "task", "metric"]
    ref = (long[long["setting"] == "in-city"].groupby(keys, sort=False)["value"].mean()
           .rename("in_city").reset_index())
    rows = long[long["setting"].isin(TRANSFER_SETTINGS)].reset_index(drop=True)
    out = rows.merge(ref, on=keys, how="left", validate="many_to_one")
    out["setting_label"] = [setting_label(s, f) for s, f in zip(out["setting"], out["train_fraction"])]
    value, base = out["value"].astype(float), out["in_city"].astype(float)
    lower = out["metric"].isin(LOWER_IS_BETTER)
    diff = np.where(lower, base - value, value - base)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / np.abs(base)
    out["relative_change"] = np.where(np.isfinite(rel) & (base != 0), rel, np.nan)
    return out[list(rows.columns) + TRANSFER_EXTRA_COLUMNS]


def _transfer_rows(long: pd.DataFrame) -> pd.DataFrame:
    return long if set(TRANSFER_EXTRA_COLUMNS) <= set(long.columns) else transfer_long(long)


def transfer_matrix(long: pd.DataFrame, model: str, task: str, metric: str, setting_label: str,
                    variant: str = "full") -> pd.DataFrame:
    """Matrix of one model's transfer results for one (setting label, task, metric).

    Args:
        long: the long result format, or :func:`transfer_long` output.
        model, task, metric: what the matrix shows.
        setting_label: ``"cross-city"``, ``"zero-shot"`` or a few-shot label such as ``"few-shot-5"``.
        variant: the model variant (``"full"`` by default).

    Returns:
        DataFrame indexed by source-city set (index name ``sources``, sorted), with three columns per
        target city (targets sorted): ``"<target>"`` the mean value over seeds, ``"<target> in-city"``
        the in-city mean, ``"<target> change"`` the relative change of the mean vs in-city (positive
        = better; see :func:`transfer_long`). NaN where a (sources, target) pair was not run. Empty
        (no rows, no columns) when nothing matches.
    """
    rows = _transfer_rows(long)
    sel = rows[(rows["model"] == model) & (rows["variant"] == variant) & (rows["task"] == task)
               & (rows["metric"] == metric) & (rows["setting_label"] == setting_label)]
    if sel.empty:
        return pd.DataFrame(index=pd.Index([], name="sources"))
    cell = sel.groupby(["sources", "city"]).agg(value=("value", "mean"), in_city=("in_city", "first")).reset_index()
    lower = metric in LOWER_IS_BETTER
    diff = (cell["in_city"] - cell["value"]) if lower else (cell["value"] - cell["in_city"])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / cell["in_city"].abs()
    cell["change"] = rel.where(np.isfinite(rel) & (cell["in_city"] != 0))
    sources = sorted(cell["sources"].unique())
    targets = sorted(cell["city"].unique())
    out = pd.DataFrame(index=pd.Index(sources, name="sources"))
    for target in targets:
        part = cell[cell["city"] == target].set_index("sources")
        out[target] = part["value"].reindex(sources).astype(float)
        out[f"{target} in-city"] = part["in_city"].reindex(sources).astype(float)
        out[f"{target} change"] = part["change"].reindex(sources).astype(float)
    return out


def transfer_markdown(long: pd.DataFrame, model: str, task: str, metric: str, setting_label: str,
                      variant: str = "full") -> str:
    """Markdown of :func:`transfer_matrix`: title, the matrix (values formatted as in the summary,
    change as a signed percentage, empty where not run) and how to read it."""
    m = transfer_matrix(long, model, task, metric, setting_label, variant)
    name = model if variant == "full" else f"{model} / {variant}"
    lines = [f"# {name}: {setting_label} transfer, {task} {metric} {_arrow(metric)}", ""]
    if m.empty:
        return "\n".join(lines + ["No results.", ""])
    text = pd.DataFrame(index=m.index)
    for col in m.columns:
        if col.endswith(" change"):
            text[col] = [f"{v * 100:+.2f}%" if np.isfinite(v) else "" for v in m[col]]
        else:
            text[col] = [_fmt(v) for v in m[col]]
    lines += [_markdown(text.reset_index()), "",
              "Rows: source cities; per target city the mean over seeds, the in-city value (pretrained "
              "on the target alone) and the relative change vs in-city (positive = better than in-city)."]
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name))


def transfer_file_stem(setting_label: str, task: str, metric: str) -> str:
    """``<setting>_<task>_<metric>``, characters outside ``[A-Za-z0-9._-]`` replaced by ``-``
    (``Acc@1`` -> ``Acc-1``)."""
    return "_".join(_safe(x) for x in (setting_label, task, metric))


def write_transfer_tables(long: pd.DataFrame, model: str, out_dir: Path, variant: str = "full") -> list[Path]:
    """Write one CSV (:func:`transfer_matrix`) and one Markdown (:func:`transfer_markdown`) per
    (setting label, task, metric) of ``model`` into ``out_dir`` (created if needed), named
    :func:`transfer_file_stem` ``.csv`` / ``.md``.

    Returns:
        The paths written, sorted (empty when the model has no transfer rows).
    """
    rows = _transfer_rows(long)
    rows = rows[(rows["model"] == model) & (rows["variant"] == variant)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for label, task, metric in sorted(set(zip(rows["setting_label"], rows["task"], rows["metric"]))):
        stem = transfer_file_stem(label, task, metric)
        csv, md = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
        transfer_matrix(rows, model, task, metric, label, variant).to_csv(csv, float_format="%.6g")
        md.write_text(transfer_markdown(rows, model, task, metric, label, variant))
        written += [csv, md]
    return sorted(written)


def qc_markdown(city: str, qc: pd.DataFrame) -> str:
    """Markdown of a city's data accounting: per stage, trajectories in, kept and rejected by
    reason, and whether in == kept + rejected; other rows (e.g. GPS fix counts) listed as they are.

    Args:
        qc: columns stage, outcome, count (see :func:`trajzoo.qc.stage_counts`).
    """
    rows = []
    for stage, group in qc.groupby("stage", sort=False):
        counts = dict(zip(group["outcome"], group["count"]))
        rejected = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("rejected:")}
        other = {k: v for k, v in counts.items() if k not in ("in", "kept") and not k.startswith("rejected:")}
        n_in, kept, n_rej = counts.get("in", 0), counts.get("kept", 0), sum(rejected.values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "-"
        others = ", ".join(f"{k} {v}" for k, v in other.items()) or "-"
        ok = "yes" if n_in == kept + n_rej else "**NO**"
        rows.append([str(stage), str(n_in), str(kept), str(n_rej), ok, reasons, others])
    table = pd.DataFrame(rows, columns=["stage", "in", "kept", "rejected", "balanced", "rejected by reason",
                                        "other counts"])
    return "\n".join([f"# {city}: data accounting", "", _markdown(table)]) + "\n"
