"""Stable content hashes: the cache keys of steps and the identity of a config."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any, n: int = 16) -> str:
    """First `n` hex digits of the SHA-256 of `obj` as sorted, compact JSON."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]
