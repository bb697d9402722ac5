"""Figures for the Snakemake report (matplotlib, Agg backend): road network with matched
trajectories, map-matching statistics, loss curves, metrics per run."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import shapely  # noqa: E402

from trajzoo.results import LOWER_IS_BETTER  # noqa: E402


def plot_network(segments: pd.DataFrame, matched: pd.DataFrame, out: Path, city: str, n_sample: int = 40,
                 seed: int = 0) -> None:
    """Road segments (grey, projected metres) with ``n_sample`` randomly chosen map-matched
    trajectories drawn along their segments (one colour each)."""
    geoms = shapely.from_wkt(segments["geometry_wkt"].to_numpy())
    coords = [np.asarray(g.coords)[:, :2] for g in geoms]
    fig, ax = plt.subplots(figsize=(9, 8), dpi=110)
    # one LineCollection for the whole network and one per trajectory (not one plot call per segment)
    ax.add_collection(LineCollection(coords, colors="0.8", linewidths=0.4))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(matched), size=min(n_sample, len(matched)), replace=False) if len(matched) else []
    colours = plt.cm.tab20(np.linspace(0, 1, max(len(pick), 1)))
    for colour, i in zip(colours, pick):
        route = [coords[int(sid)] for sid in matched["roads"].iloc[int(i)]]
        ax.add_collection(LineCollection(route, colors=[colour], linewidths=1.4))
    ax.autoscale_view()
    ax.set_title(f"{city}: {len(segments)} road segments, {len(pick)} of {len(matched)} matched trajectories")
    ax.set_xlabel("x (m, UTM)")
    ax.set_ylabel("y (m, UTM)")
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_map_matching(stats: pd.DataFrame, out: Path, city: str) -> None:
    """Outcome counts of map matching (kept or rejection reason) and the share of GPS points in
    the kept matched piece per trip."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    outcome = stats["reason"].fillna("kept").value_counts()
    a.barh(outcome.index, outcome.to_numpy(), color="tab:blue")
    a.set_xlabel("trajectories")
    a.set_title(f"{city}: map-matching outcome")
    frac = stats["matched_points"] / stats["n_points"].clip(lower=1)
    b.hist(frac, bins=20, range=(0, 1), color="tab:green")
    b.set_xlabel("share of GPS points in the kept matched piece")
    b.set_ylabel("trajectories")
    b.set_title("coverage of the longest matched piece")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_losses(histories: dict[str, pd.DataFrame], out: Path, city: str) -> None:
    """Training and validation loss per epoch and phase, one panel per run."""
    n = max(len(histories), 1)
    fig, axes = plt.subplots(n, 1, figsize=(9, 3 * n), dpi=110, squeeze=False)
    for ax, (run, hist) in zip(axes[:, 0], histories.items()):
        for phase, group in hist.groupby("phase", sort=False):
            x = np.arange(len(group))
            ax.plot(x, group["train_loss"], marker="o", label=f"{phase} train")
            if group["val_loss"].notna().any():
                ax.plot(x, group["val_loss"], marker="x", linestyle="--", label=f"{phase} val")
        ax.set_title(f"{city} / {run}: pretraining and fine-tuning losses")
        ax.set_xlabel("epoch (within phase)")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_metrics(table: pd.DataFrame, out: Path, city: str) -> None:
    """Bar chart per (task, metric) with one bar per run (mean, std as error bar)."""
    cols = list(dict.fromkeys(zip(table["task"], table["metric"])))
    ncols = 3
    nrows = int(np.ceil(len(cols) / ncols)) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), dpi=110, squeeze=False)
    for ax, (task, metric) in zip(axes.flat, cols):
        part = table[(table["task"] == task) & (table["metric"] == metric)]
        ax.bar(part["run"], part["mean"], yerr=part["std"], color="tab:orange")
        ax.set_title(f"{task} {metric} ({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better)", fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.suptitle(f"{city}: downstream metrics per run")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_transfer_heatmaps(transfer: pd.DataFrame, out_png: Path, model: str, variant: str = "full",
                           max_panels: int = 12) -> list[tuple[str, str, str]]:
    """Heatmaps of one model's transfer results: one panel per (setting label, task, metric).

    Only the first metric of each task (in the order of the table) is drawn, and at most
    ``max_panels`` panels (settings in :data:`trajzoo.results.SETTINGS` order, then few-shot
    fractions ascending, then tasks in table order). In each panel rows are source-city sets,
    columns target cities, the colour is the relative change vs in-city (diverging ``RdBu``
    colormap centred at 0, blue = better than in-city; symmetric limits per panel), and each cell
    is annotated with the mean value over seeds (and the change in per cent). Grey = not run or no
    in-city reference.

    Args:
        transfer: :func:`trajzoo.results.transfer_long` output (several targets).
        out_png: PNG written (Agg backend; same input, same bytes).
        model, variant: which model's rows.
        max_panels: cap on the number of panels.

    Returns:
        The (setting label, task, metric) of each panel drawn, in order.
    """
    from trajzoo.results import SETTINGS, transfer_matrix

    rows = transfer[(transfer["model"] == model) & (transfer["variant"] == variant)]
    first_metric = dict.fromkeys(rows["task"])
    for task, metric in zip(rows["task"], rows["metric"]):
        if first_metric[task] is None:
            first_metric[task] = metric
    labels = rows[["setting", "train_fraction", "setting_label"]].drop_duplicates("setting_label")
    labels = labels.assign(order=labels["setting"].map(lambda s: SETTINGS.index(s) if s in SETTINGS else 99))
    labels = labels.sort_values(["order", "train_fraction", "setting_label"], kind="stable")["setting_label"]
    panels = [(label, task, metric) for label in labels for task, metric in first_metric.items()
              if ((rows["setting_label"] == label) & (rows["task"] == task) & (rows["metric"] == metric)).any()]
    panels = panels[:max_panels]
    ncols = min(3, max(len(panels), 1))
    nrows = int(np.ceil(len(panels) / ncols)) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), dpi=110, squeeze=False)
    cmap = plt.get_cmap("RdBu").with_extremes(bad="0.85")
    for ax, (label, task, metric) in zip(axes.flat, panels):
        m = transfer_matrix(rows, model, task, metric, label, variant)
        targets = [c for c in m.columns if not c.endswith((" in-city", " change"))]
        values = m[targets].to_numpy(np.float64)
        change = m[[f"{t} change" for t in targets]].to_numpy(np.float64)
        finite = change[np.isfinite(change)]
        lim = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
        im = ax.imshow(np.ma.masked_invalid(change), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if np.isfinite(values[i, j]):
                    text = f"{values[i, j]:.4g}"
                    if np.isfinite(change[i, j]):
                        text += f"\n{change[i, j] * 100:+.1f}%"
                    dark = np.isfinite(change[i, j]) and abs(change[i, j]) > 0.6 * lim
                    ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set_xticks(range(len(targets)), targets, fontsize=8)
        ax.set_yticks(range(len(m.index)), list(m.index), fontsize=8)
        ax.set_xlabel("target city")
        ax.set_ylabel("source cities")
        arrow = "lower" if metric in LOWER_IS_BETTER else "higher"
        ax.set_title(f"{label}: {task} {metric} ({arrow} is better)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="change vs in-city (+ = better)")
    if not panels:
        axes[0, 0].text(0.5, 0.5, f"no transfer results for {model}", ha="center", va="center")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    name = model if variant == "full" else f"{model} / {variant}"
    fig.suptitle(f"{name}: transfer vs in-city (cell: mean value; colour: relative change)")
    fig.tight_layout()
    fig.savefig(out_png, metadata={"Software": None})
    plt.close(fig)
    return panels
