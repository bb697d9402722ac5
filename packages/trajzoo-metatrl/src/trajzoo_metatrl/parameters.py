"""Shared / private parameter split of MetaTRL and the "Parameters Clone" step.

Source: MetaTRL paper, section "Cross-city Meta-learning Framework", eqs. 1-4. Shared parameters
are cloned from the meta model into the source model before its inner update (eq. 1) and from the
meta model into the target model (eq. 3); private (city-specific) parameters are never copied
between cities.

Naming convention used by every module of this package: a submodule or parameter that is SHARED
across cities has an attribute name starting with ``shared_``; a PRIVATE one starts with
``private_``. A parameter is classified by the components of its dotted name
(``"road_encoder.shared_mkf.fc1.weight"`` is shared because of ``shared_mkf``). Every parameter
must be exactly one of the two; :func:`classify_or_raise` checks it.

The assignment follows the paper:

* PRIVATE (city-specific): the GAT road encoder of eqs. 7-10 (NAF and W_1..W_4 of every
  layer), the period embeddings t^d, t^m of eq. 11, the private view MLP^private and the value
  projection W_V of eqs. 16-17, and the prediction heads W_fm, W_tm of eq. 19;
* SHARED (cloned across cities): MKF of eq. 6, the interval encoder of eqs. 12-13 (its MLP and
  the bucket matrix W_BE), the shared view MLP^shared of eq. 16 and the projections W_Q, W_K of
  eq. 17;
* NOT CLASSIFIED by the paper: the attention output projection, the layer norms and the
  feed-forward block of every trajectory-encoder layer ("other components ... are not elaborated
  here"), and the two learned stand-ins of the masking (the [MASK] road vector and the
  time-mask vector). They are SHARED by default; ``MetaTRLConfig.unclassified_shared = False``
  makes them private. Their attribute names are built with :func:`side_prefix`, so the name
  still says on which side a parameter is.

The plain ablations (``use_meta_knowledge=False``: GATConv road encoder; ``use_knowledge_fusion
=False``: Q, K, V from H) replace paper components by private ones.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

SHARED_PREFIX = "shared_"
PRIVATE_PREFIX = "private_"


def side_prefix(shared: bool) -> str:
    """The attribute-name prefix of a component whose side is chosen by configuration.

    Args:
        shared: True for the shared side.

    Returns:
        ``"shared_"`` or ``"private_"``.
    """
    return SHARED_PREFIX if shared else PRIVATE_PREFIX


def is_shared(param_name: str) -> bool:
    """Whether a dotted parameter name denotes a shared (city-independent) parameter.

    Args:
        param_name: dotted name as produced by ``Module.named_parameters()``.

    Returns:
        True if any dotted component starts with ``"shared_"``.
    """
    return any(part.startswith(SHARED_PREFIX) for part in param_name.split("."))


def is_private(param_name: str) -> bool:
    """Whether a dotted parameter name denotes a private (city-specific) parameter.

    Args:
        param_name: dotted name as produced by ``Module.named_parameters()``.

    Returns:
        True if any dotted component starts with ``"private_"``.
    """
    return any(part.startswith(PRIVATE_PREFIX) for part in param_name.split("."))


def classify_or_raise(module: nn.Module) -> None:
    """Check that every parameter of ``module`` is either shared or private, not both nor neither.

    Args:
        module: any module following the ``shared_`` / ``private_`` naming convention.

    Raises:
        ValueError: naming every parameter that is unclassified or classified as both.
    """
    neither: list[str] = []
    both: list[str] = []
    for name, _ in module.named_parameters():
        shared, private = is_shared(name), is_private(name)
        if shared and private:
            both.append(name)
        elif not shared and not private:
            neither.append(name)
    if neither or both:
        parts = []
        if neither:
            parts.append(f"neither shared nor private: {neither}")
        if both:
            parts.append(f"both shared and private: {both}")
        raise ValueError("unclassified parameters (" + "; ".join(parts) + ")")


def shared_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    """The shared parameters of ``module`` by dotted name.

    Args:
        module: a module following the naming convention.

    Returns:
        ``{name: parameter}`` (the live parameters, not copies) for every shared parameter.

    Raises:
        ValueError: if any parameter of ``module`` is unclassified (see :func:`classify_or_raise`).
    """
    classify_or_raise(module)
    return {name: p for name, p in module.named_parameters() if is_shared(name)}


def private_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    """The private parameters of ``module`` by dotted name.

    Args:
        module: a module following the naming convention.

    Returns:
        ``{name: parameter}`` (the live parameters, not copies) for every private parameter.

    Raises:
        ValueError: if any parameter of ``module`` is unclassified (see :func:`classify_or_raise`).
    """
    classify_or_raise(module)
    return {name: p for name, p in module.named_parameters() if is_private(name)}


def shared_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """Detached clones of the shared entries of ``module.state_dict()``.

    This is the payload of the "Parameters Clone" of MetaTRL eqs. 1 and 3. Persistent buffers
    whose name is shared are included as well (the modules of this package have none).

    Args:
        module: a module following the naming convention.

    Returns:
        ``{name: tensor}`` with tensors detached from autograd and not sharing storage with
        the module.

    Raises:
        ValueError: if any parameter of ``module`` is unclassified.
    """
    classify_or_raise(module)
    return {
        name: tensor.detach().clone()
        for name, tensor in module.state_dict(keep_vars=True).items()
        if is_shared(name)
    }


def load_shared_state(module: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Copy shared tensors into ``module`` in place; private parameters are never touched.

    Implements the "Parameters Clone" of MetaTRL eqs. 1 and 3 (meta -> source, meta -> target).
    Copies are done under ``torch.no_grad()`` into the existing tensors, so optimisers holding
    the module's parameters keep working; values are cast to the destination dtype/device.

    Args:
        module: destination module (e.g. the source- or target-city model).
        state: ``{name: tensor}`` as returned by :func:`shared_state_dict` of a model with the
            same architecture (the cities may differ: shared tensors do not depend on the number
            of road segments nor on the attribute dimension).

    Raises:
        ValueError: if ``module`` has unclassified parameters; if ``state`` lacks a shared entry
            of ``module`` (missing) or has an entry that is not a shared entry of ``module``
            (unexpected, including any private name); or if a shape differs.
    """
    classify_or_raise(module)
    destination = {
        name: tensor for name, tensor in module.state_dict(keep_vars=True).items() if is_shared(name)
    }
    missing = sorted(set(destination) - set(state))
    unexpected = sorted(set(state) - set(destination))
    if missing or unexpected:
        raise ValueError(f"shared state mismatch: missing keys {missing}, unexpected keys {unexpected}")
    bad_shapes = [
        f"{name}: {tuple(state[name].shape)} vs {tuple(dst.shape)}"
        for name, dst in destination.items()
        if state[name].shape != dst.shape
    ]
    if bad_shapes:
        raise ValueError(f"shared state shape mismatch: {bad_shapes}")
    with torch.no_grad():
        for name, dst in destination.items():
            dst.copy_(state[name])
