"""Config errors and how pydantic's validation errors become one message per offending key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """An invalid experiment config; the message names the key and the allowed values."""


class KeyValidationError(ValueError):
    """A validation error that belongs to one key of the model (moved there in the message)."""

    def __init__(self, key: str, msg: str) -> None:
        super().__init__(msg)
        self.key = key


def listed(values) -> str:
    return ", ".join(str(v) for v in values)


def format_errors(
    e: ValidationError, source: str, models: dict[str, type[BaseModel]] | None = None
) -> str:
    """One line per error, `attacks[0].apply: ...`; `models` maps a parent key to its model so
    an unknown key lists the allowed ones."""
    lines = []
    for err in e.errors():
        loc = list(err["loc"])
        ctx = err.get("ctx") or {}
        exc = ctx.get("error")
        msg = err["msg"]
        if isinstance(exc, KeyValidationError):
            loc.extend(exc.key.split("."))
            msg = str(exc)
        elif isinstance(exc, ValueError):
            msg = str(exc)
        elif err["type"] == "extra_forbidden":
            msg = "unknown key" + _allowed_keys(loc, models or {})
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and err["type"].endswith("_type"):
            msg = f"{msg}, got {_plain(err['input'])}"
        lines.append(f"{location(loc)}: {msg}")
    head = f"invalid experiment config {source}" if source else "invalid experiment config"
    return head + ":\n  " + "\n  ".join(lines)


def _plain(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: list, models: dict[str, type[BaseModel]]) -> str:
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    model = models.get(parents[-1] if parents else "")
    if model is None:
        return ""
    return "; allowed: " + listed(model.model_fields)


def location(loc: list) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "config"
