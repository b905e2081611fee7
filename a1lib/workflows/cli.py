"""The ``a1`` command line: one entry point that drives every pipeline step.

Each command is a ``Command`` (``add_arguments(parser)``, ``run(args) -> int``) in a module of
``a1lib.workflows``, named here as ``"module:object"``. Modules are imported lazily so that
``a1 --help`` answers instantly (importing torch takes seconds).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, NamedTuple


class Command(NamedTuple):
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


W = "a1lib.workflows."
# (group, command) -> ("module:object", one-line help). A command with group None is top level.
COMMANDS: dict[tuple[str | None, str], tuple[str, str]] = {
    ("data", "generate"): (W + "data:generate", "generate the sim / lab / human datasets (LeRobot v3.0)"),
    ("data", "info"): (W + "data:info", "summarise a dataset on disk and validate it"),
    ("tokenizer", "train"): (W + "tokenizer:train", "train the image tokenizer (VAE) and the text tokenizer"),
    ("tokenizer", "encode"): (W + "tokenizer:encode", "encode every dataset frame once into the latent cache"),
    (None, "pretrain-vision"): (W + "training:vision",
                                "train the conv trunk + grounding head first (where is everything?)"),
    (None, "pretrain"): (W + "training:pretrain", "joint pretraining on the weighted sim / lab / human mix"),
    (None, "finetune"): (W + "training:finetune", "fine-tune a pretrained A1Policy on the lab demos"),
    (None, "privileged"): (W + "training:privileged",
                           "train the privileged-state reference policy (reads the scene, not pixels)"),
    (None, "evaluate"): (W + "evaluation:evaluate", "closed-loop success rates (95% Wilson CIs) and rollout GIFs"),
    (None, "perception"): (W + "evaluation:perception",
                           "localisation error and imagined-future error on held-out episodes"),
    (None, "figures"): (W + "evaluation:figures", "training curves, success bars, imagined futures, results table"),
    (None, "ship"): (W + "ship:ship", "commit the pipeline's fine-tuned policy to policies/a1-cpu with its provenance"),
    (None, "serve"): (W + "serve:serve", "serve a policy over websockets (openpi protocol)"),
    ("ablation", "run"): (W + "ablation:run", "train (all seeds) and evaluate one ablation variant"),
    ("ablation", "train"): (W + "ablation:train", "train one seed of one ablation variant"),
    ("ablation", "report"): (W + "ablation:report", "ablation figures and the paper-vs-ours claims table"),
    ("ablation", "sweep"): (W + "ablation_sweep:sweep",
                            "the trained foresight variants and the experts against conveyor / turntable speed"),
}

GROUP_HELP = {
    "data": "simulated datasets in LeRobotDataset v3.0 format",
    "tokenizer": "the frozen image tokenizer, the text tokenizer and the latent cache",
    "ablation": "the paper's claims as model variants (a1lib.eval.ablation)",
}


def _top_parser() -> argparse.ArgumentParser:
    lines = []
    for (group, name), (_, help_) in COMMANDS.items():
        command = f"a1 {group} {name}" if group else f"a1 {name}"
        lines.append(f"  {command:<20} {help_}")
    return argparse.ArgumentParser(
        prog="a1",
        usage="a1 [-h] <command> [<args>]   (or a1 <group> <command> [<args>])",
        description="A1 workbench: imagine, then act. Every pipeline step is a subcommand.",
        epilog="commands:\n" + "\n".join(lines) + "\n\nRun `a1 <command> --help` for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    words = [a for a in argv[:2] if not a.startswith("-")]
    key = None
    if len(words) >= 2 and (words[0], words[1]) in COMMANDS and argv[:2] == words[:2]:
        key, rest = (words[0], words[1]), argv[2:]
    elif words and (None, words[0]) in COMMANDS and argv[0] == words[0]:
        key, rest = (None, words[0]), argv[1:]
    if key is None:
        top = _top_parser()
        if words and words[0] in GROUP_HELP:
            group = words[0]
            lines = [f"  a1 {group} {n:<10} {h}" for (g, n), (_, h) in COMMANDS.items() if g == group]
            text = f"usage: a1 {group} <command> [<args>]\n\n{GROUP_HELP[group]}\n\ncommands:\n" + "\n".join(lines)
            text += f"\n\nRun `a1 {group} <command> --help` for its options."
            if any(a in ("-h", "--help") for a in argv[1:2]) or len(argv) == 1:
                print(text)
                return 0 if len(argv) > 1 else 2
            top.error(f"`a1 {group}`: unknown command {argv[1]!r}; one of "
                      f"{', '.join(n for (g, n) in COMMANDS if g == group)}")
        if argv and argv[0] not in ("-h", "--help"):
            top.error(f"unknown command: {' '.join(argv[:2])}")
        top.print_help()
        return 0
    target, help_ = COMMANDS[key]
    module_name, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module_name), attr)
    parser = argparse.ArgumentParser(prog="a1 " + " ".join(k for k in key if k), description=help_)
    command.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(command.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
