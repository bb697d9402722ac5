"""Transferable temporal encoder of MetaTRL (paper eqs. 11-14).

* private period encoder: T^P = t^d + t^m with a day-of-week table (7 x d) and a minute-of-day
  table (1440 x d) (eq. 11);
* shared interval encoder: Delta_i = t_i - t_{i-1}, Delta_1 = 0 (eq. 12), scaled as
  log1p(Delta in seconds); T^I = softmax(MLP^shared(Delta)) W_BE with the shared virtual-bucket
  matrix W_BE in R^{N_B x d} (eq. 13);
* T = T^P + T^I (eq. 14).

Where ``time_known`` is False the whole T is replaced by a learned time-mask vector, so a hidden
timestamp cannot reach the model. The paper does not classify that vector; it is shared unless
``unclassified_shared`` is False (:mod:`trajzoo_metatrl.parameters`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from trajzoo.data.batch import TrajectoryBatch
from trajzoo.nn.mlp import MLP

from .parameters import side_prefix

DAYS_PER_WEEK = 7
MINUTES_PER_DAY = 1440


def interval_deltas(seconds: Tensor, padding_mask: Tensor) -> Tensor:
    """Time intervals between consecutive segments (MetaTRL eq. 12).

    Args:
        seconds: ``(B, L)`` float, seconds since the trajectory's first segment.
        padding_mask: ``(B, L)`` bool, True at padded positions.

    Returns:
        ``(B, L)`` float, Delta_i = seconds_i - seconds_{i-1} in seconds, Delta at position 0 = 0;
        negative values (which only occur at the first padded position) are clamped to 0 and
        padded positions are 0.
    """
    delta = torch.zeros_like(seconds)
    delta[:, 1:] = seconds[:, 1:] - seconds[:, :-1]
    return delta.clamp_min(0.0).masked_fill(padding_mask, 0.0)


class TransferableTemporalEncoder(nn.Module):
    """Time embedding T = T^P + T^I of each visited segment (MetaTRL eqs. 11-14).

    Attributes:
        private_day_embedding: ``Embedding(7, d)``, t^d (eq. 11), private.
        private_minute_embedding: ``Embedding(1440, d)``, t^m (eq. 11), private.
        shared_interval_mlp: MLP ``1 -> d -> N_B`` over log1p(Delta seconds) (eq. 13), shared.
        shared_bucket_embedding: ``(N_B, d)`` virtual-bucket matrix W_BE (eq. 13), shared.
        time_mask: ``(d,)`` vector used wherever the time is unknown, registered as
            ``shared_time_mask`` or ``private_time_mask`` (see ``unclassified_shared``).

    Args:
        d_model: embedding size d.
        num_buckets: N_B, number of virtual buckets.
        use_time_encoder: False (ablation "w/o time encoder") makes ``forward`` return zeros
            and the module has no parameters.
        use_interval: False (ablation "w/o interval encoder") gives T = T^P.
        unclassified_shared: side of the time-mask vector, which the paper does not classify.

    Raises:
        ValueError: if ``d_model`` or ``num_buckets`` is not positive.
    """

    def __init__(
        self,
        d_model: int,
        num_buckets: int = 32,
        use_time_encoder: bool = True,
        use_interval: bool = True,
        unclassified_shared: bool = True,
    ) -> None:
        super().__init__()
        if d_model <= 0 or num_buckets <= 0:
            raise ValueError(f"d_model and num_buckets must be positive, got {d_model}, {num_buckets}")
        self.d_model = d_model
        self.num_buckets = num_buckets
        self.use_time_encoder = use_time_encoder
        self.use_interval = use_time_encoder and use_interval
        self.private_day_embedding: nn.Embedding | None = None
        self.private_minute_embedding: nn.Embedding | None = None
        self.shared_interval_mlp: MLP | None = None
        self.shared_bucket_embedding: nn.Parameter | None = None
        self._time_mask_name = side_prefix(unclassified_shared) + "time_mask"
        if use_time_encoder:
            self.private_day_embedding = nn.Embedding(DAYS_PER_WEEK, d_model)
            self.private_minute_embedding = nn.Embedding(MINUTES_PER_DAY, d_model)
            self.register_parameter(self._time_mask_name, nn.Parameter(torch.empty(d_model)))
            if self.use_interval:
                self.shared_interval_mlp = MLP(1, d_model, num_buckets)
                self.shared_bucket_embedding = nn.Parameter(torch.empty(num_buckets, d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embedding tables, bucket matrix and mask vector ~ N(0, 0.02^2); MLP default init."""
        for table in (self.private_day_embedding, self.private_minute_embedding):
            if table is not None:
                nn.init.normal_(table.weight, std=0.02)
        for tensor in (self.shared_bucket_embedding, self.time_mask):
            if tensor is not None:
                nn.init.normal_(tensor, std=0.02)
        if self.shared_interval_mlp is not None:
            self.shared_interval_mlp.reset_parameters()

    @property
    def time_mask(self) -> nn.Parameter | None:
        """The ``(d,)`` time-mask vector (None without the time encoder)."""
        return getattr(self, self._time_mask_name, None)

    def forward(self, batch: TrajectoryBatch) -> Tensor:
        """Time embeddings of every position.

        Args:
            batch: uses ``day_of_week`` (0..6), ``minute_of_day`` (0..1439), ``seconds``
                (seconds since trip start), ``time_known`` and ``padding_mask``, all ``(B, L)``.

        Returns:
            ``(B, L, d)`` float: T (eq. 14) at known positions, the time-mask vector where
            ``time_known`` is False; zeros if ``use_time_encoder`` is False. Values at padded
            positions are meaningless.

        Raises:
            ValueError: if a day-of-week or minute-of-day index at a real position is out of range.
        """
        b, length = batch.roads.shape
        if self.private_day_embedding is None or self.private_minute_embedding is None:
            return torch.zeros(b, length, self.d_model, device=batch.roads.device)
        assert self.time_mask is not None
        pad = batch.padding_mask
        day = batch.day_of_week.masked_fill(pad, 0)
        minute = batch.minute_of_day.masked_fill(pad, 0)
        if day.numel() and (day.min() < 0 or day.max() >= DAYS_PER_WEEK):
            raise ValueError("day_of_week must lie in 0..6 at real positions")
        if minute.numel() and (minute.min() < 0 or minute.max() >= MINUTES_PER_DAY):
            raise ValueError("minute_of_day must lie in 0..1439 at real positions")
        time = self.private_day_embedding(day) + self.private_minute_embedding(minute)  # T^P, eq. 11
        if self.shared_interval_mlp is not None and self.shared_bucket_embedding is not None:
            delta = torch.log1p(interval_deltas(batch.seconds.to(time.dtype), pad))  # eq. 12, log1p(s)
            weights = torch.softmax(self.shared_interval_mlp(delta.unsqueeze(-1)), dim=-1)  # (B, L, N_B)
            time = time + weights @ self.shared_bucket_embedding  # + T^I, eqs. 13-14
        unknown = (~batch.time_known).unsqueeze(-1)
        return torch.where(unknown, self.time_mask.expand_as(time), time)
