"""The ``n2s`` command line: calibrate and denoise image files without writing code.

::

    n2s demo --out demo_out                  # the whole idea on a built-in image
    n2s calibrate noisy.tif                  # which parameter? table + calibration plot
    n2s denoise noisy.tif clean.tif          # calibrate, then denoise every page
    n2s denoise in.png out.png --param radius=2 --method median

Calibration is scikit-learn's ``GridSearchCV`` with the Noise2Self
:class:`~sklearn_n2s.SelfSupervisedScorer`: the loss of a J-invariant prediction of
the image against the image itself, which ranks parameters as the (unknown) clean image
would. A stack (a multi-page TIFF, a 3-D ``.npy``) is calibrated once, on all its images
together, and the chosen parameters are applied to every image.

Tables go to stdout; progress bars, notes and warnings to stderr. An error is one line
on stderr and a non-zero exit status (2 for a bad command line, 1 otherwise); pass
``--verbose`` to see the traceback. Losses are printed in the input's units (an 8-bit
image's 0..255 levels, squared), the unit named in the table's header.

Nothing is lost: an output (``OUT``, ``--plot``) that is one of the inputs, by any name
(``./in.tif``, a symbolic or hard link), is refused unless ``--overwrite`` is given;
every output is written to a temporary file beside it and renamed once complete, so an
error or Ctrl-C leaves no half-written file; input holding NaN or infinite values writes
nothing; and the output paths are checked before a long calibration starts.
"""

import argparse
import contextlib
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ..model_selection import format_table, results_rows

IMAGE_METHODS = ("median", "gaussian", "wavelet", "net", "auto")
TABLE_METHODS = ("lowrank",)
METHODS = IMAGE_METHODS + TABLE_METHODS
LOWRANK_COMPONENTS = [2, 5, 10, 20, 40]
OUTPUTS = ("shrink", "ordinary", "invariant", "auto")
GAUSSIAN_SIGMAS = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]
# Wavelet thresholds are set by the noise level: the grid spans multiples of the
# noise standard deviation estimated from the data (BayesShrink often does best a
# little below the true level, hence the low end).
WAVELET_SIGMA_FACTORS = [0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.25, 1.5]
MEDIAN_RADII = {1: range(1, 11), 2: range(1, 7), 3: range(1, 4)}
#: The losses of a grid closer than this (relative to their mean) are "flat".
FLAT_LOSS_SPREAD = 1e-4
#: Environment variable read when --threads is not given.
THREADS_ENV = "N2S_THREADS"
#: Variables that libraries loaded later (OpenBLAS, MKL, OpenMP, torch) read at load time.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

EPILOG = f"""examples:
  n2s demo --out demo_out
  n2s calibrate noisy.tif                        # every family, the best one chosen
  n2s calibrate noisy.tif --method wavelet --json
  n2s calibrate noisy.png --method median --grid radius=1,2,3,4
  n2s denoise noisy.tif denoised.tif --method gaussian
  n2s denoise photo.jpg clean.png --param radius=2
  n2s --threads 1 denoise big.tif out.tif        # on a busy or shared machine

environment:
  {THREADS_ENV}=N     threads for BLAS, OpenMP, torch and dask when --threads is not
                    given (default: the libraries' own, usually every core; on a busy
                    machine 1 is often many times faster)
  N2S_PROGRESS=0|1  never / always draw progress bars (default: only on a terminal)
"""


