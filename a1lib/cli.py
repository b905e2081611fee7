"""The ``a1`` command line: one entry point that drives every pipeline step.

Each command lives in the module that owns the concept and exposes two functions:
``add_arguments(parser)`` and ``run(args) -> int`` (or names an object in it that does, as
``"module:object"``). Modules are imported lazily so that
``a1 --help`` answers instantly (importing torch takes seconds).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (group, command) -> (module, one-line help). A command with group None is top level.
COMMANDS: dict[tuple[str | None, str], tuple[str, str]] = {
    ("data", "generate"): ("a1lib.data.generate", "generate the sim / lab / human datasets (LeRobot v3.0)"),
    ("data", "info"): ("a1lib.data.info", "summarise a dataset on disk and validate it"),
    ("tokenizer", "train"): ("a1lib.models.tokenizer_cli", "train the image tokenizer (VAE) and the text tokenizer"),
    ("tokenizer", "encode"): ("a1lib.models.latent_cache", "encode every dataset frame once into the latent cache"),
    (None, "pretrain-vision"): ("a1lib.train.vision", "train the conv trunk + grounding head first (where is everything?)"),
    (None, "pretrain"): ("a1lib.train.pretrain", "joint pretraining on the weighted sim / lab / human mix"),
    (None, "finetune"): ("a1lib.train.finetune", "fine-tune a pretrained A1Policy on the lab demos"),
    (None, "privileged"): ("a1lib.train.privileged", "train the privileged-state reference policy (reads the scene, not pixels)"),
    (None, "evaluate"): ("a1lib.eval.evaluate", "closed-loop success rates (95% Wilson CIs) and rollout GIFs"),
    (None, "perception"): ("a1lib.eval.perception", "localisation error and imagined-future error on held-out episodes"),
    (None, "figures"): ("a1lib.viz.figures", "training curves, success bars, imagined futures, results table"),
    (None, "ship"): ("a1lib.shipped", "commit the pipeline's fine-tuned policy to policies/a1-cpu with its provenance"),
    (None, "serve"): ("a1lib.serve.server", "serve a policy over websockets (openpi protocol)"),
    ("ablation", "run"): ("a1lib.eval.ablation", "train (all seeds) and evaluate one ablation variant"),
    ("ablation", "train"): ("a1lib.eval.ablation:TrainCommand", "train one seed of one ablation variant"),
    ("ablation", "report"): ("a1lib.viz.ablation_figures", "ablation figures and the paper-vs-ours claims table"),
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
    module_name, help_ = COMMANDS[key]
    module_name, _, attr = module_name.partition(":")  # "module" or "module:object"
    module = importlib.import_module(module_name)
    if attr:
        module = getattr(module, attr)
    parser = argparse.ArgumentParser(prog="a1 " + " ".join(k for k in key if k), description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
