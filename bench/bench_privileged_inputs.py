"""Which scene information does imitation need? The privileged rung with parts of its input removed.

    python bench/bench_privileged_inputs.py --variants full,positions,kind_means --out /tmp/inputs
    python bench/bench_privileged_inputs.py --variants full,no_yaw --episodes 20 --seed-set validation

The privileged-state MLP (``a1 privileged``) reaches 88% of the episodes where A1 reaches 40% (27%
in the old world). Its input (``a1lib.models.privileged.scene_features``) holds far more than A1's
state token can: every object's pose and yaw, which one is held, the belt / turntable speeds, the
task's completion and the expert's plan. This bench retrains it (the pipeline's data and ``privileged`` params)
with groups of that input zeroed at training *and* inference, and evaluates each variant in closed loop
(lab domain, the validation seeds by default), so the gap between the two rows can be split into
"information A1's inputs do not carry" and "information it carries but does not use":

* ``no_<group>``: one group removed (plan, yaw, held, motion, progress, colour, absolute).
* ``positions``: only what ideal per-object keypoints give: the state, each slot's kind and offset
  from the gripper, the plan's target and goal offsets.
* ``kind_means``: exactly what A1's state token reads when its grounding is perfect: the state, then
  for the gripper, the target, the goal and every object kind one point (the mean of that kind's
  objects, as a soft-argmax over a heat-map with several peaks gives), relative to the gripper,
  and its presence. ``kind_means+progress+held_yaw`` (any of ``EXTRAS``, joined by ``+``) adds the
  task's progress, the target's or the held object's yaw (cos, sin, and whether there is one):
  what the ``readouts`` of the branch ``experiment/readouts`` let the vision read. ``bin_goal``
  instead *removes* something: a goal inside a bin becomes that bin's centre (the bin-sorting
  experts drop each item at a slot set by its hidden index; the centre is what a camera can see).
* ``seen`` (with ``--policy``, an A1 policy directory): the same MLP on what that policy's state
  token *actually* reads, its frozen vision's keypoints (and readouts) from the image and the
  instruction (``A1Model.state_inputs``), with the raw state. Between ``kind_means`` and ``seen``
  lies the vision's error; between ``seen`` and A1 itself, the action expert's learning. Evaluated
  by its own loop over ``run_episode`` (the policy reads pixels, not the scene). ``seen+true_plan``:
  the same, with the target's and the goal's keypoints replaced by the truth (``scene.target``,
  ``scene.goal``): how much of the vision's error is choosing the wrong object or place.

Measured (docs/ladder.md and the README; the pipeline's data, validation seeds, 20 per task): full 168/200;
kind_means 137/200 (UnscrewCap 0/20, SweepTrash 5/20); kind_means+progress+held_yaw 179/200; seen
69/200 for the shipped policy and seen+true_plan 136/200 for it (the old world's shipped policy,
whose renderer hid a held part's colour: 41 and 132); kind_means+bin_goal on the four sorting tasks
73/80 (kind_means 76/80).

Every variant keeps the input width (removed columns are zeros; ``kind_means`` is zero-padded), so
the MLP, its training and its evaluation are the library's, unchanged. The variant's feature
function replaces ``scene_features`` inside this process only (evaluation therefore runs in-process,
one thread; run two of these side by side to use two cores). The saved policies are only
meaningful with the same variant: each folder holds a ``variant.json`` saying which.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GROUPS = ("plan", "yaw", "held", "motion", "progress", "colour", "absolute")
EXTRAS = ("progress", "target_yaw", "held_yaw", "bin_goal")  # kind_means+<extra>+... (see variant_features)
VARIANTS = ("full", *(f"no_{g}" for g in GROUPS), "positions", "kind_means", "seen", "seen+true_plan")


def column_groups(state_dim: int) -> dict[str, list[int]]:
    """Column indices of ``scene_features`` per named group (its layout, read from the constants)."""
    from a1lib.models.privileged import MAX_OBJECTS, SLOT_FEATURES
    from a1lib.sim.world import COLOR_NAMES, KIND_NAMES

    nk, nc = len(KIND_NAMES), len(COLOR_NAMES)
    slot = {"used": [0], "kind": list(range(1, 1 + nk)), "colour": list(range(1 + nk, 1 + nk + nc))}
    at = 1 + nk + nc
    slot.update(absolute=[at, at + 1], yaw=[at + 2, at + 3], offset=[at + 4, at + 5], held=[at + 6])
    groups: dict[str, list[int]] = {"state": list(range(state_dim))}
    for name, cols in slot.items():
        groups[name] = [state_dim + k * SLOT_FEATURES + c for k in range(MAX_OBJECTS) for c in cols]
    at = state_dim + MAX_OBJECTS * SLOT_FEATURES
    groups["motion"], groups["progress"] = [at, at + 1], [at + 2]
    at += 3
    groups["target_slot"] = list(range(at, at + MAX_OBJECTS + 1))
    at += MAX_OBJECTS + 1
    groups["target_offset"], groups["goal_valid"], groups["goal_offset"] = [at, at + 1], [at + 2], [at + 3, at + 4]
    groups["plan"] = groups["target_slot"] + groups["target_offset"] + groups["goal_valid"] + groups["goal_offset"]
    return groups


def variant_features(variant: str, state_dim: int):
    """The feature function of one variant: (state, scene) -> (..., feature_dim) float32."""
    import numpy as np

    from a1lib.models.modeling_a1 import KEYPOINT_SCALE
    from a1lib.models.privileged import feature_dim, scene_features
    from a1lib.models.processor import grounding_targets
    from a1lib.sim.world import KIND_NAMES

    groups = column_groups(state_dim)
    width = feature_dim(state_dim)
    if variant == "full":
        return scene_features
    if variant.split("+")[0] == "kind_means":
        extras = variant.split("+")[1:]
        if any(e not in EXTRAS for e in extras):
            raise ValueError(f"unknown extra in {variant!r}; have {EXTRAS}")
        names = ("gripper", "target", "goal") + tuple(KIND_NAMES)

        def kind_means(state, scene):
            state = np.asarray(state, np.float32)
            lead = state.shape[:-1]
            flat_state = state.reshape(-1, state.shape[-1])
            flat = {"scene." + k.removeprefix("scene."):
                    np.asarray(v).reshape(len(flat_state), *np.shape(v)[len(lead):])
                    for k, v in scene.items()}
            out = np.zeros((len(flat_state), width), np.float32)
            for i, s in enumerate(flat_state):
                sc = {k: v[i] for k, v in flat.items()}
                points, valid = grounding_targets(names, sc, s)  # (G, M, 2), (G, M): image coordinates
                if "bin_goal" in extras and valid[2, 0]:
                    bins = points[names.index("bin")][valid[names.index("bin")]]  # (n, 2) bin centres
                    if len(bins):
                        near = bins[np.linalg.norm(bins - points[2, 0], axis=-1).argmin()]
                        if np.linalg.norm(near - points[2, 0]) < 0.1:  # the goal is in that bin
                            points[2, 0] = near
                n = valid.sum(1)
                mean = (points * valid[..., None]).sum(1) / np.maximum(n, 1)[:, None]  # (G, 2)
                rel = np.concatenate([mean[:1], mean[1:] - mean[:1]]) * KEYPOINT_SCALE * (n > 0)[:, None]
                row = [s, rel.reshape(-1), (n > 0).astype(np.float32)]
                target, held = int(sc["scene.target"].reshape(-1)[0]), int(sc["scene.held"].reshape(-1)[0])
                for e in extras:
                    if e == "bin_goal":
                        continue
                    if e == "progress":
                        row.append(sc["scene.progress"].reshape(1))
                    else:
                        slot = target if e == "target_yaw" else held
                        yaw = sc["scene.pose"].reshape(-1, 3)[slot, 2] if slot >= 0 else 0.0
                        row.append(np.array([np.cos(yaw), np.sin(yaw), slot >= 0], np.float32) * (slot >= 0))
                row = np.concatenate(row)
                out[i, :len(row)] = row
            return out.reshape(*lead, width)

        return kind_means
    if variant == "positions":
        keep = groups["state"] + groups["used"] + groups["kind"] + groups["offset"] + groups["target_offset"] \
            + groups["goal_valid"] + groups["goal_offset"]
        mask = np.zeros(width, np.float32)
        mask[keep] = 1
    elif variant.startswith("no_") and variant[3:] in GROUPS:
        mask = np.ones(width, np.float32)
        mask[groups[variant[3:]]] = 0
    else:
        raise ValueError(f"unknown variant {variant!r}; have {VARIANTS}")
    return lambda state, scene: scene_features(state, scene) * mask


class SeenInputs:
    """What an A1 policy's state token reads, from images: (state, keypoints rel. to the gripper,
    presence, and readouts where the model has them), zero-padded to ``width``."""

    def __init__(self, policy_dir: str, width: int, true_plan: bool = False):
        from a1lib.models.policy_a1 import A1Policy

        self.policy = A1Policy.from_pretrained(policy_dir)
        self.model, self.processor, self.width = self.policy.model.eval(), self.policy.processor, width
        self.true_plan = true_plan

    def __call__(self, images, states, instructions, scenes=None):
        """uint8 (N, S, S, 3), float (N, state_dim), N instructions (and, for ``true_plan``, N scene
        dicts) -> (N, width) float32."""
        import numpy as np
        import torch

        from a1lib.models.image_tokenizer import images_to_tensor
        from a1lib.models.modeling_a1 import KEYPOINT_SCALE
        from a1lib.models.processor import grounding_targets

        text = [self.processor.tokenize(t) for t in instructions]
        tokens, mask = torch.stack([t for t, _ in text]), torch.stack([m for _, m in text])
        with torch.inference_mode():
            out = self.model.vision(images_to_tensor(images), tokens, mask)  # (tokens, logits[, readouts])
            x = self.model.state_inputs(torch.as_tensor(states, dtype=torch.float32), *out[1:]).numpy()
        if self.true_plan:  # rows 1, 2 of the grounding names are "target", "goal" (GROUNDING_NAMES)
            S, G = states.shape[1], self.model.config.num_grounding
            for i, scene in enumerate(scenes):
                points, valid = grounding_targets(("target", "goal"), scene, None)
                for g in (1, 2):
                    ok = bool(valid[g - 1, 0])
                    x[i, S + 2 * g:S + 2 * g + 2] = ((points[g - 1, 0] - x[i, S:S + 2] / KEYPOINT_SCALE)
                                                     * KEYPOINT_SCALE * ok)
                    x[i, S + 2 * G + g] = float(ok)
        return np.pad(x, ((0, 0), (0, self.width - x.shape[1]))).astype(np.float32)


def seen_features(seen: SeenInputs, ds, batch: int = 256):
    """Every frame of ``ds`` through ``seen`` (in frame order)."""
    import numpy as np

    from a1lib.constants import IMAGE, STATE

    states = ds.columns[STATE]
    keys = [k for k in ds.numeric_keys if k.startswith("scene.")]
    out = []
    for start in range(0, len(ds), batch):
        idx = np.arange(start, min(start + batch, len(ds)))
        scenes = [{k: ds.columns[k][i] for k in keys} for i in idx] if seen.true_plan else None
        out.append(seen(ds.get_frames(IMAGE, idx), states[idx], [ds.task_of(int(i)) for i in idx], scenes))
    return np.concatenate(out)


class SeenPolicy:
    """The MLP of the ``seen`` variant as a policy: reads the observation's pixels through ``seen``."""

    def __init__(self, inner, seen: SeenInputs):
        self.inner, self.seen = inner, seen
        self.settings = inner.settings  # run as the MLP is

    def attach(self, env) -> None:
        self.inner.attach(env)

    def reset(self) -> None:
        self.inner.reset()

    def infer(self, obs):
        import numpy as np

        from a1lib.constants import IMAGE, STATE, TASK

        scenes = [self.inner.env.scene()] if self.seen.true_plan else None
        x = self.seen(np.asarray(obs[IMAGE])[None], np.asarray(obs[STATE], np.float32)[None], [obs[TASK]], scenes)[0]
        with features_of(lambda state, scene: x):
            return self.inner.infer(obs)


