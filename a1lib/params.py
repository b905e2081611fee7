"""params.yaml -> typed dataclasses.

``params.yaml`` holds one ``preset`` key (``ci`` | ``cpu`` | ``gpu``) and, under ``presets``, one
block per preset with a section per pipeline step (``data``, ``tokenizer``, ``model``, ...). Each
section is loaded into the dataclass of the module that owns it, strictly: an unknown key is an
error that names it, so a typo in params.yaml never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or names a key the config does not have."""


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields are built recursively."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, f"{where}.{name}" if where else name)
        elif isinstance(value, list) and _is_tuple(hint):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_tuple(a) for a in typing.get_args(hint))
    return origin is tuple or hint is tuple


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found (run from the repository root, or pass --params)")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(params, dict) or "preset" not in params or "presets" not in params:
        raise ParamsError(f"{path}: expected top-level keys 'preset' and 'presets'")
    return params


def load_section(
    name: str, cls: type[T], path: str | Path = DEFAULT_PARAMS, preset: str | None = None
) -> T:
    """The ``name`` section of the selected preset in ``path``, as a ``cls`` instance."""
    params = read_params(path)
    preset = preset or params["preset"]
    presets = params["presets"]
    if preset not in presets:
        raise ParamsError(f"{path}: preset {preset!r} not defined; have {sorted(presets)}")
    section = (presets[preset] or {}).get(name)
    return from_dict(cls, section, where=f"presets.{preset}.{name}")


def asdict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
