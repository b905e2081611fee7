"""`a1 data generate` / `a1 data info` with a fake simulator (tiny, deterministic, fails some seeds)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from a1lib.workflows.cli import main as cli_main
from a1lib.data import LeRobotDataset
from a1lib.data import generate as gen
from a1lib.data.seeds import train_seed


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
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


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
                      "      sim_episodes_per_task: 1\n      lab_episodes_per_task: 2\n      human_episodes_per_task: 1\n"
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
