"""Figures for the Snakemake report (matplotlib, Agg backend): road network with matched
trajectories, map-matching statistics, loss curves, metrics per run."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import shapely  # noqa: E402

from trajzoo.results import LOWER_IS_BETTER  # noqa: E402


def plot_network(segments: pd.DataFrame, matched: pd.DataFrame, out: Path, city: str, n_sample: int = 40,
                 seed: int = 0) -> None:
    """Road segments (grey, projected metres) with ``n_sample`` randomly chosen map-matched
    trajectories drawn along their segments (one colour each)."""
    geoms = shapely.from_wkt(segments["geometry_wkt"].to_numpy())
    fig, ax = plt.subplots(figsize=(9, 8), dpi=110)
    for g in geoms:
        xy = np.asarray(g.coords)
        ax.plot(xy[:, 0], xy[:, 1], color="0.8", linewidth=0.4)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(matched), size=min(n_sample, len(matched)), replace=False) if len(matched) else []
    colours = plt.cm.tab20(np.linspace(0, 1, max(len(pick), 1)))
    for colour, i in zip(colours, pick):
        for sid in matched["roads"].iloc[int(i)]:
            xy = np.asarray(geoms[int(sid)].coords)
            ax.plot(xy[:, 0], xy[:, 1], color=colour, linewidth=1.4)
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
