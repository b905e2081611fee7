"""Benchmark of a1lib.sim: render speed, expert success, and the motion-blind ablation.

    .venv/bin/python bench/bench_sim.py --seeds 200 --json out.json
    .venv/bin/python bench/bench_sim.py --seeds 0 --speed-steps 500 --tasks ExpressSorting,IngredientPicking  # 4. only

1. Steps per second of ``env.step`` (physics + rendering the 64x64 observation) on one core,
   per domain, single process, torch not imported. Two action sources: uniform random actions
   (many never-seen gripper poses, i.e. stamp-cache misses) and the scripted expert (its own
   compute excluded). CPU time (``time.process_time``) is used, so a busy shared machine
   disturbs the number less than wall time would; wall time is reported too.
2. Expert success rate per task in the two robot domains (sim, lab) over ``--seeds`` seeds
   (2 worker processes), with mean / max episode length next to the step limit.
3. Motion-blind expert success on the dynamic tasks (same seeds), next to the real expert's.
4. Both experts against conveyor / turntable speed (lab domain, ``--speed-seeds`` seeds per
   speed): the speeds at which a dynamic task can be done at all, and how much knowing the motion
   is worth at each. Read the ablations' speed sweep against it (a speed the expert fails at
   says nothing about a policy).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from a1lib.io import atomic_write_text  # noqa: E402
from a1lib.sim import DYNAMIC_TASKS, TASKS, make_env  # noqa: E402
from a1lib.sim.tasks import SPEED_KEYS  # noqa: E402


def measure_speed(domain: str, task: str, steps: int, source: str, image_size: int) -> dict:
    env = make_env(task, domain, image_size=image_size)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(steps, 5)).astype(np.float32)
    env.reset(seed=0)
    for a in actions[: steps // 10]:  # warm-up (stamp caches)
        _, _, te, tr, _ = env.step(a)
        if te or tr:
            env.reset()
    env.reset(seed=1)
    cpu = wall = 0.0
    for a in actions:
        if source == "expert":
            a = env.expert_action()
        c0, w0 = time.process_time(), time.perf_counter()
        _, _, te, tr, _ = env.step(a)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        if te or tr:
            env.reset()
    return {"domain": domain, "source": source, "steps_per_s_cpu": steps / cpu, "steps_per_s_wall": steps / wall}


def _episode(args):
    task, domain, seed, blind, motion = args  # motion: {"belt_speed": v} etc., or {} for the task's own
    env = make_env(task, domain, **motion)
    env.reset(seed=seed)
    steps = 0
    while True:
        _, _, te, tr, info = env.step(env.expert_action(motion_blind=blind))
        steps += 1
        if te or tr:
            return task, domain, seed, blind, motion, bool(info["success"]), steps


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _run(jobs: list[tuple], workers: int) -> dict:
    """Expert episodes in ``workers`` processes: {(task, domain, blind[, speed]): [(seed, ok, steps)]}."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    results: dict = {}
    with mp.get_context("spawn").Pool(workers) as pool:
        it = pool.imap_unordered(_episode, jobs, chunksize=8)
        if tqdm is not None:
            it = tqdm(it, total=len(jobs), desc="episodes", file=sys.stderr)
        for task, domain, seed, blind, motion, ok, steps in it:
            key = (task, domain, blind, *motion.values())
            results.setdefault(key, []).append((seed, ok, steps))
    return results


