"""The shipped policy: a trained A1 policy committed with the repository, and how it was made.

Training the cpu preset takes about an hour and a half on a laptop; a student opening notebook 07,
someone exploring imagined futures (09) and a lab running the robot notebook (10) should see the
committed run's policy act before they train their own. ``a1 ship`` copies the pipeline's fine-tuned
policy (``artifacts/finetune/policy``: safetensors, JSON config, normaliser, tokenizers) to
``policies/a1-cpu/`` and writes ``PROVENANCE.json`` beside it: the ``dvc.lock`` entries of every stage
that made it (their params and the md5 of each input and output) and the evaluation metrics that
``a1 evaluate`` reproduces on it, on the fixed evaluation seeds.

    a1 ship                                    # after `dvc repro` of the cpu preset
    policy_dir = shipped.default_policy_dir()  # policies/a1-cpu (or the pipeline's, if asked)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from a1lib.io import atomic_directory

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIR = ROOT / "policies" / "a1-cpu"
PROVENANCE = "PROVENANCE.json"
MAX_MB = 20.0  # a policy that travels with the repository stays small
STAGES = ("tokenizer", "latents", "vision", "pretrain", "finetune", "evaluate")  # what made it, in order


def default_policy_dir() -> Path:
    """The committed policy (``policies/a1-cpu``); raises with the way out if it is missing."""
    if not (SHIPPED_DIR / "policy.json").is_file():
        raise FileNotFoundError(f"{SHIPPED_DIR}: no shipped policy here; run `bash scripts/run.sh` then `a1 ship`, "
                                "or pass the directory of a trained policy (artifacts/finetune/policy)")
    return SHIPPED_DIR


def provenance(policy_dir: str | Path = SHIPPED_DIR) -> dict[str, Any]:
    return json.loads((Path(policy_dir) / PROVENANCE).read_text())


def _size_mb(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) / 2**20


def ship(policy: str | Path = "artifacts/finetune/policy", out: str | Path = SHIPPED_DIR,
         lock: str | Path = "dvc.lock", metrics: str | Path = "experiments/eval/metrics.json",
         name: str = "a1") -> Path:
    """Copy ``policy`` to ``out`` (atomically: a temp directory, then a rename) with its provenance."""
    policy, out, lock, metrics = Path(policy), Path(out), Path(lock), Path(metrics)
    if not (policy / "policy.json").is_file():
        raise FileNotFoundError(f"{policy}: not an A1Policy directory (no policy.json); run `dvc repro finetune`")
    for f in (lock, metrics):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing; ship a policy only after `dvc repro` has run the pipeline")
    size = _size_mb(policy)
    if size > MAX_MB:
        raise ValueError(f"{policy}: {size:.1f} MB, over the {MAX_MB:.0f} MB a shipped policy may take")
    stages = yaml.safe_load(lock.read_text())["stages"]
    missing = [s for s in STAGES if s not in stages]
    if missing:
        raise ValueError(f"{lock}: no entry for stage(s) {missing}; run `dvc repro evaluate` first")
    evaluation = json.loads(metrics.read_text())
    if name not in evaluation.get("rows", {}):
        raise ValueError(f"{metrics}: no {name!r} row; was it written by `a1 evaluate --policy ... --name {name}`?")
    record = {
        "source": str(policy),
        "size_mb": round(size, 2),
        "dvc_lock": {s: stages[s] for s in STAGES},
        "evaluation": {"row": name, "seeds": evaluation["seeds"], "episodes_per_task": evaluation["episodes_per_task"],
                       "settings": evaluation["rows"][name]["settings"], "overall": evaluation["rows"][name]["overall"],
                       "per_task": {t: {k: v[k] for k in ("successes", "episodes", "success_per_episode", "seeds")}
                                    for t, v in evaluation["rows"][name]["per_task"].items()}},
        "reproduce": f"a1 evaluate --policy {out} --reference '' --gifs-per-task 0",
    }
    with atomic_directory(out) as tmp:
        shutil.copytree(policy, tmp, dirs_exist_ok=True)
        (tmp / PROVENANCE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out
