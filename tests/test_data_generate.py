"""`a1 data generate` / `a1 data info` with a fake simulator (tiny, deterministic, fails some seeds)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from a1lib.data import LeRobotDataset
from a1lib.data import generate as gen
from a1lib.data.seeds import train_seed
from a1lib.workflows.cli import main as cli_main


@dataclass
class FakeEpisode:
    task: str
    domain: str
    seed: int
    instruction: str
    images: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    scene: dict
    success: bool


def fake_record(task: str, domain: str, seed: int, image_size: int = 64) -> FakeEpisode:
    rng = np.random.default_rng(seed)
    T = 3 + seed % 4
    return FakeEpisode(
        task=task, domain=domain, seed=seed, instruction=f"{task} please (seed {seed})",
        images=rng.integers(0, 256, (T, image_size, image_size, 3), dtype=np.uint8),
        states=rng.normal(size=(T, 6)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(T, 5)).astype(np.float32),
        scene={"kind": rng.integers(-1, 4, (T, 4)), "pose": rng.normal(size=(T, 4, 3)).astype(np.float32),
               "held": np.zeros((T, 1), np.int64), "motion": np.zeros((T, 2), np.float32)},
        success=seed % 3 != 0,  # every third seed fails: the generator must skip it
    )


FAKE = gen.SimAPI(
    record=fake_record,
    scene_features={"scene.kind": {"dtype": "int64", "shape": [4]}, "scene.pose": {"dtype": "float32", "shape": [4, 3]},
                    "scene.held": {"dtype": "int64", "shape": [1]}, "scene.motion": {"dtype": "float32", "shape": [2]}},
    state_names=[f"s{i}" for i in range(6)],
    action_names=["vx", "vy", "vyaw", "lift", "grip"],
)
TINY = dict(image_size=16, tasks=("SortParts", "ZipBag"), sim_episodes_per_task=3, lab_episodes_per_task=1,
            human_episodes_per_task=2)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_is_bit_reproducible_and_worker_independent(tmp_path):
    one = gen.generate(gen.DataGenConfig(**TINY, workers=1), tmp_path / "a", ("sim", "human"), api=FAKE)
    gen.generate(gen.DataGenConfig(**TINY, workers=2), tmp_path / "b", ("sim", "human"), api=FAKE)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert [s["episodes"] for s in one] == [6, 4]

    sim = LeRobotDataset(tmp_path / "a" / "sim")
    assert sim.num_episodes == 6 and "action" in sim.features and sim.features["action"]["names"][0] == "vx"
    # kept seeds = the first successful ones, in order, per task (failed seeds skipped)
    for k, task in enumerate(TINY["tasks"]):
        want = [s for s in (train_seed("sim", task, j, 0) for j in range(20)) if s % 3 != 0][:3]
        got = [int(ep["tasks"][0].split("seed ")[1][:-1]) for ep in sim.episodes[3 * k: 3 * k + 3]]
        assert got == want
    first = fake_record("SortParts", "sim", want_seed := int(sim.episodes[0]["tasks"][0].split("seed ")[1][:-1]), 16)
    np.testing.assert_array_equal(sim[0]["observation.image"], first.images[0])
    np.testing.assert_array_equal(sim[0]["action"], first.actions[0])
    np.testing.assert_array_equal(sim[0]["scene.pose"], first.scene["pose"][0])
    assert want_seed % 3 != 0

    human = LeRobotDataset(tmp_path / "a" / "human")
    assert "action" not in human.features and "observation.state" not in human.features
    assert "scene.kind" in human.features and human.num_episodes == 4


def test_cli_generate_and_info(tmp_path, monkeypatch, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("preset: tiny\npresets:\n  tiny:\n    data:\n      image_size: 16\n      tasks: [ZipBag]\n"
                      "      sim_episodes_per_task: 1\n      lab_episodes_per_task: 2\n"
                      "      human_episodes_per_task: 1\n"
                      "      workers: 1\n")
    monkeypatch.setattr(gen, "default_sim_api", lambda: FAKE)
    out = tmp_path / "data"
    assert cli_main(["data", "generate", "--params", str(params), "--out", str(out), "--sources", "lab"]) == 0
    text = capsys.readouterr().out
    assert "lab" in text and "episodes" in text and "MB" in text
    assert cli_main(["data", "info", str(out / "lab")]) == 0
    text = capsys.readouterr().out
    assert "v3.0" in text and "episodes  2" in text and "observation.image" in text and "ok: dataset is valid" in text
    (out / "lab" / "meta" / "info.json").write_text("{")
    assert cli_main(["data", "info", str(out / "lab")]) == 1
    assert "corrupt JSON" in capsys.readouterr().out


def test_unknown_params_key_is_an_error(tmp_path):
    from a1lib.workflows.params import ParamsError, load_section

    params = tmp_path / "params.yaml"
    params.write_text("preset: x\npresets:\n  x:\n    data:\n      episodes: 3\n")
    with pytest.raises(ParamsError, match="episodes"):
        load_section("data", gen.DataGenConfig, path=params)


# --- the same bytes on every CPU (the real simulator, in fresh processes) --------------------------

_GENERATE_AND_DIGEST = """
import hashlib, sys
from pathlib import Path
from a1lib.data import generate as gen
cfg = gen.DataGenConfig(image_size=32, tasks=("SortParts", "SweepTrash", "IngredientPicking"), sim_episodes_per_task=2,
                        lab_episodes_per_task=1, human_episodes_per_task=1, dart_noise=0.15, workers=1)
