"""N2SNet on one image, one volume and one uint16 stack, against calibrated classical
filters in the same run.

Cases (``--case``, all by default):

- ``camera``: scikit-image's camera (512x512), the Noise2Self paper's calibration setup:
  ``np.random.seed(3)``, ``random_noise(mode='gaussian', var=0.01)`` (with ``rng=3``, so
  that the noise repeats with today's scikit-image), ``img_as_ubyte``.
  N2SNet fitted on the single (1, 512, 512) uint8 image with its defaults (random
  64x64 patches, flips and rotations), fit plus transform timed. Target: >= 29.0 dB
  within 10 minutes on 2 cores. ``--minutes M`` sets the training budget to M minutes
  (``max_steps`` from a measured step time) instead of the defaults.
- ``camera-modules`` (not in ``all``): the same image, the modules of ``--modules``
  (default BabyUnet and ShuffledBlindSpotUnet; ``name[param=value,...]`` adds N2SNet
  parameters to one) each trained for exactly ``--minutes`` (default 2) of the
  process's CPU time (``N2SNet(max_time=..., clock='process')``, all threads
  together; the cosine schedule runs over it), with N2SNet's other defaults, in one
  run: PSNR of the one pass, the posterior and the default output; fit and J-invariant
  inference times.
- ``volume``: a 64**3 volume (``binary_blobs(n_dim=3)`` smoothed, Gaussian noise 0.15),
  N2SNet against the best calibrated classical filter (target: +0.5 dB), and a
  J-invariance probe in 3-D.
- ``cli``: an 8x128x128 uint16 Poisson stack (values about 20..220) through
  ``n2s denoise --method net`` with the CLI defaults: written as uint16, target >= +3 dB
  over the noisy stack; ``n2s denoise --method gaussian`` as the peer.

Peers in the same run: the noisy input, and ``JInvariantGaussian`` and ``DonutMedian``
calibrated by ``GridSearchCV`` with the self-supervised score (``transform`` with its
default shrink output). PSNR against the clean data. Figures go to stdout and to
``benchmarks/results/neural_single.md``.

Usage::

    python benchmarks/bench_neural_single.py                  # all cases, defaults
    python benchmarks/bench_neural_single.py --case camera --minutes 8
    python benchmarks/bench_neural_single.py --case camera-modules --minutes 2 --threads 1
    python benchmarks/bench_neural_single.py --case camera-modules --threads 1 \
        --modules babyunet "dbsn[module__width=8]"
    python benchmarks/bench_neural_single.py --quick          # a smoke run (a minute)
"""

import argparse
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import ndimage as ndi
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import DonutMedian, FullSplit, JInvariantGaussian, SelfSupervisedScorer
from sklearn_n2s.neural import N2SNet
from sklearn_n2s.neural._net import SIGNAL_DEPENDENCE_LIMIT
from sklearn_n2s.utils.estimator_checks import check_j_invariance

RESULTS = pathlib.Path(__file__).parent / "results" / "neural_single.md"


def psnr(estimate, clean, data_range):
    mse = float(np.mean((np.asarray(estimate, np.float64) - clean) ** 2))
    return 10 * math.log10(data_range**2 / mse)


#: ``--module`` names and the classes of sklearn_n2s.neural they stand for (a name
#: with a width suffix: that ``module__width``).
MODULES = {"auto": "auto", "babyunet": "BabyUnet", "blindspot": "BlindSpotUnet",
           "dbsn": "DilatedBlindSpotNet", "shuffled": "ShuffledBlindSpotUnet",
           "shuffled-w8": "ShuffledBlindSpotUnet"}
_WIDTHS = {"shuffled-w8": 8}


def module_params(name):
    import sklearn_n2s.neural as neural

    name, extra = _module_spec(name)
    attribute = MODULES[name]
    if attribute == "auto":  # N2SNet's default: module, batch_size and lr 'auto'
        return dict(extra)
    if not hasattr(neural, attribute):
        raise SystemExit(f"--module {name}: sklearn_n2s.neural has no {attribute} yet")
    params = {"module": getattr(neural, attribute)}
    if name in _WIDTHS:
        params["module__width"] = _WIDTHS[name]
    return {**params, **extra}


