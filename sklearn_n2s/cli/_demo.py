"""The demo: calibrate denoisers without clean data, then check against the truth.

scikit-image's ``camera`` (ships offline) gets Gaussian noise of standard deviation 0.1.
Every J-invariant family — :class:`~sklearn_n2s.DonutMedian`,
:class:`~sklearn_n2s.JInvariantGaussian`, :class:`~sklearn_n2s.JInvariantWavelet`, and
the newer ones (NL-means, TV, bilateral, BM3D) where this installation has them — is
calibrated by a plain :class:`~sklearn.model_selection.GridSearchCV` with the
:class:`~sklearn_n2s.SelfSupervisedScorer` on the noisy image alone. The losses are
comparable across families, so the lowest of all names the family
``AutoDenoiser(criterion='loss')`` would pick (its default ranks the families' outputs
by their estimated error instead, unless the data are clipped, see
:class:`~sklearn_n2s.AutoDenoiser`). Because the demo
knows the clean image it can also show what the search could not see: the PSNR of the
J-invariant output and of ``transform``'s output at every parameter.

Run it with ``n2s demo --out demo_out`` or ``python -m sklearn_n2s.cli._demo --out demo_out``.
It writes ``calibration.png`` (per family: loss against parameter, the chosen value
marked, the ground-truth loss alongside; below: every family on one loss axis),
``comparison.png`` (every family side by side) and the images as PNGs.
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.base import clone

from .. import (
    DonutMedian,
    FullSplit,
    JInvariantGaussian,
    JInvariantWavelet,
    WaveletDecompositionCache,
)
from .. import image as image_families
from ..io._images import atomic_output
from ..model_selection import calibrate, format_table
from ..model_selection._auto import available_families

#: The newer families (issue 12), shown when :mod:`sklearn_n2s.image` has them:
#: class name -> (short name, parameter, values, fixed parameters). Intensities in the
#: demo's float units (the image in 0..1, noise 0.1 by default), like the wavelet's sigma.
NEW_FAMILIES = {
    "JInvariantNLMeans": ("nlmeans", "h", [0.04, 0.06, 0.08, 0.1, 0.12], {}),
    "JInvariantTV": ("tv", "weight", [0.04, 0.06, 0.08, 0.1, 0.14], {}),
    "JInvariantBilateral": ("bilateral", "sigma_color", [0.05, 0.1, 0.15, 0.2], {}),
    # One BM3D run costs about 11 s of CPU on 512 x 512 and its invariant output 16:
    # one value (the demo's noise level), scored on two cosets.
    "JInvariantBM3D": ("bm3d", "sigma_psd", [0.1], {"cosets": 2}),
}



def _cache_for(cls):
    """A masked-image cache (shared by the sweep's clones) for the families that take one."""
    if "memory" not in getattr(image_families, cls)().get_params():
        return {}
    return {"memory": image_families.MaskedImageCache(max_entries=1)}


#: (name, estimator, parameter, values) of each denoiser the demo calibrates.
DENOISERS = (
    ("median", DonutMedian(), "radius", [1, 2, 3, 4, 5, 6]),
    ("gaussian", JInvariantGaussian(), "sigma", [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0]),
    # One decomposition cache (a shared handle: the clones of the sweep reuse it).
    ("wavelet", JInvariantWavelet(memory=WaveletDecompositionCache(max_entries=1)), "sigma",
     [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2]),
) + tuple((short, getattr(image_families, cls)(**kwargs, **_cache_for(cls)), param, values)
          for cls, (short, param, values, kwargs) in NEW_FAMILIES.items()
          if cls in available_families())


def noisy_camera(sigma=0.1, seed=0, size=None):
    """``(clean, noisy)`` float images: camera in [0, 1] plus Gaussian noise.

    ``size`` crops the central ``size x size`` pixels (for quick runs and tests).
    """
    from skimage import data
    from skimage.util import img_as_float, random_noise

    clean = img_as_float(data.camera())
    if size is not None:
        if not 16 <= size <= clean.shape[0]:
            raise ValueError(f"size must be between 16 and {clean.shape[0]}, got {size}.")
        top = (clean.shape[0] - size) // 2
        clean = clean[top:top + size, top:top + size]
    # Unclipped, so the noise is zero-mean everywhere as Noise2Self assumes (clipping
    # at 0 and 1 would bias it in the darkest and brightest pixels).
    noisy = random_noise(clean, mode="gaussian", var=sigma**2, rng=seed, clip=False)
    return clean, noisy


def _psnr(clean, image):
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(clean, image, data_range=1.0))


