"""The README's main command, end to end at the ci preset, on a fresh copy of the repository: the ci
preset runs in its own workspace (workspaces/ci/, nothing tracked is touched), generates its data and
runs every stage with `dvc repro`. Afterwards `dvc status` is clean and `dvc metrics show` /
`dvc plots show` work there."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def _fresh_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "-c", "user.email=ci@a1", "-c", "user.name=ci", "commit", "-qm", "fresh"], cwd=dest,
                   check=True)


@pytest.mark.slow
def test_main_command_runs_the_ci_pipeline_from_a_fresh_copy(tmp_path):
    repo = tmp_path / "repo"
    _fresh_copy(repo)
    env = {**os.environ, "A1_SKIP_SETUP": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "TQDM_DISABLE": "1"}
    run = subprocess.run(["bash", "scripts/run.sh", "ci"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "data/: generated for preset ci" in run.stdout
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                             capture_output=True, text=True, check=True).stdout
    assert changed == "", changed  # the checkout's tracked files (params, lock, data.dvc) are untouched
    repo = repo / "workspaces" / "ci"

    dvc = [sys.executable, "-m", "dvc"]
    status = subprocess.run(dvc + ["status", "--json"], cwd=repo, env=env, capture_output=True, text=True, check=True)
    assert json.loads(status.stdout) == {}, status.stdout
    metrics = subprocess.run(dvc + ["metrics", "show", "--json"], cwd=repo, env=env, capture_output=True, text=True,
                             check=True)
    assert "experiments/eval/headline.json" in metrics.stdout  # the headline and ablation summaries are the metrics
    assert "experiments/eval/metrics.json" not in metrics.stdout
    table = subprocess.run(dvc + ["metrics", "show"], cwd=repo, env=env, capture_output=True, text=True, check=True)
    assert max(map(len, table.stdout.splitlines())) <= 120, table.stdout  # fits a terminal
    plots = subprocess.run(dvc + ["plots", "show", "-o", str(tmp_path / "plots")], cwd=repo, env=env,
                           capture_output=True, text=True)
    assert plots.returncode == 0, plots.stderr
    for name in ("training_curves.png", "success_per_task.png", "imagined_futures.png", "results.md"):
        assert (repo / "figures" / name).stat().st_size > 0
    evaluation = json.loads((repo / "experiments" / "eval" / "metrics.json").read_text())
    assert set(evaluation["rows"]) == {"a1", "privileged", "expert", "random"}
    sweep = json.loads((repo / "experiments" / "replan_sweep" / "metrics.json").read_text())
    assert set(sweep["replan_sweep"]) == {"1", "5"}  # the ci preset's intervals
    assert set(sweep["noise_sweep"]) == {"0.0", "1.0"} and set(sweep["noise_sweep"]["0.0"]) == {"a1"}
    perception = json.loads((repo / "experiments" / "perception" / "metrics.json").read_text())
    assert "localisation" in perception

    # the ablations: one stage per <task group>-<variant> run, then the figures and the generated claims table
    import yaml

    runs = list(yaml.safe_load((repo / "params.yaml").read_text())["ablations"])
    for run in runs:
        result = json.loads((repo / "experiments" / "ablations" / run / "metrics.json").read_text())
        assert f"{result['group']}-{result['variant']}" == run and result["budget"]["finetune_steps"] == 4  # ci budget
        assert (repo / "experiments" / "ablations" / run / "runs" / "seed0" / "finetune" / "policy").is_dir()
    full = json.loads((repo / "experiments" / "ablations" / "dynamic-a1_full" / "metrics.json").read_text())
    assert full["tasks"] == ["ExpressSorting", "IngredientPicking"] and full["futures"] and "sweep" not in full
    sweep = json.loads((repo / "experiments" / "speed_sweep" / "metrics.json").read_text())  # the ablation_sweep stage
    assert sweep["arms"] == ["a1_full", "pi0_style", "no_future_loss", "expert", "motion_blind_expert"]
    assert {(p["task"], p["speed"]) for p in sweep["points"]} == {("ExpressSorting", 0.15), ("IngredientPicking", 0.7)}
    for name in ("ablation_static.png", "ablation_dynamic.png", "ablation_imagined.png", "claims.md", "ablations.md",
                 "ablation_speed.png", "speed_sweep.md"):
        assert (repo / "figures" / name).stat().st_size > 0, name
    claims = json.loads((repo / "experiments" / "claims.json").read_text())
    assert {c["verdict"] for c in claims} <= {"reproduced", "contradicted", "inconclusive", "no signal", "not run"}
    assert len(claims) == 7 and sum(c["verdict"] == "not run" for c in claims) == 1  # the all-task claim
    assert "| foresight beats" in (repo / "figures" / "claims.md").read_text()

    # scale-out at the ci preset: `a1 finetune` on two DDP processes (Lightning starts the second),
    # then the policy it exported evaluated in one process
    a1 = [sys.executable, "-m", "a1lib.workflows.cli"]
    ddp = subprocess.run(a1 + ["finetune", "--devices", "2", "--steps", "6", "--out", str(tmp_path / "ddp"),
                               "--no-progress"],
                         cwd=repo, env=env, capture_output=True, text=True)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    assert ddp.stdout.count("trained to step 6") == 1  # one report, from rank 0
    evaluated = subprocess.run(a1 + ["evaluate", "--policy", str(tmp_path / "ddp" / "policy"), "--reference", "",
                                     "--tasks", "ZipBag", "--episodes", "1", "--workers", "1", "--gifs-per-task", "0",
                                     "--out", str(tmp_path / "ddp_eval")],
                               cwd=repo, env=env, capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stdout[-3000:] + evaluated.stderr[-3000:]
    assert json.loads((tmp_path / "ddp_eval" / "metrics.json").read_text())["rows"]["a1"]["overall"]["episodes"] == 1


@pytest.mark.slow
def test_main_command_carries_on_when_this_machines_data_differ(tmp_path):
    """No dead end: when the regenerated data/ hash differs from data.dvc (another OS, CPU architecture
    or library build), the main command says what differs and goes on with this machine's data.
    Simulated with the ci preset as the checkout's default against the committed cpu data.dvc."""
    repo = tmp_path / "repo"
    _fresh_copy(repo)
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("preset: cpu", "preset: ci", 1))
    (repo / "dvc.yaml").unlink()  # the data step only
    committed = (repo / "data.dvc").read_text()
    env = {**os.environ, "A1_SKIP_SETUP": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "TQDM_DISABLE": "1"}
    run = subprocess.run(["bash", "scripts/run.sh"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "differ from the committed data.dvc" in run.stderr and "run-to-run spread" in run.stderr
    assert (repo / "data.dvc").read_text() != committed and (repo / "data" / "lab" / "meta" / "info.json").is_file()
