"""``a1 pretrain-vision``: teach the understanding expert's eyes where things are, before anything else.

The original A1 starts from a pretrained VLM (Qwen3-VL): its understanding expert can already see
and point. Ours starts from nothing, and a policy cannot act before its vision localises the
gripper and the objects to a pixel or two. So the first training stage trains only the conv trunk
and its grounding head (``a1lib.models.vision``) on every sim and lab frame: the per-pixel "where
is it" loss, with random-shift augmentation. It is cheap (no transformer, no latents: several
hundred frames a second on 2 cores) and it is where localisation is learned; ``a1 pretrain``
then starts from these weights (``TrainConfig.init_vision``) and, with ``freeze_vision``, keeps
the trunk fixed so the action loss cannot blur what it learned.

    OUT/vision.safetensors   the trained ``vision.*`` weights (A1Model parameter names)
    OUT/config.json          the A1Config they were made for
    OUT/metrics.json         final loss, samples, seconds, held-out localisation error per name
    OUT/checkpoint.pt        resume point (tensors only: torch.load(weights_only=True))
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch.utils.data import ConcatDataset, DataLoader, Dataset, WeightedRandomSampler
from tqdm.auto import tqdm

from a1lib.constants import IMAGE, STATE
from a1lib.io import atomic_save_safetensors, atomic_write
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.processor import A1Processor, grounding_targets, image_to_tensor
from a1lib.models.vision import ConvVision, grounding_loss, random_shift
from a1lib.progress import ProgressLines

WEIGHTS = "vision.safetensors"
PREFIX = "vision."


@dataclass
class VisionTrainConfig:
    """The ``vision`` section of params.yaml."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3  # one-cycle: warmup over 5% of the steps, then cosine down
    weight_decay: float = 0.01
    source_weights: dict[str, float] = field(default_factory=lambda: {"sim": 0.7, "lab": 0.3})
    num_workers: int = 1  # decoding frames in a second process overlaps with the convolutions
    checkpoint_every: int = 250
    seed: int = 0


class GroundingFrames(Dataset):
    """Every frame of a dataset as (image (3, S, S), instruction ids (L,), mask (L,), points (G, M, 2),
    valid (G, M)): what the grounding loss needs, and nothing else."""

    def __init__(self, ds: Any, processor: A1Processor):
        self.ds, self.processor = ds, processor
        self.scene_keys = [k for k in ds.numeric_keys if k.startswith("scene.")]
        self.has_state = STATE in ds.features

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        cols, c = self.ds.columns, self.processor.config
        scene = {k: cols[k][i] for k in self.scene_keys}
        points, valid = grounding_targets(c.grounding, scene, cols[STATE][i] if self.has_state else None)
        tokens, mask = self.processor.tokenize(self.ds.task_of(i))
        image = image_to_tensor(self.ds.get_frames(IMAGE, [i])[0], c.image_size)
        return image, tokens, mask, torch.from_numpy(points), torch.from_numpy(valid)


def pretrain_vision(config: A1Config, cfg: VisionTrainConfig, datasets: dict[str, Any], text_tokenizer: Any,
                    out: str | Path, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Trains ``ConvVision(config)`` on the grounding loss; writes OUT (see the module docstring)."""
    if config.vision != "conv" or not config.grounding:
        raise ValueError("pretrain_vision needs A1Config(vision='conv') with grounding names")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    processor = A1Processor(config, text_tokenizer)
    sources = [s for s, w in cfg.source_weights.items() if w > 0]
    parts = [GroundingFrames(datasets[s], processor) for s in sources]
    weights = torch.cat([torch.full((len(p),), cfg.source_weights[s] / len(p), dtype=torch.float64)
                         for s, p in zip(sources, parts)])
    torch.manual_seed(cfg.seed)
    vision = ConvVision(config).train()
    opt = torch.optim.AdamW(vision.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    start, ckpt = 0, out / "checkpoint.pt"
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        vision.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["step"])
        print(f"resuming vision pretraining from {ckpt} (step {start} of {cfg.steps})")
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + start)  # a resumed run draws fresh samples
    sampler = WeightedRandomSampler(weights, num_samples=max(cfg.steps - start, 1) * cfg.batch_size,
                                    replacement=True, generator=g)
    loader = DataLoader(ConcatDataset(parts), batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
    aug = torch.Generator().manual_seed(cfg.seed + 1 + start)
    t0, loss_value = time.time(), float("nan")
    bar = tqdm(total=cfg.steps, initial=start, desc="vision", unit="step", disable=not progress, mininterval=5)
    lines = ProgressLines("vision", cfg.steps, every=max(1, cfg.steps // 100), initial=start, enabled=not progress)
    step = start
    for image, tokens, mask, points, valid in loader:
        if config.shift_augment > 0:
            image, points = random_shift(image, points, config.shift_augment, aug)
        _, logits = vision(image, tokens, mask)
        loss = grounding_loss(logits, points, valid).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vision.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        loss_value = float(loss.detach())
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
        lines.update(1, samples=cfg.batch_size, values={"loss": loss_value})
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            state = {"model": vision.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "step": step}
            # torch.save to the temp path, as always here (the archive's inner folder is named after
            # it), not atomic_torch_save's open file: the checkpoint keeps its bytes
            atomic_write(ckpt, lambda tmp, state=state: torch.save(state, tmp))
        if step >= cfg.steps:
            break
    bar.close()
    lines.close(values={"loss": loss_value})
    seconds = time.time() - t0
    weights_out = {PREFIX + k: v.detach().contiguous() for k, v in vision.state_dict().items()}
    atomic_save_safetensors(weights_out, out / WEIGHTS, metadata={"format": "pt"})
    (out / "config.json").write_text(config.to_json())
    ckpt.unlink(missing_ok=True)
    return {"final_loss": loss_value, "steps": step, "samples_seen": (step - start) * cfg.batch_size,
            "seconds": seconds, "samples_per_s": (step - start) * cfg.batch_size / max(seconds, 1e-9)}


def load_vision(model: torch.nn.Module, directory: str | Path) -> None:
    """Loads OUT/vision.safetensors into ``model.vision``; the configs must agree on the vision part."""
    directory = Path(directory)
    if not (directory / WEIGHTS).is_file():
        raise FileNotFoundError(f"{directory / WEIGHTS}: not found (run `a1 pretrain-vision`)")
    saved = json.loads((directory / "config.json").read_text())
    now = json.loads(model.config.to_json())
    keys = ("image_size", "vision", "conv_channels", "grounding", "grounding_dim", "und_hidden", "vocab_size")
    diff = [k for k in keys if now[k] != saved.get(k)]
    if diff:
        raise ValueError(f"{directory}: vision weights made for another model config ({', '.join(diff)} differ)")
    state = {k[len(PREFIX):]: v for k, v in load_file(str(directory / WEIGHTS)).items()}
    model.vision.load_state_dict(state, strict=True)


def load_trained_vision(config: A1Config, directory: str | Path) -> ConvVision:
    """The ``ConvVision`` saved in ``directory`` (OUT of pretrain_vision), in eval mode."""
    vision = ConvVision(config).eval()
    vision.load_state_dict({k[len(PREFIX):]: v for k, v in load_file(str(Path(directory) / WEIGHTS)).items()})
    return vision


def freeze_vision(model: torch.nn.Module) -> None:
    """Stops the conv trunk and grounding head from training. The token projector, which maps the
    trunk's features into the understanding expert, stays trainable."""
    for name, p in model.vision.named_parameters():
        if not name.startswith("projector."):
            p.requires_grad_(False)
