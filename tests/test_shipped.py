"""The committed cpu policy (policies/a1-cpu): small, loadable, made by the committed dvc.lock run,
and `a1 evaluate` on it gives the committed outcomes, episode by episode."""

import json

import pytest
import yaml
from conftest import ROOT

from a1lib import shipped


def test_the_shipped_policy_is_small_and_names_the_run_that_made_it():
    directory = shipped.default_policy_dir()
    assert shipped._size_mb(directory) <= shipped.MAX_MB
    record = shipped.provenance(directory)
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    # the committed finetune stage produced exactly these files (same md5 of artifacts/finetune)
    assert record["dvc_lock"]["finetune"]["outs"] == lock["finetune"]["outs"]
    assert record["dvc_lock"]["finetune"]["params"] == lock["finetune"]["params"]
    committed = json.loads((ROOT / "experiments" / "eval" / "metrics.json").read_text())["rows"]["a1"]["overall"]
    assert record["evaluation"]["overall"] == committed


def test_evaluating_the_shipped_policy_reproduces_the_committed_outcomes():
    from a1lib.eval.evaluate import evaluate

    record = shipped.provenance()["evaluation"]
    # the two tasks with the most committed successes (a reproduction of successes, not only failures)
    tasks = sorted(record["per_task"], key=lambda t: -record["per_task"][t]["successes"])[:2]
    episodes = 3
    again = evaluate({"a1": str(shipped.default_policy_dir())}, tasks, episodes, workers=1, gifs_per_task=0,
                     progress=False)  # with its own inference settings (policy.json), those it was evaluated with
    assert again["rows"]["a1"]["settings"]["replan_every"] == record["replan_every"]
    for t in tasks:
        row = again["rows"]["a1"]["per_task"][t]
        assert row["seeds"] == record["per_task"][t]["seeds"][:episodes]
        assert row["success_per_episode"] == record["per_task"][t]["success_per_episode"][:episodes], t


def test_ship_refuses_what_it_cannot_vouch_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an A1Policy directory"):
        shipped.ship(tmp_path / "nothing", tmp_path / "out")
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "policy.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="dvc.lock"):
        shipped.ship(policy, tmp_path / "out", lock=tmp_path / "dvc.lock", metrics=tmp_path / "m.json")
    (policy / "model.safetensors").write_bytes(b"\0" * int((shipped.MAX_MB + 1) * 2**20))
    (tmp_path / "dvc.lock").write_text("stages: {}\n")
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(ValueError, match="MB"):
        shipped.ship(policy, tmp_path / "out", lock=tmp_path / "dvc.lock", metrics=tmp_path / "m.json")
    assert not (tmp_path / "out").exists()