def _module_spec(text):
    """``(name, params)`` of ``name`` or ``name[param=value,...]``."""
    name, _, extra = text.partition("[")
    return name, dict(_param(item) for item in extra.rstrip("]").split(",") if item)


def _module_arg(text):
    name, _ = _module_spec(text)
    if name not in MODULES:
        raise argparse.ArgumentTypeError(f"{name!r} is not one of {sorted(MODULES)}")
    return text


def _module_label(text):
    name, extra = _module_spec(text)
    label = MODULES[name] + (f" width {_WIDTHS[name]}" if name in _WIDTHS else "")
    return label + (f" [{_described(extra)}]" if extra else "")


def best_classical(X, spatial_ndim, quick):
    """``{name: (fitted search, seconds)}`` of the calibrated classical filters."""
    grids = {"JInvariantGaussian": (JInvariantGaussian(spatial_ndim=spatial_ndim),
                                    {"sigma": [0.5, 1, 1.5, 2, 3] if not quick else [1, 2]}),
             "DonutMedian": (DonutMedian(spatial_ndim=spatial_ndim),
                             {"radius": [1, 2, 3] if not quick else [1]})}
    out = {}
    for name, (estimator, grid) in grids.items():
        start = time.perf_counter()
        search = GridSearchCV(estimator, grid, scoring=SelfSupervisedScorer(),
                              cv=FullSplit()).fit(X)
        out[name] = (search, time.perf_counter() - start)
    return out


def budget_params(X, minutes, base):
    """``max_steps`` for a ``minutes`` training budget, from a measured step time."""
    if minutes is None:
        return {}
    # Steps timed after a first fit, as the difference of two calls (4 and 12 steps):
    # the set-up of a fit or of a call (statistics, noise estimate, callbacks) would
    # otherwise count as step time and shrink the budget.
    probe = N2SNet(**{**base, "max_steps": 2, "random_state": 0}).fit(X)
    seconds = {}
    for steps in (4, 12):
        start = time.perf_counter()
        probe.set_params(max_steps=steps).partial_fit(X)
        seconds[steps] = time.perf_counter() - start
    per_step = max(seconds[12] - seconds[4], 1e-3) / 8
    return {"max_steps": max(1, int(0.95 * minutes * 60 / per_step))}


def _described(params):
    return ", ".join(f"{k}={v!r}" for k, v in params.items()) or "defaults"


def _param(text):
    """``key=value`` of ``--param``, the value read as a Python literal when it is one."""
    import ast

    key, _, value = text.partition("=")
    try:
        value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass
    return key, value


def fit_net(X, params):
    start = time.perf_counter()
    net = N2SNet(**{"random_state": 0, **params}).fit(X)
    fitted_s = time.perf_counter() - start
    out = net.transform(X)
    return net, out, fitted_s, time.perf_counter() - start


