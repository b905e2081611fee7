"""GPU smoke run: a short `gpu`-preset pretraining with bf16 through the real training path (Lightning
``fit``, the DDP/FSDP code included), then what it achieved. One command on a CUDA machine:

    bash bench/gpu_smoke.sh                 # sets up, then runs this with the defaults
    .venv/bin/python bench/bench_gpu.py [--steps 60] [--batch 128] [--strategy auto|ddp|fsdp]
    torchrun --nproc_per_node 8 bench/bench_gpu.py   # every GPU of the machine (batch split over them)

Data: the synthetic toy datasets (a1lib.workflows.synthetic_setup) at the gpu preset's image size,
so nothing has to be generated or trained first; the model is the gpu preset (its sizes from
A1Config.PRESETS; the toy data's 4-d state and 3-d action instead of 6 and 5). Prints:

* training samples/s (after warm-up steps, from the run's own counter) and model FLOPs per sample
  (torch.utils.flop_counter, forward + backward), so MFU = FLOPs/s achieved / the GPU's peak dense
  bf16 FLOP/s (a table of common GPUs; otherwise a large bf16 matmul measured here stands in);
* chunk latency at batch 1 (KV-cached, fused sampler, the policy's path), median over repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from a1lib.models.configuration_a1 import A1Config  # noqa: E402
from a1lib.models.modeling_a1 import A1Model, random_batch  # noqa: E402
from a1lib.models.processor import A1Processor  # noqa: E402
from a1lib.train.config import TrainConfig  # noqa: E402
from a1lib.train.trainer import fit  # noqa: E402
from a1lib.workflows.synthetic_setup import make_toy_setup, toy_normalizer, toy_qa  # noqa: E402

# Peak dense bf16 tensor-core FLOP/s (vendor data sheets, without sparsity), by device-name substring.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
             "A10": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12}


def gpu_peak(device: torch.device) -> tuple[float, str]:
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16.items():
        if key in name:
            return peak, f"{name}: data-sheet peak"
    n = 8192
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * 10 / (time.perf_counter() - t0), f"{name}: measured 8192^3 bf16 matmul"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=128, help="per step over all processes")
    ap.add_argument("--strategy", default="auto", choices=("auto", "ddp", "fsdp"))
    ap.add_argument("--latency-repeats", type=int, default=50)
    ap.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--allow-cpu", action="store_true",
                    help="without a GPU, run anyway in fp32 (checks the script, tiny --batch)")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("bench_gpu: no CUDA GPU visible to torch (torch.cuda.is_available() is False); "
              "run bench/bench_model.py for the CPU figures", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="a1_gpu_smoke_"))
    # the gpu preset's every size; the toy data's state and action widths
    sizes = {k: v for k, v in A1Config.preset("gpu").to_dict().items() if k not in ("state_dim", "action_dim")}
    rank = int(os.environ.get("RANK", 0))
    setup = make_toy_setup(out / f"data_rank{rank}", episodes=8, length=40, **sizes)  # the same bytes on every rank
    config = setup.config
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=3e-4, warmup_steps=5, min_lr=3e-5,
                      precision="bf16" if cuda else "32", checkpoint_every=args.steps, val_every=args.steps,
                      val_batches=1, log_every=min(10, args.steps), delta=2, num_workers=4 if cuda else 0,
                      strategy=args.strategy)
    processor = A1Processor(config, setup.text_tokenizer, toy_normalizer(setup), setup.image_tokenizer,
                            latents=setup.latents, qa_fn=toy_qa)
    result = fit(config, cfg, setup.datasets, processor, out / "run", resume=False, progress=False)
    if result.rank != 0:
        return 0

    device = torch.device("cuda" if cuda else "cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model = A1Model(config).to(device)
    batch = {k: v.to(device) for k, v in random_batch(config, 8, seed=0).items()}
    with FlopCounterMode(display=False) as counter, torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        model(batch)["loss"].backward()
    flops_per_sample = counter.get_total_flops() / 8
    peak, source = gpu_peak(device) if cuda else (float("nan"), "no GPU (a CPU dry run)")
    gpus = result.world_size
    achieved = flops_per_sample * (result.samples_per_s or 0.0)
    print(f"GPUs: {gpus} x {source} {peak / 1e12:.0f} TFLOP/s bf16")
    print(f"params: {model.param_counts()['total'] / 1e6:.1f}M; "
          f"train FLOPs per sample (fwd+bwd): {flops_per_sample / 1e9:.2f} GFLOP")
    print(f"training: {result.samples_per_s or 0:.0f} samples/s over {gpus} process(es), batch {args.batch}, "
          f"strategy {args.strategy}, {'bf16' if cuda else 'fp32'} -> {achieved / 1e12:.1f} TFLOP/s "
          f"= MFU {100 * achieved / (peak * gpus):.1f}%")

    model.eval()
    b1 = {k: v.to(device) for k, v in random_batch(config, 1, seed=1).items()}
    noise = torch.randn(1, config.chunk_size, config.action_dim, device=device)
    times = []
    for i in range(args.latency_repeats + 5):
        sync()
        t0 = time.perf_counter()
        model.sample_actions(b1, noise=noise)
        sync()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    print(f"chunk latency, batch 1, {config.num_inference_steps} Euler steps (KV cache, fused), fp32: "
          f"median {statistics.median(times) * 1e3:.1f} ms over {len(times)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
