"""Reading and writing image files for the command line, with a stated dtype policy.

Formats
-------
- TIFF (``.tif``, ``.tiff``, via tifffile): single images, multi-page stacks, 3-D
  volumes, RGB(A). A TIFF with a samples axis (``S`` in tifffile's series axes, i.e.
  RGB) is read with the channels last.
- PNG and JPEG (via imageio): grey or colour (the last axis is the channels).
- NumPy ``.npy``: any numeric array, read without pickles.
- ``.h5ad`` (AnnData count tables, read here with anndata and denoised by
  :func:`sklearn_n2s.io.denoise_anndata`) and ``.zarr`` (arrays larger than
  memory, handed to :mod:`sklearn_n2s.io` / :mod:`sklearn_n2s.blockwise`) work
  when those modules and their optional dependencies are present; otherwise a
  :class:`MissingFeatureError` says in one line what is missing.

Shapes
------
:func:`as_stack` turns what a file holds into the estimators' stack
``(n_samples, *spatial[, n_channels])``: a 2-D image becomes a stack of one; a 3-D
array without channels is a stack of 2-D images (each page one sample, calibrated
together) unless ``volume=True`` makes it one 3-D volume; a 1-D array is one signal.
The denoised stack is reshaped back to the file's shape.

Dtype and range policy
----------------------
The estimators compute in floating point; integer images are converted with
:func:`skimage.util.img_as_float` (uint8 0..255 to 0..1, uint16 0..65535 to 0..1,
int16 to -1..1), so parameters keep scikit-image's meaning. On output
(:func:`restore_dtype`):

- integer input gives the same integer dtype back: the exact inverse of that
  conversion, rounded to the nearest integer and clipped to the dtype's range (a
  signed dtype's minimum, which ``img_as_float`` sends to -1 like minimum + 1, comes
  back as minimum + 1);
- float input gives float back (float32 stays float32, float16 becomes float32),
  neither clipped nor rescaled;
- boolean input is thresholded at 0.5.

PNG and JPEG hold only 8-bit (PNG also 16-bit) integers: float data are written as
8-bit when they lie in [0, 1] (they are clipped to it after rounding noise), with a
warning that says so, and refused otherwise; 16-bit data written as JPEG become 8-bit
(also with a warning). TIFF and ``.npy`` store any dtype exactly.

TIFF layout and metadata
------------------------
:func:`read_image` returns what a TIFF says about itself in ``metadata`` (the series'
axes, planar or interleaved colour, the resolution tags and ImageJ's ``spacing``,
``unit``, ...); :func:`write_image` given that ``metadata`` writes the same layout back:
a planar RGB TIFF stays planar, an ImageJ hyperstack stays one, with its calibration.

Safe writing
------------
Every writer here (:func:`write_image`, :func:`write_h5ad`) writes to a temporary file
beside the target and renames it over the target only once it is complete
(:func:`atomic_output`): an error or Ctrl-C leaves the previous file, or none, and no
temporary file behind. :func:`same_file` tells whether two paths name one file (through
``./``, symbolic and hard links), which the command line uses to refuse writing over its
input.

Examples
--------
>>> import numpy as np
>>> from sklearn_n2s.io import as_stack, restore_dtype
>>> image = np.array([[0, 128], [255, 64]], dtype=np.uint8)
>>> as_stack(image).shape
(1, 2, 2)
>>> restore_dtype(image / 255.0, np.uint8)
array([[  0, 128],
       [255,  64]], dtype=uint8)
"""

import contextlib
import importlib
import os
import shutil
import uuid
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np
from skimage.util import img_as_float

TIFF_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy",)
TABLE_SUFFIXES = (".h5ad",)
CHUNKED_SUFFIXES = (".zarr",)
IMAGE_SUFFIXES = TIFF_SUFFIXES + RASTER_SUFFIXES + ARRAY_SUFFIXES
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES + TABLE_SUFFIXES + CHUNKED_SUFFIXES

#: What :func:`read_image` returns: the array, its channel axis (None or -1), the format
#: and, for a TIFF, its layout and metadata (a dict, see :func:`write_image`; else None).
LoadedImage = namedtuple("LoadedImage", ["array", "channel_axis", "format", "metadata"],
                         defaults=(None,))

