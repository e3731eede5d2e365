"""Plain-text tables for a terminal: human headers, intervals kept inside a metric's range, and
tables split so that none is wider than the terminal (80 columns when piped).

Every table a command prints (attack, audit, results) goes through `render_tables`; the column
names of CSV and JSON output are the machine-readable metric names and are not touched here.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: The three models-and-data pairs every result is about, named once (README: Glossary).
UNPOISONED = "unpoisoned"  # the same victim trained on the clean training data
POISONED_CLEAN = "poisoned, clean"  # the poisoned victim on the clean test stays
POISONED_TRIGGERED = "poisoned, triggered"  # the poisoned victim on the triggered test stays

GLOSSARY = (
    "ASR: share of triggered test stays (of the non-target class) classified as the target at "
    "the model's clean-validation threshold. "
    f"'{UNPOISONED}': the victim trained on unpoisoned data (the trigger's effect without any "
    f"backdoor); '{POISONED_CLEAN}': the poisoned victim on the clean test stays; "
    f"'{POISONED_TRIGGERED}': the poisoned victim on the same test stays with the trigger "
    "applied. Cost: unpoisoned minus poisoned, both on the clean test stays."
)


def terminal_width(default: int = 80) -> int:
    """$COLUMNS, else the terminal's width, else `default` (a pipe, a file, CI)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 20:
        return int(env)
    return shutil.get_terminal_size((default, 24)).columns


def fmt_value(v: Any, digits: int = 3) -> str:
    """A number for people: 3 decimals, no `-0.000`, integers without decimals."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 10):
        return f"{int(v)}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    s = f"{f:.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def fmt_interval(mean: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    """`0.696 [0.650, 0.741]`, or the value alone when there is no interval."""
    m = fmt_value(mean, digits)
    if m == "" or lo is None or hi is None:
        return m
    if any(isinstance(x, float) and math.isnan(x) for x in (lo, hi)):
        return m
    return f"{m} [{fmt_value(lo, digits)}, {fmt_value(hi, digits)}]"


def wilson_interval(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion `p` of `n` trials; always inside [0, 1]."""
    if n <= 0 or p is None or math.isnan(p):
        return (math.nan, math.nan)
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


@dataclass
class Column:
    """One column: the family it belongs to (the table's title), its header and its cells."""

    family: str
    header: str
    cells: list[str]


def _width(cols: Sequence[Column]) -> int:
    return sum(max(len(c.header), *(len(x) for x in c.cells)) + 3 for c in cols) + 1


def _render(cols: Sequence[Column], n_keys: int) -> list[str]:
    """A pipe table: setting columns left-aligned, numbers right-aligned."""
    widths = [max(len(c.header), *(len(x) for x in c.cells)) for c in cols]
    head = "| " + " | ".join(c.header.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    rows = []
    for i in range(len(cols[0].cells)):
        cells = [
            c.cells[i].ljust(w) if j < n_keys else c.cells[i].rjust(w)
            for j, (c, w) in enumerate(zip(cols, widths, strict=True))
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return [head, rule, *rows]


def render_tables(
    keys: Sequence[Column], metrics: Sequence[Column], width: int | None = None
) -> str:
    """Tables of `keys` (repeated in each) and `metrics`, one per metric family, families split
    over several tables where one would be wider than `width` (default: `terminal_width()`).
    Each table is preceded by its family's title."""
    width = width or terminal_width()
    if not keys or not keys[0].cells:
        return "_nothing to show_\n"
    families = list(dict.fromkeys(c.family for c in metrics))
    out: list[str] = []
    for fam in families:
        cols = [c for c in metrics if c.family == fam]
        chunk: list[Column] = []
        part = 0
        for c in cols:
            if chunk and _width([*keys, *chunk, c]) > width:
                out += _titled(fam, part, keys, chunk)
                part += 1
                chunk = []
            chunk.append(c)
        if chunk:
            out += _titled(fam, part, keys, chunk)
    return "\n".join(out) + "\n"


def _titled(family: str, part: int, keys: Sequence[Column], chunk: list[Column]) -> list[str]:
    title = family + (" (continued)" if part else "")
    return [title, "", *_render([*keys, *chunk], len(keys)), ""]


def wrap(text: str, width: int | None = None, indent: str = "") -> str:
    """`text` wrapped at `width` (terminal width) for notes printed above tables."""
    import textwrap

    return textwrap.fill(text, width=min(width or terminal_width(), 100), subsequent_indent=indent)
