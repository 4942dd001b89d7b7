"""The new classical families on the Noise2Self paper's calibration setup, beside
scikit-image's ``calibrate_denoiser`` with the same family and grid, and BM3D told the
true noise level.

Setup (the paper's): ``camera``, ``np.random.seed(3)``,
``random_noise(mode='gaussian', var=0.01)`` then ``img_as_ubyte``; the seed is also
passed as ``rng=3``, since scikit-image >= 0.19 ignores numpy's global seed. Our estimators take
the uint8 image and their intensity parameters in grey levels (0..255); the peer gets
the same image as floats (0..1) and the same grid divided by 255.

For each family: our calibration (``GridSearchCV`` + ``FullSplit``, exact loss: every
coset, or the one-pass J-invariant form), its time, and the PSNR against the clean
image of the invariant output, ``transform`` (the family's default output), the
ordinary filter and the shrink mix at the pick; the peer's time (``approximate_loss``
as stated), the PSNR of the J-invariant function it returns and of the ordinary filter
at its pick. The speed goal of issue 12: NL-means calibration with the exact loss at
least 3x faster than ``calibrate_denoiser(..., approximate_loss=False)`` on the same
grid (ratio printed, same run).

Run:  python benchmarks/bench_classics.py [--size 512] [--bm3d-cosets 1] [--no-bm3d]
      [--out benchmarks/results/classics.md]
"""

import argparse
import functools
import os
import subprocess
import time

import numpy as np
from skimage import data, img_as_float, img_as_ubyte
from skimage.metrics import peak_signal_noise_ratio
from skimage.restoration import (
    calibrate_denoiser,
    denoise_bilateral,
    denoise_nl_means,
    denoise_tv_chambolle,
)
from skimage.util import random_noise
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import FullSplit
from sklearn_n2s.image import (
    JInvariantBilateral,
    JInvariantBM3D,
    JInvariantNLMeans,
    JInvariantTV,
    MaskedImageCache,
)

NLM = dict(patch_size=5, patch_distance=6, fast_mode=True)
H_GRID = [9.0, 12.0, 15.0, 18.0, 21.0, 25.0, 30.0, 36.0]  # grey levels (noise sigma 25.5)
TV_GRID = [8.0, 13.0, 18.0, 25.0, 36.0, 51.0]
BIL_GRID = {"sigma_color": [25.0, 38.0, 51.0, 76.0, 102.0], "sigma_spatial": [1.0, 2.0, 3.0]}
BM3D_GRID = [20.0, 25.5, 32.0]


def paper_setup(size):
    np.random.seed(3)  # noqa: NPY002 - the paper's setup, as published
    clean = img_as_float(data.camera())
    # scikit-image >= 0.19 draws from its own generator (rng=None: fresh entropy), not
    # numpy's global state: pass the seed so that every run sees the same noise
    noisy = img_as_ubyte(random_noise(clean, mode="gaussian", var=0.01, rng=3))
    return clean[:size, :size], noisy[:size, :size]


def psnr(clean, image):
    return peak_signal_noise_ratio(clean, np.clip(image, 0, 1), data_range=1.0)


def ours(estimator, grid, X, clean, outputs=("invariant", "ordinary", "shrink")):
    start = time.perf_counter()
    search = GridSearchCV(estimator, grid, cv=FullSplit(), refit=False).fit(X)
    seconds = time.perf_counter() - start
    best = estimator.set_params(**search.best_params_).fit(X)
    row = {"pick": search.best_params_, "seconds": seconds}
    for output in ("invariant", "ordinary", "shrink"):
        row[output] = (psnr(clean, best.set_params(output=output).transform(X)[0])
                       if output in outputs else np.nan)
    default = type(estimator)().output
    row["transform"] = row[default]
    row["default_output"] = default
    return row


def peer(function, grid, noisy_float, clean, approximate_loss):
    start = time.perf_counter()
    best_function, (params, losses) = calibrate_denoiser(
        noisy_float, function, grid, approximate_loss=approximate_loss, extra_output=True)
    seconds = time.perf_counter() - start
    pick = params[int(np.argmin(losses))]
    return {"pick": pick, "seconds": seconds,
            "invariant": psnr(clean, best_function(noisy_float)),
            "ordinary": psnr(clean, function(noisy_float, **pick)),
            "approximate_loss": approximate_loss}


