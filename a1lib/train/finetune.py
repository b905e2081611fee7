"""``a1 finetune``: adapt a pretrained A1Policy to the lab-domain demonstrations.

    a1 finetune [--init experiments/pretrain/policy] [--from-scratch] [--out experiments/finetune] ...

Starts from the weights, normaliser and tokenizers of the ``--init`` policy (the normaliser is
kept: the model learned in its units) and trains with the ``finetune`` section of params.yaml
(normally ``source_weights: {lab: 1.0}``, cosine decay with warmup, as the original).
``--from-scratch`` skips pretraining (the no-pretrain ablation): a fresh model from the ``model``
section, normalised with the fine-tuning data's own stats.
"""

from __future__ import annotations

import argparse

from a1lib.train import pipeline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pipeline.add_common_arguments(parser, default_out="experiments/finetune")
    parser.add_argument("--init", default="experiments/pretrain/policy", help="pretrained A1Policy directory")
    parser.add_argument("--from-scratch", action="store_true", help="no pretrained weights (ablation)")


def run(args: argparse.Namespace) -> int:
    from a1lib.train.trainer import fit

    pipeline.apply_threads(args)
    cfg = pipeline.train_config_from_params(args, "finetune")
    datasets = pipeline.load_datasets(args.data, cfg.active_sources)
    if args.from_scratch:
        config = pipeline.model_config_from_params(args)
        text_tok, image_tok = pipeline.load_tokenizers(args.tokenizer)
        processor = pipeline.build_processor(config, cfg, datasets, text_tok, image_tok, args.latents)
        init_model = None
        print(f"fine-tuning from scratch (no pretraining) on {sorted(datasets)} for {cfg.steps} steps -> {args.out}")
    else:
        from a1lib.models.policy_a1 import A1Policy

        if args.model_set:
            raise ValueError("--model-set cannot change a pretrained model; use --from-scratch")
        init = A1Policy.from_pretrained(args.init)  # clear error for a missing / incomplete dir
        config = init.config
        processor = pipeline.build_processor(config, cfg, datasets, init.processor.text_tokenizer,
                                             init.processor.image_tokenizer, args.latents,
                                             normalizer=init.processor.normalizer)
        init_model = init.model.train()
        print(f"fine-tuning {args.init} on {sorted(datasets)} for {cfg.steps} steps -> {args.out}")
    result = fit(config, cfg, datasets, processor, args.out, init_model=init_model, resume=not args.no_resume,
                 progress=not args.no_progress)
    pipeline.report(result, config)
    return 0
