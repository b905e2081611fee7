"""A tiny but REAL trained A1 policy in about a minute: for notebooks and tests without a pipeline run.

The real pipeline (``a1 data generate`` -> ``a1 tokenizer train`` -> ``a1 tokenizer encode`` ->
``a1 pretrain`` / ``a1 finetune``) takes hours on a laptop. Notebooks and tests that need a
*trained* policy (one that went through every stage, with its own normaliser, tokenizers and
weights) but not a *good* one use ``build_quick_policy``: every stage in miniature, with the same
functions the pipeline uses, nothing re-implemented:

    a1lib.data.generate.generate             a few scripted-expert episodes per task (sim + lab)
    a1lib.train.tokenizers                   the VAE, trained for a few steps, then frozen
    a1lib.models.text_tokenizer              the word-level tokenizer over sim instructions + QA
    a1lib.train.latent_cache                every frame encoded once
    (``build_quick_artifacts`` stops here and keeps these inputs, in the pipeline's layout)
    a1lib.models.processor.A1Processor       the processor, built as the pipeline builds it
    a1lib.train.trainer.fit                  Lightning training, exported as an A1Policy

The model is ``A1Config.preset("ci")``, the ci pipeline's (64 px frames, 6-d state,
5-d actions, chunks of 10). Its actions are near-meaningless after a few dozen steps; the plumbing
(shapes, units, normalisation, imagination, timing) is the real thing. Same seed, same bytes.

    policy_dir = build_quick_policy("/tmp/quick", seed=0)
    policy = A1Policy.from_pretrained(policy_dir, imagine=True)

Prefer the pipeline's checkpoint (``artifacts/finetune/policy``) whenever it exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from a1lib.constants import SOURCES
from a1lib.data import LeRobotDataset
from a1lib.data.generate import DataGenConfig, generate
from a1lib.io import atomic_write_json
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.image_tokenizer import ImageTokenizerConfig
from a1lib.models.policy_a1 import A1Policy
from a1lib.models.processor import A1Processor
from a1lib.models.text_tokenizer import (
    build_corpus,
    save_text_tokenizer,
    train_text_tokenizer,
)
from a1lib.sim import TASKS
from a1lib.train.config import TrainConfig
from a1lib.train.datamodule import build_normalizer
from a1lib.train.inputs import scene_qa_fn
from a1lib.train.latent_cache import LatentCache, encode_dataset
from a1lib.train.tokenizers import train_image_tokenizer
from a1lib.train.trainer import fit, last_logged

RECIPE_FILE = "quick.json"  # next to the policy files: how it was made (and when it can be reused)
DEFAULT_TASKS = ("ZipBag", "PlaceMarkpen", "ExpressSorting", "IngredientPicking")  # 2 static + 2 dynamic, short


@dataclass
class QuickPolicyConfig:
    """Everything that decides the bytes of a quick policy."""

    seed: int = 0
    tasks: tuple[str, ...] = DEFAULT_TASKS
    sources: tuple[str, ...] = ("sim", "lab")  # no human video: the quick policy must act
    episodes_per_task: int = 2  # per source; >= 2 so one episode per source is held out for validation
    image_size: int = 64
    tokenizer_steps: int = 20  # VAE steps (ci preset)
    tokenizer_batch_size: int = 8
    tokenizer_channels: tuple[int, ...] = (8, 16, 16, 16)  # a narrow VAE: still 8x down, 4 latent channels
    steps: int = 40  # model optimizer steps
    batch_size: int = 8
    lr: float = 1e-3


def ci_model_config(image_size: int = 64) -> A1Config:
    """The ci pipeline's model (``A1Config.preset("ci")``) at ``image_size``."""
    return A1Config.preset("ci", image_size=image_size)


def _recipe(cfg: QuickPolicyConfig, config: A1Config) -> dict[str, Any]:
    return {"quick_policy": json.loads(json.dumps(dataclasses.asdict(cfg))),  # tuples -> lists, as read back
            "model_config": config.to_dict()}


def _reusable(out_dir: Path, recipe: dict[str, Any]) -> bool:
    path = out_dir / RECIPE_FILE
    if not path.is_file():
        return False
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError:
        return False
    return all(saved.get(k) == v for k, v in recipe.items())


