"""Does the grounding head send the part to the right bin? The goal keypoint's bin choice, by phase.

    python bench/bench_goal_choice.py --policy policies/a1-cpu
    python bench/bench_goal_choice.py --policy policies/a1-cpu --retrain-goal-head current --true-target

On the bin-sorting tasks (SortParts, SortRubbish, ExpressSorting) the goal is a bin, and a policy
whose goal keypoint lies nearest to the other bin carries the item there. This bench takes a
policy's frozen vision (``A1Model.vision``) through held-out lab expert episodes (validation seeds,
every second frame, as ``a1 perception``) and counts the frames whose goal keypoint is nearest to a
bin other than the true goal's, split by phase: the item held; not held with the gripper within
2 px of it (the gripper's grasp mark then covers the item's centre); the gripper elsewhere.

``--retrain-goal-head`` asks whether a different goal head on the *same* frozen features would choose
better, in minutes instead of a vision pretraining: it trains a fresh goal head (goal loss only, the
pipeline's sim and lab frames that show a bin, random shift as in ``a1 pretrain-vision``) and counts
again with it. ``current`` is the design of ``ConvVision`` (the pixel features FiLM-ed by the target
map's average feature, a 1x1 conv); ``low_level`` also gives it the trunk's first features (F4)
and each cell's mean colour, in the target's summary and per pixel, and a two-layer head.
``--true-target`` pools the target's summary at the true target (``scene.target``) instead of the
target map, at training and test: whether a wrong bin follows from a wrong target.

Measured (docs/ladder.md; the old world's shipped policy, whose renderer drew a held part under the
gripper): its own head 50/254 SortParts frames in the wrong bin (held 25/122, gripper over the part
10/39, elsewhere 15/93); a fresh ``current`` head 54/254; ``low_level`` 48/254; told the true target
39/254 and 36/254, the "elsewhere" frames down to 8 and 4 of 93 but the held and covered ones
unchanged: the part's colour was under the gripper's grasp mark. With the held part drawn over the
gripper (the current renderer), the shipped policy's own head: 11/254 (held 0/122, 8/39, 3/93).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

BIN_TASKS = ("SortParts", "SortRubbish", "ExpressSorting")
PHASES = ("held", "gripper over it", "elsewhere")
NEAR_PX = 2.0  # "gripper over it": the gripper's centre within this many px of the target


class FrozenVision:
    """A policy's vision, frozen; ``__call__(image, tokens, mask)`` -> (F4 (B, c2, h, w), pixel features
    (B, gd, h, w), mean colour per cell (B, 3, h, w), all heat-map logits (B, G, h, w)), read with
    forward hooks so the forward pass is the model's own."""

    def __init__(self, vision):
        self.vision, self.cache = vision.eval(), {}
        for p in vision.parameters():
            p.requires_grad_(False)
        vision.stem.register_forward_hook(lambda m, i, o: self.cache.__setitem__("f4", o))
        vision.pixel.register_forward_hook(lambda m, i, o: self.cache.__setitem__("feat", o))

    def __call__(self, image, tokens, mask):
        with torch.no_grad():
            _, logits = self.vision(image, tokens, mask)
        feat = self.cache["feat"]
        return self.cache["f4"], feat, F.adaptive_avg_pool2d(image, feat.shape[-2:]), logits


def make_goal_head(kind: str, gd: int, c_low: int):
    """A fresh goal head: (features, F4, colour, target logits (B, h, w)) -> goal logits (B, 1, h, w)."""

    class GoalHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.low = kind == "low_level"
            width = gd + (c_low + 3 if self.low else 0)
            self.film = nn.Linear(width, 2 * width)  # the target's summary -> (scale, shift), as ConvVision
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
            self.head = (nn.Sequential(nn.Conv2d(width, gd, 1), nn.SiLU(), nn.Conv2d(gd, 1, 1)) if self.low
                         else nn.Conv2d(width, 1, 1))

        def forward(self, feat, f4, colour, target_logits):
            x = torch.cat([feat, f4, colour], 1) if self.low else feat  # (B, width, h, w)
            where = target_logits.flatten(1).softmax(-1)  # (B, h*w)
            what = torch.einsum("bp,bdp->bd", where, x.flatten(2))  # (B, width)
            scale, shift = self.film(what).chunk(2, -1)
            return self.head(x * (1 + scale[:, :, None, None]) + shift[:, :, None, None])

    if kind not in ("current", "low_level"):
        raise SystemExit(f"--retrain-goal-head: unknown {kind!r}; have current, low_level")
    return GoalHead()


