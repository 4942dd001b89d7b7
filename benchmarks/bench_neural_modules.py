"""N2SNet's networks at equal training time, on MNIST digits (issue 11).

Each configuration trains for the same budget of CPU time of the process (one ``fit`` on
4000 noisy digits, sigma 0.4, with ``N2SNet(max_time=budget, clock='process')``: the
fit stops after the batch that spends it, and the cosine learning-rate schedule runs
over it; ``--clock wall`` for elapsed time), then the 1000 held-out digits are
denoised: PSNR of the one-pass (ordinary), J-invariant, posterior
and default (``output='auto'``: posterior or one pass by estimated risk) outputs, and the
time of the J-invariant inference (BabyUnet: 16 masked passes; the blind-spot nets: one
pass), and its speed-up over the reference code's ``infer_full_image`` (16 + 1 passes of
its BabyUnet, batch 32), timed in the same run after the configurations (the target of
issue 11: >= 10x). ``output='auto'`` (the default) trains the posterior head;
``BabyUnet, no head`` is the former default (``output='ordinary'``), to show what the
head costs.

Run: ``python benchmarks/bench_neural_modules.py [--budget 150] [--threads 2]
[--only babyunet shuffled ...]``; a configuration may carry N2SNet parameters in
brackets, e.g. ``--only babyunet "dbsn[module__width=24,lr=0.005]"``; ``--speed-only
[--rounds 2]`` times the J-invariant inference alone (nets after one training step:
the time does not depend on the weights), the reference and the configurations in
interleaved rounds, best of each.
"""

import argparse
import ast
import functools
import subprocess
import time

import torch
from bench_neural import load_mnist, psnr
from reference_n2s_loop import reference_invariant

from sklearn_n2s.neural import (
    BabyUnet,
    BlindSpotUnet,
    DilatedBlindSpotNet,
    N2SNet,
    ShuffledBlindSpotUnet,
)

CONFIGS = {
    "babyunet": ("BabyUnet (masked, default)", BabyUnet, {}),
    "babyunet-nohead": ("BabyUnet, no head (output='ordinary')", BabyUnet,
                        {"output": "ordinary"}),
    "blindspot": ("BlindSpotUnet", BlindSpotUnet, {}),
    "dbsn": ("DilatedBlindSpotNet", DilatedBlindSpotNet, {}),
    "shuffled": ("ShuffledBlindSpotUnet", ShuffledBlindSpotUnet, {}),
}


def configuration(text):
    """``(name, module, params)`` of ``key`` or ``key[param=value,...]`` (values read as
    Python literals when they are)."""
    key, _, extra = text.partition("[")
    if key not in CONFIGS:
        raise argparse.ArgumentTypeError(f"{key!r} is not one of {sorted(CONFIGS)}")
    name, module, params = CONFIGS[key]
    added = {}
    for item in filter(None, extra.rstrip("]").split(",")):
        param, _, value = item.partition("=")
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
        added[param.strip()] = value
    if added:
        name += " [" + ", ".join(f"{k}={v!r}" for k, v in added.items()) + "]"
    return name, module, {**params, **added}


def train_for(module, noisy_train, budget, params, clock):
    """One fit for ``budget`` seconds of ``clock``; ``(net, epochs, steps, clock s, wall s)``."""
    net = N2SNet(module, **{"batch_size": 32, "random_state": 0, "lr": 3e-3,
                            "max_time": budget, "clock": clock, **params})
    start = time.perf_counter()
    net.fit(noisy_train)
    wall = time.perf_counter() - start
    spent = dict(net.callbacks_)["time_budget"]
    return net, len(net.history_), spent.steps_, spent.elapsed_, wall


def speed_only(noisy_train, noisy_test, keys, rounds):
    """Best-of-``rounds`` seconds of each J-invariant inference, interleaved."""
    runs = {"reference infer_full_image (16 + 1 passes)":
            lambda: reference_invariant(BabyUnet(), noisy_test)}
    for name, module, params in keys:
        net = N2SNet(module, **{"batch_size": 32, "random_state": 0, **params, "max_steps": 1})
        runs[name] = functools.partial(net.fit(noisy_train[:64]).invariant_transform,
                                       noisy_test)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    reference = best.pop(next(iter(runs)))
    print(f"| method | seconds (best of {rounds}) | speed-up over the reference |")
    print("|---|---:|---:|")
    print(f"| reference infer_full_image (16 + 1 passes, batch 32) | {reference:.2f} | 1.0x |")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {reference / seconds:.1f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0,
                        help="seconds of --clock per configuration")
    parser.add_argument("--clock", choices=["process", "wall"], default="process",
                        help="process: CPU time of this process (all threads); wall")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="+", type=configuration,
                        default=[configuration(key) for key in CONFIGS],
                        help="configurations: a key, or key[param=value,...]")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    noisy_train, _, noisy_test, clean_test = load_mnist(4000, 1000)
    if args.speed_only:
        print(f"# J-invariant inference of 1000 digits, torch {torch.__version__}, "
              f"{args.threads} threads\n")
        speed_only(noisy_train, noisy_test, args.only, args.rounds)
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"\n`uptime`: {load}")
        return
    print(f"# N2SNet modules at equal training time ({args.budget:.0f} s of the {args.clock} "
          f"clock each, max_time), MNIST 4000/1000, sigma 0.4, torch {torch.__version__}, "
          f"{args.threads} threads\n")
    print(f"noisy PSNR {psnr(noisy_test, clean_test):.2f} dB\n")
    print("| module | steps (epochs) | trained s (clock / wall) | ordinary dB "
          "| J-invariant dB | posterior dB | transform (default output) dB "
          "| J-invariant inference of 1000 digits (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    inference = {}
    for name, module, params in args.only:
        net, epochs, steps, spent, wall = train_for(module, noisy_train, args.budget, params,
                                                    args.clock)
        default = psnr(net.transform(noisy_test), clean_test)
        fitted = net.output
        ordinary = psnr(net.set_params(output="ordinary").transform(noisy_test), clean_test)
        posterior = ""
        if net.posterior_head_:
            value = psnr(net.set_params(output="posterior").transform(noisy_test), clean_test)
            posterior = f"{value:.2f}"
        net.set_params(output=fitted)
        start = time.perf_counter()
        invariant = net.invariant_transform(noisy_test)
        t_inv = time.perf_counter() - start
        inference[name] = t_inv
        print(f"| {name} | {steps} ({epochs}) | {spent:.1f} / {wall:.1f} | {ordinary:.2f} "
              f"| {psnr(invariant, clean_test):.2f} "
              f"| {posterior} | {default:.2f} ({fitted}) | {t_inv:.2f} |", flush=True)
    # The reference's inference time does not depend on its weights: an untrained net.
    torch.manual_seed(0)
    start = time.perf_counter()
    reference_invariant(BabyUnet(), noisy_test)
    t_ref = time.perf_counter() - start
    print(f"\nreference infer_full_image (16 + 1 passes, batch 32): {t_ref:.2f} s; "
          "speed-up of each J-invariant inference: " + ", ".join(
              f"{name} {t_ref / t:.1f}x" for name, t in inference.items()))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n`uptime`: {load}")


if __name__ == "__main__":
    main()
