"""Errors raised by the readers of raw trajectory files."""
from __future__ import annotations

from pathlib import Path


class InputFileError(ValueError):
    """A raw input file cannot be read; the message names the file, the row if any, and why.

    Message: ``"<path>, row <row> (line <line>): <problem>"``; the row and line parts appear only
    when known. ``row`` is the 1-based data row (the header and blank lines not counted, the same
    numbering as the ``row`` column of the ingest rejections); ``line`` is the 1-based line of the
    (decompressed) file, as an editor shows it.
    """

    def __init__(self, path: Path | str, problem: str, row: int | None = None, line: int | None = None):
        self.path = str(path)
        self.row = row
        self.line = line
        self.problem = problem
        where = f"{path}"
        if row is not None:
            where += f", row {row}"
            if line is not None:
                where += f" (line {line})"
        elif line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {problem}")
