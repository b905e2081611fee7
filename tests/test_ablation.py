"""Ablation variants, their training commands, and the generated paper-vs-ours claims table."""


import pytest
import yaml
from conftest import ROOT

from a1lib.eval.ablation import (
    VARIANTS,
    AblationConfig,
    RunLayout,
    TaskGroup,
    expected_seconds,
    get_variant,
    parse_run,
    pool_seeds,
)
from a1lib.eval.claims import CLAIMS, claims_table, evaluate_claims, verdict
from a1lib.eval.stats import Rate, difference_interval, min_detectable_difference
from a1lib.workflows.ablation import training_steps

ALL = ["SortParts", "PlaceFlower", "ExpressSorting", "IngredientPicking"]


def fake_result(group, name, successes, episodes=10, loss=0.5, tasks=ALL):
    """A metrics.json as `a1 ablation run` writes it, with `successes[task]` of `episodes` per task."""
    per_task = {t: {"successes": successes.get(t, 0), "episodes": episodes} for t in tasks}
    half = {t: {"successes": v["successes"] // 2, "episodes": episodes // 2} for t, v in per_task.items()}
    rest = {t: {"successes": v["successes"] - half[t]["successes"], "episodes": episodes - episodes // 2}
            for t, v in per_task.items()}
    return {"group": group, "variant": name, "tasks": list(tasks), "per_task": per_task, "val_action_loss": loss,
            "per_seed": {"seed0": {"per_task": half}, "seed1": {"per_task": rest}}}


def test_params_runs_and_claims_name_real_groups_and_variants():
    from a1lib.workflows.params import load_section

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    runs = [parse_run(r) for r in params["ablations"]]
    assert {v.name for _, v in runs} <= set(VARIANTS)
    for name, (group, variant) in zip(params["ablations"], runs):  # the stage's params dep names the group
        assert params["ablations"][name] == {"group": group, "variant": variant.name}, name
    for preset in ("ci", "cpu", "gpu"):
        cfg = load_section("ablation", AblationConfig, path=ROOT / "params.yaml", preset=preset)
        assert {g for g, _ in runs} <= set(cfg.groups), preset
    run_names = set(params["ablations"])
    for c in CLAIMS:
        assert c.better in VARIANTS and c.worse in VARIANTS
        if c.group != "all":  # the ten-task claim is out of the budget: reported as not run
            assert {f"{c.group}-{c.better}", f"{c.group}-{c.worse}"} <= run_names, c.text


def test_training_steps_change_one_thing_per_variant(tmp_path):
    group = TaskGroup(tasks=("PlaceFlower", "ZipBag"), seeds=(3,), pretrain_steps=7, finetune_steps=5)
    layout = RunLayout.of(tmp_path, "g-x")

    def steps(name):
        return training_steps(get_variant(name), 3, layout, group, str(ROOT / "params.yaml"), "cpu")

    full = steps("a1_full")
    assert [s.section for s in full] == ["pretrain", "finetune"]
    assert [s.out for s in full] == [tmp_path / "g-x/runs/seed3/pretrain", tmp_path / "g-x/runs/seed3/finetune"]
    assert full[0].changes["steps"] == 7 and full[1].changes["steps"] == 5
    for step in full:  # both stages train on the group's tasks only, with the seed
        assert step.changes["tasks"] == ["PlaceFlower", "ZipBag"] and step.changes["seed"] == 3
    assert full[0].model == {"seed": 3} and full[0].init is None
    assert full[1].init == layout.policy(3, "pretrain") and full[1].model == {}  # fine-tuned from its pretraining
    assert steps("pi0_style")[0].model == {"seed": 3, "generation": "none"}
    assert steps("no_understanding")[0].model == {"seed": 3, "lambda_und": 0.0}
    assert set(steps("data_sim_human")[0].changes["source_weights"]) == {"sim", "human"}
    scratch = steps("no_pretrain")
    assert [s.section for s in scratch] == ["finetune"] and scratch[0].init is None
    assert scratch[0].changes["init_vision"] == "artifacts/vision"  # no robot pretraining, but the vision stage kept
    # every step is a valid TrainConfig of its section
    from a1lib.workflows.params import train_config

    for step in full + scratch:
        assert train_config(step.section, str(ROOT / "params.yaml"), "cpu", step.changes).steps in (5, 7)


def test_bad_variant_and_config_are_named():
    with pytest.raises(ValueError, match="unknown ablation variant 'nope'"):
        get_variant("nope")
    with pytest.raises(ValueError, match="not '<group>-<variant>'"):
        parse_run("a1_full")
    assert parse_run("dynamic-no_pretrain") == ("dynamic", VARIANTS["no_pretrain"])
    with pytest.raises(ValueError, match="groups.dyn: seeds"):
        AblationConfig(groups={"dyn": {"tasks": ["ZipBag"], "seeds": [0, 0]}})
    with pytest.raises(ValueError, match="groups.dyn: pretrain_steps"):
        AblationConfig(groups={"dyn": {"tasks": ["ZipBag"], "pretrain_steps": 0}})
    with pytest.raises(ValueError, match="task names.*'Zip'"):
        AblationConfig(groups={"dyn": {"tasks": ["Zip"]}})
    with pytest.raises(ValueError, match="unknown key.*'steps'"):
        AblationConfig(groups={"dyn": {"tasks": ["ZipBag"], "steps": 3}})
    with pytest.raises(ValueError, match="no ablation task group 'static'; the preset has \\['dyn'\\]"):
        AblationConfig(groups={"dyn": {"tasks": ["ZipBag"]}}).group("static")


def test_expected_time_counts_seeds_in_rounds():
    from a1lib.eval.ablation import EVAL_SECONDS_PER_EPISODE as E

    def t(variant, seeds):
        g = TaskGroup(tasks=("ExpressSorting",), seeds=seeds, pretrain_steps=100, finetune_steps=50, episodes=1)
        return expected_seconds(g, VARIANTS[variant], (32, 32), parallel=2)

    assert t("a1_full", (0, 1, 2)) - 1.5 * E == pytest.approx(2 * (t("a1_full", (0, 1)) - E))  # 3 seeds: 2 rounds
    assert t("no_pretrain", (0, 1)) < t("a1_full", (0, 1)) / 2


def test_pool_seeds_adds_episodes_over_seeds():
    rows = {f"seed{s}": {"per_task": {"ZipBag": {"successes": s, "episodes": 4}}} for s in (1, 3)}
    pooled = pool_seeds(rows, ["ZipBag"])
    assert pooled["overall"]["successes"] == 4 and pooled["overall"]["episodes"] == 8
    lo, hi = pooled["overall"]["ci95"]
    assert lo < 0.5 < hi


def test_difference_interval_and_verdicts():
    d, lo, hi = difference_interval(Rate(45, 50), Rate(10, 50))
    assert d == pytest.approx(0.7) and 0 < lo < 0.7 < hi < 1
    assert verdict(lo, hi, 0.9, 0.2) == "reproduced"
    d, lo, hi = difference_interval(Rate(6, 10), Rate(4, 10))
    assert lo < 0 < d < hi and verdict(lo, hi, 0.6, 0.4) == "inconclusive"
    d, lo, hi = difference_interval(Rate(5, 50), Rate(45, 50))
    assert hi < 0 and verdict(lo, hi, 0.1, 0.9) == "contradicted"
    d, lo, hi = difference_interval(Rate(0, 10), Rate(0, 10))
    assert d == 0 and verdict(lo, hi, 0.0, 0.0) == "no signal"
    assert verdict(*difference_interval(Rate(2, 50), Rate(1, 50))[1:], 0.04, 0.02) == "no signal"


def test_min_detectable_difference_shrinks_with_episodes():
    small, large = min_detectable_difference(0.3, 20, 20), min_detectable_difference(0.3, 200, 200)
    assert 0.3 < small < 0.5 and 0.1 < large < 0.15 and large < small
    # the textbook check: at p = 0.5 vs 0.5 + d with 100 per arm, 80% power needs d of about 0.19
    assert min_detectable_difference(0.5, 100, 100) == pytest.approx(0.19, abs=0.01)


def test_claims_table_is_computed_from_the_results():
    results = {
        "dynamic-a1_full": fake_result("dynamic", "a1_full", {"ExpressSorting": 9, "IngredientPicking": 9},
                                       tasks=("ExpressSorting", "IngredientPicking")),
        "dynamic-pi0_style": fake_result("dynamic", "pi0_style", {"ExpressSorting": 1, "IngredientPicking": 2},
                                         tasks=("ExpressSorting", "IngredientPicking")),
        "static-a1_full": fake_result("static", "a1_full", {"SortParts": 5, "PlaceFlower": 5},
                                      tasks=("SortParts", "PlaceFlower")),
        "static-data_sim": fake_result("static", "data_sim", {"SortParts": 6, "PlaceFlower": 6},
                                       tasks=("SortParts", "PlaceFlower")),
    }
    rows = {r["claim"]: r for r in evaluate_claims(results)}
    assert len(rows) == len(CLAIMS)
    run = {k: v for k, v in rows.items() if v["verdict"] != "not run"}
    assert len(run) == 2  # claims whose two runs are missing are listed as not run
    assert rows["removing the generation expert costs ~19 points"]["missing"] == ["all-a1_full", "all-pi0_style"]
    dyn = rows["foresight beats a pi0-style policy on dynamic tasks"]
    assert dyn["tasks"] == ["ExpressSorting", "IngredientPicking"]  # the group's tasks
    assert dyn["ours_better"] == 90.0 and dyn["ours_worse"] == 15.0 and dyn["verdict"] == "reproduced"
    assert rows["sim + real + human pretraining beats sim alone"]["verdict"] == "inconclusive"
    assert dyn["per_seed"] == [[0.8, 1.0], [0.1, 0.2]]  # a1_full: seed0 4 + 4 of 10, seed1 5 + 5 of 10
    table = claims_table(list(rows.values()))
    assert "86.7 vs 43.4 (+43.3)" in table and "**reproduced**" in table and "**inconclusive**" in table
    assert "no run all-a1_full / all-pi0_style" in table and "**not run**" in table
    assert "80/100 vs 10/20" in table


def test_report_names_a_malformed_metrics_file(tmp_path):
    from a1lib.viz.ablation_figures import load_results

    with pytest.raises(FileNotFoundError, match="no <group>-<variant>/metrics.json"):
        load_results(tmp_path)
    (tmp_path / "dynamic-a1_full").mkdir()
    (tmp_path / "dynamic-a1_full" / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="dynamic-a1_full/metrics.json: malformed JSON"):
        load_results(tmp_path)
    (tmp_path / "dynamic-a1_full" / "metrics.json").write_text('{"variant": "a1_full", "per_task": {}}')  # older format
    with pytest.raises(ValueError, match="no 'group'.*a1 ablation run --run dynamic-a1_full"):
        load_results(tmp_path)


def test_train_reuses_a_finished_run_only_for_the_same_configuration(tmp_path, monkeypatch):
    import argparse

    import a1lib.workflows.ablation
    from a1lib.workflows.ablation import train_seed

    calls = []

    def fake_run(step, args):  # stands in for the training layer: makes the policy dir
        calls.append(step.section)
        (step.out / "policy").mkdir(parents=True, exist_ok=True)
        (step.out / "checkpoints").mkdir(exist_ok=True)

    monkeypatch.setattr(a1lib.workflows.ablation, "run_training_step", fake_run)
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.yaml"
    def budget(steps):
        group = {"tasks": ["ZipBag"], "seeds": [0], "pretrain_steps": steps}
        return yaml.safe_dump({"preset": "p", "presets": {"p": {"ablation": {"groups": {"g": group}}}}})

    params.write_text(budget(3))
    args = argparse.Namespace(run="g-a1_full", seed=0, out="run", params=str(params), preset=None, data="d",
                              latents="l", tokenizer="t", threads=1)
    assert train_seed(args) == 0 and calls == ["pretrain", "finetune"]
    assert not (tmp_path / "run" / "runs" / "seed0" / "pretrain" / "checkpoints").exists()  # optimizer state dropped
    assert train_seed(args) == 0 and calls == ["pretrain", "finetune"]  # same commands: reused
    params.write_text(budget(4))
    assert train_seed(args) == 0 and calls == ["pretrain", "finetune", "pretrain", "finetune"]  # changed: retrained


def _sweep_result():
    """A metrics.json as `a1 ablation sweep` writes it: two arms and the two experts at two speeds."""
    points = []
    for speed, ks in ((0.05, (3, 1, 10, 10)), (0.25, (0, 0, 4, 0))):
        for arm, k in zip(("a1_full", "pi0_style", "expert", "motion_blind_expert"), ks):
            n = 10 if "expert" in arm else 20
            points.append({"arm": arm, "task": "ExpressSorting", "speed_key": "belt_speed", "speed": speed,
                           "successes": k, "episodes": n, "success_rate": k / n, "ci95": [0.0, 1.0]})
    return {"arms": ["a1_full", "pi0_style", "expert", "motion_blind_expert"], "points": points,
            "references": ["expert", "motion_blind_expert"],
            "training_seeds": {"a1_full": ["seed0", "seed1"], "pi0_style": ["seed0", "seed1"]},
            "episodes_per_speed_and_seed": 10,
            "training_range": {"ExpressSorting": {"speed_key": "belt_speed", "range": [0.08, 0.2]}}}


def test_speed_sweep_config_checks_and_names_the_missing_run(tmp_path):
    from a1lib.workflows.ablation_sweep import SpeedSweepConfig, swept_policies

    cfg = SpeedSweepConfig(belt_speeds=[0.1], turntable_speeds=[0, 1])
    assert cfg.speeds("belt_speed") == (0.1,) and cfg.speeds("turntable_speed") == (0.0, 1.0)
    with pytest.raises(ValueError, match="belt_speeds must be a non-empty list of speeds >= 0"):
        SpeedSweepConfig(belt_speeds=[-0.1])
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        SpeedSweepConfig(episodes=0)
    with pytest.raises(FileNotFoundError, match=r"dvc repro ablation@dynamic-a1_full"):
        swept_policies(tmp_path, "dynamic")
    # the cpu preset's sweep stays where the expert can succeed (bench_sim.py section 4) and leaves the training range
    cpu = yaml.safe_load((ROOT / "params.yaml").read_text())["presets"]["cpu"]["speed_sweep"]
    assert min(cpu["belt_speeds"]) < 0.08 and max(cpu["belt_speeds"]) > 0.2 and 0.0 not in cpu["belt_speeds"]
    assert min(cpu["turntable_speeds"]) < 0.4 and max(cpu["turntable_speeds"]) > 1.0


def test_speed_sweep_table_and_figure_come_from_the_points(tmp_path):
    from a1lib.viz.ablation_figures import plot_speed_sweep, speed_sweep_table

    table = speed_sweep_table(_sweep_result())
    assert table.splitlines()[0] == "| task | speed | a1 full | pi0 style | expert | motion blind expert |"
    assert "| ExpressSorting | belt speed 0.05 * | 3/20 | 1/20 | 10/10 | 10/10 |" in table  # outside 0.08-0.2
    assert "| ExpressSorting | belt speed 0.25 * | 0/20 | 0/20 | 4/10 | 0/10 |" in table
    assert "2 training seeds x 10 episodes" in table
    assert plot_speed_sweep(_sweep_result(), tmp_path / "speed.png").stat().st_size > 0


def test_the_expert_references_of_the_sweep_are_real_rollouts_through_the_one_runner():
    from a1lib.eval.evaluate import evaluate
    from a1lib.workflows.ablation_sweep import REFERENCE_ARMS

    # at belt speed 0 the second parcel never arrives: the expert fails; at 0.1 it succeeds (bench_sim section 4)
    refs = {arm: arm for arm in REFERENCE_ARMS}
    stopped, moving = (evaluate(refs, ["ExpressSorting"], 2, env_kwargs={"belt_speed": v}, workers=1, gifs_per_task=0,
                                progress=False)["rows"]["expert"]["overall"] for v in (0.0, 0.1))
    assert stopped["successes"] == 0 and moving["successes"] == 2 and moving["episodes"] == 2
