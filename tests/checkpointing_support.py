"""Shared pieces of the activation-checkpointing tests of START and MetaTRL
(trajzoo.nn.checkpointing): a few optimisation steps of a pretrainer, and the bytes autograd keeps
for one loss's backward pass."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def train_steps(make_model: Callable[[], nn.Module], graph, batch, optimizer=torch.optim.Adam, steps: int = 3,
                lr: float = 1e-2) -> tuple[dict, list[float]]:
    """``steps`` optimisation steps of ``make_model()``'s ``loss(batch, graph, generator)`` (torch
    seed 0 before the model is made, generator seed 5): ``(state_dict, losses)``."""
    torch.manual_seed(0)
    model = make_model()
    opt = optimizer(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(5)
    model.train()
    losses = []
    for _ in range(steps):
        loss, _ = model.loss(batch, graph, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model.state_dict(), losses


def saved_bytes(make_model: Callable[[], nn.Module], graph, batch) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of one loss of
    ``make_model()`` (torch seed 0, training mode, generator seed 5)."""
    torch.manual_seed(0)
    model = make_model().train()
    storages: dict[int, int] = {}

    def pack(t):
        storages.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.loss(batch, graph, torch.Generator().manual_seed(5))
    return sum(storages.values())


def assert_same_training(plain: tuple[dict, list[float]], checkpointed: tuple[dict, list[float]]) -> None:
    """Two :func:`train_steps` results are equal bit for bit: the losses and every state entry."""
    (plain_state, plain_losses), (ckpt_state, ckpt_losses) = plain, checkpointed
    assert plain_losses == ckpt_losses
    assert plain_state.keys() == ckpt_state.keys()
    for key, value in plain_state.items():
        assert torch.equal(value, ckpt_state[key]), key
