"""``a1 ablation run | train | report``: train every seed of a run (a variant on a task group),
evaluate it, and write the figures and the paper-vs-ours claims table.

``run`` trains the seeds in parallel processes (``a1 ablation train``, one torch thread each: on a
2-core machine two single-threaded runs do ~1.25x the samples/s of one two-threaded run), then
evaluates every seed's policy in the lab domain. A variant is a change of configs: each seed's
pretraining and fine-tuning are ``TrainingStep``s (the preset's sections with the variant's and the
group's changes) handed to the training layer (``train_a1``), in the folders of ``RunLayout``. A
finished step leaves ``done.json`` (the identity of the step that made it) and is not recomputed; a
killed one resumes from its ``last.ckpt``. ``report`` reads every ``<dir>/<group>-<variant>/metrics.json``
and writes the figures (a1lib.viz.ablation_figures), claims.md, ablations.md and claims.json. The
speed sweep of the swept variants is its own stage (``a1 ablation sweep``).
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
import torch

from a1lib.eval.ablation import (
    DEFAULT_DIR,
    AblationConfig,
    RunLayout,
    TaskGroup,
    Variant,
    ablation_summary,
    expected_seconds,
    final_val_losses,
    parse_run,
    pool_seeds,
)
from a1lib.eval.claims import claims_table, evaluate_claims
from a1lib.eval.evaluate import evaluate
from a1lib.eval.perception import future_errors, heldout_episodes
from a1lib.eval.rollout import first_outcomes
from a1lib.io import atomic_write_json, atomic_write_text
from a1lib.models.policy_a1 import A1Policy
from a1lib.sim import DYNAMIC_TASKS
from a1lib.train.config import TrainConfig
from a1lib.viz.ablation_figures import (
    by_group,
    load_results,
    plot_group,
    plot_imagined_outcomes,
    plot_not_run,
    variants_table,
)
from a1lib.workflows.cli import Command
from a1lib.workflows.params import load_section, model_config, train_config
from a1lib.workflows.quick_policy import torch_threads
from a1lib.workflows.training import train_a1

DONE_FILE = "done.json"  # written when a training run finished: the identity of the step that made it
FUTURE_EPISODES = 3  # held-out expert episodes per dynamic task for the futures-vs-copy error


# ---------------------------------------------------------------------------------------------
# One seed: pretrain (unless no_pretrain) then fine-tune, as configs handed to the training layer
# ---------------------------------------------------------------------------------------------
def pretrain_weights(variant: Variant, mix: dict[str, float]) -> dict[str, float]:
    """The preset's pretraining mix restricted to the variant's sources (the sampler renormalises)."""
    if variant.pretrain_sources is None:
        return dict(mix)
    missing = [s for s in variant.pretrain_sources if mix.get(s, 0.0) <= 0]
    if missing:
        raise ValueError(f"variant {variant.name}: source(s) {missing} have no weight in the pretrain mix {mix}")
    return {s: mix[s] for s in variant.pretrain_sources}


@dataclass
class TrainingStep:
    """One training run of one seed: ``section``'s TrainConfig with ``changes``, a fresh model with
    ``model`` overrides (``init`` None) or the ``init`` policy's, written to ``out``."""

    section: str  # "pretrain" | "finetune" (params.yaml)
    out: Path
    changes: dict[str, Any]  # TrainConfig fields over the preset's section
    model: dict[str, Any] = field(default_factory=dict)  # A1Config fields over the preset's model (fresh models)
    init: Path | None = None

    def identity(self) -> dict[str, Any]:
        """What makes the run: a finished run with the same identity is kept (done.json)."""
        return json.loads(json.dumps({"section": self.section, "changes": self.changes, "model": self.model,
                                      "init": None if self.init is None else str(self.init)}))