def expert_success(tasks: list[str], seeds: int, workers: int) -> tuple[list[dict], list[dict]]:
    """Sections 2 and 3: the expert and the motion-blind expert, ``seeds`` seeds per task and domain."""
    jobs = [(t, d, s, False, {}) for t in tasks for d in ("sim", "lab") for s in range(seeds)]
    jobs += [(t, d, s, True, {}) for t in tasks if t in DYNAMIC_TASKS for d in ("sim", "lab") for s in range(seeds)]
    t0 = time.perf_counter()
    results = _run(jobs, workers)
    print(f"\n== 2. expert success over {seeds} seeds ({time.perf_counter() - t0:.0f} s) ==")
    print(f"  {'task':18s} {'domain':6s} {'success':>8s} {'mean len':>9s} {'max len':>8s} {'limit':>6s}  failed seeds")
    table = []
    for t in tasks:
        for d in ("sim", "lab"):
            rows = sorted(results[(t, d, False)])
            ok = [r[1] for r in rows]
            lens = [r[2] for r in rows if r[1]] or [0]
            fails = [r[0] for r in rows if not r[1]]
            row = {"task": t, "domain": d, "success": float(np.mean(ok)), "mean_len": float(np.mean(lens)),
                   "max_len": int(np.max(lens)), "step_limit": TASKS[t].step_limit, "failed_seeds": fails}
            table.append(row)
            print(f"  {t:18s} {d:6s} {row['success']:8.1%} {row['mean_len']:9.1f} {row['max_len']:8d} "
                  f"{row['step_limit']:6d}  {fails[:10]}")
    print("\n== 3. motion-blind expert on the dynamic tasks ==")
    blind = []
    for t in tasks:
        if t not in DYNAMIC_TASKS:
            continue
        for d in ("sim", "lab"):
            full = float(np.mean([r[1] for r in results[(t, d, False)]]))
            mb = float(np.mean([r[1] for r in results[(t, d, True)]]))
            blind.append({"task": t, "domain": d, "expert": full, "motion_blind": mb})
            print(f"  {t:18s} {d:6s} expert {full:6.1%}   motion-blind {mb:6.1%}")
    return table, blind


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=200, help="seeds per task and domain")
    p.add_argument("--speed-steps", type=int, default=5000, help="steps per speed measurement")
    p.add_argument("--speed-task", default="SortParts")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset")
    p.add_argument("--speed-seeds", type=int, default=30, help="seeds per speed in the speed sweep (0: skip it)")
    p.add_argument("--belt-speeds", default="0,0.05,0.1,0.15,0.2,0.25,0.3",
                   help="ExpressSorting conveyor speeds, table units/s (training range 0.08-0.2)")
    p.add_argument("--turntable-speeds", default="0,0.25,0.5,0.75,1,1.25,1.5",
                   help="IngredientPicking turntable speeds, rad/s (training range 0.4-1.0)")
    p.add_argument("--json", default=None, help="write the results here (atomic)")
    args = p.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    for t in tasks:
        if t not in TASKS:
            p.error(f"unknown task {t!r}; expected some of {sorted(TASKS)}")
    assert "torch" not in sys.modules, "the speed benchmark must run without torch imported"

    print(f"== 1. env.step speed, {args.speed_task}, {args.image_size}x{args.image_size}, one core ==")
    speed = []
    for source in ("random", "expert"):
        for domain in ("sim", "lab", "human"):
            r = measure_speed(domain, args.speed_task, args.speed_steps, source, args.image_size)
            speed.append(r)
            print(f"  {domain:6s} {source:7s} actions: {r['steps_per_s_cpu']:8.0f} steps/s (cpu)"
                  f"  {r['steps_per_s_wall']:8.0f} steps/s (wall)", flush=True)

    table, blind = expert_success(tasks, args.seeds, args.workers) if args.seeds > 0 else ([], [])

    speeds = {"belt_speed": _floats(args.belt_speeds), "turntable_speed": _floats(args.turntable_speeds)}
    swept = [t for t in tasks if t in SPEED_KEYS]
    by_speed = []
    if args.speed_seeds > 0 and swept:
        jobs = [(t, "lab", s, b, {SPEED_KEYS[t]: v}) for t in swept for v in speeds[SPEED_KEYS[t]]
                for b in (False, True) for s in range(args.speed_seeds)]
        t0 = time.perf_counter()
        results = _run(jobs, args.workers)
        print(f"\n== 4. expert / motion-blind expert against speed, lab, {args.speed_seeds} seeds per speed "
              f"({time.perf_counter() - t0:.0f} s) ==")
        for t in swept:
            key = SPEED_KEYS[t]
            print(f"  {t} ({key})")
            for v in speeds[key]:
                ok = {b: [r[1] for r in results[(t, "lab", b, v)]] for b in (False, True)}
                row = {"task": t, "speed_key": key, "speed": v, "expert": float(np.mean(ok[False])),
                       "motion_blind": float(np.mean(ok[True]))}
                by_speed.append(row)
                print(f"    {v:5.2f}: expert {row['expert']:6.1%}   motion-blind {row['motion_blind']:6.1%}")
    if args.json:
        out = {"speed": speed, "expert": table, "motion_blind": blind, "seeds": args.seeds,
               "image_size": args.image_size, "by_speed": by_speed, "speed_seeds": args.speed_seeds}
        atomic_write_text(args.json, json.dumps(out, indent=2))  # no trailing newline, as json.dump wrote it
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
