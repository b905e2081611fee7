"""The top floor: every ``a1`` command, all reading of ``params.yaml``, and every multi-stage run.

Commands parse their arguments here, read their section of params.yaml into the typed config of the
layer that owns it (``a1lib.workflows.params``), call that layer's functions and print or write the
results. Nothing below this folder imports argparse, the CLI or params.yaml.

    cli.py            ``a1``: the command table and dispatch
    params.py         params.yaml -> typed configs (A1Config, TrainConfig, each step's section)
    data.py           a1 data generate | info
    tokenizer.py      a1 tokenizer train | encode
    training.py       a1 pretrain-vision | pretrain | finetune | privileged
    evaluation.py     a1 evaluate | perception | figures
    ablation.py       a1 ablation run | train | report
    ablation_sweep.py a1 ablation sweep
    ship.py           a1 ship
    serve.py          a1 serve
    quick_policy.py   every stage in miniature: a real trained ci policy in a minute (notebooks, tests)
    synthetic_setup.py a complete tiny training setup on synthetic data in seconds (unit tests)
"""
