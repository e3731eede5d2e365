"""What every command shares: the error console, the one-line error format and checks of
outputs that run before any work."""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.text import Text

from ehrbackdoor.data.errors import DataFormatError

err = Console(stderr=True)
F = TypeVar("F", bound=Callable)


_NUMPY_REPR = re.compile(r"\bnp\.(?:float|int|uint|bool_|str_)\w*\(([^()]*)\)")


def plain_message(msg: str) -> str:
    """`np.float64(nan)` -> `nan`: numpy scalar reprs (NumPy >= 2) mean nothing to a user."""
    return _NUMPY_REPR.sub(r"\1", msg)


def print_error(msg: str) -> None:
    """One red 'error:' prefix; the message itself is printed literally (no markup)."""
    text = Text.assemble(("error: ", "bold red"), plain_message(msg))
    err.print(text, soft_wrap=True, highlight=False)


def os_error_message(e: OSError) -> str:
    """`cannot write runs/x: Permission denied` rather than `[Errno 13] ...`."""
    if e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e)


def friendly_errors(fn: F) -> F:
    """Turn input and file-system errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DataFormatError, ValueError, KeyError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            print_error(msg)
            raise typer.Exit(2) from None
        except OSError as e:
            print_error(os_error_message(e))
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def check_out_dir(out: Path, option: str = "--out") -> None:
    """Fail before any work when `out` cannot be a writable directory.

    Creates the directory (as the command would) and writes and removes a probe file in it, so a
    read-only or missing mount fails now rather than after the computation.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as e:
        raise ValueError(f"{option} {out}: cannot write there ({e.strerror or e})") from None


def check_out_file(out: Path, option: str = "--out") -> None:
    """Fail before any work when `out` cannot be written as a file."""
    if out.is_dir():
        raise ValueError(f"{option} {out}: is a directory, expected a file name")
    check_out_dir(out.parent, option)
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"{option} {out}: file is not writable")


def split_names(text: str) -> list[str]:
    """`lr, mlp,,gru` -> [lr, mlp, gru]."""
    return [m.strip() for m in text.split(",") if m.strip()]
