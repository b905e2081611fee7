"""Closed-loop evaluation: metrics JSON with Wilson CIs, GIFs, expert / random reference rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from a1lib.eval.evaluate import evaluate, wilson_interval, write_json_atomic
from a1lib.eval.gif import chunk_path, compose_frame


def test_wilson_interval():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-3)  # the textbook value
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_chunk_path_and_frame():
    state = np.array([0.5, 0.5, 1, 0, 0, 0], np.float32)
    chunk = np.array([[1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [0, -1, 0, 0, -1]], np.float32)
    path = chunk_path(state, chunk, max_speed=0.1)
    np.testing.assert_allclose(path, [[0.5, 0.5], [0.6, 0.5], [0.7, 0.5], [0.7, 0.4]], atol=1e-6)
    img = np.zeros((16, 16, 3), np.uint8)
    frame = compose_frame(img, img + 100, chunk, state, scale=2)
    assert frame.shape == (32, 64, 3) and frame[:, :32].any() and (frame[:, 32:] == 100).all()


def tiny_policy_dir(tmp_path):
    """An untrained but complete A1Policy at 32 px for the real lab envs (5-d action, 6-d state)."""
    from a1lib.data import Normalizer
    from a1lib.models.configuration_a1 import A1Config
    from a1lib.models.modeling_a1 import A1Model
    from a1lib.models.policy_a1 import A1Policy
    from a1lib.models.processor import A1Processor
    from a1lib.sim import ACTION_DIM, STATE_DIM
    from a1lib.train.toy import toy_image_tokenizer, toy_text_tokenizer

    config = A1Config.preset("ci", state_dim=STATE_DIM, action_dim=ACTION_DIM, vocab_size=32)
    stats = {k: {"mean": [0.0] * d, "std": [1.0] * d} for k, d in (("observation.state", STATE_DIM), ("action", ACTION_DIM))}
    norm = Normalizer(stats, ["observation.state", "action"], mode="identity")
    proc = A1Processor(config, toy_text_tokenizer(), norm, toy_image_tokenizer(config.image_size))
    return A1Policy(A1Model(config), proc, delta=5).save_pretrained(tmp_path / "policy")


@pytest.mark.slow
def test_evaluate_rows_metrics_and_gifs(tmp_path):
    policy = tiny_policy_dir(tmp_path)
    tasks = ["ZipBag", "PlaceMarkpen"]  # the shortest step limits
    m = evaluate({"a1": str(policy), "expert": "expert", "random": "random"}, tasks, episodes=2,
                 out=tmp_path / "eval", workers=2, progress=False, gifs_per_task=1)
    write_json_atomic(tmp_path / "eval" / "metrics.json", m)
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(m["rows"]) == {"a1", "expert", "random"}
    for name, row in m["rows"].items():
        for task in tasks:
            v = row["per_task"][task]
            assert v["episodes"] == 2 and 0 <= v["successes"] <= 2
            assert (v["ci95"][0], v["ci95"][1]) == pytest.approx(wilson_interval(v["successes"], 2))
            assert all(s >= 2**31 for s in v["seeds"])  # evaluation seeds, disjoint from training
        assert row["overall"]["episodes"] == 4
    # the same seeds for every row
    assert m["rows"]["a1"]["per_task"]["ZipBag"]["seeds"] == m["rows"]["expert"]["per_task"]["ZipBag"]["seeds"]
    assert m["rows"]["expert"]["overall"]["successes"] >= 3 and m["rows"]["random"]["overall"]["successes"] <= 1
    assert len(m["gifs"]) == 6
    import imageio.v3 as iio

    frames = iio.imread(tmp_path / "eval" / "gifs" / "a1_ZipBag_ep0.gif")
    assert frames.ndim == 4 and frames.shape[0] > 1 and frames.shape[2] == 2 * frames.shape[1]
    # the A1 row's right panel shows the decoded imagined frame, not the grey placeholder
    right = frames[0, :, frames.shape[1]:]
    assert right.std() > 0


def test_speed_kwargs_reach_the_env(tmp_path):
    m = evaluate({"expert": "expert"}, ["ExpressSorting"], episodes=1, workers=1, progress=False,
                 env_kwargs={"belt_speed": 0.0}, out=None)
    assert m["env_kwargs"] == {"belt_speed": 0.0} and m["rows"]["expert"]["overall"]["episodes"] == 1
