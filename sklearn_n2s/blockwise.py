"""Dask arrays in, dask arrays out: denoising images larger than memory, chunk by chunk.

:meth:`transform` and :meth:`invariant_transform` of every image denoiser hand a
:class:`dask.array.Array` to :func:`blockwise_transform`, which returns a lazy dask
array computed with :func:`dask.array.map_overlap`: each chunk is extended by a halo
as wide as the estimator's receptive radius (:func:`receptive_radius`), denoised in
memory by the estimator itself, and trimmed back.

Exactness
---------
- Chunks along the sample axis are independent (no halo); a channel axis is merged into
  one chunk.
- At the true border of the array no halo is invented (``boundary='none'``): the border
  chunks see the real edge, where the estimators exclude out-of-image neighbours (the
  median, the interpolation fill) or apply their own boundary ``mode`` (the Gaussian), so
  the edge pixels get exactly the in-memory treatment. The one exception is the Gaussian
  with ``mode='wrap'``, whose halo at the border is taken from the opposite side
  (``boundary='periodic'``).
- An interior pixel sees every neighbour within the halo. For the local filters
  (:class:`~sklearn_n2s.DonutMedian`, :class:`~sklearn_n2s.JInvariantGaussian`) the
  blockwise result is therefore bit-identical to the in-memory one.
- :class:`~sklearn_n2s.JInvariantWavelet` is not local: its thresholds are statistics of
  whole sub-bands (BayesShrink's sub-band variance, VisuShrink's image size, the noise
  estimate when ``sigma=None``), which blockwise become statistics of each extended
  chunk. The halo covers the spatial support of the decomposition
  (``(filter_length - 1) * (2**levels - 1)`` plus one pixel for the fill), rounded up to
  a multiple of ``2**levels`` so that every extended chunk keeps the dyadic alignment of
  the whole image, and the depth ``levels`` is fixed from the whole image's shape. The
  remaining difference comes only from the thresholds, so it shrinks as chunks grow: on
  a 1024 x 1024 image in 256 x 256 chunks with Gaussian noise the RMS difference from
  the in-memory result is below 3% of the noise standard deviation (measured 1.2-2.3%,
  db1 and db2, ordinary and invariant); in 48 x 48 chunks below 10% (measured 5.7%).
  Single pixels can differ by up to about half the noise standard deviation, where a
  coefficient lands on the other side of its threshold (``tests/test_blockwise.py``).
  Fills ``'mean'`` and ``'uniform'`` use whole-sample statistics and are per chunk too.
- Chunks smaller than the halo are merged with their neighbour (rechunked) before the
  overlap, so any chunking is accepted; so are chunks that break the wavelet's dyadic
  alignment.
- :class:`~sklearn_n2s.DonutMedian` picks its algorithm per call (histogram rank filters
  for at most 256 distinct values, sorting otherwise), hence per chunk; the two give the
  same numbers, so this does not break the equality.
- Values are validated per chunk: NaN or infinity raise their ValueError when the chunk
  holding them is computed. ``fit`` is not blockwise (it would load the array): fit on
  a small patch, e.g. ``est.fit(X[:1, :64, :64].compute())``; the classical filters
  learn nothing but the number of spatial axes.

``output='shrink'``
-------------------
The shrinkage weight ``lam = sigma**2 / L`` (see :mod:`sklearn_n2s.base`) is a
per-sample statistic of the whole image. Computed per chunk it would differ from chunk
to chunk (seams) and from the in-memory result, so :func:`blockwise_transform` computes
it *eagerly*, in one streaming pass over the data (bounded memory): ``L`` is the exact
per-sample mean squared difference between the blockwise invariant prediction and the
data, hence equal to the in-memory ``L`` up to floating-point summation order. The noise
variance is ``noise_variance`` when given (then the output equals the in-memory one to
rounding); when None it is estimated per chunk with
:func:`~sklearn_n2s.estimate_noise_variance` and the median over a sample's chunks is
used (the in-memory path takes one estimate over the whole sample; for stationary noise
they agree within a few percent). The returned array is lazy; computing it runs the
filter a second time. :func:`sklearn_n2s.zarr_io.denoise_zarr` avoids the second filter
pass by storing the invariant prediction and mixing in place.

Calibration
-----------
:func:`calibrate_blockwise` runs a :class:`~sklearn.model_selection.GridSearchCV` on a
stack of representative patches (:func:`representative_patches`), each one chunk plus
the largest halo of the grid, then the best estimator is applied blockwise.

Grid search on a dask cluster
-----------------------------
Every parameter setting is an independent fit and score, which scikit-learn spreads
over workers through joblib; joblib's ``'dask'`` backend sends them to a
:mod:`dask.distributed` cluster (``tests/test_dask_cluster.py`` checks that the result
equals the serial one)::

    from dask.distributed import Client, LocalCluster
    import joblib

    with LocalCluster(n_workers=4) as cluster, Client(cluster):
        search = GridSearchCV(JInvariantGaussian(), {"sigma": [0.5, 1, 2, 4]},
                              cv=FullSplit(), n_jobs=-1)
        with joblib.parallel_config(backend="dask"):
            search.fit(patches)   # e.g. from representative_patches
        # lazy blockwise results compute on the same cluster
        search.best_estimator_.transform(X_dask).to_zarr("out.zarr")
"""