def evaluate_seen(policy, tasks, episodes: int, seed_set: str) -> dict:
    """Closed-loop outcomes of a policy *object* (``a1 evaluate`` loads policies from directories),
    on the same seeds and domain, summarised as its rows are (``summarise``)."""
    import gymnasium as gym

    from a1lib.data.seeds import eval_seed, validation_seed
    from a1lib.eval.evaluate import DOMAIN, summarise
    from a1lib.eval.rollout import run_episode

    seed_of = validation_seed if seed_set == "validation" else eval_seed
    results = []
    for task in tasks:
        for i in range(episodes):
            env = gym.make(f"a1lib/{task}-v0", domain=DOMAIN, image_size=64)
            try:
                res = run_episode(env, policy, seed_of(task, i))
            finally:
                env.close()
            results.append({"task": task, "success": res.success, "steps": res.steps, "seed": res.seed})
    return summarise(results, tasks)


@contextlib.contextmanager
def features_of(fn):
    """Makes ``fn`` the privileged policy's feature function in this process (training and inference)."""
    import a1lib.models.privileged as model_module
    import a1lib.train.privileged as train_module

    saved = model_module.scene_features, train_module.scene_features
    model_module.scene_features = train_module.scene_features = fn
    try:
        yield
    finally:
        model_module.scene_features, train_module.scene_features = saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="full,positions,kind_means", help=f"comma-separated, of {VARIANTS}")
    p.add_argument("--data", default="data", help="folder with sim/, lab/ (the pipeline's data)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: all ten)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task")
    p.add_argument("--seed-set", default="validation", choices=("validation", "eval"))
    p.add_argument("--replan-every", type=int, default=None,
                   help="override the replan interval the policies are exported with (params privileged.replan_every)")
    p.add_argument("--policy", default=None, help="A1 policy directory: what the `seen` variant reads")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: params privileged.steps)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch

    from a1lib.constants import STATE
    from a1lib.eval.evaluate import evaluate
    from a1lib.io import atomic_write_json
    from a1lib.models.privileged import feature_dim
    from a1lib.sim.tasks import TASKS
    from a1lib.train.datamodule import build_normalizer
    from a1lib.train.inputs import load_datasets
    from a1lib.train.privileged import PrivilegedTrainConfig, train_privileged
    from a1lib.workflows.params import load_section, model_config

    torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS and v.split("+")[0] != "kind_means":
            raise SystemExit(f"--variants: unknown {v!r}; have {', '.join(VARIANTS)}")
    if {"seen", "seen+true_plan"} & set(variants) and not args.policy:
        raise SystemExit("--variants seen needs --policy (an A1 policy directory)")
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else list(TASKS)
    cfg = load_section("privileged", PrivilegedTrainConfig, path=args.params)
    cfg.threads = args.threads
    cfg.steps = args.steps or cfg.steps
    horizon = model_config(args.params).chunk_size
    datasets = load_datasets(args.data, list(cfg.sources))
    normalizer = build_normalizer(datasets)
    state_dim = datasets[cfg.sources[0]].features[STATE]["shape"][0]
    out = Path(args.out)
    rows = {}
    override = {} if args.replan_every is None else {"replan_every": args.replan_every}
    for v in variants:
        t0 = time.time()  # training time includes the `seen` variants' pass over every frame
        if v.startswith("seen"):
            seen = SeenInputs(args.policy, feature_dim(state_dim), true_plan=v == "seen+true_plan")
            xs = iter([seen_features(seen, datasets[s]) for s in cfg.sources])  # train_privileged's order
            with features_of(lambda state, scene: next(xs)):
                policy, stats = train_privileged(datasets, cfg, normalizer, horizon, progress=False)
            t1 = time.time()
            if args.replan_every is not None:
                policy.settings = policy.settings.overridden(v, replan_every=args.replan_every)
            summary = evaluate_seen(SeenPolicy(policy, seen), tasks, args.episodes, args.seed_set)
        else:
            with features_of(variant_features(v, state_dim)):
                policy, stats = train_privileged(datasets, cfg, normalizer, horizon, progress=False)
                policy.save_pretrained(out / v / "policy")
                atomic_write_json(out / v / "policy" / "variant.json", {"variant": v})
                t1 = time.time()
                summary = evaluate({v: str(out / v / "policy")}, tasks, args.episodes, out=None, workers=1,
                                   override=override, gifs_per_task=0, progress=False,
                                   seed_set=args.seed_set)["rows"][v]
        o = summary["overall"]
        rows[v] = {"successes": o["successes"], "episodes": o["episodes"], "ci95": o["ci95"],
                   "per_task": {t: summary["per_task"][t]["successes"] for t in tasks},
                   "final_loss": stats["final_loss"], "train_s": t1 - t0, "eval_s": time.time() - t1}
        print(f"{v}: {o['successes']}/{o['episodes']} (train {t1 - t0:.0f} s, final loss {stats['final_loss']:.4f}, "
              f"evaluate {time.time() - t1:.0f} s)", flush=True)
        atomic_write_json(out / "results.json", {"seed_set": args.seed_set, "episodes_per_task": args.episodes,
                                                 "replan_every": args.replan_every, "policy": args.policy,
                                                 "rows": rows})
    print("\n| variant | " + " | ".join(tasks) + " | all |")
    print("|---|" + "---|" * (len(tasks) + 1))
    for v, r in rows.items():
        print(f"| {v} | " + " | ".join(str(r["per_task"][t]) for t in tasks) + f" | {r['successes']}/{r['episodes']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
