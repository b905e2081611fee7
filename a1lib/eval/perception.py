"""What the model sees and imagines, measured on held-out episodes (the learning figures after success).

* **Localisation**: the understanding expert's grounding keypoints against the true positions of
  the gripper, the target and the goal and of every single object of a kind, in pixels, beside
  the error of always predicting the mean position (a model that does not see scores about that).
* **Imagined futures** (dynamic tasks): the generation expert's predicted latent of frame t+delta
  against the tokenizer's latent of the true frame, beside the baseline "the future equals now"
  (the latent of frame t); and the PSNR of the decoded prediction on the object pixels, beside
  the same PSNR of frame t.

Held-out episodes are recorded by the scripted expert in the lab domain on *validation* seeds
(``a1lib.data.seeds.validation_seed``): never trained on, and not the closed-loop evaluation seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from a1lib.data.seeds import validation_seed
from a1lib.eval.stats import numbers
from a1lib.models.image_tokenizer import images_to_tensor, object_masks, psnr
from a1lib.models.processor import grounding_targets
from a1lib.models.vision import keypoints
from a1lib.sim.record import EpisodeRecord, record_expert_episode

DOMAIN = "lab"
SUMMARY_NAMES = ("gripper", "target", "goal")  # the grounding names a policy acts on


def heldout_episodes(tasks: list[str], episodes: int, image_size: int = 64) -> list[EpisodeRecord]:
    """Expert episodes of ``tasks`` in the lab domain on validation seeds 0..episodes-1."""
    return [record_expert_episode(t, DOMAIN, validation_seed(t, i), image_size) for t in tasks for i in range(episodes)]


def _scene_at(rec: EpisodeRecord, t: int) -> dict[str, np.ndarray]:
    return {k: v[t] for k, v in rec.scene.items()}


@torch.inference_mode()
def localisation_errors(vision: Any, processor: Any, records: list[EpisodeRecord], every: int = 2) -> dict[str, Any]:
    """Keypoint error in pixels of ``vision`` (A1Model.vision) per grounding name (names with exactly
    one instance in view), against the mean-position baseline; every ``every``-th frame of each
    record. ``processor`` (A1Processor) tokenizes the instructions and holds the config."""
    config = processor.config
    if not config.grounding:
        return {}
    size = config.image_size
    pred, true, valid = [], [], []
    for rec in records:
        frames = np.arange(0, len(rec), every)
        image = images_to_tensor(rec.images[frames])  # (n, 3, S, S)
        tokens, mask = processor.tokenize(rec.instruction)
        _, logits = vision(image, tokens[None].expand(len(frames), -1), mask[None].expand(len(frames), -1))
        kp, _ = keypoints(logits)  # (n, G, 2)
        for j, t in enumerate(frames):
            points, ok = grounding_targets(config.grounding, _scene_at(rec, int(t)), rec.states[t])
            single = ok.sum(1) == 1  # (G,): one instance of that name in view
            true.append(np.where(single[:, None], points[np.arange(len(points)), ok.argmax(1)], np.nan))
            pred.append(kp[j].numpy())
            valid.append(single)
    pred, true, valid = np.stack(pred), np.stack(true), np.stack(valid)  # (N, G, 2), (N, G, 2), (N, G)
    out: dict[str, Any] = {"frames": int(len(pred)), "unit": "pixels at the model's image size", "per_name": {}}
    for g, name in enumerate(config.grounding):
        m = valid[:, g]
        if m.sum() < 5:
            continue
        err = np.linalg.norm(pred[m, g] - true[m, g], axis=-1) * size
        base = np.linalg.norm(true[m, g] - true[m, g].mean(0), axis=-1) * size
        out["per_name"][name] = {"error_px": float(err.mean()), "median_px": float(np.median(err)),
                                 "mean_baseline_px": float(base.mean()), "frames": int(m.sum())}
    return out


@torch.inference_mode()
def token_probe_errors(policy: Any, train: list[EpisodeRecord], test: list[EpisodeRecord],
                       names: tuple[str, ...] = ("gripper", "target", "goal"), ridge: float = 1.0) -> dict[str, Any]:
    """A linear probe on the understanding expert's image tokens: ridge regression from the flattened
    tokens of a frame to each name's (x, y), fitted on ``train`` frames, scored on ``test`` frames in
    pixels beside the mean baseline. It asks whether the *tokens* (what the transformer reads) carry
    where things are, whatever the grounding head does; it works for ``vision="patch"`` too."""
    model, config = policy.model, policy.config

    def table(records):
        feats, points, ok = [], [], []
        for rec in records:
            tokens, _ = model.vision(images_to_tensor(rec.images))
            feats.append(tokens.flatten(1).numpy())
            for t in range(len(rec)):
                p, v = grounding_targets(names, _scene_at(rec, t), rec.states[t])
                points.append(p[np.arange(len(names)), v.argmax(1)])
                ok.append(v.sum(1) == 1)
        return np.concatenate(feats), np.stack(points), np.stack(ok)

    x_tr, y_tr, ok_tr = table(train)
    x_te, y_te, ok_te = table(test)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
    out = {}
    for k, name in enumerate(names):
        m_tr, m_te = ok_tr[:, k], ok_te[:, k]
        if m_tr.sum() < 10 or m_te.sum() < 5:
            continue
        X = x_tr[m_tr]
        w = np.linalg.solve(X.T @ X + ridge * len(X) * np.eye(X.shape[1]),
                            X.T @ (y_tr[m_tr, k] - y_tr[m_tr, k].mean(0)))
        pred = x_te[m_te] @ w + y_tr[m_tr, k].mean(0)
        err = np.linalg.norm(pred - y_te[m_te, k], axis=-1) * config.image_size
        base = np.linalg.norm(y_te[m_te, k] - y_tr[m_tr, k].mean(0), axis=-1) * config.image_size
        out[name] = {"error_px": float(err.mean()), "mean_baseline_px": float(base.mean()),
                     "test_frames": int(m_te.sum())}
    return out


@torch.inference_mode()
def future_errors(policy: Any, records: list[EpisodeRecord], every: int = 2) -> dict[str, Any]:
    """Imagined future latent vs the true one and vs "the future equals now", per task, plus the
    PSNR on object pixels of the decoded prediction and of frame t (dB)."""
    model, config, tok, delta = policy.model, policy.config, policy.processor.image_tokenizer, policy.delta
    if config.generation != "full" or tok is None:
        return {}
    per_task: dict[str, dict[str, list]] = {}
    for rec in records:
        T = len(rec)
        frames = np.arange(0, T - delta, every)
        if not len(frames):
            continue
        lat = tok.encode(images_to_tensor(rec.images))  # (T, C, h, w)
        past = np.maximum(frames - delta, 0)
        batch = {k: v.expand(len(frames), *v.shape[1:]) for k, v in policy.processor.observation_batch(
            {"observation.image": rec.images[0], "observation.state": rec.states[0], "task": rec.instruction}).items()}
        batch = dict(batch, image=images_to_tensor(rec.images[frames]),
                     latent_hist=torch.stack([lat[past], lat[frames]], 1))
        imagined = model.imagine(batch)["latent"]  # (n, C, h, w)
        later = frames + delta
        target, now = lat[later], lat[frames]
        camera = rec.scene.get("scene.camera")
        masks = torch.from_numpy(object_masks(rec.scene["scene.pose"][later], rec.scene["scene.kind"][later],
                                              None if camera is None else camera[later], config.image_size))
        truth = images_to_tensor(rec.images[later])
        d = per_task.setdefault(rec.task, {"mse": [], "copy": [], "psnr": [], "psnr_copy": []})
        d["mse"] += ((imagined - target) ** 2).flatten(1).mean(1).tolist()
        d["copy"] += ((now - target) ** 2).flatten(1).mean(1).tolist()
        d["psnr"].append(psnr(tok.decode(imagined), truth, masks))
        d["psnr_copy"].append(psnr(images_to_tensor(rec.images[frames]), truth, masks))
    out = {}
    for task, d in per_task.items():
        mse, copy = float(np.mean(d["mse"])), float(np.mean(d["copy"]))
        out[task] = {"latent_mse": mse, "latent_mse_copy": copy, "reduction_vs_copy": 1.0 - mse / max(copy, 1e-12),
                     "psnr_objects_db": float(np.mean(d["psnr"])),
                     "psnr_objects_copy_db": float(np.mean(d["psnr_copy"])),
                     "frames": len(d["mse"])}
    return out


def perception_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers to compare across runs (``summary.json``; ``dvc metrics show FILE`` reads it) from what
    ``a1 perception`` writes to ``metrics.json``: the localisation error in pixels of the gripper,
    the target and the goal (``localisation_px.gripper``), and per dynamic task the reduction of the
    imagined future's latent MSE against "the future equals now" (``futures_mse_reduction.<task>``)."""
    per_name = metrics.get("localisation", {}).get("per_name", {})
    return numbers({
        "localisation_px": {n: per_name[n]["error_px"] for n in SUMMARY_NAMES if n in per_name},
        "futures_mse_reduction": {t: v["reduction_vs_copy"] for t, v in metrics.get("futures", {}).items()},
    })


def format_report(metrics: dict[str, Any]) -> str:
    lines = []
    loc = metrics.get("localisation", {}).get("per_name", {})
    if loc:
        lines.append(f"{'grounding name':<18}{'error px':>10}{'mean baseline':>15}{'frames':>8}")
        for name, v in loc.items():
            lines.append(f"{name:<18}{v['error_px']:>10.2f}{v['mean_baseline_px']:>15.2f}{v['frames']:>8}")
    fut = metrics.get("futures", {})
    if fut:
        lines.append(f"{'task':<20}{'latent MSE':>11}{'copy':>8}{'reduction':>11}{'PSNR obj':>10}{'copy':>8}")
        for task, v in fut.items():
            lines.append(f"{task:<20}{v['latent_mse']:>11.4f}{v['latent_mse_copy']:>8.4f}{v['reduction_vs_copy']:>10.0%}"
                         f"{v['psnr_objects_db']:>10.2f}{v['psnr_objects_copy_db']:>8.2f}")
    return "\n".join(lines)
