"""Spatial correlation of the noise, and the blind spot it calls for.

Noise2Self needs the noise of a pixel to be independent of everything its prediction
sees. Camera noise often is not: sCMOS row offsets, line readout, demosaicing and
upsampling correlate neighbouring pixels, and a single-pixel blind spot then lets the
prediction see a pixel's noise through its neighbours. :func:`estimate_noise_correlation`
measures how far the correlation reaches along each spatial axis, and
:func:`check_blind_spot` turns a ``blind_spot`` parameter (``'pixel'``, half-extents, an
explicit footprint) into the boolean footprint that estimators hide around each pixel.

How the correlation along axis ``a`` is measured
------------------------------------------------
The signal is removed by a high-pass *across* ``a``: the second difference
``d = x[p - e_b] - 2 x[p] + x[p + e_b]`` along another axis ``b`` (in 3-D along each of
the two others, keeping the smaller correlation: what is left of the signal only adds
correlation). It cancels constants
and linear ramps (most of a smooth signal) but keeps everything that varies along ``a``,
row offsets included. For noise whose covariance is separable
(``C(l e_a + m e_b) = C_a(l) C_b(m)``: line kernels, boxes, Gaussian blurs, row offsets)
the correlation of ``d`` at lag ``l e_a`` equals the noise's own correlation at that lag,
exactly. With one spatial axis there is no other axis: ``d`` is the first difference
along ``a`` itself, whose correlation is (minus) the second difference of the noise's,
and the noise correlation is recovered by summing twice,
``C(l) = -sum_{m > l} (m - l) gamma_d(m)`` (this amplifies sampling noise: 1-D signals
need tens of thousands of samples for a sharp estimate, which the standard error says).

Correlations are robust (Gnanadesikan-Kettenring with the median absolute deviation:
edges are outliers, not signal) and computed per tile (32 x 32 in 2-D); only the flatter
half of the tiles, where the high-passed signal varies least, is kept, since texture
reads as correlation. The median over tiles is the estimate and their spread gives a
standard error, the measure of confidence.
"""

import numbers
from dataclasses import dataclass

import numpy as np
import pywt

from ._validation import check_stack, spatial_axes

#: Correlations below this are treated as white noise when choosing the blind spot.
DEFAULT_THRESHOLD = 0.1
#: Extent that means "the whole axis" (row offsets, line readout).
WHOLE_AXIS = None
#: Tile side per number of spatial axes: replicates of the estimate, and the unit in
#: which flat regions (where noise dominates the high-passed signal) are chosen.
_TILE_SIDE = {1: 256, 2: 32, 3: 12}
_MAX_VALUES = 2**22
_DB2_HIGH = np.asarray(pywt.Wavelet("db2").dec_hi, dtype=np.float64)


@dataclass(frozen=True)
class NoiseCorrelation:
    """The measured correlation of the noise along each spatial axis.

    Attributes
    ----------
    correlation : ndarray of shape (n_spatial, max_lag + 1)
        ``correlation[a, l]``: correlation of the noise at ``l`` pixels along spatial
        axis ``a`` (1 at lag 0).
    stderr : ndarray of shape (n_spatial, max_lag + 1)
        Standard error of each value (spread over strips of the image).
    threshold : float
        Correlations above ``max(threshold, 3 * stderr)`` count as correlated.
    extent : tuple of (int or None)
        Per axis, the largest correlated lag (0: white along that axis); None when the
        correlation is still above the threshold at ``max_lag`` (it is taken to span the
        whole axis, as row offsets do).
    """

    correlation: np.ndarray
    stderr: np.ndarray
    threshold: float
    extent: tuple

    @property
    def is_white(self):
        """True when no axis shows correlated noise."""
        return all(e == 0 for e in self.extent)

    def footprint(self, spatial_shape=None):
        """The blind-spot footprint these extents call for, see :func:`extent_footprint`."""
        return extent_footprint(self.extent, spatial_shape)

    def high_pass_gain(self):
        """Share of the noise variance the finest wavelet coefficients keep.

        :func:`~sklearn_n2s.utils._noise.estimate_noise_variance` reads the variance off
        the finest Daubechies-2 detail coefficients, which equals the noise variance for
        white noise. Correlated noise puts less power at the finest scale, so that
        estimate falls short by this factor (for a separable covariance):
        ``prod_a sum_m rho_a(m) a(m)``, ``a`` the autocorrelation of the db2 high-pass
        filter. Dividing the estimate by it gives the per-pixel (marginal) variance the
        shrinkage weight needs. Never below 0.05.
        """
        taps = len(_DB2_HIGH)
        auto = np.array([np.dot(_DB2_HIGH[:taps - m], _DB2_HIGH[m:]) for m in range(taps)])
        gain = 1.0
        for rho in self.correlation:
            lags = min(taps, len(rho))
            gain *= auto[0] + 2 * float(np.dot(np.nan_to_num(rho[1:lags]), auto[1:lags]))
        return max(gain, 0.05)