def case_camera(args, lines):
    from skimage import data
    from skimage.util import img_as_ubyte, random_noise

    clean = data.camera()
    # The paper's np.random.seed(3); scikit-image >= 0.21 draws from its own rng, so
    # rng=3 as well makes the noise repeatable.
    np.random.seed(3)  # noqa: NPY002
    noisy = img_as_ubyte(random_noise(clean, mode="gaussian", var=0.01, rng=3))
    if args.quick:
        clean, noisy = clean[:128, :128], noisy[:128, :128]
    X = noisy[np.newaxis]
    base = {**module_params(args.module), **args.params}
    params = {**base, **budget_params(X, args.minutes, base)}
    if args.quick:
        params.setdefault("max_steps", 10)
    net, out, fit_s, total_s = fit_net(X, params)
    lines.append(f"## camera ({noisy.shape[0]}x{noisy.shape[1]}, Gaussian var 0.01, "
                 "img_as_ubyte, np.random.seed(3))\n")
    lines.append("| method | PSNR dB | seconds |")
    lines.append("|---|---|---|")
    lines.append(f"| noisy | {psnr(noisy, clean, 255):.2f} | |")
    for name, (search, seconds) in best_classical(X, 2, args.quick).items():
        value = psnr(search.transform(X)[0] * 255, clean, 255)
        lines.append(f"| {name} {search.best_params_} | {value:.2f} | {seconds:.1f} |")
    plan = net.train_plan_
    fitted = net.output
    others = ("ordinary", "posterior", "shrink", "invariant")
    outputs = [fitted] + [o for o in others if o != fitted
                          and (o != "posterior" or net.posterior_head_)]
    for output in outputs:
        value = psnr(net.set_params(output=output).transform(X)[0], clean, 255)
        label = f"N2SNet {net.module_.__class__.__name__} output={output}"
        if output == fitted:
            label = f"**{label}** (fitted; {_described(args.params)})"
        lines.append(f"| {label} | {value:.2f} | "
                     f"{total_s if output == fitted else math.nan:.1f} |")
    # the other side of test-time augmentation, same fit
    other = not net.augments_at_test_time()
    start = time.perf_counter()
    value = psnr(net.set_params(output=fitted, test_time_augmentation=other)
                 .transform(X)[0], clean, 255)
    seconds = fit_s + time.perf_counter() - start
    lines.append(f"| N2SNet {net.module_.__class__.__name__} output={fitted}, "
                 f"test_time_augmentation={other} (same fit) | {value:.2f} | {seconds:.1f} |")
    if net.posterior_head_ and net.noise_dependence_ is not None:
        lines.append(f"\nnoise_dependence_ {net.noise_dependence_:.2f} (one variance "
                     f"below {SIGNAL_DEPENDENCE_LIMIT:g})")
        try:
            risks = net.set_params(output=fitted, test_time_augmentation=False
                                   ).output_risks(X)
            lines.append("estimated risk (self-supervised SURE) as PSNR: " + ", ".join(
                f"{name} {10 * math.log10(1 / float(np.mean(r))):.2f} dB"
                for name, r in risks.items() if float(np.mean(r)) > 0))
        except ValueError as error:
            lines.append(f"output_risks: {error}")
    lines.append(f"\nN2SNet: {net.module_choice_.__name__}, {plan['steps']} steps of "
                 f"{plan['batch_size']} patches {plan['patch_size']}, lr "
                 f"{net.optimizer_.param_groups[0]['lr']:g}; fit {fit_s:.1f} s, "
                 f"fit + transform {total_s:.1f} s "
                 f"(target >= 29.0 dB within 600 s on 2 cores); output dtype {out.dtype}.\n")


