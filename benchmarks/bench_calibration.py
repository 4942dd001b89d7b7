"""Calibration speed: sklearn_n2s versus scikit-image, same image, same grids, same run.

Run:  python benchmarks/bench_calibration.py [--repeats 5] [--only median|gaussian]

Prints a Markdown table of median wall-clock times and the ratios
(peer time / our time, higher is better for us).
"""

import argparse
import os
import platform
import time

import numpy as np
from skimage import data, filters, img_as_ubyte
from skimage.morphology import disk
from skimage.restoration import calibrate_denoiser, denoise_wavelet
from skimage.util import random_noise
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import (
    DonutMedian,
    FullSplit,
    JInvariantGaussian,
    JInvariantWavelet,
    WaveletDecompositionCache,
)
from sklearn_n2s.image import _gaussian, _median

GAUSS_SIGMAS = list(np.linspace(0.5, 5.0, 10))
RADII = [1, 2, 3, 4, 5, 6]
WAVELET_SIGMAS = list(np.linspace(0.02, 0.2, 8))


def timed_pair(ours, peer, repeats):
    """Median times of two callables, run alternately so that load drifts hit both."""
    times = {0: [], 1: []}
    results = {}
    for _ in range(repeats):
        for key, fn in ((0, ours), (1, peer)):
            start = time.perf_counter()
            results[key] = fn()
            times[key].append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1])), results[0], results[1]


def search(estimator, grid, X):
    return GridSearchCV(estimator, grid, cv=FullSplit(), refit=False).fit(X).best_params_


def donut_loop_uint8(image):
    """What a user writes today: a centre-less median per radius on uint8, then the loss."""
    losses = []
    for r in RADII:
        footprint = disk(r)
        footprint[r, r] = 0
        out = filters.median(image, footprint)
        losses.append(np.mean((out.astype(float) - image) ** 2))
    return {"radius": RADII[int(np.argmin(losses))]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["all", "median", "gaussian"], default="all",
                        help="'median' or 'gaussian': that family's rows only")
    args = parser.parse_args()
    r = args.repeats
    load_before = os.getloadavg()

    noisy = random_noise(data.camera(), var=0.1**2, rng=0)  # 512x512 float64
    noisy_u8 = img_as_ubyte(noisy)
    X, X_u8 = noisy[np.newaxis], noisy_u8[np.newaxis]
    rows = []

    def row(name, ours, peer, peer_name):
        t_ours, t_peer, p_ours, p_peer = timed_pair(ours, peer, r)
        rows.append((name, peer_name, t_ours, t_peer, t_peer / t_ours, p_ours, p_peer))

    # 16-bit microscopy: Poisson counts of a few hundred photons, more than 256 levels.
    counts = np.random.default_rng(0).poisson(500.0 * (data.camera() / 255.0) + 10)
    X_u16 = counts.astype(np.uint16)[np.newaxis]
    n_levels = len(np.unique(X_u16))
    loop_name = "skimage.filters.median loop on uint8, centre-less disk"
    if args.only == "median":
        _median_rows(row, X, X_u8, X_u16, noisy_u8, n_levels, loop_name)
        _print(rows, r, load_before)
        return

    row("JInvariantGaussian, 10 sigmas, exact loss",
        lambda: search(JInvariantGaussian(), {"sigma": GAUSS_SIGMAS}, X),
        lambda: _skimage_best(noisy, filters.gaussian, {"sigma": GAUSS_SIGMAS}, False),
        "calibrate_denoiser(approximate_loss=False)")
    row("JInvariantGaussian, 10 sigmas, exact loss",
        lambda: search(JInvariantGaussian(), {"sigma": GAUSS_SIGMAS}, X),
        lambda: _skimage_best(noisy, filters.gaussian, {"sigma": GAUSS_SIGMAS}, True),
        "calibrate_denoiser(approximate_loss=True), one coset")
    row("JInvariantGaussian, 10 sigmas, exact loss, plain loop of score()",
        lambda: _loop_best(JInvariantGaussian(), "sigma", GAUSS_SIGMAS, X),
        lambda: _skimage_best(noisy, filters.gaussian, {"sigma": GAUSS_SIGMAS}, True),
        "calibrate_denoiser(approximate_loss=True), one coset")
    row("JInvariantGaussian, 10 sigmas, exact loss",
        lambda: search(JInvariantGaussian(), {"sigma": GAUSS_SIGMAS}, X),
        lambda: _direct_gaussian(lambda: search(JInvariantGaussian(), {"sigma": GAUSS_SIGMAS},
                                                X)),
        "the same search filtering each sigma directly (before the spectral sweep)")
    if args.only == "gaussian":
        _print(rows, r, load_before)
        return
    _median_rows(row, X, X_u8, X_u16, noisy_u8, n_levels, loop_name)
    # A new cache per run: every run starts cold (no reuse from the previous one), and
    # the sweep's candidates, clones of one estimator, share it.
    row("JInvariantWavelet, 8 sigmas, exact loss",
        lambda: search(JInvariantWavelet(memory=WaveletDecompositionCache()),
                       {"sigma": WAVELET_SIGMAS}, X),
        lambda: _skimage_best(noisy, denoise_wavelet, {"sigma": WAVELET_SIGMAS}, False),
        "calibrate_denoiser(denoise_wavelet, approximate_loss=False)")

    _print(rows, r, load_before)