#: ImageJ metadata written back unchanged (a denoised image keeps its calibration).
IMAGEJ_KEYS = ("spacing", "unit", "finterval", "fps", "loop", "mode", "xorigin",
               "yorigin", "zorigin")


class MissingFeatureError(ImportError):
    """An optional part of sklearn_n2s (or its dependency) needed for a file is absent."""


class ImageFileError(ValueError):
    """A file that cannot be read or written as asked (the message says why)."""


# ----------------------------------------------------------------------------- formats
def file_format(path):
    """Lower-case suffix of ``path`` if it is supported, else an :class:`ImageFileError`.

    Parameters
    ----------
    path : str or Path
        A file (or ``.zarr`` directory) name; a trailing slash is ignored.

    Returns
    -------
    suffix : str
        One of :data:`SUPPORTED_SUFFIXES`, e.g. ``'.tif'``.
    """
    suffix = Path(str(path).rstrip("/\\")).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = suffix or "(no extension)"
        raise ImageFileError(
            f"unsupported file type {shown} for {path}; supported: "
            f"{' '.join(SUPPORTED_SUFFIXES)}"
        )
    return suffix


def optional_module(name, purpose):
    """Import ``sklearn_n2s.<name>``, or raise a one-line :class:`MissingFeatureError`.

    Parameters
    ----------
    name : str
        Module path below ``sklearn_n2s``, e.g. ``'blockwise'`` or ``'io._zarr'``.
    purpose : str
        What the module is needed for, shown in the error.

    Returns
    -------
    module : module
    """
    try:
        return importlib.import_module(f"sklearn_n2s.{name}")
    except ImportError as exc:
        raise MissingFeatureError(
            f"{purpose} needs sklearn_n2s.{name}, which is not available here ({exc})"
        ) from None


def _require(package, extra):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingFeatureError(
            f"this file type needs the optional package {package}: "
            f"pip install 'sklearn_n2s[{extra}]'"
        ) from None


