"""``a1 pretrain``: joint training of all three experts on the weighted sim / lab / human mix.

    a1 pretrain [--params params.yaml] [--preset cpu] [--out experiments/pretrain]
                [--data data] [--latents artifacts/latents] [--tokenizer artifacts/tokenizer]

Reads ``model`` (A1Config overrides) and ``pretrain`` (TrainConfig) from params.yaml. Writes
``OUT/checkpoints/last.ckpt`` (resumed automatically if present), ``OUT/logs/`` and the exported
``OUT/policy/`` (A1Policy format), which ``a1 finetune --init`` starts from.
"""

from __future__ import annotations

import argparse

from a1lib.train import pipeline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pipeline.add_common_arguments(parser, default_out="experiments/pretrain")


def run(args: argparse.Namespace) -> int:
    from a1lib.train.trainer import fit

    pipeline.apply_threads(args)
    config = pipeline.model_config_from_params(args)
    cfg = pipeline.train_config_from_params(args, "pretrain")
    datasets = pipeline.load_datasets(args.data, cfg.active_sources)
    text_tok, image_tok = pipeline.load_tokenizers(args.tokenizer)
    processor = pipeline.build_processor(config, cfg, datasets, text_tok, image_tok, args.latents)
    print(f"pretraining {config.generation!r} model on {cfg.source_weights} for {cfg.steps} steps -> {args.out}")
    result = fit(config, cfg, datasets, processor, args.out, resume=not args.no_resume, progress=not args.no_progress)
    pipeline.report(result, config)
    return 0
