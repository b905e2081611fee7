"""Ablations: the paper's claims as model variants, trained and evaluated on one shared budget.

    a1 ablation run   --variant pi0_style [--out experiments/ablations/pi0_style]
    a1 ablation train --variant pi0_style --seed 1 --out experiments/ablations/pi0_style/runs/seed1
    a1 ablation report [--dir experiments/ablations] [--out figures]     (a1lib.viz.ablation_figures)

Every variant changes ONE thing against ``a1_full`` (see VARIANTS). Fairness: all variants get the
same pretraining and fine-tuning steps and batch (the ``ablation`` section of the preset; everything
else from its ``pretrain`` / ``finetune`` sections), the same training seeds, and the same
evaluation episodes (``eval_seed(task, i)``). ``no_pretrain`` spends no pretraining steps: that is
the ablation.

``run`` trains the seeds in parallel processes (one torch thread each: on a 2-core machine two
single-threaded runs do ~1.6x the samples/s of one two-threaded run), evaluates every seed's policy
in the lab domain, and, for the generation-expert variants, sweeps the conveyor and turntable speed
of the dynamic tasks. ``OUT/metrics.json`` holds per-seed and pooled success with 95% Wilson
intervals plus the held-out action loss of each fine-tuning run, so variants can be compared even
where closed-loop success is zero. A killed ``train`` resumes from its ``last.ckpt``; a finished
one drops its optimizer checkpoints (the exported ``policy/`` is what the evaluation needs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from a1lib.eval.evaluate import EvalConfig, evaluate, wilson_interval, write_json_atomic


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    model: dict[str, Any] = field(default_factory=dict)  # A1Config overrides
    pretrain_sources: tuple[str, ...] | None = None  # None: the preset's mix; (): no pretraining
    sweep: bool = False  # also run the speed sweep on the dynamic tasks


DONE_FILE = "done.json"  # written when a training run finished: the exact command that made it


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("a1_full", "A1: three experts, sim+lab+human pretraining, understanding loss on", sweep=True),
    Variant("pi0_style", "no generation expert (two experts, no middle tokens), otherwise identical",
            model={"generation": "none"}, sweep=True),
    Variant("no_future_loss", "history latents kept, no future-prediction loss",
            model={"generation": "no_future_loss"}, sweep=True),
    Variant("no_pretrain", "no pretraining: fine-tuned from scratch on the same lab demos", pretrain_sources=()),
    Variant("data_sim", "pretrained on sim only", pretrain_sources=("sim",)),
    Variant("data_sim_human", "pretrained on sim + human video", pretrain_sources=("sim", "human")),
    Variant("data_sim_lab", "pretrained on sim + lab", pretrain_sources=("sim", "lab")),
    Variant("no_understanding", "understanding (scene QA) loss off", model={"lambda_und": 0.0}),
]}


@dataclass
class AblationConfig:
    """The ``ablation`` section of a preset in params.yaml."""

    seeds: tuple[int, ...] = (0, 1)  # training seeds (model init, data order)
    pretrain_steps: int = 600
    finetune_steps: int = 200
    episodes: int = 5  # per task and seed, on the fixed evaluation seeds
    tasks: tuple[str, ...] | None = None  # None = all ten
    belt_speeds: tuple[float, ...] = (0.0, 0.15, 0.3)  # ExpressSorting sweep (table units / s)
    turntable_speeds: tuple[float, ...] = (0.0, 0.7, 1.4)  # IngredientPicking sweep (rad / s)
    sweep_episodes: int = 5
    parallel: int = 2  # seeds trained at once (one torch thread each) and evaluation workers

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"ablation.seeds must be distinct and non-empty, got {self.seeds}")
        for name in ("pretrain_steps", "finetune_steps", "episodes", "sweep_episodes", "parallel"):
            if getattr(self, name) < 1:
                raise ValueError(f"ablation.{name} must be >= 1, got {getattr(self, name)}")
        self.seeds = tuple(int(s) for s in self.seeds)


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown ablation variant {name!r}; have {sorted(VARIANTS)}")
    return VARIANTS[name]


# ---------------------------------------------------------------------------------------------
# One seed: pretrain (unless no_pretrain) then fine-tune, through the ordinary commands
# ---------------------------------------------------------------------------------------------
def pretrain_weights(variant: Variant, params: str, preset: str | None) -> dict[str, float]:
    """The preset's pretraining mix restricted to the variant's sources (the sampler renormalises)."""
    from a1lib.params import load_section
    from a1lib.train.config import TrainConfig

    mix = load_section("pretrain", TrainConfig, path=params, preset=preset).source_weights
    if variant.pretrain_sources is None:
        return dict(mix)
    missing = [s for s in variant.pretrain_sources if mix.get(s, 0.0) <= 0]
    if missing:
        raise ValueError(f"variant {variant.name}: source(s) {missing} have no weight in the pretrain mix {mix}")
    return {s: mix[s] for s in variant.pretrain_sources}


def train_commands(variant: Variant, seed: int, out: Path, cfg: AblationConfig, common: list[str],
                   params: str, preset: str | None) -> list[list[str]]:
    """The ``a1 pretrain`` / ``a1 finetune`` argument lists of one seed of one variant."""
    model_set = [f"--model-set=seed={seed}"] + [f"--model-set={k}={json.dumps(v)}" for k, v in variant.model.items()]
    seed_set = [f"--set=seed={seed}"]
    cmds = []
    if variant.pretrain_sources != ():
        weights = json.dumps(pretrain_weights(variant, params, preset), separators=(",", ":"))
        cmds.append(["pretrain", *common, "--out", str(out / "pretrain"), "--steps", str(cfg.pretrain_steps),
                     *seed_set, f"--set=source_weights={weights}", *model_set])
        init = ["--init", str(out / "pretrain" / "policy")]
    else:
        init = ["--from-scratch", *model_set]
    cmds.append(["finetune", *common, "--out", str(out / "finetune"), "--steps", str(cfg.finetune_steps),
                 *seed_set, *init])
    return cmds


def train_seed(args: argparse.Namespace) -> int:
    """``a1 ablation train``: one seed, in this process (``run`` starts one per seed)."""
    from a1lib.cli import main as a1_main

    variant = get_variant(args.variant)
    cfg = load_config(args)
    out = Path(args.out)
    common = ["--params", args.params, *(["--preset", args.preset] if args.preset else []),
              "--data", args.data, "--latents", args.latents, "--tokenizer", args.tokenizer,
              "--threads", str(args.threads), "--no-progress"]
    upstream_ran = False  # a retrained pretraining invalidates the fine-tuning built on it
    for cmd in train_commands(variant, int(args.seed), out, cfg, common, args.params, args.preset):
        run_dir = Path(cmd[cmd.index("--out") + 1])
        done = run_dir / DONE_FILE
        if (not upstream_ran and done.exists() and json.loads(done.read_text()).get("cmd") == cmd
                and (run_dir / "policy").is_dir()):
            print(f"{run_dir}: already trained by this exact command, kept")
            continue
        if upstream_ran:  # its input changed: a half-finished checkpoint of it is stale
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        upstream_ran = True
        done.unlink(missing_ok=True)
        print("a1 " + " ".join(cmd), flush=True)
        code = a1_main(cmd)
        if code:
            return code
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # optimizer state: ~10x the policy
        write_json_atomic(done, {"cmd": cmd})
    return 0


def final_val_losses(run_dir: Path) -> dict[str, float]:
    """The last logged validation losses of a training run (held-out episodes)."""
    from a1lib.viz.figures import read_csv_log

    log = read_csv_log(run_dir)
    out = {}
    for key, values in log.items():
        if key.startswith("val/"):
            ok = values[~np.isnan(values)]
            if len(ok):
                out[key] = float(ok[-1])
    return out


# ---------------------------------------------------------------------------------------------
# One variant: all seeds, evaluation, speed sweep
# ---------------------------------------------------------------------------------------------
def load_config(args: argparse.Namespace) -> AblationConfig:
    from a1lib.params import load_section

    return load_section("ablation", AblationConfig, path=args.params, preset=args.preset)


def _train_all(args: argparse.Namespace, variant: Variant, cfg: AblationConfig, out: Path) -> None:
    """One subprocess per seed, ``cfg.parallel`` at a time; a failure names the seed and its log."""
    pending = list(cfg.seeds)
    running: dict[int, tuple[subprocess.Popen, Path]] = {}
    failed = []
    while pending or running:
        while pending and len(running) < cfg.parallel:
            seed = pending.pop(0)
            run_dir = out / "runs" / f"seed{seed}"
            run_dir.mkdir(parents=True, exist_ok=True)
            log = run_dir / "train.log"
            cmd = [sys.executable, "-m", "a1lib.cli", "ablation", "train", "--variant", variant.name,
                   "--seed", str(seed), "--out", str(run_dir), "--params", args.params, "--data", args.data,
                   "--latents", args.latents, "--tokenizer", args.tokenizer, "--threads", "1",
                   *(["--preset", args.preset] if args.preset else [])]
            with open(log, "w") as fh:
                running[seed] = (subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT), log)
            print(f"[{variant.name}] training seed {seed} (log: {log})", flush=True)
        time.sleep(2)
        for seed, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                del running[seed]
                if proc.returncode:
                    failed.append((seed, proc.returncode, log))
                else:
                    print(f"[{variant.name}] seed {seed} trained", flush=True)
    if failed:
        seed, code, log = failed[0]
        tail = "".join(log.read_text().splitlines(True)[-15:])
        raise RuntimeError(f"ablation {variant.name}: training seed(s) {[f[0] for f in failed]} failed; seed {seed} "
                           f"exited with {code}, last lines of {log}:\n{tail}")


def pool_seeds(rows: dict[str, Any], tasks: list[str]) -> dict[str, Any]:
    """Every seed's episodes of a task pooled into one rate with a Wilson interval (per task, overall)."""
    def rate(k: int, n: int) -> dict[str, Any]:
        return {"successes": k, "episodes": n, "success_rate": k / n if n else float("nan"),
                "ci95": list(wilson_interval(k, n))}

    per_task = {t: rate(sum(r["per_task"][t]["successes"] for r in rows.values()),
                        sum(r["per_task"][t]["episodes"] for r in rows.values())) for t in tasks}
    return {"per_task": per_task, "overall": rate(sum(v["successes"] for v in per_task.values()),
                                                  sum(v["episodes"] for v in per_task.values()))}