def case_camera_modules(args, lines):
    """Modules at equal training time on the camera image, in one run: each trains for
    ``--minutes`` (default 2) of the process's CPU time (``max_time``, ``clock='process'``)
    with N2SNet's other defaults; the one pass, posterior and default outputs, the
    steps, the fit and the J-invariant inference times."""
    from skimage import data
    from skimage.util import img_as_ubyte, random_noise

    clean = data.camera()
    np.random.seed(3)  # noqa: NPY002
    noisy = img_as_ubyte(random_noise(clean, mode="gaussian", var=0.01, rng=3))
    X = noisy[np.newaxis]
    minutes = args.minutes or 2.0
    lines.append(f"## camera, modules at equal training time ({minutes:g} min each of the "
                 f"process's CPU time, max_time; {_described(args.params)})\n")
    lines.append("| module | steps | trained CPU s | fit wall s | one pass dB | posterior dB "
                 "| default output dB | J-invariant inference s |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.modules:
        base = {**module_params(name), **args.params}
        net, out, fit_s, _ = fit_net(X, {"max_time": minutes * 60, "clock": "process", **base})
        spent = dict(net.callbacks_)["time_budget"]
        default = psnr(out[0], clean, 255)
        fitted = net.output
        ordinary = psnr(net.set_params(output="ordinary").transform(X)[0], clean, 255)
        posterior = (f"{psnr(net.set_params(output='posterior').transform(X)[0], clean, 255):.2f}"
                     if net.posterior_head_ else "")
        net.set_params(output=fitted)
        start = time.perf_counter()
        net.invariant_transform(X)
        t_inv = time.perf_counter() - start
        lines.append(f"| {_module_label(name)} | {spent.steps_} | {spent.elapsed_:.1f} "
                     f"| {fit_s:.1f} | "
                     f"{ordinary:.2f} | {posterior} | {default:.2f} ({fitted}) | {t_inv:.2f} |")
        print(lines[-1], flush=True)
    lines.append("")


def smooth_blobs(size, seed=0):
    from skimage.data import binary_blobs

    blobs = binary_blobs(size, n_dim=3, volume_fraction=0.3, rng=seed).astype(np.float64)
    clean = ndi.gaussian_filter(blobs, 1.0)
    return (clean - clean.min()) / (clean.max() - clean.min())


def case_volume(args, lines):
    size = 24 if args.quick else 64
    clean = smooth_blobs(size)
    rng = np.random.default_rng(0)
    noisy = (clean + rng.normal(0, 0.15, clean.shape)).astype(np.float32)
    X = noisy[np.newaxis]
    params = {**module_params(args.module), **args.params}
    if args.quick:
        params["max_steps"] = 5
    net, out, fit_s, total_s = fit_net(X, params)
    lines.append(f"## volume ({size}^3 smoothed binary_blobs, Gaussian noise 0.15)\n")
    lines.append("| method | PSNR dB | seconds |")
    lines.append("|---|---|---|")
    lines.append(f"| noisy | {psnr(noisy, clean, 1):.2f} | |")
    best = -math.inf
    for name, (search, seconds) in best_classical(X, 3, args.quick).items():
        value = psnr(search.transform(X)[0], clean, 1)
        best = max(best, value)
        lines.append(f"| {name} {search.best_params_} | {value:.2f} | {seconds:.1f} |")
    ours = psnr(out[0], clean, 1)
    lines.append(f"| N2SNet {net.module_.__class__.__name__} ({_described(args.params)}: "
                 f"{net.train_plan_['steps']} steps, patches {net.train_plan_['patch_size']}) "
                 f"| {ours:.2f} | {total_s:.1f} |")
    fitted = net.output
    for output in ("ordinary", "shrink", "invariant"):
        if output != fitted:
            value = psnr(net.set_params(output=output).transform(X)[0], clean, 1)
            lines.append(f"| same net, output={output} | {value:.2f} | |")
    net.set_params(output=fitted)
    change = check_j_invariance(net, X[:, :16, :16, :16] if not args.quick else X,
                                n_probes=1)
    lines.append(f"\nN2SNet - best calibrated classical: {ours - best:+.2f} dB (target +0.5). "
                 f"J-invariant in 3-D: probes passed (largest change elsewhere "
                 f"{change:.3g}).\n")


def poisson_stack(n, side, seed=0):
    from skimage import data, transform

    image = data.camera().astype(np.float64) / 255
    tiles = np.stack([transform.resize(image[i * 32:i * 32 + 256, :256], (side, side))
                      for i in range(n)])
    clean = 20 + 200 * tiles
    return clean, np.random.default_rng(seed).poisson(clean).astype(np.uint16)


def run_cli(method, source, target, extra=()):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sklearn_n2s.cli", "denoise", str(source),
                    str(target), "--method", method, "--quiet", *extra], check=True)
    return time.perf_counter() - start


