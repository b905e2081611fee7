"""``a1 evaluate``: closed-loop success rates in the lab-domain envs, with confidence intervals.

    a1 evaluate --policy artifacts/finetune/policy [--tasks SortParts,ExpressSorting]
                [--episodes 20] [--replan-every 5] [--reference expert,random] [--workers 2]
                [--belt-speed 0.5,1.0,1.5] [--out experiments/eval]

Each policy runs with its own inference settings (policy.json: replan interval, delta, sampling
noise); ``override`` (``--replan-every``, ``--noise-scale``, the sweeps) changes them for every row,
explicitly, and each change is printed.

Every (task, episode i) runs on ``a1lib.data.seeds.eval_seed(task, i)``: fixed, the same for every
policy, and disjoint from every training seed. Episodes run in ``workers`` processes; results are
collected in (task, episode) order, so the metrics do not depend on scheduling.

Rows: the evaluated policy plus reference rows (the scripted expert, which reads the simulator's
privileged state through ``attach(env)``, and a seeded uniform random policy), all through the
same loop. Per task: successes k of n episodes, the rate and its 95% Wilson score interval
(honest at small n and at 0% / 100%, unlike the normal approximation). ``metrics.json`` holds it
all; ``gifs/`` a few rollouts (camera + planned path | imagined future).

Speed sweeps (dynamic tasks): ``--belt-speed`` / ``--turntable-speed`` take comma-separated values;
each value is a separate block of rows, keyed by the env kwargs.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from a1lib.data.seeds import eval_seed, validation_seed
from a1lib.eval.gif import write_gif
from a1lib.eval.rollout import ExpertPolicy, run_episode
from a1lib.eval.stats import Rate, numbers
from a1lib.models.policy_a1 import A1Policy
from a1lib.models.privileged import PrivilegedPolicy, is_privileged_policy
from a1lib.policy_protocol import RandomPolicy, inference_settings
from a1lib.progress import ProgressLines
from a1lib.shipped import default_policy_dir
from a1lib.sim import TASKS  # importing a1lib.sim registers the envs

REFERENCES = ("expert", "motion_blind_expert", "random")  # rows with no policy directory
DOMAIN = "lab"



# ---------------------------------------------------------------------------------------------
# Workers: each process loads each policy once
# ---------------------------------------------------------------------------------------------
_POLICIES: dict[tuple[str, str], Any] = {}


def _init_worker() -> None:
    torch.set_num_threads(1)  # one thread per worker process: the workers are the parallelism


def load_policy(spec: str = "shipped", seed: int = 0, imagine: bool = True, action_dim: int = 5,
                horizon: int = 10, override: dict[str, Any] | None = None) -> Any:
    """The one policy loader: "shipped" (the committed cpu policy, policies/a1-cpu) | "expert" |
    "motion_blind_expert" (aims where objects are, not where they will be) | "random" (``action_dim`` x
    ``horizon`` chunks) | a directory holding an A1Policy or a
    PrivilegedPolicy. ``override`` changes the policy's own inference settings (printed), e.g.
    ``{"replan_every": 5}``; None keeps them."""
    if spec in REFERENCES:
        policy = (RandomPolicy(action_dim=action_dim, horizon=horizon, seed=seed) if spec == "random"
                  else ExpertPolicy(motion_blind=spec == "motion_blind_expert"))
        if override:
            policy.settings = inference_settings(policy).overridden(spec, **override)
        return policy
    path = policy_path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory (a policy is 'shipped', 'expert', 'random' or a "
                                "directory written by a1 finetune / a1 privileged)")
    if is_privileged_policy(path):
        return PrivilegedPolicy.from_pretrained(path, override=override)
    return A1Policy.from_pretrained(path, imagine=imagine, seed=seed, override=override)


def policy_path(spec: str) -> Path:
    """The directory a policy spec names: "shipped" is the committed policy."""
    return default_policy_dir() if spec == "shipped" else Path(spec)


def policy_image_size(spec: str, default: int) -> int:
    if spec in REFERENCES or is_privileged_policy(policy_path(spec)):
        return default
    cfg = json.loads((policy_path(spec) / "config.json").read_text())
    return int(cfg["image_size"])


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    spec, task, i = job["policy"], job["task"], job["episode"]
    seed = (validation_seed if job.get("seed_set") == "validation" else eval_seed)(task, i)
    if spec == "random":
        policy = load_policy("random", seed=seed % 2**31, override=job["override"])  # a fresh stream per episode
    else:
        key = (spec, json.dumps(job["override"], sort_keys=True))
        if key not in _POLICIES:
            _POLICIES[key] = load_policy(spec, override=job["override"])
        policy = _POLICIES[key]
        if hasattr(policy, "imagine"):
            policy.imagine = bool(job.get("gif"))  # decoding the future costs time: only for GIFs
    env = gym.make(f"a1lib/{task}-v0", domain=DOMAIN, image_size=job["image_size"], **job["env_kwargs"])
    t0 = time.time()
    try:
        res = run_episode(env, policy, seed, record=bool(job.get("gif")))
    finally:
        env.close()
    if job.get("gif"):
        write_gif(job["gif"], res.frames)
    return {"task": task, "episode": i, "seed": seed, "success": res.success, "steps": res.steps,
            "instruction": res.instruction, "seconds": time.time() - t0, "gif": job.get("gif"),
            "settings": dataclasses.asdict(inference_settings(policy))}


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
def _progress(items, total: int, bar: bool):
    """A tqdm bar on a terminal, else a plain line now and then (logs, `dvc repro`)."""
    if bar:
        yield from tqdm(items, total=total, desc="evaluate", unit="ep")
        return
    lines = ProgressLines("evaluate", total, unit="episode", every=max(1, total // 20))
    for item in items:
        yield item
        lines.update(1)
    lines.close()


def summarise(results: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    """Episode results -> per task and overall a ``Rate`` (as a dict), with the steps and seeds behind it."""
    per_task = {}
    for task in tasks:
        rs = [r for r in results if r["task"] == task]
        per_task[task] = {**Rate.of(r["success"] for r in rs).to_dict(),
                          "mean_steps": float(np.mean([r["steps"] for r in rs])) if rs else None,
                          "seeds": [r["seed"] for r in rs], "success_per_episode": [bool(r["success"]) for r in rs]}
    return {"per_task": per_task,
            "overall": {**Rate.of(r["success"] for r in results).to_dict(),
                        "mean_of_task_rates": float(np.mean([v["success_rate"] for v in per_task.values()]))}}


def evaluate(policies: dict[str, str], tasks: list[str], episodes: int, out: str | Path | None = None,
             workers: int = 2, env_kwargs: dict[str, Any] | None = None, gifs_per_task: int = 1,
             image_size: int = 64, progress: bool = True, seed_set: str = "eval",
             override: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rows ``name -> policy spec`` ("expert", "random", an A1Policy or a PrivilegedPolicy dir) on
    ``tasks`` x ``episodes``, each run with its own inference settings but for ``override`` (e.g.
    ``{"replan_every": 5}``, applied to every row and printed). ``seed_set="validation"`` runs on the
    validation seeds instead of the evaluation seeds (for choosing how to run a policy, e.g. the
    replan interval)."""
    if seed_set not in ("eval", "validation"):
        raise ValueError(f"seed_set must be 'eval' or 'validation', got {seed_set!r}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; have {sorted(TASKS)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env_kwargs = dict(env_kwargs or {})
    out = Path(out) if out is not None else None
    tag = "".join(f"_{k}{v}" for k, v in sorted(env_kwargs.items()))
    jobs = []
    for name, spec in policies.items():
        if spec not in REFERENCES and not Path(spec).is_dir():
            raise FileNotFoundError(f"{spec}: policy directory not found (row {name!r})")
        size = policy_image_size(spec, image_size)
        for task in tasks:
            for i in range(episodes):
                gif = out / "gifs" / f"{name}_{task}{tag}_ep{i}.gif" if out is not None and i < gifs_per_task else None
                jobs.append({"name": name, "policy": spec, "task": task, "episode": i, "image_size": size,
                             "env_kwargs": env_kwargs, "gif": str(gif) if gif else None,
                             "seed_set": seed_set, "override": dict(override or {})})
    t0 = time.time()
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            results = list(_progress(pool.imap(_run_job, jobs), len(jobs), progress))
    else:  # one thread, as in a worker process: the same floats, so the same outcomes, whatever `workers`
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            results = [_run_job(j) for j in _progress(jobs, len(jobs), progress)]
        finally:
            torch.set_num_threads(threads)
    for job, r in zip(jobs, results):
        r["name"] = job["name"]
    metrics = {
        "domain": DOMAIN, "tasks": list(tasks), "episodes_per_task": episodes, "override": dict(override or {}),
        "env_kwargs": env_kwargs, "seeds": f"a1lib.data.seeds.{seed_set}_seed(task, i), i < episodes_per_task",
        "ci": "95% Wilson score interval", "seconds": time.time() - t0,
        "rows": {name: {"policy": spec, "settings": next(r["settings"] for r in results if r["name"] == name),
                        **summarise([r for r in results if r["name"] == name], tasks)}
                 for name, spec in policies.items()},
        "gifs": [r["gif"] for r in results if r["gif"]],
    }
    return metrics


def speed_sweep(policies: dict[str, str], tasks: list[str], episodes: int, speeds: dict[str, list[float]],
                **kwargs: Any) -> list[dict[str, Any]]:
    """One ``evaluate`` per value of each speed kwarg (belt_speed / turntable_speed)."""
    blocks = []
    for key, values in speeds.items():
        for v in values:
            blocks.append(evaluate(policies, tasks, episodes, env_kwargs={key: float(v)}, **kwargs))
    return blocks



def _rate_ci(overall: dict[str, Any]) -> dict[str, Any]:
    lo, hi = overall["ci95"]
    return {"success": overall["success_rate"], "ci_low": lo, "ci_high": hi}


def evaluation_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers to compare across runs (``summary.json``; ``dvc metrics show FILE`` reads it)
    from what ``a1 evaluate`` writes to ``metrics.json``:

    * ``evaluate``: per row, the overall success rate and its 95% CI bounds
      (``a1.success``, ``a1.ci_low``, ``a1.ci_high``), plus the per-task rates of the first row,
      the evaluated policy (``a1.task.SortParts``, ...): 3 x rows + tasks numbers;
    * ``replan_sweep`` / ``noise_sweep``: the overall rate per interval / noise scale and row
      (``replan_2.a1``, ``noise_0.0.a1``);
    * a speed sweep (``{"sweep": [...]}``): the overall rate per speed and row (``belt_speed_0.5.a1``).
    """
    if "replan_sweep" in metrics or "noise_sweep" in metrics:
        return numbers({f"{kind}_{x}": {name: v["success_rate"] for name, v in rows.items()}
                        for kind in ("replan", "noise") for x, rows in metrics.get(f"{kind}_sweep", {}).items()})
    if "sweep" in metrics:
        return numbers({"_".join(f"{k}_{v}" for k, v in block["env_kwargs"].items()):
                        {name: row["overall"]["success_rate"] for name, row in block["rows"].items()}
                        for block in metrics["sweep"]})
    out: dict[str, Any] = {}
    for i, (name, row) in enumerate(metrics["rows"].items()):
        out[name] = _rate_ci(row["overall"])
        if i == 0:
            out[name]["task"] = {t: v["success_rate"] for t, v in row["per_task"].items()}
    return numbers(out)


def evaluation_headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The evaluated policy's overall success rate, its 95% CI bounds and the seconds the evaluation
    took (``headline.json``, the DVC metrics file). The keys are those of an ablation's summary, so
    ``dvc metrics show`` lines the pipeline's policy and the ablation variants up in one narrow table;
    the reference rows and per-task rates stay in ``summary.json`` beside it."""
    first = next(iter(metrics["rows"].values()))["overall"]
    return numbers({**_rate_ci(first), "seconds": metrics.get("seconds")})


def format_table(metrics: dict[str, Any]) -> str:
    w = max(len(name) for name in ["row", *metrics["rows"]]) + 2  # "privileged" must not run into the task
    lines = [f"{'row':<{w}}{'task':<20}{'success':>9}{'95% CI':>16}"]
    for name, row in metrics["rows"].items():
        for task, v in [*row["per_task"].items(), ("(all)", row["overall"])]:
            lo, hi = v["ci95"]
            lines.append(f"{name:<{w}}{task:<20}{v['successes']:>4}/{v['episodes']:<4}  [{lo:5.2f}, {hi:5.2f}]")
    return "\n".join(lines)


@dataclass
class EvalConfig:
    """The ``eval`` section of params.yaml (command-line flags override it)."""

    episodes: int = 10  # per task, on fixed evaluation seeds (a1lib.data.seeds.eval_seed)
    workers: int = 2
    gifs_per_task: int = 1
    tasks: tuple[str, ...] | None = None  # None = all ten


@dataclass
class ReplanSweepConfig:
    """The ``replan_sweep`` section of params.yaml: how eval.replan_every was chosen."""

    intervals: tuple[int, ...] = (1, 2, 5, 10)
    episodes: int = 10  # per task and interval, on the validation seeds
    # A1 sampling noise, at the policy's replan interval: how finetune.noise_scale was chosen
    noise_scales: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)


