"""Per-stage accounting of trajectories: counts in = kept + rejected, by reason."""
from __future__ import annotations

import pandas as pd


class AccountingError(RuntimeError):
    """A stage's input count differs from kept + rejected (a trajectory was lost silently)."""


def stage_counts(stage: str, n_in: int, n_kept: int, rejected_reasons: pd.Series) -> pd.DataFrame:
    """Build a QC table for one stage and check that nothing was lost.

    Args:
        stage: stage name, e.g. ``"ingest"``, ``"map_matching"``.
        n_in: trajectories entering the stage.
        n_kept: trajectories leaving it.
        rejected_reasons: one reason string per rejected trajectory.

    Returns:
        DataFrame with columns stage, outcome (``"in"``, ``"kept"`` or ``"rejected:<reason>"``),
        count; one row per outcome.

    Raises:
        AccountingError: if ``n_in != n_kept + len(rejected_reasons)``.
    """
    counts = pd.Series(rejected_reasons, dtype=object).value_counts()
    return stage_counts_tallied(stage, n_in, n_kept, int(len(rejected_reasons)), dict(counts.items()))


def stage_counts_tallied(stage: str, n_in: int, n_kept: int, n_rejected: int,
                         reason_counts: dict[str, int]) -> pd.DataFrame:
    """:func:`stage_counts` from counts already tallied (e.g. summed over the row groups of a
    streamed rejections table), so no per-trajectory column has to be held in memory.

    Args:
        stage, n_in, n_kept: as in :func:`stage_counts`.
        n_rejected: rejected trajectories.
        reason_counts: rejected trajectories per reason (rows in reason order).

    Returns:
        The table of :func:`stage_counts`.

    Raises:
        AccountingError: if ``n_in != n_kept + n_rejected``.
    """
    n_rej = int(n_rejected)
    if n_in != n_kept + n_rej:
        raise AccountingError(f"stage {stage}: {n_in} in != {n_kept} kept + {n_rej} rejected")
    rows = [{"stage": stage, "outcome": "in", "count": int(n_in)},
            {"stage": stage, "outcome": "kept", "count": int(n_kept)}]
    for reason, count in sorted(reason_counts.items()):
        rows.append({"stage": stage, "outcome": f"rejected:{reason}", "count": int(count)})
    return pd.DataFrame(rows, columns=["stage", "outcome", "count"])


def parquet_rows(path) -> int:
    """Rows of a Parquet file, from its footer (a count independent of any reader of the rows)."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def check_stage_io(qc: pd.DataFrame, stage: str, n_read: int | None = None, n_written: int | None = None) -> None:
    """Check a stage's QC table against counts taken outside the stage's own computation: the
    rows of its input file (``n_read``, e.g. :func:`parquet_rows` of trips.parquet) and the rows
    it wrote (``n_written``). Its own ``in = kept + rejected`` is checked by :func:`stage_counts`;
    this catches a table that balances but does not describe the files.

    Args:
        qc: the stage's QC table (rows of ``stage`` with outcomes ``in`` and ``kept``).
        stage: the stage name in ``qc``.
        n_read: rows the stage's input holds, or None (not checked).
        n_written: rows the stage wrote for its kept trajectories, or None.

    Raises:
        AccountingError: ``stage <stage>: QC says <a> in, the input holds <b>`` (or the same for
            kept / written).
    """
    rows = qc[qc["stage"] == stage]
    got = dict(zip(rows["outcome"], rows["count"].astype(int)))
    if n_read is not None and got.get("in") != int(n_read):
        raise AccountingError(f"stage {stage}: QC says {got.get('in')} in, the input holds {int(n_read)}")
    if n_written is not None and got.get("kept") != int(n_written):
        raise AccountingError(f"stage {stage}: QC says {got.get('kept')} kept, {int(n_written)} were written")
