"""Entry point of the TransferTraj model package (group ``trajzoo.models``, name ``transfertraj``).

TransferTraj works on raw GPS points (:class:`~trajzoo.data.points.PointBatch`), not on a road
graph: a point model (:class:`trajzoo.plugins.PointModelPlugin`, input ``points``) with no
city-bound parameters, so it supports every setting; its default is ``zero-shot`` (the paper's
headline). Downstream point tasks are run by the core loop :mod:`trajzoo.training.point_tasks`
through ``model.predict``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trajzoo.plugins import PointModelPlugin

from .parameters import PAPER_PRESET, PretrainConfig, TransferTrajConfig

if TYPE_CHECKING:  # the model, its training and torch are imported where they are used: the DAG needs none
    import torch

    from .model import TransferTraj


class TransferTrajPlugin(PointModelPlugin):
    """TransferTraj (arXiv 2505.12672): point modalities, modality mixing, RTTE (TRIE attention +
    SC-MoE), unified masked-modality pretraining."""

    name = "transfertraj"
    hparams_cls = TransferTrajConfig
    schedule_cls = PretrainConfig
    #: the paper's best hyper-parameters (d = 128, L = 2, C = 8, k = 4), for GPU users
    paper_preset = dict(PAPER_PRESET)

    def build_model(self, hparams: dict | None = None) -> TransferTraj:
        """A fresh :class:`TransferTraj` from ``hparams`` (fields of :class:`TransferTrajConfig`;
        missing keys take the CPU-sized defaults).

        Raises:
            ValueError: unknown keys or values out of range.
        """
        from .model import TransferTraj
        return TransferTraj(TransferTrajConfig.from_dict(hparams or {}))

    def pretrain_points(self, model: TransferTraj, rows_by_city: dict[str, list[dict]], schedule: dict, context,
                        val_rows_by_city: dict[str, list[dict]] | None = None) -> list[dict]:
        """Masked-modality pretraining of ``model`` in place on every city's rows
        (:func:`trajzoo_transfertraj.training.pretrain`); ``schedule`` = fields of
        :class:`PretrainConfig`; ``context`` a :class:`trajzoo.training.loop.RunContext`.
        Returns the per-epoch history (also appended to ``context.history``)."""
        from .training import pretrain
        return pretrain(model, rows_by_city, PretrainConfig.from_dict(schedule), context, val_rows_by_city)

    def save_model(self, path: Path | str, model: TransferTraj, meta: dict | None = None) -> None:
        """Write the model (hyper-parameters + weights) atomically."""
        from .training import save_model
        save_model(path, model, {k: v for k, v in (meta or {}).items() if k != "hparams"})

    def load_model(self, path: Path | str, device: torch.device | str = "cpu") -> TransferTraj:
        """Rebuild a model written by :meth:`save_model`."""
        from .training import load_model
        return load_model(path, device)
