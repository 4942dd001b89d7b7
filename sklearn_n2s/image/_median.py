"""Donut median: the median of a pixel's neighbourhood without the pixel itself."""

import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from joblib import effective_n_jobs
from skimage.filters import rank
from skimage.morphology import ball, disk

from ..utils._correlation import centred_window
from ..utils._validation import spatial_axes
from ._base import BLIND_SPOT_CONSTRAINT, BaseImageDenoiser
from ._limits import (
    N_JOBS_CONSTRAINT,
    check_has_neighbours,
    describe_shape,
    positive_int,
)

# Images with at most this many distinct values go through scikit-image's histogram
# rank filters (exact, O(radius) per pixel) instead of sorting every neighbourhood;
# up to 65536 (16-bit data) while they number at most _LEVELS_PER_OFFSET per pixel of
# the footprint (see _use_histogram).
_MAX_LEVELS_FOR_RANK = 256
_MAX_LEVELS_16BIT = 65536
_LEVELS_PER_OFFSET = 8
# At most this many neighbourhood values are gathered at once (per thread) by the
# sorting path, and never more than X holds or one footprint.
_CHUNK_VALUES = 2**20
# p0 just below 1/2 selects the lower middle element, 1/2 the upper one: their mean is
# the median with numpy's convention, for any number of in-image neighbours.
_LOWER_P0 = 0.5 - 1e-9


def neighbourhood(radius, n_spatial, *, centre):
    """Interval (1-D), disk (2-D) or ball (3-D) of ``radius``, with or without its centre."""
    if n_spatial == 1:
        footprint = np.ones(2 * radius + 1, dtype=bool)
    elif n_spatial == 2:
        footprint = disk(radius).astype(bool)
    else:
        footprint = ball(radius).astype(bool)
    if not centre:
        footprint[(radius,) * n_spatial] = False
    return footprint


def _edge_band(spatial_shape, radius):
    """Pixels whose neighbourhood reaches outside the image."""
    band = np.zeros(spatial_shape, dtype=bool)
    for axis, size in enumerate(spatial_shape):
        index = [slice(None)] * len(spatial_shape)
        index[axis] = np.r_[0:min(radius, size), max(size - radius, 0):size]
        band[tuple(index)] = True
    return band


def _run(calls, n_jobs):
    """Results of independent zero-argument calls, in threads when ``n_jobs > 1``.

    NumPy's gathers, sorts and partitions and scikit-image's rank filters release the
    GIL, so the chunks of a median (and the images of a stack) run in parallel.
    """
    if n_jobs <= 1 or len(calls) == 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(min(n_jobs, len(calls))) as pool:
        return list(pool.map(lambda call: call(), calls))


def _as_image_stack(X, n_spatial, channel_axis):
    """X as a C-contiguous ``(n_images, *spatial)`` array: every channel is an image."""
    if channel_axis is not None:
        X = np.moveaxis(X, -1, 1)
    return np.ascontiguousarray(X).reshape((-1,) + X.shape[X.ndim - n_spatial:])


def _from_image_stack(stack, shape, channel_axis):
    """Inverse of :func:`_as_image_stack` for an array of the stack's shape."""
    if channel_axis is None:
        return stack.reshape(shape)
    moved = stack.reshape((shape[0], shape[-1]) + shape[1:-1])
    return np.ascontiguousarray(np.moveaxis(moved, 1, -1))


def _middle_of_rows(values):
    """Median of every row of a 2-D array without NaN (overwritten, partly sorted).

    The middle element for an odd length; for an even one the mean of the two middle
    ones, computed in float64 as :func:`numpy.median` does: a partition at the lower
    one, then the smallest of the upper half.
    """
    m = values.shape[1] // 2
    if values.shape[1] % 2:
        values.partition(m, axis=1)
        return values[:, m]
    values.partition(m - 1, axis=1)
    lower = values[:, m - 1].astype(np.float64)
    upper = values[:, m:].min(axis=1).astype(np.float64)
    return (lower + upper) / 2


def _interior_chunk(flat, out, start, stop, *, box, radius, strides, n_pixels, deltas):
    """Medians of interior pixels ``start:stop`` (C order over ``(n_images, *box)``): the
    whole footprint lies in the image, so no bounds are checked."""
    coords = np.unravel_index(np.arange(start, stop), box)
    pixels = coords[0] * n_pixels
    for c, stride in zip(coords[1:], strides):
        pixels += (c + radius) * stride
    out[pixels] = _middle_of_rows(flat[pixels[:, np.newaxis] + deltas])