def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    from a1lib.params import load_section
    from a1lib.sim import TASKS

    variant = get_variant(args.variant)
    cfg = load_config(args)
    ev = load_section("eval", EvalConfig, path=args.params, preset=args.preset)
    out = Path(args.out)
    t0 = time.time()
    _train_all(args, variant, cfg, out)
    t_train = time.time() - t0

    tasks = list(cfg.tasks or TASKS)
    rows = {f"seed{s}": str(out / "runs" / f"seed{s}" / "finetune" / "policy") for s in cfg.seeds}
    common = dict(replan_every=ev.replan_every, workers=cfg.parallel, gifs_per_task=0, progress=not args.no_progress)
    metrics = evaluate(rows, tasks, cfg.episodes, **common)
    pooled = pool_seeds(metrics["rows"], tasks)
    per_seed_rate = {name: row["overall"]["success_rate"] for name, row in metrics["rows"].items()}

    sweep = []
    if variant.sweep:
        for task, key, speeds in (("ExpressSorting", "belt_speed", cfg.belt_speeds),
                                  ("IngredientPicking", "turntable_speed", cfg.turntable_speeds)):
            for speed in speeds:
                block = evaluate(rows, [task], cfg.sweep_episodes, env_kwargs={key: float(speed)}, **common)
                sweep.append({"task": task, "speed_key": key, "speed": float(speed),
                              **pool_seeds(block["rows"], [task])["overall"]})

    val = {f"seed{s}": final_val_losses(out / "runs" / f"seed{s}" / "finetune") for s in cfg.seeds}
    val_action = [v.get("val/action") for v in val.values() if v.get("val/action") is not None]
    result = {
        "variant": variant.name, "description": variant.description, "model_overrides": variant.model,
        "pretrain_sources": (list(variant.pretrain_sources) if variant.pretrain_sources is not None else "preset mix"),
        "budget": {"pretrain_steps": 0 if variant.pretrain_sources == () else cfg.pretrain_steps,
                   "finetune_steps": cfg.finetune_steps, "seeds": list(cfg.seeds)},
        "tasks": tasks, "episodes_per_task_per_seed": cfg.episodes, "replan_every": ev.replan_every,
        "success": pooled["overall"]["success_rate"], "success_ci95": pooled["overall"]["ci95"],
        "per_task": pooled["per_task"],
        "per_seed_success": per_seed_rate,
        "seed_spread": float(np.std(list(per_seed_rate.values()))),
        "val_action_loss": float(np.mean(val_action)) if val_action else None,
        "val_losses_per_seed": val,
        "per_seed": metrics["rows"],
        "sweep": sweep,
        "seconds": {"train": t_train, "total": time.time() - t0},
    }
    return result