# ------------------------------------------------------------------------ safe writing
def same_file(a, b):
    """True when ``a`` and ``b`` name one existing file or directory.

    The same file, not the same string: ``./in.tif``, a symbolic link and a hard link to
    ``in.tif`` all name ``in.tif`` (compared by device and inode).

    Parameters
    ----------
    a, b : str or Path
        Two paths; a path that does not exist names no file.

    Returns
    -------
    same : bool
    """
    try:
        return os.path.samefile(os.fspath(a), os.fspath(b))
    except (OSError, ValueError):
        return False


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def _replace(tmp, target):
    """``os.replace``, also over an existing directory (a zarr store) as a whole."""
    if os.path.isdir(tmp) and os.path.isdir(target) and not os.path.islink(target):
        old = target.with_name(f".{target.name}.n2s-old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    if os.path.isfile(target) and os.path.isfile(tmp):
        with contextlib.suppress(OSError):
            shutil.copymode(target, tmp)  # replacing a file keeps its permissions
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_output(path):
    """Write to a temporary path beside ``path``; rename it over ``path`` on success.

    The temporary name keeps the suffix (writers choose the format from it) and starts
    with a dot. When the ``with`` block raises (an error, ``KeyboardInterrupt``) the
    temporary file or directory is removed and ``path`` is left as it was. A symbolic
    link is written through (its target is replaced). A directory written at the
    temporary path (a zarr store) replaces ``path`` as a whole.

    Parameters
    ----------
    path : str or Path
        The file (or directory) to produce; its directory must exist.

    Yields
    ------
    tmp : Path
        Where to write; nothing exists there yet.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_n2s.io._images import atomic_output
    >>> folder = tempfile.mkdtemp()
    >>> with atomic_output(os.path.join(folder, "notes.txt")) as tmp:
    ...     _ = tmp.write_text("complete")
    >>> os.listdir(folder)
    ['notes.txt']
    """
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    tmp = target.with_name(f".{target.stem}.n2s-tmp-{uuid.uuid4().hex[:8]}{target.suffix}")
    try:
        yield tmp
        _replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def check_writable(path, *, option=None, directory_ok=False):
    """Fail early, in one line, when ``path`` cannot be written (before any long work).

    Parameters
    ----------
    path : str or Path
        The file to be written.
    option : str or None
        How the path was given (``'--plot'``), named in the error.
    directory_ok : bool, default=False
        ``path`` may be an existing directory (a zarr store to replace).

    Raises
    ------
    FileNotFoundError
        The directory does not exist.
    ImageFileError
        ``path`` is a directory, or its directory is not writable.
    """
    path = Path(path)
    what = f"{option} {path}" if option else str(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise FileNotFoundError(f"no such directory: {parent} (for {what})")
    if not parent.is_dir():
        raise ImageFileError(f"cannot write {what}: {parent} is not a directory")
    if path.is_dir() and not directory_ok:
        raise ImageFileError(f"cannot write {what}: it is a directory")
    try:  # os.access is not enough (root, read-only mounts): try it
        probe = parent / f".n2s-probe-{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ImageFileError(f"cannot write {what}: {parent} is not writable "
                             f"({exc.strerror or exc})") from None


# ----------------------------------------------------------------------------- reading
def read_image(path, *, channel_axis=None):
    """Read a TIFF, PNG, JPEG or ``.npy`` file.

    Parameters
    ----------
    path : str or Path
        The image file.
    channel_axis : None or -1, default=None
        -1 declares a trailing channel axis. PNG/JPEG colour images and RGB TIFFs are
        detected without it.

    Returns
    -------
    LoadedImage
        ``(array, channel_axis, format, metadata)``, the array exactly as stored (RGB
        TIFF channels moved last); ``metadata`` is a TIFF's layout and tags (hand it to
        :func:`write_image` to keep them), None for other formats.
    """
    path = Path(path)
    suffix = file_format(path)
    if suffix not in IMAGE_SUFFIXES:
        raise ImageFileError(f"{path} is a {suffix} file, not an image: use the matching command")
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ImageFileError(f"{path} is a directory, not an image file")
    reader = {".npy": _read_npy, ".tif": _read_tiff, ".tiff": _read_tiff}.get(suffix, _read_raster)
    try:
        array, detected, *metadata = reader(path)
    except (MissingFeatureError, ImageFileError):
        raise
    except Exception as exc:
        raise ImageFileError(f"could not read {path} as {suffix[1:].upper()}: "
                             f"{_first_line(exc)}") from None
    if array.size == 0:
        raise ImageFileError(f"{path} holds an empty array (shape {array.shape})")
    if array.dtype.kind not in "biuf":
        raise ImageFileError(f"{path} holds {array.dtype} data; expected a real-valued image")
    return LoadedImage(array, -1 if (channel_axis == -1 or detected) else None, suffix,
                       metadata[0] if metadata else None)


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_npy(path):
    return np.load(path, allow_pickle=False), False


def _read_tiff(path):
    tifffile = _require("tifffile", "cli")
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        array, axes = series.asarray(), series.axes
        metadata = _tiff_metadata(tif, series)
    if "S" in axes:  # RGB stored planar (S before YX) or interleaved: channels last
        array = np.moveaxis(array, axes.index("S"), -1)
        return array, True, metadata
    return array, False, metadata


def _tiff_metadata(tif, series):
    """What :func:`write_image` needs to write a TIFF back as it was laid out."""
    page = tif.pages[0]
    metadata = {"axes": series.axes, "shape": tuple(series.shape),
                "planar": "S" in series.axes and series.axes.index("S") < len(series.axes) - 1}
    with contextlib.suppress(Exception):  # resolution tags are optional
        if "XResolution" in page.tags:
            metadata["resolution"] = tuple(float(r) for r in page.get_resolution())
            metadata["resolutionunit"] = int(page.resolutionunit)
    if tif.is_imagej and tif.imagej_metadata:
        metadata["imagej"] = {k: v for k, v in tif.imagej_metadata.items()
                              if k in IMAGEJ_KEYS}
    return metadata


def _read_raster(path):
    iio = _require("imageio.v3", "cli")
    array = np.asarray(iio.imread(path, plugin="pillow"))
    return array, array.ndim == 3


# ------------------------------------------------------------------------------ shapes
def as_stack(array, *, channel_axis=None, volume=False):
    """View a file's array as a stack ``(n_samples, *spatial[, n_channels])``.

    Parameters
    ----------
    array : ndarray
        What the file holds.
    channel_axis : None or -1
        -1 when the last axis holds channels.
    volume : bool, default=False
        Treat three spatial axes as one 3-D volume (or four as a stack of volumes)
        rather than a stack of 2-D images.

    Returns
    -------
    X : ndarray
        A view of ``array``; reshape the output back with ``out.reshape(array.shape)``.
    """
    n_core = array.ndim - (channel_axis is not None)
    if n_core < 1:
        raise ImageFileError(f"the data has shape {array.shape}: no spatial axis to denoise")
    if volume:
        if n_core == 3:
            return array[np.newaxis]
        if n_core == 4:
            return array
        raise ImageFileError(
            f"--volume needs 3-D data (or a stack of volumes); the data has shape "
            f"{array.shape}"
        )
    if n_core in (1, 2):
        return array[np.newaxis]
    if n_core == 3:
        return array
    raise ImageFileError(
        f"the data has shape {array.shape}: {n_core} axes besides the channels; pass "
        "--volume to read it as a stack of 3-D volumes"
    )


def split_alpha(array, channel_axis):
    """Separate an alpha channel (RGBA, grey+alpha) that must not be denoised.

    Parameters
    ----------
    array : ndarray
        An image or stack, channels last when ``channel_axis`` is -1.
    channel_axis : None or -1
        None: no channels, nothing is split.

    Returns
    -------
    colour : ndarray
        ``array`` without its last channel when it has 2 or 4 channels, else ``array``.
    alpha : ndarray or None
        The last channel (kept as an axis of length 1), or None.
    """
    if channel_axis is None or array.shape[-1] not in (2, 4):
        return array, None
    return array[..., :-1], array[..., -1:]


def join_alpha(array, alpha):
    """Put back the alpha channel removed by :func:`split_alpha`.

    Parameters
    ----------
    array : ndarray
        The (denoised) colour channels, channels last.
    alpha : ndarray or None
        What :func:`split_alpha` returned; None returns ``array`` unchanged.

    Returns
    -------
    joined : ndarray
        ``array`` with ``alpha`` (cast to ``array``'s dtype) as its last channel.
    """
    if alpha is None:
        return array
    return np.concatenate([array, alpha.astype(array.dtype)], axis=-1)


# ------------------------------------------------------------------------------- dtype
def _integer_affine(dtype):
    """``(offset, step)`` with ``img_as_float(i) == offset + step * i`` for ``dtype``."""
    pair = img_as_float(np.array([0, 1], dtype=dtype))
    return float(pair[0]), float(pair[1] - pair[0])


def restore_dtype(values, dtype):
    """Convert denoised float values back to the dtype the input file had.

    See the module notes for the policy: integers are the exact inverse of
    ``img_as_float``, rounded and clipped; floats stay float, unclipped.

    Parameters
    ----------
    values : array-like
        Denoised values in the estimators' float units; an integer array already of
        ``dtype`` (an estimator that keeps integer units, as :class:`~sklearn_n2s.N2SNet`
        does) is returned as it is.
    dtype : dtype
        The input file's dtype.

    Returns
    -------
    restored : ndarray of ``dtype`` (float32 for float16, bool thresholded at 0.5)
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values)
    if dtype.kind in "iu" and values.dtype == dtype:
        return values
    if dtype.kind == "b":
        return values > 0.5
    if dtype.kind == "f":
        return values.astype(np.float64 if dtype.itemsize == 8 else np.float32, copy=False)
    info = np.iinfo(dtype)
    offset, step = _integer_affine(dtype)
    integers = np.rint((values.astype(np.float64) - offset) / step)
    return np.clip(integers, info.min, info.max).astype(dtype)


def _to_raster(array, suffix, path):
    """The array as 8-bit (or 16-bit PNG) integers, by the module's policy."""
    if array.dtype == np.uint8 or (array.dtype == np.uint16 and suffix == ".png"):
        return array
    if array.dtype.kind == "b":
        return array.astype(np.uint8) * 255
    values = img_as_float(array) if array.dtype.kind in "iu" else array.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    slack = 1e-3
    if low < -slack or high > 1 + slack:
        raise ImageFileError(
            f"cannot write {path}: values span [{low:.4g}, {high:.4g}], outside [0, 1], "
            f"which {suffix[1:].upper()} cannot hold; write .tif or .npy instead"
        )
    kind = "float" if array.dtype.kind == "f" else str(array.dtype)
    warnings.warn(
        f"writing {kind} data to {path} as 8-bit integers (0..255), all "
        f"{suffix[1:].upper()} holds; write .tif or .npy to keep the {kind} values",
        UserWarning, stacklevel=4)
    return restore_dtype(np.clip(values, 0.0, 1.0), np.uint8)


# ----------------------------------------------------------------------------- writing
def write_image(path, array, *, channel_axis=None, metadata=None):
    """Write ``array`` (as returned by :func:`read_image`'s reader) to a file.

    The format follows the suffix. A PNG/JPEG holds one 2-D image (grey or colour);
    stacks and volumes need TIFF or ``.npy``. The file is written to a temporary name
    beside ``path`` and renamed over it once complete (:func:`atomic_output`).

    Parameters
    ----------
    path : str or Path
        The file to write; its directory must exist.
    array : array-like
        The data, in the dtype to store (see :func:`restore_dtype`).
    channel_axis : None or -1, default=None
        -1 when the last axis holds colour channels (RGB, RGBA).
    metadata : dict or None, default=None
        TIFF only: the ``metadata`` of the :class:`LoadedImage` the data came from, to
        write the same layout (planar colour, ImageJ hyperstack) and tags (resolution,
        ImageJ ``spacing`` and ``unit``) back. Ignored when the shape has changed.

    Returns
    -------
    path : Path
        The file written.
    """
    path = Path(path)
    suffix = file_format(path)
    if suffix not in IMAGE_SUFFIXES:
        raise ImageFileError(f"{path} is a {suffix} file, not an image file")
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"no such directory: {path.parent}")
    array = np.asarray(array)
    if suffix not in TIFF_SUFFIXES and suffix != ".npy":
        image = _raster_image(path, array, channel_axis, suffix)  # refuse before writing
    with atomic_output(path) as tmp:
        if suffix == ".npy":
            np.save(tmp, array, allow_pickle=False)
        elif suffix in TIFF_SUFFIXES:
            _write_tiff(tmp, array, channel_axis, metadata)
        else:
            _require("imageio.v3", "cli").imwrite(tmp, image, plugin="pillow")
    return path


