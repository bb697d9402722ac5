"""Errors raised by the readers of raw trajectory files."""
from __future__ import annotations

from pathlib import Path


class InputFileError(ValueError):
    """A raw input file cannot be read; the message names the file, the row if any, and why."""

    def __init__(self, path: Path | str, problem: str, row: int | None = None):
        self.path = str(path)
        self.row = row
        self.problem = problem
        where = f"{path}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {problem}")
