"""Kept for the import of :func:`trajzoo.config.strict_from_dict` by
:mod:`trajzoo_baselines.training`; batch checks live in :mod:`trajzoo.nn.batch_checks`."""
from __future__ import annotations

from trajzoo.config import strict_from_dict

__all__ = ["strict_from_dict"]
