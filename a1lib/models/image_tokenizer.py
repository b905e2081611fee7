"""The frozen image tokenizer: a small VAE that turns a frame into a continuous latent grid.

InternVLA-A1 never predicts pixels. Its generation expert predicts the *latent* of a future frame,
as produced by a frozen, pretrained image tokenizer (Cosmos-Tokenizer-CI8x8: a continuous
tokenizer that downsamples 8x in space, 256x256x3 -> 16x32x32). We have no such tokenizer for our
tiny tabletop world, so we train a stand-in once and then freeze it:

    image (N, 3, 64, 64) in [0, 1]  --encoder-->  latent (N, 4, 8, 8)  --decoder-->  image

* It is a ``diffusers.AutoencoderKL``: four encoder/decoder levels, each halving (doubling) the
  resolution except the last, so 2**3 = 8x down, exactly like CI8x8. The latent is continuous
  (a diagonal Gaussian posterior). We use the posterior MEAN to encode, so the same frame always
  gives the same latent, like a deterministic tokenizer.
* Why AutoencoderKL and not AutoencoderTiny: AutoencoderTiny (TAESD) is a distilled *decoder
  approximation* of an existing VAE with a clamped, quantisation-friendly latent and no posterior;
  trained from scratch it is just a plain autoencoder. AutoencoderKL is the real thing the
  original's tokenizer corresponds to: a continuous latent regularised by a small KL term towards
  N(0, 1), which keeps the latent space smooth, and that is what a regression target (the
  generation loss is an MSE on latents) wants. Its channel counts and depth are configurable, so it
  can be made small enough to train on 2 CPU cores in minutes.
* After training we measure the mean and std of the training latents and store them in the VAE's
  own config (``shift_factor``, ``scaling_factor``, the diffusers convention): ``encode`` returns
  ``(mean - shift) * scale`` so the latents the generation expert regresses have ~zero mean and
  ~unit std, whatever the VAE happened to learn.
* ``save``/``load`` use ``save_pretrained`` with safetensors (no pickle) plus a small JSON with our
  training config; the whole directory is written atomically.

The model lives here; its training loop is on the train floor (``a1lib.train.tokenizers.train_image_tokenizer``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL

from a1lib.io import atomic_directory

META_FILE = "image_tokenizer.json"  # our config + latent statistics, next to diffusers' config.json


@dataclass
class ImageTokenizerConfig:
    image_size: int = 64  # frames are image_size x image_size RGB
    latent_channels: int = 4  # C of the latent (N, C, image_size/8, image_size/8)
    block_out_channels: tuple[int, ...] = (16, 32, 64, 64)  # one per level; n levels -> 2**(n-1) down
    layers_per_block: int = 1  # resnet blocks per encoder level (the decoder uses one more)
    norm_num_groups: int = 8  # GroupNorm groups; must divide every entry of block_out_channels
    mid_attention: bool = True  # self-attention in the bottleneck (cheap at 8x8)
    train_steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3  # peak AdamW lr; linear warmup then cosine decay to 10% (a1lib.train.schedule)
    kl_weight: float = 1e-4  # weight of the per-element KL(posterior || N(0, 1))
    object_weight: float = 4.0  # reconstruction weight of object pixels is 1 + this (objects are few pixels)
    seed: int = 0
    heldout_fraction: float = 0.1  # fraction of EPISODES held out for PSNR
    max_eval_frames: int = 512  # cap on frames used for PSNR / latent statistics
    device: str = "cpu"  # where training runs ("cuda" for the gpu preset); the result lives on the CPU

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    def validate(self) -> None:
        if len(self.block_out_channels) < 1:
            raise ValueError("ImageTokenizerConfig.block_out_channels must not be empty")
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ValueError(
                f"ImageTokenizerConfig: norm_num_groups={self.norm_num_groups} must divide every "
                f"block_out_channels entry; {bad} do not"
            )
        if self.image_size % self.downsample:
            raise ValueError(
                f"ImageTokenizerConfig: image_size={self.image_size} must be divisible by the "
                f"downsampling factor {self.downsample} (= 2**(len(block_out_channels)-1))"
            )
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"ImageTokenizerConfig.heldout_fraction must be in [0, 1), got {self.heldout_fraction}")


def build_vae(cfg: ImageTokenizerConfig) -> AutoencoderKL:
    """A freshly initialised AutoencoderKL with ``len(block_out_channels)`` levels (seeded)."""
    cfg.validate()
    levels = len(cfg.block_out_channels)
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        return AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels,
            block_out_channels=tuple(cfg.block_out_channels),
            layers_per_block=cfg.layers_per_block,
            latent_channels=cfg.latent_channels,
            norm_num_groups=cfg.norm_num_groups,
            sample_size=cfg.image_size,
            mid_block_add_attention=cfg.mid_attention,
            scaling_factor=1.0,  # replaced by the measured value after training
            shift_factor=0.0,
        )


def images_to_tensor(images: Any) -> torch.Tensor:
    """uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1] -> float32 (N, 3, H, W) in [0, 1]."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim != 4:
        raise ValueError(f"images must be a batch: uint8 (N,H,W,3) or float (N,3,H,W); got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        if x.shape[-1] != 3:
            raise ValueError(f"uint8 images must be (N,H,W,3) RGB; got shape {tuple(x.shape)}")
        return x.permute(0, 3, 1, 2).float() / 255.0
    if not torch.is_floating_point(x):
        raise ValueError(f"images must be uint8 or floating point; got {x.dtype}")
    if x.shape[1] != 3:
        raise ValueError(f"float images must be (N,3,H,W) channel-first; got shape {tuple(x.shape)}")
    if x.numel() and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
        raise ValueError(f"float images must lie in [0, 1]; got range [{x.min():.3f}, {x.max():.3f}]")
    return x.float()


def object_masks(pose: np.ndarray, kind: np.ndarray, camera: np.ndarray | None, size: int,
                 radius_px: float = 4.0) -> np.ndarray:
    """(N, size, size) bool: discs of ``radius_px`` around every object centre (scene.pose (N, K, 3),
    scene.kind (N, K) with -1 = empty slot, scene.camera (N, 2) table-unit offsets or None). The
    pixels where the small things a policy needs are: the reconstruction loss weights them up and
    the object PSNR is measured on them."""
    pose = np.asarray(pose, np.float32)
    cam = np.zeros((len(pose), 2), np.float32) if camera is None else np.asarray(camera, np.float32)
    centres = (pose[:, :, :2] + cam[:, None, :]) * size  # (N, K, 2) continuous pixel coordinates
    grid = np.arange(size, dtype=np.float32) + 0.5
    dx = grid[None, None, None, :] - centres[:, :, 0, None, None]  # (N, K, 1, W)
    dy = grid[None, None, :, None] - centres[:, :, 1, None, None]  # (N, K, H, 1)
    inside = dx * dx + dy * dy <= radius_px * radius_px  # (N, K, H, W)
    return (inside & (np.asarray(kind) >= 0)[:, :, None, None]).any(1)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean over images of the per-image PSNR in dB, images in [0, 1] (N, 3, H, W); with ``mask``
    (N, H, W) bool, over the masked pixels only (images without any are skipped)."""
    err = ((a.float() - b.float()) ** 2).mean(1)  # (N, H, W)
    if mask is None:
        mse = err.flatten(1).mean(1)
    else:
        m = mask.float()
        keep = m.flatten(1).sum(1) > 0
        mse = ((err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1))[keep]
    return float((10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())


class ImageTokenizer:
    """A frozen-able VAE with a fixed latent normalisation: pixels <-> normalised latents."""

    def __init__(self, vae: AutoencoderKL, config: ImageTokenizerConfig):
        self.vae = vae
        self.config = config

    # -- the latent normalisation lives in the diffusers config (saved with the weights) --------
    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def shift_factor(self) -> float:
        return float(self.vae.config.shift_factor or 0.0)

    def set_latent_stats(self, shift: float, scale: float) -> None:
        self.vae.register_to_config(shift_factor=float(shift), scaling_factor=float(scale))

    def latent_shape(self, image_size: int | None = None) -> tuple[int, int, int]:
        """(C, h, w) of the latent of a square image_size frame."""
        s = (image_size or self.config.image_size) // self.config.downsample
        return (self.config.latent_channels, s, s)

    # -- encode / decode -------------------------------------------------------------------------
    @torch.no_grad()
    def encode_raw(self, images: Any, batch_size: int = 256) -> torch.Tensor:
        """Posterior mean WITHOUT normalisation: (N, C, h, w)."""
        x = images_to_tensor(images)  # (N, 3, H, W) in [0, 1]
        d = self.config.downsample
        if x.shape[-1] % d or x.shape[-2] % d:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by the tokenizer's {d}x downsampling")
        was_training = self.vae.training
        self.vae.eval()
        device = next(self.vae.parameters()).device
        out = [self.vae.encode(chunk.to(device) * 2 - 1).latent_dist.mean.cpu() for chunk in x.split(batch_size)]
        self.vae.train(was_training)
        if not out:
            return torch.zeros((0, *self.latent_shape(x.shape[-1])))
        return torch.cat(out)

    def encode(self, images: Any, batch_size: int = 256) -> torch.Tensor:
        """Images -> normalised latents float32 (N, C, H/8, W/8); deterministic (posterior mean)."""
        return (self.encode_raw(images, batch_size) - self.shift_factor) * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Normalised latents (N, C, h, w) -> float images (N, 3, 8h, 8w) in [0, 1]."""
        z = torch.as_tensor(latents).float()
        if z.ndim != 4 or z.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"latents must be (N, {self.config.latent_channels}, h, w); got shape {tuple(z.shape)}"
            )
        z = z / self.scaling_factor + self.shift_factor
        was_training = self.vae.training
        self.vae.eval()
        device = next(self.vae.parameters()).device
        out = [self.vae.decode(chunk.to(device)).sample.cpu() for chunk in z.split(batch_size)]
        self.vae.train(was_training)
        if not out:
            return torch.zeros((0, 3, z.shape[2] * self.config.downsample, z.shape[3] * self.config.downsample))
        return ((torch.cat(out) + 1) / 2).clamp(0, 1)

    def freeze(self) -> "ImageTokenizer":
        """Eval mode, no gradients: the tokenizer is a fixed function from now on."""
        self.vae.eval()
        self.vae.requires_grad_(False)
        return self

    # -- identity --------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 of the weights and the latent normalisation: names a latent cache's tokenizer."""
        h = hashlib.sha256()
        h.update(json.dumps({"shift": self.shift_factor, "scale": self.scaling_factor}).encode())
        for name, tensor in sorted(self.vae.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    # -- persistence -----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``diffusion_pytorch_model.safetensors`` + META_FILE atomically."""
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            self.vae.save_pretrained(tmp, safe_serialization=True)
            meta = {
                "config": dataclasses.asdict(self.config),
                "shift_factor": self.shift_factor,
                "scaling_factor": self.scaling_factor,
                "fingerprint": self.fingerprint(),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "ImageTokenizer":
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(
                f"{meta_path}: not found; {directory} is not a saved image tokenizer (run `a1 tokenizer train`)"
            )
        try:
            meta = json.loads(meta_path.read_text())
            config = ImageTokenizerConfig(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}
            )
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{meta_path}: malformed image tokenizer metadata: {e}") from e
        # low_cpu_mem_usage=False: diffusers' default (True) needs `accelerate`, which we do not
        # install; without it diffusers falls back to False and warns on every load. The VAE is a
        # few MB, so the plain path (init, then load the state dict) is what we want anyway.
        vae = AutoencoderKL.from_pretrained(directory, use_safetensors=True, low_cpu_mem_usage=False)
        tok = cls(vae, config)
        if meta.get("fingerprint") and tok.fingerprint() != meta["fingerprint"]:
            raise ValueError(
                f"{directory}: weights do not match the fingerprint in {META_FILE} "
                f"({tok.fingerprint()} != {meta['fingerprint']}); the directory is corrupt or was edited"
            )
        return tok.freeze()