import copy
import numbers

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._validation import MAX_SPATIAL_DIMS, check_channel_axis, intensity_scale, to_float
from .base import shrink_weights
from .noise import estimate_noise_variance
from .scoring import FullSplit

METHODS = ("transform", "invariant_transform")


# ------------------------------------------------------------------ receptive radius
def _check_spatial_shape(spatial_shape):
    spatial_shape = tuple(int(s) for s in spatial_shape)
    if not 1 <= len(spatial_shape) <= MAX_SPATIAL_DIMS:
        raise ValueError(
            f"spatial_shape must have 1 to {MAX_SPATIAL_DIMS} axes, got {spatial_shape}."
        )
    return spatial_shape


def _median_radius(estimator, spatial_shape):
    return (int(estimator.radius),) * len(spatial_shape), (1,) * len(spatial_shape)


def _gaussian_radius(estimator, spatial_shape):
    sigmas = estimator.sigma if np.iterable(estimator.sigma) else [estimator.sigma]
    sigmas = [float(s) for s in sigmas]
    if len(sigmas) == 1:
        sigmas = sigmas * len(spatial_shape)
    if len(sigmas) != len(spatial_shape):
        raise ValueError(
            f"sigma has {len(sigmas)} values but the image has {len(spatial_shape)} "
            "spatial axes."
        )
    # scipy.ndimage cuts the kernel at int(truncate * sigma + 0.5) pixels.
    radius = tuple(int(float(estimator.truncate) * s + 0.5) for s in sigmas)
    return radius, (1,) * len(spatial_shape)


def wavelet_levels(estimator, spatial_shape):
    """Decomposition depth the wavelet estimator uses on an image of ``spatial_shape``."""
    from .wavelet import wavelet_levels_for

    return int(wavelet_levels_for(spatial_shape, estimator.wavelet, estimator.wavelet_levels))


