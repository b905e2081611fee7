"""Flow matching over action chunks, pi0 convention.

Training picks a time t in (0, 1] and blends the clean chunk ``a`` with Gaussian noise:

    x_t = t * noise + (1 - t) * a          (t = 1: pure noise, t = 0: the actions)
    u   = d x_t / d t = noise - a          (the velocity the action expert learns to predict)

Times are drawn from Beta(1.5, 1) * 0.999 + 0.001, which favours the noisy end (t near 1).
Inference integrates dx/dt = v(x_t, t) with Euler steps from t = 1 down to t = 0:

    x_{t + dt} = x_t + dt * v,   dt = -1 / num_steps
"""

from __future__ import annotations

import math

import torch


def sample_time(batch: int, alpha: float = 1.5, generator: torch.Generator | None = None,
                device=None) -> torch.Tensor:
    """t ~ Beta(alpha, 1) * 0.999 + 0.001, shape (B,).

    Beta(alpha, 1) has CDF x^alpha, so x = U^(1/alpha) (inverse-CDF sampling: exact, and it takes a
    torch.Generator, which torch.distributions.Beta does not).
    """
    u = torch.rand(batch, generator=generator, device=device)
    return u.pow(1.0 / alpha) * 0.999 + 0.001


def interpolate(actions: torch.Tensor, noise: torch.Tensor, t: torch.Tensor):
    """actions, noise: (B, H, A); t: (B,) -> (x_t, u_target), both (B, H, A)."""
    t = t[:, None, None]
    return t * noise + (1.0 - t) * actions, noise - actions


def sinusoidal_embedding(t: torch.Tensor, dim: int, min_period: float, max_period: float) -> torch.Tensor:
    """t: (B,) -> (B, dim): [sin(2 pi t / p), cos(2 pi t / p)] over log-spaced periods p (pi0)."""
    if dim % 2:
        raise ValueError(f"time embedding dim must be even, got {dim}")
    frac = torch.linspace(0.0, 1.0, dim // 2, device=t.device, dtype=torch.float32)
    period = min_period * (max_period / min_period) ** frac  # (dim/2,)
    angle = t.float()[:, None] * (2 * math.pi / period)[None, :]  # (B, dim/2)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)
