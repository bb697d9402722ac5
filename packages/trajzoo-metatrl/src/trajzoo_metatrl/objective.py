"""Self-supervised pre-training objective of MetaTRL (paper eqs. 19-20).

Linear heads on Z (eq. 19): road logits Z W_fm + b_fm over the N segments of the city and a time
regression Z W_tm + b_tm. Loss (eq. 20): L = gamma * CE(span-masked roads) + (1 - gamma) *
MSE(time-masked times), the time target being minutes since the trip start
(``batch.seconds / 60``), because the core provides no absolute timestamp in another unit and
minutes keep the regression target near unit scale for typical trips.

Data parallelism (K processes, :mod:`trajzoo.training.distributed`): both masks are drawn for the
whole global batch (the same draws and generator state as one process) and each process returns
its share of the global batch's loss (:meth:`MetaTRLPretrainer.share_loss`: its masked
positions' summed cross-entropy and squared error over the global batch's numbers of masked
positions), so the processes' losses and their summed gradients (``StepLoss.global_share``) are
those of the global batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch, hide_times
from trajzoo.nn.batch_checks import validate_road_batch
from trajzoo.nn.span_mask import span_mask
from trajzoo.training.distributed import global_batch_of, local_rows

from .masking import time_mask
from .model import MetaTRLConfig, MetaTRLEncoder


class MetaTRLPretrainer(nn.Module):
    """MetaTRL encoder plus the pre-training heads of eq. 19 (both private: they depend on the city).

    Attributes:
        encoder: :class:`MetaTRLEncoder`.
        private_road_head: ``Linear(d, N)``, road recovery logits (Z W_fm + b_fm).
        private_time_head: ``Linear(d, 1)``, minutes since trip start (Z W_tm + b_tm).
        config: the :class:`MetaTRLConfig`.

    Args:
        num_segments: N, road segments of the city.
        attribute_dim: F_u, road attribute columns.
        config: hyper-parameters (defaults if None).
    """

    def __init__(self, num_segments: int, attribute_dim: int, config: MetaTRLConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MetaTRLConfig()
        self.encoder = MetaTRLEncoder(num_segments, attribute_dim, self.config)
        self.private_road_head = nn.Linear(self.config.d_model, num_segments)
        self.private_time_head = nn.Linear(self.config.d_model, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the encoder and both heads."""
        self.encoder.reset_parameters()
        self.private_road_head.reset_parameters()
        self.private_time_head.reset_parameters()

    def forward(
        self, batch: TrajectoryBatch, graph: RoadGraph, road_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Both predictions at every position (eq. 19).

        Args:
            batch: ``(B, L)`` trajectories (times already hidden by the caller if needed).
            graph: the city's road graph.
            road_mask: optional ``(B, L)`` bool span mask passed to the encoder.

        Returns:
            ``(road_logits, minutes)``: ``(B, L, N)`` logits and ``(B, L)`` predicted minutes
            since the trip start.

        Raises:
            ValueError: as :meth:`MetaTRLEncoder.forward`.
        """
        z = self.encoder(batch, graph, road_mask)
        return self.private_road_head(z), self.private_time_head(z).squeeze(-1)

    def loss(
        self, batch: TrajectoryBatch, graph: RoadGraph, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, float]]:
        """Pre-training loss L^pre of eq. 20 with dual-modal masking.

        Steps: span mask (ratio ``mask_ratio``, mean span ``mean_span_length``); time mask over the
        remaining positions (``time_mask_ratio``) unless ``use_time_mask`` is False; timestamps
        of both sets hidden with ``hide_times``; encode with the span mask as road mask; heads
        evaluated at the masked positions only. During a sharded training step under data
        parallelism (``batch`` is this process's share of the global batch,
        :func:`trajzoo.training.distributed.global_batch_of`): :meth:`share_loss`.

        Args:
            batch: ``(B, L)`` trajectories with their true roads and times.
            graph: the city's road graph.
            generator: CPU ``torch.Generator`` for the masks.

        Returns:
            ``(loss, stats)``: scalar loss ``gamma * road_ce + (1 - gamma) * time_mse``
            (``road_ce`` alone when ``use_time_mask`` is False); a term whose mask is empty is 0
            (still connected to the graph, so ``backward`` works). ``stats`` holds floats
            ``loss``, ``road_ce`` (nats), ``time_mse`` (minutes^2), ``road_acc`` (fraction of
            span-masked roads whose arg-max is right; 0 if none), ``n_road_masked`` and
            ``n_time_masked``.

        Raises:
            ValueError: as :meth:`MetaTRLEncoder.forward`.
        """
        full = global_batch_of(batch)
        if full is not None:  # data parallelism: masks drawn for the whole global batch, this share's loss
            return self.share_loss(batch, full, graph, generator)
        road_mask, times_mask = self.draw_masks(batch.padding_mask, generator)
        return self._terms(batch, graph, road_mask, times_mask)

    def draw_masks(self, padding_mask: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The dual-modal masks of one batch: the span mask (ratio ``mask_ratio``, mean span
        ``mean_span_length``), then the time mask over the remaining positions
        (``time_mask_ratio``; all False, drawing nothing, when ``use_time_mask`` is False).

        Args:
            padding_mask: ``(B, L)`` bool, True at padding (a suffix of each row).
            generator: CPU ``torch.Generator`` of both masks (span mask first).

        Returns:
            ``(road_mask, times_mask)``: disjoint ``(B, L)`` bool on ``padding_mask``'s device.

        Raises:
            ValueError: as :func:`trajzoo.nn.span_mask.span_mask` and :func:`.masking.time_mask`.
        """
        cfg = self.config
        road_mask = span_mask(padding_mask, cfg.mask_ratio, cfg.mean_span_length, generator)
        if cfg.use_time_mask:
            times_mask = time_mask(padding_mask, road_mask, cfg.time_mask_ratio, generator)
        else:
            times_mask = torch.zeros_like(road_mask)
        return road_mask, times_mask

    def share_loss(self, batch: TrajectoryBatch, full: TrajectoryBatch, graph: RoadGraph,
                   generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        """This process's share of eq. 20's loss of a global batch under data parallelism.

        Both masks are drawn for the whole global batch ``full`` (:meth:`draw_masks`: the same
        draws and generator state as one process on ``full``) and this process's rows are kept
        (:func:`trajzoo.training.distributed.local_rows`). With M_road and M_time the global
        batch's numbers of span-masked roads and time-masked times, the share is
        ``gamma * sum(CE at its masked roads) / M_road + (1 - gamma) * sum(squared errors at its
        masked times) / M_time`` (a term is 0 when the share has none of its positions), so the
        processes' shares sum to :meth:`loss` of ``full`` on one process, and so do their
        gradients (``StepLoss.global_share``).

        Args:
            batch: ``(B_r, L)``, this process's rows of ``full`` (rows ``start:stop`` of
                :func:`trajzoo.training.distributed.batch_view`; may be empty).
            full: ``(B, L)``, the whole global batch
                (:func:`trajzoo.training.distributed.global_batch_of`).
            graph: the city's road graph. generator: CPU generator of the masks.

        Returns:
            ``(share, stats)``: the share (scalar, graph-connected) and the stats of :meth:`loss`
            for this share (``loss``, ``road_ce`` and ``time_mse`` are shares too;
            ``n_road_masked`` / ``n_time_masked`` count this share's positions) plus
            ``global_share = 1``.

        Raises:
            ValueError: as :meth:`loss`, for a bad row anywhere in ``full`` (so every process
                raises, not only the one holding the row).
        """
        validate_road_batch(full, self.encoder.num_segments, ids_at_padding=True)
        full_road, full_time = self.draw_masks(full.padding_mask, generator)
        device = batch.roads.device
        road_mask, times_mask = local_rows(full_road).to(device), local_rows(full_time).to(device)
        total, stats = self._terms(batch, graph, road_mask, times_mask,
                                   totals=(int(full_road.sum()), int(full_time.sum())))
        stats["global_share"] = 1.0
        return total, stats

    def _terms(self, batch: TrajectoryBatch, graph: RoadGraph, road_mask: Tensor, times_mask: Tensor,
               totals: tuple[int, int] | None = None) -> tuple[Tensor, dict[str, float]]:
        """Eq. 20 of ``batch`` ``(B, L)`` with its drawn masks ``(B, L)``: the body of :meth:`loss`
        (``totals`` None: means over the batch's masked positions) and of :meth:`share_loss`
        (``totals`` = the global batch's ``(M_road, M_time)``: this share's sums over them)."""
        cfg = self.config
        if batch.roads.shape[0] == 0:  # an empty share of a global batch: nothing to encode
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            z = None
        else:
            hidden = hide_times(batch, road_mask | times_mask)
            z = self.encoder(hidden, graph, road_mask)  # (B, L, d)
            zero = z.sum() * 0.0  # graph-connected zero for empty mask sets

        n_road = int(road_mask.sum())
        if n_road:
            logits = self.private_road_head(z[road_mask])  # (M, N)
            targets = batch.roads[road_mask]
            if totals is None:
                road_ce = F.cross_entropy(logits, targets)
            else:
                road_ce = F.cross_entropy(logits, targets, reduction="sum") / totals[0]
            road_acc = float((logits.argmax(dim=-1) == targets).float().mean())
        else:
            road_ce, road_acc = zero, 0.0

        n_time = int(times_mask.sum())
        if n_time:
            predicted = self.private_time_head(z[times_mask]).squeeze(-1)
            target = batch.seconds[times_mask].to(predicted.dtype) / 60.0
            if totals is None:
                time_mse = F.mse_loss(predicted, target)
            else:
                time_mse = F.mse_loss(predicted, target, reduction="sum") / totals[1]
        else:
            time_mse = zero

        if cfg.use_time_mask:
            total = cfg.gamma * road_ce + (1.0 - cfg.gamma) * time_mse
        else:
            total = road_ce
        stats = {
            "loss": float(total.detach()),
            "road_ce": float(road_ce.detach()),
            "time_mse": float(time_mse.detach()),
            "road_acc": road_acc,
            "n_road_masked": float(n_road),
            "n_time_masked": float(n_time),
        }
        return total, stats
