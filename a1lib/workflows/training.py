"""``a1 pretrain-vision``, ``a1 pretrain``, ``a1 finetune`` and ``a1 privileged``: read params.yaml,
load what earlier stages made (datasets, tokenizers, latent caches), train, report.

    params.yaml  presets.<preset>.model       -> A1Config.preset(<name>)   (sizes: A1Config.PRESETS)
                 presets.<preset>.vision      -> VisionTrainConfig
                 presets.<preset>.pretrain    -> TrainConfig
                 presets.<preset>.finetune    -> TrainConfig
                 presets.<preset>.privileged  -> PrivilegedTrainConfig

``a1 pretrain`` writes ``OUT/checkpoints/last.ckpt`` (resumed automatically if present), ``OUT/logs/``
and the exported ``OUT/policy/`` (A1Policy format), which ``a1 finetune --init`` starts from.
``a1 finetune`` starts from the weights, normaliser and tokenizers of the ``--init`` policy (the
normaliser is kept: the model learned in its units); ``--from-scratch`` skips pretraining (the
no-pretrain ablation): a fresh model normalised with the fine-tuning data's own stats.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from a1lib.eval.perception import heldout_episodes, localisation_errors
from a1lib.io import atomic_write_json
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.policy_a1 import A1Policy
from a1lib.models.processor import A1Processor
from a1lib.sim import TASKS
from a1lib.train.config import TrainConfig
from a1lib.train.datamodule import build_normalizer
from a1lib.train.inputs import build_processor, load_datasets, load_tokenizers
from a1lib.train.privileged import PrivilegedTrainConfig, train_privileged
from a1lib.train.trainer import FitResult, fit
from a1lib.train.vision import VisionTrainConfig, load_trained_vision, pretrain_vision
from a1lib.workflows.cli import Command
from a1lib.workflows.params import (
    load_section,
    model_config,
    parse_overrides,
    train_config,
)


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
    parser.add_argument("--devices", type=int, default=None,
                        help="training processes (DDP), one per device; default: the section's `devices` "
                             "(0: torchrun's --nproc_per_node, else 1). The batch is split over them")
    parser.add_argument("--strategy", choices=("auto", "ddp", "fsdp"), default=None,
                        help="default: the section's `strategy` ('auto': ddp with several processes; fsdp: CUDA only)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default). On a busy 2-core machine 1 is often much faster")


def _setup(args: argparse.Namespace, section: str) -> tuple[A1Config, TrainConfig]:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    changes = parse_overrides(args.set, "--set")
    for name in ("steps", "devices", "strategy"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    config = model_config(args.params, args.preset, parse_overrides(args.model_set, "--model-set"))
    return config, train_config(section, args.params, args.preset, changes)


def _report(result: FitResult) -> None:
    if result.rank != 0:  # one report per run, from the process that wrote the policy
        return
    rate = f"{result.samples_per_s:.1f}" if result.samples_per_s else "n/a"
    print(f"trained to step {result.global_step} in {result.seconds:.0f} s ({rate} samples/s); "
          f"policy: {result.policy_dir}; resume point: {result.last_checkpoint}")


# ---------------------------------------------------------------------------------------------
# a1 pretrain / a1 finetune
# ---------------------------------------------------------------------------------------------
def train_a1(config: A1Config, cfg: TrainConfig, out: str | Path, data: str | Path, latents: str | Path,
             tokenizer: str | Path, init: str | Path | None = None, resume: bool = True,
             progress: bool = True) -> FitResult:
    """One A1 training run (pretraining, or fine-tuning with ``init``): a fresh ``config`` model with the
    tokenizers of ``tokenizer`` and the data's own normaliser, or the weights, normaliser and tokenizers
    of the ``init`` policy (then ``config`` is the policy's own)."""
    datasets = load_datasets(data, cfg.active_sources)
    if init is None:
        text_tok, image_tok = load_tokenizers(tokenizer)
        processor = build_processor(config, cfg, datasets, text_tok, image_tok, latents)
        init_model = None
        print(f"training a fresh {config.generation!r} model on {cfg.source_weights} for {cfg.steps} steps -> {out}")
    else:
        policy = A1Policy.from_pretrained(init)  # clear error for a missing / incomplete dir
        config = policy.config
        processor = build_processor(config, cfg, datasets, policy.processor.text_tokenizer,
                                    policy.processor.image_tokenizer, latents, normalizer=policy.processor.normalizer)
        init_model = policy.model.train()
        print(f"fine-tuning {init} on {sorted(datasets)} for {cfg.steps} steps -> {out}")
    return fit(config, cfg, datasets, processor, out, init_model=init_model, resume=resume, progress=progress)


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, default_out="artifacts/pretrain")


