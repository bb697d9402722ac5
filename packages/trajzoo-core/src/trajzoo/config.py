"""Strict construction of the configuration dataclasses of the core and the model packages."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def strict_from_dict(cls: type[T], d: Mapping[str, Any] | None, what: str) -> T:
    """Build the dataclass ``cls`` from a mapping (e.g. a YAML section); missing keys take the
    dataclass defaults.

    Args:
        cls: a dataclass type.
        d: field values (None = all defaults).
        what: name used in the error message (e.g. ``"start hparams"``).

    Returns:
        ``cls(**d)``.

    Raises:
        ValueError: naming every key of ``d`` that is not a field of ``cls`` (and whatever
            ``cls.__post_init__`` raises for out-of-range values).
    """
    d = dict(d or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} key(s): {unknown} (known: {sorted(known)})")
    return cls(**d)
