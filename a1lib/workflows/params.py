"""params.yaml -> typed dataclasses: the only module that reads params.yaml.

``params.yaml`` holds one ``preset`` key (``ci`` | ``cpu`` | ``gpu``) and, under ``presets``, one
block per preset with a section per pipeline step (``data``, ``tokenizer``, ``model``, ...). Each
section is loaded into the dataclass of the module that owns it, strictly: an unknown key is an
error that names it, so a typo in params.yaml never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml

from a1lib.configs import ParamsError, from_dict
from a1lib.models.configuration_a1 import A1Config
from a1lib.train.config import TrainConfig

T = TypeVar("T")
DEFAULT_PARAMS = Path("params.yaml")  # commands run from the repository root
REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"  # for notebooks, whatever their cwd


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


def parse_overrides(items: list[str], where: str) -> dict[str, Any]:
    """["key=JSON", ...] (command-line --set / --model-set) -> {key: value}; a bare word is a string."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{where}: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value  # a bare string
    return out


def model_config(path: str | Path = DEFAULT_PARAMS, preset: str | None = None,
                 overrides: dict[str, Any] | None = None) -> A1Config:
    """The preset's ``model`` section: ``A1Config.preset(<its preset>)``, plus any other keys of the
    section and ``overrides`` (the sizes themselves live in A1Config.PRESETS)."""
    params = read_params(path)
    preset = preset or params["preset"]
    if preset not in params["presets"]:
        raise ParamsError(f"{path}: preset {preset!r} not defined; have {sorted(params['presets'])}")
    section = dict((params["presets"][preset] or {}).get("model") or {})
    base = section.pop("preset", preset)
    return A1Config.preset(base, **{**section, **(overrides or {})})


def train_config(section: str, path: str | Path = DEFAULT_PARAMS, preset: str | None = None,
                 changes: dict[str, Any] | None = None) -> TrainConfig:
    """The ``pretrain`` / ``finetune`` section as a TrainConfig, with ``changes`` applied (strictly)."""
    cfg = load_section(section, TrainConfig, path=path, preset=preset)
    if changes:
        cfg = from_dict(TrainConfig, {**dataclasses.asdict(cfg), **changes}, where="TrainConfig (--set)")
    return cfg
