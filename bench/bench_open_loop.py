"""Open-loop action error of a policy on dataset frames: what has it learnt, per action dimension?

    .venv/bin/python bench/bench_open_loop.py --policy artifacts/finetune/policy --source lab --frames 150

For ``--frames`` frames drawn (seeded) from ``data/<source>``, the policy sees exactly what the
dataset recorded at frame t (image t, image t - delta, state, instruction) and returns a chunk; we
print the mean absolute error per action dimension against the recorded expert chunk, next to the
error of always answering the dataset's mean action. A dimension whose error is near that baseline
has not been learnt. This is the check that closed-loop failure comes from the model, not from the
evaluation loop (the scripted expert succeeds through the same loop).
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
    args = ap.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
