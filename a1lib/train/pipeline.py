"""Shared by ``a1 pretrain`` and ``a1 finetune``: read params.yaml, load what earlier stages made
(datasets, tokenizers, latent caches), build the processor, and train.

    params.yaml  presets.<preset>.model       -> A1Config.preset(<preset>, **overrides)
                 presets.<preset>.pretrain    -> TrainConfig
                 presets.<preset>.finetune    -> TrainConfig
    data/<source>/                            LeRobot datasets        (a1 data generate)
    artifacts/tokenizer/{image,text}/         frozen tokenizers       (a1 tokenizer train)
    artifacts/latents/<source>.safetensors    latent caches           (a1 tokenizer encode)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from a1lib.models.configuration_a1 import A1Config
from a1lib.models.processor import A1Processor
from a1lib.train.config import TrainConfig


def scene_qa_fn(scene: dict[str, np.ndarray], rng: np.random.Generator):
    """One visible-answer question about frame t (no motion questions: the understanding pass sees
    one frame), or None when the scene offers none."""
    from a1lib.data.scene_qa import qa_pairs

    pairs = qa_pairs(scene, rng, include_motion=False)
    return pairs[int(rng.integers(len(pairs)))] if pairs else None


def add_common_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--preset", default=None, help="preset (default: the file's `preset`)")
    parser.add_argument("--out", default=default_out, help=f"run directory (default: {default_out})")
    parser.add_argument("--data", default="data", help="folder with sim/, lab/, human/ (default: data)")
    parser.add_argument("--latents", default="artifacts/latents", help="latent caches (default: artifacts/latents)")
    parser.add_argument("--tokenizer", default="artifacts/tokenizer", help="tokenizers (default: artifacts/tokenizer)")
    parser.add_argument("--steps", type=int, default=None, help="override the section's steps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a TrainConfig field (JSON value), e.g. --set lr=1e-4; repeatable")
    parser.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an A1Config field (JSON value), e.g. --model-set generation='\"none\"'")
    parser.add_argument("--no-resume", action="store_true", help="start over even if OUT/checkpoints/last.ckpt exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default). On a busy 2-core machine 1 is often much faster")


def apply_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", 0) > 0:
        import torch

        torch.set_num_threads(args.threads)


def parse_overrides(items: list[str], where: str) -> dict[str, Any]:
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


def model_config_from_params(args: argparse.Namespace) -> A1Config:
    from a1lib.params import ParamsError, read_params

    params = read_params(args.params)
    preset = args.preset or params["preset"]
    if preset not in params["presets"]:
        raise ParamsError(f"{args.params}: preset {preset!r} not defined; have {sorted(params['presets'])}")
    section = dict((params["presets"][preset] or {}).get("model") or {})
    base = section.pop("preset", preset)
    overrides = {**section, **parse_overrides(args.model_set, "--model-set")}
    return A1Config.preset(base, **overrides)


def train_config_from_params(args: argparse.Namespace, section: str) -> TrainConfig:
    import dataclasses

    from a1lib.params import load_section

    cfg = load_section(section, TrainConfig, path=args.params, preset=args.preset)
    changes = parse_overrides(args.set, "--set")
    if args.steps is not None:
        changes["steps"] = args.steps
    if changes:
        from a1lib.params import from_dict

        cfg = from_dict(TrainConfig, {**dataclasses.asdict(cfg), **changes}, where="TrainConfig (--set)")
    return cfg


def load_datasets(data: str | Path, sources: list[str]) -> dict[str, Any]:
    from a1lib.data import LeRobotDataset

    out = {}
    for s in sources:
        root = Path(data) / s
        if not (root / "meta" / "info.json").exists():
            raise FileNotFoundError(f"{root}: dataset not found (run `a1 data generate`)")
        out[s] = LeRobotDataset(root)
    return out


def load_latents(latents: str | Path, datasets: dict[str, Any], image_tokenizer: Any) -> dict[str, Any]:
    from a1lib.models.latent_cache import LatentCache

    return {s: LatentCache.for_dataset(Path(latents) / f"{s}.safetensors", image_tokenizer, ds)
            for s, ds in datasets.items()}


def load_tokenizers(tokenizer: str | Path):
    from a1lib.models.image_tokenizer import ImageTokenizer
    from a1lib.models.latent_cache import resolve_image_tokenizer_dir
    from a1lib.models.text_tokenizer import load_text_tokenizer

    root = Path(tokenizer)
    text_dir = root / "text" if (root / "text").is_dir() else root
    return load_text_tokenizer(text_dir), ImageTokenizer.load(resolve_image_tokenizer_dir(root))


def build_processor(config: A1Config, cfg: TrainConfig, datasets: dict[str, Any], text_tok: Any, image_tok: Any,
                    latents_dir: str | Path, normalizer: Any = None) -> A1Processor:
    from a1lib.train.datamodule import build_normalizer

    latents = load_latents(latents_dir, datasets, image_tok) if config.has_generation_expert else {}
    if normalizer is None:
        normalizer = build_normalizer(datasets, cfg.normalization)
    return A1Processor(config, text_tok, normalizer, image_tok, latents=latents,
                       qa_fn=scene_qa_fn if config.lambda_und > 0 else None, seed=cfg.seed)


def report(result: Any, config: A1Config) -> None:
    rate = f"{result.samples_per_s:.1f}" if result.samples_per_s else "n/a"
    print(f"trained to step {result.global_step} in {result.seconds:.0f} s ({rate} samples/s); "
          f"policy: {result.policy_dir}; resume point: {result.last_checkpoint}")
