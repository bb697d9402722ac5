"""Two-layer perceptron ``Linear -> ReLU -> Linear``, the ``MLP`` of MetaTRL eqs. 6, 7, 13, 16.

The MetaTRL paper writes ``MLP`` without giving its depth; this two-layer form is the one every
model of the zoo uses when it needs a plain MLP. Parameter names ``fc1`` / ``fc2`` are part of the
state-dict layout of the models that use it (e.g. ``road_encoder.shared_mkf.fc1.weight``).
"""
from __future__ import annotations

from torch import Tensor, nn


class MLP(nn.Module):
    """``y = W_2 ReLU(W_1 x + b_1) + b_2``: ``(..., in_dim) -> (..., out_dim)``.

    Source: the ``MLP`` of MetaTRL (AAAI 2026) eqs. 6, 7, 13 and 16 (depth not specified by the
    paper). Construction draws the weights twice from the global torch RNG (once in the
    ``nn.Linear`` constructors, once in :meth:`reset_parameters`); models seeded with this
    order rely on it.

    Args:
        in_dim: size of the last input dimension.
        hidden_dim: width of the hidden layer.
        out_dim: size of the last output dimension.

    Raises:
        ValueError: if a dimension is not positive.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        if min(in_dim, hidden_dim, out_dim) <= 0:
            raise ValueError(f"MLP dimensions must be positive, got {in_dim}, {hidden_dim}, {out_dim}")
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise both linear layers (PyTorch's default Kaiming-uniform scheme)."""
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(..., in_dim)`` to ``(..., out_dim)``."""
        return self.fc2(self.act(self.fc1(x)))