# ------------------------------------------------------------------- robust statistics
def _mad(values):
    """Median absolute deviation of each row."""
    return np.median(np.abs(values - np.median(values, axis=1, keepdims=True)), axis=1)


def _robust_correlation(u, v):
    """Gnanadesikan-Kettenring correlation of each row pair, with the MAD."""
    plus, minus = _mad(u + v) ** 2, _mad(u - v) ** 2
    total = plus + minus
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (plus - minus) / np.where(total > 0, total, 1), 0.0)


def _tile_correlations(tiles, axis, max_lag):
    """Robust correlation at lags 0..max_lag along ``axis`` in every tile.

    ``tiles`` has shape ``(n_tiles, *tile_shape)``; returns ``(n_tiles, max_lag + 1)``,
    NaN for lags the tile is too short for.
    """
    n_tiles, length = tiles.shape[0], tiles.shape[axis + 1]
    out = np.full((n_tiles, max_lag + 1), np.nan)
    out[:, 0] = 1.0
    for lag in range(1, min(max_lag, length - 1) + 1):
        u = np.take(tiles, np.arange(0, length - lag), axis=axis + 1).reshape(n_tiles, -1)
        v = np.take(tiles, np.arange(lag, length), axis=axis + 1).reshape(n_tiles, -1)
        out[:, lag] = _robust_correlation(u, v)
    return out


# --------------------------------------------------------------------- per image axis
def _high_pass(image, axis, across):
    """The difference that removes the signal before measuring along ``axis``."""
    if across == axis:  # one spatial axis
        return np.diff(image, axis=axis)
    return np.diff(image, n=2, axis=across)