def training_steps(variant: Variant, seed: int, layout: RunLayout, group: TaskGroup, params: str,
                   preset: str | None) -> list[TrainingStep]:
    """The training runs of one seed of one variant, on its group's tasks."""
    common = {"seed": seed, "tasks": list(group.tasks)}
    model = {"seed": seed, **variant.model}
    pretrain_cfg = load_section("pretrain", TrainConfig, path=params, preset=preset)
    if variant.pretrain_sources == ():  # no robot-data pretraining; the vision stage (our VLM's weights) is kept
        vision = {"init_vision": pretrain_cfg.init_vision} if pretrain_cfg.init_vision else {}
        return [TrainingStep("finetune", layout.stage_dir(seed, "finetune"),
                             {**common, "steps": group.finetune_steps, **vision}, model)]
    weights = pretrain_weights(variant, pretrain_cfg.source_weights)
    return [TrainingStep("pretrain", layout.stage_dir(seed, "pretrain"),
                         {**common, "steps": group.pretrain_steps, "source_weights": weights}, model),
            TrainingStep("finetune", layout.stage_dir(seed, "finetune"), {**common, "steps": group.finetune_steps},
                         init=layout.policy(seed, "pretrain"))]


def run_training_step(step: TrainingStep, args: argparse.Namespace) -> None:
    config = model_config(args.params, args.preset, step.model)
    cfg = train_config(step.section, args.params, args.preset, step.changes)
    print(f"{step.section} -> {step.out}: {step.changes}" + (f", model {step.model}" if step.init is None else ""),
          flush=True)
    train_a1(config, cfg, step.out, args.data, args.latents, args.tokenizer, init=step.init, progress=False)


def train_seed(args: argparse.Namespace) -> int:
    """``a1 ablation train``: one seed, in this process (``run`` starts one per seed)."""
    group_name, variant = parse_run(args.run)
    group = load_config(args).group(group_name)
    torch.set_num_threads(max(1, args.threads))
    layout = RunLayout(Path(args.out))
    upstream_ran = False  # a retrained pretraining invalidates the fine-tuning built on it
    for step in training_steps(variant, int(args.seed), layout, group, args.params, args.preset):
        done = step.out / DONE_FILE
        if (not upstream_ran and done.exists() and json.loads(done.read_text()).get("step") == step.identity()
                and (step.out / "policy").is_dir()):
            print(f"{step.out}: already trained with this exact configuration, kept")
            continue
        if upstream_ran:  # its input changed: a half-finished checkpoint of it is stale
            shutil.rmtree(step.out / "checkpoints", ignore_errors=True)
        upstream_ran = True
        done.unlink(missing_ok=True)
        run_training_step(step, args)
        shutil.rmtree(step.out / "checkpoints", ignore_errors=True)  # optimizer state: ~10x the policy
        atomic_write_json(done, {"step": step.identity()})
    return 0


# ---------------------------------------------------------------------------------------------
# One variant: all seeds, then their evaluation
# ---------------------------------------------------------------------------------------------
def load_config(args: argparse.Namespace) -> AblationConfig:
    return load_section("ablation", AblationConfig, path=args.params, preset=args.preset)


def _train_all(args: argparse.Namespace, group: TaskGroup, cfg: AblationConfig, layout: RunLayout) -> None:
    """One subprocess per seed, ``cfg.parallel`` at a time; a failure names the seed and its log."""
    pending = list(group.seeds)
    running: dict[int, tuple[subprocess.Popen, Path]] = {}
    failed = []
    while pending or running:
        while pending and len(running) < cfg.parallel:
            seed = pending.pop(0)
            seed_dir = layout.seed_dir(seed)
            seed_dir.mkdir(parents=True, exist_ok=True)
            log = seed_dir / "train.log"
            cmd = [sys.executable, "-m", "a1lib.workflows.cli", "ablation", "train", "--run", args.run,
                   "--seed", str(seed), "--out", str(layout.root), "--params", args.params, "--data", args.data,
                   "--latents", args.latents, "--tokenizer", args.tokenizer, "--threads", "1",
                   *(["--preset", args.preset] if args.preset else [])]
            with open(log, "w") as fh:
                running[seed] = (subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT), log)
            print(f"[{args.run}] training seed {seed} (log: {log})", flush=True)
        time.sleep(2)
        for seed, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                del running[seed]
                if proc.returncode:
                    failed.append((seed, proc.returncode, log))
                else:
                    print(f"[{args.run}] seed {seed} trained", flush=True)
    if failed:
        seed, code, log = failed[0]
        tail = "".join(log.read_text().splitlines(True)[-15:])
        raise RuntimeError(f"ablation {args.run}: training seed(s) {[f[0] for f in failed]} failed; seed {seed} "
                           f"exited with {code}, last lines of {log}:\n{tail}")