gen.generate(cfg, sys.argv[1], progress=False)
for p in sorted(Path(sys.argv[1]).rglob("*")):
    if p.is_file():
        print("digest", p.relative_to(sys.argv[1]), hashlib.md5(p.read_bytes()).hexdigest())
"""


def _narrowed_dispatch() -> str:
    """Every SIMD extension numpy found on this CPU beyond its build's baseline: disabled, numpy runs the
    kernels of an older CPU (on an AVX-512 machine that drops Intel's SVML sin / cos / arctan2 too)."""
    from numpy.core._multiarray_umath import __cpu_baseline__, __cpu_features__

    return " ".join(f for f, on in __cpu_features__.items() if on and f not in __cpu_baseline__)


def test_generated_bytes_do_not_depend_on_the_cpu(tmp_path):
    """Data generation under numpy's full SIMD dispatch and under the narrowest: identical files."""
    narrowed = _narrowed_dispatch()
    digests = []
    for name, extra in (("full", {}), ("narrowed", {"NPY_DISABLE_CPU_FEATURES": narrowed})):
        run = subprocess.run([sys.executable, "-c", _GENERATE_AND_DIGEST, str(tmp_path / name)],
                             env={**os.environ, **extra}, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        digests.append([line for line in run.stdout.splitlines() if line.startswith("digest ")])  # not progress lines
    assert narrowed and len(digests[0]) > 10
    assert digests[0] == digests[1]


_RECORD_WITHOUT_CPU_DEPENDENT_MATH = """
import math
import numpy as np
def refuse(name):
    def f(*args, **kwargs):
        raise AssertionError(f"{name} computes CPU- or libm-dependent bits; use a1lib.sim.portable_trig")
    return f
for name in ("sin", "cos", "tan", "arctan", "arctan2", "exp", "log", "tanh", "sinh", "cosh", "expm1", "log1p"):
    setattr(np, name, refuse("np." + name))
for name in ("sin", "cos", "tan", "atan", "atan2", "exp", "log"):
    setattr(math, name, refuse("math." + name))
from a1lib.sim.domains import make_look
from a1lib.sim.record import record_expert_episode
from a1lib.sim.tasks import TASKS
for seed in range(12):  # every table texture of the sim and human domains
    make_look("sim", np.random.default_rng(seed), 32), make_look("human", np.random.default_rng(seed), 32)
for task in TASKS:
    record_expert_episode(task, "lab", 0, 32)
print("ok")
"""


def test_the_simulator_uses_no_cpu_dependent_math():
    """numpy's transcendental ufuncs pick their kernel by CPU and libm's differ by version: the
    simulator and renderer (everything stored in the data) use a1lib.sim.portable_trig instead.
    Run in a fresh process: the renderer caches its stamps per process."""
    run = subprocess.run([sys.executable, "-c", _RECORD_WITHOUT_CPU_DEPENDENT_MATH], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]


def test_portable_trig_matches_libm():
    import math

    from a1lib.sim import portable_trig as trig

    x = np.random.default_rng(0).uniform(-100, 100, 20000)
    s, c = trig.sin(x), trig.cos(x)
    assert np.abs(s - np.sin(x)).max() < 1e-15 and np.abs(c - np.cos(x)).max() < 1e-15
    assert max(abs(trig.sin(v) - math.sin(v)) + abs(trig.cos(v) - math.cos(v)) for v in x[:2000]) < 1e-15
    assert trig.sin(float(x[7])) == s[7] and trig.cos(float(x[7])) == c[7]  # scalar and array paths agree
    pts = np.random.default_rng(1).uniform(-2, 2, (2000, 2))
    assert max(abs(trig.atan2(y, x) - math.atan2(y, x)) for y, x in pts) < 1e-15
    for y, x in ((0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0), (-1.0, -1.0), (1e-300, -1.0)):
        assert abs(trig.atan2(y, x) - math.atan2(y, x)) < 1e-15, (y, x)