def _write_tiff(path, array, channel_axis, metadata=None):
    tifffile = _require("tifffile", "cli")
    colour = channel_axis is not None and array.shape[-1] in (3, 4)
    extra = {"extrasamples": ["unassalpha"]} if colour and array.shape[-1] == 4 else {}
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    extra.update(_tiff_layout(array, colour, metadata))
    if extra.get("planarconfig") == "separate":
        axes = metadata["axes"]
        array = np.moveaxis(array, -1, axes.index("S") - len(axes))
    tifffile.imwrite(path, array, photometric="rgb" if colour else "minisblack", **extra)


def _tiff_layout(array, colour, metadata):
    """tifffile's keywords to write ``array`` as the TIFF ``metadata`` describes."""
    if not metadata:
        return {}
    axes, shape = metadata.get("axes", ""), tuple(metadata.get("shape", ()))
    channels_last = shape
    if "S" in axes:
        channels_last = shape[:axes.index("S")] + shape[axes.index("S") + 1:] + (
            shape[axes.index("S")],)
    if tuple(array.shape) != channels_last:
        return {}  # not the data that was read: write it plainly
    extra = {}
    if colour and metadata.get("planar"):
        extra["planarconfig"] = "separate"
    if "resolution" in metadata:
        extra["resolution"] = metadata["resolution"]
        extra["resolutionunit"] = metadata.get("resolutionunit")
    ij = metadata.get("imagej")
    if ij is not None and array.dtype in (np.uint8, np.uint16, np.float32):
        extra["imagej"] = True
        extra["metadata"] = {**ij, "axes": axes}
        extra.pop("planarconfig", None)
        extra.pop("extrasamples", None)
    return extra


