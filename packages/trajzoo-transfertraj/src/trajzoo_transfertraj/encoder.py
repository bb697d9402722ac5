"""RTTE: the Region-Transferable Trajectory Encoder, L blocks of TRIE attention + SC-MoE.

Source: TransferTraj paper, section "Region-Transferable Trajectory Encoder". Block l
(pre-LayerNorm residual form)::

    H' = H + TRIEAttn(LN(H), P)          (P: (B, L, 2) reference positions, metres)
    H  = H' + SCMoE(LN(H'))              (the gate routes on the token LN(H'))

followed by a final LayerNorm. The attention is causal when ``causal`` (point i attends to points
0..i, the paper's public code). Ablations: ``use_trie=False`` uses plain attention (the absolute
x, y encoding is added to the tokens by the model, :class:`~trajzoo_transfertraj.trie.AbsoluteXYEncoding`);
``use_moe=False`` uses one :class:`~trajzoo_transfertraj.sc_moe.FeedForward` per block. The
expert FFNs run on the real points only (padding is skipped).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .parameters import TransferTrajConfig
from .sc_moe import FeedForward, SCMoE
from .trie import TrieAttention, TrieRotary


class RTTEBlock(nn.Module):
    """One TRIE attention + SC-MoE (or FFN) block. ``(B, L, d) -> (B, L, d)``."""

    def __init__(self, cfg: TransferTrajConfig) -> None:
        super().__init__()
        d = cfg.d_model
        rotary = (TrieRotary(d // cfg.heads, cfg.trie_min_wavelength_m, cfg.trie_max_wavelength_m, cfg.trie_learnable)
                  if cfg.use_trie else None)
        self.norm_attn = nn.LayerNorm(d)
        self.attn = TrieAttention(d, cfg.heads, cfg.dropout, rotary, causal=cfg.causal)
        self.norm_ffn = nn.LayerNorm(d)
        if cfg.use_moe:
            self.ffn: nn.Module = SCMoE(d, cfg.ffn_dim, cfg.experts, cfg.top_k, cfg.gate_hidden, cfg.gate_noise,
                                        cfg.dropout, cfg.moe_dispatch)
        else:
            self.ffn = FeedForward(d, cfg.ffn_dim, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, h: Tensor, pos_m: Tensor, padding_mask: Tensor) -> Tensor:
        """Args: h ``(B, L, d)``; pos_m ``(B, L, 2)`` metres; padding_mask ``(B, L)``.
        Returns ``(B, L, d)``, zero at padding."""
        h = h + self.attn(self.norm_attn(h), pos_m, padding_mask)
        valid = ~padding_mask
        x = h[valid]
        y = x + self.dropout(self.ffn(self.norm_ffn(x)))
        out = torch.zeros_like(h)
        out[valid] = y
        return out


class RTTE(nn.Module):
    """L :class:`RTTEBlock` s and a final LayerNorm.

    Args:
        cfg: model configuration (``layers``, ``use_trie``, ``use_moe``, sizes).
    """

    def __init__(self, cfg: TransferTrajConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(RTTEBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def moe_layers(self) -> list[SCMoE]:
        """The SC-MoE modules (empty list for ``use_moe=False``)."""
        return [b.ffn for b in self.blocks if isinstance(b.ffn, SCMoE)]

    def forward(self, h: Tensor, pos_m: Tensor, padding_mask: Tensor) -> Tensor:
        """Args: h ``(B, L, d)`` point tokens; pos_m ``(B, L, 2)`` reference positions in metres;
        padding_mask ``(B, L)`` bool. Returns ``(B, L, d)``, zero at padding."""
        for block in self.blocks:
            h = block(h, pos_m, padding_mask)
        return self.norm(h).masked_fill(padding_mask.unsqueeze(-1), 0.0)