def _wavelet_radius(estimator, spatial_shape):
    import pywt

    levels = wavelet_levels(estimator, spatial_shape)
    filter_length = pywt.Wavelet(estimator.wavelet).dec_len
    # A level-j coefficient spans (filter_length - 1) * (2**j - 1) + 1 input pixels; the
    # masking fill (interpolate/median) reads one more pixel around each masked pixel.
    support = (filter_length - 1) * (2**levels - 1) + 1
    align = 2**levels
    radius = -(-support // align) * align
    return (radius,) * len(spatial_shape), (align,) * len(spatial_shape)


def _halo_rules():
    from .gaussian import JInvariantGaussian
    from .median import DonutMedian
    from .wavelet import JInvariantWavelet

    return {
        DonutMedian: _median_radius,
        JInvariantGaussian: _gaussian_radius,
        JInvariantWavelet: _wavelet_radius,
    }


def _halo_and_alignment(estimator, spatial_shape):
    spatial_shape = _check_spatial_shape(spatial_shape)
    for cls, rule in _halo_rules().items():
        if isinstance(estimator, cls):
            return rule(estimator, spatial_shape)
    raise TypeError(
        f"{type(estimator).__name__} has no known receptive radius: blockwise processing "
        "supports DonutMedian, JInvariantGaussian and JInvariantWavelet."
    )


def receptive_radius(estimator, spatial_shape):
    """Halo (pixels per spatial axis) that makes a chunk's result match the whole image's.

    Parameters
    ----------
    estimator : DonutMedian, JInvariantGaussian or JInvariantWavelet
    spatial_shape : tuple of int
        Spatial shape of the *whole* image (the wavelet's default depth depends on it).

    Returns
    -------
    radius : tuple of int
        ``radius`` for :class:`~sklearn_n2s.DonutMedian`; ``int(truncate * sigma + 0.5)``
        per axis for :class:`~sklearn_n2s.JInvariantGaussian`; for
        :class:`~sklearn_n2s.JInvariantWavelet` the decomposition's support plus the
        fill's pixel, rounded up to a multiple of ``2**levels`` (see the module notes).

    Examples
    --------
    >>> from sklearn_n2s import DonutMedian, JInvariantGaussian, JInvariantWavelet
    >>> from sklearn_n2s.blockwise import receptive_radius
    >>> receptive_radius(DonutMedian(radius=2), (64, 64))
    (2, 2)
    >>> receptive_radius(JInvariantGaussian(sigma=[1.0, 2.0]), (64, 64))
    (4, 8)
    >>> receptive_radius(JInvariantWavelet(wavelet_levels=2), (64, 64))
    (4, 4)
    """
    return _halo_and_alignment(estimator, spatial_shape)[0]


# --------------------------------------------------------------------- dask arrays
def _require_dask():
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - dask is an optional dependency
        raise ImportError(
            "Blockwise processing needs dask: pip install 'sklearn_n2s[dask]'."
        ) from exc
    return da


def output_dtype(dtype):
    """dtype of the denoised output: float32 for float16/float32 input, else float64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _check_dask_stack(X, channel_axis, n_spatial_expected=None):
    """Validate what can be checked without computing: dtype, ndim, emptiness."""
    dtype = np.dtype(X.dtype)
    if dtype == object or dtype.kind not in "biuf":
        raise TypeError(f"X has unsupported dtype {dtype}; expected a real numeric array.")
    n_spatial = X.ndim - 1 - (channel_axis is not None)
    if not 1 <= n_spatial <= MAX_SPATIAL_DIMS:
        raise ValueError(
            f"X has {X.ndim} dimension(s); expected (n_samples, *spatial"
            f"{', n_channels' if channel_axis is not None else ''}) with 1 to "
            f"{MAX_SPATIAL_DIMS} spatial axes."
        )
    if any(np.isnan(s) for s in X.shape):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first.")
    if X.size == 0:
        raise ValueError(f"X is empty (shape {X.shape}).")
    if n_spatial_expected is not None and n_spatial != n_spatial_expected:
        raise ValueError(
            f"X has {n_spatial} spatial axes, but the estimator was fitted on data with "
            f"{n_spatial_expected}."
        )
    return n_spatial


def _axis_chunks(size, chunks, depth, align):
    """Chunks along one axis that are all >= depth and start on multiples of ``align``.

    Keeps ``chunks`` when they already comply; otherwise uses regular chunks of the
    first chunk's size (rounded up to ``depth`` and ``align``) and merges a too-small
    last chunk into its neighbour.
    """
    starts = np.cumsum((0,) + tuple(chunks[:-1]))
    if min(chunks) >= depth and not np.any(starts % align):
        return tuple(chunks)
    step = max(chunks[0], depth, align)
    step = -(-step // align) * align
    new = [step] * (size // step)
    remainder = size - step * len(new)
    if remainder:
        if new and remainder < depth:
            new[-1] += remainder
        else:
            new.append(remainder)
    return tuple(new)


def plan_chunks(X, halo, align, channel_axis=None):
    """Rechunk X for an overlap of ``halo``; return ``(X, depth)``.

    The sample axis keeps its chunks (no halo: samples are independent); a channel axis
    becomes one chunk; a spatial axis held in one chunk needs no halo; other spatial
    axes get chunks no smaller than the halo (and aligned, for the wavelet).
    """
    n_spatial = len(halo)
    chunks = [X.chunks[0]]
    depth = {0: 0}
    for i in range(n_spatial):
        axis = i + 1
        if len(X.chunks[axis]) == 1:
            chunks.append(X.chunks[axis])
            depth[axis] = 0
            continue
        new = _axis_chunks(X.shape[axis], X.chunks[axis], halo[i], align[i])
        chunks.append(new)
        depth[axis] = 0 if len(new) == 1 else int(halo[i])
    if channel_axis is not None:
        chunks.append((X.shape[-1],))
        depth[X.ndim - 1] = 0
    chunks = tuple(chunks)
    if chunks != X.chunks:
        X = X.rechunk(chunks)
    return X, depth


def _boundary(estimator, ndim):
    from .gaussian import JInvariantGaussian

    if isinstance(estimator, JInvariantGaussian) and estimator.mode == "wrap":
        return {axis: "periodic" for axis in range(ndim)} | {0: "none"}
    return "none"


def _block_estimator(estimator, output, spatial_shape):
    """A shallow copy (fitted state kept) set to ``output``, with whole-image settings."""
    from .wavelet import JInvariantWavelet

    block_estimator = copy.copy(estimator)
    block_estimator.output = output
    if isinstance(estimator, JInvariantWavelet) and estimator.wavelet_levels is None:
        # Blocks must decompose as deep as the whole image does.
        block_estimator.wavelet_levels = wavelet_levels(estimator, spatial_shape)
    return block_estimator


def _denoise_block(block, estimator, method):
    if method == "invariant_transform":
        return estimator.invariant_transform(block)
    return estimator.transform(block)


def denoise_overlapping(X, estimator, output, depth, boundary, dtype):
    """Lazy ``map_overlap`` of the estimator (set to ``output``) over a planned X.

    ``X, depth, boundary, dtype`` come from :func:`prepare_blockwise`.
    """
    da = _require_dask()
    n_spatial = len(estimator_spatial_axes(X, estimator.channel_axis))
    spatial_shape = X.shape[1:1 + n_spatial]
    block_estimator = _block_estimator(estimator, output, spatial_shape)
    method = "invariant_transform" if output == "invariant" else "transform"
    return da.map_overlap(
        _denoise_block, X, depth=depth, boundary=boundary, dtype=dtype,
        meta=np.empty((0,) * X.ndim, dtype=dtype), estimator=block_estimator,
        method=method,
    )


def estimator_spatial_axes(X, channel_axis):
    """Spatial axes of a stack: all but the sample axis and a trailing channel axis."""
    return tuple(range(1, X.ndim - (channel_axis is not None)))


# ----------------------------------------------------------------------- shrinkage
def _float_blocks(X, dtype):
    """X converted block by block exactly as the in-memory estimators convert it."""
    return X.map_blocks(to_float, dtype=dtype, meta=np.empty((0,) * X.ndim, dtype=dtype))


def _per_sample_loss(invariant, X_float):
    axes = tuple(range(1, X_float.ndim))
    diff = (invariant - X_float).astype(np.float64)
    return (diff * diff).mean(axis=axes)


def _chunk_noise_variance(block, channel_axis):
    variances = estimate_noise_variance(to_float(block), channel_axis=channel_axis)
    return variances.reshape((-1,) + (1,) * (block.ndim - 1))


def chunk_noise_variance(X, channel_axis=None):
    """Per-sample noise variance: the median over a sample's chunks of per-chunk estimates.

    Each chunk (without halo) is estimated with :func:`~sklearn_n2s.estimate_noise_variance`;
    returns a lazy array of shape ``(n_samples,)``.
    """
    da = _require_dask()
    one_per_chunk = (X.chunks[0],) + tuple((1,) * len(c) for c in X.chunks[1:])
    per_chunk = X.map_blocks(
        _chunk_noise_variance, channel_axis=channel_axis, dtype=np.float64,
        chunks=one_per_chunk, meta=np.empty((0,) * X.ndim, dtype=np.float64),
    )
    flat = per_chunk.reshape((X.shape[0], -1), merge_chunks=True).rechunk({1: -1})
    return da.median(flat, axis=1)


def _noise_variance(estimator, X, scale):
    if estimator.noise_variance is not None:
        return np.full(X.shape[0], float(estimator.noise_variance) * scale**2)
    return chunk_noise_variance(X, estimator.channel_axis)


def global_shrink_weights(estimator, X, invariant, dtype, also_compute=()):
    """Eagerly compute ``lam`` per sample over the whole array (one streaming pass).

    ``also_compute`` are other dask collections computed in the same pass (a store of
    ``invariant``, so that the filter runs once).
    """
    import dask

    scale = intensity_scale(X.dtype)
    loss = _per_sample_loss(invariant, _float_blocks(X, dtype))
    noise_variance = _noise_variance(estimator, X, scale)
    loss, noise_variance, *_ = dask.compute(loss, noise_variance, *also_compute)
    return shrink_weights(loss, noise_variance)


def mix_with_data(X, invariant, lam, dtype):
    """``x + lam * (f_inv(x) - x)`` per sample, lazily (the arithmetic of the in-memory path)."""
    X_float = _float_blocks(X, dtype)
    lam = np.asarray(lam).reshape((-1,) + (1,) * (X.ndim - 1)).astype(dtype)
    da = _require_dask()
    lam = da.from_array(lam, chunks=(X.chunks[0],) + ((1,),) * (X.ndim - 1))
    return X_float + lam * (invariant - X_float)


# -------------------------------------------------------------------- entry points
def prepare_blockwise(estimator, X):
    """Validate, rechunk; return ``(X, depth, boundary, dtype)`` for the overlap."""
    check_is_fitted(estimator)
    estimator._check_params()
    channel_axis = check_channel_axis(estimator.channel_axis)
    n_spatial = _check_dask_stack(X, channel_axis, getattr(estimator, "n_spatial_dims_", None))
    spatial_shape = X.shape[1:1 + n_spatial]
    halo, align = _halo_and_alignment(estimator, spatial_shape)
    X, depth = plan_chunks(X, halo, align, channel_axis)
    return X, depth, _boundary(estimator, X.ndim), output_dtype(X.dtype)


def blockwise_transform(estimator, X, method="transform"):
    """Denoise a dask array chunk by chunk; the result is a lazy dask array.

    Called by ``transform`` and ``invariant_transform`` when X is a dask array.

    Parameters
    ----------
    estimator : fitted DonutMedian, JInvariantGaussian or JInvariantWavelet
    X : dask.array.Array of shape (n_samples, *spatial[, n_channels])
        Any chunking; chunks smaller than the halo are merged with a neighbour.
    method : {'transform', 'invariant_transform'}
        ``'transform'`` returns what ``estimator.output`` asks for.

    Returns
    -------
    X_denoised : dask.array.Array
        Same shape; float32 for float16/float32 input, else float64. Lazy, except that
        ``output='shrink'`` computes its per-sample weights now (see the module notes).
        NaN or infinite values raise a ValueError when the chunk holding them is computed.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from sklearn_n2s import JInvariantGaussian
    >>> X = np.random.default_rng(0).normal(size=(1, 64, 64))
    >>> est = JInvariantGaussian(sigma=1.5, output="invariant").fit(X)
    >>> lazy = est.transform(da.from_array(X, chunks=(1, 16, 16)))
    >>> bool(np.array_equal(lazy.compute(), est.transform(X)))
    True
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}.")
    X, depth, boundary, dtype = prepare_blockwise(estimator, X)
    output = "invariant" if method == "invariant_transform" else estimator.output
    if output != "shrink":
        return denoise_overlapping(X, estimator, output, depth, boundary, dtype)
    invariant = denoise_overlapping(X, estimator, "invariant", depth, boundary, dtype)
    lam = global_shrink_weights(estimator, X, invariant, dtype)
    return mix_with_data(X, invariant, lam, dtype)