def per_255(grid):
    return {k: [v / 255.0 for v in values] for k, values in grid.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--bm3d-cosets", type=int, default=1,
                        help="cosets scored per BM3D candidate (16 = exact; ~25 s per run)")
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    clean, noisy = paper_setup(args.size)
    X, noisy_float = noisy[np.newaxis], img_as_float(noisy)
    print(f"noisy PSNR {psnr(clean, noisy_float):.2f} dB", flush=True)
    rows = []

    nlm_peer = functools.partial(denoise_nl_means, **NLM)
    rows.append(("NL-means", ours(JInvariantNLMeans(**NLM), {"h": H_GRID}, X, clean),
                 peer(nlm_peer, per_255({"h": H_GRID}), noisy_float, clean, False)))
    print(rows[-1], flush=True)
    rows.append(("TV", ours(JInvariantTV(memory=MaskedImageCache()), {"weight": TV_GRID},
                            X, clean),
                 peer(denoise_tv_chambolle, per_255({"weight": TV_GRID}), noisy_float, clean,
                      False)))
    print(rows[-1], flush=True)
    bil_peer = functools.partial(denoise_bilateral, mode="reflect")
    bil_grid = dict(BIL_GRID)
    rows.append(("bilateral", ours(JInvariantBilateral(), bil_grid, X, clean),
                 peer(bil_peer, {"sigma_color": [v / 255 for v in BIL_GRID["sigma_color"]],
                                 "sigma_spatial": BIL_GRID["sigma_spatial"]},
                      noisy_float, clean, True)))
    print(rows[-1], flush=True)
    bm3d_true = None
    if not args.no_bm3d:
        import bm3d

        start = time.perf_counter()
        bm3d_true = (psnr(clean, bm3d.bm3d(noisy_float, sigma_psd=0.1)),
                     time.perf_counter() - start)
        rows.append(("BM3D", ours(JInvariantBM3D(cosets=args.bm3d_cosets,
                                                 memory=MaskedImageCache()),
                                  {"sigma_psd": BM3D_GRID}, X, clean,
                                  outputs=("ordinary",)), None))
        print(rows[-1], bm3d_true, flush=True)
    report = summarise(rows, bm3d_true, args)
    print(report)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(report)


def _fmt_pick(pick):
    return ", ".join(f"{k}={v:.3g}" for k, v in pick.items())


def summarise(rows, bm3d_true, args):
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"Paper setup (camera {args.size}x{args.size}, seed 3, Gaussian var 0.01, uint8); "
        f"PSNR in dB against the clean image; {os.cpu_count()} CPUs; `uptime`: {load}.",
        "Parameters in grey levels (the peer's divided by 255). NL-means: "
        f"{NLM}; peer with `approximate_loss` as stated (exact for NL-means and TV).",
        "",
        "| family | our pick | our calibration (s) | invariant | transform (default) | "
        "ordinary | shrink | peer pick | peer calibration (s) | peer invariant | "
        "peer ordinary at its pick | speed ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, us, them in rows:
        if them is None:
            peer_cols = "– | – | – | – | –"
        else:
            pick = {k: (v * 255 if k != "sigma_spatial" else v)
                    for k, v in them["pick"].items()}
            peer_cols = (f"{_fmt_pick(pick)} | {them['seconds']:.1f} "
                         f"({'approx' if them['approximate_loss'] else 'exact'}) | "
                         f"{them['invariant']:.2f} | {them['ordinary']:.2f} | "
                         f"{them['seconds'] / us['seconds']:.1f}x")
        lines.append(
            f"| {name} | {_fmt_pick(us['pick'])} | {us['seconds']:.1f} | "
            f"{us['invariant']:.2f} | {us['transform']:.2f} ({us['default_output']}) | "
            f"{us['ordinary']:.2f} | {us['shrink']:.2f} | {peer_cols} |")
    if bm3d_true is not None:
        lines += ["", f"BM3D told the true sigma (0.1): {bm3d_true[0]:.2f} dB "
                  f"({bm3d_true[1]:.1f} s). Our BM3D calibration scores "
                  f"{args.bm3d_cosets} coset(s) of 16 per candidate (an approximate "
                  "loss: ~25 s per BM3D run here); its invariant and shrink outputs "
                  "(16 runs each) are not computed."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
