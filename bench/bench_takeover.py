"""Takeover demonstrations: does the policy learn to recover if it is shown its own mistakes?

    .venv/bin/python bench/bench_takeover.py --policy artifacts/finetune/policy --domain lab --out /tmp/takeover
    .venv/bin/python bench/bench_takeover.py --plain --domain lab --out /tmp/plain    # the control

A DAgger-style rung (Ross et al. 2011; the takeover form of HG-DAgger, Kelly et al. 2019). The
trained policy drives the first k steps of an episode (k drawn between 10% and 60% of the task's
step limit), then the scripted expert takes over (with the pipeline's DART noise) and finishes;
every frame is labelled with the expert's clean command for that state, so the policy's own
drift, slips and wrong turns appear in the data with the way out of them. ``--plain`` records
ordinary expert demonstrations with the same seeds and count instead: the control that separates
"recovery states" from "more data". Episodes whose expert does not finish in time are skipped, as
in ``a1 data generate``; the seeds are training seeds of another base (``--seed``, default 1), so
no scene of the pipeline's data, validation or evaluation is reused.

It writes OUT/sim/ (a LeRobot dataset, whatever ``--domain`` it was recorded in: the training
commands know the sources sim / lab / human, and the extra set is passed in the `sim` slot) with a
``lab`` link to the pipeline's lab demos beside it, so the fine-tuning mixes the two:

    a1 tokenizer encode --data OUT --sources sim --out OUT/latents
    ln -s $PWD/artifacts/latents/lab.json $PWD/artifacts/latents/lab.safetensors OUT/latents/
    a1 finetune --init artifacts/pretrain/policy --data OUT --latents OUT/latents \\
        --set 'source_weights={"lab": 0.5, "sim": 0.5}' --out OUT/finetune
    a1 evaluate --policy OUT/finetune/policy --reference '' --seed-set validation --episodes 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

TAKEOVER_FROM, TAKEOVER_TO = 0.1, 0.6  # the policy's share of the step limit before the expert takes over
_POLICIES: dict[str, object] = {}


def record_takeover_episode(task: str, domain: str, seed: int, image_size: int = 64, dart_noise: float = 0.0,
                            policy_dir: str = ""):
    """One episode: the policy at ``policy_dir`` drives, then the expert; labels are the expert's."""
    import torch

    from a1lib.constants import IMAGE, IMAGE_PAST, STATE, TASK
    from a1lib.eval.evaluate import load_policy
    from a1lib.sim import TabletopEnv
    from a1lib.sim.record import dart_perturbation, rollout_policy

    if policy_dir not in _POLICIES:  # once per worker process
        torch.set_num_threads(1)
        _POLICIES[policy_dir] = load_policy(policy_dir, imagine=False)
    policy = _POLICIES[policy_dir]
    policy.reset()
    env = TabletopEnv(task=task, domain=domain, image_size=image_size)
    dart = dart_perturbation(dart_noise, seed) if dart_noise > 0 else (lambda a: a)
    k = int(np.random.default_rng([int(seed), 0x7A6E]).uniform(TAKEOVER_FROM, TAKEOVER_TO) * env.step_limit)
    history, queue, current = [], [], {}

    def expert_label(obs, e):  # recorded: the expert's command, asked every step so its plan stays current
        history.append(obs["image"])
        current["obs"] = obs
        return e.expert_action()

    def execute(label):  # executed: the policy's action for the first k steps, then the (noisy) expert's
        t = len(history) - 1
        if t >= k:
            return dart(label)
        if not queue:
            obs = current["obs"]
            chunk = policy.infer({IMAGE: obs["image"], IMAGE_PAST: history[max(t - policy.delta, 0)],
                                  STATE: obs["state"], TASK: env.instruction})["actions"]
            queue.extend(chunk[:policy.settings.replan_every])  # the policy's own interval (None: all)
        return queue.pop(0)

    return rollout_policy(env, expert_label, seed=int(seed), perturb=execute)


def main(argv: list[str] | None = None) -> int:
    import functools
    import multiprocessing

    from a1lib.data.generate import DataGenConfig, SimAPI, default_sim_api, generate_source

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="artifacts/finetune/policy", help="the policy that drives first")
    ap.add_argument("--plain", action="store_true", help="plain expert demonstrations (the control)")
    ap.add_argument("--domain", default="lab", choices=("sim", "lab"))
    ap.add_argument("--tasks", default=None, help="comma-separated tasks (default: all ten)")
    ap.add_argument("--episodes", type=int, default=30, help="per task")
    ap.add_argument("--dart-noise", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=1, help="base of the training seeds (the pipeline's data uses 0)")
    ap.add_argument("--lab-data", default="data/lab", help="linked as OUT/lab")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    base = default_sim_api()
    record = base.record if args.plain else functools.partial(record_takeover_episode,
                                                              policy_dir=str(Path(args.policy).resolve()))
    api = SimAPI(record, base.scene_features, base.state_names, base.action_names)
    cfg = DataGenConfig(seed=args.seed, sim_episodes_per_task=args.episodes, lab_episodes_per_task=args.episodes,
                        dart_noise=args.dart_noise, workers=args.workers)
    if args.tasks:
        cfg.tasks = tuple(args.tasks.split(","))
    out = Path(args.out)
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        summary = generate_source(cfg, args.domain, out, api, pool, progress=sys.stderr.isatty())
    if args.domain != "sim":
        os.replace(out / args.domain, out / "sim")  # the extra set goes in the `sim` slot (see above)
    lab = out / "lab"
    if not lab.exists():
        lab.symlink_to(Path(args.lab_data).resolve())
    print(json.dumps({**summary, "kind": "plain" if args.plain else "takeover", "domain": args.domain}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