def _futures(policies: dict[str, str], tasks: list[str]) -> dict[str, Any]:
    """Imagined future latents vs "the future equals now" on held-out episodes of ``tasks``, per task,
    averaged over the seeds' policies (empty for variants without a future-predicting generation expert)."""
    if not tasks:
        return {}
    loaded = [A1Policy.from_pretrained(path) for path in policies.values()]
    records = heldout_episodes(tasks, FUTURE_EPISODES, loaded[0].config.image_size)
    per_seed = [future_errors(policy, records) for policy in loaded]
    if not all(per_seed):
        return {}
    return {t: {k: float(np.mean([f[t][k] for f in per_seed])) for k in per_seed[0][t]} for t in per_seed[0]}


def run_variant(args: argparse.Namespace) -> dict[str, Any]:
    group_name, variant = parse_run(args.run)
    cfg = load_config(args)
    group = cfg.group(group_name)
    layout = RunLayout(Path(args.out))
    batches = tuple(load_section(s, TrainConfig, path=args.params, preset=args.preset).batch_size
                    for s in ("pretrain", "finetune"))
    expected = expected_seconds(group, variant, batches, cfg.parallel)
    print(f"[{args.run}] {len(group.seeds)} seed(s) on {', '.join(group.tasks)}: expected ~{expected / 60:.0f} min "
          f"on 2 cores (a finished seed is kept)", flush=True)
    t0 = time.time()
    _train_all(args, group, cfg, layout)
    t_train = time.time() - t0

    tasks = list(group.tasks)
    rows = {f"seed{s}": str(layout.policy(s)) for s in group.seeds}
    common = dict(workers=cfg.parallel, gifs_per_task=0, progress=not args.no_progress)  # each policy's own settings
    metrics = evaluate(rows, tasks, group.episodes, **common)
    pooled = pool_seeds(metrics["rows"], tasks)
    per_seed_rate = {name: row["overall"]["success_rate"] for name, row in metrics["rows"].items()}

    futures = _futures(rows, [t for t in tasks if t in DYNAMIC_TASKS])
    val = {f"seed{s}": final_val_losses(layout.stage_dir(s, "finetune")) for s in group.seeds}
    val_action = [v.get("val/action") for v in val.values() if v.get("val/action") is not None]
    result = {
        "run": args.run, "group": group_name, "variant": variant.name, "description": variant.description,
        "model_overrides": variant.model,
        "pretrain_sources": (list(variant.pretrain_sources) if variant.pretrain_sources is not None else "preset mix"),
        "budget": {"pretrain_steps": 0 if variant.pretrain_sources == () else group.pretrain_steps,
                   "finetune_steps": group.finetune_steps, "seeds": list(group.seeds)},
        "tasks": tasks, "episodes_per_task_per_seed": group.episodes,
        "replan_every": metrics["rows"][next(iter(rows))]["settings"]["replan_every"],
        "success": pooled["overall"]["success_rate"], "success_ci95": pooled["overall"]["ci95"],
        "per_task": pooled["per_task"],
        "per_seed_success": per_seed_rate,
        "seed_spread": float(np.std(list(per_seed_rate.values()))),
        "val_action_loss": float(np.mean(val_action)) if val_action else None,
        "val_losses_per_seed": val,
        "per_seed": metrics["rows"],
        "futures": futures,
        "seconds": {"expected": expected, "train": t_train, "total": time.time() - t0},
    }
    return result


