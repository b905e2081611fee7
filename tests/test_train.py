"""Training: weighted mixing, loss goes down, NaN stop, atomic checkpoints, resume after SIGKILL."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import log_records

from a1lib.models.modeling_a1 import A1Model
from a1lib.models.policy_a1 import A1Policy, CheckpointError
from a1lib.models.processor import A1Processor, ProcessorError
from a1lib.progress import ProgressLines
from a1lib.train.callbacks import AtomicCheckpointIO, read_checkpoint
from a1lib.train.config import TrainConfig
from a1lib.train.datamodule import A1DataModule
from a1lib.train.module import NonFiniteLossError, lr_factor
from a1lib.train.schedule import warmup_cosine
from a1lib.train.trainer import check_resume, fit
from a1lib.workflows.synthetic_setup import make_toy_setup, toy_model_config, toy_normalizer, toy_qa

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_toy_setup(tmp_path_factory.mktemp("toy"))


def processor_for(setup, config=None):
    return A1Processor(config or setup.config, setup.text_tokenizer, toy_normalizer(setup), setup.image_tokenizer,
                       latents=setup.latents, qa_fn=toy_qa)


def small_cfg(**kw):
    base = dict(steps=20, batch_size=8, lr=3e-3, warmup_steps=2, min_lr=3e-4, checkpoint_every=5, val_every=10,
                val_batches=1, log_every=1, delta=2, csv_logger=True)
    return TrainConfig(**{**base, **kw})


def test_weighted_sampler_respects_weights(setup):
    cfg = small_cfg(source_weights={"sim": 0.6, "lab": 0.3, "human": 0.1}, steps=250)
    dm = A1DataModule(setup.datasets, processor_for(setup), cfg)
    w = dm.sample_weights()
    assert abs(float(w.sum()) - 1) < 1e-9
    sources = torch.cat([torch.full((len(p),), k) for k, p in enumerate(dm.train_parts)])
    draws = torch.multinomial(w, 2000, replacement=True, generator=torch.Generator().manual_seed(0))
    share = torch.bincount(sources[draws], minlength=3).float() / 2000
    assert torch.allclose(share, torch.tensor([0.6, 0.3, 0.1]), atol=0.04), share
    # the DataLoader really uses these weights: source ids of drawn batches
    loader = dm.train_dataloader()
    ids = torch.cat([b["source_id"] for _, b in zip(range(30), loader)])
    share = torch.bincount(ids, minlength=3).float() / len(ids)
    assert torch.allclose(share, torch.tensor([0.6, 0.3, 0.1]), atol=0.08), share
    # a zero weight drops the source; a weighted source without data is an error before training
    assert A1DataModule(setup.datasets, processor_for(setup), small_cfg(source_weights={"sim": 1.0})).sources == ["sim"]
    with pytest.raises(ValueError, match="no dataset"):
        A1DataModule({"sim": setup.datasets["sim"]}, processor_for(setup), small_cfg())


def test_training_can_be_restricted_to_some_tasks():
    """TrainConfig.tasks keeps the episodes stored as those tasks (scene.task; the ablations' task
    groups), whatever their instruction says; None keeps every episode, in order."""
    from types import SimpleNamespace

    import numpy as np

    from a1lib.sim.tasks import TASK_IDS
    from a1lib.train.datamodule import task_episodes

    ids = [TASK_IDS["ZipBag"], TASK_IDS["IngredientPicking"], TASK_IDS["ZipBag"]]
    episode_of = np.array([0, 0, 1, 2, 2, 2])
    ds = SimpleNamespace(num_episodes=3, episode_of=episode_of, features={"scene.task": {}}, root="ds",
                         columns={"scene.task": np.array([[ids[e]] for e in episode_of])})
    assert task_episodes(ds, None) == [0, 1, 2]
    assert task_episodes(ds, ("ZipBag",)) == [0, 2] and task_episodes(ds, ("SortParts",)) == []
    ds.features = {}  # a dataset recorded elsewhere, without the task per frame: refused by name, not guessed
    with pytest.raises(ValueError, match="ds: no scene.task feature"):
        task_episodes(ds, ("ZipBag",))
    with pytest.raises(ValueError, match="tasks must be a non-empty list of task names, got \\['Zip'\\]"):
        TrainConfig(tasks=["Zip"])


def test_lr_schedule():
    cfg = small_cfg(steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-4)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.1) and lr_factor(55, cfg) == pytest.approx(0.55)
    constant = small_cfg(steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-4, schedule="constant")
    assert [lr_factor(s, constant) for s in (0, 9, 10, 55, 100)] == [0.1, 1.0, 1.0, 1.0, 1.0]


def test_one_schedule_for_every_trainer():
    """warmup_cosine: linear warmup, cosine to floor * peak, held there past the end."""
    assert [warmup_cosine(s, 4) for s in range(6)] == pytest.approx([1.0, 0.853553, 0.5, 0.146447, 0.0, 0.0], abs=1e-6)
    lr = [warmup_cosine(s, 40, 2, floor=0.1, peak=2e-3) for s in range(40)]  # the image tokenizer's shape
    assert lr[:3] == pytest.approx([1e-3, 2e-3, 2e-3]) and lr[-1] > 2e-4 and min(lr) == lr[-1]
    assert warmup_cosine(1000, 40, 2, floor=0.1, peak=2e-3) == pytest.approx(2e-4)
    assert lr[1:] == sorted(lr[1:], reverse=True)  # never rises after the warmup


def fixed_loss(model, batch):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return float(model.eval()(batch, generator=g)["loss"])


def test_training_lowers_loss_and_exports_policy(setup, tmp_path):
    proc = processor_for(setup)
    dm = A1DataModule(setup.datasets, proc, small_cfg())
    batch = A1Processor.collate([dm.train_set[i] for i in range(0, len(dm.train_set), 5)])
    before = fixed_loss(A1Model(setup.config), batch)
    # 50 steps: the conv trunk and its grounding head make the early steps a little slower than patches
    result = fit(setup.config, small_cfg(steps=50), setup.datasets, proc, tmp_path / "run", progress=False)
    assert result.global_step == 50 and result.samples_per_s > 0
    policy = A1Policy.from_pretrained(result.policy_dir)
    after = fixed_loss(policy.model, batch)
    assert after < 0.7 * before, (before, after)
    metrics = (tmp_path / "run" / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    for col in ("train/action/sim", "train/action/lab", "train/generation/human", "val/loss", "samples_per_s"):
        assert col in metrics
    assert "train/action/human" not in metrics  # human video never has an action loss
    assert read_checkpoint(result.last_checkpoint)["global_step"] == 50


def test_progress_lines_rule(capsys):
    lines = ProgressLines("demo", 100, every=10, interval_s=3600.0)
    printed = [s for s in range(1, 101) if lines.update(1, samples=8, values=lambda: {"loss": 0.5})]
    lines.close()
    assert printed == [10, 100]  # the first multiple, then (an hour not being up) only the end
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("demo: step 10/100 (10%) | loss 0.5 | ") and "samples/s" in out[0] and "ETA" in out[0]
    assert out[1].startswith("demo: step 100/100 (100%)") and "ETA" not in out[1] and len(out) == 2
    every = ProgressLines("demo", 5, interval_s=0.0)
    assert [s for s in range(1, 6) if every.update()] == [1, 2, 3, 4, 5]
    off = ProgressLines("demo", 5, enabled=False)
    assert not any(off.update() for _ in range(5))
    off.close()
    assert capsys.readouterr().out.count("\n") == 5


def test_plain_progress_and_no_lightning_noise_without_the_bar(setup, tmp_path, capsys):
    """progress=False (dvc repro's --no-progress): plain lines with step/total, the losses, samples/s
    and ETA; the litlogger tip and the LeafSpec deprecation are dropped, other Lightning messages kept."""
    with log_records("lightning.pytorch.utilities.rank_zero") as records:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit(setup.config, small_cfg(steps=6, log_every=2, val_every=3), setup.datasets, processor_for(setup),
                tmp_path / "run", progress=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("run: step")]
    assert lines[0].startswith("run: step 2/6 (33%) | loss ") and "ETA" in lines[0], lines
    assert lines[-1].startswith("run: step 6/6 (100%)") and "val/loss" in lines[-1], lines
    assert len(lines) <= 3 and all("act " in line and "samples/s" in line for line in lines), lines
    messages = [r.getMessage() for r in records]
    assert messages and not any("litlogger" in m for m in messages), messages  # other info lines still pass
    assert not any("LeafSpec" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert logging.getLogger("lightning.pytorch.utilities.rank_zero").filters == []  # only while the Trainer runs


def test_non_finite_loss_stops_and_keeps_last_good(setup, tmp_path):
    class Poison(L.Callback):  # corrupt a weight at step 7: the next loss is NaN
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 7:
                pl_module.model.action_out.weight.data.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"step 7 .*source\(s\) \['(human', ')?lab', 'sim'\]"):
        fit(setup.config, small_cfg(), setup.datasets, processor_for(setup), tmp_path / "run", progress=False,
            extra_callbacks=[Poison()])
    ck = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ck["global_step"] == 5
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())


def test_atomic_checkpoint_survives_failed_save(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 3, "w": torch.ones(4)}, path)

    def disk_full(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"global_step": 4, "w": torch.zeros(4)}, path)
    monkeypatch.undo()
    ck = io.load_checkpoint(path)
    assert ck["global_step"] == 3 and torch.equal(ck["w"], torch.ones(4))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.ckpt: not a readable checkpoint"):
        read_checkpoint(tmp_path / "bad.ckpt")


def test_clear_errors_before_training(setup, tmp_path):
    proc = processor_for(setup)
    fit(setup.config, small_cfg(steps=2, checkpoint_every=1), setup.datasets, proc, tmp_path / "run", progress=False)
    other = toy_model_config(act_hidden=48)
    with pytest.raises(CheckpointError, match="act_hidden: checkpoint 32 vs now 48"):
        check_resume(tmp_path / "run" / "checkpoints" / "last.ckpt", other)
    with pytest.raises(CheckpointError, match="different model config"):
        fit(other, small_cfg(), setup.datasets, processor_for(setup, other), tmp_path / "run", progress=False)
    wrong = toy_model_config(action_dim=5)
    with pytest.raises(ProcessorError, match=r"action_dim=5|'action' have shape \(3,\), the model expects \(5,\)"):
        fit(wrong, small_cfg(), setup.datasets, processor_for(setup, wrong), tmp_path / "run2", progress=False)
    # a fresh model cannot freeze what it never learned
    with pytest.raises(ValueError, match="random, frozen vision path"):
        fit(setup.config, small_cfg(freeze_vision=True), setup.datasets, proc, tmp_path / "run3", progress=False)
    assert not (tmp_path / "run3").exists()


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "a1lib.workflows.synthetic_setup", "--out", str(out), "--steps", "24",
           "--checkpoint-every", "3", "--step-sleep", "0.25"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last = out / "checkpoints" / "last.ckpt"
    killed_at = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            try:
                step = read_checkpoint(last)["global_step"]
            except ValueError:
                step = 0  # being replaced right now: try again
            if step >= 6:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed_at = step
                break
        time.sleep(0.1)
    assert killed_at is not None, proc.communicate()[0].decode()[-2000:]
    assert proc.returncode == -signal.SIGKILL
    interrupted = read_checkpoint(last)["global_step"]  # still readable after the kill
    assert 6 <= interrupted < 24
    done = subprocess.run(cmd[:-2], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"resumed_from={interrupted}" in done.stdout and "global_step=24" in done.stdout
    assert read_checkpoint(last)["global_step"] == 24
    assert (out / "policy" / "model.safetensors").exists()


def test_processes_come_from_the_config_or_torchrun(monkeypatch):
    from a1lib.train.trainer import processes

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert processes(small_cfg()).__dict__ == {"devices": 1, "nodes": 1, "strategy": "auto"}
    assert processes(small_cfg(devices=2)).__dict__ == {"devices": 2, "nodes": 1, "strategy": "ddp"}
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun --nnodes 2 --nproc_per_node 2
    monkeypatch.setenv("WORLD_SIZE", "4")
    p = processes(small_cfg())
    assert (p.devices, p.nodes, p.world, p.strategy) == (2, 2, 4, "ddp")
    with pytest.raises(ValueError, match="batch_size 6 .* does not split evenly over 4 processes"):
        processes(small_cfg(batch_size=6))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU answer")
def test_fsdp_on_cpu_is_refused_by_name():
    from a1lib.train.trainer import processes

    with pytest.raises(ValueError, match="fsdp.*CUDA GPUs only.*use strategy 'ddp'"):
        processes(small_cfg(strategy="fsdp"))
    with pytest.raises(ValueError, match="strategy 'deepspeed' not in"):
        small_cfg(strategy="deepspeed")
