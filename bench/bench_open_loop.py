"""Open-loop action error of a policy on dataset frames: what has it learnt, per action dimension?

    .venv/bin/python bench/bench_open_loop.py --policy artifacts/finetune/policy --source lab --frames 150

For ``--frames`` frames drawn (seeded) from ``data/<source>``, the policy sees exactly what the
dataset recorded at frame t (image t, image t - delta, state, instruction) and returns a chunk; we
print the mean absolute error per action dimension against the recorded expert chunk, next to the
error of always answering the dataset's mean action. A dimension whose error is near that baseline
has not been learnt. This is the check that closed-loop failure comes from the model, not from the
evaluation loop (the scripted expert succeeds through the same loop).

    .venv/bin/python bench/bench_open_loop.py --policy shipped --on-policy UnscrewCap,PlaceFlower --episodes 5

``--on-policy TASKS`` asks the other question: is the error the same on the states the policy
visits itself? For each task it runs lab episodes on the validation seeds twice, once driven by the
scripted expert and once by the policy (replanning every ``--replan-every`` actions), and at every
step compares the action the policy executes with the expert's command for that very state (the
expert reads the simulator; it only answers, it does not act). A policy whose error is small on the
expert's states but large on its own drifts into states the demonstrations never showed
(compounding error, the problem DART and DAgger address); one whose error is large on both has not
learnt the task.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default="artifacts/finetune/policy")
    ap.add_argument("--data", default="data")
    ap.add_argument("--source", default="lab", help="sim or lab (human video has no actions)")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--on-policy", default=None, metavar="TASKS",
                    help="comma-separated tasks: error on the expert's vs the policy's own states, closed loop")
    ap.add_argument("--episodes", type=int, default=5, help="--on-policy: validation episodes per task and driver")
    ap.add_argument("--replan-every", type=int, default=None,
                    help="--on-policy: actions executed per chunk (default: the policy's own, policy.json)")
    args = ap.parse_args(argv)
    if args.on_policy:
        return on_policy(args)

    import torch

    from a1lib.constants import IMAGE, IMAGE_PAST, STATE, TASK
    from a1lib.data import LeRobotDataset, WindowedDataset
    from a1lib.models.policy_a1 import A1Policy
    from a1lib.sim import ACTION_NAMES

    torch.set_num_threads(1)
    policy = A1Policy.from_pretrained(args.policy)
    ds = LeRobotDataset(os.path.join(args.data, args.source))
    if "action" not in ds.features:
        raise SystemExit(f"{ds.root}: no actions (human video?); use --source sim or lab")
    windows = WindowedDataset(ds, delta=policy.delta, horizon=policy.config.chunk_size)
    frames = np.random.default_rng(args.seed).choice(len(windows), min(args.frames, len(windows)), replace=False)
    mean_action = ds.columns["action"].mean(0)
    err, first, base = [], [], []
    t0 = time.time()
    for i in frames:
        s = windows[int(i)]
        keep = ~s["action_is_pad"]
        out = policy.infer({IMAGE: s[IMAGE], IMAGE_PAST: s[IMAGE_PAST], STATE: s[STATE], TASK: s["task"]})
        err.append(np.abs(out["actions"][keep] - s["action"][keep]).mean(0))
        first.append(np.abs(out["actions"][0] - s["action"][0]))
        base.append(np.abs(mean_action - s["action"][keep]).mean(0))
    rows = [("policy, whole chunk", np.mean(err, 0)), ("policy, first action", np.mean(first, 0)),
            ("mean-action baseline", np.mean(base, 0))]
    print(f"{args.policy} on {len(frames)} frames of {ds.root} ({time.time() - t0:.0f} s); mean absolute error:")
    print(f"{'':<24}" + "".join(f"{n:>8}" for n in ACTION_NAMES))
    for name, v in rows:
        print(f"{name:<24}" + "".join(f"{x:8.3f}" for x in v))
    return 0


def on_policy(args) -> int:
    import gymnasium as gym
    import torch

    import a1lib.sim  # noqa: F401  (registers the envs)
    from a1lib.constants import IMAGE, IMAGE_PAST, STATE, TASK
    from a1lib.data.seeds import validation_seed
    from a1lib.eval.evaluate import load_policy, policy_image_size
    from a1lib.policy_protocol import inference_settings
    from a1lib.sim import ACTION_NAMES

    torch.set_num_threads(1)
    policy = load_policy(args.policy, imagine=False)
    delta, image_size = inference_settings(policy).delta, policy_image_size(args.policy, 64)
    print(f"{args.policy}: first action vs the expert's command for the same state, lab, {args.episodes} "
          f"validation episodes per task and driver; mean absolute error (binary dims: share of wrong signs)")
    print(f"{'task':<18}{'driver':>8}{'success':>9}{'steps':>7}" + "".join(f"{n:>8}" for n in ACTION_NAMES))
    own = inference_settings(policy).replan_every
    replan_every = (args.replan_every if args.replan_every is not None else own) or policy.config.chunk_size
    binary = list(getattr(policy, "binary_action_dims", ()))
    t0 = time.time()
    for task in args.on_policy.split(","):
        for driver in ("expert", "policy"):
            err, wins, steps = [], 0, 0
            for i in range(args.episodes):
                env = gym.make(f"a1lib/{task}-v0", domain="lab", image_size=image_size)
                obs, info = env.reset(seed=validation_seed(task, i))
                policy.reset()
                history, queue, done = [obs["image"]], [], False
                while not done:
                    expert = env.unwrapped.expert_action()
                    if not queue:  # the policy replans on its schedule, whoever drives
                        past = history[max(len(history) - 1 - delta, 0)]
                        chunk = policy.infer({IMAGE: obs["image"], IMAGE_PAST: past, STATE: obs["state"],
                                              TASK: env.unwrapped.instruction})["actions"]
                        queue = list(chunk[:replan_every])
                    action = queue.pop(0)
                    e = np.abs(action - expert)
                    e[binary] = np.sign(action[binary]) != np.sign(expert[binary])
                    err.append(e)
                    obs, _, terminated, truncated, info = env.step(expert if driver == "expert" else action)
                    history.append(obs["image"])
                    steps += 1
                    done = terminated or truncated
                wins += bool(info.get("success", False))
                env.close()
            print(f"{task:<18}{driver:>8}{wins:>6}/{args.episodes:<2}{steps / args.episodes:>7.0f}"
                  + "".join(f"{x:8.3f}" for x in np.mean(err, 0)))
    print(f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
