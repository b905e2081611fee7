"""`a1 tokenizer train`: train the image tokenizer (VAE) and the text tokenizer, once, then freeze.

Reads frames from all three sources (sim, lab, human) so that one tokenizer covers every domain,
as the original's Cosmos tokenizer does, trains the VAE, builds the word-level text tokenizer
from every instruction plus the scene QA strings, and writes (atomically, as one directory)::

    artifacts/tokenizer/image/            diffusers AutoencoderKL (safetensors) + image_tokenizer.json
    artifacts/tokenizer/text/tokenizer.json
    artifacts/tokenizer/metrics.json      held-out PSNR (overall and per source), timings, vocab size

Settings: the ``tokenizer`` section of params.yaml (``TokenizerConfig`` below), e.g.::

    tokenizer:
      max_train_frames: 8192
      text_vocab_size: 1024
      image: {train_steps: 400, batch_size: 32, block_out_channels: [16, 32, 64, 64]}
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from a1lib.models.image_tokenizer import (
    ImageTokenizerConfig,
    atomic_directory,
    images_to_tensor,
    object_masks,
    psnr,
    split_heldout,
    train_image_tokenizer,
)
from a1lib.models.text_tokenizer import build_corpus, save_text_tokenizer, train_text_tokenizer

SOURCES = ("sim", "lab", "human")
IMAGE_KEY = "observation.image"


@dataclass
class TokenizerConfig:
    image: ImageTokenizerConfig = field(default_factory=ImageTokenizerConfig)
    text_vocab_size: int = 1024
    max_train_frames: int = 8192  # frames sampled (without replacement) across the sources
    sources: tuple[str, ...] = SOURCES
    seed: int = 0  # frame sampling


def load_frames(
    data_root: Path, sources: tuple[str, ...], max_frames: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """Frames uint8 (N,H,W,3), global episode id (N,), source id (N,), all dataset instructions, and
    the object masks (N,H,W) bool (``image_tokenizer.object_masks``; None if a dataset has no scene).

    When the sources hold more than ``max_frames`` frames, each source contributes in proportion
    to its size (at least one frame per source).
    """
    from a1lib.data import LeRobotDataset

    datasets = []
    for source in sources:
        root = data_root / source
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset not found (run `a1 data generate` first)")
        datasets.append(LeRobotDataset(root))
    sizes = np.array([len(ds) for ds in datasets])
    total = int(sizes.sum())
    if total == 0:
        raise ValueError(f"{data_root}: the datasets {list(sources)} hold no frames")
    quota = sizes if total <= max_frames else np.maximum(1, np.floor(sizes * max_frames / total)).astype(int)
    rng = np.random.default_rng(seed)
    frames, episode_ids, source_ids, tasks, masks = [], [], [], [], []
    episode_offset = 0
    for s, (ds, n) in enumerate(zip(datasets, quota)):
        episode_of_frame = np.full(len(ds), -1, np.int64)
        for e, ep in enumerate(ds.episodes):
            episode_of_frame[ep["dataset_from_index"] : ep["dataset_to_index"]] = episode_offset + e
        episode_offset += len(ds.episodes)
        idx = np.sort(rng.choice(len(ds), size=int(min(n, len(ds))), replace=False))
        frames.append(np.asarray(ds.get_frames(IMAGE_KEY, idx)))
        cols = ds.columns
        if masks is not None and "scene.pose" in cols and "scene.kind" in cols:
            camera = cols["scene.camera"][idx] if "scene.camera" in cols else None
            masks.append(object_masks(cols["scene.pose"][idx], cols["scene.kind"][idx], camera, frames[-1].shape[1]))
        else:
            masks = None
        episode_ids.append(episode_of_frame[idx])
        source_ids.append(np.full(len(idx), s, np.int64))
        tasks += list(ds.tasks)
    return (np.concatenate(frames), np.concatenate(episode_ids), np.concatenate(source_ids), tasks,
            None if masks is None else np.concatenate(masks))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--preset", default=None, help="params.yaml preset (default: its `preset` key)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="root holding sim/, lab/, human/")
    parser.add_argument("--out", type=Path, default=Path("artifacts/tokenizer"))


def run(args: argparse.Namespace) -> int:
    from a1lib.params import load_section

    cfg = load_section("tokenizer", TokenizerConfig, args.params, args.preset)
    cfg.image.validate()
    frames, episode_ids, source_ids, tasks, masks = load_frames(args.data, tuple(cfg.sources), cfg.max_train_frames,
                                                                cfg.seed)
    print(f"image tokenizer: {len(frames)} frames from {list(cfg.sources)}, {len(np.unique(episode_ids))} episodes")
    image_tok, metrics = train_image_tokenizer(frames, cfg.image, episode_ids, masks)

    # Held-out PSNR per source (the same episode split train_image_tokenizer used).
    _, held = split_heldout(len(frames), episode_ids, cfg.image.heldout_fraction, cfg.image.seed)
    per_source = {}
    for s, name in enumerate(cfg.sources):
        idx = held[source_ids[held] == s][: cfg.image.max_eval_frames]
        if len(idx):
            x = images_to_tensor(frames[idx])
            per_source[name] = psnr(image_tok.decode(image_tok.encode(x)), x)
    metrics["psnr_heldout_db_by_source"] = per_source

    t0 = time.perf_counter()
    corpus = build_corpus(tasks)
    text_tok = train_text_tokenizer(corpus, cfg.text_vocab_size)
    unk = text_tok.unk_token_id
    unk_tasks = [t for t in tasks if unk in text_tok(t)["input_ids"]]
    metrics["text"] = {
        "vocab_size": len(text_tok),
        "corpus_lines": len(corpus),
        "dataset_instructions": len(set(tasks)),
        "dataset_instructions_with_unk": len(unk_tasks),
        "seconds": time.perf_counter() - t0,
    }
    metrics["config"] = dataclasses.asdict(cfg)

    with atomic_directory(args.out) as tmp:
        image_tok.save(tmp / "image")
        save_text_tokenizer(text_tok, tmp / "text")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    def db(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    print(
        f"{args.out}: PSNR held-out {db(metrics['psnr_heldout_db'])} dB "
        f"(untrained {db(metrics['psnr_heldout_untrained_db'])} dB), by source "
        + ", ".join(f"{k} {db(v)}" for k, v in per_source.items())
        + f"; trained in {metrics['train_seconds']:.0f} s; text vocab {len(text_tok)}"
    )
    if unk_tasks:
        print(f"warning: {len(unk_tasks)} dataset instruction(s) contain [UNK], e.g. {unk_tasks[0]!r}")
    return 0