def _by_setting(keys: list[str], blocks: list[dict]) -> tuple[dict, dict]:
    """One sweep's results keyed by setting: each row's overall rate, and its successes per task."""
    overall = {k: {name: row["overall"] for name, row in b["rows"].items()} for k, b in zip(keys, blocks)}
    per_task = {k: {name: {t: v["successes"] for t, v in row["per_task"].items()} for name, row in b["rows"].items()}
                for k, b in zip(keys, blocks)}
    return overall, per_task


def replan_sweep(policies: dict[str, str], tasks: list[str], intervals: list[int], episodes: int,
                 **common: Any) -> dict[str, Any]:
    """Success per replan interval (``common``: the keyword arguments of ``evaluate``), as written by
    ``a1 evaluate --replan-sweep``: overall rates and successes per task, per interval and row."""
    blocks = [evaluate(policies, tasks, episodes, **{**common, "gifs_per_task": 0,
                                                     "override": {**common.get("override", {}), "replan_every": r}})
              for r in intervals]
    overall, per_task = _by_setting([str(r) for r in intervals], blocks)
    return {"replan_sweep": overall, "per_task": per_task,
            "seeds": blocks[0]["seeds"], "episodes_per_task": episodes}


def noise_sweep(policies: dict[str, str], tasks: list[str], scales: list[float], episodes: int,
                **common: Any) -> dict[str, Any]:
    """Success of the A1Policy rows per sampling noise scale (0: the mean chunk, 1: N(0, I)), at their
    own replan interval (or ``common["override"]``'s), as written by ``a1 evaluate --noise-sweep``.
    Reference and privileged rows draw no noise, so they are left out."""
    rows = {n: s for n, s in policies.items() if s not in REFERENCES and not is_privileged_policy(policy_path(s))}
    if not rows:
        raise ValueError("noise sweep: no A1Policy row to sweep (give --policy)")
    blocks = [evaluate(rows, tasks, episodes, **{**common, "gifs_per_task": 0,
                                                 "override": {**common.get("override", {}), "noise_scale": float(x)}})
              for x in scales]
    overall, per_task = _by_setting([str(float(x)) for x in scales], blocks)
    return {"noise_sweep": overall, "noise_per_task": per_task, "noise_override": blocks[0]["override"],
            "seeds": blocks[0]["seeds"], "episodes_per_task": episodes}
