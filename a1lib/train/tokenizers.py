"""Training for `a1 tokenizer train`: the image tokenizer (VAE) and the text tokenizer, once, then frozen.

Reads frames from all three sources (sim, lab, human) so that one tokenizer covers every domain,
as the original's Cosmos tokenizer does (``load_frames``), trains the VAE (``train_image_tokenizer``:
the model, ``ImageTokenizer``, is in ``a1lib.models.image_tokenizer``), builds the word-level text
tokenizer from every instruction plus the scene QA strings (``a1lib.models.text_tokenizer``), and
the workflow writes (atomically, as one directory)::

    artifacts/tokenizer/image/            diffusers AutoencoderKL (safetensors) + image_tokenizer.json
    artifacts/tokenizer/text/tokenizer.json
    artifacts/tokenizer/metrics.json      held-out PSNR (overall and per source), timings, vocab size
    artifacts/tokenizer/summary.json      the few numbers to compare (``tokenizer_summary``; ``dvc metrics show FILE``)

Settings: the ``tokenizer`` section of params.yaml (``TokenizerConfig`` below), e.g.::

    tokenizer:
      max_train_frames: 8192
      text_vocab_size: 1024
      image: {train_steps: 400, batch_size: 32, block_out_channels: [16, 32, 64, 64]}
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from a1lib.constants import IMAGE, SOURCES
from a1lib.data import LeRobotDataset
from a1lib.models.image_tokenizer import (
    ImageTokenizer,
    ImageTokenizerConfig,
    build_vae,
    images_to_tensor,
    object_masks,
    psnr,
)
from a1lib.progress import ProgressLines
from a1lib.train.schedule import warmup_cosine


@dataclass
class TokenizerConfig:
    image: ImageTokenizerConfig = field(default_factory=ImageTokenizerConfig)
    text_vocab_size: int = 1024
    max_train_frames: int = 8192  # frames sampled (without replacement) across the sources
    sources: tuple[str, ...] = SOURCES
    seed: int = 0  # frame sampling


def load_frames(
    data_root: Path, sources: tuple[str, ...], max_frames: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """Frames uint8 (N,H,W,3), global episode id (N,), source id (N,), all dataset instructions, and
    the object masks (N,H,W) bool (``image_tokenizer.object_masks``; None if a dataset has no scene).

    When the sources hold more than ``max_frames`` frames, each source contributes in proportion
    to its size (at least one frame per source).
    """

    datasets = []
    for source in sources:
        root = data_root / source
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset not found (run `a1 data generate` first)")
        datasets.append(LeRobotDataset(root))
    sizes = np.array([len(ds) for ds in datasets])
    total = int(sizes.sum())
    if total == 0:
        raise ValueError(f"{data_root}: the datasets {list(sources)} hold no frames")
    quota = sizes if total <= max_frames else np.maximum(1, np.floor(sizes * max_frames / total)).astype(int)
    rng = np.random.default_rng(seed)
    frames, episode_ids, source_ids, tasks, masks = [], [], [], [], []
    episode_offset = 0
    for s, (ds, n) in enumerate(zip(datasets, quota)):
        episode_of_frame = np.full(len(ds), -1, np.int64)
        for e, ep in enumerate(ds.episodes):
            episode_of_frame[ep["dataset_from_index"] : ep["dataset_to_index"]] = episode_offset + e
        episode_offset += len(ds.episodes)
        idx = np.sort(rng.choice(len(ds), size=int(min(n, len(ds))), replace=False))
        frames.append(np.asarray(ds.get_frames(IMAGE, idx)))
        cols = ds.columns
        if masks is not None and "scene.pose" in cols and "scene.kind" in cols:
            camera = cols["scene.camera"][idx] if "scene.camera" in cols else None
            masks.append(object_masks(cols["scene.pose"][idx], cols["scene.kind"][idx], camera, frames[-1].shape[1]))
        else:
            masks = None
        episode_ids.append(episode_of_frame[idx])
        source_ids.append(np.full(len(idx), s, np.int64))
        tasks += list(ds.tasks)
    return (np.concatenate(frames), np.concatenate(episode_ids), np.concatenate(source_ids), tasks,
            None if masks is None else np.concatenate(masks))


def split_heldout(
    n_frames: int, episode_index: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, heldout_idx): whole episodes go to one side (frames of an episode are alike)."""
    groups = np.arange(n_frames) if episode_index is None else np.asarray(episode_index)
    if len(groups) != n_frames:
        raise ValueError(f"episode_index has {len(groups)} entries for {n_frames} frames")
    unique = np.unique(groups)
    n_held = int(round(fraction * len(unique)))
    if fraction > 0 and len(unique) >= 2:
        n_held = min(max(n_held, 1), len(unique) - 1)
    rng = np.random.default_rng(seed)
    held_groups = rng.permutation(unique)[:n_held]
    is_held = np.isin(groups, held_groups)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def train_image_tokenizer(
    frames: np.ndarray, cfg: ImageTokenizerConfig, episode_index: np.ndarray | None = None,
    masks: np.ndarray | None = None, progress: bool = True,
) -> tuple[ImageTokenizer, dict[str, Any]]:
    """Train the VAE on uint8 frames (N, H, W, 3); returns the frozen tokenizer and its metrics.

    ``episode_index`` (N,) groups frames by episode so that the held-out PSNR is measured on
    whole unseen episodes (frames inside one episode are near duplicates). Without it every frame
    is its own group. ``masks`` (N, H, W) bool marks object pixels (``object_masks``): their
    reconstruction error weighs 1 + ``cfg.object_weight``, and the PSNR on them is reported.
    ``progress``: a tqdm bar; False: plain progress lines (``a1lib.progress``) for logs.
    """
    cfg.validate()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (N,H,W,3); got {frames.dtype} {frames.shape}")
    if frames.shape[1] != cfg.image_size or frames.shape[2] != cfg.image_size:
        raise ValueError(f"frames are {frames.shape[1]}x{frames.shape[2]} but image_size={cfg.image_size}")
    train_idx, held_idx = split_heldout(len(frames), episode_index, cfg.heldout_fraction, cfg.seed)
    if len(train_idx) == 0:
        raise ValueError("no training frames left after the held-out split")

    tok = ImageTokenizer(build_vae(cfg), cfg)
    vae = tok.vae
    rng = np.random.default_rng(cfg.seed)
    eval_held = (held_idx if len(held_idx) <= cfg.max_eval_frames
                 else np.sort(rng.choice(held_idx, cfg.max_eval_frames, replace=False)))
    eval_train = (train_idx if len(train_idx) <= cfg.max_eval_frames
                  else np.sort(rng.choice(train_idx, cfg.max_eval_frames, replace=False)))

    def reconstruction_psnr(idx: np.ndarray, objects: bool = False) -> float | None:
        if len(idx) == 0 or (objects and masks is None):
            return None
        x = images_to_tensor(frames[idx])
        return psnr(tok.decode(tok.encode(x)), x, torch.from_numpy(masks[idx]) if objects else None)

    psnr_untrained = reconstruction_psnr(eval_held)

    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    warmup = max(1, cfg.train_steps // 20)  # linear warmup over 5% of the steps, then cosine down to 10% of the peak

    gen = torch.Generator().manual_seed(cfg.seed)  # CPU generator: the same draws on any device
    vae.to(cfg.device).train()
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.train_steps), desc="image tokenizer", unit="step", disable=not progress)
    lines = ProgressLines("image tokenizer", cfg.train_steps, every=max(1, cfg.train_steps // 100),
                          enabled=not progress)
    loss_value = rec_value = float("nan")
    for step in bar:
        pick = torch.randint(len(train_idx), (cfg.batch_size,), generator=gen).numpy()
        x = (images_to_tensor(frames[train_idx[pick]]) * 2 - 1).to(cfg.device)  # (B, 3, H, W) in [-1, 1]
        posterior = vae.encode(x).latent_dist
        z = posterior.sample(generator=gen)  # (B, C, h, w)
        recon = vae.decode(z).sample  # (B, 3, H, W)
        if masks is None:
            rec = ((recon - x) ** 2).mean()
        else:  # object pixels count 1 + object_weight times: small things are not averaged away
            w = 1.0 + cfg.object_weight * torch.from_numpy(masks[train_idx[pick]]).to(cfg.device, x.dtype)[:, None]
            rec = (((recon - x) ** 2) * w).mean() / w.mean()
        kl = 0.5 * (posterior.mean**2 + posterior.var - 1.0 - posterior.logvar).mean()
        loss = rec + cfg.kl_weight * kl
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, cfg.train_steps, warmup, floor=0.1, peak=cfg.lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        loss_value, rec_value = float(loss.detach()), float(rec.detach())
        elapsed = time.perf_counter() - t0
        bar.set_postfix(loss=f"{loss_value:.4f}", samples_s=f"{(step + 1) * cfg.batch_size / elapsed:.0f}")
        lines.update(1, samples=cfg.batch_size, values={"loss": loss_value})
    train_seconds = time.perf_counter() - t0
    vae.to("cpu")
    tok.freeze()

    # Latent normalisation measured on (a sample of) the training frames.
    raw = tok.encode_raw(frames[eval_train])  # (n, C, h, w)
    shift = float(raw.mean())
    std = float(raw.std())
    tok.set_latent_stats(shift, 1.0 / max(std, 1e-6))

    metrics = {
        "psnr_heldout_db": reconstruction_psnr(eval_held),
        "psnr_heldout_untrained_db": psnr_untrained,
        "psnr_objects_heldout_db": reconstruction_psnr(eval_held, objects=True),
        "psnr_train_db": reconstruction_psnr(eval_train),
        "train_seconds": train_seconds,
        "train_steps": cfg.train_steps,
        "samples_per_second": cfg.train_steps * cfg.batch_size / max(train_seconds, 1e-9),
        "final_loss": loss_value,
        "final_reconstruction_mse": rec_value,
        "n_train_frames": int(len(train_idx)),
        "n_heldout_frames": int(len(held_idx)),
        "n_parameters": int(sum(p.numel() for p in vae.parameters())),
        "latent_shape": list(tok.latent_shape()),
        "latent_raw_mean": shift,
        "latent_raw_std": std,
        "scaling_factor": tok.scaling_factor,
        "shift_factor": tok.shift_factor,
        "fingerprint": tok.fingerprint(),
    }
    return tok, metrics


SUMMARY_KEYS = ("psnr_heldout_db", "psnr_objects_heldout_db", "train_seconds")


def tokenizer_summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The few numbers to compare across runs (``summary.json``; ``dvc metrics show FILE`` reads it) from the
    tokenizer's ``metrics.json``: held-out PSNR over all pixels and over the object pixels, and the
    image tokenizer's training time. Missing or non-finite values are left out."""
    return {k: float(metrics[k]) for k in SUMMARY_KEYS
            if isinstance(metrics.get(k), (int, float)) and not isinstance(metrics[k], bool)
            and math.isfinite(metrics[k])}
