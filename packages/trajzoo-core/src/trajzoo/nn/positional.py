"""Fixed sinusoidal encodings of integer positions (Vaswani et al. 2017, "Attention is all you
need", section 3.5): pe[t, 2k] = sin(t / 10000^(2k/d)), pe[t, 2k+1] = cos(t / 10000^(2k/d)).

Two numerically different computations of that formula are kept because trained models and
their recorded results depend on the exact bits:

* :func:`sinusoidal_position_encoding` computes in float32 with the ``exp(-2k log(10000) / d)``
  form (MetaTRL eq. 15, START's TAT-Enc input, ``transformer-mlm``);
* :func:`sinusoidal_table` computes in float64 with the ``10000^(2k/d)`` form and rounds to float32
  once (TransferTraj's point-index encoding).

They agree to about 1e-6 (float32 rounding).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def sinusoidal_position_encoding(length: int, d_model: int, device: torch.device | str | None = None) -> Tensor:
    """Fixed sinusoidal position encoding, float32 ``exp`` form (MetaTRL eq. 15; Vaswani et al. 2017).

    Args:
        length: number of positions L (>= 0).
        d_model: encoding size d (>= 1; an odd d drops the last cosine column).
        device: device of the result.

    Returns:
        ``(L, d)`` float32 with pe[t, 2k] = sin(t w_k), pe[t, 2k+1] = cos(t w_k),
        w_k = exp(-2k ln(10000) / d) (radians per position).
    """
    position = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model, device=device)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
    return pe


def sinusoidal_table(n: int, d: int) -> Tensor:
    """Sinusoidal encoding of indices 0..n-1 computed in float64 (TransferTraj's point-index
    encoding; Vaswani et al. 2017).

    Args:
        n: number of indices (>= 0).
        d: encoding size (>= 1; an odd d drops the last cosine column).

    Returns:
        ``(n, d)`` float32 (on the CPU) with table[t, 2k] = sin(t / 10000^(2k/d)) and
        table[t, 2k+1] = cos(t / 10000^(2k/d)), rounded from float64 once.
    """
    pos = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange((d + 1) // 2, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * i / d)
    table = torch.zeros(n, 2 * ((d + 1) // 2), dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return table[:, :d].float()