def _raster_image(path, array, channel_axis, suffix):
    """The 2-D (colour) image a PNG/JPEG will hold, or an :class:`ImageFileError`."""
    image = array
    while image.ndim > 2 + (channel_axis is not None) and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2 + (channel_axis is not None):
        raise ImageFileError(
            f"cannot write {path}: {suffix[1:].upper()} holds one 2-D image, the result has "
            f"shape {array.shape}; write .tif or .npy instead"
        )
    image = _to_raster(image, suffix, path)
    if suffix != ".png" and image.ndim == 3 and image.shape[-1] in (2, 4):
        image = image[..., :-1]  # JPEG has no alpha channel
        image = image[..., 0] if image.shape[-1] == 1 else image
    return image


def is_chunked_path(path):
    """True for a ``.zarr`` store (a directory, possibly with a trailing slash).

    Parameters
    ----------
    path : str or Path
        A file or directory name.

    Returns
    -------
    is_chunked : bool
    """
    return Path(os.fspath(path).rstrip("/\\")).suffix.lower() in CHUNKED_SUFFIXES


def is_table_path(path):
    """True for an AnnData ``.h5ad`` file.

    Parameters
    ----------
    path : str or Path
        A file name.

    Returns
    -------
    is_table : bool
    """
    return Path(os.fspath(path)).suffix.lower() in TABLE_SUFFIXES