# ---------------------------------------------------------------------------------------------
# CLI: a1 ablation run | train
# ---------------------------------------------------------------------------------------------
def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, choices=sorted(VARIANTS), help="the ablation variant (VARIANTS)")
    parser.add_argument("--params", default="params.yaml", help="params file; the preset's `ablation` section is the budget")
    parser.add_argument("--preset", default=None, help="preset (default: the file's `preset`)")
    parser.add_argument("--data", default="data", help="the datasets (data/<source>)")
    parser.add_argument("--latents", default="artifacts/latents", help="the latent cache (a1 tokenizer encode)")
    parser.add_argument("--tokenizer", default="artifacts/tokenizer", help="the tokenizers (a1 tokenizer train)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--out", default=None, help="default: experiments/ablations/<variant>")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or f"experiments/ablations/{args.variant}")
    args.out = str(out)
    result = run_variant(args)
    write_json_atomic(out / "metrics.json", result)
    spread = ", ".join(f"{k} {v:.0%}" for k, v in result["per_seed_success"].items())
    print(f"{result['variant']}: success {result['success']:.1%} "
          f"[{result['success_ci95'][0]:.1%}, {result['success_ci95'][1]:.1%}] ({spread}); "
          f"held-out action loss {result['val_action_loss']}; {result['seconds']['total']:.0f} s")
    print(f"wrote {out / 'metrics.json'}")
    return 0


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--seed", type=int, required=True, help="the training seed")
    parser.add_argument("--out", required=True, help="this seed's run directory")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (seeds run side by side)")


class TrainCommand:
    """``a1 ablation train`` as a command object (add_arguments / run) for a1lib.cli."""

    add_arguments = staticmethod(add_train_arguments)
    run = staticmethod(train_seed)
