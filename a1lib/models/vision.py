"""The understanding expert's eyes: image -> image tokens, and where each named thing is.

Two encoders, one switch (``A1Config.vision``):

* ``"conv"`` (default): a small convolutional trunk, stride-2 3x3 convolutions with GroupNorm, as
  "Early convolutions help transformers see better" (Xiao et al. 2021) and every small-data
  visuomotor policy (robomimic, Diffusion Policy, LeRobot) use. Trained from scratch, a ViT-style
  patchify stem cannot localise 2-3 px objects at our budget; a conv trunk can.

      image (B, 3, S, S)
        -> conv s2 -> (B, c1, S/2)  -> conv s2 -> (B, c2, S/4) -> conv s1 -> F4 (B, c2, S/4)
        -> conv s2 -> F8 (B, c3, S/8) -> conv s2 -> F16 (B, d, S/16)
      tokens = F16 flattened + 2-D sin-cos position -> MLP projector    (B, (S/16)^2, und_hidden)

* ``"patch"``: the ViT patch embedding (a conv with kernel = stride = patch_size), kept for comparison.

**Grounding** (conv only): a heat-map per grounding name (``A1Config.grounding``: "gripper",
"target" = the object being acted on, "goal" = where it is to go, and every object kind of the
simulator) over the S/4 grid, read by a 1x1 conv from per-pixel features made of F4 plus the
upsampled deeper maps (so a choice that needs the whole scene, like "target", sees all of it).
Two additions give the maps the scene-wide reasoning some names need: a small self-attention
"context" layer over the 1/8-resolution features (which item is the leftmost one not yet in a
bin? which bit of debris is nearest the pan?), and the instruction, which modulates the features
(FiLM: a scale and shift per channel from the mean of its token embeddings), so "the tomato" and
"the lemon" give different target maps. "goal" is read in a second step, from features modulated
by what the target map points at (its heat-map-weighted average feature): where a part goes
depends on its colour, so the goal head is told which part it is. Trained with a
per-pixel "where is it" target (cross-entropy against the position splatted bilinearly on the
grid; several objects of one kind share the mass) and a presence target (is it in view).
Soft-argmax gives a keypoint per name to sub-cell precision (``keypoints``); the action expert
reads them, relative to the gripper's keypoint, in its state token.

Measured and rejected: reading "target" and "goal" from query tokens of the understanding
expert (matched against the pixel features after its pass over image and text). At the same
budget they localised worse than the conv head (SortParts target 14 px against 5 px), and they
tie the state token to the end of the prefix pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from a1lib.models.configuration_a1 import A1Config


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding (grid*grid, dim): half the channels encode the row,
    half the column (as MAE / ViT-2D)."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs dim % 4 == 0, got {dim}")
    pos = torch.arange(grid, dtype=torch.float32)
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    ang = pos[:, None] * omega[None, :]  # (grid, dim/4)
    emb = torch.cat([ang.sin(), ang.cos()], 1)  # (grid, dim/2)
    rows = emb[:, None, :].expand(grid, grid, -1)
    cols = emb[None, :, :].expand(grid, grid, -1)
    return torch.cat([rows, cols], -1).reshape(grid * grid, dim)


def _conv(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())


class PatchVision(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> (B, n_patches, und_hidden): patch embedding (a conv with
    stride = kernel = patch), learned 2-D positions, then a 2-layer MLP projector (as VLMs do)."""

    def __init__(self, config: A1Config):
        super().__init__()
        width = config.und_hidden
        self.patch_embed = nn.Conv2d(3, width, config.patch_size, stride=config.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_image_tokens, width))
        self.projector = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, config.und_hidden))

    def forward(self, image: torch.Tensor, lang_tokens=None, lang_mask=None) -> tuple[torch.Tensor, None]:
        x = self.patch_embed(image * 2.0 - 1.0)  # (B, W, H/p, W/p), pixels centred on 0
        x = x.flatten(2).transpose(1, 2) + self.pos_embed  # (B, n_patches, W)
        return self.projector(x), None