class CommandLineError(Exception):
    """A user error the command line reports in one line (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the help to read."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ------------------------------------------------------------------------- parameters
def parse_value(text):
    """A command-line value as Python: None, a bool, an int, a float or the string."""
    text = text.strip()
    lowered = text.lower()
    if lowered == "none":
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _split_assignment(item, option):
    name, sep, values = item.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        example = "NAME=VALUE,VALUE,..., e.g. radius=1,2,3" if option == "--grid" else (
            "NAME=VALUE, e.g. radius=2")
        raise CommandLineError(f"bad {option} {item!r}: expected {example}")
    return name, values


def parse_grid(items):
    """``['radius=1,2,3', 'output=invariant']`` -> ``{'radius': [1, 2, 3], ...}``."""
    grid = {}
    for item in items or []:
        name, values = _split_assignment(item, "--grid")
        parsed = [parse_value(v) for v in values.split(",")]
        if any(v == "" for v in parsed):
            raise CommandLineError(f"bad --grid {item!r}: an empty value in the list")
        if name in grid:
            raise CommandLineError(f"bad --grid: {name} given twice")
        grid[name] = parsed
    return grid


def parse_params(items):
    """``['radius=2']`` -> ``{'radius': 2}``."""
    params = {}
    for item in items or []:
        name, value = _split_assignment(item, "--param")
        if "," in value:
            raise CommandLineError(
                f"bad --param {item!r}: --param fixes one value; to search several, "
                f"use --grid {name}={value.strip()}")
        params[name] = parse_value(value)
    return params


def check_param_names(estimator, names, option):
    """Fail in one line on a parameter the estimator does not have."""
    if names and type(estimator).__name__ == "AutoDenoiser":
        raise CommandLineError(
            f"bad {option}: --method auto searches every family on its own default grid; "
            f"{', '.join(sorted(names))} belong{'s' if len(names) == 1 else ''} to one "
            "family: name it with --method median, gaussian or wavelet")
    valid = estimator.get_params()
    # Prefixed names (skorch's module__width) are routed, not listed: set_params checks them.
    unknown = [n for n in names if n not in valid and "__" not in n]
    if unknown:
        raise CommandLineError(
            f"bad {option}: {type(estimator).__name__} has no parameter "
            f"{unknown[0]!r}; its parameters: {', '.join(sorted(valid))}"
        )


# ------------------------------------------------------------------------- estimators
def make_estimator(method, *, channel_axis=None, output=None, num_threads=None):
    """A fresh estimator for a ``--method`` name (``num_threads``: the net's torch threads;
    ``output`` None: the family's own default)."""
    if method == "lowrank":
        from ..io._images import optional_module

        estimator = optional_module("table", "--method lowrank").LowRankDenoiser()
    elif method == "net":
        try:
            from ..neural._net import N2SNet
        except ImportError as exc:
            raise CommandLineError(
                "--method net needs sklearn_n2s.neural._net with torch and skorch "
                f"(pip install 'sklearn_n2s[torch]'): {exc}"
            ) from None
        estimator = N2SNet()
    elif method == "auto":
        from ..model_selection import AutoDenoiser

        estimator = AutoDenoiser()
    else:
        from .. import (
            DonutMedian,
            JInvariantGaussian,
            JInvariantWavelet,
            WaveletDecompositionCache,
        )

        # The wavelet gets its own cache: the clones of a calibration sweep share it
        # and decompose the masked images once (freed with the estimator).
        estimator = {"median": DonutMedian, "gaussian": JInvariantGaussian,
                     "wavelet": lambda: JInvariantWavelet(memory=WaveletDecompositionCache()),
                     }[method]()
    settable = estimator.get_params()
    # A seeded net, so the same command gives the same result.
    wanted = {"channel_axis": channel_axis, "output": output, "random_state": 0,
              "num_threads": num_threads}
    estimator.set_params(**{k: v for k, v in wanted.items()
                            if k in settable and (v is not None or k == "channel_axis")})
    return estimator


def table_model(estimator, normalize):
    """The table model the CLI fits: ``estimator``, after a library-size normaliser when
    ``normalize`` (each cell to 10,000 counts, then log1p: the README's pipeline)."""
    if not normalize:
        return estimator
    from sklearn.pipeline import make_pipeline

    from ..model_selection._calibration import TARGET_SUM
    from ..table import LibrarySizeNormalizer

    return make_pipeline(LibrarySizeNormalizer(TARGET_SUM, empty_rows="zero"), estimator)


def model_name(args, estimator=None):
    """The name tables, plots and messages give the model (one name everywhere)."""
    from ..model_selection._calibration import estimator_name

    if estimator is None:
        estimator = make_estimator(args.method)
    if args.method in TABLE_METHODS:
        estimator = table_model(estimator, _normalize(args))
    return estimator_name(estimator)


def _normalize(args):
    return args.method in TABLE_METHODS and not getattr(args, "no_normalize", False)


def noise_sigma(X, channel_axis):
    """Median over the stack of the estimated noise standard deviation, input units."""
    from .. import estimate_noise_variance
    from ..utils._validation import intensity_scale, to_float

    variances = estimate_noise_variance(to_float(X), channel_axis=channel_axis)
    return float(np.sqrt(np.median(variances))) / intensity_scale(X.dtype)


def default_grid(method, X, channel_axis):
    """The grid searched when no ``--grid`` is given (see ``n2s calibrate --help``)."""
    n_spatial = X.ndim - 1 - (channel_axis is not None)
    if method == "median":
        smallest = min(X.shape[1:1 + n_spatial])
        radii = [r for r in MEDIAN_RADII[n_spatial] if 2 * r < smallest] or [1]
        return {"radius": radii}
    if method == "gaussian":
        return {"sigma": list(GAUSSIAN_SIGMAS)}
    if method == "lowrank":
        largest = min(X.shape) - 1
        return {"n_components": [k for k in LOWRANK_COMPONENTS if k <= largest] or [1]}
    if method == "wavelet":
        sigma = noise_sigma(X, channel_axis)
        if not sigma > 0:
            raise CommandLineError("the image looks noise-free (estimated noise 0): "
                                   "give --grid sigma=... for the wavelet method")
        return {"sigma": [float(f"{f * sigma:.3g}") for f in WAVELET_SIGMA_FACTORS]}
    return {}


def cv_for(method, n_samples):
    """FullSplit for the fixed filters; held-out samples for what learns (net, lowrank)."""
    from sklearn.model_selection import KFold

    from .. import FullSplit

    if method == "lowrank":
        return KFold(n_splits=min(3, n_samples), shuffle=True, random_state=0)
    if method != "net" or n_samples < 2:
        if method == "net":
            warnings.warn("one image only: the net is scored on the image it trained on",
                          stacklevel=2)
        return FullSplit()
    return KFold(n_splits=min(3, n_samples))


def calibrate(estimator, grid, X, *, cv, quiet=False, desc="calibrating"):
    """:func:`sklearn_n2s.model_selection.calibrate`, its failures one CLI error line."""
    from ..model_selection import calibrate as calibrate_search

    try:
        return calibrate_search(estimator, grid, X, cv=cv, quiet=quiet, desc=desc)
    except (ValueError, TypeError) as exc:
        raise CommandLineError(f"calibration failed: {_one_line(exc)}") from exc


def calibrate_rank_path(grid, X, *, cv, quiet=False, normalize=False):
    """The rank path for ``--method lowrank``, its failures one CLI error line."""
    from ..model_selection import calibrate_rank_path as rank_path

    unknown = set(grid) - {"n_components"}
    if unknown:
        raise CommandLineError(f"bad --grid: the lowrank calibration searches n_components "
                               f"only, not {sorted(unknown)[0]!r}")
    try:
        return rank_path(grid, X, cv=cv, quiet=quiet, normalize=normalize)
    except (ValueError, TypeError) as exc:
        raise CommandLineError(f"calibration failed: {_one_line(exc)}") from exc


# ----------------------------------------------------------------------------- output
def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class _Reporter:
    """Notes on stderr unless quiet; tables on stdout."""

    def __init__(self, quiet=False, verbose=False):
        self.quiet = quiet
        self.verbose = verbose

    def note(self, message):
        if not self.quiet:
            print(message, file=sys.stderr)

    def table(self, text):
        print(text, flush=True)


# --------------------------------------------------------------------------- loading
def check_finite(values, path):
    """Refuse NaN and infinite values before any work, so that nothing is written."""
    import scipy.sparse as sp

    data = values.data if sp.issparse(values) else np.asarray(values)
    if data.dtype.kind not in "fc":
        return
    _refuse_non_finite(path, int(np.count_nonzero(np.isnan(data))),
                       int(np.count_nonzero(np.isinf(data))))


def _refuse_non_finite(path, n_nan, n_inf):
    if not (n_nan or n_inf):
        return
    parts = [f"{n} {kind} value{'s' if n != 1 else ''}"
             for n, kind in ((n_nan, "NaN"), (n_inf, "infinite")) if n]
    raise CommandLineError(f"{path} holds {' and '.join(parts)}: n2s denoises finite data "
                           "only, so nothing was written (replace them first, e.g. with "
                           "numpy.nan_to_num)")


def load_stack(path, *, channel_axis_flag, volume):
    """Read an image file and view it as a stack; returns (loaded, X, alpha)."""
    from ..io._images import as_stack, read_image, split_alpha

    loaded = read_image(path, channel_axis=-1 if channel_axis_flag else None)
    check_finite(loaded.array, path)
    colour, alpha = split_alpha(loaded.array, loaded.channel_axis)
    X = as_stack(colour, channel_axis=loaded.channel_axis, volume=volume)
    return loaded, X, alpha


def _describe(loaded, X):
    kind = "colour " if loaded.channel_axis is not None else ""
    return (f"{X.shape[0]} {kind}image{'s' if X.shape[0] != 1 else ''} of shape "
            f"{X.shape[1:]} ({loaded.array.dtype})")


def load_table(path, layer=None):
    """``(adata, counts)`` of an ``.h5ad`` file, counts as anndata_io finds them."""
    from ..io._images import optional_module, read_h5ad

    anndata_io = optional_module("io._anndata", "an .h5ad count table")
    adata = read_h5ad(path)
    if layer is not None and layer != "X" and layer not in adata.layers:
        options = [f"--layer {name}" for name in adata.layers] + ["--layer X (the main "
                                                                  "matrix)"]
        raise CommandLineError(f"{path} has no layer {layer!r}: use {' or '.join(options)}")
    counts = anndata_io.get_counts(adata, layer)
    check_finite(counts, path)
    return adata, counts


# ----------------------------------------------------------------------- file safety
def check_outputs(inputs, outputs, *, overwrite=False):
    """Before any work: refuse an output that is an input, or that cannot be written.

    Parameters
    ----------
    inputs : list of path
        The files read.
    outputs : list of (label, path)
        The files to write and how the command line named them (``'output'``,
        ``'--plot'``).
    overwrite : bool
        ``--overwrite``: an output may replace an input or an existing ``.zarr`` store.
    """
    from ..io._images import check_writable, is_chunked_path, same_file

    for label, path in outputs:
        for source in inputs:
            if same_file(path, source) and not overwrite:
                shown = f"{path}" if str(path) == str(source) else f"{path}, that is {source},"
                raise CommandLineError(
                    f"{label} {shown} is the input file: refusing to replace it (pass "
                    "--overwrite to replace the input, or choose another output)")
        store = is_chunked_path(path)
        if store and os.path.exists(path) and not overwrite:
            raise CommandLineError(f"{label} {path} exists: pass --overwrite to replace it")
        check_writable(path, option=label, directory_ok=store)


def _check_plot_format(path):
    """The figure type matplotlib will write, from the ``--plot`` suffix."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:  # no plot will be written (a note says why)
        return
    suffix = Path(path).suffix.lower().lstrip(".")
    kinds = FigureCanvasBase.get_supported_filetypes()
    if suffix not in kinds:
        shown = f".{suffix}" if suffix else "(no extension)"
        raise CommandLineError(f"--plot {path}: unsupported figure type {shown}; use one of "
                               f"{' '.join('.' + k for k in sorted(kinds))}")


def _write_plot(search, path, report, *, name=None, loss_scale=1.0, loss_unit=None):
    from ..io._images import atomic_output

    if not any(search.cv_results_["params"]):
        report.note("n2s: note: no calibration plot: no parameter was searched")
        return None
    try:
        from ..plotting import plot_calibration

        fig = plot_calibration(search, name=name, loss_scale=loss_scale, loss_unit=loss_unit)
    except ImportError as exc:
        report.note(f"n2s: note: no calibration plot: {_one_line(exc)}")
        return None
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=120, format=Path(path).suffix.lower().lstrip("."))
    finally:
        plt.close(fig)
    return str(path)


def loss_units(args, dtype):
    """``(scale, unit)``: a loss times ``scale`` is in the input's units, named ``unit``.

    The estimators compute integer images in 0..1 units (``img_as_float``); printed
    beside a wavelet ``sigma`` in the file's units, a loss is scaled back to them.
    """
    if args.method in TABLE_METHODS:
        return 1.0, "log-normalised units²" if _normalize(args) else "counts²"
    from ..utils._validation import intensity_scale

    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return 1.0 / intensity_scale(dtype) ** 2, f"{dtype} units²"
    return 1.0, "input units²"


# ------------------------------------------------------------------- grid warnings
def _numeric(values):
    return all(isinstance(v, (int, float, np.integer, np.floating))
               and not isinstance(v, (bool, np.bool_)) for v in values)


def _beyond(values, upwards):
    """Two values past the end of a sorted numeric grid, spaced as the grid ends."""
    end, neighbour = (values[-1], values[-2]) if upwards else (values[0], values[1])
    if all(isinstance(v, (int, np.integer)) for v in values):
        step = max(1, abs(int(end) - int(neighbour)))
        step = step if upwards else -step
        return [int(end) + step, int(end) + 2 * step]
    if end > 0 and neighbour > 0 and end != neighbour:
        ratio = max(end, neighbour) / min(end, neighbour)
        ratio = ratio if upwards else 1 / ratio
        return [float(f"{end * ratio:.3g}"), float(f"{end * ratio ** 2:.3g}")]
    step = abs(end - neighbour) if upwards else -abs(end - neighbour)
    return [float(f"{end + step:.3g}"), float(f"{end + 2 * step:.3g}")]


def _accepts(args, estimator, name, value, X):
    """Would a calibration with ``name=value`` run on X (a suggestion that works)?"""
    from sklearn.base import clone

    if args.method in TABLE_METHODS:
        return name == "n_components" and 1 <= value <= min(X.shape) - 1
    try:
        candidate = clone(estimator).set_params(**{name: value})
        candidate._validate_params()
        if args.method in ("median", "gaussian", "wavelet"):
            n_spatial = X.ndim - 1 - (getattr(estimator, "channel_axis", None) is not None)
            if name == "radius" and 2 * value >= min(X.shape[1:1 + n_spatial]):
                return False  # the default grid's limit: a disk inside the image
            candidate.fit(X[:1])  # the filters learn nothing: this only checks the sizes
    except Exception:
        return False
    return True


def warn_about_grid(search, args, X, channel_axis, estimator):
    """Warn when the losses are flat over the grid, or the pick is at its edge."""
    from ..model_selection import results_rows

    rows = results_rows(search)
    losses = np.array([loss for _, loss, _ in rows], dtype=float)
    if len(losses) < 2 or not np.all(np.isfinite(losses)):
        return
    best = ", ".join(f"{k}={_fmt(v)}" for k, v in search.best_params_.items())
    spread = float(np.ptp(losses)) / max(abs(float(np.mean(losses))), np.finfo(float).tiny)
    if spread < FLAT_LOSS_SPREAD:
        warnings.warn(f"the self-supervised loss is flat over the grid (relative spread "
                      f"{spread:.1g}), so the pick {best} is arbitrary"
                      f"{_flat_hint(args, X, channel_axis, search)}", UserWarning,
                      stacklevel=2)
        return
    searched = {}
    for params, _, _ in rows:
        for key, value in params.items():
            searched.setdefault(key, []).append(value)
    for name, values in searched.items():
        values = sorted(set(values))
        if len(values) < 2 or not _numeric(values) or name not in search.best_params_:
            continue
        pick = search.best_params_[name]
        if pick not in (values[0], values[-1]):
            continue
        upwards = pick == values[-1]
        extra = [v for v in _beyond(values, upwards) if _accepts(args, estimator, name, v, X)]
        if not extra:
            continue  # the pick is as far as the model (or the data) goes
        grid = sorted(set(extra + ([values[-2], pick] if upwards else [pick, values[1]])))
        warnings.warn(
            f"the pick {name}={_fmt(pick)} is at the edge of the grid (the "
            f"{'largest' if upwards else 'smallest'} value searched): the best may lie "
            f"beyond it; try --grid {name}={','.join(_fmt(v) for v in grid)}",
            UserWarning, stacklevel=2)


def _flat_hint(args, X, channel_axis, search):
    names = {k for p in search.cv_results_["params"] for k in p}
    if args.method == "wavelet" and "sigma" in names:
        dtype = np.dtype(X.dtype)
        span = (f"{dtype}: {np.iinfo(dtype).min}..{np.iinfo(dtype).max}"
                if dtype.kind in "iu" else str(dtype))
        try:
            noise = noise_sigma(X, channel_axis)
            grid = default_grid("wavelet", X, channel_axis)["sigma"]
        except (ValueError, CommandLineError):
            return f"; --grid sigma is in the input's units ({span})"
        return (f"; --grid sigma is in the input's units ({span}), where the estimated "
                f"noise level is {noise:.3g}: try --grid sigma="
                f"{','.join(_fmt(v) for v in grid)}")
    return "; search a wider grid"


# -------------------------------------------------------------------------- commands
def cmd_demo(args, report):
    from ._demo import run_demo

    run_demo(args.out, size=args.size, sigma=args.sigma, seed=args.seed,
             quiet=report.quiet)
    return 0


def _threads(args):
    return getattr(args, "threads_limit", None)


def _calibrated_search(args, X, channel_axis, report, grid, output=None):
    estimator = make_estimator(args.method, channel_axis=channel_axis, output=output,
                               num_threads=_threads(args))
    if args.method == "auto":
        return _auto_search(estimator, X, report)
    grid = grid or default_grid(args.method, X, channel_axis)
    check_param_names(estimator, grid, "--grid")
    searched = "; ".join(f"{k} in {', '.join(_fmt(v) for v in vs)}" for k, vs in grid.items())
    report.note(f"calibrating {model_name(args, estimator)} over "
                f"{searched or 'its defaults'}")
    if args.method == "lowrank":
        search = calibrate_rank_path(grid, X, cv=cv_for(args.method, X.shape[0]),
                                     quiet=report.quiet, normalize=_normalize(args))
    else:
        search = calibrate(estimator, grid, X, cv=cv_for(args.method, X.shape[0]),
                           quiet=report.quiet, desc=f"calibrating {args.method}")
    warn_about_grid(search, args, X, channel_axis, estimator)
    return search


def _auto_search(estimator, X, report):
    """The fitted :class:`~sklearn_n2s.AutoDenoiser`: every family calibrated on its grid."""
    from ..model_selection._auto import available_families

    wins = {"risk": "the lowest estimated error of its output wins",
            "loss": "the lowest self-supervised loss wins",
            "auto": "the lowest estimated error of its output wins (on clipped data, the "
                    "lowest self-supervised loss)"}[estimator.criterion]
    report.note(f"calibrating every family ({', '.join(available_families())}) on its "
                f"default grid; {wins}")
    try:
        with warnings.catch_warnings():
            if report.quiet:
                warnings.simplefilter("ignore")  # a family left out is said with -v only
            return estimator.set_params(verbose=int(not report.quiet)).fit(X)
    except (ValueError, TypeError) as exc:
        raise CommandLineError(f"calibration failed: {_one_line(exc)}") from exc


def _print_auto(search, report, loss_scale=1.0, loss_unit=None):
    """One row per family and setting: the family, its parameters, the loss."""
    results = search.cv_results_
    losses = -np.asarray(results["mean_test_score"], dtype=float) * loss_scale
    table = [[family, _params_text(params) or "defaults", f"{loss:.6g}"]
             for family, params, loss in zip(results["family"], results["params"], losses)]
    what = _auto_score_name(search).replace("_", " ").replace("estimated risk",
                                                              "estimated error")
    header = what + (f" ({loss_unit})" if loss_unit else "")
    report.table(format_table(["family", "parameters", header], table, search.best_index_))
    report.table(f"chosen: {search.best_family_} {_params_text(search.best_params_)}"
                 f"{_blend_text(search)}  (* marks the lowest {what}, comparable across "
                 "families)")


def _auto_score_name(search):
    """The column of an AutoDenoiser's results its scores are minus of."""
    from ..model_selection._auto import SCORE_COLUMNS

    return SCORE_COLUMNS[search.criterion_]


def _print_search(search, report, loss_scale=1.0, loss_unit=None):
    if hasattr(search, "best_family_"):
        return _print_auto(search, report, loss_scale, loss_unit)
    rows = results_rows(search)
    names = list(rows[0][0]) if rows else []
    table = [[_fmt(p[n]) for n in names] + [f"{loss * loss_scale:.6g}"] for p, loss, _ in rows]
    chosen = next((i for i, (_, _, c) in enumerate(rows) if c), None)
    header = "self-supervised loss" + (f" ({loss_unit})" if loss_unit else "")
    report.table(format_table(names + [header], table, chosen))
    best = ", ".join(f"{k}={_fmt(v)}" for k, v in search.best_params_.items())
    report.table(f"chosen: {best or 'defaults'}  (* marks the lowest self-supervised loss)")


def cmd_calibrate(args, report):
    from ..io._images import is_chunked_path, is_table_path

    if is_chunked_path(args.file):
        raise CommandLineError(f"{args.file}: calibrate reads files that fit in memory; for "
                               ".zarr use: n2s denoise IN.zarr OUT.zarr --grid ...")
    resolve_method(args, args.file)
    grid = parse_grid(args.grid)  # a bad grid fails before any work
    check_param_names(make_estimator(args.method), grid, "--grid")
    plot = None if args.no_plot else (args.plot or f"{Path(args.file).stem}_calibration.png")
    if plot:  # before the calibration, which may be long
        check_outputs([args.file], [("--plot", plot)], overwrite=args.overwrite)
        _check_plot_format(plot)
    if is_table_path(args.file):
        _, X = load_table(args.file, args.layer)
        loaded = None
        report.note(f"read {args.file}: {X.shape[0]} cells x {X.shape[1]} genes")
        search = _calibrated_search(args, X, None, report, grid)
    else:
        loaded, X, _ = load_stack(args.file, channel_axis_flag=args.channel_axis,
                                  volume=args.volume)
        report.note(f"read {args.file}: {_describe(loaded, X)}")
        search = _calibrated_search(args, X, loaded.channel_axis, report, grid)
    source = X if loaded is None else loaded.array
    scale, unit = loss_units(args, source.dtype)
    name = model_name(args)
    plot = _write_plot(search, plot, report, name=name, loss_scale=scale,
                       loss_unit=unit) if plot else None
    if args.json:
        score_name = (_auto_score_name(search) if hasattr(search, "best_family_")
                      else "self_supervised_loss")
        summary = {
            "file": str(args.file), "method": args.method,
            "estimator": name,
            "n_samples": X.shape[0],
            "shape": list(source.shape),
            "dtype": str(source.dtype),
            "best_params": search.best_params_,
            "loss_unit": unit,
            "results": [{"params": p, score_name: loss * scale, "chosen": c}
                        for p, loss, c in results_rows(search)],
            "plot": plot,
        }
        if hasattr(search, "best_family_"):  # --method auto: which family, per row too
            summary["best_family"] = search.best_family_
            summary["blend_weights"] = search.blend_weights_
            for row, family in zip(summary["results"], search.cv_results_["family"]):
                row["family"] = family
        report.table(json.dumps(_jsonable(summary), indent=2))
    else:
        _print_search(search, report, scale, unit)
        if plot:
            report.note(f"wrote {plot}")
    return 0


def _fitted_estimator(args, X, channel_axis, report, grid, params, dtype=None):
    """``(fitted model, its parameters)``: fixed by --param, or calibrated."""
    # The net has no default grid: one training at its defaults (a step budget sized
    # for the data), not a cross-validated search of one candidate (four trainings).
    if params or (args.method == "net" and not grid):
        estimator = make_estimator(args.method, channel_axis=channel_axis, output=args.output,
                                   num_threads=_threads(args))
        try:
            estimator.set_params(**params)
            return table_model(estimator, _normalize(args)).fit(X), dict(params)
        except (ValueError, TypeError) as exc:
            raise CommandLineError(f"bad --param: {_one_line(exc)}") from exc
    search = _calibrated_search(args, X, channel_axis, report, grid, output=args.output)
    if report.verbose:
        _print_search(search, report, *loss_units(args, X.dtype if dtype is None else dtype))
    family = f"{search.best_family_} " if hasattr(search, "best_family_") else ""
    report.note("chosen: " + family + (", ".join(f"{k}={_fmt(v)}" for k, v in
                                                  search.best_params_.items()) or "defaults")
                + _blend_text(search))
    if len(getattr(search, "blend_weights_", ())) > 1:  # AutoDenoiser mixes two families
        return search, dict(search.best_params_)
    return search.best_estimator_, dict(search.best_params_)


def _blend_text(search):
    """How AutoDenoiser mixes two families' outputs: '' when it keeps one."""
    weights = getattr(search, "blend_weights_", {})
    if len(weights) < 2:
        return ""
    (_, w_first), (second, w_second) = weights.items()
    params = _params_text(search.searches_[second].best_params_)
    return f", mixed {w_first:.2f} / {w_second:.2f} with {second}({params})"


def _model_text(args, estimator, used):
    """The model and its parameters, as the last line of a denoising names them."""
    if hasattr(estimator, "blend_weights_"):
        return f"{estimator.best_family_}({_params_text(used)}){_blend_text(estimator)}"
    return f"{model_name(args, estimator)}({_params_text(used)})"


def _denoise_stack(estimator, X, report):
    """Transform image by image (same result as all at once) so progress can show."""
    from ..utils._progress import progress

    out = [estimator.transform(X[i:i + 1])
           for i in progress(range(X.shape[0]), desc="denoising", quiet=report.quiet,
                             unit="image")]
    return np.concatenate(out, axis=0)


def _check_result(result, source):
    """A non-finite result is never written."""
    import scipy.sparse as sp

    data = result.data if sp.issparse(result) else np.asarray(result)
    if data.dtype.kind in "fc" and not np.all(np.isfinite(data)):
        raise CommandLineError(f"denoising {source} gave NaN or infinite values: nothing "
                               "was written (try other parameters, or --verbose)")


def _denoise_other(args, report):
    """``.zarr`` and ``.h5ad``: handed to the modules that know those formats."""
    from ..io._images import is_chunked_path, is_table_path

    for check, kind in ((is_chunked_path, ".zarr"), (is_table_path, ".h5ad")):
        if check(args.input) != check(args.output_file):
            raise CommandLineError(f"a {kind} input needs a {kind} output (and the reverse)")
    resolve_method(args, args.input)
    check_outputs([args.input], [("output", args.output_file)], overwrite=args.overwrite)
    if is_table_path(args.input):
        return _denoise_h5ad(args, report)
    return _denoise_zarr(args, report)


def _check_finite_zarr(path):
    """One streaming pass over a store: NaN and infinite values are refused."""
    from ..io._images import MissingFeatureError

    try:
        import dask
        import dask.array as da
    except ImportError:
        raise MissingFeatureError(
            "a .zarr store needs dask: pip install 'sklearn_n2s[dask]'") from None
    if not os.path.exists(path):
        return  # denoise_zarr_store says so
    darr = da.from_zarr(str(path))
    if np.dtype(darr.dtype).kind in "fc":
        n_nan, n_inf = dask.compute(da.isnan(darr).sum(), da.isinf(darr).sum())
        _refuse_non_finite(path, int(n_nan), int(n_inf))


def _denoise_zarr(args, report):
    from ..io._images import atomic_output, denoise_zarr_store

    estimator = make_estimator(args.method, channel_axis=-1 if args.channel_axis else None,
                               output=args.output, num_threads=_threads(args))
    params = parse_params(args.param)
    check_param_names(estimator, params, "--param")
    estimator.set_params(**params)
    _check_finite_zarr(args.input)
    report.note(f"denoising {args.input} blockwise with {model_name(args, estimator)}")
    grid = None if params else (parse_grid(args.grid) or _zarr_default_grid(args))
    with atomic_output(args.output_file) as tmp:
        used = denoise_zarr_store(args.input, tmp, estimator, grid)
    report.note(f"wrote {args.output_file}" + (f" with {used}" if used else ""))
    return 0


def _denoise_h5ad(args, report):
    """Counts in, a ``denoised`` layer out (scanpy's conventions, see anndata_io)."""
    from ..io._images import optional_module, write_h5ad

    grid, params = parse_grid(args.grid), parse_params(args.param)
    check_param_names(make_estimator(args.method), {**grid, **params}, "--grid/--param")
    adata, counts = load_table(args.input, args.layer)
    report.note(f"read {args.input}: {counts.shape[0]} cells x {counts.shape[1]} genes")
    if not grid and not params and _normalize(args):
        # the analysts' one call (sklearn_n2s.table.denoise): log-normalise (scanpy's
        # log1p, what --no-normalize's help promises, not denoise's sqrt default), the
        # low-rank curve, layers['denoised'] and the curve and pick in uns['n2s']
        from ..table import denoise

        layer = args.layer or ("counts" if "counts" in adata.layers else "X")
        denoise(adata, "lowrank", layer=layer, transform="log1p", random_state=0)
        used = dict(adata.uns["n2s"]["params"])
        report.note("chosen: " + ", ".join(f"{k}={_fmt(v)}" for k, v in used.items()))
    else:
        estimator, used = _fitted_estimator(args, counts, None, report, grid, params)
        anndata_io = optional_module("io._anndata", "an .h5ad count table")
        anndata_io.denoise_anndata(adata, estimator, layer=args.layer, fit=False)
    _check_result(adata.layers["denoised"], args.input)
    write_h5ad(adata, args.output_file)
    values = "log-normalised values" if _normalize(args) else "counts"
    report.note(f"wrote {args.output_file}: layer 'denoised' (denoised {values}) from "
                f"{model_name(args)}({_params_text(used)})")
    return 0


def resolve_method(args, path):
    """The default method for the file type, and a clear error for a mismatch."""
    from ..io._images import is_chunked_path, is_table_path

    table = is_table_path(path)
    if args.method is None:
        args.method = TABLE_METHODS[0] if table else _default_image_method(args, path)
    if args.method == "auto" and is_chunked_path(path):
        raise CommandLineError(f"--method auto does not apply to {path}: a .zarr store is "
                               "calibrated blockwise for one family; use --method median, "
                               "gaussian or wavelet")
    if getattr(args, "output", None) == "auto" and is_chunked_path(path):
        raise CommandLineError(f"--output auto does not apply to a .zarr store ({path}): "
                               "it chooses each image's output from whole-image "
                               "estimates; use shrink, ordinary or invariant")
    allowed = TABLE_METHODS if table else IMAGE_METHODS
    if args.method not in allowed:
        kind = ".h5ad count tables" if table else "images"
        raise CommandLineError(f"--method {args.method} does not apply to {path}: for "
                               f"{kind} use {' or '.join(allowed)}")
    return args.method


def _default_image_method(args, path):
    """``auto`` (every family, the lowest estimated error of the output wins), except where the
    command line names one family's parameters (``--param``, ``--grid``: the median's,
    as before ``auto`` existed) or the input is a ``.zarr`` store (calibrated blockwise,
    one family)."""
    from ..io._images import is_chunked_path

    if getattr(args, "param", None) or getattr(args, "grid", None) or is_chunked_path(path):
        return "median"
    return "auto"


def _zarr_default_grid(args):
    """The default grid, sized on the store's first chunk (wavelet: its noise level)."""
    from ..io._images import MissingFeatureError

    try:
        import dask.array as da
    except ImportError:
        raise MissingFeatureError(
            "a .zarr store needs dask: pip install 'sklearn_n2s[dask]'") from None
    darr = da.from_zarr(str(args.input))
    first = np.asarray(darr.blocks[(0,) * darr.ndim])
    return default_grid(args.method, first, -1 if args.channel_axis else None)


def cmd_denoise(args, report):
    from ..io._images import (
        file_format,
        is_chunked_path,
        is_table_path,
        join_alpha,
        restore_dtype,
        write_image,
    )

    if any(is_chunked_path(p) or is_table_path(p) for p in (args.input, args.output_file)):
        return _denoise_other(args, report)
    resolve_method(args, args.input)
    if args.param and args.grid:
        raise CommandLineError("give either --param (fixed values) or --grid (to calibrate)")
    grid, params = parse_grid(args.grid), parse_params(args.param)  # fail before any work
    check_param_names(make_estimator(args.method), {**grid, **params},
                      "--param" if params else "--grid")
    file_format(args.output_file)
    check_outputs([args.input], [("output", args.output_file)], overwrite=args.overwrite)
    loaded, X, alpha = load_stack(args.input, channel_axis_flag=args.channel_axis,
                                  volume=args.volume)
    report.note(f"read {args.input}: {_describe(loaded, X)}")
    estimator, used = _fitted_estimator(args, X, loaded.channel_axis, report, grid, params,
                                        dtype=loaded.array.dtype)
    denoised = _denoise_stack(estimator, X, report)
    _check_result(denoised, args.input)
    shape = loaded.array.shape[:-1] + (X.shape[-1],) if alpha is not None else loaded.array.shape
    result = denoised.reshape(shape)
    if result.dtype != loaded.array.dtype:  # N2SNet returns integers in their own units
        result = restore_dtype(result, loaded.array.dtype)
    result = join_alpha(result, alpha)
    write_image(args.output_file, result, channel_axis=loaded.channel_axis,
                metadata=loaded.metadata)
    report.note(f"wrote {args.output_file}: {result.shape} {result.dtype}, "
                f"{_model_text(args, estimator, used)}")
    return 0


def _params_text(params):
    return ", ".join(f"{n}={_fmt(v)}" for n, v in params.items())

# ---------------------------------------------------------------------------- parser
def _thread_count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of threads, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 thread or more, got {value}")
    return value


def _common_options():
    """--quiet, --verbose and --threads, accepted before or after the sub-command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or notes, only results and errors")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="more detail, and the full traceback on errors")
    common.add_argument("--threads", type=_thread_count, default=argparse.SUPPRESS,
                        metavar="N",
                        help=f"threads for BLAS (threadpoolctl), OpenMP, torch and dask "
                             f"(default: ${THREADS_ENV} if set, else the libraries' own, "
                             f"usually every core; on a busy machine 1 can be many times "
                             f"faster)")
    return common


def _method_options(parser):
    parser.add_argument("--method", choices=METHODS, default=None,
                        help="denoiser: median = DonutMedian (radius), gaussian = "
                             "JInvariantGaussian (sigma, pixels), wavelet = JInvariantWavelet "
                             "(sigma, noise level in the file's units: 0..255 for 8-bit), "
                             "net = N2SNet (needs the torch extra), auto = AutoDenoiser "
                             "(every image family on its default grid, the lowest "
                             "self-supervised loss wins), lowrank = "
                             "LibrarySizeNormalizer + LowRankDenoiser (n_components, .h5ad "
                             "only); default: auto for images (median when --param or "
                             "--grid names a parameter, or for .zarr), lowrank for .h5ad")
    parser.add_argument("--grid", action="append", metavar="NAME=V1,V2,...",
                        help="values to search (repeatable); default: radius 1..6, "
                             "sigma 0.5..5 px, wavelet sigma 0.25..1.5 x the estimated "
                             "noise level (in the file's units), or n_components 2..40. "
                             "A warning says when the pick is at the edge of the grid or "
                             "the loss is flat over it")
    parser.add_argument("--channel-axis", action="store_true",
                        help="the last axis holds colour channels (automatic for PNG/JPEG "
                             "colour images and RGB TIFFs)")
    parser.add_argument("--volume", action="store_true",
                        help="treat a 3-D array as one volume instead of a stack of 2-D "
                             "images")
    parser.add_argument("--layer", default=None, metavar="NAME",
                        help=".h5ad only: the layer holding the counts (default: "
                             "layers['counts'] if present, else X)")
    parser.add_argument("--no-normalize", action="store_true",
                        help=".h5ad only: fit the low-rank model to the raw counts; by "
                             "default each cell is first scaled to 10,000 counts and "
                             "log1p-transformed (scanpy's normalize_total + log1p, the "
                             "README's pipeline), and the denoised layer holds "
                             "log-normalised values")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow an output (OUT, --plot) to replace an input file "
                             "(however it is named: ./, links), or an existing .zarr "
                             "store; without it n2s refuses. Outputs are always written "
                             "to a temporary file first and renamed when complete")


def build_parser():
    """The ``n2s`` argument parser."""
    common = _common_options()
    parser = _Parser(prog="n2s", parents=[common], epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Self-supervised denoising (Noise2Self): choose a "
                                 "denoiser's parameters from the noisy image alone, then "
                                 "denoise it.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    demo = sub.add_parser("demo", parents=[common], help="run the demo on a built-in image",
                          description="Add Gaussian noise to scikit-image's camera, "
                                      "calibrate each classical denoiser without the clean "
                                      "image, compare with the truth, write figures.")
    demo.add_argument("--out", default="demo_out", metavar="DIR",
                      help="folder for calibration.png and the images (default demo_out)")
    demo.add_argument("--size", type=int, default=None, metavar="N",
                      help="use the central N x N crop (faster); default: the full 512 x 512")
    demo.add_argument("--sigma", type=float, default=0.1, help="noise level (default 0.1)")
    demo.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    demo.set_defaults(run=cmd_demo)

    cal = sub.add_parser("calibrate", parents=[common],
                         help="find a denoiser's parameters for an image file",
                         description="Search parameters with the self-supervised loss; "
                                     "print the table and write a calibration plot.")
    cal.add_argument("file", help="TIFF (page stack or 3-D), PNG, JPEG, .npy or .h5ad")
    _method_options(cal)
    cal.add_argument("--json", action="store_true", help="print the results as JSON")
    cal.add_argument("--plot", metavar="PNG",
                     help="where to write the plot (default FILESTEM_calibration.png; "
                          "its type from the suffix: .png, .pdf, .svg, ...)")
    cal.add_argument("--no-plot", action="store_true", help="write no plot")
    cal.set_defaults(run=cmd_calibrate)

    den = sub.add_parser("denoise", parents=[common], help="denoise an image file",
                         description="Denoise IN into OUT. Parameters are calibrated on "
                                     "the whole file unless --param fixes them; a stack is "
                                     "calibrated once and every image denoised with the "
                                     "result. Integer images come back in their dtype, "
                                     "floats as floats (see sklearn_n2s.io).")
    den.add_argument("input", metavar="IN", help="TIFF, PNG, JPEG, .npy, .zarr (a stack "
                                                 "larger than memory) or .h5ad (counts; "
                                                 "the result goes to layers['denoised'])")
    den.add_argument("output_file", metavar="OUT", help="output file; format from its suffix")
    _method_options(den)
    how = den.add_mutually_exclusive_group()
    how.add_argument("--calibrate", action="store_true",
                     help="choose the parameters self-supervised (the default)")
    how.add_argument("--param", action="append", metavar="NAME=VALUE",
                     help="fix a parameter instead of calibrating (repeatable)")
    den.add_argument("--output", choices=OUTPUTS, default=None,
                     help="shrink: best mix of the J-invariant output and the data; "
                          "ordinary: the plain filter; invariant: J-invariant output; "
                          "auto: per image, the one of the three with the lowest "
                          "estimated error (default: the family's own, shrink for median, "
                          "gaussian and wavelet, ordinary for NL-means, TV and BM3D; "
                          "--method auto: auto, ordinary for TV and BM3D; --method net: "
                          "auto, the posterior mean or the one pass)")
    den.set_defaults(run=cmd_denoise)
    return parser


# ------------------------------------------------------------------------------ main
def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"n2s: warning: {_one_line(message)}", file=sys.stderr)


def main(argv=None):
    """Entry point of the ``n2s`` console script.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments after ``n2s``; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 1 on an error (printed as one line on stderr), 130 on Ctrl-C.
    """
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    report = _Reporter(quiet=getattr(args, "quiet", False) and not verbose, verbose=verbose)
    # A fresh warnings state per run: each warning shown once per command, and the
    # previous showwarning given back afterwards.
    with warnings.catch_warnings():
        if not verbose:
            warnings.showwarning = _one_line_warnings
        try:
            args.threads_limit = thread_limit(args)
            with limit_threads(args.threads_limit):
                return args.run(args, report)
        except KeyboardInterrupt:
            print("n2s: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # the one place every failure becomes one line
            if verbose:
                raise
            print(f"n2s: error: {_one_line(exc)}", file=sys.stderr)
            return 1


def thread_limit(args):
    """``--threads``, else ``$N2S_THREADS``, else None (leave the libraries as they are)."""
    if getattr(args, "threads", None) is not None:
        return args.threads
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    try:
        return _thread_count(text)
    except argparse.ArgumentTypeError as exc:
        raise CommandLineError(f"{THREADS_ENV}={text!r}: {exc}") from None


@contextlib.contextmanager
def limit_threads(n_threads):
    """Run with ``n_threads`` in BLAS/OpenMP (threadpoolctl), torch and dask; restore after.

    Libraries loaded later in the run (torch for ``--method net``, a second BLAS) read
    the ``*_NUM_THREADS`` environment variables set here when they load; the net also
    gets ``num_threads``.
    """
    if n_threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: str(n_threads) for name in _THREAD_VARIABLES})
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    try:
        with threadpool_limits(limits=n_threads), _dask_workers(n_threads):
            if torch is not None:
                torch.set_num_threads(n_threads)
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(previous)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _dask_workers(n_threads):
    try:
        import dask
    except ImportError:
        return contextlib.nullcontext()
    return dask.config.set(num_workers=n_threads)


if __name__ == "__main__":
    sys.exit(main())
