"""TRIE: Trajectory Relative Information Extraction, a 2-D rotary encoding of relative positions.

Source: TransferTraj paper, section "Region-Transferable Trajectory Encoder / TRIE". The queries
and keys of self-attention are rotated by a matrix that depends on the point's position
``p_i = (x_i, y_i)``::

    q_i' = R(p_i) q_i,   k_j' = R(p_j) k_j,   q_i'^T k_j' = q_i^T R(p_i)^T R(p_j) k_j = q_i^T R(p_j - p_i) k_j

so attention scores depend on positions only through the displacement ``p_j - p_i``: translating
a whole trajectory leaves them unchanged, which is what makes the encoder region-agnostic.

Construction (RoPE extended to 2-D with learnable frequencies): the head size dh is split in
P = dh / 2 coordinate pairs ``(z_k, z_{k+P})``; pair k is rotated by the angle
``theta_k(p) = w_k . p`` with a learnable 2-D frequency vector ``w_k = exp(a_k) (cos phi_k,
sin phi_k)`` (rad per km). Because theta is linear in p, ``R(a)^T R(b) = R(b - a)`` holds exactly.
Initial wavelengths ``2 pi / |w_k|`` are log-spaced between ``min_wavelength_m`` and
``max_wavelength_m``; directions ``phi_k`` follow the golden angle so that every direction is
covered. Angles are computed in float64 (positions of tens of km times frequencies of ~100 rad/km
would otherwise lose the relative property to float32 rounding).

Positions of points whose spatial modality is hidden (design choice, uses only visible
information): :func:`reference_positions` linearly interpolates, by point index, between the
nearest visible points before and after; after the last visible point the last visible position
is carried forward (e.g. trajectory prediction); before the first visible one, the next visible
position is carried backward (cannot happen when point 0, the origin, is visible). The model's
x, y predictions are residuals added to these reference positions.

The ``use_trie=False`` ablation ("w/o TRIE", paper's ablation study) replaces the rotation by
:class:`AbsoluteXYEncoding`, the standard sinusoidal positional encoding of the ABSOLUTE x, y in
the city frame (``PointBatch.origin`` + the reference positions, metres in the city's projected
CRS) added to the point tokens: translating a trajectory in the city changes its encoding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trajzoo.nn.attention import split_fused_qkv

_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


def reference_positions(values: Tensor, hidden: Tensor, padding_mask: Tensor) -> Tensor:
    """Fill hidden entries from visible ones: index-linear interpolation inside, carry at the ends.

    Args:
        values: ``(B, L, c)`` float values (e.g. x, y in metres or elapsed minutes); entries at
            hidden or padded positions are never read.
        hidden: ``(B, L)`` bool, True where the value is hidden.
        padding_mask: ``(B, L)`` bool, True at padding.

    Returns:
        ``(B, L, c)``: visible values unchanged; a hidden position i between visible positions
        a < i < b gets ``v_a + (i - a) / (b - a) (v_b - v_a)``; after the last visible position
        that position's value; before the first, the first visible value; 0 in a row without any
        visible position and at padding.
    """
    b, l, c = values.shape
    visible = ~hidden & ~padding_mask
    idx = torch.arange(l, device=values.device).expand(b, l)
    prev_idx = torch.where(visible, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    next_idx = torch.where(visible, idx, torch.full_like(idx, l)).flip(1).cummin(dim=1).values.flip(1)
    has_prev, has_next = prev_idx >= 0, next_idx < l
    clean = values.masked_fill(~visible.unsqueeze(-1), 0.0)
    v_prev = torch.gather(clean, 1, prev_idx.clamp(min=0).unsqueeze(-1).expand(b, l, c))
    v_next = torch.gather(clean, 1, next_idx.clamp(max=l - 1).unsqueeze(-1).expand(b, l, c))
    span = (next_idx - prev_idx).clamp(min=1).to(values.dtype)
    w = ((idx - prev_idx).to(values.dtype) / span).unsqueeze(-1)
    both = (has_prev & has_next).unsqueeze(-1)
    out = torch.where(both, v_prev + w * (v_next - v_prev),
                      torch.where(has_prev.unsqueeze(-1), v_prev, v_next))
    out = torch.where(visible.unsqueeze(-1), clean, out)
    none_visible = ~(has_prev | has_next)
    return out.masked_fill((none_visible | padding_mask).unsqueeze(-1), 0.0)


class TrieRotary(nn.Module):
    """Learnable 2-D rotary position encoding R(x, y) of TRIE.

    Args:
        head_dim: dh (even); P = dh / 2 rotated pairs.
        min_wavelength_m, max_wavelength_m: range of the initial wavelengths in metres.
        learnable: train the frequencies (paper) or keep them fixed.

    Attributes:
        log_magnitude: ``(P,)`` log of |w_k| in rad/km.
        direction: ``(P,)`` phi_k in radians.
    """

    def __init__(self, head_dim: int, min_wavelength_m: float = 50.0, max_wavelength_m: float = 50_000.0,
                 learnable: bool = True) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for the TRIE rotation, got {head_dim}")
        self.head_dim, self.pairs = head_dim, head_dim // 2
        self.min_wavelength_m, self.max_wavelength_m = float(min_wavelength_m), float(max_wavelength_m)
        log_mag = torch.empty(self.pairs)
        direction = torch.empty(self.pairs)
        if learnable:
            self.log_magnitude = nn.Parameter(log_mag)
            self.direction = nn.Parameter(direction)
        else:
            self.register_buffer("log_magnitude", log_mag)
            self.register_buffer("direction", direction)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Log-spaced wavelengths, golden-angle directions."""
        with torch.no_grad():
            wavelength_km = torch.logspace(math.log10(self.min_wavelength_m / 1000.0),
                                           math.log10(self.max_wavelength_m / 1000.0), self.pairs)
            self.log_magnitude.copy_(torch.log(2.0 * math.pi / wavelength_km))
            self.direction.copy_(torch.arange(self.pairs, dtype=torch.float32) * _GOLDEN_ANGLE)

    def frequencies(self) -> Tensor:
        """``(P, 2)`` frequency vectors w_k in rad/km (float64)."""
        mag = torch.exp(self.log_magnitude.double())
        phi = self.direction.double()
        return torch.stack([mag * torch.cos(phi), mag * torch.sin(phi)], dim=-1)

    def angles(self, pos_m: Tensor) -> Tensor:
        """``theta(p) = W p``: ``(..., 2)`` metres -> ``(..., P)`` radians (float64)."""
        return (pos_m.double() / 1000.0) @ self.frequencies().t()

    def cos_sin(self, pos_m: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """cos and sin of :meth:`angles`, each ``(..., P)`` in ``dtype``."""
        theta = self.angles(pos_m)
        return torch.cos(theta).to(dtype), torch.sin(theta).to(dtype)

    @staticmethod
    def rotate(z: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Apply R: pair k = (z_k, z_{k+P}) -> (z_k cos - z_{k+P} sin, z_k sin + z_{k+P} cos).

        Args:
            z: ``(..., dh)``; cos, sin: broadcastable to ``(..., P)``.
        """
        p = z.shape[-1] // 2
        z1, z2 = z[..., :p], z[..., p:]
        return torch.cat([z1 * cos - z2 * sin, z1 * sin + z2 * cos], dim=-1)

    def matrix(self, pos_m: Tensor) -> Tensor:
        """The ``(dh, dh)`` float64 rotation matrix R(p) of one position ``(2,)`` metres, such that
        ``rotate(z) == R(p) @ z`` (for tests and documentation)."""
        theta = self.angles(pos_m.reshape(1, 2))[0]
        c, s = torch.diag(torch.cos(theta)), torch.diag(torch.sin(theta))
        return torch.cat([torch.cat([c, -s], 1), torch.cat([s, c], 1)], 0)


class TrieAttention(nn.Module):
    """Multi-head self-attention over the points of a trajectory, with TRIE-rotated q and k.

    ``Attn(H) = softmax(Q' K'^T / sqrt(dh) + M) V`` with ``Q'_i = R(p_i) Q_i``, ``K'_j = R(p_j) K_j``
    per head (the rotation is shared by the heads); padded keys are excluded (M = -inf) and, with
    ``causal`` (the paper's public code: a causal mask on the sequence model), so are the keys
    after the query (j > i): point i attends to points 0..i.

    Args:
        d_model: d. heads: h (dh = d / h even). dropout: on attention weights and output.
        rotary: a :class:`TrieRotary` of size dh, or None for plain attention (ablation).
        causal: mask the keys after each query.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, rotary: TrieRotary | None = None,
                 causal: bool = False) -> None:
        super().__init__()
        self.causal = bool(causal)
        if d_model % heads:
            raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
        self.d_model, self.heads, self.head_dim = d_model, heads, d_model // heads
        if rotary is not None and rotary.head_dim != self.head_dim:
            raise ValueError(f"rotary head_dim {rotary.head_dim} != d_model/heads {self.head_dim}")
        self.rotary = rotary
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.p_drop = float(dropout)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        """Default init of the projections and the rotary frequencies."""
        self.qkv.reset_parameters()
        self.out.reset_parameters()
        if self.rotary is not None:
            self.rotary.reset_parameters()

    def project(self, h: Tensor, pos_m: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """``(B, L, d)`` -> q, k, v each ``(B, heads, L, dh)``, q and k rotated by R(pos).

        Args:
            h: point tokens. pos_m: ``(B, L, 2)`` positions in metres (ignored without rotary).
        """
        q, k, v = split_fused_qkv(self.qkv(h), self.heads)
        if self.rotary is not None:
            if pos_m is None:
                raise ValueError("TRIE attention needs positions")
            cos, sin = self.rotary.cos_sin(pos_m, h.dtype)  # (B, L, P)
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
            q, k = self.rotary.rotate(q, cos, sin), self.rotary.rotate(k, cos, sin)
        return q, k, v

    def allowed(self, padding_mask: Tensor) -> Tensor:
        """``(B, 1, L, L)`` bool, True where query i may attend to key j (real key, and j <= i
        when causal)."""
        l = padding_mask.shape[1]
        attend = ~padding_mask[:, None, None, :]
        if self.causal:
            attend = attend & torch.ones(l, l, dtype=torch.bool, device=padding_mask.device).tril()
        return attend

    def scores(self, h: Tensor, pos_m: Tensor | None, padding_mask: Tensor) -> Tensor:
        """Pre-softmax attention logits ``(B, heads, L, L)``, -inf where not :meth:`allowed`."""
        q, k, _ = self.project(h, pos_m)
        s = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        return s.masked_fill(~self.allowed(padding_mask), float("-inf"))

    def forward(self, h: Tensor, pos_m: Tensor | None, padding_mask: Tensor) -> Tensor:
        """Attention output.

        Args:
            h: ``(B, L, d)``. pos_m: ``(B, L, 2)`` metres (TRIE positions). padding_mask: ``(B, L)``.

        Returns:
            ``(B, L, d)``.
        """
        b, l, d = h.shape
        q, k, v = self.project(h, pos_m)
        attend = self.allowed(padding_mask)  # True = may attend (a real point always sees itself)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attend,
                                           dropout_p=self.p_drop if self.training else 0.0)
        return self.dropout(self.out(o.transpose(1, 2).reshape(b, l, d)))


class AbsoluteXYEncoding(nn.Module):
    """Ablation "w/o TRIE": sinusoidal encoding of absolute city-frame x, y added to the tokens.

    Features ``[sin(w_f x), cos(w_f x), sin(w_f y), cos(w_f y)]`` for F = max(1, d/4) fixed
    frequencies (wavelengths log-spaced in ``[min_wavelength_m, max_wavelength_m]``), projected
    to d by a learned linear layer (the Transformer positional encoding applied to coordinates).

    Args:
        d_model: d. min_wavelength_m, max_wavelength_m: wavelength range in metres.
    """

    def __init__(self, d_model: int, min_wavelength_m: float = 50.0, max_wavelength_m: float = 50_000.0) -> None:
        super().__init__()
        n = max(1, d_model // 4)
        wavelength_km = torch.logspace(math.log10(min_wavelength_m / 1000.0), math.log10(max_wavelength_m / 1000.0), n)
        self.register_buffer("freq", (2.0 * math.pi / wavelength_km).double())
        self.proj = nn.Linear(4 * n, d_model)

    def reset_parameters(self) -> None:
        """Default init of the projection."""
        self.proj.reset_parameters()

    def forward(self, pos_m: Tensor) -> Tensor:
        """``(B, L, 2)`` absolute metres (city CRS; float64 advised) -> ``(B, L, d)``."""
        a = (pos_m.double() / 1000.0).unsqueeze(-1) * self.freq  # (B, L, 2, F)
        feats = torch.cat([torch.sin(a[..., 0, :]), torch.cos(a[..., 0, :]),
                           torch.sin(a[..., 1, :]), torch.cos(a[..., 1, :])], dim=-1)
        return self.proj(feats.to(self.proj.weight.dtype))
