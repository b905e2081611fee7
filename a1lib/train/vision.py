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
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import ConcatDataset, DataLoader, Dataset, WeightedRandomSampler
from tqdm.auto import tqdm

from a1lib.models.configuration_a1 import A1Config
from a1lib.models.processor import IMAGE, STATE, A1Processor, grounding_targets, image_to_tensor
from a1lib.models.vision import ConvVision, grounding_loss, random_shift

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
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            _atomic_torch_save({"model": vision.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "step": step}, ckpt)
        if step >= cfg.steps:
            break
    bar.close()
    seconds = time.time() - t0
    weights_out = {PREFIX + k: v.detach().contiguous() for k, v in vision.state_dict().items()}
    tmp = out / f".{WEIGHTS}.tmp-{os.getpid()}"
    save_file(weights_out, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / WEIGHTS)
    (out / "config.json").write_text(config.to_json())
    ckpt.unlink(missing_ok=True)
    return {"final_loss": loss_value, "steps": step, "samples_seen": (step - start) * cfg.batch_size,
            "seconds": seconds, "samples_per_s": (step - start) * cfg.batch_size / max(seconds, 1e-9)}


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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


def freeze_vision(model: torch.nn.Module) -> None:
    """Stops the conv trunk and grounding head from training. The token projector, which maps the
    trunk's features into the understanding expert, stays trainable."""
    for name, p in model.vision.named_parameters():
        if not name.startswith("projector."):
            p.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# ``a1 pretrain-vision``
# ---------------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--preset", default=None, help="preset (default: the file's `preset`)")
    parser.add_argument("--data", default="data", help="folder with sim/, lab/ (default: data)")
    parser.add_argument("--tokenizer", default="artifacts/tokenizer", help="tokenizers (default: artifacts/tokenizer)")
    parser.add_argument("--out", default="artifacts/vision", help="output folder (default: artifacts/vision)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if OUT/checkpoint.pt exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import argparse

    from a1lib.eval.perception import heldout_episodes, localisation_errors
    from a1lib.params import load_section
    from a1lib.sim import TASKS
    from a1lib.train import pipeline

    cfg = load_section("vision", VisionTrainConfig, path=args.params, preset=args.preset)
    config = pipeline.model_config_from_params(argparse.Namespace(params=args.params, preset=args.preset, model_set=[]))
    datasets = pipeline.load_datasets(args.data, [s for s, w in cfg.source_weights.items() if w > 0])
    text_tok, _ = pipeline.load_tokenizers(args.tokenizer)
    print(f"vision pretraining (conv trunk + grounding) on {cfg.source_weights} for {cfg.steps} steps -> {args.out}")
    metrics = pretrain_vision(config, cfg, datasets, text_tok, args.out, resume=not args.no_resume,
                              progress=not args.no_progress)
    vision = ConvVision(config).eval()
    vision.load_state_dict({k[len(PREFIX):]: v for k, v in load_file(str(Path(args.out) / WEIGHTS)).items()})
    records = heldout_episodes(list(TASKS), 2, config.image_size)
    metrics["localisation"] = localisation_errors(vision, A1Processor(config, text_tok), records)
    tmp = Path(args.out) / f".metrics.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(tmp, Path(args.out) / "metrics.json")
    per = metrics["localisation"]["per_name"]
    print(f"trained {metrics['samples_seen']} frames in {metrics['seconds']:.0f} s ({metrics['samples_per_s']:.0f}/s); "
          "held-out error px: " + ", ".join(f"{n} {per[n]['error_px']:.1f}" for n in ("gripper", "target", "goal") if n in per))
    return 0
