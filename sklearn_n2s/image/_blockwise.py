"""Dask arrays in, dask arrays out: denoising images larger than memory, chunk by chunk.

The engine behind the image contract's dask path; the public entry points
(:func:`~sklearn_n2s.blockwise.blockwise_transform`, calibration on representative
chunks) are in :mod:`sklearn_n2s.blockwise`. Each estimator states its own reach
(``_blockwise_halo``), its boundary (``_blockwise_boundary``) and the copy that runs on
one chunk (``_blockwise_block_estimator``); this module asks for them and knows no
estimator class.

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
variance is ``noise_variance`` when given; when None it is
:func:`~sklearn_n2s.estimate_noise_variance` of the whole sample, computed chunk by
chunk: that estimate pools two statistics per fixed tile of the image (tiles anchored at
its origin, see :mod:`sklearn_n2s.utils._noise`), so each chunk, rechunked when needed
to start on a tile boundary, contributes those of its tiles (:func:`chunk_noise_variance`).
Either way the output equals the in-memory one to rounding, whatever the chunking, for
the local filters. Both sums are kept as a mantissa and a power of two, so huge values
give the weights the in-memory path computes on its rescaled stack (see
:mod:`sklearn_n2s.image._base`), and the mixing runs per chunk in the chunk's own
power-of-two unit. The returned array is lazy; computing it runs the filter a second
time. :func:`sklearn_n2s.io.denoise_zarr` avoids the second filter pass by storing the
invariant prediction and mixing in place.

Calibration
-----------
:func:`sklearn_n2s.blockwise.calibrate_blockwise` runs a
:class:`~sklearn.model_selection.GridSearchCV` on a stack of representative patches
(:func:`representative_patches`), each one chunk plus the largest halo of the grid, then
the best estimator is applied blockwise.

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

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..base import shrink_weights
from ..utils._noise import noise_tile_shape, pool_tile_statistics, tile_statistics
from ..utils._validation import MAX_SPATIAL_DIMS, intensity_scale, internal_unit, to_float

METHODS = ("transform", "invariant_transform")


# ------------------------------------------------------------------ receptive radius
def _check_spatial_shape(spatial_shape):
    spatial_shape = tuple(int(s) for s in spatial_shape)
    if not 1 <= len(spatial_shape) <= MAX_SPATIAL_DIMS:
        raise ValueError(
            f"spatial_shape must have 1 to {MAX_SPATIAL_DIMS} axes, got {spatial_shape}."
        )
    return spatial_shape


def _halo_and_alignment(estimator, spatial_shape):
    """Ask the estimator for its reach: the halo and alignment its chunks need."""
    spatial_shape = _check_spatial_shape(spatial_shape)
    rule = getattr(estimator, "_blockwise_halo", None)
    if rule is None:
        raise TypeError(
            f"{type(estimator).__name__} does not state its reach (no _blockwise_halo "
            "method): blockwise processing needs the halo each chunk must borrow."
        )
    return rule(spatial_shape)


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
    if dtype.kind not in "biuf":  # object, complex, strings
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

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, *spatial[, n_channels])
    halo : tuple of int
        Pixels each chunk borrows from its neighbours, per spatial axis.
    align : tuple of int
        Chunk starts must be multiples of these, per spatial axis.
    channel_axis : None or -1, default=None

    Returns
    -------
    X : dask.array.Array
        Rechunked (the same array when no change is needed).
    depth : dict of int to int
        ``depth`` for :func:`dask.array.map_overlap`, 0 on the sample and channel axes.
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
    """dask's ``boundary`` for the spatial axes; samples are never padded."""
    boundary = estimator._blockwise_boundary()
    if boundary == "none":
        return "none"
    return {axis: boundary for axis in range(ndim)} | {0: "none"}


def _block_estimator(estimator, output, spatial_shape):
    """A shallow copy (fitted state kept) set to ``output``, with whole-image settings."""
    block_estimator = estimator._blockwise_block_estimator(spatial_shape)
    block_estimator.output = output
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


def _block_sample_offsets(chunks):
    """First sample of every block along the sample axis."""
    return np.cumsum((0,) + tuple(chunks[:-1]))


def _loss_statistics(invariant, X_float):
    """Per sample of a block: ``(exponent, q, count)`` with the sum of squared differences
    ``q * 4**exponent`` (scaled by a power of two, so it never overflows)."""
    diff = np.subtract(invariant, X_float, dtype=np.float64).reshape(len(X_float), -1)
    with np.errstate(over="ignore"):  # only past float64's range
        peak = np.max(np.abs(diff), axis=1)
    exponent = np.frexp(peak)[1]
    scaled = np.ldexp(diff, -exponent[:, None])
    q = np.einsum("ij,ij->i", scaled, scaled)
    return exponent, q, np.full(len(diff), diff.shape[1])