class ConvVision(nn.Module):
    """The conv trunk and the grounding head (see the module docstring). forward(image, lang_tokens,
    lang_mask) -> (tokens (B, n, und_hidden), grounding logits (B, G, S/4, S/4) or None)."""

    def __init__(self, config: A1Config):
        super().__init__()
        c1, c2, c3 = config.conv_channels
        d = config.und_hidden
        self.stem = nn.Sequential(_conv(3, c1, 2), _conv(c1, c2, 2), _conv(c2, c2, 1))  # -> F4
        self.down8 = _conv(c2, c3, 2)  # -> F8
        self.down16 = nn.Sequential(nn.Conv2d(c3, d, 3, stride=2, padding=1), nn.GroupNorm(8, d))  # -> F16
        grid = config.image_size // 16
        self.register_buffer("pos_embed", sincos_2d(grid, d)[None], persistent=False)
        self.projector = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        if config.grounding:
            gd = config.grounding_dim
            self.lateral4 = nn.Conv2d(c2, gd, 1)
            self.lateral8 = nn.Conv2d(c3, gd, 1)
            self.lateral16 = nn.Conv2d(d, gd, 1)
            self.register_buffer("context_pos", sincos_2d(config.image_size // 8, gd)[None], persistent=False)
            self.context = nn.TransformerEncoder(nn.TransformerEncoderLayer(
                gd, nhead=4, dim_feedforward=2 * gd, dropout=0.0, batch_first=True, norm_first=True), num_layers=2,
                enable_nested_tensor=False)
            self.film = nn.Embedding(config.vocab_size, 2 * gd)  # instruction -> (scale, shift) per channel
            nn.init.zeros_(self.film.weight)  # starts as the identity
            self.pixel = nn.Sequential(nn.SiLU(), nn.Conv2d(gd, gd, 3, padding=1), nn.SiLU())
            self.heatmap = nn.Conv2d(gd, len(config.grounding), 1)
            names = list(config.grounding)
            self.target, self.goal = (names.index(n) if n in names else -1 for n in ("target", "goal"))
            if self.target >= 0 and self.goal >= 0:
                self.goal_film = nn.Linear(gd, 2 * gd)  # what the target is -> (scale, shift) for the goal map
                nn.init.zeros_(self.goal_film.weight)
                nn.init.zeros_(self.goal_film.bias)
                self.goal_head = nn.Conv2d(gd, 1, 1)

    def forward(self, image: torch.Tensor, lang_tokens: torch.Tensor | None = None,
                lang_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        f4 = self.stem(image * 2.0 - 1.0)  # (B, c2, S/4, S/4)
        f8 = self.down8(f4)  # (B, c3, S/8, S/8)
        f16 = self.down16(f8)  # (B, d, S/16, S/16)
        tokens = self.projector(f16.flatten(2).transpose(1, 2) + self.pos_embed)  # (B, n, d)
        if not hasattr(self, "heatmap"):
            return tokens, None
        size = f4.shape[-2:]
        c8 = self.lateral8(f8)  # (B, gd, S/8, S/8)
        B, gd, h8, w8 = c8.shape
        c8 = self.context(c8.flatten(2).transpose(1, 2) + self.context_pos).transpose(1, 2).reshape(B, gd, h8, w8)
        x = (self.lateral4(f4) + F.interpolate(c8, size=size, mode="nearest")
             + F.interpolate(self.lateral16(f16), size=size, mode="nearest"))  # (B, gd, S/4, S/4)
        if lang_tokens is not None:
            m = lang_mask.to(x.dtype)[:, :, None]  # (B, L, 1)
            scale, shift = ((self.film(lang_tokens) * m).sum(1) / m.sum(1).clamp(min=1)).chunk(2, -1)  # (B, gd) each
            x = x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        feat = self.pixel(x)  # (B, gd, S/4, S/4)
        logits = self.heatmap(feat)  # (B, G, S/4, S/4)
        if hasattr(self, "goal_head"):  # the goal, told what the target is
            where = logits[:, self.target].flatten(1).softmax(-1)  # (B, h*w)
            what = torch.einsum("bp,bdp->bd", where, feat.flatten(2))  # (B, gd)
            scale, shift = self.goal_film(what).chunk(2, -1)
            goal = self.goal_head(feat * (1 + scale[:, :, None, None]) + shift[:, :, None, None])  # (B, 1, h, w)
            logits = torch.cat([logits[:, :self.goal], goal, logits[:, self.goal + 1:]], 1)
        return tokens, logits


def make_vision(config: A1Config) -> nn.Module:
    return ConvVision(config) if config.vision == "conv" else PatchVision(config)


# ---------------------------------------------------------------------------------------------
# Heat-maps -> keypoints, and the grounding loss
# ---------------------------------------------------------------------------------------------
def keypoints(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B, G, h, w) -> (soft-argmax keypoints (B, G, 2) as (x, y) in [0, 1] image coordinates,
    presence probability (B, G) = sigmoid(logsumexp of the logits))."""
    B, G, h, w = logits.shape
    prob = logits.flatten(2).softmax(-1).view(B, G, h, w)
    xs = (torch.arange(w, device=logits.device, dtype=prob.dtype) + 0.5) / w
    ys = (torch.arange(h, device=logits.device, dtype=prob.dtype) + 0.5) / h
    kx = (prob.sum(2) * xs).sum(-1)  # (B, G)
    ky = (prob.sum(3) * ys).sum(-1)
    presence = torch.sigmoid(logits.flatten(2).logsumexp(-1))
    return torch.stack([kx, ky], -1), presence


def splat_targets(points: torch.Tensor, valid: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Where-is-it target maps: points (B, G, M, 2) in [0, 1] image coordinates, valid (B, G, M) ->
    (B, G, h, w), each point splatted bilinearly on the cell centres (so the expected position under
    the target is the point itself, to sub-cell precision), M points of one name sharing the mass.
    Names with no valid point get an all-zero map."""
    B, G, M, _ = points.shape
    u = (points[..., 0] * w - 0.5).clamp(0, w - 1)  # continuous cell coordinates
    v = (points[..., 1] * h - 0.5).clamp(0, h - 1)
    u0, v0 = u.floor().clamp(max=w - 2), v.floor().clamp(max=h - 2)
    fu, fv = u - u0, v - v0
    weight = valid.to(points.dtype)
    weight = weight / weight.sum(-1, keepdim=True).clamp(min=1)  # (B, G, M)
    out = torch.zeros(B, G, h * w, dtype=points.dtype, device=points.device)
    for du, dv, wt in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
        idx = ((v0 + dv) * w + (u0 + du)).long()  # (B, G, M)
        out.scatter_add_(2, idx, wt * weight)
    return out.view(B, G, h, w)


def grounding_loss(logits: torch.Tensor, points: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-sample grounding loss (B,): cross-entropy of each present name's heat-map against its
    splatted target (averaged over the present names) + binary cross-entropy of its presence."""
    B, G, h, w = logits.shape
    target = splat_targets(points, valid, h, w).flatten(2)  # (B, G, h*w)
    present = valid.any(-1)  # (B, G)
    logp = logits.flatten(2).log_softmax(-1)
    ce = -(target * logp).sum(-1)  # (B, G)
    ce = (ce * present).sum(-1) / present.sum(-1).clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(logits.flatten(2).logsumexp(-1), present.to(logits.dtype),
                                             reduction="none").mean(-1)
    return ce + bce


def random_shift(image: torch.Tensor, points: torch.Tensor | None, pad: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DrQ-style augmentation: pad by ``pad`` px (edge replicate) and crop back at a random offset
    per sample; the grounding points (B, G, M, 2) in [0, 1] image coordinates move with the image."""
    B, C, H, W = image.shape
    padded = F.pad(image, (pad, pad, pad, pad), mode="replicate")
    off = torch.randint(0, 2 * pad + 1, (B, 2), generator=generator, device="cpu").to(image.device)
    rows = (off[:, 1, None] + torch.arange(H, device=image.device)[None])  # (B, H)
    cols = (off[:, 0, None] + torch.arange(W, device=image.device)[None])  # (B, W)
    b = torch.arange(B, device=image.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if points is not None:
        shift = (pad - off).to(points.dtype) / torch.tensor([W, H], dtype=points.dtype, device=points.device)
        points = points + shift[:, None, None, :]
    return out.contiguous(), points


__all__ = ["ConvVision", "PatchVision", "make_vision", "keypoints", "splat_targets", "grounding_loss",
           "random_shift", "sincos_2d"]
