"""A1Model learns: every loss falls >= 10x when overfitting a tiny batch (fixed flow-matching draw)."""

import pytest
import torch

from a1lib.models.configuration_a1 import A1Config
from a1lib.models.modeling_a1 import A1Model, random_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def test_each_loss_falls_10x_on_a_tiny_batch():
    torch.manual_seed(0)
    # lambdas of 1 so all three losses train at the same pace in this short run
    c = A1Config.preset("tiny", lambda_gen=1.0, lambda_und=1.0)
    model = A1Model(c)
    b = random_batch(c, 4, seed=0)
    # fixed noise and time: the flow-matching target becomes a fixed regression we can overfit
    noise = torch.randn(4, c.chunk_size, c.action_dim, generator=torch.Generator().manual_seed(1))
    time = torch.rand(4, generator=torch.Generator().manual_seed(2)) * 0.8 + 0.1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    first = None
    for step in range(150):
        out = model(b, noise=noise, time=time)
        losses = {k: out[k].mean().item() for k in ("action", "generation", "understanding")}
        first = first or losses
        if all(losses[k] < first[k] / 10 for k in losses):
            break
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    for k in first:
        assert losses[k] < first[k] / 10, f"{k}: {first[k]:.4f} -> {losses[k]:.4f} after {step} steps"
