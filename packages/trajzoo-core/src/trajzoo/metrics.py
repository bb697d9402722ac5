"""Downstream metrics, computed with scikit-learn (MetaTRL paper, "Evaluation Metrics")."""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, MAPE and RMSE of a regression (TTE: minutes).

    Args:
        y_true, y_pred: ``(n,)`` values in the task's unit. MAPE is a fraction (0.25 = 25 %), as in
            the paper's tables; y_true must be > 0 for it to be finite.

    Raises:
        ValueError: empty or mismatched inputs.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"regression_metrics needs equal non-empty shapes, got {y_true.shape}, {y_pred.shape}")
    return {
        "MAE": float(skm.mean_absolute_error(y_true, y_pred)),
        "MAPE": float(skm.mean_absolute_percentage_error(y_true, y_pred)),
        "RMSE": float(skm.root_mean_squared_error(y_true, y_pred)),
    }


def top_k_accuracy(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of samples whose true class is among the ``k`` highest scores: Recall@k and Acc@k.

    For single-label classification, Recall@k (MetaTRL's tables) and Acc@k (SMARTraj2, appendix
    "Accuracy@k": ``Acc@k = (1/n) sum_i 1[y_i in top-k(s_i)]``) are the same number; this is the one
    implementation behind both names (sklearn's ``top_k_accuracy_score``; ties broken as sklearn
    does).

    Args:
        y_true: ``(n,)`` int class ids in ``[0, C)``.
        scores: ``(n, C)`` class scores.
        k: >= 1; with ``k >= C`` the value is 1.

    Raises:
        ValueError: empty or mismatched inputs, or ``k < 1``.
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != y_true.shape[0] or y_true.size == 0:
        raise ValueError(f"top_k_accuracy needs y (n,) and scores (n, C), got {y_true.shape}, {scores.shape}")
    if k < 1:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    if k >= scores.shape[1]:
        return 1.0
    if k == 1:  # the argmax (first maximum on ties), as the F1 scores use
        return float(np.mean(scores.argmax(axis=1) == y_true))
    return float(skm.top_k_accuracy_score(y_true, scores, k=k, labels=np.arange(scores.shape[1])))


def classification_metrics(y_true: np.ndarray, scores: np.ndarray, ks: tuple[int, ...] = (5,),
                           acc_ks: tuple[int, ...] = ()) -> dict[str, float]:
    """Micro-F1, Macro-F1, Recall@k and Acc@k of a multi-class prediction.

    Args:
        y_true: ``(n,)`` int class ids in ``[0, C)``.
        scores: ``(n, C)`` class scores (logits or probabilities); the prediction is the argmax.
        ks: the k of each Recall@k: share of samples whose true class is among the k top scores
            (sklearn's ``top_k_accuracy_score``); skipped when k >= C.
        acc_ks: the k of each Acc@k (SMARTraj2's name of the same number,
            :func:`top_k_accuracy`); reported for every k (1 when k >= C).

    Returns:
        ``{"Micro-F1", "Macro-F1", "Recall@k"..., "Acc@k"...}``. Macro-F1 averages over the classes present in
        y_true or in the predictions (sklearn's default label set).

    Raises:
        ValueError: empty or mismatched inputs.
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != y_true.shape[0] or y_true.size == 0:
        raise ValueError(f"classification_metrics needs y (n,) and scores (n, C), got {y_true.shape}, {scores.shape}")
    y_pred = scores.argmax(axis=1)
    out = {
        "Micro-F1": float(skm.f1_score(y_true, y_pred, average="micro")),
        "Macro-F1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    n_classes = scores.shape[1]
    for k in ks:
        if k < n_classes:
            out[f"Recall@{k}"] = top_k_accuracy(y_true, scores, k)
    for k in acc_ks:
        out[f"Acc@{k}"] = top_k_accuracy(y_true, scores, k)
    return out


def displacement_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE and RMSE of the Euclidean point error (TransferTraj TP and TR; metres).

    With ``d_i = ||y_pred_i - y_true_i||_2`` over the n recovered points (pooled over all
    trajectories): MAE = mean(d), RMSE = sqrt(mean(d^2)).

    Args:
        y_true, y_pred: ``(n, 2)`` x, y in metres (projected CRS).

    Raises:
        ValueError: empty or mismatched inputs, or not ``(n, 2)``.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 2 or y_true.shape[1] != 2 or y_true.shape[0] == 0:
        raise ValueError(f"displacement_metrics needs equal non-empty (n, 2) shapes, got {y_true.shape}, {y_pred.shape}")
    d = np.linalg.norm(y_pred - y_true, axis=1)
    return {"MAE": float(d.mean()), "RMSE": float(np.sqrt((d ** 2).mean()))}


def r2_regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R^2 (sklearn ``r2_score``) of a location-level regression (TrajGANR traffic
    speed in m/s, hard-braking rate as a share).

    Args:
        y_true, y_pred: ``(n,)`` values in the task's unit.

    Raises:
        ValueError: empty or mismatched inputs.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"r2_regression_metrics needs equal non-empty shapes, got {y_true.shape}, {y_pred.shape}")
    return {"MAE": float(skm.mean_absolute_error(y_true, y_pred)),
            "RMSE": float(skm.root_mean_squared_error(y_true, y_pred)),
            "R2": float(skm.r2_score(y_true, y_pred)) if y_true.size > 1 else float("nan")}


def ordinal_classification_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Macro F1 (argmax prediction) and macro AUPRC (sklearn ``average_precision_score`` of each
    class one-vs-rest on the softmax of the scores, averaged over the classes present in
    ``y_true``) of TrajGANR's road popularity.

    Args:
        y_true: ``(n,)`` int class ids in ``[0, C)``. scores: ``(n, C)`` logits.

    Raises:
        ValueError: empty or mismatched inputs.
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != y_true.shape[0] or y_true.size == 0:
        raise ValueError(f"ordinal_classification_metrics needs y (n,) and scores (n, C), got {y_true.shape}, "
                         f"{scores.shape}")
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    prob = z / z.sum(axis=1, keepdims=True)
    present = [c for c in range(scores.shape[1]) if (y_true == c).any()]
    ap = [skm.average_precision_score(y_true == c, prob[:, c]) for c in present]
    return {"F1": float(skm.f1_score(y_true, scores.argmax(axis=1), average="macro", zero_division=0)),
            "AUPRC": float(np.mean(ap)) if ap else float("nan")}


def distribution_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Mean L1 distance ``sum_c |p_c - q_c|`` and mean cosine similarity of predicted and true
    category distributions (TrajGANR AOI function).

    Args:
        y_true, y_pred: ``(n, C)`` distributions (rows summing to 1).

    Raises:
        ValueError: empty or mismatched inputs.
    """
    p = np.asarray(y_true, dtype=np.float64)
    q = np.asarray(y_pred, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"distribution_metrics needs equal non-empty (n, C) shapes, got {p.shape}, {q.shape}")
    num = (p * q).sum(axis=1)
    den = np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1)
    cos = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return {"L1": float(np.abs(p - q).sum(axis=1).mean()), "cosine": float(cos.mean())}
