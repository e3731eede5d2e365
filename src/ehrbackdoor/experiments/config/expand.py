"""Grids: every list in a config is an axis; these expand (and count) their points."""

from __future__ import annotations

import itertools
import math
from typing import Any

#: A config that expands to more cells than this is refused unless the caller raises the limit.
MAX_CELLS = 100_000


def as_grid(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def grid_size(params: dict[str, Any]) -> int:
    """Number of points of `product(params)`, without building them."""
    return math.prod(len(as_grid(v)) for v in params.values())


def product(params: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(params)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(as_grid(params[k]) for k in keys))
    ]