def run_pretrain(args: argparse.Namespace) -> int:
    config, cfg = _setup(args, "pretrain")
    _report(train_a1(config, cfg, args.out, args.data, args.latents, args.tokenizer, resume=not args.no_resume,
                     progress=not args.no_progress))
    return 0


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, default_out="artifacts/finetune")
    parser.add_argument("--init", default="artifacts/pretrain/policy",
                        help="pretrained A1Policy directory (default: artifacts/pretrain/policy)")
    parser.add_argument("--from-scratch", action="store_true", help="no pretrained weights (the no-pretrain ablation)")


def run_finetune(args: argparse.Namespace) -> int:
    config, cfg = _setup(args, "finetune")
    if args.model_set and not args.from_scratch:
        raise ValueError("--model-set cannot change a pretrained model; use --from-scratch")
    _report(train_a1(config, cfg, args.out, args.data, args.latents, args.tokenizer,
                     init=None if args.from_scratch else args.init, resume=not args.no_resume,
                     progress=not args.no_progress))
    return 0


# ---------------------------------------------------------------------------------------------
# a1 pretrain-vision
# ---------------------------------------------------------------------------------------------
def add_vision_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--preset", default=None, help="preset (default: the file's `preset`)")
    parser.add_argument("--data", default="data", help="folder with sim/, lab/ (default: data)")
    parser.add_argument("--tokenizer", default="artifacts/tokenizer", help="tokenizers (default: artifacts/tokenizer)")
    parser.add_argument("--out", default="artifacts/vision", help="output folder (default: artifacts/vision)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if OUT/checkpoint.pt exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_vision(args: argparse.Namespace) -> int:
    cfg = load_section("vision", VisionTrainConfig, path=args.params, preset=args.preset)
    config = model_config(args.params, args.preset)
    datasets = load_datasets(args.data, [s for s, w in cfg.source_weights.items() if w > 0])
    text_tok, _ = load_tokenizers(args.tokenizer)
    print(f"vision pretraining (conv trunk + grounding) on {cfg.source_weights} for {cfg.steps} steps -> {args.out}")
    metrics: dict[str, Any] = pretrain_vision(config, cfg, datasets, text_tok, args.out, resume=not args.no_resume,
                                              progress=not args.no_progress)
    records = heldout_episodes(list(TASKS), 2, config.image_size)
    metrics["localisation"] = localisation_errors(load_trained_vision(config, args.out),
                                                  A1Processor(config, text_tok), records)
    atomic_write_json(Path(args.out) / "metrics.json", metrics)
    per = metrics["localisation"]["per_name"]
    print(f"trained {metrics['samples_seen']} frames in {metrics['seconds']:.0f} s ({metrics['samples_per_s']:.0f}/s); "
          "held-out error px: " + ", ".join(f"{n} {per[n]['error_px']:.1f}"
                                            for n in ("gripper", "target", "goal") if n in per))
    return 0


# ---------------------------------------------------------------------------------------------
# a1 privileged
# ---------------------------------------------------------------------------------------------
def add_privileged_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--preset", default=None, help="preset (default: the file's `preset`)")
    parser.add_argument("--data", default="data", help="folder with sim/, lab/ (default: data)")
    parser.add_argument("--out", default="artifacts/privileged",
                        help="writes OUT/policy/ and OUT/metrics.json (default: artifacts/privileged)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_privileged(args: argparse.Namespace) -> int:
    cfg = load_section("privileged", PrivilegedTrainConfig, path=args.params, preset=args.preset)
    horizon = model_config(args.params, args.preset).chunk_size
    datasets = load_datasets(args.data, list(cfg.sources))
    policy, stats = train_privileged(datasets, cfg, build_normalizer(datasets), horizon, progress=not args.no_progress)
    out = Path(args.out)
    policy.save_pretrained(out / "policy")
    atomic_write_json(out / "metrics.json", stats)
    print(f"privileged-state policy: {stats['samples_seen']} samples in {stats['seconds']:.0f} s, "
          f"final loss {stats['final_loss']:.4f} -> {out / 'policy'}")
    return 0


pretrain = Command(add_pretrain_arguments, run_pretrain)
finetune = Command(add_finetune_arguments, run_finetune)
vision = Command(add_vision_arguments, run_vision)
privileged = Command(add_privileged_arguments, run_privileged)
