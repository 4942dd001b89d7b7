"""N2SNet's networks at equal training time, on MNIST digits (issue 11).

Each configuration trains for the same wall-clock budget (epochs of 4000 noisy digits,
sigma 0.4, one ``partial_fit`` epoch at a time until the budget is spent), then the 1000
held-out digits are denoised: PSNR of the one-pass (ordinary), J-invariant, posterior
and default (``output='auto'``: posterior or one pass by estimated risk) outputs, and the
time of the J-invariant inference (BabyUnet: 16 masked passes; the blind-spot nets: one
pass). ``output='auto'`` (the default) trains the posterior head; ``BabyUnet, no head``
is the former default (``output='ordinary'``), to show what the head costs.

Run: ``python benchmarks/bench_neural_modules.py [--budget 150] [--threads 2]
[--only babyunet dbsn ...]``
"""

import argparse
import subprocess
import time

import torch
from bench_neural import load_mnist, psnr

from sklearn_n2s.neural import BabyUnet, BlindSpotUnet, DilatedBlindSpotNet, N2SNet

CONFIGS = {
    "babyunet": ("BabyUnet (masked, default)", BabyUnet, {}),
    "babyunet-nohead": ("BabyUnet, no head (output='ordinary')", BabyUnet,
                        {"output": "ordinary"}),
    "blindspot": ("BlindSpotUnet", BlindSpotUnet, {}),
    "dbsn": ("DilatedBlindSpotNet", DilatedBlindSpotNet, {}),
}


def train_for(module, noisy_train, budget, params):
    net = N2SNet(module, max_epochs=1, batch_size=32, random_state=0, lr=3e-3,
                 max_steps=None, **params)
    start, epochs = time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        net.partial_fit(noisy_train)
        epochs += 1
    return net, epochs, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0, help="seconds per module")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    noisy_train, _, noisy_test, clean_test = load_mnist(4000, 1000)
    print(f"# N2SNet modules at equal training time ({args.budget:.0f} s each), MNIST "
          f"4000/1000, sigma 0.4, torch {torch.__version__}, {args.threads} threads\n")
    print(f"noisy PSNR {psnr(noisy_test, clean_test):.2f} dB\n")
    print("| module | epochs in budget | ordinary dB | J-invariant dB | posterior dB "
          "| transform (default output) dB | J-invariant inference of 1000 digits (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key in args.only:
        name, module, params = CONFIGS[key]
        net, epochs, _ = train_for(module, noisy_train, args.budget, params)
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
        print(f"| {name} | {epochs} | {ordinary:.2f} | {psnr(invariant, clean_test):.2f} "
              f"| {posterior} | {default:.2f} ({fitted}) | {t_inv:.2f} |", flush=True)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n`uptime`: {load}")


if __name__ == "__main__":
    main()
