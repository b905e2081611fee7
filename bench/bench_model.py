"""Size and speed of A1Model on this machine: one run, one table.

    .venv/bin/python bench/bench_model.py [--preset cpu] [--batch 32] [--threads N]

Reports
* sizing: parameters per expert, tokens per sample;
* training throughput (fp32, forward + backward + AdamW step) and the matmul FLOP/s it achieves
  (counted with torch.utils.flop_counter.FlopCounterMode) against a large 2048x2048 fp32 matmul
  measured in the same run;
* inference latency per action chunk at batch 1 (at the benchmark thread count and at 1 thread,
  since batch-1 work is too small to split over cores): KV-cached with the fused sampler (the
  default, fused_sampler.py) and with the readable steps (run_experts, ``fused=False``), timed in
  turn so that load changes hit both alike, and uncached (the whole sequence every step);
* how long pretraining would take at the measured throughput.

Timings are medians over repeats; the load average is printed because the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from a1lib.models.configuration_a1 import A1Config  # noqa: E402
from a1lib.models.modeling_a1 import A1Model, random_batch  # noqa: E402


def timed(fn, repeats: int, warmup: int = 2, cpu: bool = False, spread: bool = False):
    """Median wall seconds per call; with cpu=True also the median CPU seconds of this process
    (on a shared, overloaded machine the CPU time is closer to what an idle machine would show);
    with spread=True also the 10th and 90th percentile wall seconds (this machine is noisy)."""
    for _ in range(warmup):
        fn()
    wall, proc = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        proc.append(time.process_time() - c0)
    out = [statistics.median(wall)]
    if cpu:
        out.append(statistics.median(proc))
    if spread:
        deciles = statistics.quantiles(wall, n=10)
        out.append((deciles[0], deciles[-1]))
    return tuple(out) if len(out) > 1 else out[0]


def timed_in_turn(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """timed(fn, cpu=True, spread=True) for several functions, called in turn within each repeat,
    so a change in the machine's load hits all of them alike: {name: (wall, cpu, (p10, p90))}."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall, proc = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t0)
            proc[k].append(time.process_time() - c0)
    out = {}
    for k in fns:
        deciles = statistics.quantiles(wall[k], n=10)
        out[k] = (statistics.median(wall[k]), statistics.median(proc[k]), (deciles[0], deciles[-1]))
    return out


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / timed(lambda: a @ b, repeats)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--train-steps", type=int, default=6)
    ap.add_argument("--latency-repeats", type=int, default=60)
    ap.add_argument("--target-minutes", type=float, default=45.0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows: list[tuple[str, str]] = []
    add = lambda k, v: (rows.append((k, v)), print(f"{k:<48} {v}", flush=True))  # noqa: E731
    add("load average (1, 5, 15 min) at start", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    add("torch threads / cpu_count", f"{torch.get_num_threads()} / {os.cpu_count()}")

    thread_counts = sorted({args.threads, 1}, reverse=True)
    peaks = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        peaks[threads] = matmul_flops()
        add(f"2048x2048 fp32 matmul, {threads} thread(s)", f"{peaks[threads] / 1e9:.1f} GFLOP/s")
    torch.set_num_threads(args.threads)

    config = A1Config.preset(args.preset)
    model = A1Model(config)
    counts = model.param_counts()
    add(f"params ({args.preset}): und / gen / act / total",
        " / ".join(f"{counts[k] / 1e6:.2f}M" for k in ("und", "gen", "act", "total")))
    batch = random_batch(config, args.batch, seed=0)
    Lq, La = batch["qa_question_tokens"].shape[1], batch["qa_answer_tokens"].shape[1]
    add("tokens per sample: action pass (img+text+gen+1+H)",
        f"{config.max_tokens()} = {config.num_image_tokens}+{config.max_text_len}+{config.num_gen_tokens}+1+{config.chunk_size}")
    add("tokens per sample: understanding pass", f"{config.num_image_tokens + Lq + La} (img + {Lq} q + {La} a)")

    # --- training throughput ---------------------------------------------------------------
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01)

    def train_step():
        out = model(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    with FlopCounterMode(display=False) as counter:
        out = model(batch)
        out["loss"].backward()
    step_flops = counter.get_total_flops()
    opt.zero_grad(set_to_none=True)
    add("train FLOPs per sample (fwd+bwd, FlopCounterMode)", f"{step_flops / args.batch / 1e6:.1f} MFLOP")
    sps = 0.0
    for threads in thread_counts:
        torch.set_num_threads(threads)
        peak = peaks[threads]
        step_s, step_cpu = timed(train_step, args.train_steps, warmup=2, cpu=True)
        sps = max(sps, args.batch / step_s)
        add(f"train step, batch {args.batch} (fwd+bwd+AdamW), {threads} thread(s)",
            f"{step_s * 1e3:.0f} ms wall -> {args.batch / step_s:.0f} samples/s; "
            f"{step_flops / step_s / 1e9:.2f} GFLOP/s = {100 * step_flops / step_s / peak:.0f}% of the big matmul at these threads "
            f"(CPU time {step_cpu * 1e3:.0f} ms)")
    torch.set_num_threads(args.threads)

    # --- inference latency ----------------------------------------------------------------------
    model.eval()
    b1 = random_batch(config, 1, seed=1)
    noise = torch.randn(1, config.chunk_size, config.action_dim)
    samplers = {"fused": lambda steps=None: model.sample_actions(b1, noise=noise, num_steps=steps),
                "readable": lambda steps=None: model.sample_actions(b1, noise=noise, num_steps=steps, fused=False)}
    lat = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        t = timed_in_turn(samplers, args.latency_repeats)
        uncached = timed(lambda: model.sample_actions(b1, noise=noise, use_cache=False), max(3, args.latency_repeats // 3))
        lat[threads] = {"fused": t["fused"][0], "readable": t["readable"][0], "uncached": uncached}
        L = lat[threads]
        add(f"chunk latency, batch 1, {config.num_inference_steps} steps, {threads} thread(s)",
            " | ".join(f"cached {k} {w * 1e3:.1f} ms (p10 {p10 * 1e3:.1f}, p90 {p90 * 1e3:.1f}, CPU {c * 1e3:.1f})"
                       for k, (w, c, (p10, p90)) in t.items())
            + f" | uncached {uncached * 1e3:.1f} ms | cached speed-up x{uncached / L['fused']:.1f} fused, "
            f"x{uncached / L['readable']:.1f} readable | readable / fused x{L['readable'] / L['fused']:.2f}")
    # split each cached latency into the once-per-chunk part and the per-Euler-step part (1 thread)
    torch.set_num_threads(1)
    one = timed_in_turn({k: (lambda f=f: f(1)) for k, f in samplers.items()}, args.latency_repeats)
    split = []
    for k in samplers:
        per_step = (lat[1][k] - one[k][0]) / max(1, config.num_inference_steps - 1)
        split.append(f"{k}: fixed {(one[k][0] - per_step) * 1e3:.1f} ms + {per_step * 1e3:.2f} ms per Euler step")
    add("cached split, 1 thread (from a 1-step run)", "; ".join(split) + " (fixed: validate, embed, prefix+middle pass)")
    torch.set_num_threads(args.threads)
    best = min(L["fused"] for L in lat.values())
    add("targets: cached <= 15 ms, >= 3x vs uncached (fused, the default)",
        f"best cached {best * 1e3:.1f} ms ({'met' if best <= 0.015 else 'NOT met'}); speed-up "
        + ", ".join(f"x{L['uncached'] / L['fused']:.1f} @{t}t" for t, L in lat.items()))

    # --- pretraining estimate ----------------------------------------------------------------------
    hours = 20000 * 32 / sps / 3600
    add(f"20k steps x batch 32 at the best throughput ({sps:.0f}/s)", f"{hours * 60:.0f} min")
    fit = int(args.target_minutes * 60 * sps)
    add(f"samples that fit in {args.target_minutes:.0f} min", f"{fit:,} (e.g. {fit // 32:,} steps x 32, {fit // 64:,} x 64)")
    add("load average at end", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
