"""A1Policy: a trained A1Model packaged as an ``a1lib.policy_protocol.Policy``.

A model alone cannot act: it needs the state/action normaliser it was trained with, the text
tokenizer that produced its instruction ids, the frozen image tokenizer that produced its latents,
and the future offset ``delta`` its history frames were taken at. A1Policy bundles all of them and
saves them together in ONE directory, so a checkpoint is always complete:

    policy_dir/
        policy.json          inference settings (replan_every, delta, noise_scale), chunk size,
                             special tokens, format version
        config.json          A1Config                       (A1Model.save_pretrained)
        model.safetensors    the weights                    (A1Model.save_pretrained)
        normalizer.json      state / action stats           (Normalizer.to_dict)
        tokenizer.json       the text tokenizer             (tokenizers' own format)
        image_tokenizer/     the frozen VAE                 (ImageTokenizer.save; absent when generation="none")

Safetensors + JSON only (no pickle). The directory is written next to its destination and swapped
in, so a crash never leaves half a policy. ``from_pretrained`` checks that every file is there and
that the parts agree (dimensions, vocabulary, latent shape) and says what is wrong if not.

``infer(obs)`` -> ``{"actions": (H, A) float32 in real units}`` plus, with ``imagine=True``,
``"imagined"``: the decoded predicted frame t+delta, uint8 (H, W, 3).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from a1lib.constants import ACTION, ACTION_RANGE, IMAGE, IMAGE_PAST, STATE
from a1lib.data import Normalizer
from a1lib.io import atomic_directory
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.image_tokenizer import ImageTokenizer
from a1lib.models.modeling_a1 import CONFIG_NAME, WEIGHTS_NAME, A1Model
from a1lib.models.processor import A1Processor
from a1lib.models.text_tokenizer import load_text_tokenizer
from a1lib.policy_protocol import InferenceSettings, binarize_actions

POLICY_FILE = "policy.json"
NORMALIZER_FILE = "normalizer.json"
TOKENIZER_FILE = "tokenizer.json"
IMAGE_TOKENIZER_DIR = "image_tokenizer"
FORMAT = "a1lib.A1Policy/1"
SPECIAL_TOKENS = ("pad_token", "eos_token", "bos_token", "unk_token", "sep_token")


class CheckpointError(ValueError):
    """A policy directory is missing, incomplete, or its parts disagree."""


class A1Policy:
    """A1Model + processor (normaliser, text tokenizer, image tokenizer) + its inference settings, as a Policy."""

    def __init__(self, model: A1Model, processor: A1Processor, settings: InferenceSettings,
                 imagine: bool = False, seed: int = 0, num_steps: int | None = None, device: str | torch.device = "cpu",
                 binary_action_dims: tuple[int, ...] = ()):
        try:
            self.settings = settings.checked(model.config.chunk_size)
        except ValueError as e:
            raise ValueError(f"A1Policy: {e}") from e
        if processor.config is not model.config and processor.config.to_dict() != model.config.to_dict():
            raise CheckpointError("A1Policy: the processor's A1Config differs from the model's")
        self.model = model.eval()
        self.processor = processor
        self.config: A1Config = model.config
        self.imagine = bool(imagine)
        self.seed = int(seed)
        self.num_steps = num_steps
        self.binary_action_dims = tuple(int(d) for d in binary_action_dims)  # on/off commands: executed by sign
        self.device = torch.device(device)
        self.model.to(self.device)
        if processor.image_tokenizer is not None:
            processor.image_tokenizer.vae.to(self.device)
        processor.check_normalizer()
        self.reset()
        c = self.config
        self.metadata = {"policy": "a1", "action_dim": c.action_dim, "horizon": c.chunk_size,
                         "delta": self.delta, "generation": c.generation,
                         "image_shape": [c.image_size, c.image_size, 3], "camera_keys": [IMAGE, IMAGE_PAST],
                         "state_dim": c.state_dim, "action_range": list(ACTION_RANGE),
                         "binary_action_dims": list(self.binary_action_dims), "noise_scale": self.noise_scale,
                         "replan_every": self.settings.replan_every}

    @property
    def delta(self) -> int:
        return self.settings.delta

    @property
    def noise_scale(self) -> float:
        """The flow starts from noise_scale * N(0, I): 1 samples the learned distribution, 0 starts every
        chunk from zero (with one Euler step, exactly the predicted mean action chunk)."""
        return self.settings.noise_scale

    # -- the Policy interface ---------------------------------------------------------------------
    def reset(self) -> None:
        """Restart the noise stream: the same observations give the same actions after a reset."""
        self._generator = torch.Generator().manual_seed(self.seed)

    @torch.inference_mode()
    def infer(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        c = self.config
        batch = {k: v.to(self.device) for k, v in self.processor.observation_batch(obs).items()}
        # drawn even at 0: one stream
        noise = self.noise_scale * torch.randn(1, c.chunk_size, c.action_dim, generator=self._generator)
        noise = noise.to(self.device)
        # Batch-1 matrices (widths ~100, ~10 rows) are too small to split over cores: on CPU one
        # thread is faster. Restored afterwards, so the rest of the process keeps its setting.
        threads = torch.get_num_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(1)
        try:
            actions = self.model.sample_actions(batch, num_steps=self.num_steps, noise=noise)  # (1, H, A)
        finally:
            torch.set_num_threads(threads)
        chunk = np.clip(self.processor.unnormalize_actions(actions)[0], *ACTION_RANGE)  # the action space's box
        out = {"actions": binarize_actions(chunk, self.binary_action_dims)}
        if self.imagine and c.generation == "full" and self.processor.image_tokenizer is not None:
            pixels = self.model.imagine(batch, decode=self.processor.image_tokenizer.decode)["pixels"]  # (1, 3, H, W)
            out["imagined"] = (pixels[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
        return out

    # -- persistence ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            self.model.save_pretrained(tmp)
            tok = self.processor.text_tokenizer
            tok.backend_tokenizer.save(str(tmp / TOKENIZER_FILE))
            special = {k: getattr(tok, k, None) for k in SPECIAL_TOKENS}
            (tmp / NORMALIZER_FILE).write_text(json.dumps(self.processor.normalizer.to_dict(), indent=1) + "\n")
            if self.processor.image_tokenizer is not None:
                self.processor.image_tokenizer.save(tmp / IMAGE_TOKENIZER_DIR)
            meta = {"format": FORMAT, "replan_every": self.settings.replan_every, "delta": self.delta,
                    "chunk_size": self.config.chunk_size,
                    "special_tokens": {k: v for k, v in special.items() if isinstance(v, str)},
                    "qa_seed": self.processor.seed, "binary_action_dims": list(self.binary_action_dims),
                    "noise_scale": self.noise_scale}
            (tmp / POLICY_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu",
                        imagine: bool = False, seed: int = 0, num_steps: int | None = None,
                        override: dict[str, Any] | None = None) -> "A1Policy":
        """The policy with the inference settings it was exported with (policy.json), but for ``override``
        ({"replan_every": 5, ...}: explicit, and printed). A policy.json older than a setting means: no
        replanning (the whole chunk), noise scale 1.0."""
        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"{directory}: not a directory (expected an A1Policy saved by save_pretrained)")
        need = [POLICY_FILE, CONFIG_NAME, WEIGHTS_NAME, NORMALIZER_FILE, TOKENIZER_FILE]
        missing = [n for n in need if not (directory / n).is_file()]
        if missing:
            raise CheckpointError(f"{directory}: incomplete A1Policy checkpoint, missing {missing}")
        try:
            meta = json.loads((directory / POLICY_FILE).read_text())
            norm = json.loads((directory / NORMALIZER_FILE).read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{directory}: malformed JSON: {e}") from e
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{directory / POLICY_FILE}: format {meta.get('format')!r}, expected {FORMAT!r}")
        try:
            model = A1Model.from_pretrained(directory)
        except (ValueError, FileNotFoundError) as e:
            raise CheckpointError(str(e)) from e
        config = model.config
        if int(meta.get("chunk_size", -1)) != config.chunk_size:
            raise CheckpointError(f"{directory}: policy.json chunk_size {meta.get('chunk_size')} "
                                  f"!= config.json chunk_size {config.chunk_size}")

        normalizer = Normalizer.from_dict(norm)
        text_tok = load_text_tokenizer(directory / TOKENIZER_FILE, meta.get("special_tokens"))
        image_tok = None
        if config.has_generation_expert:
            it_dir = directory / IMAGE_TOKENIZER_DIR
            if not it_dir.is_dir():
                raise CheckpointError(f"{directory}: incomplete A1Policy checkpoint, missing {IMAGE_TOKENIZER_DIR}/ "
                                      f"(the model has a generation expert)")

            image_tok = ImageTokenizer.load(it_dir)
            got = tuple(image_tok.latent_shape(config.image_size))
            want = (config.latent_channels, config.latent_size, config.latent_size)
            if got != want:
                raise CheckpointError(f"{it_dir}: image tokenizer makes latents {got} from {config.image_size}px "
                                      f"frames, config.json expects {want}")
        try:
            processor = A1Processor(config, text_tok, normalizer, image_tok, seed=int(meta.get("qa_seed", 0)))
            processor.check_normalizer()
        except ValueError as e:
            raise CheckpointError(f"{directory}: {e}") from e
        replan = meta.get("replan_every")
        settings = InferenceSettings(replan_every=None if replan is None else int(replan), delta=int(meta["delta"]),
                                     noise_scale=float(meta.get("noise_scale", 1.0)))
        if override:
            settings = settings.overridden(str(directory), **override)
        try:
            return cls(model, processor, settings, imagine=imagine, seed=seed, num_steps=num_steps, device=device,
                       binary_action_dims=tuple(meta.get("binary_action_dims", ())))
        except ValueError as e:
            raise CheckpointError(f"{directory / POLICY_FILE}: {e}") from e

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (f"A1Policy(params={n / 1e6:.2f}M, generation={self.config.generation!r}, "
                f"chunk={self.config.chunk_size}, {self.settings}, device={self.device})")


__all__ = ["A1Policy", "CheckpointError", "STATE", "ACTION"]