# --------------------------------------------------------------------- calibration
def _patch_shape(X, n_spatial, halo):
    """One regular chunk plus the halo on both sides, clipped to the array."""
    return tuple(
        min(X.chunks[axis][0] + 2 * halo[axis - 1], X.shape[axis])
        for axis in range(1, n_spatial + 1)
    )


def _patch_origin(X, chunk_index, halo, patch_shape):
    origin = []
    for i, (index, size) in enumerate(zip(chunk_index, patch_shape)):
        axis = i + 1
        start = int(sum(X.chunks[axis][:index])) - halo[i]
        origin.append(int(np.clip(start, 0, X.shape[axis] - size)))
    return tuple(origin)


def stratified_choice(n_total, n_chosen, random_state=None):
    """``n_chosen`` indices of ``range(n_total)``, one at random from each of as many strata."""
    rng = check_random_state(random_state)
    strata = np.array_split(np.arange(n_total), min(n_chosen, n_total))
    return [int(rng.choice(stratum)) for stratum in strata]


def representative_patches(X, n_patches=8, halo=0, *, channel_axis=None, random_state=0):
    """Cut a stack of equal-size patches, one chunk (plus halo) each, spread over X.

    The units are (sample, spatial chunk) pairs in C order (samples first, then the
    chunk grid row by row); they are split into ``n_patches`` contiguous strata and one
    unit is drawn at random (seeded) from each, so the patches cover every part of the
    array and every sample evenly instead of clustering. Each patch is the chunk's region
    of the regular chunk size extended by ``halo`` on each side (shifted inwards at the
    border, so all patches have the same shape and hold only real pixels).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, *spatial[, n_channels])
    n_patches : int
    halo : int or tuple of int
        Pixels added on each side of the chunk, per spatial axis.
    channel_axis : None or -1
    random_state : int, RandomState or None

    Returns
    -------
    patches : ndarray of shape (n_chosen, *patch_shape[, n_channels])
    origins : list of tuple
        ``(sample, *start)`` of each patch.
    """
    import dask

    if isinstance(n_patches, bool) or not isinstance(n_patches, numbers.Integral) or n_patches < 1:
        raise ValueError(f"n_patches must be an integer >= 1, got {n_patches!r}.")
    n_spatial = X.ndim - 1 - (channel_axis is not None)
    halo = (int(halo),) * n_spatial if isinstance(halo, numbers.Integral) else tuple(halo)
    grid = tuple(len(X.chunks[axis]) for axis in range(1, n_spatial + 1))
    patch_shape = _patch_shape(X, n_spatial, halo)
    n_units = X.shape[0] * int(np.prod(grid))
    origins, pieces = [], []
    for unit in stratified_choice(n_units, n_patches, random_state):
        sample, *chunk_index = np.unravel_index(unit, (X.shape[0],) + grid)
        origin = _patch_origin(X, chunk_index, halo, patch_shape)
        region = tuple(slice(o, o + s) for o, s in zip(origin, patch_shape))
        origins.append((int(sample),) + origin)
        pieces.append(X[(int(sample),) + region])
    return np.stack(dask.compute(*pieces)), origins


