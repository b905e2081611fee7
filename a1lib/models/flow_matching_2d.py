"""Flow matching on a 2-D toy: the action expert's training rule with nothing else around it.

The data are points on a ring of 8 Gaussian blobs (a multimodal "action" distribution). A tiny
MLP ``v(x_t, t)`` learns the velocity ``noise - x`` on the straight line between a data point and
a noise sample, exactly as the action expert does for action chunks (same time sampling, same
sinusoidal time embedding, same Euler integration from t=1 to t=0).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from a1lib.models.flow_matching import interpolate, sample_time, sinusoidal_embedding


def ring_of_gaussians(n: int, seed: int = 0, modes: int = 8, radius: float = 2.0, std: float = 0.15) -> torch.Tensor:
    """(n, 2) samples from ``modes`` blobs on a circle."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, modes, (n,), generator=g)
    angle = 2 * math.pi * k.float() / modes
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + std * torch.randn(n, 2, generator=g)


class ToyVelocity(nn.Module):
    """v(x_t, t): (B, 2), (B,) -> (B, 2). Time enters through the pi0 sinusoidal embedding."""

    def __init__(self, hidden: int = 128, time_dim: int = 32):
        super().__init__()
        self.time_dim = time_dim
        self.net = nn.Sequential(
            nn.Linear(2 + time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2)
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = sinusoidal_embedding(t, self.time_dim, min_period=4e-3, max_period=4.0)  # (B, time_dim)
        return self.net(torch.cat([x, emb], dim=-1))


def train_toy_flow(data: torch.Tensor, steps: int = 2000, batch: int = 256, lr: float = 2e-3, seed: int = 0):
    """Fit ToyVelocity to ``data`` (N, 2) by flow matching. Returns (model, loss history)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = ToyVelocity()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        a = data[torch.randint(0, len(data), (batch,), generator=g)]  # (B, 2) clean samples
        noise = torch.randn(batch, 2, generator=g)
        t = sample_time(batch, generator=g)
        # interpolate() works on chunks (B, H, A); a 2-D point is a chunk of length 1
        x_t, u = interpolate(a[:, None], noise[:, None], t)
        loss = ((model(x_t[:, 0], t) - u[:, 0]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, np.array(losses)


@torch.no_grad()
def euler_trajectories(model: ToyVelocity, n: int = 512, num_steps: int = 10, seed: int = 1) -> np.ndarray:
    """Integrate dx/dt = v from t=1 (noise) to t=0. Returns (num_steps + 1, n, 2), noise first."""
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    path = [x.clone()]
    dt = -1.0 / num_steps
    for i in range(num_steps):
        t = torch.full((n,), 1.0 + i * dt)
        x = x + dt * model(x, t)
        path.append(x.clone())
    return torch.stack(path).numpy()