def _combine_loss(per_block, offsets, n_samples):
    """``(mantissa, exponent)`` per sample: mean squared difference = mantissa * 2**exponent."""
    stats = [[] for _ in range(n_samples)]
    for offset, (exponents, qs, counts) in zip(offsets, per_block):
        for k, (e, q, n) in enumerate(zip(exponents, qs, counts)):
            stats[offset + k].append((int(e), float(q), int(n)))
    mantissa = np.zeros(n_samples)
    exponent = np.zeros(n_samples, dtype=int)
    for i, sample in enumerate(stats):
        top = max(e for e, _, _ in sample)
        total = sum(np.ldexp(q, 2 * (e - top)) for e, q, _ in sample)
        mantissa[i] = total / sum(n for _, _, n in sample)
        exponent[i] = 2 * top
    return mantissa, exponent


def _tile_statistics_block(block, channel_axis, tile_shape):
    """Per sample of a block: ``(sigmas, levels)``, each a list over channels."""
    block = to_float(block)
    out = []
    for sample in block:
        channels = [sample] if channel_axis is None else list(np.moveaxis(sample, -1, 0))
        stats = [tile_statistics(c, tile_shape) for c in channels]
        out.append(([s for s, _ in stats], [lv for _, lv in stats]))
    return out


def _combine_noise(per_block, offsets, n_samples):
    """``(mantissa, exponent)`` per sample of the pooled noise variance (the mean over
    channels of :func:`~sklearn_n2s.utils._noise.pool_tile_statistics`)."""
    sigmas = [None] * n_samples
    levels = [None] * n_samples
    for offset, samples in zip(offsets, per_block):
        for k, (s, lv) in enumerate(samples):
            i = offset + k
            if sigmas[i] is None:
                sigmas[i] = [[] for _ in s]
                levels[i] = [[] for _ in s]
            for c in range(len(s)):
                sigmas[i][c].append(s[c])
                levels[i][c].append(lv[c])
    mantissa = np.zeros(n_samples)
    exponent = np.zeros(n_samples, dtype=int)
    for i in range(n_samples):
        pooled = [pool_tile_statistics(np.concatenate(s), np.concatenate(lv))
                  for s, lv in zip(sigmas[i], levels[i])]
        top = max(e for _, e in pooled)
        mantissa[i] = np.mean([np.ldexp(m, e - top) for m, e in pooled])
        exponent[i] = top
    return mantissa, exponent


def _tile_aligned(X, n_spatial, tile_shape):
    """X rechunked so that every chunk starts on a multiple of the noise tile."""
    chunks = list(X.chunks)
    for i in range(n_spatial):
        axis = i + 1
        chunks[axis] = _axis_chunks(X.shape[axis], X.chunks[axis], 1, tile_shape[i])
    if X.ndim > n_spatial + 1:  # channel axis: one chunk
        chunks[-1] = (X.shape[-1],)
    chunks = tuple(chunks)
    return X if chunks == X.chunks else X.rechunk(chunks)


def _noise_statistics(X, channel_axis):
    """Delayed ``(mantissa, exponent)`` of the per-sample noise variance of X, computed
    chunk by chunk from per-tile statistics: equal to the in-memory estimate."""
    import dask

    n_spatial = len(estimator_spatial_axes(X, channel_axis))
    tile_shape = noise_tile_shape(X.shape[1:1 + n_spatial])
    X = _tile_aligned(X, n_spatial, tile_shape)
    blocks = X.to_delayed()
    offsets = _block_sample_offsets(X.chunks[0])
    per_block, block_offsets = [], []
    for index in np.ndindex(*blocks.shape):
        per_block.append(dask.delayed(_tile_statistics_block)(
            blocks[index], channel_axis, tile_shape))
        block_offsets.append(int(offsets[index[0]]))
    return dask.delayed(_combine_noise)(per_block, block_offsets, X.shape[0])


def _loss_statistics_lazy(invariant, X_float):
    """Delayed ``(mantissa, exponent)`` of the per-sample self-supervised loss."""
    import dask

    if X_float.chunks != invariant.chunks:
        X_float = X_float.rechunk(invariant.chunks)
    inv_blocks, x_blocks = invariant.to_delayed(), X_float.to_delayed()
    offsets = _block_sample_offsets(X_float.chunks[0])
    per_block, block_offsets = [], []
    for index in np.ndindex(*x_blocks.shape):
        per_block.append(dask.delayed(_loss_statistics)(inv_blocks[index], x_blocks[index]))
        block_offsets.append(int(offsets[index[0]]))
    return dask.delayed(_combine_loss)(per_block, block_offsets, X_float.shape[0])


