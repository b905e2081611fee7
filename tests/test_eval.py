"""Closed-loop evaluation: metrics JSON with Wilson CIs, GIFs, expert / random reference rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from a1lib.eval.ablation import ablation_summary
from a1lib.eval.evaluate import evaluate, evaluation_headline, evaluation_summary, summarise
from a1lib.eval.gif import compose_frame
from a1lib.eval.perception import perception_summary
from a1lib.eval.stats import wilson_interval
from a1lib.io import atomic_write_json
from a1lib.sim.world import planned_path


def test_wilson_interval():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-3)  # the textbook value
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def flat(tree, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}, as `dvc metrics show` flattens a metrics file."""
    out = {}
    for k, v in tree.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def assert_few_numbers(summary, most=25):
    values = flat(summary)
    assert 0 < len(values) <= most, values
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in values.values()), values
    json.dumps(summary, allow_nan=False)  # what DVC reads back
    return values


def test_summaries_hold_only_the_numbers_to_compare():
    tasks = ["SortParts", "ZipBag", "ExpressSorting"]
    results = [{"task": t, "success": (i + k) % 3 == 0, "steps": 10 + i, "seed": 100 * k + i}
               for k, t in enumerate(tasks) for i in range(5)]
    rows = {name: {"policy": name, **summarise(results, tasks)} for name in ("a1", "privileged", "expert", "random")}
    metrics = {"domain": "lab", "tasks": tasks, "episodes_per_task": 5, "override": {}, "env_kwargs": {},
               "seeds": "eval_seed(task, i)", "ci": "95% Wilson score interval", "seconds": 3.0, "rows": rows,
               "gifs": ["a1_SortParts_ep0.gif"]}
    values = assert_few_numbers(evaluation_summary(metrics))
    overall = rows["a1"]["overall"]
    assert (values["a1.success"] == overall["success_rate"]
            and [values["a1.ci_low"], values["a1.ci_high"]] == overall["ci95"])
    assert {f"a1.task.{t}" for t in tasks} <= set(values) and "expert.success" in values and "random.ci_high" in values
    assert not any(k.startswith("expert.task") for k in values)  # per-task rates for the evaluated policy only
    assert len(values) == 3 * 4 + len(tasks)
    headline = assert_few_numbers(evaluation_headline(metrics))
    assert headline == {"success": overall["success_rate"], "ci_low": overall["ci95"][0],
                        "ci_high": overall["ci95"][1], "seconds": 3.0}

    sweep = {"replan_sweep": {str(r): {n: row["overall"] for n, row in rows.items() if n in ("a1", "privileged")}
                              for r in (1, 2, 5, 10)},
             "per_task": {}, "seeds": "validation_seed(task, i)", "episodes_per_task": 5}
    values = assert_few_numbers(evaluation_summary(sweep))
    assert set(values) == {f"replan_{r}.{n}" for r in (1, 2, 5, 10) for n in ("a1", "privileged")}
    sweep["noise_sweep"] = {str(x): {"a1": rows["a1"]["overall"]} for x in (0.0, 1.0)}
    values = assert_few_numbers(evaluation_summary(sweep))
    assert {"noise_0.0.a1", "noise_1.0.a1", "replan_2.privileged"} <= set(values) and len(values) == 10

    perception = {"domain": "lab", "seeds": "validation_seed", "episodes_per_task": 3,
                  "localisation": {"frames": 10, "unit": "pixels", "per_name": {
                      n: {"error_px": e, "median_px": 1.0, "mean_baseline_px": 14.0, "frames": 10}
                      for n, e in (("gripper", 0.4), ("target", 2.4), ("goal", 4.8), ("bolt", 18.8))}},
                  "futures": {"ExpressSorting": {"latent_mse": 0.018, "latent_mse_copy": 0.024,
                                                 "reduction_vs_copy": 0.25, "frames": 86}}}
    values = assert_few_numbers(perception_summary(perception))
    assert values == {"localisation_px.gripper": 0.4, "localisation_px.target": 2.4, "localisation_px.goal": 4.8,
                      "futures_mse_reduction.ExpressSorting": 0.25}

    ablation = {"variant": "pi0_style", "description": "two experts", "success": 0.1, "success_ci95": [0.05, 0.2],
                "per_task": {}, "val_action_loss": None, "seconds": {"train": 10.0, "total": 12.5},
                "budget": {"pretrain_steps": 500, "seeds": [0, 1]}, "sweep": [], "per_seed_success": {"seed0": 0.1}}
    values = assert_few_numbers(ablation_summary(ablation))
    assert values == {"success": 0.1, "ci_low": 0.05, "ci_high": 0.2, "seconds": 12.5}  # None is left out
    assert set(headline) == set(values)  # one shape: one narrow `dvc metrics show` table


