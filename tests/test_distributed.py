"""Training on two CPU processes (DDP over gloo), as a lab scaling out would run it, on the toy setup
(``python -m a1lib.workflows.synthetic_setup``): under ``torchrun`` and under Lightning's own launcher
(``--devices 2``). What each process did comes from its ``RunTrace`` file; the losses from the CSV
log rank 0 writes."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from a1lib.constants import SOURCES
from a1lib.train.callbacks import read_checkpoint
from a1lib.train.config import TrainConfig
from a1lib.train.trainer import read_csv_log

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TOY = [sys.executable, "-m", "a1lib.workflows.synthetic_setup"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
            "-m", "a1lib.workflows.synthetic_setup"]
STEPS, BATCH = 40, 8


def trace(folder, rank):
    lines = [json.loads(line) for line in (folder / f"rank{rank}.jsonl").read_text().splitlines()]
    return [x for x in lines if "index" in x], [x for x in lines if "saved" in x]


def run(cmd, timeout=300):
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same toy run (seed, data, batch of 8 per step) on one process and under torchrun on two."""
    root = tmp_path_factory.mktemp("ddp")
    common = ["--data", str(root / "data"), "--steps", str(STEPS), "--batch-size", str(BATCH),
              "--checkpoint-every", "10"]
    out1 = run(TOY + ["--out", str(root / "one"), "--trace", str(root / "trace_one")] + common)
    out2 = run(TORCHRUN + ["--out", str(root / "two"), "--trace", str(root / "trace_two")] + common)
    assert "world_size=1" in out1 and out2.count("done: global_step=40") == 1 and "world_size=2" in out2
    return root


def test_each_process_gets_its_half_of_every_batch_and_together_they_follow_the_source_weights(runs):
    (one, _), (r0, _), (r1, _) = (trace(runs / "trace_one", 0), trace(runs / "trace_two", 0),
                                  trace(runs / "trace_two", 1))
    assert len(one) == len(r0) == len(r1) == STEPS
    for a, b, c in zip(one, r0, r1):
        assert a["step"] == b["step"] == c["step"]
        assert len(b["index"]) == len(c["index"]) == BATCH // 2
        # step k on two processes = step k on one, split in two (same draws, nothing seen twice)
        assert (list(zip(b["source_id"] + c["source_id"], b["index"] + c["index"]))
                == list(zip(a["source_id"], a["index"])))
    counts = np.bincount([s for x in r0 + r1 for s in x["source_id"]], minlength=len(SOURCES))
    n = counts.sum()
    assert n == STEPS * BATCH
    weights = TrainConfig().source_weights  # the toy run's mix
    for k, name in enumerate(SOURCES):
        p = weights[name] / sum(weights.values())
        assert abs(counts[k] - n * p) <= 4 * math.sqrt(n * p * (1 - p)), (name, counts[k], n * p)


def test_per_source_losses_are_logged_once_for_the_whole_batch(runs):
    logs = sorted((runs / "two" / "logs").iterdir())
    assert [p.name for p in logs] == ["version_0"]  # one log, written by rank 0
    log = read_csv_log(runs / "two")
    (r0, _), (r1, _) = trace(runs / "trace_two", 0), trace(runs / "trace_two", 1)
    rows = {int(s): i for i, s in enumerate(log["step"]) if np.isfinite(log["train/loss"][i])}
    seen_elsewhere = 0
    for b, c in zip(r0, r1):
        i = rows[b["step"]]
        ids = np.array(b["source_id"] + c["source_id"])
        with_action = {k: int((ids == k).sum()) for k, name in enumerate(SOURCES)
                       if name != "human" and (ids == k).any()}
        # a source in either process's part has its loss logged: the sums were reduced before the means
        assert {SOURCES[k] for k in with_action} == {s for s in ("sim", "lab")
                                                     if np.isfinite(log[f"train/action/{s}"][i])}
        seen_elsewhere += any((np.array(c["source_id"]) == k).any() and not (np.array(b["source_id"]) == k).any()
                              for k in with_action)
        # the overall action loss is the mean over the whole batch, not the mean of two halves' means
        pooled = (sum(n * log[f"train/action/{SOURCES[k]}"][i] for k, n in with_action.items())
                  / sum(with_action.values()))
        assert log["train/action"][i] == pytest.approx(pooled, rel=1e-4)
    assert seen_elsewhere > 0  # some step had a source only on rank 1, and rank 0 logged it


def test_two_processes_follow_the_one_process_loss_curve(runs):
    """Same samples at every step, different flow-matching noise and time draws: the paired per-step
    difference of the training loss has mean 0 within 3 standard errors (a systematic gap, e.g. a
    batch averaged or weighted wrongly, would show as a mean far from 0)."""
    a, b = read_csv_log(runs / "one"), read_csv_log(runs / "two")

    def per_step(log):
        ok = np.isfinite(log["train/loss"])
        return dict(zip(log["step"][ok].astype(int), log["train/loss"][ok]))

    la, lb = per_step(a), per_step(b)
    d = np.array([lb[s] - la[s] for s in sorted(la) if s in lb])
    assert len(d) == STEPS
    assert abs(d.mean()) <= 3 * d.std(ddof=1) / math.sqrt(len(d)), (d.mean(), d.std(ddof=1))
    assert np.mean(list(la.values())[-10:]) < np.mean(list(la.values())[:10])  # and the curve is one that learns


def test_a_killed_two_process_run_resumes_and_only_rank_zero_writes(tmp_path):
    out, tr = tmp_path / "run", tmp_path / "trace"
    cmd = TOY + ["--out", str(out), "--steps", "24", "--checkpoint-every", "3", "--devices", "2", "--trace", str(tr)]
    proc = subprocess.Popen(cmd + ["--step-sleep", "0.25"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    last = out / "checkpoints" / "last.ckpt"
    killed_at, deadline = None, time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            try:
                step = read_checkpoint(last)["global_step"]
            except ValueError:
                step = 0  # being replaced right now
            if step >= 6:
                os.killpg(proc.pid, signal.SIGKILL)  # both processes, as a lost machine would
                proc.wait()
                killed_at = step
                break
        time.sleep(0.1)
    assert killed_at is not None, proc.communicate()[0].decode()[-3000:]
    interrupted = read_checkpoint(last)["global_step"]
    assert 6 <= interrupted < 24
    done = run(cmd)
    assert f"resumed_from={interrupted}" in done and "global_step=24" in done and "world_size=2" in done
    assert read_checkpoint(last)["global_step"] == 24
    _, saved0 = trace(tr, 0)
    assert any(x["saved"] == "last.ckpt" and x["step"] == 24 for x in saved0)
    assert not (tr / "rank1.jsonl").exists() or trace(tr, 1)[1] == []  # rank 1 trained but wrote no checkpoint
    assert trace(tr, 1)[0]  # (it did train)
    assert not [p for p in out.rglob("*.tmp-*")]  # nothing half-written left behind

    # the exported policy loads and acts in a single process
    from a1lib.models.policy_a1 import A1Policy

    policy = A1Policy.from_pretrained(out / "policy")
    state_dim = policy.config.state_dim
    obs = {"observation.image": np.zeros((policy.config.image_size, policy.config.image_size, 3), np.uint8),
           "observation.state": np.zeros(state_dim, np.float32), "task": "task 0"}
    actions = policy.infer(obs)["actions"]
    assert actions.shape == (policy.config.chunk_size, policy.config.action_dim) and np.isfinite(actions).all()
