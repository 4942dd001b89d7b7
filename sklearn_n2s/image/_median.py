"""Donut median: the median of a pixel's neighbourhood without the pixel itself."""

from concurrent.futures import ThreadPoolExecutor
from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from scipy import ndimage as ndi
from skimage.filters import rank
from skimage.morphology import ball, disk
from sklearn.utils._param_validation import Interval

from ..utils._validation import spatial_axes
from ._base import BaseImageDenoiser

# Images with at most this many distinct values go through scikit-image's histogram
# rank filters (exact, O(radius) per pixel) instead of sorting every neighbourhood.
_MAX_LEVELS_FOR_RANK = 256
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

    scipy.ndimage and scikit-image's rank filters release the GIL, so the two order
    statistics of a median (and the images of a stack) run in parallel.
    """
    if n_jobs <= 1 or len(calls) == 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(min(n_jobs, len(calls))) as pool:
        return list(pool.map(lambda call: call(), calls))


def _median_by_sorting(X, footprint, axes, n_jobs=1):
    """Median over the footprint of in-image pixels (float data, any number of values)."""
    n = int(footprint.sum())
    full_fp = footprint.reshape(tuple(footprint.shape[axes.index(i)] if i in axes else 1
                                      for i in range(X.ndim)))
    # Interior: the two middle order statistics (n is even for a centre-less footprint).
    ranks = sorted({(n - 1) // 2, n // 2})
    order_stats = _run([
        (lambda r=r: ndi.rank_filter(X, r, footprint=full_fp, mode="reflect"))
        for r in ranks
    ], n_jobs)
    out = sum(stat.astype(np.float64) for stat in order_stats) / len(order_stats)
    # Edge band: only the in-image part of the footprint counts (no mirrored copies,
    # which could bring the pixel itself back into its own prediction).
    radius = footprint.shape[0] // 2
    spatial_shape = tuple(X.shape[a] for a in axes)
    band = _edge_band(spatial_shape, radius)
    band_full = np.broadcast_to(
        band.reshape(tuple(X.shape[i] if i in axes else 1 for i in range(X.ndim))), X.shape
    )
    coords = np.nonzero(band_full)
    pad = [(radius, radius) if i in axes else (0, 0) for i in range(X.ndim)]
    padded = np.pad(X.astype(np.float64), pad, constant_values=np.nan)
    offsets = np.argwhere(footprint)
    values = np.empty((len(coords[0]), len(offsets)))
    for k, offset in enumerate(offsets):
        index = list(coords)
        for ax, o in zip(axes, offset):
            index[ax] = coords[ax] + o
        values[:, k] = padded[tuple(index)]
    out[coords] = np.nanmedian(values, axis=1)
    return out.astype(X.dtype)


def _image_slice(ndim, other_axes, index):
    """Index of one image (one sample, one channel) of a stack."""
    sl = [slice(None)] * ndim
    for axis, value in zip(other_axes, index):
        sl[axis] = value
    return tuple(sl)


def _median_by_histogram(X, footprint, axes, levels, codes, n_jobs=1):
    """Same median for data with few distinct values, via histogram rank filters."""
    out = np.empty(X.shape, dtype=np.float64)
    other = [i for i in range(X.ndim) if i not in axes]
    codes = codes.reshape(X.shape).astype(np.uint8)
    # scikit-image's rank filters take 2-D images: a 1-D signal becomes one row.
    fp = footprint[np.newaxis] if len(axes) == 1 else footprint
    images = [_image_slice(X.ndim, other, index)
              for index in np.ndindex(*(X.shape[i] for i in other))]

    def order_statistic(sl, p0):
        image = codes[sl]
        return rank.percentile(image[np.newaxis] if image.ndim == 1 else image, fp, p0=p0)

    stats = _run([(lambda sl=sl, p0=p0: order_statistic(sl, p0))
                  for sl in images for p0 in (_LOWER_P0, 0.5)], n_jobs)
    for k, sl in enumerate(images):
        med = (levels[stats[2 * k]] + levels[stats[2 * k + 1]]) / 2
        out[sl] = med.reshape(out[sl].shape)
    return out.astype(X.dtype)


def neighbourhood_median(X, footprint, *, channel_axis=None, n_jobs=1):
    """Median of the in-image pixels of ``footprint`` around every pixel of a stack.

    Exact for any data; 1-D and 2-D data with at most 256 distinct values (8-bit images)
    go through scikit-image's histogram rank filters, which give the same numbers faster.
    """
    axes = spatial_axes(X.ndim, channel_axis)
    if len(axes) <= 2:  # scikit-image's percentile rank filter is 2-D only
        levels, codes = np.unique(X, return_inverse=True)
        if len(levels) <= _MAX_LEVELS_FOR_RANK:
            return _median_by_histogram(X, footprint, axes, levels.astype(np.float64), codes,
                                        n_jobs)
    return _median_by_sorting(X, footprint, axes, n_jobs)


class DonutMedian(BaseImageDenoiser):
    """Median filter over a disk without its centre: exactly J-invariant, one pass.

    The J-invariant prediction of a pixel is the median of the other pixels within
    ``radius`` (an interval in 1-D, a disk in 2-D, a ball in 3-D). Near the edges only
    pixels inside the image count, so no mirrored copy of the pixel enters its own
    prediction. The ordinary filter is the median over the full disk.

    Parameters
    ----------
    radius : int, default=3
        Radius of the neighbourhood in pixels.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis; channels are filtered independently.
    output : {'shrink', 'ordinary', 'invariant'}, default='shrink'
        What :meth:`transform` returns, see :mod:`sklearn_n2s.base`.
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'``; estimated
        per image when None.
    n_jobs : int or None, default=None
        Threads for the two middle order statistics of the median and the images of a
        stack (the filters release the GIL). None means 1 unless in a
        :func:`joblib.parallel_config` context; -1 means all processors.

    Attributes
    ----------
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
        "radius": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [None, Integral],
    }

    def __init__(self, radius=3, *, channel_axis=None, output="shrink", noise_variance=None,
                 n_jobs=None):
        self.radius = radius
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.n_jobs = n_jobs

    def _blockwise_halo(self, spatial_shape):
        return (int(self.radius),) * len(spatial_shape), (1,) * len(spatial_shape)

    def _footprint(self, X, centre):
        n_spatial = X.ndim - 1 - (self.channel_axis is not None)
        spatial = X.shape[1:1 + n_spatial]
        if int(np.prod(spatial)) < 2:
            raise ValueError(
                f"X has spatial shape {spatial}: a single pixel has no neighbours to "
                "take a median of."
            )
        return neighbourhood(int(self.radius), n_spatial, centre=centre)

    def _denoise(self, X, scale=1.0):
        return neighbourhood_median(X, self._footprint(X, True), channel_axis=self.channel_axis,
                                    n_jobs=effective_n_jobs(self.n_jobs))

    def _invariant(self, X, scale=1.0):
        return neighbourhood_median(X, self._footprint(X, False), channel_axis=self.channel_axis,
                                    n_jobs=effective_n_jobs(self.n_jobs))