def _tiles(image, n_spatial):
    """Complete tiles of ``_TILE_SIDE`` (the whole axis where it is shorter than two)."""
    side = _TILE_SIDE[n_spatial]
    shape = [n if n < 2 * side else side for n in image.shape]
    counts = [n // t for n, t in zip(image.shape, shape)]
    trimmed = image[tuple(slice(c * t) for c, t in zip(counts, shape))]
    blocked = trimmed.reshape([v for c, t in zip(counts, shape) for v in (c, t)])
    order = list(range(0, 2 * n_spatial, 2)) + list(range(1, 2 * n_spatial, 2))
    return blocked.transpose(order).reshape((-1, *shape))


def _flattest(tiles):
    """The half of the tiles where the high-passed signal varies least (noise dominates)."""
    if len(tiles) < 8:
        return tiles
    scale = _mad(tiles.reshape(len(tiles), -1))
    return tiles[scale <= np.median(scale)]


def _axis_correlations(image, axis, across, max_lag):
    """Per-tile noise correlation along ``axis`` of one image, ``(n_tiles, max_lag + 1)``,
    the signal removed by a difference along ``across``."""
    tiles = _flattest(_tiles(_high_pass(image, axis, across), image.ndim))
    return _tile_correlations(tiles, axis, max_lag + (across == axis))


def _pooled(values):
    """Median over tiles and its standard error."""
    centre = np.nanmedian(values, axis=0)
    n_valid = np.maximum(np.sum(~np.isnan(values), axis=0), 1)
    # The median of n replicates has about 1.25 times the standard error of a mean.
    spread = 1.4826 * np.nanmedian(np.abs(values - centre), axis=0)
    return centre, 1.25 * spread / np.sqrt(n_valid)


def _one_axis_estimate(values, max_lag):
    """Noise correlation and standard error of a 1-D signal from its difference's.

    The tiles' correlations of the first difference are pooled by their mean (the
    summation below amplifies noise, and a mean has the smaller variance); the
    standard errors follow the same linear map.
    """
    rho_d = np.nan_to_num(np.nanmean(values, axis=0))
    n_valid = np.maximum(np.sum(~np.isnan(values), axis=0), 2)
    se_d = np.nan_to_num(np.nanstd(values, axis=0)) / np.sqrt(n_valid)
    lags = np.arange(len(rho_d))
    c0 = -np.sum(lags * rho_d)
    if c0 <= 0:
        return np.where(lags == 0, 1.0, 0.0)[: max_lag + 1], np.full(max_lag + 1, np.inf)
    rho = np.array([-np.sum((lags[k + 1:] - k) * rho_d[k + 1:]) for k in lags]) / c0
    se = np.array([np.sqrt(np.sum(((lags[k + 1:] - k) * se_d[k + 1:]) ** 2)) for k in lags])
    return rho[: max_lag + 1], se[: max_lag + 1] / c0


def _image_planes(X, channel_axis):
    """Every (sample, channel) image of a float stack, capped at ``_MAX_VALUES`` values."""
    planes, total = [], 0
    for sample in X:
        channels = [sample] if channel_axis is None else np.moveaxis(sample, -1, 0)
        for plane in channels:
            planes.append(plane)
            total += plane.size
            if total >= _MAX_VALUES:
                return planes
    return planes


# ------------------------------------------------------------------------ public API
def estimate_noise_correlation(X, *, max_lag=6, threshold=DEFAULT_THRESHOLD,
                               spatial_ndim=None, channel_axis=None):
    """Measure the spatial correlation of the noise in an image stack.

    Parameters
    ----------
    X : array-like of shape (n_samples, *spatial[, n_channels])
        One to three spatial axes, any numeric dtype (only correlations are returned, so
        the units do not matter). A single image when ``spatial_ndim`` is given.
    max_lag : int >= 1, default=6
        Largest lag measured along each axis.
    threshold : float in (0, 1), default=0.1
        Correlation from which a lag counts as correlated (raised to three standard
        errors where the estimate is uncertain).
    spatial_ndim : None or int in [1, 3], default=None
        Number of spatial axes, when X may be a single image.
    channel_axis : None or -1, default=None
        -1 for a trailing channel axis (channels are pooled).

    Returns
    -------
    NoiseCorrelation
        ``correlation``, ``stderr`` and ``extent`` per axis.

    Notes
    -----
    The correlation along an axis is measured on a second difference taken across it,
    which removes smooth signal and is exact for separable noise covariances; see the
    module's documentation. Strong texture along an axis reads as correlation; the
    estimate is meant to choose a blind spot, and a too-wide blind spot costs little
    (a few tenths of a dB), a too-narrow one a lot.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> rng = np.random.default_rng(0)
    >>> white = rng.normal(size=(1, 256, 256))
    >>> estimate_noise_correlation(white).extent
    (0, 0)
    >>> along_x = ndi.uniform_filter1d(white, 4, axis=-1)  # correlated over 4 pixels in x
    >>> estimate_noise_correlation(along_x).extent
    (0, 3)
    """
    for name, value, low in (("max_lag", max_lag, 1),):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
            or not 0 < threshold < 1):
        raise ValueError(f"threshold must be a number in (0, 1), got {threshold!r}.")
    X = check_stack(X, channel_axis=channel_axis, spatial_ndim=spatial_ndim,
                    min_spatial_size=3, name="X")
    n_spatial = len(spatial_axes(X.ndim, channel_axis))
    X = np.asarray(X, dtype=np.float64)
    # With one spatial axis the difference is along it; otherwise along each other axis.
    pairs = [(a, b) for a in range(n_spatial) for b in range(n_spatial)
             if (a != b) or n_spatial == 1]
    replicates = {pair: [] for pair in pairs}
    for plane in _image_planes(X, channel_axis):
        for axis, across in pairs:
            replicates[axis, across].append(_axis_correlations(plane, axis, across, max_lag))
    correlation = np.full((n_spatial, max_lag + 1), np.inf)
    stderr = np.zeros_like(correlation)
    for (axis, _), values in replicates.items():
        values = np.concatenate(values)
        if n_spatial == 1:
            correlation[axis], stderr[axis] = _one_axis_estimate(values, max_lag)
            continue
        # Signal left by the difference only adds correlation, and every difference
        # measures the same noise correlation (separable noise): keep the smallest.
        centre, error = _pooled(values)
        smaller = centre < correlation[axis]
        correlation[axis, smaller], stderr[axis, smaller] = centre[smaller], error[smaller]
    correlation[:, 0], stderr[:, 0] = 1.0, 0.0
    extent = tuple(_extent(c, s, threshold) for c, s in zip(correlation, stderr))
    return NoiseCorrelation(correlation, stderr, float(threshold), extent)


def _extent(correlation, stderr, threshold):
    """Largest correlated lag, or None when the last measured lag is still correlated."""
    limit = np.maximum(threshold, 3 * np.nan_to_num(stderr, nan=np.inf))
    correlated = np.nan_to_num(correlation[1:], nan=0.0) > limit[1:]
    if not correlated.any():
        return 0
    last = int(np.flatnonzero(correlated)[-1]) + 1
    return WHOLE_AXIS if last == len(correlation) - 1 else last