def _band_chunk(flat, out, start, stop, *, band, spatial_shape, strides, n_pixels, offsets):
    """Medians of edge pixels ``start:stop`` (over ``(n_images, len(band))``) over the
    in-image part of their footprint: neighbours outside become NaN, sorted last."""
    image, which = np.divmod(np.arange(start, stop), len(band))
    base = image * n_pixels
    coords = np.unravel_index(band[which], spatial_shape)
    index = np.empty((len(base), len(offsets)), dtype=np.intp)
    index[:] = base[:, np.newaxis]
    inside = np.ones(index.shape, dtype=bool)
    for axis, (c, size, stride) in enumerate(zip(coords, spatial_shape, strides)):
        position = c[:, np.newaxis] + offsets[:, axis]
        inside &= position >= 0
        inside &= position < size
        np.clip(position, 0, size - 1, out=position)
        position *= stride
        index += position
    values = flat[index]
    del index
    values[~inside] = np.nan
    values.sort(axis=1)
    count = np.count_nonzero(inside, axis=1)  # >= 1: the image has two pixels or more
    rows = np.arange(len(values))
    lower = values[rows, (count - 1) // 2].astype(np.float64)
    upper = values[rows, count // 2].astype(np.float64)
    with np.errstate(over="ignore"):
        middle = np.where(count % 2 == 1, lower, (lower + upper) / 2)
    for c, stride in zip(coords, strides):
        base += c * stride
    out[base] = middle


def _median_by_sorting(X, footprint, n_spatial, channel_axis=None, n_jobs=1):
    """Median over the footprint of in-image pixels (float data, any number of values).

    Pixels are processed in chunks that gather at most ``_CHUNK_VALUES`` neighbourhood
    values (and never more than X holds, or one footprint), so the peak memory is a
    small multiple of X plus one footprint whatever the radius. Interior pixels, whose
    footprint lies in the image, take a partition of each row; edge pixels sort their
    in-image neighbours (numpy's NaN convention puts the others last).
    """
    stack = _as_image_stack(X, n_spatial, channel_axis)
    out = np.empty(stack.shape, dtype=X.dtype)
    spatial_shape = stack.shape[1:]
    n_pixels = int(np.prod(spatial_shape))
    strides = [int(np.prod(spatial_shape[a + 1:])) for a in range(n_spatial)]
    radius = footprint.shape[0] // 2
    offsets = np.argwhere(footprint) - radius
    step = max(1, max(len(offsets), min(_CHUNK_VALUES, stack.size)) // len(offsets))
    flat, out_flat = stack.reshape(-1), out.reshape(-1)
    calls = []
    box = (stack.shape[0],) + tuple(s - 2 * radius for s in spatial_shape)
    if min(box) > 0:
        deltas = offsets @ np.asarray(strides, dtype=np.intp)
        kwargs = dict(box=box, radius=radius, strides=strides, n_pixels=n_pixels,
                      deltas=deltas)
        calls += [partial(_interior_chunk, flat, out_flat, s, min(s + step, np.prod(box)),
                          **kwargs) for s in range(0, int(np.prod(box)), step)]
    band = np.flatnonzero(_edge_band(spatial_shape, radius))
    n_band = stack.shape[0] * len(band)
    kwargs = dict(band=band, spatial_shape=spatial_shape, strides=strides,
                  n_pixels=n_pixels, offsets=offsets)
    calls += [partial(_band_chunk, flat, out_flat, s, min(s + step, n_band), **kwargs)
              for s in range(0, n_band, step)]
    _run(calls, n_jobs)
    return _from_image_stack(out, X.shape, channel_axis)


def _image_slice(ndim, other_axes, index):
    """Index of one image (one sample, one channel) of a stack."""
    sl = [slice(None)] * ndim
    for axis, value in zip(other_axes, index):
        sl[axis] = value
    return tuple(sl)


def _median_by_histogram(X, footprint, axes, levels, codes, n_jobs=1):
    """Same median for data with few distinct values, via histogram rank filters.

    The data are replaced by their ranks among the distinct values (``codes``, at most
    65536 of them: uint8 or uint16, which scikit-image's rank filters take), the two
    middle order statistics are found in the histogram of the codes, and mapped back.
    """
    out = np.empty(X.shape, dtype=X.dtype)
    other = [i for i in range(X.ndim) if i not in axes]
    dtype = np.uint8 if len(levels) <= 256 else np.uint16
    codes = codes.reshape(X.shape).astype(dtype)
    # scikit-image's rank filters take 2-D images: a 1-D signal becomes one row.
    fp = footprint[np.newaxis] if len(axes) == 1 else footprint
    images = [_image_slice(X.ndim, other, index)
              for index in np.ndindex(*(X.shape[i] for i in other))]

    def order_statistic(sl, p0):
        image = codes[sl]
        image = image[np.newaxis] if image.ndim == 1 else image
        return rank.percentile(image, fp, p0=p0)

    # The two middle order statistics of every image are independent calls: with
    # n_jobs=2 a single image already keeps both cores busy.
    calls = [partial(order_statistic, sl, p0) for sl in images for p0 in (_LOWER_P0, 0.5)]

    with warnings.catch_warnings():
        # Beyond 1024 levels scikit-image warns of "bad rank filter performance": the
        # choice of this path is measured (see _use_histogram). The filter is set here,
        # not in the threads, and only for that message. (catch_warnings is not
        # thread-safe: under dask's threaded scheduler the message can leak.)
        warnings.filterwarnings("ignore", message="Bad rank filter performance",
                                category=UserWarning)
        statistics = _run(calls, n_jobs)
    for sl, lower, upper in zip(images, statistics[0::2], statistics[1::2]):
        out[sl] = ((levels[lower] + levels[upper]) / 2).reshape(out[sl].shape)
    return out


def _use_histogram(n_levels, n_offsets):
    """Whether the histogram path beats sorting for this many distinct values.

    scikit-image's percentile scans the histogram up to the median (about half the
    levels) at every pixel, where sorting costs about the footprint's size: the
    histogram wins for 8-bit data, and for more levels (16-bit data) while they stay
    below a multiple of the footprint, measured on 512x512 images (see
    benchmarks/bench_calibration.py).
    """
    return n_levels <= _MAX_LEVELS_FOR_RANK or (
        n_levels <= _MAX_LEVELS_16BIT and n_levels <= _LEVELS_PER_OFFSET * n_offsets)


def neighbourhood_median(X, footprint, *, channel_axis=None, n_jobs=1):
    """Median of the in-image pixels of ``footprint`` around every pixel of a stack.

    Exact for any data. 1-D and 2-D data with few distinct values (8-bit images, and
    16-bit ones for large enough footprints) go through scikit-image's histogram rank
    filters on the ranks of the values, which give the same numbers faster; the rest is
    sorted in chunks of bounded size.
    """
    axes = spatial_axes(X.ndim, channel_axis)
    if len(axes) <= 2:  # scikit-image's percentile rank filter is 2-D only
        levels, codes = np.unique(X, return_inverse=True)
        if _use_histogram(len(levels), int(footprint.sum())):
            return _median_by_histogram(X, footprint, axes, levels.astype(np.float64),
                                        codes, n_jobs)
    return _median_by_sorting(X, footprint, len(axes), channel_axis, n_jobs)


class DonutMedian(BaseImageDenoiser):
    """Median filter over a disk without its centre: exactly J-invariant, one pass.

    The J-invariant prediction of a pixel is the median of the other pixels within
    ``radius`` (an interval in 1-D, a disk in 2-D, a ball in 3-D). Near the edges only
    pixels inside the image count, so no mirrored copy of the pixel enters its own
    prediction. The ordinary filter is the median over the full disk.

    Parameters
    ----------
    radius : int, default=3
        Radius of the neighbourhood in pixels; at most the image's diagonal (rounded
        up), beyond which every neighbourhood is the whole image: a larger radius, or
        an image of a single pixel, is refused with a ``ValueError`` by ``fit`` and by
        every call that gets such an image.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis; channels are filtered independently.
    output : {'shrink', 'ordinary', 'invariant', 'auto'}, default='shrink'
        What :meth:`transform` returns, see :mod:`sklearn_n2s.base`; ``'auto'``
        returns, per image, the output with the lowest :meth:`estimated_risk` (the
        three are computed).
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'`` and
        ``'auto'`` and :meth:`estimated_risk`; estimated per image when None.
    n_jobs : int or None, default=None
        Threads for the chunks of pixels (or the images of a stack) the median is
        computed in (the work releases the GIL). None means 1 unless in a
        :func:`joblib.parallel_config` context; -1 means all processors.
    spatial_ndim : {1, 2, 3} or None, default=None
        Number of spatial axes. When given, a single image ``(*spatial[, n_channels])``
        is accepted as a stack of one (the output has the input's shape). None reads
        them from ``X.ndim``: a 2-D array is then n one-dimensional signals, and
        ``fit`` warns (:class:`~sklearn_n2s.image.SpatialAxesWarning`).
    blind_spot : 'pixel', 'auto', int, sequence of (int or None) or bool ndarray, \
            default='pixel'
        What the J-invariant median leaves out around each pixel. ``'pixel'``: the
        pixel alone (white noise). For noise correlated between neighbours, the
        neighbours it is correlated with too: half-extents per axis (``(0, 3)``: three
        pixels either side along the last axis; None spans the axis, as for row
        offsets), an int for the same extent along every axis, a boolean footprint, or
        ``'auto'``: the extent :func:`~sklearn_n2s.estimate_noise_correlation` measures
        in ``fit``. The median is then taken over the disk minus the blind spot.

    Attributes
    ----------
    blind_spot_ : str, tuple or ndarray
        The blind spot used: ``blind_spot`` itself, or the measured extents for
        ``'auto'``.
    noise_correlation_ : NoiseCorrelation
        Only for ``blind_spot='auto'``: the measurement.
    n_spatial_dims_ : int
        Number of spatial axes of the data seen in ``fit`` (1 to 3); later data must
        have as many, of any size.
    n_features_in_ : int
        Number of values per sample of the data seen in ``fit`` (pixels times
        channels).

    See Also
    --------
    JInvariantGaussian : a linear filter, J-invariant in closed form.
    sklearn_n2s.SelfSupervisedScorer : scores the J-invariant prediction.

    References
    ----------
    .. [1] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       ICML 2019, arXiv:1901.11365. The centre-less median is their example of a
       classical filter made J-invariant and calibrated without clean data.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import DonutMedian, FullSplit
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0, 1, 32), (32, 1))
    >>> noisy = (clean + rng.normal(0, 0.2, clean.shape))[np.newaxis]
    >>> search = GridSearchCV(DonutMedian(), {"radius": [1, 2, 3]}, cv=FullSplit())
    >>> search.fit(noisy).best_params_["radius"] > 1
    True
    """

    _parameter_constraints: dict = {
        **BaseImageDenoiser._parameter_constraints,
        "radius": [positive_int()],
        "n_jobs": N_JOBS_CONSTRAINT,
        "blind_spot": BLIND_SPOT_CONSTRAINT,
    }

    def __init__(self, radius=3, *, channel_axis=None, output="shrink", noise_variance=None,
                 n_jobs=None, spatial_ndim=None, blind_spot="pixel"):
        self.radius = radius
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.n_jobs = n_jobs
        self.spatial_ndim = spatial_ndim
        self.blind_spot = blind_spot

    def _blockwise_halo(self, spatial_shape):
        return (int(self.radius),) * len(spatial_shape), (1,) * len(spatial_shape)

    def _check_spatial_shape(self, spatial_shape):
        check_has_neighbours(spatial_shape)
        # Beyond the largest distance between two pixels every neighbourhood is the
        # whole image: a larger radius changes nothing but the cost (radius**ndim).
        diagonal = float(np.sqrt(sum((s - 1) ** 2 for s in spatial_shape)))
        if self.radius > np.ceil(diagonal):
            raise ValueError(
                f"radius={self.radius} is larger than the image: X has "
                f"{describe_shape(spatial_shape)}, whose farthest pixels are "
                f"{diagonal:.4g} pixels apart, so every neighbourhood would be the whole "
                f"image. Use radius <= {int(np.ceil(diagonal))}."
            )

    def _footprint(self, X, centre):
        n_spatial = X.ndim - 1 - (self.channel_axis is not None)
        footprint = neighbourhood(int(self.radius), n_spatial, centre=centre)
        if centre:
            return footprint
        blind = self._blind_spot_footprint(X.shape[1:1 + n_spatial])
        if blind is not None:
            footprint &= ~centred_window(blind, footprint.shape)
            if not footprint.any():
                raise ValueError(
                    f"DonutMedian: the blind spot {self.blind_spot_!r} covers the whole "
                    f"neighbourhood of radius {self.radius}; use a larger radius."
                )
        return footprint

    def _denoise(self, X, scale=1.0):
        return neighbourhood_median(X, self._footprint(X, True), channel_axis=self.channel_axis,
                                    n_jobs=effective_n_jobs(self.n_jobs))

    def _invariant(self, X, scale=1.0):
        return neighbourhood_median(X, self._footprint(X, False), channel_axis=self.channel_axis,
                                    n_jobs=effective_n_jobs(self.n_jobs))