def case_cli(args, lines):
    import tifffile

    n, side = (2, 64) if args.quick else (8, 128)
    clean, noisy = poisson_stack(n, side)
    lines.append(f"## n2s denoise on a {n}x{side}x{side} uint16 Poisson stack "
                 f"(values {noisy.min()}..{noisy.max()})\n")
    lines.append("| command | PSNR dB | dtype | seconds |")
    lines.append("|---|---|---|---|")
    lines.append(f"| noisy | {psnr(noisy, clean, 255):.2f} | uint16 | |")
    with tempfile.TemporaryDirectory() as tmp:
        source = pathlib.Path(tmp) / "stack.tif"
        tifffile.imwrite(source, noisy)
        extra = ("--param", "max_steps=5") if args.quick else ()
        for method in ("gaussian", "net"):
            target = pathlib.Path(tmp) / f"{method}.tif"
            seconds = run_cli(method, source, target, extra if method == "net" else ())
            out = tifffile.imread(target)
            lines.append(f"| n2s denoise --method {method}"
                         f"{' ' + ' '.join(extra) if method == 'net' and extra else ''} | "
                         f"{psnr(out, clean, 255):.2f} | {out.dtype} | {seconds:.1f} |")
    lines.append("\nTarget: net >= noisy + 3 dB, written as uint16.\n")
    if not args.quick:
        # The posterior output assumes Gaussian noise of one variance per image; photon
        # noise grows with the signal. Same net, same budget, Python API.
        # The CLI's net (output='auto', the head trained) returns its one pass here:
        from skimage.util import img_as_float

        from sklearn_n2s.neural._net import noise_signal_dependence

        dependence = noise_signal_dependence(img_as_float(noisy))
        lines.append(f"- noise_signal_dependence of the stack: {dependence:.2f} (limit "
                     f"{SIGNAL_DEPENDENCE_LIMIT:g}: above it output='auto' is the one pass)")
        params = {"random_state": 0, **module_params(args.module)}
        if args.all_outputs:
            net = N2SNet(**params).fit(noisy)
            for output in ("auto", "ordinary", "posterior", "shrink"):
                out = net.set_params(output=output).transform(noisy)
                lines.append(f"- the CLI's net (posterior head), output={output!r}: "
                             f"{psnr(out, clean, 255):.2f} dB ({out.dtype})")
        plain = N2SNet(**params, output="ordinary").fit(noisy).transform(noisy)
        lines.append(f"- N2SNet(output='ordinary') (no head, same budget): "
                     f"{psnr(plain, clean, 255):.2f} dB ({plain.dtype})")
        lines.append("")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["camera", "camera-modules", "volume", "cli", "all"],
                        default="all")
    parser.add_argument("--minutes", type=float, default=None,
                        help="camera: training budget in minutes (default: N2SNet's)")
    parser.add_argument("--module", choices=list(MODULES), default="auto",
                        help="N2SNet's module (default: auto, N2SNet's defaults)")
    parser.add_argument("--modules", nargs="+", type=_module_arg,
                        default=["babyunet", "shuffled"],
                        help="camera-modules: the modules compared at equal time")
    parser.add_argument("--param", action="append", default=[], type=_param,
                        metavar="KEY=VALUE",
                        help="an N2SNet parameter for camera and volume (repeatable), "
                             "e.g. --param output=posterior")
    parser.add_argument("--all-outputs", action="store_true",
                        help="cli: also fit the CLI's net in Python and report each output")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    args = parser.parse_args()
    args.params = dict(args.param)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    lines = [f"# N2SNet on one image, one volume, one uint16 stack "
             f"(torch {torch.__version__}, {torch.get_num_threads()} threads"
             f"{', QUICK smoke sizes' if args.quick else ''})\n"]
    cases = {"camera": case_camera, "camera-modules": case_camera_modules,
             "volume": case_volume, "cli": case_cli}
    for name, case in cases.items():
        if args.case == name or (args.case == "all" and name != "camera-modules"):
            case(args, lines)
            print("\n".join(lines[-12:]), flush=True)
    lines.append(f"uptime at the end: `{os.popen('uptime').read().strip()}`\n")
    print(lines[-1])
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        policy = os.environ.get("OMP_WAIT_POLICY")
        command = " ".join([*([f"OMP_WAIT_POLICY={policy}"] if policy else []), "python",
                            *sys.argv])
        with RESULTS.open("a") as handle:
            handle.write("\n".join([f"Command: `{command}`\n", *lines]) + "\n")


if __name__ == "__main__":
    main()
