"""N2SNet's three networks at equal training time, on MNIST digits (issue 11).

Each module trains for the same wall-clock budget (epochs of 4000 noisy digits, sigma
0.4, one ``partial_fit`` epoch at a time until the budget is spent), then the 1000
held-out digits are denoised: PSNR of the one-pass (ordinary), J-invariant and default
(shrink) outputs, and the time of the J-invariant inference (BabyUnet: 16 masked passes;
the blind-spot nets: one pass).

Run: ``python benchmarks/bench_neural_modules.py [--budget 120] [--threads 2]``
"""

import argparse
import subprocess
import time

import torch
from bench_neural import load_mnist, psnr

from sklearn_n2s.neural import BabyUnet, BlindSpotUnet, DilatedBlindSpotNet, N2SNet

MODULES = {"BabyUnet (masked, default)": BabyUnet, "BlindSpotUnet": BlindSpotUnet,
           "DilatedBlindSpotNet": DilatedBlindSpotNet}


def train_for(module, noisy_train, budget):
    net = N2SNet(module, max_epochs=1, batch_size=32, random_state=0, lr=3e-3,
                 max_steps=None)
    start, epochs = time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        net.partial_fit(noisy_train)
        epochs += 1
    return net, epochs, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per module")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    noisy_train, _, noisy_test, clean_test = load_mnist(4000, 1000)
    print(f"# N2SNet modules at equal training time ({args.budget:.0f} s each), MNIST "
          f"4000/1000, sigma 0.4, torch {torch.__version__}, {args.threads} threads\n")
    print(f"noisy PSNR {psnr(noisy_test, clean_test):.2f} dB\n")
    print("| module | epochs in budget | ordinary dB | J-invariant dB | transform (shrink) dB "
          "| J-invariant inference of 1000 digits (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, module in MODULES.items():
        net, epochs, _ = train_for(module, noisy_train, args.budget)
        net.set_params(output="ordinary")
        ordinary = net.transform(noisy_test)
        start = time.perf_counter()
        invariant = net.invariant_transform(noisy_test)
        t_inv = time.perf_counter() - start
        net.set_params(output="shrink")
        shrink = net.transform(noisy_test)
        print(f"| {name} | {epochs} | {psnr(ordinary, clean_test):.2f} | "
              f"{psnr(invariant, clean_test):.2f} | {psnr(shrink, clean_test):.2f} | "
              f"{t_inv:.2f} |", flush=True)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n`uptime`: {load}")


if __name__ == "__main__":
    main()