def evaluate(search, param, values, X, clean):
    """Per value: self-supervised loss, PSNR of the invariant and of the transform output."""
    losses = -np.asarray(search.cv_results_["mean_test_score"], dtype=float)
    rows = []
    for value, loss in zip(values, losses):
        estimator = clone(search.best_estimator_).set_params(**{param: value}).fit(X)
        rows.append({
            param: value,
            "loss": float(loss),
            "psnr_invariant": _psnr(clean, estimator.invariant_transform(X)[0]),
            "psnr_transform": _psnr(clean, estimator.transform(X)[0]),
        })
    return rows


def _table(name, param, rows, chosen):
    headers = [param, "self-sup. loss", "PSNR invariant", "PSNR transform"]
    cells = [[f"{r[param]:g}", f"{r['loss']:.6f}", f"{r['psnr_invariant']:.2f} dB",
              f"{r['psnr_transform']:.2f} dB"] for r in rows]
    best_truth = int(np.argmax([r["psnr_invariant"] for r in rows]))
    return "\n".join([
        f"{name}: {param} chosen by the self-supervised loss (*), no clean image used",
        format_table(headers, cells, chosen),
        (f"  ground truth would pick {param}={rows[best_truth][param]:g} "
         f"(best invariant PSNR {rows[best_truth]['psnr_invariant']:.2f} dB)"),
    ])


def _save_png(path, image):
    from skimage.io import imsave
    from skimage.util import img_as_ubyte

    with atomic_output(path) as tmp:  # complete or absent, never half-written
        imsave(tmp, img_as_ubyte(np.clip(image, 0, 1)), check_contrast=False)


def _save_figure(fig, path, **kwargs):
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", **kwargs)


