"""Deterministic train/val/test splits by trip."""
from __future__ import annotations

import numpy as np
import pandas as pd

from trajzoo.qc import stage_counts

SPLITS = ("train", "val", "test")


def split_trips(trip_ids, fractions: dict[str, float], seed: int, max_train: int | None = None,
                max_val: int | None = None, max_test: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign each trip to train, val or test, reproducibly.

    Trip ids are sorted, permuted with ``numpy.random.default_rng(seed)`` and cut by the
    fractions, so the same ids, fractions and seed always give the same split, whatever the input
    order. With ``max_train``, train trips past the cap (in permuted order) are marked
    ``unused`` (reason ``train_cap``), as the paper caps the target train set at 50,000;
    ``max_val`` and ``max_test`` cap the validation and test splits the same way (reasons
    ``val_cap``, ``test_cap``), so a large city can be a target without scoring 10,000s of trips.

    Args:
        trip_ids: iterable of trip id strings (unique).
        fractions: ``{"train": f, "val": f, "test": f}`` summing to 1.
        seed: RNG seed.
        max_train: optional cap on train trips.
        max_val, max_test: optional caps on validation and test trips.

    Returns:
        ``(splits, qc)``: splits with columns trip_id, split; qc per :func:`trajzoo.qc.stage_counts`.

    Raises:
        ValueError: duplicate ids, or fractions that are negative or do not sum to 1.
    """
    ids = np.array(sorted(str(t) for t in trip_ids), dtype=object)
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate trip ids given to split_trips")
    frac = np.array([fractions[s] for s in SPLITS], dtype=float)
    if (frac < 0).any() or not np.isclose(frac.sum(), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(len(ids))
    n = len(ids)
    n_train = int(round(frac[0] * n))
    n_val = int(round(frac[1] * n))
    labels = np.empty(n, dtype=object)
    labels[perm[:n_train]] = "train"
    labels[perm[n_train:n_train + n_val]] = "val"
    labels[perm[n_train + n_val:]] = "test"
    reasons = np.full(n, None, dtype=object)
    for cap, lo, hi, reason in ((max_train, 0, n_train, "train_cap"),
                                (max_val, n_train, n_train + n_val, "val_cap"),
                                (max_test, n_train + n_val, n, "test_cap")):
        if cap is not None and hi - lo > cap:
            labels[perm[lo + cap:hi]] = "unused"
            reasons[perm[lo + cap:hi]] = reason
    splits = pd.DataFrame({"trip_id": ids, "split": labels})
    unused = splits["split"] == "unused"
    qc = stage_counts("split", n, int((~unused).sum()), pd.Series(reasons[unused.to_numpy()], dtype=object))
    return splits, qc


def few_shot_subset(train_ids, fraction: float, seed: int) -> list[str]:
    """A deterministic, nested share of the train trips for few-shot fine-tuning.

    The ids are sorted, permuted with ``numpy.random.default_rng(seed)`` and the first
    ``round(fraction * n)`` (at least 1 when ``fraction > 0`` and ``n > 0``) are taken, so for one
    seed every smaller fraction is a prefix of a larger one: the 5 % subset lies inside the 10 %
    subset, which lies inside the 20 % subset. Input order does not matter.

    Args:
        train_ids: iterable of train trip ids (unique strings).
        fraction: share in (0, 1].
        seed: RNG seed (the same for every fraction of one experiment).

    Returns:
        The chosen ids, sorted.

    Raises:
        ValueError: ``fraction`` outside (0, 1], or duplicate ids.
    """
    if not (0 < fraction <= 1):
        raise ValueError(f"few_shot_subset: fraction must be in (0, 1], got {fraction}")
    ids = np.array(sorted(str(t) for t in train_ids), dtype=object)
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate trip ids given to few_shot_subset")
    n = len(ids)
    k = min(n, max(1, int(round(fraction * n)))) if n else 0
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(ids[perm[:k]].tolist())