def test_dvc_metrics_are_one_narrow_table():
    """dvc.yaml: the DVC metrics are the files of one shape (the pipeline's headline.json and each
    ablation's summary.json), so a bare `dvc metrics show` is one narrow table; every other stage's
    summary.json and every metrics.json is a plain uncached out beside them."""
    stages = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["stages"]
    defs = [stage.get("do", stage) for stage in stages.values()]

    def entries(stage, kind):
        return {next(iter(e)) if isinstance(e, dict) else e: (e[next(iter(e))] if isinstance(e, dict) else {})
                for e in stage.get(kind, [])}

    metrics = sorted(m for d in defs for m, opts in entries(d, "metrics").items() if opts.get("cache") is False)
    assert metrics == sorted(m for d in defs for m in entries(d, "metrics"))  # all uncached
    assert metrics == ["experiments/ablations/${key}/summary.json", "experiments/eval/headline.json"]
    outs = {o: opts for d in defs for o, opts in entries(d, "outs").items()}
    for name in ("artifacts/tokenizer", "experiments/eval", "experiments/perception", "experiments/replan_sweep",
                 "experiments/ablations/${key}"):
        for f in ("metrics.json",) + (() if "ablations" in name else ("summary.json",)):
            assert outs[f"{name}/{f}"].get("cache") is False, f"{name}/{f}"


def test_planned_path_and_frame():
    state = np.array([0.5, 0.5, 1, 0, 0, 0], np.float32)
    chunk = np.array([[1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [0, -1, 0, 0, -1]], np.float32)
    path = planned_path(state, chunk, max_speed=0.1)
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
    from a1lib.policy_protocol import InferenceSettings
    from a1lib.sim import ACTION_DIM, STATE_DIM
    from a1lib.workflows.synthetic_setup import toy_image_tokenizer, toy_text_tokenizer

    config = A1Config.preset("tiny", state_dim=STATE_DIM, action_dim=ACTION_DIM, vocab_size=32)
    stats = {k: {"mean": [0.0] * d, "std": [1.0] * d}
             for k, d in (("observation.state", STATE_DIM), ("action", ACTION_DIM))}
    norm = Normalizer(stats, ["observation.state", "action"], mode="identity")
    proc = A1Processor(config, toy_text_tokenizer(), norm, toy_image_tokenizer(config.image_size))
    return A1Policy(A1Model(config), proc, InferenceSettings(delta=5)).save_pretrained(tmp_path / "policy")


@pytest.mark.slow
def test_evaluate_rows_metrics_and_gifs(tmp_path):
    policy = tiny_policy_dir(tmp_path)
    tasks = ["ZipBag", "PlaceMarkpen"]  # the shortest step limits
    m = evaluate({"a1": str(policy), "expert": "expert", "random": "random"}, tasks, episodes=2,
                 out=tmp_path / "eval", workers=2, progress=False, gifs_per_task=1)
    atomic_write_json(tmp_path / "eval" / "metrics.json", m)
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