def _median_rows(row, X, X_u8, X_u16, noisy_u8, n_levels, loop_name):
    row("DonutMedian, radii 1..6, uint8 image",
        lambda: search(DonutMedian(), {"radius": RADII}, X_u8),
        lambda: donut_loop_uint8(noisy_u8), loop_name)
    row("DonutMedian(n_jobs=2), radii 1..6, uint8 image",
        lambda: search(DonutMedian(n_jobs=2), {"radius": RADII}, X_u8),
        lambda: donut_loop_uint8(noisy_u8), loop_name)
    row("DonutMedian, radii 1..6, float image",
        lambda: search(DonutMedian(), {"radius": RADII}, X),
        lambda: donut_loop_uint8(noisy_u8), loop_name)
    row("DonutMedian(n_jobs=2), radii 1..6, float image",
        lambda: search(DonutMedian(n_jobs=2), {"radius": RADII}, X),
        lambda: donut_loop_uint8(noisy_u8), loop_name)
    name = f"DonutMedian, radii 1..6, uint16 Poisson image ({n_levels} levels)"
    row(name, lambda: search(DonutMedian(), {"radius": RADII}, X_u16),
        lambda: donut_loop_uint8(noisy_u8), loop_name)
    row(name, lambda: search(DonutMedian(), {"radius": RADII}, X_u16),
        lambda: _sorting_only(lambda: search(DonutMedian(), {"radius": RADII}, X_u16)),
        "the same search with the histogram path off (sorting only)")


def _direct_gaussian(fn):
    """Run ``fn`` with the Gaussian's loss path filtering each sigma directly."""
    original = _gaussian._spectral_residual
    _gaussian._spectral_residual = lambda *args: None
    try:
        return fn()
    finally:
        _gaussian._spectral_residual = original


def _sorting_only(fn):
    """Run ``fn`` with DonutMedian's histogram path limited to 8-bit data."""
    original = _median._use_histogram
    _median._use_histogram = lambda n_levels, n_offsets: n_levels <= 256
    try:
        return fn()
    finally:
        _median._use_histogram = original


def _print(rows, r, load_before):
    load = ", ".join(f"{a:.2f}" for a in load_before)
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(f"512x512 camera + Gaussian noise 0.1 (uint16: Poisson counts, 500 photons at "
          f"white); median of {r} alternating runs; load average before {load}, after "
          f"{', '.join(f'{a:.2f}' for a in os.getloadavg())}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numpy {np.__version__}\n")
    print("| case | peer | ours (s) | peer (s) | speed-up | our pick | peer pick |")
    print("|---|---|---|---|---|---|---|")
    for name, peer, t_o, t_p, ratio, p_o, p_p in rows:
        print(f"| {name} | {peer} | {t_o:.3f} | {t_p:.3f} | {ratio:.1f}x | "
              f"{_fmt(p_o)} | {_fmt(p_p)} |")


def _skimage_best(image, fn, grid, approximate):
    _, (params, losses) = calibrate_denoiser(image, fn, grid, approximate_loss=approximate,
                                             extra_output=True)
    return params[int(np.argmin(losses))]


def _loop_best(estimator, name, values, X):
    """The estimator-level cost, without GridSearchCV's per-candidate bookkeeping."""
    losses = [estimator.set_params(**{name: v}).fit(X).self_supervised_loss(X) for v in values]
    return {name: values[int(np.argmin(losses))]}


def _fmt(params):
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


if __name__ == "__main__":
    main()
