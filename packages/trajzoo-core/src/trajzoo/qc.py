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
    n_rej = int(len(rejected_reasons))
    if n_in != n_kept + n_rej:
        raise AccountingError(f"stage {stage}: {n_in} in != {n_kept} kept + {n_rej} rejected")
    rows = [{"stage": stage, "outcome": "in", "count": int(n_in)},
            {"stage": stage, "outcome": "kept", "count": int(n_kept)}]
    for reason, count in sorted(pd.Series(rejected_reasons, dtype=object).value_counts().items()):
        rows.append({"stage": stage, "outcome": f"rejected:{reason}", "count": int(count)})
    return pd.DataFrame(rows, columns=["stage", "outcome", "count"])