def build_quick_policy(out_dir: str | os.PathLike, seed: int = 0, steps: int = 40,
                       tasks: tuple[str, ...] | list[str] = DEFAULT_TASKS, episodes_per_task: int = 2,
                       sources: tuple[str, ...] | list[str] = ("sim", "lab"), tokenizer_steps: int = 20,
                       batch_size: int = 8, reuse: bool = True, progress: bool = False,
                       threads: int | None = None, artifacts_dir: str | os.PathLike | None = None) -> Path:
    """Train a tiny ``ci``-sized A1Policy on freshly recorded sim data; returns its directory.

    For notebooks and tests when no pipeline checkpoint exists (the numbers it produces mean
    nothing; the code path is the real one). About a minute on 2 CPU cores with the defaults.

    ``out_dir`` receives the A1Policy (``A1Policy.from_pretrained(out_dir)``) plus ``quick.json``
    (the recipe, timings and final losses). With ``reuse=True`` an ``out_dir`` already holding a
    quick policy made from the same recipe is returned as is. Everything else (datasets,
    tokenizers, latents, the Lightning run) lives in a temporary folder that is deleted, unless
    ``artifacts_dir`` is given: then it is kept there in the pipeline's layout (``QuickArtifacts``:
    ``data/``, ``tokenizer/``, ``latents/``, plus the run in ``run/``), e.g. to fine-tune on the same
    data with the same latent caches.
    ``threads`` sets torch's CPU threads for the build only (restored afterwards); on a busy
    2-core machine ``threads=1`` is several times faster than torch's default.
    """
    cfg = QuickPolicyConfig(seed=int(seed), tasks=tuple(tasks), sources=tuple(sources),
                            episodes_per_task=int(episodes_per_task), tokenizer_steps=int(tokenizer_steps),
                            steps=int(steps), batch_size=int(batch_size))
    if cfg.episodes_per_task < 2:
        raise ValueError(f"build_quick_policy: episodes_per_task must be >= 2 (one is held out), "
                         f"got {episodes_per_task}")
    unknown = [s for s in cfg.sources if s not in ("sim", "lab")]
    if unknown or not cfg.sources:
        raise ValueError(f"build_quick_policy: sources must be a non-empty subset of ('sim', 'lab'), got {sources}")

    bad = [t for t in cfg.tasks if t not in TASKS]
    if bad or not cfg.tasks:
        raise ValueError(f"build_quick_policy: unknown or no task(s) {bad or list(cfg.tasks)}; have {sorted(TASKS)}")
    config = ci_model_config(cfg.image_size)
    recipe = _recipe(cfg, config)
    out_dir = Path(out_dir)
    kept = Path(artifacts_dir) if artifacts_dir is not None else None
    have_artifacts = kept is None or all((kept / d).is_dir() for d in ("data", "tokenizer", "latents"))
    if reuse and have_artifacts and _reusable(out_dir, recipe):
        return out_dir
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch_threads(threads))
        work = kept if kept is not None else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="a1-quick-")))
        report = _train(cfg, config, work, progress)

        A1Policy.from_pretrained(report.pop("exported")).save_pretrained(out_dir)  # atomic directory swap
    atomic_write_json(out_dir / RECIPE_FILE, {**recipe, "report": report})
    return out_dir


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: leave torch alone), then restore the
    caller's setting (a notebook that draws a figure keeps its own)."""

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class QuickArtifacts:
    """What the pipeline's first three stages make, in miniature, in the pipeline's layout:

        root/data/<source>/                    LeRobot datasets        (a1 data generate)
        root/tokenizer/{image,text}/           frozen tokenizers       (a1 tokenizer train)
        root/latents/<source>.safetensors      latent caches           (a1 tokenizer encode)

    so ``inputs.load_datasets(root / "data", ...)``, ``inputs.load_tokenizers(root / "tokenizer")``
    and ``inputs.build_processor(..., latents_dir=root / "latents")`` read them like the real ones."""

    root: Path
    datasets: dict[str, Any]  # source -> LeRobotDataset
    text_tokenizer: Any  # PreTrainedTokenizerFast
    image_tokenizer: Any  # ImageTokenizer (frozen)
    seconds: dict[str, float]
    tokenizer_metrics: dict[str, Any]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    @property
    def latents_dir(self) -> Path:
        return self.root / "latents"


def build_quick_artifacts(root: str | os.PathLike, seed: int = 0, tasks: tuple[str, ...] | list[str] = DEFAULT_TASKS,
                          episodes_per_task: int = 2, sources: tuple[str, ...] | list[str] = ("sim", "lab", "human"),
                          tokenizer_steps: int = 20, image_size: int = 64) -> QuickArtifacts:
    """Tiny datasets (``episodes_per_task`` per task and source), tokenizers and latent caches under
    ``root`` (see ``QuickArtifacts``), made by the pipeline's own functions. For notebooks and tests
    that need the pipeline's inputs without running it; ``build_quick_policy`` trains on the same.
    Same arguments, same bytes."""

    if isinstance(tasks, str) or isinstance(sources, str):
        raise ValueError(f"build_quick_artifacts: tasks and sources are lists of names, got {tasks!r}, {sources!r}")
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise ValueError(f"build_quick_artifacts: sources must be a non-empty subset of {SOURCES}, got {sources}")
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(f"build_quick_artifacts: unknown or no task(s) {bad or list(tasks)}; have {sorted(TASKS)}")
    if int(episodes_per_task) < 1:
        raise ValueError(f"build_quick_artifacts: episodes_per_task must be >= 1, got {episodes_per_task}")
    cfg = QuickPolicyConfig(seed=int(seed), tasks=tuple(tasks), sources=tuple(sources),
                            episodes_per_task=int(episodes_per_task), image_size=int(image_size),
                            tokenizer_steps=int(tokenizer_steps))
    return _make_artifacts(cfg, ci_model_config(cfg.image_size), Path(root))


