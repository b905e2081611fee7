"""A1Config: every size and switch of the A1 Mixture-of-Transformers in one dataclass.

The original InternVLA-A1 (3B) has three Qwen3 experts of 28 layers each: understanding (hidden
2048), generation and action (hidden 1024). Ours keeps the structure and shrinks the sizes:

* all experts share ``num_layers``, ``num_heads``, ``num_kv_heads`` and ``head_dim`` (they meet in
  one joint attention at every layer); each has its own hidden and MLP width.
* ``generation`` picks the variant: ``"full"`` (A1), ``"none"`` (pi0-style, two experts, no
  middle tokens) or ``"no_future_loss"`` (history tokens flow through the generation expert, but
  nothing is trained to predict the future).
* ``lambda_und = 0`` switches the understanding (scene question answering) loss off.
* ``vision`` picks the understanding expert's image encoder: ``"conv"`` (a small conv trunk with a
  grounding head: a heat-map per name in ``grounding``, whose soft-argmax keypoints the action
  expert reads) or ``"patch"`` (a ViT patch embedding, for comparison). See vision.py.

Presets: ``A1Config.preset("tiny" | "ci" | "cpu" | "gpu", **overrides)``: the one place model sizes
are written (params.yaml only names the preset; "tiny" is for unit tests).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from a1lib import configs
from a1lib.sim.world import KIND_NAMES

GENERATION_MODES = ("full", "none", "no_future_loss")
VISION_MODES = ("conv", "patch")
# What the grounding head learns to find: the gripper, the object being acted on, where it is to go,
# and every object kind of the simulator (channel 3 + kind index; see processor.grounding_targets).
GROUNDING_NAMES = ("gripper", "target", "goal") + tuple(KIND_NAMES)


@dataclass
class A1Config:
    # --- observation -------------------------------------------------------------------------
    image_size: int = 64  # square RGB images, (B, 3, image_size, image_size) in [0, 1]
    vision: str = "conv"  # "conv" (conv trunk + grounding) | "patch" (ViT patch embedding)
    patch_size: int = 16  # "patch": 64 / 16 -> 4x4 = 16 image tokens ("conv" is always 16x down)
    conv_channels: tuple[int, int, int] = (32, 64, 128)  # conv trunk widths at 1/2, 1/4, 1/8 resolution
    grounding: tuple[str, ...] = GROUNDING_NAMES  # heat-map names ("conv" only; () = no grounding head)
    grounding_dim: int = 64  # width of the pixel features the heat-maps are read from
    keypoints_in_state: bool = True  # the action expert's state token also reads the keypoints
    state_to_actions: bool = True  # every action token also reads the state inputs (not only via attention)
    shift_augment: int = 4  # training: random image shift of up to this many px (0 = off)
    vocab_size: int = 512  # text tokenizer vocabulary (a separate helper trains it)
    max_text_len: int = 16  # longest instruction / question / answer in tokens
    # --- the shared transformer geometry -------------------------------------------------------
    num_layers: int = 2  # 2, not 3 or 4: batch-1 chunk latency is op-count bound (bench_model.py)
    num_heads: int = 4
    num_kv_heads: int = 2  # grouped-query attention, like the original (16 q / 8 kv heads)
    head_dim: int = 32
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    # --- expert widths ------------------------------------------------------------------------
    und_hidden: int = 160
    und_mlp: int = 480
    gen_hidden: int = 128
    gen_mlp: int = 384
    act_hidden: int = 128
    act_mlp: int = 384
    # --- generation expert: tokenizer latents in, predicted future latent out ----------------
    generation: str = "full"  # "full" | "none" | "no_future_loss"
    latent_channels: int = 4  # C of the frozen image tokenizer (8x down: 64x64 -> 4x8x8)
    latent_size: int = 8  # h = w of the latent
    gen_patch: int = 2  # 2x2 stride-2 conv: 8x8 -> 4x4 = 16 tokens per frame
    gen_lift_channels: int = 32  # width after the 1x1 lifting conv
    future_residual: bool = True  # predict latent(t+delta) - latent(t): the future = now + imagined motion
    # --- action expert: flow matching --------------------------------------------------------
    state_dim: int = 6  # the simulator's proprioception (a1lib.sim.STATE_DIM)
    action_dim: int = 5
    chunk_size: int = 10  # H, actions per chunk
    num_inference_steps: int = 10  # Euler steps from t=1 (noise) to t=0 (actions)
    time_min_period: float = 4e-3  # sinusoidal time embedding periods (pi0 values)
    time_max_period: float = 4.0
    time_beta_alpha: float = 1.5  # t ~ Beta(1.5, 1) * 0.999 + 0.001
    # --- losses --------------------------------------------------------------------------------
    lambda_gen: float = 0.01  # as the original
    lambda_und: float = 0.1  # 0 switches the understanding loss (and its pass) off
    qa_fraction: float = 0.25  # share of each batch that also gets a QA pass (it costs a second und pass)
    lambda_ground: float = 1.0  # grounding (where is each named thing) loss; needs vision="conv"
    # --- init ------------------------------------------------------------------------------------
    init_std: float = 0.02
    seed: int = 0  # parameter initialisation seed

    def __post_init__(self) -> None:
        errors = []
        if self.generation not in GENERATION_MODES:
            errors.append(f"generation={self.generation!r} not in {GENERATION_MODES}")
        if self.vision not in VISION_MODES:
            errors.append(f"vision={self.vision!r} not in {VISION_MODES}")
        if self.vision == "patch" and self.image_size % self.patch_size:
            errors.append(f"image_size {self.image_size} not divisible by patch_size {self.patch_size}")
        if self.vision == "conv" and self.image_size % 16:
            errors.append(f"image_size {self.image_size} not divisible by 16 (the conv trunk's stride)")
        if self.vision == "conv" and (self.und_hidden % 8 or any(c % 8 for c in self.conv_channels)):
            errors.append("conv trunk widths (conv_channels, und_hidden) must be multiples of 8 (GroupNorm)")
        if self.vision == "patch" and self.grounding:
            self.grounding = ()  # the patch embedding has no grounding head
        if not 0.0 <= self.qa_fraction <= 1.0:
            errors.append(f"qa_fraction must be in [0, 1], got {self.qa_fraction}")
        if self.latent_size % self.gen_patch:
            errors.append(f"latent_size {self.latent_size} not divisible by gen_patch {self.gen_patch}")
        if self.num_heads % self.num_kv_heads:
            errors.append(f"num_heads {self.num_heads} not divisible by num_kv_heads {self.num_kv_heads}")
        if self.head_dim % 2:
            errors.append(f"head_dim {self.head_dim} must be even (RoPE)")
        for name in ("num_layers", "vocab_size", "max_text_len", "state_dim", "action_dim",
                     "chunk_size", "num_inference_steps", "und_hidden", "act_hidden"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lambda_gen < 0 or self.lambda_und < 0 or self.lambda_ground < 0:
            errors.append("lambda_gen, lambda_und and lambda_ground must be >= 0")
        self.conv_channels = tuple(int(c) for c in self.conv_channels)
        self.grounding = tuple(str(g) for g in self.grounding)
        if errors:
            raise ValueError("A1Config: " + "; ".join(errors))

    # --- derived sizes ------------------------------------------------------------------------
    @property
    def has_generation_expert(self) -> bool:
        return self.generation != "none"

    @property
    def num_image_tokens(self) -> int:
        stride = 16 if self.vision == "conv" else self.patch_size
        return (self.image_size // stride) ** 2

    @property
    def num_grounding(self) -> int:
        return len(self.grounding)


    @property
    def state_input_dim(self) -> int:
        """Inputs of the state token: proprioception, then 3 numbers per grounding name (keypoint x, y
        relative to the gripper's, presence) when ``keypoints_in_state``."""
        return self.state_dim + (3 * self.num_grounding if self.keypoints_in_state else 0)

    @property
    def gen_tokens_per_frame(self) -> int:
        return (self.latent_size // self.gen_patch) ** 2

    @property
    def num_gen_tokens(self) -> int:
        """Middle tokens: two frames (t - delta, t); 0 without a generation expert."""
        return 2 * self.gen_tokens_per_frame if self.has_generation_expert else 0

    def max_tokens(self) -> int:
        """Tokens per sample of the action pass at full instruction length."""
        return self.num_image_tokens + self.max_text_len + self.num_gen_tokens + 1 + self.chunk_size

    # --- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "A1Config") -> "A1Config":
        """Strict: an unknown key is an error naming it (a typo never silently becomes a default)."""
        return configs.from_dict(cls, data, where=where)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "A1Config":
        if name not in PRESETS:
            raise ValueError(f"unknown A1Config preset {name!r}; have {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides}, where=f"A1Config.preset({name!r})")


_TINY: dict[str, Any] = dict(
    image_size=32, patch_size=16, vocab_size=64, max_text_len=8,
    num_layers=2, num_heads=2, num_kv_heads=1, head_dim=16,
    und_hidden=32, und_mlp=64, gen_hidden=32, gen_mlp=64, act_hidden=32, act_mlp=64,
    latent_channels=4, latent_size=4, gen_patch=2, gen_lift_channels=8,
    state_dim=8, action_dim=5, chunk_size=4, num_inference_steps=4,
    conv_channels=(8, 16, 16), grounding_dim=8,
)

PRESETS: dict[str, dict[str, Any]] = {
    # Tiny: unit tests (seconds).
    "tiny": _TINY,
    # The ci pipeline (`bash scripts/run.sh ci`): tiny widths on the simulator's 64 px frames, 6-d
    # state, chunks of 10.
    "ci": {**_TINY, "image_size": 64, "vocab_size": 512, "max_text_len": 16, "latent_size": 8, "state_dim": 6,
           "chunk_size": 10},
    # The workbench default: pretrains on 2 CPU cores (sized by bench/bench_model.py).
    "cpu": dict(state_dim=6, action_dim=5),
    # A GPU-sized model: 128 px images, 8 layers, width 512.
    "gpu": dict(
        image_size=128, patch_size=16, vocab_size=2048, max_text_len=32,
        num_layers=8, num_heads=8, num_kv_heads=4, head_dim=64,
        und_hidden=512, und_mlp=1536, gen_hidden=384, gen_mlp=1152, act_hidden=384, act_mlp=1152,
        latent_channels=4, latent_size=16, gen_patch=4, gen_lift_channels=64,
        state_dim=6, action_dim=5, chunk_size=10, num_inference_steps=10,
    ),
}
