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
``--verbose`` to see the traceback.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from ..model_selection import format_table, results_rows

IMAGE_METHODS = ("median", "gaussian", "wavelet", "net")
TABLE_METHODS = ("lowrank",)
METHODS = IMAGE_METHODS + TABLE_METHODS
LOWRANK_COMPONENTS = [2, 5, 10, 20, 40]
OUTPUTS = ("shrink", "ordinary", "invariant")
GAUSSIAN_SIGMAS = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]
# Wavelet thresholds are set by the noise level: the grid spans multiples of the
# noise standard deviation estimated from the data (BayesShrink often does best a
# little below the true level, hence the low end).
WAVELET_SIGMA_FACTORS = [0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.25, 1.5]
MEDIAN_RADII = {1: range(1, 11), 2: range(1, 7), 3: range(1, 4)}

EPILOG = """examples:
  n2s demo --out demo_out
  n2s calibrate noisy.tif --method wavelet --json
  n2s calibrate noisy.png --method median --grid radius=1,2,3,4
  n2s denoise noisy.tif denoised.tif --method gaussian
  n2s denoise photo.jpg clean.png --param radius=2
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
        raise CommandLineError(
            f"bad {option} {item!r}: expected NAME=VALUE"
            f"{',VALUE,...' if option == '--grid' else ''}, e.g. radius=1,2,3"
        )
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
        params[name] = parse_value(value)
    return params


def check_param_names(estimator, names, option):
    """Fail in one line on a parameter the estimator does not have."""
    valid = estimator.get_params()
    # Prefixed names (skorch's module__width) are routed, not listed: set_params checks them.
    unknown = [n for n in names if n not in valid and "__" not in n]
    if unknown:
        raise CommandLineError(
            f"bad {option}: {type(estimator).__name__} has no parameter "
            f"{unknown[0]!r}; its parameters: {', '.join(sorted(valid))}"
        )


# ------------------------------------------------------------------------- estimators
def make_estimator(method, *, channel_axis=None, output="shrink"):
    """A fresh estimator for a ``--method`` name."""
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
    wanted = {"channel_axis": channel_axis, "output": output, "random_state": 0}
    estimator.set_params(**{k: v for k, v in wanted.items() if k in settable})
    return estimator


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


def calibrate_rank_path(grid, X, *, cv, quiet=False):
    """The rank path for ``--method lowrank``, its failures one CLI error line."""
    from ..model_selection import calibrate_rank_path as rank_path

    unknown = set(grid) - {"n_components"}
    if unknown:
        raise CommandLineError(f"bad --grid: the lowrank calibration searches n_components "
                               f"only, not {sorted(unknown)[0]!r}")
    try:
        return rank_path(grid, X, cv=cv, quiet=quiet)
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
def load_stack(path, *, channel_axis_flag, volume):
    """Read an image file and view it as a stack; returns (loaded, X, alpha)."""
    from ..io._images import as_stack, read_image, split_alpha

    loaded = read_image(path, channel_axis=-1 if channel_axis_flag else None)
    colour, alpha = split_alpha(loaded.array, loaded.channel_axis)
    X = as_stack(colour, channel_axis=loaded.channel_axis, volume=volume)
    return loaded, X, alpha


def _describe(loaded, X):
    kind = "colour " if loaded.channel_axis is not None else ""
    return (f"{X.shape[0]} {kind}image{'s' if X.shape[0] != 1 else ''} of shape "
            f"{X.shape[1:]} ({loaded.array.dtype})")


def _write_plot(search, path, report):
    if not any(search.cv_results_["params"]):
        report.note("n2s: note: no calibration plot: no parameter was searched")
        return None
    try:
        from ..plotting import plot_calibration

        fig = plot_calibration(search)
    except ImportError as exc:
        report.note(f"n2s: note: no calibration plot: {_one_line(exc)}")
        return None
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return str(path)


# -------------------------------------------------------------------------- commands
def cmd_demo(args, report):
    from ._demo import run_demo

    run_demo(args.out, size=args.size, sigma=args.sigma, seed=args.seed,
             quiet=report.quiet)
    return 0


def _calibrated_search(args, X, channel_axis, report, grid, output="shrink"):
    estimator = make_estimator(args.method, channel_axis=channel_axis, output=output)
    grid = grid or default_grid(args.method, X, channel_axis)
    check_param_names(estimator, grid, "--grid")
    searched = "; ".join(f"{k} in {', '.join(_fmt(v) for v in vs)}" for k, vs in grid.items())
    report.note(f"calibrating {type(estimator).__name__} over {searched or 'its defaults'}")
    if args.method == "lowrank":
        return calibrate_rank_path(grid, X, cv=cv_for(args.method, X.shape[0]),
                                   quiet=report.quiet)
    return calibrate(estimator, grid, X, cv=cv_for(args.method, X.shape[0]),
                     quiet=report.quiet, desc=f"calibrating {args.method}")


def _print_search(search, report):
    rows = results_rows(search)
    names = list(rows[0][0]) if rows else []
    table = [[_fmt(p[n]) for n in names] + [f"{loss:.6g}"] for p, loss, _ in rows]
    chosen = next((i for i, (_, _, c) in enumerate(rows) if c), None)
    report.table(format_table(names + ["self-supervised loss"], table, chosen))
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
    plot = None if args.no_plot else (args.plot or f"{Path(args.file).stem}_calibration.png")
    plot = _write_plot(search, plot, report) if plot else None
    if args.json:
        report.table(json.dumps(_jsonable({
            "file": str(args.file), "method": args.method,
            "estimator": type(search.estimator).__name__,
            "n_samples": X.shape[0],
            "shape": list((X if loaded is None else loaded.array).shape),
            "dtype": str((X if loaded is None else loaded.array).dtype),
            "best_params": search.best_params_,
            "results": [{"params": p, "self_supervised_loss": loss, "chosen": c}
                        for p, loss, c in results_rows(search)],
            "plot": plot,
        }), indent=2))
    else:
        _print_search(search, report)
        if plot:
            report.note(f"wrote {plot}")
    return 0


def _fitted_estimator(args, X, channel_axis, report, grid, params):
    if params:
        estimator = make_estimator(args.method, channel_axis=channel_axis, output=args.output)
        try:
            return estimator.set_params(**params).fit(X)
        except (ValueError, TypeError) as exc:
            raise CommandLineError(f"bad --param: {_one_line(exc)}") from exc
    search = _calibrated_search(args, X, channel_axis, report, grid, output=args.output)
    if report.verbose:
        _print_search(search, report)
    report.note("chosen: " + (", ".join(f"{k}={_fmt(v)}" for k, v in
                                         search.best_params_.items()) or "defaults"))
    return search.best_estimator_


def _denoise_stack(estimator, X, report):
    """Transform image by image (same result as all at once) so progress can show."""
    from ..utils._progress import progress

    out = [estimator.transform(X[i:i + 1])
           for i in progress(range(X.shape[0]), desc="denoising", quiet=report.quiet,
                             unit="image")]
    return np.concatenate(out, axis=0)


def _denoise_other(args, report):
    """``.zarr`` and ``.h5ad``: handed to the modules that know those formats."""
    from ..io._images import is_chunked_path, is_table_path

    for check, kind in ((is_chunked_path, ".zarr"), (is_table_path, ".h5ad")):
        if check(args.input) != check(args.output_file):
            raise CommandLineError(f"a {kind} input needs a {kind} output (and the reverse)")
    resolve_method(args, args.input)
    if is_table_path(args.input):
        return _denoise_h5ad(args, report)
    return _denoise_zarr(args, report)


def _denoise_zarr(args, report):
    from ..io._images import denoise_zarr_store

    estimator = make_estimator(args.method, channel_axis=-1 if args.channel_axis else None,
                               output=args.output)
    params = parse_params(args.param)
    check_param_names(estimator, params, "--param")
    estimator.set_params(**params)
    report.note(f"denoising {args.input} blockwise with {type(estimator).__name__}")
    grid = None if params else (parse_grid(args.grid) or _zarr_default_grid(args))
    used = denoise_zarr_store(args.input, args.output_file, estimator, grid)
    report.note(f"wrote {args.output_file}" + (f" with {used}" if used else ""))
    return 0


def load_table(path, layer=None):
    """``(adata, counts)`` of an ``.h5ad`` file, counts as anndata_io finds them."""
    from ..io._images import optional_module, read_h5ad

    anndata_io = optional_module("io._anndata", "an .h5ad count table")
    adata = read_h5ad(path)
    try:
        return adata, anndata_io.get_counts(adata, layer)
    except KeyError as exc:
        raise CommandLineError(f"{path} has no layer {_one_line(exc)}; its layers: "
                               f"{', '.join(adata.layers) or 'none'} (and X)") from None


def _denoise_h5ad(args, report):
    """Counts in, a ``denoised`` layer out (scanpy's conventions, see anndata_io)."""
    from ..io._images import optional_module, write_h5ad

    grid, params = parse_grid(args.grid), parse_params(args.param)
    check_param_names(make_estimator(args.method), {**grid, **params}, "--grid/--param")
    adata, counts = load_table(args.input, args.layer)
    report.note(f"read {args.input}: {counts.shape[0]} cells x {counts.shape[1]} genes")
    estimator = _fitted_estimator(args, counts, None, report, grid, params)
    anndata_io = optional_module("io._anndata", "an .h5ad count table")
    anndata_io.denoise_anndata(adata, estimator, layer=args.layer, fit=False)
    write_h5ad(adata, args.output_file)
    report.note(f"wrote {args.output_file}: layer 'denoised' from "
                f"{type(estimator).__name__}({_params_text(estimator, args)})")
    return 0


def resolve_method(args, path):
    """The default method for the file type, and a clear error for a mismatch."""
    from ..io._images import is_table_path

    table = is_table_path(path)
    if args.method is None:
        args.method = TABLE_METHODS[0] if table else IMAGE_METHODS[0]
    allowed = TABLE_METHODS if table else IMAGE_METHODS
    if args.method not in allowed:
        kind = ".h5ad count tables" if table else "images"
        raise CommandLineError(f"--method {args.method} does not apply to {path}: for "
                               f"{kind} use {' or '.join(allowed)}")
    return args.method


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
    from ..io._images import is_chunked_path, is_table_path, join_alpha, restore_dtype, write_image

    if any(is_chunked_path(p) or is_table_path(p) for p in (args.input, args.output_file)):
        return _denoise_other(args, report)
    resolve_method(args, args.input)
    if args.param and args.grid:
        raise CommandLineError("give either --param (fixed values) or --grid (to calibrate)")
    grid, params = parse_grid(args.grid), parse_params(args.param)  # fail before any work
    check_param_names(make_estimator(args.method), {**grid, **params},
                      "--param" if params else "--grid")
    from ..io._images import file_format

    file_format(args.output_file)
    loaded, X, alpha = load_stack(args.input, channel_axis_flag=args.channel_axis,
                                  volume=args.volume)
    report.note(f"read {args.input}: {_describe(loaded, X)}")
    estimator = _fitted_estimator(args, X, loaded.channel_axis, report, grid, params)
    denoised = _denoise_stack(estimator, X, report)
    shape = loaded.array.shape[:-1] + (X.shape[-1],) if alpha is not None else loaded.array.shape
    result = restore_dtype(denoised.reshape(shape), loaded.array.dtype)
    result = join_alpha(result, alpha)
    write_image(args.output_file, result, channel_axis=loaded.channel_axis)
    report.note(f"wrote {args.output_file}: {result.shape} {result.dtype}, "
                f"{type(estimator).__name__}({_params_text(estimator, args)})")
    return 0


def _params_text(estimator, args):
    names = list(parse_params(args.param)) or list(parse_grid(args.grid)) or [
        n for n in ("radius", "sigma", "n_components") if n in estimator.get_params()]
    return ", ".join(f"{n}={_fmt(estimator.get_params()[n])}" for n in names)


# ---------------------------------------------------------------------------- parser
def _common_options():
    """--quiet and --verbose, accepted before or after the sub-command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or notes, only results and errors")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="more detail, and the full traceback on errors")
    return common


def _method_options(parser):
    parser.add_argument("--method", choices=METHODS, default=None,
                        help="denoiser: median = DonutMedian (radius), gaussian = "
                             "JInvariantGaussian (sigma, pixels), wavelet = JInvariantWavelet "
                             "(sigma, noise level in the file's units), net = N2SNet "
                             "(needs the torch extra), lowrank = LowRankDenoiser "
                             "(n_components, .h5ad only); default: median for images, "
                             "lowrank for .h5ad")
    parser.add_argument("--grid", action="append", metavar="NAME=V1,V2,...",
                        help="values to search (repeatable); default: radius 1..6, "
                             "sigma 0.5..5 px, wavelet sigma 0.25..1.5 x the estimated "
                             "noise level, or n_components 2..40")
    parser.add_argument("--channel-axis", action="store_true",
                        help="the last axis holds colour channels (automatic for PNG/JPEG "
                             "colour images and RGB TIFFs)")
    parser.add_argument("--volume", action="store_true",
                        help="treat a 3-D array as one volume instead of a stack of 2-D "
                             "images")
    parser.add_argument("--layer", default=None, metavar="NAME",
                        help=".h5ad only: the layer holding the counts (default: "
                             "layers['counts'] if present, else X)")


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
                     help="where to write the plot (default FILESTEM_calibration.png)")
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
    den.add_argument("--output", choices=OUTPUTS, default="shrink",
                     help="shrink (default): best mix of the J-invariant output and the "
                          "data; ordinary: the plain filter; invariant: J-invariant output")
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
    previous = warnings.showwarning
    if not verbose:
        warnings.showwarning = _one_line_warnings
    try:
        return args.run(args, report)
    except KeyboardInterrupt:
        print("n2s: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one place every failure becomes one line
        if verbose:
            raise
        print(f"n2s: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
