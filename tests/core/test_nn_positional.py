"""trajzoo.nn.positional: the two sinusoidal encodings, against the formula of Vaswani et al. 2017."""
from __future__ import annotations

import math

import torch

from trajzoo.nn.positional import sinusoidal_position_encoding, sinusoidal_table

D = 16


def _formula(t: int, j: int, d: int) -> float:
    angle = t / 10000 ** (2 * (j // 2) / d)
    return math.sin(angle) if j % 2 == 0 else math.cos(angle)


def test_position_encoding_fixed_sinusoid() -> None:
    pe = sinusoidal_position_encoding(5, D)
    assert pe.shape == (5, D) and pe.dtype == torch.float32
    assert torch.allclose(pe[0, 0::2], torch.zeros(D // 2)) and torch.allclose(pe[0, 1::2], torch.ones(D // 2))
    assert math.isclose(pe[3, 0].item(), math.sin(3.0), abs_tol=1e-6)
    assert math.isclose(pe[3, 3].item(), math.cos(3.0 / 10000 ** (2 / D)), abs_tol=1e-6)
    for t in range(5):
        for j in range(D):
            assert math.isclose(pe[t, j].item(), _formula(t, j, D), abs_tol=2e-6), (t, j)


def test_table_is_the_float64_formula_rounded_once() -> None:
    table = sinusoidal_table(7, 5)  # odd d: the last cosine column is dropped
    assert table.shape == (7, 5) and table.dtype == torch.float32
    expected = torch.tensor([[_formula(t, j, 5) for j in range(5)] for t in range(7)], dtype=torch.float64)
    assert torch.allclose(table.double(), expected, rtol=0, atol=1e-7)


def test_both_encodings_agree_to_float32_rounding() -> None:
    assert torch.allclose(sinusoidal_position_encoding(50, D), sinusoidal_table(50, D), rtol=0, atol=1e-5)
    odd = sinusoidal_position_encoding(4, 5)
    assert odd.shape == (4, 5)
    assert torch.allclose(odd, sinusoidal_table(4, 5), atol=1e-6)
