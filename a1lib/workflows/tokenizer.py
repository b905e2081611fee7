"""``a1 tokenizer train`` (the frozen image tokenizer and the text tokenizer) and
``a1 tokenizer encode`` (the latent cache)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from a1lib.constants import SOURCES
from a1lib.data import LeRobotDataset
from a1lib.io import atomic_directory, atomic_write_json
from a1lib.models.image_tokenizer import (
    ImageTokenizer,
    images_to_tensor,
    psnr,
)
from a1lib.models.text_tokenizer import (
    build_corpus,
    save_text_tokenizer,
    train_text_tokenizer,
)
from a1lib.train.latent_cache import (
    LatentCache,
    StaleCacheError,
    encode_dataset,
    resolve_image_tokenizer_dir,
)
from a1lib.train.tokenizers import (
    TokenizerConfig,
    load_frames,
    split_heldout,
    tokenizer_summary,
    train_image_tokenizer,
)
from a1lib.workflows.cli import Command
from a1lib.workflows.params import load_section


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    parser.add_argument("--preset", default=None, help="params.yaml preset (default: its `preset` key)")
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="root holding sim/, lab/, human/ (default: data)")
    parser.add_argument("--out", type=Path, default=Path("artifacts/tokenizer"),
                        help="writes OUT/image/, OUT/text/, OUT/metrics.json, OUT/summary.json "
                             "(default: artifacts/tokenizer)")
    parser.add_argument("--no-progress", action="store_true",
                        help="plain progress lines instead of bars (the default when stderr is not a terminal)")


def run_train(args: argparse.Namespace) -> int:
    cfg = load_section("tokenizer", TokenizerConfig, args.params, args.preset)
    cfg.image.validate()
    frames, episode_ids, source_ids, tasks, masks = load_frames(args.data, tuple(cfg.sources), cfg.max_train_frames,
                                                                cfg.seed)
    print(f"image tokenizer: {len(frames)} frames from {list(cfg.sources)}, {len(np.unique(episode_ids))} episodes")
    image_tok, metrics = train_image_tokenizer(frames, cfg.image, episode_ids, masks,
                                               progress=not args.no_progress and sys.stderr.isatty())

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
        atomic_write_json(tmp / "summary.json", tokenizer_summary(metrics))

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


def add_encode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data"),
                        help="root holding sim/, lab/, human/ (default: data)")
    parser.add_argument("--tokenizer", type=Path, default=Path("artifacts/tokenizer"),
                        help="trained tokenizer directory (default: artifacts/tokenizer)")
    parser.add_argument("--out", type=Path, default=Path("artifacts/latents"),
                        help="where <source>.safetensors go (default: artifacts/latents)")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES,
                        help="datasets to encode (default: all)")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per encoder batch (default: 256)")
    parser.add_argument("--force", action="store_true", help="re-encode even when the cache is up to date")
    parser.add_argument("--no-progress", action="store_true",
                        help="plain progress lines instead of bars (the default when stderr is not a terminal)")


def run_encode(args: argparse.Namespace) -> int:
    tokenizer = ImageTokenizer.load(resolve_image_tokenizer_dir(args.tokenizer))
    for source in args.sources:
        root = args.data / source
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset not found (run `a1 data generate`, or pass --sources)")
        ds = LeRobotDataset(root)
        out = args.out / f"{source}.safetensors"
        if not args.force and out.exists():
            try:
                LatentCache.for_dataset(out, tokenizer, ds)
                print(f"{out}: up to date ({len(ds)} frames)")
                continue
            except (StaleCacheError, ValueError, FileNotFoundError) as e:
                print(f"{out}: stale, re-encoding ({e})")
        encode_dataset(ds, tokenizer, out, dataset_root=root, batch_size=args.batch_size,
                       progress=not args.no_progress and sys.stderr.isatty())
        print(f"{out}: {len(ds)} frames -> latents {tokenizer.latent_shape()}")
    return 0


train = Command(add_train_arguments, run_train)
encode = Command(add_encode_arguments, run_encode)