def _save_figures(out, searches, X, clean, noisy, outputs):
    import matplotlib.pyplot as plt

    from ..plotting import plot_calibration, plot_comparison

    # One panel per family (four a row), and below them every family on one loss axis.
    ncols = min(len(searches), 4)
    nrows = -(-len(searches) // ncols)
    fig = plt.figure(figsize=(6.0 * ncols, 5.4 * (nrows + 1)))
    grid = fig.add_gridspec(nrows + 1, ncols)
    for k, search in enumerate(searches):
        plot_calibration(search, clean=clean[np.newaxis], X=X,
                         ax=fig.add_subplot(grid[k // ncols, k % ncols]))
    plot_calibration({type(s.estimator).__name__: s for s in searches},
                     ax=fig.add_subplot(grid[nrows, :]), name="All families")
    fig.suptitle("Noise2Self calibration on camera + Gaussian noise: self-supervised loss "
                 "(no clean image) vs ground truth; below, every family on one loss axis "
                 "(the lowest is what AutoDenoiser(criterion='loss') picks)",
                 fontsize="large")
    fig.tight_layout()
    _save_figure(fig, out / "calibration.png", dpi=100)
    plt.close(fig)
    images = [noisy] + list(outputs.values()) + [clean]
    titles = [f"noisy ({_psnr(clean, noisy):.1f} dB)"] + [
        f"{name} ({_psnr(clean, image):.1f} dB)" for name, image in outputs.items()] + ["clean"]
    fig = plot_comparison(images, titles, vmin=0, vmax=1,
                          ncols=len(images) if len(images) <= 6 else 5)
    _save_figure(fig, out / "comparison.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def run_demo(out_dir="demo_out", *, sigma=0.1, seed=0, size=None, quiet=False, plots=True,
             stream=None):
    """Calibrate every J-invariant family on a noisy camera image; write results.

    Parameters
    ----------
    out_dir : str or Path, default='demo_out'
        Created if needed; receives ``calibration.png``, ``comparison.png``,
        ``noisy.png``, ``clean.png`` and ``denoised_<name>.png``.
    sigma : float, default=0.1
        Standard deviation of the Gaussian noise.
    seed : int, default=0
        Seed of the noise.
    size : int or None, default=None
        Central crop size; the full 512 x 512 image when None.
    quiet : bool, default=False
        No progress bars.
    plots : bool, default=True
        Write the matplotlib figures (needs matplotlib).
    stream : file or None
        Where the tables are printed; stdout by default.

    Returns
    -------
    summary : dict
        Per denoiser: ``best_params`` and ``rows`` (parameter, loss, PSNRs); ``auto``:
        the family with the lowest self-supervised loss (``family``), its
        ``psnr_transform`` and the family the clean image would pick
        (``best_family``); ``files``.
    """
    stream = sys.stdout if stream is None else stream
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean, noisy = noisy_camera(sigma, seed, size)
    X = noisy[np.newaxis]
    print(f"camera {clean.shape[0]}x{clean.shape[1]} + Gaussian noise sigma={sigma:g}: "
          f"noisy PSNR {_psnr(clean, noisy):.2f} dB\n", file=stream)
    summary, searches, outputs = {}, [], {}
    for name, estimator, param, values in DENOISERS:
        search = calibrate(clone(estimator), {param: values}, X, cv=FullSplit(),
                           quiet=quiet, desc=f"calibrating {name}")
        rows = evaluate(search, param, values, X, clean)
        print(_table(type(estimator).__name__, param, rows, search.best_index_) + "\n",
              file=stream, flush=True)
        outputs[name] = search.best_estimator_.transform(X)[0]
        summary[name] = {"best_params": dict(search.best_params_), "rows": rows}
        searches.append(search)
    print(_auto_line(summary, searches, DENOISERS), file=stream, flush=True)
    files = _write_images(out, clean, noisy, outputs)
    if plots and _have_matplotlib(stream):
        _save_figures(out, searches, X, clean, noisy, outputs)
        files += [out / "calibration.png", out / "comparison.png"]
    print("wrote " + ", ".join(str(f) for f in files), file=stream)
    summary["files"] = [str(f) for f in files]
    return summary


def _auto_line(summary, searches, denoisers):
    """Which family the lowest self-supervised loss picks, and which the truth would."""
    losses = [-s.best_score_ for s in searches]
    names = [name for name, *_ in denoisers]
    pick = names[int(np.argmin(losses))]
    best_psnr = {name: max(r["psnr_transform"] for r in summary[name]["rows"])
                 for name in names}
    at_pick = {name: next(r["psnr_transform"] for r in summary[name]["rows"]
                          if {k: r[k] for k in summary[name]["best_params"]}
                          == summary[name]["best_params"]) for name in names}
    truth = max(best_psnr, key=best_psnr.get)
    params = ", ".join(f"{k}={v:g}" for k, v in summary[pick]["best_params"].items())
    summary["auto"] = {"family": pick, "psnr_transform": at_pick[pick], "best_family": truth}
    return (f"lowest self-supervised loss over all families: {pick} ({params}), "
            f"transform PSNR {at_pick[pick]:.2f} dB -- what AutoDenoiser(criterion='loss') "
            f"picks, with no clean image;\n  the ground truth's best "
            f"family: {truth} ({best_psnr[truth]:.2f} dB at its best grid value)\n")


def _have_matplotlib(stream):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("no figures: matplotlib is not installed (pip install 'sklearn_n2s[cli]')",
              file=stream)
        return False
    return True


def _write_images(out, clean, noisy, outputs):
    files = []
    for name, image in [("noisy", noisy), ("clean", clean)] + [
            (f"denoised_{k}", v) for k, v in outputs.items()]:
        path = out / f"{name}.png"
        _save_png(path, image)
        files.append(path)
    return files
