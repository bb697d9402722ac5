"""Summary tables: best/second marks and the improvement row, from two small tables of known values."""
from __future__ import annotations

import pandas as pd
import pytest

from trajzoo.results import improvement, rank_marks, summary_markdown, summary_table

PARTS = pd.DataFrame([
    # run, task, metric, value
    ("metatrl", "tte", "MAE", 1.5), ("metatrl", "dp", "Micro-F1", 0.64),
    ("start", "tte", "MAE", 1.6), ("start", "dp", "Micro-F1", 0.55),
    ("random", "tte", "MAE", 2.0), ("random", "dp", "Micro-F1", 0.56),
], columns=["run", "task", "metric", "value"]).assign(n_train=100, n_test=20)


def test_best_and_second_marks_follow_metric_direction():
    marks = rank_marks(summary_table(PARTS))
    assert marks[("metatrl", "tte", "MAE")] == "best" and marks[("start", "tte", "MAE")] == "second"
    assert marks[("metatrl", "dp", "Micro-F1")] == "best" and marks[("random", "dp", "Micro-F1")] == "second"
    assert ("random", "tte", "MAE") not in marks and ("start", "dp", "Micro-F1") not in marks


def test_improvement_over_best_baseline():
    imp = improvement(summary_table(PARTS), "metatrl", ["start", "random"])
    assert imp[("tte", "MAE")] == pytest.approx((1.6 - 1.5) / 1.6)
    assert imp[("dp", "Micro-F1")] == pytest.approx((0.64 - 0.56) / 0.56)


def test_markdown_marks_and_seed_statistics():
    two_seeds = pd.concat([PARTS.assign(seed=0), PARTS.assign(seed=1, value=PARTS["value"] * 1.1)])
    table = summary_table(two_seeds)
    row = table[(table["run"] == "metatrl") & (table["metric"] == "MAE")].iloc[0]
    assert row["mean"] == pytest.approx(1.575) and row["n_seeds"] == 2
    assert row["std"] == pytest.approx(pd.Series([1.5, 1.65]).std())
    qc = pd.DataFrame({"stage": ["ingest"], "outcome": ["in"], "count": [10]})
    text = summary_markdown("porto", PARTS, qc, "metatrl", ["start", "random"])
    assert "| metatrl | **0.6400** | **1.5000** |" in text or "| metatrl | **1.5000** | **0.6400** |" in text
    assert "*1.6000*" in text and "improvement of metatrl" in text and "+6.25%" in text
