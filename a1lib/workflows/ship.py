"""``a1 ship``: commit the pipeline's fine-tuned policy to policies/a1-cpu with its provenance."""

from __future__ import annotations

import argparse

from a1lib.shipped import ROOT, SHIPPED_DIR, provenance
from a1lib.shipped import ship as ship_policy
from a1lib.workflows.cli import Command


def add_ship_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default="artifacts/finetune/policy", help="the pipeline's fine-tuned policy")
    parser.add_argument("--out", default=str(SHIPPED_DIR.relative_to(ROOT)), help="where the shipped policy lives")
    parser.add_argument("--lock", default="dvc.lock", help="the lock file of the run that made the policy")
    parser.add_argument("--metrics", default="experiments/eval/metrics.json", help="that run's evaluation metrics")


def run_ship(args: argparse.Namespace) -> int:
    out = ship_policy(args.policy, args.out, args.lock, args.metrics)
    p = provenance(out)
    o = p["evaluation"]["overall"]
    print(f"shipped {args.policy} -> {out} ({p['size_mb']} MB); committed success {o['successes']}/{o['episodes']}")
    return 0


ship = Command(add_ship_arguments, run_ship)
