"""The figures draw results only (a1lib.viz); the workflows load the policy and run its episodes for
them, and leave the process's torch threads as they found them."""

import json

import numpy as np
import torch
from conftest import ROOT

from a1lib.eval.rollout import EpisodeResult
from a1lib.shipped import SHIPPED_DIR
from a1lib.sim import DYNAMIC_TASKS, STATIC_TASKS
from a1lib.viz.ablation_figures import plot_imagined_outcomes
from a1lib.viz.figures import plot_imagined_grid, plot_success_bars
from a1lib.workflows.ablation import imagined_outcomes
from a1lib.workflows.evaluation import imagined_grid


def _frame(value: int) -> np.ndarray:
    return np.full((16, 16, 3), value, dtype=np.uint8)


def test_the_figures_draw_given_frames(tmp_path):
    columns = [("SortParts", _frame(10), _frame(20), _frame(30)), ("ZipBag", _frame(40), None, _frame(50))]
    assert plot_imagined_grid(columns, 5, tmp_path / "grid.png").stat().st_size > 0
    frames = [(_frame(t), _frame(t + 1), None, None) for t in range(12)]
    picked = {"failure": ("ZipBag", 0, EpisodeResult("ZipBag", 7, False, 12, "open the bag", frames))}
    out = plot_imagined_outcomes(picked, 5, tmp_path / "outcomes.png", "dynamic-a1_full, training seed 0",
                                 ["ZipBag"], 1)
    assert out.stat().st_size > 0


def test_success_bars_from_the_committed_metrics(tmp_path):
    metrics = json.loads((ROOT / "experiments" / "eval" / "metrics.json").read_text())
    out = plot_success_bars(metrics, tmp_path / "bars.png", list(STATIC_TASKS), list(DYNAMIC_TASKS))
    assert out.stat().st_size > 0


def test_the_workflows_run_the_policy_and_restore_torch_threads(tmp_path):
    before = torch.get_num_threads()
    assert imagined_grid(SHIPPED_DIR, tmp_path / "grid.png", ["SortParts"], step=3).stat().st_size > 0
    assert torch.get_num_threads() == before
    out = imagined_outcomes(SHIPPED_DIR, tmp_path / "outcomes.png", ["ZipBag"], episodes=1, shown="the shipped policy")
    assert out.stat().st_size > 0 and torch.get_num_threads() == before
