"""Result tables on a small hand-built long table: seed statistics, marks, improvement over a reference
model, run labels, transfer relative change, matrices and their files, the heatmap."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from trajzoo.plots import plot_transfer_heatmaps
from trajzoo.results import (LONG_COLUMNS, improvement, rank_marks, run_label, setting_label, summary_markdown,
                             summary_table, transfer_file_stem, transfer_long, transfer_markdown, transfer_matrix,
                             write_transfer_tables)

T_975_DF2 = 4.302653  # scipy.stats.t.ppf(0.975, 2)


def _rows(city, model, setting, sources, values, variant="full", fraction=None, seeds=None, n_train=100):
    """Long rows of one experiment: ``values`` = {(task, metric): [value per seed]}."""
    fraction = {"zero-shot": 0.0}.get(setting, 1.0) if fraction is None else fraction
    out = []
    for (task, metric), vs in values.items():
        for seed, v in zip(seeds or range(len(vs)), vs):
            out.append((city, model, variant, setting, fraction, sources, task, metric, v, n_train, 20, seed, "d0"))
    return out


LONG = pd.DataFrame(
    _rows("porto", "metatrl", "in-city", "none", {("tte", "MAE"): [1.0, 1.2, 1.4], ("dp", "Micro-F1"): [0.60, 0.62, 0.64]})
    + _rows("porto", "metatrl", "cross-city", "sanfrancisco", {("tte", "MAE"): [1.0, 1.2], ("dp", "Micro-F1"): [0.65, 0.65]})
    + _rows("porto", "metatrl", "untrained", "none", {("tte", "MAE"): [2.0], ("dp", "Micro-F1"): [0.40]})
    + _rows("porto", "start", "in-city", "none", {("tte", "MAE"): [1.3], ("dp", "Micro-F1"): [0.58]})
    + _rows("porto", "transfertraj", "in-city", "none", {("tte", "MAE"): [1.25], ("dp", "Micro-F1"): [0.55]})
    + _rows("porto", "transfertraj", "few-shot", "chengdu+sanfrancisco", {("tte", "MAE"): [1.5], ("dp", "Micro-F1"): [0.5]},
            fraction=0.05, n_train=5)
    + _rows("sanfrancisco", "metatrl", "in-city", "none", {("tte", "MAE"): [2.0], ("dp", "Micro-F1"): [0.50]})
    + _rows("sanfrancisco", "metatrl", "cross-city", "porto", {("tte", "MAE"): [2.2], ("dp", "Micro-F1"): [0.55]})
    + _rows("sanfrancisco", "metatrl", "cross-city", "chengdu+porto", {("tte", "MAE"): [1.9], ("dp", "Micro-F1"): [0.52]}),
    columns=LONG_COLUMNS)
PORTO = LONG[LONG["city"] == "porto"]
QC = pd.DataFrame({"stage": ["ingest", "ingest"], "outcome": ["in", "kept"], "count": [10, 9]})


def _row(table, run, task, metric):
    part = table[(table["run"] == run) & (table["task"] == task) & (table["metric"] == metric)]
    assert len(part) == 1, (run, task, metric)
    return part.iloc[0]


def test_run_labels_are_readable_and_unique():
    assert run_label({"model": "metatrl"}) == "metatrl"
    assert run_label(dict(model="metatrl", variant="full", setting="in-city", train_fraction=1.0,
                          sources="none")) == "metatrl (in-city)"
    assert run_label(dict(model="transfertraj", variant="full", setting="few-shot", train_fraction=0.05,
                          sources="chengdu+sanfrancisco")) == "transfertraj (few-shot 5% from chengdu+sanfrancisco)"
    assert run_label(dict(model="metatrl", variant="no-mke-road-encoder", setting="cross-city", train_fraction=1.0,
                          sources="sanfrancisco")) == "metatrl / no-mke-road-encoder (cross-city from sanfrancisco)"
    assert run_label(dict(model="m", setting="in-city", train_fraction=0.5)) == "m (in-city, 50% of train)"
    keys = [dict(model=m, variant=v, setting=s, train_fraction=f, sources=src)
            for m in ("a", "b") for v in ("full", "abl") for s in ("untrained", "in-city", "cross-city", "zero-shot")
            for f in (0.0, 1.0) for src in ("none", "x", "x+y")]
    keys += [dict(model="a", variant="full", setting="few-shot", train_fraction=f, sources="x") for f in (0.01, 0.05, 0.1)]
    assert len({run_label(k) for k in keys}) == len(keys)
    assert setting_label("few-shot", 0.05) == "few-shot-5" and setting_label("zero-shot", 0.0) == "zero-shot"


def test_seed_mean_std_and_t_confidence_interval():
    table = summary_table(PORTO)
    r = _row(table, "metatrl (in-city)", "tte", "MAE")
    assert r["n_seeds"] == 3 and r["mean"] == pytest.approx(1.2)
    assert r["std"] == pytest.approx(0.2)  # sqrt((0.2^2 + 0 + 0.2^2) / 2)
    assert r["ci95"] == pytest.approx(T_975_DF2 * 0.2 / math.sqrt(3), rel=1e-6)  # 0.496828
    assert r["n_test"] == 20 and r["n_train"] == 100
    f1 = _row(table, "metatrl (in-city)", "dp", "Micro-F1")
    assert f1["mean"] == pytest.approx(0.62) and f1["std"] == pytest.approx(0.02)
    assert f1["ci95"] == pytest.approx(T_975_DF2 * 0.02 / math.sqrt(3), rel=1e-6)
    one = _row(table, "start (in-city)", "tte", "MAE")
    assert one["n_seeds"] == 1 and one["std"] == 0.0 and math.isnan(one["ci95"])
    two = _row(table, "metatrl (cross-city from sanfrancisco)", "tte", "MAE")
    assert two["mean"] == pytest.approx(1.1) and two["std"] == pytest.approx(math.sqrt(0.02))
    assert len(table) == 6 * 2  # six experiments on porto x two (task, metric)
    # independent of the input row order
    assert summary_table(PORTO.iloc[::-1]).equals(table)


def test_best_and_second_marks_follow_metric_direction():
    table = summary_table(PORTO)
    marks = rank_marks(table)
    assert marks[("metatrl (cross-city from sanfrancisco)", "tte", "MAE")] == "best"  # 1.1
    assert marks[("metatrl (in-city)", "tte", "MAE")] == "second"  # 1.2 (then transfertraj 1.25)
    assert marks[("metatrl (cross-city from sanfrancisco)", "dp", "Micro-F1")] == "best"  # 0.65
    assert marks[("metatrl (in-city)", "dp", "Micro-F1")] == "second"  # 0.62
    assert sum(1 for v in marks.values() if v == "best") == 2 and len(marks) == 4
    assert _row(table, "metatrl (untrained)", "tte", "MAE")["mark"] == ""
    assert _row(table, "metatrl (in-city)", "tte", "MAE")["mark"] == "second"


def test_improvement_over_best_other_model_with_a_configurable_reference():
    table = summary_table(PORTO)
    imp = improvement(table, "metatrl").set_index(["run", "task", "metric"])["improvement"]
    # best other model: transfertraj for MAE (1.25), start for Micro-F1 (0.58); metatrl's own rows
    # (cross-city MAE 1.1) are not "other"
    assert imp[("metatrl (cross-city from sanfrancisco)", "tte", "MAE")] == pytest.approx((1.25 - 1.1) / 1.25)
    assert imp[("metatrl (in-city)", "tte", "MAE")] == pytest.approx((1.25 - 1.2) / 1.25)
    assert imp[("metatrl (in-city)", "dp", "Micro-F1")] == pytest.approx((0.62 - 0.58) / 0.58)
    assert imp[("metatrl (untrained)", "tte", "MAE")] == pytest.approx((1.25 - 2.0) / 1.25)
    # another reference: start against the best of metatrl and transfertraj
    other = improvement(table, "start").set_index(["run", "task", "metric"])["improvement"]
    assert other[("start (in-city)", "tte", "MAE")] == pytest.approx((1.1 - 1.3) / 1.1)
    assert other[("start (in-city)", "dp", "Micro-F1")] == pytest.approx((0.58 - 0.65) / 0.65)


def test_markdown_lists_every_setting_marks_improvement_counts_and_accounting():
    text = summary_markdown("porto", LONG, QC, "metatrl")  # the sanfrancisco rows are left out
    lines = text.splitlines()
    assert "from porto" not in text and "chengdu+porto" not in text
    header = next(line for line in lines if line.startswith("| run"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["run", "dp Micro-F1 ↑", "tte MAE ↓"]

    def all_cells(prefix):
        return [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith(f"| {prefix} ")]

    def cells(prefix):
        return all_cells(prefix)[0]

    assert cells("metatrl (in-city)") == ["metatrl (in-city)", "*0.6200 ± 0.0200*", "*1.2000 ± 0.2000*"]
    assert cells("metatrl (cross-city from sanfrancisco)")[1:] == ["**0.6500 ± 0.0000**", "**1.1000 ± 0.1414**"]
    assert cells("transfertraj (few-shot 5% from chengdu+sanfrancisco)")[1:] == ["0.5000", "1.5000"]
    assert cells("improvement of metatrl (cross-city from sanfrancisco)")[1:] == ["+12.07%", "+12.00%"]
    assert cells("improvement of metatrl (in-city)")[1:] == ["+6.90%", "+4.00%"]
    assert not any(line.startswith("| improvement of metatrl (untrained)") for line in lines)
    assert not any(line.startswith("| improvement of start") for line in lines)
    # second occurrence: the counts table, test (train) per task
    assert all_cells("transfertraj (few-shot 5% from chengdu+sanfrancisco)")[1][1:] == ["20 (5)", "20 (5)"]
    assert all_cells("ingest") == [["ingest", "in", "10"], ["ingest", "kept", "9"]]
    no_ref = summary_markdown("porto", PORTO, QC, "start")
    assert "improvement of start (in-city)" in no_ref and "improvement of metatrl" not in no_ref


def test_transfer_relative_change_is_positive_when_better_for_both_directions():
    tl = transfer_long(LONG)
    assert set(tl["setting"]) == {"cross-city", "few-shot"}
    assert len(tl) == 2 * 2 + 1 * 2 + 2 * 2  # porto cross (2 seeds), porto few-shot, sf cross x2 sources
    sf = tl[(tl["city"] == "sanfrancisco") & (tl["sources"] == "porto")].set_index("metric")
    # both values are 10% above in-city: worse for MAE, better for Micro-F1
    assert sf.loc["MAE", "in_city"] == pytest.approx(2.0) and sf.loc["MAE", "relative_change"] == pytest.approx(-0.1)
    assert sf.loc["Micro-F1", "in_city"] == pytest.approx(0.5)
    assert sf.loc["Micro-F1", "relative_change"] == pytest.approx(0.1)
    porto = tl[(tl["city"] == "porto") & (tl["model"] == "metatrl") & (tl["metric"] == "MAE")]
    assert list(porto["in_city"]) == pytest.approx([1.2, 1.2])  # in-city mean over its 3 seeds
    assert list(porto["relative_change"]) == pytest.approx([(1.2 - 1.0) / 1.2, (1.2 - 1.2) / 1.2])
    few = tl[tl["model"] == "transfertraj"].set_index("metric")
    assert set(few["setting_label"]) == {"few-shot-5"}
    assert few.loc["MAE", "relative_change"] == pytest.approx((1.25 - 1.5) / 1.25)
    # no in-city row -> NaN, never a crash
    lone = transfer_long(LONG[~((LONG["city"] == "sanfrancisco") & (LONG["setting"] == "in-city"))])
    assert lone[lone["city"] == "sanfrancisco"]["relative_change"].isna().all()


def test_transfer_matrix_layout_and_cells():
    m = transfer_matrix(LONG, "metatrl", "tte", "MAE", "cross-city")
    assert m.index.name == "sources" and list(m.index) == ["chengdu+porto", "porto", "sanfrancisco"]
    assert list(m.columns) == ["porto", "porto in-city", "porto change",
                               "sanfrancisco", "sanfrancisco in-city", "sanfrancisco change"]
    assert m.loc["sanfrancisco", "porto"] == pytest.approx(1.1)  # mean of seeds 1.0, 1.2
    assert m.loc["sanfrancisco", "porto in-city"] == pytest.approx(1.2)
    assert m.loc["sanfrancisco", "porto change"] == pytest.approx((1.2 - 1.1) / 1.2)
    assert m.loc["porto", "sanfrancisco"] == pytest.approx(2.2)
    assert m.loc["porto", "sanfrancisco change"] == pytest.approx(-0.1)
    assert m.loc["chengdu+porto", "sanfrancisco change"] == pytest.approx((2.0 - 1.9) / 2.0)
    assert m[["porto", "porto change"]].loc[["porto", "chengdu+porto"]].isna().all().all()
    assert m.loc[["sanfrancisco"], ["sanfrancisco", "sanfrancisco in-city"]].isna().all().all()
    assert transfer_matrix(LONG, "metatrl", "tte", "MAE", "zero-shot").empty
    few = transfer_matrix(LONG, "transfertraj", "dp", "Micro-F1", "few-shot-5")
    assert list(few.index) == ["chengdu+sanfrancisco"] and few.loc["chengdu+sanfrancisco", "porto change"] \
        == pytest.approx((0.5 - 0.55) / 0.55)
    text = transfer_markdown(LONG, "metatrl", "tte", "MAE", "cross-city")
    assert "| sanfrancisco " in text and "+8.33%" in text and "-10.00%" in text and "1.1000" in text


def test_transfer_files_are_named_by_setting_task_metric(tmp_path):
    written = write_transfer_tables(LONG, "transfertraj", tmp_path / "transfertraj")
    assert [p.name for p in written] == ["few-shot-5_dp_Micro-F1.csv", "few-shot-5_dp_Micro-F1.md",
                                         "few-shot-5_tte_MAE.csv", "few-shot-5_tte_MAE.md"]
    back = pd.read_csv(tmp_path / "transfertraj" / "few-shot-5_tte_MAE.csv", index_col="sources")
    assert back.loc["chengdu+sanfrancisco", "porto"] == pytest.approx(1.5)
    assert back.loc["chengdu+sanfrancisco", "porto in-city"] == pytest.approx(1.25)
    again = write_transfer_tables(LONG, "transfertraj", tmp_path / "again")
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in again]
    assert transfer_file_stem("cross-city", "dest", "Acc@1") == "cross-city_dest_Acc-1"


def test_heatmap_writes_a_deterministic_png(tmp_path):
    tl = transfer_long(LONG)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    panels = plot_transfer_heatmaps(tl, a, "metatrl")
    plot_transfer_heatmaps(tl, b, "metatrl")
    assert panels == [("cross-city", "tte", "MAE"), ("cross-city", "dp", "Micro-F1")]
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a.read_bytes() == b.read_bytes()
    empty = tmp_path / "none.png"
    assert plot_transfer_heatmaps(tl, empty, "start") == [] and empty.stat().st_size > 0


def test_qc_markdown_is_a_pandas_pipe_table():
    from trajzoo.results import qc_markdown

    qc = pd.DataFrame({"stage": ["ingest"] * 4 + ["split"] * 3,
                       "outcome": ["in", "kept", "rejected:too_few_points", "fixes_in", "in", "kept", "rejected:x"],
                       "count": [10, 8, 2, 100, 8, 7, 0]})
    text = qc_markdown("porto", qc)
    lines = text.splitlines()
    assert lines[0] == "# porto: data accounting"
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells[0] == ["stage", "in", "kept", "rejected", "balanced", "rejected by reason", "other counts"]
    assert set(cells[1][0]) <= {":", "-"}
    assert cells[2] == ["ingest", "10", "8", "2", "yes", "too_few_points 2", "fixes_in 100"]
    assert cells[3] == ["split", "8", "7", "0", "**NO**", "x 0", "-"]
