"""A complete, tiny training setup in seconds: for tests, notebooks and smoke runs.

Everything the real pipeline gets from earlier stages is made here in miniature, deterministically:
three synthetic LeRobot datasets (``sim``, ``lab``, ``human``: 16x16 frames, 4-d state, 3-d
action; ``a1lib.data.synthetic``), a word-level text tokenizer over their instructions, a small
random (untrained but frozen) image tokenizer, and latent caches made with it. The model config is
the ``ci`` preset shrunk to match.
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from a1lib.data import LeRobotDataset
from a1lib.data.synthetic import write_synthetic_dataset
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.image_tokenizer import ImageTokenizer, ImageTokenizerConfig, build_vae
from a1lib.models.processor import A1Processor
from a1lib.train.callbacks import RunTrace
from a1lib.train.config import TrainConfig
from a1lib.train.datamodule import build_normalizer
from a1lib.train.trainer import fit

TOY_WORDS = ["task", "0", "1", "how", "many", "objects", "?", "is", "held", "yes", "no",
             "2", "3", "4", "5", "6", "7", "8"]


def toy_text_tokenizer():
    """A word-level PreTrainedTokenizerFast with [PAD]=0, [UNK]=1, [EOS]=2."""

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2}
    for w in TOY_WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")


def toy_qa(scene: dict[str, np.ndarray], rng: np.random.Generator):
    """A stand-in scene QA: count the objects, or ask whether one is held."""
    if "scene.kind" not in scene:
        return None
    if rng.random() < 0.5 or "scene.held" not in scene:
        return "how many objects ?", str(int((scene["scene.kind"] >= 0).sum()))
    return "is held ?", "yes" if int(np.asarray(scene["scene.held"]).reshape(-1)[0]) > 0 else "no"


def toy_image_tokenizer(image_size: int = 16, seed: int = 0):

    cfg = ImageTokenizerConfig(image_size=image_size, block_out_channels=(8, 8, 8, 8), norm_num_groups=4,
                               layers_per_block=1, mid_attention=False, seed=seed)
    return ImageTokenizer(build_vae(cfg), cfg).freeze()


def toy_model_config(**overrides: Any) -> A1Config:
    base = dict(image_size=16, patch_size=8, latent_size=2, gen_patch=1, state_dim=4, action_dim=3,
                chunk_size=4, vocab_size=32, max_text_len=6, num_inference_steps=3)
    return A1Config.preset("tiny", **{**base, **overrides})


@dataclass
class ToySetup:
    root: Path
    config: A1Config
    datasets: dict  # source -> LeRobotDataset
    latents: dict  # source -> tensor (N, C, h, w)
    text_tokenizer: Any
    image_tokenizer: Any


def make_toy_setup(root: str | Path, sources=("sim", "lab", "human"), episodes: int = 4, length: int = 12,
                   **config_overrides: Any) -> ToySetup:
    """Write (or reuse) the toy datasets under ``root`` and build everything around them."""

    root = Path(root)
    config = toy_model_config(**config_overrides)
    image_tok = toy_image_tokenizer(config.image_size)
    datasets, latents = {}, {}
    for k, source in enumerate(sources):
        path = root / source
        if not (path / "meta" / "info.json").exists():
            lengths = [length + ((3 * e + k) % 5) for e in range(episodes)]
            write_synthetic_dataset(path, lengths=lengths, image_size=config.image_size, human=source == "human")
        ds = LeRobotDataset(path)
        datasets[source] = ds
        frames = ds.get_frames("observation.image", np.arange(len(ds)))
        latents[source] = image_tok.encode(frames)  # (N, C, h, w)
    return ToySetup(root, config, datasets, latents, toy_text_tokenizer(), image_tok)


def toy_normalizer(setup: ToySetup):

    return build_normalizer(setup.datasets)


_WORD = re.compile(r"\S+")


def main(argv: list[str] | None = None) -> int:
    """``python -m a1lib.workflows.synthetic_setup --out DIR --steps N``: a toy training run
    (the resume test kills it)."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=None, help="toy dataset folder (default: OUT/data)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--checkpoint-every", type=int, default=5)
    p.add_argument("--step-sleep", type=float, default=0.0, help="slow each step down (kill tests)")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--devices", type=int, default=0, help="training processes (0: torchrun's count, else 1)")
    p.add_argument("--strategy", default="auto", help="auto | ddp | fsdp")
    p.add_argument("--trace", default=None, metavar="DIR",
                   help="write DIR/rank{r}.jsonl: samples and checkpoint writes per process")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    setup = make_toy_setup(args.data or Path(args.out) / "data")
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=3e-3, warmup_steps=2, min_lr=3e-4,
                      checkpoint_every=args.checkpoint_every, val_every=max(args.steps // 2, 1), val_batches=1,
                      log_every=1, delta=2, devices=args.devices, strategy=args.strategy)
    processor = A1Processor(setup.config, setup.text_tokenizer, toy_normalizer(setup), setup.image_tokenizer,
                            latents=setup.latents, qa_fn=toy_qa)
    callbacks: list = [RunTrace(args.trace)] if args.trace else []
    if args.step_sleep > 0:
        class Sleep(L.Callback):
            def on_train_batch_end(self, *a, **k):
                time.sleep(args.step_sleep)

        callbacks.append(Sleep())
    result = fit(setup.config, cfg, setup.datasets, processor, args.out, resume=not args.no_resume,
                 progress=False, extra_callbacks=callbacks)
    if result.rank == 0:
        print(f"done: global_step={result.global_step} resumed_from={result.resumed_from} "
              f"world_size={result.world_size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