def _make_artifacts(cfg: QuickPolicyConfig, config: A1Config, root: Path) -> QuickArtifacts:
    """Stages 1-3 of the pipeline in miniature under ``root``."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    # 1. data: scripted-expert episodes, one LeRobot dataset per source (one process: no spawn cost)
    n = cfg.episodes_per_task
    data_cfg = DataGenConfig(image_size=cfg.image_size, seed=cfg.seed, tasks=cfg.tasks, sim_episodes_per_task=n,
                             lab_episodes_per_task=n, human_episodes_per_task=n, workers=1)
    generate(data_cfg, root / "data", sources=list(cfg.sources))
    datasets = {s: LeRobotDataset(root / "data" / s) for s in cfg.sources}
    seconds["data"] = time.perf_counter() - t

    # 2. tokenizers: the VAE on every recorded frame, the text tokenizer on the instructions + QA
    t = time.perf_counter()
    frames = np.concatenate([ds.get_frames("observation.image", np.arange(len(ds))) for ds in datasets.values()])
    episode_ids = np.concatenate([ds.episode_of + 1000 * k for k, ds in enumerate(datasets.values())])
    image_cfg = ImageTokenizerConfig(image_size=cfg.image_size, latent_channels=config.latent_channels,
                                     block_out_channels=cfg.tokenizer_channels, norm_num_groups=4,
                                     mid_attention=False, train_steps=cfg.tokenizer_steps,
                                     batch_size=cfg.tokenizer_batch_size, seed=cfg.seed, max_eval_frames=64)
    image_tok, tok_metrics = train_image_tokenizer(frames, image_cfg, episode_ids)
    tasks = [task for ds in datasets.values() for task in ds.tasks]
    text_tok = train_text_tokenizer(build_corpus(tasks), vocab_size=config.vocab_size)
    image_tok.save(root / "tokenizer" / "image")
    save_text_tokenizer(text_tok, root / "tokenizer" / "text")
    seconds["tokenizers"] = time.perf_counter() - t

    # 3. latent caches: every frame encoded once by the frozen VAE
    t = time.perf_counter()
    for s, ds in datasets.items():
        encode_dataset(ds, image_tok, root / "latents" / f"{s}.safetensors", dataset_root=ds.root)
    seconds["latents"] = time.perf_counter() - t
    return QuickArtifacts(root, datasets, text_tok, image_tok, seconds, tok_metrics)


def _train(cfg: QuickPolicyConfig, config: A1Config, work: Path, progress: bool) -> dict[str, Any]:
    """Every pipeline stage in miniature under ``work``; returns timings, losses and the exported dir."""

    t0 = time.perf_counter()
    arts = _make_artifacts(cfg, config, work)  # 1-3: data, tokenizers, latent caches
    datasets, image_tok, text_tok = arts.datasets, arts.image_tokenizer, arts.text_tokenizer
    seconds = dict(arts.seconds)

    # 4. the model: the pipeline's processor and Lightning fit, exported as an A1Policy
    t = time.perf_counter()
    train_cfg = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup_steps=min(5, cfg.steps),
                            min_lr=cfg.lr / 10, val_every=cfg.steps, val_batches=1, log_every=5,
                            checkpoint_every=cfg.steps, seed=cfg.seed, precision="32",
                            source_weights={s: 1.0 for s in cfg.sources})
    # = inputs.build_processor, with the caches just written (no staleness check needed)
    latents = {s: LatentCache(arts.latents_dir / f"{s}.safetensors", image_tok) for s in datasets}
    processor = A1Processor(config, text_tok, build_normalizer(datasets, train_cfg.normalization), image_tok,
                            latents=latents, qa_fn=scene_qa_fn if config.lambda_und > 0 else None, seed=train_cfg.seed)
    result = fit(config, train_cfg, datasets, processor, work / "run", resume=False, progress=progress)
    seconds["train"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    return {"exported": result.policy_dir, "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "frames": {s: len(ds) for s, ds in datasets.items()}, "global_step": result.global_step,
            "final_losses": _final_losses(work / "run"),
            "tokenizer_psnr_heldout_db": arts.tokenizer_metrics["psnr_heldout_db"]}


def _final_losses(run_dir: Path) -> dict[str, float]:
    """The last logged value of every loss column of the run (empty if none)."""
    try:
        return {k: round(v, 4) for k, v in last_logged(run_dir, lambda key: "loss" in key).items()}
    except FileNotFoundError:
        return {}


__all__ = ["QuickArtifacts", "QuickPolicyConfig", "build_quick_artifacts", "build_quick_policy", "ci_model_config"]