def _largest_halo(estimator, param_grid, spatial_shape):
    halos = [
        receptive_radius(clone(estimator).set_params(**params), spatial_shape)
        for params in ParameterGrid(param_grid)
    ]
    return tuple(int(h) for h in np.max(halos, axis=0))


def calibrate_blockwise(estimator, param_grid, X, *, n_chunks=8, scoring=None, cv=None,
                        n_jobs=None, random_state=0):
    """Choose hyperparameters of a denoiser for a huge image from a subset of its chunks.

    A :class:`~sklearn.model_selection.GridSearchCV` scores every parameter setting on a
    stack of ``n_chunks`` patches cut by :func:`representative_patches`: one chunk each,
    spread over the array by stratified random sampling (seeded by ``random_state``),
    each extended by the largest receptive radius of the grid so that the chunk's pixels
    are predicted from the neighbours they have in the whole image. The loss is the
    self-supervised one over the whole patch (its edge pixels are still predicted
    J-invariantly, from in-patch neighbours). Apply the result with
    ``search.best_estimator_.transform(X)``, which works blockwise.

    Parameters
    ----------
    estimator : DonutMedian, JInvariantGaussian or JInvariantWavelet
    param_grid : dict or list of dict
    X : dask.array.Array of shape (n_samples, *spatial[, n_channels])
    n_chunks : int, default=8
        Number of patches scored (fewer if X has fewer chunks).
    scoring : callable or None, default=None
        None uses the estimator's ``score`` (minus the self-supervised loss).
    cv : cross-validation generator or None, default=None
        None uses :class:`~sklearn_n2s.FullSplit` (right for filters that learn nothing;
        pass a real splitter for estimators that learn).
    n_jobs : int or None, default=None
    random_state : int, RandomState or None, default=0

    Returns
    -------
    search : GridSearchCV
        Fitted on the patches; ``best_params_``, ``cv_results_`` and ``best_estimator_``
        as usual.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from sklearn_n2s import JInvariantGaussian
    >>> from sklearn_n2s.blockwise import calibrate_blockwise
    >>> rng = np.random.default_rng(0)
    >>> clean = np.sin(np.linspace(0, 8, 128))[:, None] * np.ones(128)
    >>> X = da.from_array((clean + rng.normal(0, 0.5, clean.shape))[None], chunks=(1, 32, 32))
    >>> search = calibrate_blockwise(JInvariantGaussian(), {"sigma": [0.5, 3.0]}, X, n_chunks=4)
    >>> search.best_params_
    {'sigma': 3.0}
    """
    _require_dask()
    if not hasattr(X, "chunks") or not type(X).__module__.startswith("dask"):
        raise TypeError(
            f"X must be a dask array, got {type(X).__name__}; wrap it with "
            "dask.array.from_array(X, chunks=...)."
        )
    channel_axis = check_channel_axis(estimator.channel_axis)
    n_spatial = _check_dask_stack(X, channel_axis)
    halo = _largest_halo(estimator, param_grid, X.shape[1:1 + n_spatial])
    patches, _ = representative_patches(
        X, n_chunks, halo, channel_axis=channel_axis, random_state=random_state
    )
    search = GridSearchCV(estimator, param_grid, scoring=scoring,
                          cv=FullSplit() if cv is None else cv, n_jobs=n_jobs)
    return search.fit(patches)
