"""Errors raised on bad input data: they name the file, the line and what was expected."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """Input data that ehrbackdoor cannot read as it is."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
