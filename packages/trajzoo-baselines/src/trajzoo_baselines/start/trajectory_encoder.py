"""TAT-Enc: the time-aware trajectory encoder of START (Jiang et al., ICDE 2023, Section
"Time-Aware Trajectory Encoder").

A learned [CLS] token is prepended at position 0 (START and its public code: ``add_cls``,
``pooling: cls``); its final hidden state, through the pooler of :class:`~.model.STARTEncoder`,
is the trajectory representation. The [CLS] input is ``c + pe_0`` (no road, no time); its time is
"unknown", so its pairs get the learned unknown-time bias below.

Input embedding (START's travel-semantics + temporal-regularity input): for position i (at
sequence index i + 1 after the [CLS] token),
x_i = r_i + M[minute_of_day_i] + W[day_of_week_i] + pe_i, with r_i the TPE-GAT representation of
the road (a learned [MASK] vector at span-masked positions), M (1440 minutes) and W (7 days)
learned embeddings and pe the fixed sinusoidal position encoding; LayerNorm and dropout.
Where ``time_known`` is False (or at padding) the minute and day embeddings are replaced by
learned "unknown time" rows, so a hidden timestamp is never read.

Self-attention with the adaptive time-interval matrix: for positions i, j with entry times
t_i, t_j (``batch.seconds``), Delta_ij = |t_i - t_j| in minutes is transformed as in START by
Delta~_ij = 1 / log(e + Delta_ij) (near-in-time pairs close to 1, far pairs towards 0) and
mapped per head by a small learned network, b_h(i, j) = w2_h . LeakyReLU(w1 Delta~_ij + c1) + c2_h.
The head's attention is softmax_j(q_i . k_j / sqrt(d_head) + b_h(i, j)) over real (non-padded)
keys. A pair with an unknown time at i or j gets a learned per-head bias instead. The interval
bias is computed once per batch and shared by all layers. Each layer is post-LayerNorm (BERT
style): H = LN(H + Attn(H)), H = LN(H + FFN(H)) with a GELU feed-forward block.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from trajzoo.data.batch import TrajectoryBatch
from trajzoo.nn.attention import attention_weights, split_fused_qkv
from trajzoo.nn.checkpointing import apply_dropout, dropout_keep_mask, maybe_checkpoint
from trajzoo.nn.positional import sinusoidal_position_encoding

MINUTES_PER_DAY = 1440
DAYS_PER_WEEK = 7


class TimeIntervalBias(nn.Module):
    """START's adaptive time-interval matrix, as an additive attention bias per head.

    Attributes:
        mlp: ``Linear(1, hidden) -> LeakyReLU -> Linear(hidden, heads)`` of 1 / log(e + Delta).
        unknown_bias: ``(heads,)`` bias for pairs where either time is unknown.

    Args:
        heads: attention heads H.
        hidden: hidden size of ``mlp``.
    """

    def __init__(self, heads: int, hidden: int = 16) -> None:
        super().__init__()
        self.heads = heads
        self.mlp = nn.Sequential(nn.Linear(1, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, heads))
        self.unknown_bias = nn.Parameter(torch.zeros(heads))

    def forward(self, seconds: Tensor, time_known: Tensor) -> Tensor:
        """Bias b_h(i, j) of every pair of positions.

        Args:
            seconds: ``(B, L)`` entry times in seconds since the trip start.
            time_known: ``(B, L)`` bool, False where the time must not be used.

        Returns:
            ``(B, H, L, L)`` float additive attention bias.
        """
        minutes = seconds.float() / 60.0
        delta = (minutes.unsqueeze(2) - minutes.unsqueeze(1)).abs()  # (B, L, L) minutes
        transformed = 1.0 / torch.log(math.e + delta)
        bias = self.mlp(transformed.unsqueeze(-1))  # (B, L, L, H)
        both = (time_known.unsqueeze(2) & time_known.unsqueeze(1)).unsqueeze(-1)
        bias = torch.where(both, bias, self.unknown_bias.to(bias.dtype))
        return bias.permute(0, 3, 1, 2)


class TimeAwareSelfAttention(nn.Module):
    """Multi-head self-attention with an additive time-interval bias (TAT-Enc of START).

    Args:
        d_model: model size d (divisible by ``heads``).
        heads: attention heads H.
        dropout: dropout on the attention weights.

    Raises:
        ValueError: ``d_model`` not divisible by ``heads``.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
        self.heads = heads
        self.d_head = d_model // heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def attention_weights(self, x: Tensor, bias: Tensor, padding_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Attention weights and values.

        Args:
            x: ``(B, L, d)`` layer input.
            bias: ``(B, H, L, L)`` time-interval bias.
            padding_mask: ``(B, L)`` bool, True at padded positions (never attended to).

        Returns:
            ``(weights, values)``: ``(B, H, L, L)`` softmax over keys (0 on padded keys) and
            ``(B, H, L, d_head)``.
        """
        q, k, v = split_fused_qkv(self.qkv(x), self.heads)
        return attention_weights(q, k, padding_mask, bias), v

    def forward(self, x: Tensor, bias: Tensor, padding_mask: Tensor, keep: Tensor | None = None) -> Tensor:
        """``(B, L, d)`` attention output (see :meth:`attention_weights` for the arguments).

        ``keep``: the attention-dropout mask ``(B, H, L, L)`` bool
        (:func:`trajzoo.nn.checkpointing.dropout_keep_mask`), drawn here when None in training
        mode; no dropout in evaluation mode.
        """
        weights, v = self.attention_weights(x, bias, padding_mask)
        if keep is None:
            keep = dropout_keep_mask(weights.shape, self.dropout.p, self.training, weights.device)
        out = apply_dropout(weights, keep, self.dropout.p) @ v  # (B, H, L, d_head)
        return self.out(out.transpose(1, 2).reshape(x.shape))


class TATEncoderLayer(nn.Module):
    """One TAT-Enc layer: time-aware self-attention and a GELU feed-forward block, each with
    residual + post-LayerNorm.

    Args:
        d_model: model size d. heads: attention heads. ffn_dim: feed-forward hidden size.
        dropout: dropout on attention weights and residual branches.
    """

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float = 0.0,
                 activation_checkpointing: bool = False) -> None:
        super().__init__()
        self.attention = TimeAwareSelfAttention(d_model, heads, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation_checkpointing = activation_checkpointing

    def forward(self, x: Tensor, bias: Tensor, padding_mask: Tensor) -> Tensor:
        """``(B, L, d)`` -> ``(B, L, d)``; ``bias`` ``(B, H, L, L)``, ``padding_mask`` ``(B, L)``.

        The three dropout masks (attention weights, then the two residual branches) are drawn
        first, in the order the computation uses them, and the layer runs under activation
        checkpointing when ``activation_checkpointing`` (:mod:`trajzoo.nn.checkpointing`: same
        values and gradients, less memory, one more forward computation).
        """
        b, length, _ = x.shape
        p = self.dropout.p
        keep_attention = dropout_keep_mask((b, self.attention.heads, length, length), p, self.training, x.device)
        keep_attention_out = dropout_keep_mask(x.shape, p, self.training, x.device)
        keep_ffn_out = dropout_keep_mask(x.shape, p, self.training, x.device)
        return maybe_checkpoint(self._forward, x, bias, padding_mask, keep_attention, keep_attention_out,
                                keep_ffn_out, enabled=self.activation_checkpointing and self.training)

    def _forward(self, x: Tensor, bias: Tensor, padding_mask: Tensor, keep_attention: Tensor | None,
                 keep_attention_out: Tensor | None, keep_ffn_out: Tensor | None) -> Tensor:
        """The layer with its drawn dropout masks (None = no dropout): post-LayerNorm residual
        blocks ``H = LN(H + Drop(Attn(H)))``, ``H = LN(H + Drop(FFN(H)))``."""
        p = self.dropout.p
        x = self.norm1(x + apply_dropout(self.attention(x, bias, padding_mask, keep_attention), keep_attention_out, p))
        return self.norm2(x + apply_dropout(self.ffn(x), keep_ffn_out, p))


class TimeAwareTrajectoryEncoder(nn.Module):
    """TAT-Enc of START: input embedding + ``layers`` :class:`TATEncoderLayer`.

    Attributes:
        cls_vector: ``(d,)`` learned [CLS] input.
        mask_vector: ``(d,)`` learned [MASK] road representation.
        minute_embedding: ``Embedding(1441, d)``; row 1440 = unknown time.
        day_embedding: ``Embedding(8, d)``; row 7 = unknown time.
        interval_bias: :class:`TimeIntervalBias`.
        layers: the encoder layers.

    Args:
        d_model: d. layers: number of layers. heads: attention heads. ffn_dim: feed-forward size.
        dropout: dropout. interval_hidden: hidden size of the interval-bias network.
        activation_checkpointing: in training, run each layer and the interval-bias network
            under activation checkpointing (:mod:`trajzoo.nn.checkpointing`): the same values
            and gradients for less memory and about one more forward computation per step.
    """

    def __init__(self, d_model: int, layers: int, heads: int, ffn_dim: int, dropout: float = 0.0,
                 interval_hidden: int = 16, activation_checkpointing: bool = False) -> None:
        super().__init__()
        self.d_model = d_model
        self.mask_vector = nn.Parameter(torch.randn(d_model) * 0.02)
        self.cls_vector = nn.Parameter(torch.randn(d_model) * 0.02)
        self.minute_embedding = nn.Embedding(MINUTES_PER_DAY + 1, d_model)
        self.day_embedding = nn.Embedding(DAYS_PER_WEEK + 1, d_model)
        self.interval_bias = TimeIntervalBias(heads, interval_hidden)
        self.input_norm = nn.LayerNorm(d_model)
        self.input_dropout = nn.Dropout(dropout)
        self.activation_checkpointing = activation_checkpointing
        self.layers = nn.ModuleList(TATEncoderLayer(d_model, heads, ffn_dim, dropout, activation_checkpointing)
                                    for _ in range(layers))
        nn.init.normal_(self.minute_embedding.weight, std=0.02)
        nn.init.normal_(self.day_embedding.weight, std=0.02)

    def time_indices(self, batch: TrajectoryBatch) -> tuple[Tensor, Tensor]:
        """``(B, L)`` minute-of-day and day-of-week embedding rows; the "unknown" rows (1440, 7)
        where ``time_known`` is False or at padding.

        Raises:
            ValueError: a known minute outside 0..1439 or day outside 0..6.
        """
        known = batch.time_known & ~batch.padding_mask
        minute, day = batch.minute_of_day[known], batch.day_of_week[known]
        if minute.numel() and (minute.min() < 0 or minute.max() >= MINUTES_PER_DAY
                               or day.min() < 0 or day.max() >= DAYS_PER_WEEK):
            raise ValueError("minute_of_day must be in 0..1439 and day_of_week in 0..6 at known positions")
        return (batch.minute_of_day.masked_fill(~known, MINUTES_PER_DAY),
                batch.day_of_week.masked_fill(~known, DAYS_PER_WEEK))

    def embed_inputs(self, road_embeddings: Tensor, batch: TrajectoryBatch, road_mask: Tensor | None = None
                     ) -> Tensor:
        """TAT-Enc input: ``[c + pe_0, x_1 + pe_1, ..., x_L + pe_L]`` with
        x_i = r_i + M[minute_i] + W[day_i] (LayerNorm, dropout).

        Args:
            road_embeddings: ``(N, d)`` TPE-GAT outputs.
            batch: ``(B, L)`` trajectories.
            road_mask: optional ``(B, L)`` bool, True where r_i is the [MASK] vector.

        Returns:
            ``(B, L + 1, d)``, index 0 the [CLS] token.
        """
        roads = batch.roads.masked_fill(batch.padding_mask, 0)
        r = road_embeddings[roads]  # (B, L, d)
        if road_mask is not None:
            r = torch.where(road_mask.unsqueeze(-1), self.mask_vector.to(r.dtype), r)
        minute, day = self.time_indices(batch)
        x = r + self.minute_embedding(minute) + self.day_embedding(day)
        cls = self.cls_vector.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + sinusoidal_position_encoding(x.shape[1], self.d_model, roads.device)
        return self.input_dropout(self.input_norm(x))

    def forward_with_cls(self, road_embeddings: Tensor, batch: TrajectoryBatch, road_mask: Tensor | None = None
                         ) -> tuple[Tensor, Tensor]:
        """Encode every position and the [CLS] token.

        Args:
            road_embeddings: ``(N, d)`` TPE-GAT outputs.
            batch: ``(B, L)`` trajectories (``seconds`` in seconds since the trip start).
            road_mask: optional ``(B, L)`` bool span mask.

        Returns:
            ``(tokens, cls)``: ``(B, L, d)`` (zero at padded positions) and ``(B, d)`` the final
            [CLS] hidden state.

        Raises:
            ValueError: as :meth:`time_indices`.
        """
        pad = batch.padding_mask
        b = pad.shape[0]
        no = torch.zeros(b, 1, dtype=torch.bool, device=pad.device)
        pad1 = torch.cat([no, pad], dim=1)
        x = self.embed_inputs(road_embeddings, batch, road_mask)
        seconds = torch.cat([torch.zeros(b, 1, dtype=batch.seconds.dtype, device=pad.device),
                             batch.seconds.masked_fill(pad, 0.0)], dim=1)
        known = torch.cat([no, batch.time_known & ~pad], dim=1)  # [CLS] has no time
        bias = maybe_checkpoint(self.interval_bias, seconds, known,
                                enabled=self.activation_checkpointing and self.training)
        for layer in self.layers:
            x = layer(x, bias, pad1)
        return x[:, 1:].masked_fill(pad.unsqueeze(-1), 0.0), x[:, 0]

    def forward(self, road_embeddings: Tensor, batch: TrajectoryBatch, road_mask: Tensor | None = None) -> Tensor:
        """``(B, L, d)`` per-position outputs of :meth:`forward_with_cls` (zero at padding)."""
        return self.forward_with_cls(road_embeddings, batch, road_mask)[0]
