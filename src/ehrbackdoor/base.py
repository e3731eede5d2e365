"""One contract for victims, triggers and detectors: parameters, repr, fitted state, registries.

scikit-learn's conventions, shared by every component so that a user (or a config file) handles a
GRU victim, a missingness trigger and a spectral detector the same way:

* the constructor stores its keyword arguments under the same attribute names, validates them and
  does no other work; `get_params` reads them back from the signature, `set_params` changes them;
* ``repr`` shows the parameters that differ from their defaults;
* learned state lives in attributes ending in ``_``; using a component before it is fitted raises
  the one `NotFittedError`;
* each kind of component has a `Registry`: ``make(name, **params)`` builds one by name, and every
  error names what is wrong and lists what is valid (unknown names and unknown parameters are
  ValueErrors, never a bare TypeError from the constructor).

This module is the lowest layer (next to `ehrbackdoor.checks`) and imports nothing of the package.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

T = TypeVar("T", bound="Component")


class NotFittedError(ValueError, AttributeError):
    """A component was used before `fit` (or before loading a fitted one)."""


def jsonable(value: Any) -> Any:
    """A parameter value in JSON form: tuples become lists, NumPy scalars Python scalars."""
    if isinstance(value, tuple | list):
        return [jsonable(x) for x in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Component:
    """Base of victims, triggers and detectors (see the module docstring)."""

    #: Registry name of the concrete class.
    name: ClassVar[str] = ""
    #: What kind of component this is, used in error messages ("victim", "trigger", ...).
    kind: ClassVar[str] = "component"

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the constructor's keyword parameters, in signature order."""
        return list(cls.param_defaults())

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Constructor parameters and their defaults (`inspect.Parameter.empty` when required)."""
        sig = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }

    @classmethod
    def check_param_names(cls, params: Mapping[str, Any]) -> None:
        """ValueError naming each unknown parameter and listing the valid ones."""
        valid = cls.param_names()
        unknown = [k for k in params if k not in valid]
        if unknown:
            label = f"{cls.kind} {cls.name!r}" if cls.name else cls.__name__
            raise ValueError(
                f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(k) for k in unknown)} for {label}; valid parameters: "
                f"{', '.join(valid) or '(none)'}"
            )

    def _store_params(self, values: Mapping[str, Any]) -> None:
        """Store every constructor parameter found in `values` (typically ``locals()``)."""
        for k in self.param_names():
            if k in values:
                setattr(self, k, values[k])

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able); ``type(self)(**get_params())`` rebuilds it."""
        return {k: jsonable(getattr(self, k)) for k in self.param_names()}

    def set_params(self: T, **params: Any) -> T:
        """Change parameters (validated by the constructor again); returns self.

        Learned attributes are kept, as in scikit-learn: refit after changing parameters. Invalid
        values raise before anything changes.
        """
        self.check_param_names(params)
        checked = type(self)(**{**self.get_params(), **params})
        for k in self.param_names():
            setattr(self, k, getattr(checked, k))
        return self

    def __repr__(self) -> str:
        defaults = self.param_defaults()
        shown = []
        for k, v in self.get_params().items():
            d = defaults.get(k, inspect.Parameter.empty)
            if d is inspect.Parameter.empty or not _same(v, jsonable(d)):
                shown.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # ------------------------------------------------------------------ fitted state
    def _not_fitted(self, hint: str) -> NotFittedError:
        return NotFittedError(f"this {type(self).__name__} is not fitted; {hint}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):  # True == 1, but they are different values
        return False
    try:
        return bool(a == b)
    except (ValueError, TypeError):  # arrays and other values without a plain truth value
        return False


class Registry(dict[str, type[T]], Generic[T]):
    """Name -> class of one kind of component; `make` builds one with checked parameters."""

    def __init__(self, kind: str, classes: tuple[type[T], ...] = ()) -> None:
        super().__init__()
        self.kind = kind
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[T], name: str | None = None) -> type[T]:
        """Add `cls` under `name` (default: its ``name``); usable as a class decorator."""
        key = name or cls.name
        if not key:
            raise ValueError(f"{cls.__name__} has no name to register under")
        if key in self and self[key] is not cls:
            raise ValueError(f"{self.kind} name {key!r} is already registered to {self[key]}")
        self[key] = cls
        return cls

    def get_class(self, name: Any) -> type[T]:
        """The class registered as `name`, or a ValueError listing the valid names."""
        try:
            return self[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self)}"
            ) from None

    def make(self, name: str, **params: Any) -> T:
        """A new (unfitted) component `name` with `params` (unknown ones raise ValueError)."""
        cls = self.get_class(name)
        cls.check_param_names(params)
        return cls(**params)