def extent_footprint(extent, spatial_shape=None):
    """Boolean box footprint with the given half-extents (True: hidden from the pixel).

    Parameters
    ----------
    extent : sequence of (int >= 0 or None)
        Half-extent per spatial axis; None spans the whole axis, which needs
        ``spatial_shape``.
    spatial_shape : tuple of int, optional
        Shape of the images, used for whole-axis extents.

    Returns
    -------
    footprint : bool ndarray with one odd-length axis per spatial axis
        Centred on the pixel, which is always part of it.
    """
    sides = []
    for axis, e in enumerate(extent):
        if e is WHOLE_AXIS:
            if spatial_shape is None:
                raise ValueError("a whole-axis extent (None) needs the image shape.")
            e = max(int(spatial_shape[axis]) - 1, 0)
        sides.append(2 * int(e) + 1)
    return np.ones(sides, dtype=bool)


def centred_window(footprint, shape):
    """``footprint`` cropped or padded (with False) to ``shape``, keeping its centre.

    Both have odd lengths along every axis.
    """
    footprint = np.asarray(footprint, dtype=bool)
    out = np.zeros(shape, dtype=bool)
    src, dst = [], []
    for n_in, n_out in zip(footprint.shape, shape):
        half = min(n_in, n_out) // 2
        src.append(slice(n_in // 2 - half, n_in // 2 + half + 1))
        dst.append(slice(n_out // 2 - half, n_out // 2 + half + 1))
    out[tuple(dst)] = footprint[tuple(src)]
    return out


def footprint_extent(footprint):
    """Half-extents of a centred footprint along each axis (reach of its True values)."""
    footprint = np.asarray(footprint, dtype=bool)
    centre = np.array(footprint.shape) // 2
    where = np.argwhere(footprint)
    return tuple(int(v) for v in np.max(np.abs(where - centre), axis=0))


def check_blind_spot(blind_spot, n_spatial, spatial_shape=None):
    """Validate a ``blind_spot`` parameter and return its footprint (or None for a pixel).

    Parameters
    ----------
    blind_spot : 'pixel', int, sequence of (int or None), or bool ndarray
        ``'pixel'``: the pixel alone (returns None). An int ``k``: a box of half-extent
        ``k`` along every axis. A sequence: one half-extent per spatial axis, None for the
        whole axis (e.g. ``(0, 3)``: three pixels either side along the last axis). A
        boolean array with an odd length per spatial axis: the footprint itself, centred
        on the pixel (the centre is added if missing). ``'auto'`` must be resolved by
        the caller (:func:`estimate_noise_correlation`) before this.
    n_spatial : int
        Number of spatial axes of the data.
    spatial_shape : tuple of int, optional
        Needed for whole-axis extents.

    Returns
    -------
    footprint : None or bool ndarray
        None for a single pixel.
    """
    if isinstance(blind_spot, str):
        if blind_spot == "pixel":
            return None
        raise ValueError(
            f"blind_spot must be 'pixel', 'auto', an int, a sequence of half-extents or a "
            f"boolean footprint, got {blind_spot!r}."
        )
    if isinstance(blind_spot, np.ndarray) and blind_spot.dtype == bool:
        return _check_footprint(blind_spot, n_spatial)
    if isinstance(blind_spot, numbers.Integral) and not isinstance(blind_spot, bool):
        extent = (int(blind_spot),) * n_spatial
    elif isinstance(blind_spot, (tuple, list)):
        extent = tuple(blind_spot)
    else:
        raise TypeError(
            "blind_spot must be 'pixel', 'auto', an int, a sequence of half-extents or a "
            f"boolean ndarray, got {type(blind_spot).__name__}."
        )
    if len(extent) != n_spatial:
        raise ValueError(
            f"blind_spot has {len(extent)} half-extent(s) but the data have {n_spatial} "
            "spatial axes."
        )
    for e in extent:
        if e is not WHOLE_AXIS and (isinstance(e, bool) or not isinstance(e, numbers.Integral)
                                    or e < 0):
            raise ValueError(
                f"blind_spot half-extents must be integers >= 0 or None (the whole axis), "
                f"got {blind_spot!r}."
            )
    if all(e == 0 for e in extent):
        return None
    return extent_footprint(extent, spatial_shape)


def _check_footprint(footprint, n_spatial):
    if footprint.ndim != n_spatial or any(n % 2 == 0 for n in footprint.shape):
        raise ValueError(
            f"a blind_spot footprint needs {n_spatial} axes of odd length (centred on the "
            f"pixel), got shape {footprint.shape}."
        )
    footprint = footprint.copy()
    footprint[tuple(n // 2 for n in footprint.shape)] = True
    return None if footprint.sum() == 1 else footprint
