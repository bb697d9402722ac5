"""Activation checkpointing of a Transformer layer whose dropout masks are drawn before it runs.

Activation checkpointing (Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016;
``torch.utils.checkpoint``) keeps only a layer's inputs during the forward pass and recomputes
its activations in the backward pass: the memory of a layer's attention matrices and
feed-forward activations is held for one layer at a time instead of for every layer of every
pass of a training step, for one extra forward computation of the layer.

Dropout draws random numbers, and on CPU drawing them is a large share of a layer's cost (a
``(B, H, L, L)`` attention-dropout mask costs about ten softmaxes of the same size). So the
layers here draw their dropout "keep" masks (:func:`dropout_keep_mask`, boolean) *before* the
checkpointed computation and pass them in: the recomputation draws nothing, the masks are held
as 1-byte booleans, and the forward values equal ``torch.nn.functional.dropout``'s bit for bit
(same random stream, same scaling; :func:`apply_dropout`). The gradients equal those without
checkpointing bit for bit too, since the recomputed forward is the same computation.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.utils.checkpoint
from torch import Tensor


def dropout_keep_mask(shape: tuple[int, ...] | torch.Size, p: float, training: bool,
                      device: torch.device | str | None = None) -> Tensor | None:
    """Boolean "keep" mask of inverted dropout (Srivastava et al. 2014), or None when there is no
    dropout (evaluation mode or ``p == 0``).

    Draws from the global torch generator exactly the numbers ``torch.nn.functional.dropout``
    draws for a tensor of the same shape (one Bernoulli(1 - p) per element), so replacing
    ``F.dropout(x, p)`` by ``apply_dropout(x, dropout_keep_mask(x.shape, p, True), p)`` at the
    same point of a computation changes no value.

    Args:
        shape: the shape of the tensor the mask applies to.
        p: drop probability in [0, 1).
        training: False gives None (no dropout).
        device: device of the mask.

    Returns:
        bool tensor of ``shape`` (True = keep), or None.

    Raises:
        ValueError: ``p`` outside [0, 1).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return None
    return torch.empty(shape, dtype=torch.bool, device=device).bernoulli_(1.0 - p)


def apply_dropout(x: Tensor, keep: Tensor | None, p: float) -> Tensor:
    """Inverted dropout with a drawn mask: ``x * keep / (1 - p)`` (``x`` itself when ``keep`` is
    None), the value ``torch.nn.functional.dropout`` gives with the same draws.

    Args:
        x: any shape. keep: bool mask of ``x``'s shape (:func:`dropout_keep_mask`) or None.
        p: the drop probability the mask was drawn with.

    Returns:
        tensor of ``x``'s shape and dtype.
    """
    if keep is None:
        return x
    return x * keep.to(x.dtype).div_(1.0 - p)


def maybe_checkpoint(function: Callable[..., Tensor], *args, enabled: bool) -> Tensor:
    """``function(*args)``, under ``torch.utils.checkpoint.checkpoint`` (non-reentrant, the random
    state preserved) when ``enabled`` and autograd is recording; directly otherwise.

    Args:
        function: a computation whose tensors ``args`` (e.g. a layer's input and its drawn
            dropout masks) are all it reads besides module parameters.
        enabled: checkpoint (True) or not.

    Returns:
        ``function(*args)``.
    """
    if enabled and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False)
    return function(*args)
