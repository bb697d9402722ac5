"""trajzoo.nn.checkpointing: drawn dropout masks give torch's dropout values bit for bit, and a
checkpointed computation gives the same values and gradients as the plain one."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trajzoo.nn.checkpointing import apply_dropout, dropout_keep_mask, maybe_checkpoint

SHAPES = [((4, 2, 9, 9), 0.1), ((4, 9, 16), 0.3), ((3, 5), 0.5), ((4, 9, 16), 0.1)]


def _draws(use_masks: bool, seed: int = 3) -> list[torch.Tensor]:
    """A sequence of inputs and dropouts, interleaved, as a Transformer step draws them."""
    torch.manual_seed(seed)
    out = []
    for shape, p in SHAPES:
        x = torch.randn(shape)
        if use_masks:
            out.append(apply_dropout(x, dropout_keep_mask(shape, p, True), p))
        else:
            out.append(F.dropout(x, p, True))
    return out


def test_drawn_masks_equal_torch_dropout_bit_for_bit():
    for a, b in zip(_draws(True), _draws(False), strict=True):
        assert torch.equal(a, b)
    # a different stream really gives other masks (the comparison can fail)
    assert not torch.equal(_draws(True, seed=4)[0], _draws(False)[0])


def test_no_mask_without_dropout_and_bad_probability():
    assert dropout_keep_mask((2, 3), 0.1, training=False) is None
    assert dropout_keep_mask((2, 3), 0.0, training=True) is None
    x = torch.randn(2, 3)
    assert apply_dropout(x, None, 0.1) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout_keep_mask((2, 3), 1.0, training=True)


def test_checkpointed_values_and_gradients_equal_plain():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(5, 8, requires_grad=True)
    keep = dropout_keep_mask((5, 8), 0.2, True)

    def f(t, k):
        return apply_dropout(torch.tanh(lin(t)), k, 0.2)

    results = []
    for enabled in (False, True):
        x.grad, lin.weight.grad = None, None
        y = maybe_checkpoint(f, x, keep, enabled=enabled)
        (y ** 2).sum().backward()
        results.append((y.detach(), x.grad.clone(), lin.weight.grad.clone()))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