# ------------------------------------------------------------------ other engineers' I/O
def _best_params(result):
    """Best parameters from whatever a calibration helper returns (a search or a dict)."""
    if hasattr(result, "best_params_"):
        return dict(result.best_params_)
    if isinstance(result, dict):
        return dict(result.get("best_params", result))
    if isinstance(result, tuple) and result and isinstance(result[0], dict):
        return dict(result[0])
    raise ImageFileError(f"blockwise calibration returned {type(result).__name__}, "
                         "expected a fitted search or a dict of parameters")


def denoise_zarr_store(src, dst, estimator, param_grid=None):
    """``.zarr`` in, ``.zarr`` out, through :mod:`sklearn_n2s.io` (and blockwise).

    With ``param_grid``, the estimator is first calibrated on the whole array with
    :func:`sklearn_n2s.blockwise.calibrate_blockwise`.

    Parameters
    ----------
    src : str or Path
        The input ``.zarr`` store.
    dst : str or Path
        The output ``.zarr`` store.
    estimator : estimator
        An image denoiser; its parameters are set to the calibrated ones.
    param_grid : dict or None, default=None
        Candidate parameters; None denoises with the estimator as it is.

    Returns
    -------
    params : dict
        The parameters chosen by the calibration (empty without ``param_grid``).
    """
    if not Path(src).exists():
        raise FileNotFoundError(f"no such zarr store: {src}")
    zarr_io = optional_module("io._zarr", "denoising a .zarr store")
    params = {}
    if param_grid:
        blockwise = optional_module("blockwise", "calibrating a .zarr store")
        dask_array = _require("dask.array", "dask")
        darr = dask_array.from_zarr(str(src))
        params = _best_params(blockwise.calibrate_blockwise(estimator, param_grid, darr))
        estimator.set_params(**params)
    zarr_io.denoise_zarr(str(src), str(dst), estimator)
    return params


def read_h5ad(path):
    """Read an AnnData ``.h5ad`` file (needs the ``single-cell`` extra).

    Parameters
    ----------
    path : str or Path
        The ``.h5ad`` file.

    Returns
    -------
    adata : anndata.AnnData
    """
    anndata = _require("anndata", "single-cell")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return anndata.read_h5ad(path)
    except Exception as exc:
        raise ImageFileError(f"could not read {path} as .h5ad: {_first_line(exc)}") from None


def write_h5ad(adata, path):
    """Write an AnnData object to ``path`` (an ``.h5ad`` file).

    Parameters
    ----------
    adata : anndata.AnnData
        The object to write.
    path : str or Path
        The file to write; its directory must exist. Written to a temporary file
        beside it, then renamed (:func:`atomic_output`).

    Returns
    -------
    path : Path
        The file written.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"no such directory: {path.parent}")
    with atomic_output(path) as tmp:
        adata.write_h5ad(tmp)
    return path