def chunk_noise_variance(X, channel_axis=None):
    """Per-sample noise variance of a dask stack, computed chunk by chunk.

    The same estimate as :func:`~sklearn_n2s.estimate_noise_variance` on the whole
    array, whatever the chunking: the estimate pools statistics of fixed tiles anchored
    at the image's origin (:mod:`sklearn_n2s.utils._noise`); each chunk (rechunked,
    when needed, to start on a tile boundary) computes those of its tiles.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, *spatial[, n_channels])
    channel_axis : None or -1, default=None

    Returns
    -------
    noise_variance : dask.array.Array of shape (n_samples,)
        Lazy, in the float units of X (see :func:`~sklearn_n2s.estimate_noise_variance`).
    """
    import dask

    da = _require_dask()

    def variance(stats):
        with np.errstate(over="ignore"):
            return np.ldexp(*stats)

    lazy = dask.delayed(variance)(_noise_statistics(X, channel_axis))
    return da.from_delayed(lazy, shape=(X.shape[0],), dtype=np.float64)


def global_shrink_weights(estimator, X, invariant, dtype, also_compute=()):
    """Eagerly compute ``lam`` per sample over the whole array (one streaming pass).

    The loss and the noise variance are reduced chunk by chunk as a mantissa and a
    power of two, so huge values (up to the largest float) give the weights the
    in-memory path computes on its rescaled stack. ``also_compute`` are other dask
    collections computed in the same pass (a store of ``invariant``, so that the filter
    runs once).
    """
    import dask

    loss = _loss_statistics_lazy(invariant, _float_blocks(X, dtype))
    if estimator.noise_variance is not None:
        scale = intensity_scale(X.dtype)
        (loss_m, loss_e), *_ = dask.compute(loss, *also_compute)
        noise_m = np.full(X.shape[0], float(estimator.noise_variance) * scale**2)
        noise_e = np.zeros(X.shape[0], dtype=int)
    else:
        noise = _noise_statistics(X, estimator.channel_axis)
        (loss_m, loss_e), (noise_m, noise_e), *_ = dask.compute(loss, noise, *also_compute)
    with np.errstate(over="ignore"):  # an infinite ratio is capped at the loss
        noise_in_loss_units = np.ldexp(noise_m, noise_e - loss_e)
    return shrink_weights(loss_m, noise_in_loss_units)


def _mix_block(X_float, invariant, lam):
    """``x + lam * (f_inv(x) - x)`` on a block, in its own power-of-two unit (exact)."""
    unit = max(internal_unit(X_float), internal_unit(invariant))
    if unit != 1.0:
        X_float = X_float / X_float.dtype.type(unit)
        invariant = invariant / invariant.dtype.type(unit)
    out = X_float + lam * (invariant - X_float)
    if unit != 1.0:
        with np.errstate(over="ignore"):
            out *= out.dtype.type(unit)
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"The shrunk output leaves the range of {out.dtype} (magnitudes up to "
            f"{np.finfo(out.dtype).max:.3g}). Convert X to float64 or divide it by a "
            "constant first."
        )
    return out


def mix_with_data(X, invariant, lam, dtype):
    """``x + lam * (f_inv(x) - x)`` per sample, lazily (the arithmetic of the in-memory path)."""
    X_float = _float_blocks(X, dtype)
    lam = np.asarray(lam).reshape((-1,) + (1,) * (X.ndim - 1)).astype(dtype)
    da = _require_dask()
    lam = da.from_array(lam, chunks=(X.chunks[0],) + ((1,),) * (X.ndim - 1))
    return da.map_blocks(_mix_block, X_float, invariant, lam, dtype=dtype,
                         meta=np.empty((0,) * X.ndim, dtype=dtype))


# -------------------------------------------------------------------- entry points
def prepare_blockwise(estimator, X):
    """Validate the data, rechunk; return ``(X, depth, boundary, dtype)`` for the overlap.

    The estimator's parameters were validated by its ``fit``, as scikit-learn validates
    them: once per fit, not per call.
    """
    check_is_fitted(estimator)
    channel_axis = estimator.channel_axis
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
    output = "invariant" if method == "invariant_transform" else estimator.output
    if output == "auto":
        raise ValueError(
            f"{type(estimator).__name__}(output='auto') chooses each image's output from "
            "estimates over the whole image, which a chunk cannot give: set output to "
            "'shrink', 'ordinary' or 'invariant' for a dask array, or compute it in memory."
        )
    X, depth, boundary, dtype = prepare_blockwise(estimator, X)
    if output != "shrink":
        return denoise_overlapping(X, estimator, output, depth, boundary, dtype)
    invariant = denoise_overlapping(X, estimator, "invariant", depth, boundary, dtype)
    lam = global_shrink_weights(estimator, X, invariant, dtype)
    return mix_with_data(X, invariant, lam, dtype)