def true_target_logits(points, valid, h: int, w: int):
    """Logits whose softmax is the true target splatted on the grid (points (B, 1, M, 2), valid (B, 1, M))."""
    from a1lib.models.vision import splat_targets
    m = splat_targets(points, valid, h, w)[:, 0]
    return torch.where(m > 0, m.clamp(min=1e-6).log(), torch.full_like(m, -30.0))


def train_goal_head(frozen: FrozenVision, processor, kind: str, true_target: bool, data: str, steps: int,
                    batch_size: int, seed: int):
    from torch.utils.data import ConcatDataset, DataLoader, WeightedRandomSampler

    from a1lib.models.vision import grounding_loss, random_shift
    from a1lib.sim.world import KIND_NAMES
    from a1lib.train.inputs import load_datasets
    from a1lib.train.vision import GroundingFrames, VisionTrainConfig

    config = processor.config
    names = list(config.grounding)
    g_target, g_goal = names.index("target"), names.index("goal")
    cfg = VisionTrainConfig()  # the vision stage's source mix and learning rate
    datasets = load_datasets(data, [s for s, w in cfg.source_weights.items() if w > 0])
    parts, weights = [], []
    for source, ds in datasets.items():
        shows_bin = torch.from_numpy((np.asarray(ds.columns["scene.kind"]) == KIND_NAMES.index("bin")).any(-1))
        if shows_bin.any():
            parts.append(GroundingFrames(ds, processor))
            weights.append(shows_bin.double() * cfg.source_weights[source] / shows_bin.sum())
    if not parts:
        raise SystemExit(f"{data}: no frame shows a bin (the bench needs a bin-sorting task's data)")
    torch.manual_seed(seed)
    c_low = frozen.vision.stem[-1][0].out_channels
    head = make_goal_head(kind, config.grounding_dim, c_low).train()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.05)
    g = torch.Generator().manual_seed(seed)
    sampler = WeightedRandomSampler(torch.cat(weights), num_samples=steps * batch_size, replacement=True, generator=g)
    loader = DataLoader(ConcatDataset(parts), batch_size=batch_size, sampler=sampler, drop_last=True)
    aug, loss_value, t0 = torch.Generator().manual_seed(seed + 1), float("nan"), time.time()
    for step, (image, tokens, mask, points, valid) in enumerate(loader, 1):
        if config.shift_augment > 0:
            image, points = random_shift(image, points, config.shift_augment, aug)
        f4, feat, colour, logits = frozen(image, tokens, mask)
        target = (true_target_logits(points[:, g_target:g_target + 1], valid[:, g_target:g_target + 1],
                                     *feat.shape[-2:])
                  if true_target else logits[:, g_target])
        has_goal = valid[:, g_goal].any(-1)
        if not has_goal.any():
            continue
        loss = grounding_loss(head(feat, f4, colour, target), points[:, g_goal:g_goal + 1],
                              valid[:, g_goal:g_goal + 1])[has_goal].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if step % max(1, steps // 5) == 0:
            print(f"goal head ({kind}): step {step}/{steps} | loss {loss_value:.3f} | {time.time() - t0:.0f} s",
                  flush=True)
    return head.eval(), loss_value


def count_wrong_bins(frozen: FrozenVision, processor, tasks, episodes: int, head=None, true_target: bool = False):
    """{task: {phase: [frames with the goal nearest the wrong bin, frames]}} on held-out lab episodes."""
    from a1lib.eval.perception import _scene_at, heldout_episodes
    from a1lib.models.image_tokenizer import images_to_tensor
    from a1lib.models.processor import grounding_targets
    from a1lib.models.vision import keypoints
    from a1lib.sim.world import KIND_NAMES

    names = list(processor.config.grounding)
    g_goal = names.index("goal")
    size = processor.config.image_size
    counts = {}
    for task in tasks:
        counts[task] = {p: [0, 0] for p in PHASES}
        for rec in heldout_episodes([task], episodes, size):
            frames = np.arange(0, len(rec), 2)
            scenes = [_scene_at(rec, int(t)) for t in frames]
            plans = [grounding_targets(("target", "goal"), sc, None) for sc in scenes]
            tokens, mask = processor.tokenize(rec.instruction)
            n = len(frames)
            f4, feat, colour, logits = frozen(images_to_tensor(rec.images[frames]), tokens[None].expand(n, -1),
                                              mask[None].expand(n, -1))
            if head is not None:
                points = torch.from_numpy(np.stack([p for p, _ in plans]))[:, :1]
                valid = torch.from_numpy(np.stack([v for _, v in plans]))[:, :1]
                target = (true_target_logits(points, valid, *feat.shape[-2:]) if true_target
                          else logits[:, names.index("target")])
                with torch.no_grad():
                    goal = keypoints(head(feat, f4, colour, target))[0][:, 0]
            else:
                goal = keypoints(logits)[0][:, g_goal]
            for j, (sc, (points, valid)) in enumerate(zip(scenes, plans)):
                if not (valid[0, 0] and valid[1, 0]):
                    continue
                kinds = np.asarray(sc["scene.kind"]).reshape(-1)
                pose = np.asarray(sc["scene.pose"], np.float32).reshape(len(kinds), 3)
                bins = pose[kinds == KIND_NAMES.index("bin"), :2] + np.asarray(sc["scene.camera"], np.float32)
                wrong = (np.linalg.norm(bins - points[1, 0], axis=-1).argmin()
                         != np.linalg.norm(bins - goal[j].numpy(), axis=-1).argmin())
                held = int(np.asarray(sc["scene.held"]).reshape(-1)[0]) >= 0
                target = int(np.asarray(sc["scene.target"]).reshape(-1)[0])
                near = np.linalg.norm(pose[target, :2] - rec.states[frames[j]][:2]) * size < NEAR_PX
                phase = "held" if held else ("gripper over it" if near else "elsewhere")
                counts[task][phase][0] += int(wrong)
                counts[task][phase][1] += 1
    return counts


def table(counts: dict) -> str:
    lines = ["| task | " + " | ".join(PHASES) + " | all |", "|---" * (len(PHASES) + 2) + "|"]
    for task, by in counts.items():
        wrong, total = sum(w for w, _ in by.values()), sum(n for _, n in by.values())
        cells = [f"{w}/{n}" for w, n in by.values()] + [f"{w}/{n} ({w / max(n, 1):.0%})" for w, n in [(wrong, total)]]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", default="policies/a1-cpu", help="A1 policy directory whose vision is measured")
    p.add_argument("--tasks", default=",".join(BIN_TASKS), help="comma-separated bin-sorting tasks")
    p.add_argument("--episodes", type=int, default=6, help="held-out lab episodes per task")
    p.add_argument("--retrain-goal-head", default=None, choices=("current", "low_level"),
                   help="train a fresh goal head on the frozen features and count with it")
    p.add_argument("--true-target", action="store_true", help="with --retrain-goal-head: the true target's summary")
    p.add_argument("--data", default="data", help="with --retrain-goal-head: the pipeline's data (sim/, lab/)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="also write OUT/results.json")
    args = p.parse_args(argv)
    from a1lib.io import atomic_write_json
    from a1lib.models.policy_a1 import A1Policy

    torch.set_num_threads(args.threads)
    if args.true_target and not args.retrain_goal_head:
        raise SystemExit("--true-target needs --retrain-goal-head (the policy's own head reads its own target map)")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(BIN_TASKS))
    if unknown:
        raise SystemExit(f"--tasks: {', '.join(unknown)} not a bin-sorting task; have {', '.join(BIN_TASKS)}")
    policy = A1Policy.from_pretrained(args.policy)
    if getattr(policy.model.vision, "goal_head", None) is None:
        raise SystemExit(f"{args.policy}: its vision has no target/goal grounding head")
    frozen, head, loss, t0 = FrozenVision(policy.model.vision), None, None, time.time()
    if args.retrain_goal_head:
        head, loss = train_goal_head(frozen, policy.processor, args.retrain_goal_head, args.true_target, args.data,
                                     args.steps, args.batch_size, args.seed)
    counts = count_wrong_bins(frozen, policy.processor, tasks, args.episodes, head, args.true_target)
    which = (f"a fresh `{args.retrain_goal_head}` goal head ({args.steps} steps, final loss {loss:.3f}"
             f"{', true target' if args.true_target else ''})" if head is not None else "the policy's own goal head")
    print(f"goal keypoint nearest the wrong bin, {args.policy}, {which}; {args.episodes} held-out lab episodes per "
          f"task, every second frame ({time.time() - t0:.0f} s):\n" + table(counts))
    if args.out:
        atomic_write_json(Path(args.out) / "results.json", {
            "policy": args.policy, "goal_head": args.retrain_goal_head or "policy", "true_target": args.true_target,
            "steps": args.steps if head is not None else 0, "final_loss": loss, "episodes": args.episodes,
            "counts": counts})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
