"""What training reads from the earlier stages: datasets, tokenizers, latent caches, and the
processor built from them, exactly as ``a1 pretrain`` / ``a1 finetune`` build it.

    data/<source>/                            LeRobot datasets        (a1 data generate)
    artifacts/tokenizer/{image,text}/         frozen tokenizers       (a1 tokenizer train)
    artifacts/latents/<source>.safetensors    latent caches           (a1 tokenizer encode)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from a1lib.data import LeRobotDataset
from a1lib.data.scene_qa import qa_pairs
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.image_tokenizer import ImageTokenizer
from a1lib.models.processor import A1Processor
from a1lib.models.text_tokenizer import load_text_tokenizer
from a1lib.train.config import TrainConfig
from a1lib.train.datamodule import build_normalizer
from a1lib.train.latent_cache import LatentCache, resolve_image_tokenizer_dir


def scene_qa_fn(scene: dict[str, np.ndarray], rng: np.random.Generator):
    """One visible-answer question about frame t (no motion questions: the understanding pass sees
    one frame), or None when the scene offers none."""
    pairs = qa_pairs(scene, rng, include_motion=False)
    return pairs[int(rng.integers(len(pairs)))] if pairs else None


def load_datasets(data: str | Path, sources: list[str]) -> dict[str, Any]:
    out = {}
    for s in sources:
        root = Path(data) / s
        if not (root / "meta" / "info.json").exists():
            raise FileNotFoundError(f"{root}: dataset not found (run `a1 data generate`)")
        out[s] = LeRobotDataset(root)
    return out


def load_latents(latents: str | Path, datasets: dict[str, Any], image_tokenizer: Any) -> dict[str, Any]:
    return {s: LatentCache.for_dataset(Path(latents) / f"{s}.safetensors", image_tokenizer, ds)
            for s, ds in datasets.items()}


def load_tokenizers(tokenizer: str | Path):
    """(text tokenizer, image tokenizer) from ``artifacts/tokenizer`` (or its image/ and text/ parts)."""
    root = Path(tokenizer)
    text_dir = root / "text" if (root / "text").is_dir() else root
    return load_text_tokenizer(text_dir), ImageTokenizer.load(resolve_image_tokenizer_dir(root))


def build_processor(config: A1Config, cfg: TrainConfig, datasets: dict[str, Any], text_tok: Any, image_tok: Any,
                    latents_dir: str | Path, normalizer: Any = None) -> A1Processor:
    latents = load_latents(latents_dir, datasets, image_tok) if config.has_generation_expert else {}
    if normalizer is None:
        normalizer = build_normalizer(datasets, cfg.normalization)
    return A1Processor(config, text_tok, normalizer, image_tok, latents=latents,
                       qa_fn=scene_qa_fn if config.lambda_und > 0 else None, seed=cfg.seed)
