"""Hierarchical GPS encoder of SMARTraj2 (eq. 1).

``h^{p|r} = GPSEncoder(T^{p|r}, B^{p|r})``, ``h^{p|g} = GPSEncoder(T^{p|g}, B^{p|g})``: the fixes are
split into sub-trajectories by the binary assignment matrix B (the fixes assigned to one route
position, or to one grid-cell visit); a bidirectional GRU encodes the fixes inside each
sub-trajectory (level 1, its two final hidden states give the sub-trajectory vector) and a
Transformer encoder runs over the sequence of sub-trajectory vectors (level 2), mean-pooled into
the trip vector. B is passed in compact form: per fix the index of its sub-trajectory (-1 = in
none, e.g. a fix outside the grid), which is ``B[i, assign[i]] = 1``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trajzoo.nn.pooling import mean_pool
from trajzoo.nn.positional import sinusoidal_position_encoding

#: Per-fix input features: x, y (km from the first fix), minutes since it.
GPS_FEATURES = 3


def group_fixes(padding: Tensor, assign: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sub-trajectories of a padded fix batch from the compact assignment matrix.

    Args:
        padding: ``(B, P)`` bool, True at padded fixes.
        assign: ``(B, P)`` int64 sub-trajectory index of each fix (-1 = in none); within a row the
            fixes of one sub-trajectory need not be contiguous (they are gathered in time order).

    Returns:
        ``(fix_b, fix_p, group, slot)``: for the F assigned real fixes, in (row, sub-trajectory,
        time) order: their row and column ``(F,)``; ``group`` ``(F,)`` the 0-based id of their
        sub-trajectory over the batch (groups ordered by row, then by assignment index); and per
        group its ``slot`` ``(n_groups,)``, the rank of the group within its row.
    """
    valid = ~padding & (assign >= 0)
    b_idx, p_idx = valid.nonzero(as_tuple=True)  # row-major: by row, then time
    a = assign[b_idx, p_idx]
    width = int(assign.max().item()) + 1 if a.numel() else 1
    key = b_idx * width + a
    order = torch.sort(key, stable=True).indices
    b_idx, p_idx, key = b_idx[order], p_idx[order], key[order]
    _, group = torch.unique_consecutive(key, return_inverse=True)
    n_groups = int(group.max().item()) + 1 if group.numel() else 0
    group_row = torch.zeros(n_groups, dtype=torch.long, device=padding.device)
    group_row[group] = b_idx
    first = torch.ones(n_groups, dtype=torch.bool, device=padding.device)
    if n_groups > 1:
        first[1:] = group_row[1:] != group_row[:-1]
    start = torch.cummax(torch.where(first, torch.arange(n_groups, device=padding.device), 0), 0).values
    slot = torch.arange(n_groups, device=padding.device) - start
    return b_idx, p_idx, group, slot


class HierarchicalGPSEncoder(nn.Module):
    """Eq. 1: BiGRU over the fixes of each sub-trajectory, Transformer over the sub-trajectories.

    Args:
        d_model: d (even: the BiGRU has d/2 units per direction). layers, heads, ffn_dim, dropout:
            the level-2 Transformer encoder.

    Raises:
        ValueError: ``d_model`` odd or not divisible by ``heads``.
    """

    def __init__(self, d_model: int, layers: int = 1, heads: int = 4, ffn_dim: int = 128, dropout: float = 0.0):
        super().__init__()
        if d_model % 2 or d_model % heads:
            raise ValueError(f"d_model must be even and divisible by heads, got {d_model}, {heads}")
        self.d_model = d_model
        self.input = nn.Linear(GPS_FEATURES, d_model)
        self.mask_token = nn.Parameter(torch.zeros(d_model))
        self.point_gru = nn.GRU(d_model, d_model // 2, batch_first=True, bidirectional=True)
        self.sub_projection = nn.Linear(d_model, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ffn_dim, dropout, batch_first=True)
        self.upper = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.absent = nn.Parameter(torch.zeros(d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) mask token and absent vector; the layers keep PyTorch's defaults."""
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.normal_(self.absent, std=0.02)

    def forward(self, gps: Tensor, padding: Tensor, assign: Tensor, fix_mask: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """Encode a batch of GPS views aligned to one partition (route positions or grid visits).

        Args:
            gps: ``(B, P, 3)`` fix features (km, km, minutes). padding: ``(B, P)`` bool.
            assign: ``(B, P)`` int64 compact B (sub-trajectory index, -1 = none).
            fix_mask: optional ``(B, P)`` bool, fixes replaced by the mask token (masked modelling).

        Returns:
            ``(h, fix_states)``: ``(B, d)`` trip vectors (the learned ``absent`` vector for a row
            without an assigned fix) and ``(B, P, d)`` level-1 states of every fix (0 where not
            assigned).
        """
        b, p, _ = gps.shape
        x = self.input(gps)
        if fix_mask is not None:
            x = torch.where(fix_mask[..., None], self.mask_token.expand_as(x), x)
        fix_b, fix_p, group, slot = group_fixes(padding, assign)
        fix_states = x.new_zeros(b, p, self.d_model)
        n_groups = int(slot.numel())
        if n_groups == 0:
            return self.absent.expand(b, -1), fix_states
        counts = torch.bincount(group, minlength=n_groups)
        starts = torch.cumsum(counts, 0) - counts
        within = torch.arange(group.numel(), device=gps.device) - starts[group]
        width = int(counts.max().item())
        seqs = x.new_zeros(n_groups, width, self.d_model)
        seqs[group, within] = x[fix_b, fix_p]
        packed = pack_padded_sequence(seqs, counts.cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = self.point_gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=width)
        fix_states[fix_b, fix_p] = out[group, within]
        sub = self.sub_projection(torch.cat([h_n[0], h_n[1]], dim=-1))  # (n_groups, d)
        group_row = torch.zeros(n_groups, dtype=torch.long, device=gps.device)
        group_row[group] = fix_b
        s_max = int(slot.max().item()) + 1
        upper_in = x.new_zeros(b, s_max, self.d_model)
        upper_pad = torch.ones(b, s_max, dtype=torch.bool, device=gps.device)
        upper_in[group_row, slot] = sub
        upper_pad[group_row, slot] = False
        upper_in = upper_in + sinusoidal_position_encoding(s_max, self.d_model, gps.device)
        has = ~upper_pad.all(dim=1)
        safe_pad = upper_pad.clone()
        safe_pad[~has, 0] = False  # rows without any sub-trajectory: attend to a dummy, replaced below
        states = self.upper(upper_in, src_key_padding_mask=safe_pad)
        h = mean_pool(states, upper_pad)
        h = torch.where(has[:, None], h, self.absent.expand(b, -1))
        return h, fix_states
