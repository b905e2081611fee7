"""``a1 data generate`` and ``a1 data info``."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from a1lib.constants import SOURCES
from a1lib.data.errors import DatasetError
from a1lib.data.generate import DataGenConfig, format_summary
from a1lib.data.generate import generate as generate_datasets
from a1lib.data.info import summary
from a1lib.workflows.cli import Command
from a1lib.workflows.params import load_section


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--preset", default=None, help="preset to use (default: the file's `preset`)")
    parser.add_argument("--out", default="data", help="output folder (default: data)")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset of sim,lab,human")
    parser.add_argument("--no-progress", action="store_true",
                        help="plain progress lines instead of bars (the default when stderr is not a terminal)")


def run_generate(args: argparse.Namespace) -> int:
    cfg = load_section("data", DataGenConfig, path=args.params, preset=args.preset)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    print(f"generating {sources} into {args.out}/ with {dataclasses.asdict(cfg)}")
    summaries = generate_datasets(cfg, args.out, sources, progress=not args.no_progress and sys.stderr.isatty())
    print(format_summary(summaries))
    return 0


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="dataset root (the folder holding meta/info.json)")
    parser.add_argument("--deep", action="store_true", help="also decode every image and video frame")


def run_info(args: argparse.Namespace) -> int:
    try:
        print(summary(args.path, deep=args.deep))
    except DatasetError as e:
        print(f"error: {e}")
        return 1
    print("ok: dataset is valid")
    return 0


generate = Command(add_generate_arguments, run_generate)
info = Command(add_info_arguments, run_info)