# ---------------------------------------------------------------------------------------------
# a1 ablation run | train
# ---------------------------------------------------------------------------------------------
def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="GROUP-VARIANT",
                        help="<task group>-<variant>, e.g. dynamic-a1_full (params.yaml: ablations)")
    parser.add_argument("--params", default="params.yaml",
                        help="params file; the preset's `ablation` section is the budget")
    parser.add_argument("--preset", default=None, help="preset (default: the file's `preset`)")
    parser.add_argument("--data", default="data", help="the datasets (data/<source>)")
    parser.add_argument("--latents", default="artifacts/latents", help="the latent cache (a1 tokenizer encode)")
    parser.add_argument("--tokenizer", default="artifacts/tokenizer", help="the tokenizers (a1 tokenizer train)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--out", default=None, help=f"the run's folder (default: {DEFAULT_DIR}/<group>-<variant>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def run_run(args: argparse.Namespace) -> int:
    layout = RunLayout(Path(args.out)) if args.out else RunLayout.of(DEFAULT_DIR, args.run)
    args.out = str(layout.root)
    result = run_variant(args)
    atomic_write_json(layout.metrics, result)
    atomic_write_json(layout.summary, ablation_summary(result))  # the DVC metrics file
    spread = ", ".join(f"{k} {v:.0%}" for k, v in result["per_seed_success"].items())
    print(f"{result['run']}: success {result['success']:.1%} "
          f"[{result['success_ci95'][0]:.1%}, {result['success_ci95'][1]:.1%}] ({spread}); "
          f"held-out action loss {result['val_action_loss']}; {result['seconds']['total']:.0f} s")
    print(f"wrote {layout.metrics} and {layout.summary}")
    return 0


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--seed", type=int, required=True, help="the training seed")
    parser.add_argument("--out", required=True, help="the run's folder (its seeds train in OUT/runs/seed<k>)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (seeds run side by side)")


# ---------------------------------------------------------------------------------------------
# a1 ablation report
# ---------------------------------------------------------------------------------------------
def imagined_outcomes(policy_dir: str | Path, out: str | Path, tasks: list[str], episodes: int = 3,
                      shown: str | None = None) -> Path:
    """``ablation_imagined.png``: the policy's first successful and first failed closed-loop episode among
    ``episodes`` evaluation seeds per task, recorded with its imagined futures, drawn by viz. ``shown``
    names the policy in the figure's title (default: its folder)."""
    with torch_threads(1):  # batch-1 inference: one thread is fastest on a small CPU
        policy = A1Policy.from_pretrained(policy_dir, imagine=True)
        picked = first_outcomes(policy, tasks, episodes, image_size=policy.config.image_size)
    return plot_imagined_outcomes(picked, policy.delta, out, shown or str(policy_dir), tasks, episodes)


def write_report(directory: str | Path, out: str | Path, imagined_episodes: int = 3,
                 groups: list[str] = ()) -> list[Path]:
    """``groups``: the preset's task groups; one without results yet gets a figure that says so."""
    results = load_results(directory)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ran = by_group(results)
    written = [plot_group(group, runs, out / f"ablation_{group}.png") for group, runs in ran.items()]
    written += [plot_not_run(group, out / f"ablation_{group}.png") for group in groups if group not in ran]
    # imagined futures of a1_full, on the dynamic tasks where a group has them
    full = sorted((r for r in results.values() if r["variant"] == "a1_full"),
                  key=lambda r: not any(t in DYNAMIC_TASKS for t in r["tasks"]))
    if full:
        r = full[0]
        seed = r["budget"]["seeds"][0]
        policy = RunLayout.of(directory, r["run"]).policy(seed)
        if policy.is_dir():
            tasks = [t for t in r["tasks"] if t in DYNAMIC_TASKS] or r["tasks"]
            written.append(imagined_outcomes(policy, out / "ablation_imagined.png", tasks, imagined_episodes,
                                             shown=f"{r['run']}, training seed {seed}"))
    rows = evaluate_claims(results)
    for name, text in (("claims.md", claims_table(rows)), ("ablations.md", variants_table(results))):
        atomic_write_text(out / name, text)
        written.append(out / name)
    atomic_write_json(Path(directory).parent / "claims.json", rows)
    written.append(Path(directory).parent / "claims.json")
    return written


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=DEFAULT_DIR, help="folder of <group>-<variant>/metrics.json")
    parser.add_argument("--out", default="figures", help="output folder")
    parser.add_argument("--imagined-episodes", type=int, default=3,
                        help="evaluation seeds tried per task for a successful and a failed episode")
    parser.add_argument("--params", default="params.yaml", help="its ablation section names the task groups")
    parser.add_argument("--preset", default=None, help="preset (default: the params file's `preset`)")


def run_report(args: argparse.Namespace) -> int:
    groups = list(load_config(args).groups)
    written = write_report(args.dir, args.out, args.imagined_episodes, groups)
    for p in written:
        print(f"wrote {p}")
    print((Path(args.out) / "claims.md").read_text())
    return 0


run = Command(add_run_arguments, run_run)
train = Command(add_train_arguments, train_seed)
report = Command(add_report_arguments, run_report)
