"""Stage request dataclasses to JSON and back (nested dataclasses, optional fields, tuples)."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def to_jsonable(obj: Any) -> Any:
    """A dataclass (possibly nested) as plain JSON values; ``Path`` becomes ``str``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def from_jsonable(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild dataclass ``cls`` from :func:`to_jsonable` output; unknown keys are ignored, missing ones default."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _coerce(hints.get(f.name, Any), data[f.name])
    return cls(**kwargs)


def _coerce(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_jsonable(tp, value)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(tp):
            if isinstance(member, type) and dataclasses.is_dataclass(member) and isinstance(value, dict):
                return from_jsonable(member, value)
        return value
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if tp is Path:
        return Path(value)
    return value
