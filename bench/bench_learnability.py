"""The diagnosis ladder: where does learning break? One command, three rungs, side by side.

    python bench/bench_learnability.py --tasks PlaceFlower,ExpressSorting
    python bench/bench_learnability.py --tasks PlaceFlower --a1-steps 3000 --out /tmp/ladder

For the chosen tasks it records fresh sim + lab demonstrations (the pipeline's generator), then:

1. **privileged**: the privileged-state MLP (``a1 privileged``) trained on them and evaluated in
   closed loop. The ceiling of imitation: perception and the choice of what to do next are perfect.
   If this rung fails, the task (or the budget) is the problem, not vision.
2. **probe**: does the vision path see? The A1 model of rung 3, frozen: its grounding keypoints
   and a linear probe on its image tokens, scored in pixels against the mean-position baseline on
   held-out episodes (``a1lib.eval.perception``).
3. **a1**: the A1 model (the ``cpu`` preset's architecture, or ``--model-set`` changes) trained as
   the pipeline trains it, on the same data: vision first (``a1 pretrain-vision``: the grounding
   objective alone), then the whole model on the sim + lab mix with the vision frozen, evaluated
   in closed loop.

It prints success (95% Wilson interval), samples seen and wall time per rung, so a student who
changes one thing (a tolerance, the vision encoder, the budget) can see which rung moves.
Everything runs on the CPU; the defaults take roughly 15-25 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="PlaceFlower,ExpressSorting")
    p.add_argument("--sim-episodes", type=int, default=60, help="sim demonstrations per task")
    p.add_argument("--lab-episodes", type=int, default=20, help="lab demonstrations per task")
    p.add_argument("--dart-noise", type=float, default=0.15)
    p.add_argument("--privileged-steps", type=int, default=1500)
    p.add_argument("--vision-steps", type=int, default=1000)
    p.add_argument("--a1-steps", type=int, default=2000)
    p.add_argument("--preset", default="cpu", help="A1Config preset of rungs 2-3 (ci: a smoke test)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tokenizer-steps", type=int, default=150)
    p.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                   help="A1Config override (JSON value)")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--replan-every", type=int, default=None,
                   help="override the replan interval the rungs' policies are exported with (params)")
    p.add_argument("--noise-scale", type=float, default=1.0,
                   help="the A1 rung's sampling noise (the cpu pipeline's finetune.noise_scale is 0; 1.0 keeps the "
                        "ladder's recorded numbers comparable)")
    p.add_argument("--rungs", default="privileged,probe,a1")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import numpy as np

    from a1lib.data.generate import DataGenConfig, generate
    from a1lib.eval.evaluate import evaluate
    from a1lib.eval.perception import heldout_episodes, localisation_errors, token_probe_errors
    from a1lib.models.configuration_a1 import A1Config
    from a1lib.models.image_tokenizer import ImageTokenizerConfig
    from a1lib.models.policy_a1 import A1Policy
    from a1lib.models.text_tokenizer import build_corpus, save_text_tokenizer, train_text_tokenizer
    from a1lib.train import inputs
    from a1lib.train.config import TrainConfig
    from a1lib.train.datamodule import build_normalizer
    from a1lib.train.latent_cache import encode_dataset
    from a1lib.train.privileged import PrivilegedTrainConfig, train_privileged
    from a1lib.train.tokenizers import train_image_tokenizer
    from a1lib.train.trainer import fit
    from a1lib.train.vision import VisionTrainConfig, pretrain_vision
    from a1lib.workflows.params import parse_overrides

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    rungs = {r.strip() for r in args.rungs.split(",")}
    work = Path(args.out or tempfile.mkdtemp(prefix="a1-ladder-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    t = time.time()
    generate(DataGenConfig(tasks=tuple(tasks), sim_episodes_per_task=args.sim_episodes, seed=args.seed,
                           lab_episodes_per_task=args.lab_episodes, human_episodes_per_task=0,
                           dart_noise=args.dart_noise), work / "data", sources=["sim", "lab"])
    datasets = inputs.load_datasets(work / "data", ["sim", "lab"])
    normalizer = build_normalizer(datasets)
    print(f"data: {sum(len(d) for d in datasets.values())} frames in {time.time() - t:.0f} s")
    override = {} if args.replan_every is None else {"replan_every": args.replan_every}
    evaluate_kw = dict(episodes=args.eval_episodes, override=override, workers=2, gifs_per_task=0,
                       progress=False)

    def success(metrics, name):
        o = metrics["rows"][name]["overall"]
        return f"{o['successes']}/{o['episodes']} [{o['ci95'][0]:.2f}, {o['ci95'][1]:.2f}]"

    if "privileged" in rungs:
        t = time.time()
        cfg = PrivilegedTrainConfig(steps=args.privileged_steps, seed=args.seed, binary_action_dims=(3, 4), threads=2)
        policy, stats = train_privileged(datasets, cfg, normalizer, horizon=10, progress=False)
        policy.save_pretrained(work / "privileged")
        m = evaluate({"privileged": str(work / "privileged")}, tasks, **evaluate_kw)
        rows["privileged"] = {"success": success(m, "privileged"), "samples": stats["samples_seen"],
                              "seconds": time.time() - t}

    if rungs & {"probe", "a1"}:
        t = time.time()
        config = A1Config.preset(args.preset, image_size=64, latent_size=8, state_dim=6, action_dim=5, chunk_size=10,
                                 **parse_overrides(args.model_set, "--model-set"))
        frames = np.concatenate([ds.get_frames("observation.image", np.arange(len(ds))) for ds in datasets.values()])
        episode_ids = np.concatenate([ds.episode_of + 100_000 * k for k, ds in enumerate(datasets.values())])
        image_tok, _ = train_image_tokenizer(frames, ImageTokenizerConfig(train_steps=args.tokenizer_steps,
                                                                          seed=args.seed), episode_ids)
        text_tok = train_text_tokenizer(build_corpus([x for ds in datasets.values() for x in ds.tasks]),
                                        config.vocab_size)
        image_tok.save(work / "tokenizer" / "image")
        save_text_tokenizer(text_tok, work / "tokenizer" / "text")
        for s, ds in datasets.items():
            encode_dataset(ds, image_tok, work / "latents" / f"{s}.safetensors", dataset_root=ds.root)
        text_tok, image_tok = inputs.load_tokenizers(work / "tokenizer")
        vision = pretrain_vision(config, VisionTrainConfig(steps=args.vision_steps, seed=args.seed, num_workers=0),
                                 datasets, text_tok, work / "vision", resume=False, progress=False)
        train_cfg = TrainConfig(steps=args.a1_steps, batch_size=args.batch_size, lr=5e-4,
                                warmup_steps=min(100, args.a1_steps // 10), min_lr=5e-5, val_every=args.a1_steps,
                                checkpoint_every=500, seed=args.seed, source_weights={"sim": 0.7, "lab": 0.3},
                                binary_action_dims=(3, 4), init_vision=str(work / "vision"), freeze_vision=True,
                                noise_scale=args.noise_scale)
        processor = inputs.build_processor(config, train_cfg, datasets, text_tok, image_tok, work / "latents",
                                           normalizer)
        result = fit(config, train_cfg, datasets, processor, work / "a1", resume=False, progress=False)
        prep = time.time() - t
        policy = A1Policy.from_pretrained(result.policy_dir)
        if "a1" in rungs:
            t = time.time()
            m = evaluate({"a1": str(result.policy_dir)}, tasks, **evaluate_kw)
            rows["a1"] = {"success": success(m, "a1"),
                          "samples": result.global_step * args.batch_size + vision["samples_seen"],
                          "seconds": prep + time.time() - t,
                          "samples_per_s": result.samples_per_s}
        if "probe" in rungs:
            t = time.time()
            test = heldout_episodes(tasks, 3)
            train = [r for r in heldout_episodes(tasks, 13) if r.seed not in {x.seed for x in test}]
            rows["probe"] = {
                "keypoints": localisation_errors(policy.model.vision, policy.processor, test).get("per_name", {}),
                "token_probe": token_probe_errors(policy, train, test), "seconds": time.time() - t}

    replan = "the policies' own replan interval" if args.replan_every is None else f"replan every {args.replan_every}"
    print(f"\nladder on {tasks} (lab domain, {replan}, {args.eval_episodes} episodes/task)")
    print(f"{'rung':<12}{'success (95% CI)':<26}{'samples':>10}{'wall s':>9}   (a1: vision frames + model samples)")
    for name in ("privileged", "a1"):
        if name in rows:
            r = rows[name]
            print(f"{name:<12}{r['success']:<26}{r['samples']:>10}{r['seconds']:>9.0f}")
    if "probe" in rows:
        print("\nlocalisation on held-out lab frames (px; mean baseline in brackets)")
        for kind in ("keypoints", "token_probe"):
            cells = [f"{n} {v['error_px']:.1f} ({v['mean_baseline_px']:.1f})" for n, v in rows["probe"][kind].items()
                     if n in ("gripper", "target", "goal") or kind == "token_probe"]
            print(f"  {kind:<12} " + "; ".join(cells))
    (work / "ladder.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    print(f"\nwrote {work / 'ladder.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
