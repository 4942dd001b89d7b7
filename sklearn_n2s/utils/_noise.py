"""Noise level estimation for the shrinkage output.

``skimage.restoration.estimate_sigma`` takes the median absolute value of the finest
diagonal wavelet coefficients over the whole image. That median follows the *typical*
noise level, which under signal-dependent noise (photon counting: variance grows with
intensity) is below the mean variance that the shrinkage weight needs; on the camera
image with Poisson noise it underestimates the variance by a third. Here the same robust
estimate is taken per *tile*: the image is cut into tiles of a fixed size anchored at its
origin (48 x 48 pixels in 2-D, 512 in 1-D, 16**3 in 3-D; an axis shorter than two tiles
is one tile, and in 2-D an axis shorter than four tiles takes tiles of a quarter of it,
down to 32; the incomplete tiles at the far end are left out), and each tile gets the
robust level of its own finest diagonal Daubechies-2 coefficients, computed inside the
tile (no padding). Tiles of similar intensity are pooled by their median (robust to
edges and texture) and the intensity levels are averaged, which gives the mean noise
variance. For homogeneous noise both agree (``tests/utils/test_noise.py``).

Because a tile never looks outside itself, the estimate is a function of per-tile
statistics (:func:`tile_statistics`, two numbers per tile) pooled by
:func:`pool_tile_statistics`: the blockwise (dask) path computes them chunk by chunk
and gets the same estimate as the in-memory path, whatever the chunking.
"""

import numpy as np
import pywt
from scipy.stats import norm

#: Median absolute value of a standard normal: scikit-image's robust noise constant.
MAD_TO_SIGMA = norm.ppf(0.75)
#: Tile side per number of spatial axes (255, 529 and 343 finest diagonal coefficients).
#: 48 in 2-D measured best of 24..64 on six offline images with Gaussian and Poisson
#: noise (mean relative error of the variance 5.5%, 6.1% for the previous estimate).
TILE_SIDE = {1: 512, 2: 48, 3: 16}
#: Smallest tile side an axis of fewer than four full tiles shrinks its tiles to (2-D
#: only, where it was measured): on 128 x 128 crops of the seven images above (Gaussian
#: 0.05-0.2 and Poisson) tiles of 48 covered 96 x 96 (four tiles, one intensity bin) and
#: the variance was off by 10 % on average, by -54 % on astronaut with photon noise;
#: tiles of 32 (sixteen tiles, four bins) 7.4 % and +40 % (``benchmarks/RESULTS.md``).
SMALL_TILE_SIDE = {2: 32}
# High-pass filters of the finest level: Daubechies-2 where the tile is long enough,
# Haar on axes of 2 or 3 pixels; an axis of one pixel is not filtered.
_DB2 = np.asarray(pywt.Wavelet("db2").dec_hi, dtype=np.float64)
_HAAR = np.asarray(pywt.Wavelet("haar").dec_hi, dtype=np.float64)


def noise_tile_shape(spatial_shape):
    """Tile shape of the noise estimate for an image of ``spatial_shape``.

    The fixed :data:`TILE_SIDE`, or the whole axis when it is shorter than two tiles.
    In 2-D an axis shorter than four tiles takes a quarter of its length, down to
    :data:`SMALL_TILE_SIDE` (a 128-pixel axis: four tiles of 32, not two of 48 that
    leave a quarter of it out).

    Parameters
    ----------
    spatial_shape : tuple of int
        Shape of the whole image (one to three axes).

    Returns
    -------
    tile_shape : tuple of int
    """
    ndim = len(spatial_shape)
    side = TILE_SIDE.get(ndim, TILE_SIDE[3])
    smallest = SMALL_TILE_SIDE.get(ndim, side)
    return tuple(int(n) if n < 2 * side else min(side, max(smallest, int(n) // 4))
                 for n in spatial_shape)


def curve_tile_shape(spatial_shape):
    """Tile shape for a curve of the noise variance over intensity on an image of
    ``spatial_shape``: smaller tiles than :func:`noise_tile_shape`'s where the image
    is small, since a curve needs some tens of tiles (a 128 x 128 image: 64 tiles of
    16 x 16).

    Parameters
    ----------
    spatial_shape : tuple of int

    Returns
    -------
    tile_shape : tuple of int
    """
    return tuple(max(4, min(t, n // 8)) if n >= 32 else t
                 for t, n in zip(noise_tile_shape(spatial_shape), spatial_shape))


def _tiles(image, tile_shape):
    """The complete tiles of an image, as an array of shape ``(n_tiles, *tile_shape)``."""
    counts = [n // t for n, t in zip(image.shape, tile_shape)]
    trimmed = image[tuple(slice(c * t) for c, t in zip(counts, tile_shape))]
    blocked = trimmed.reshape([v for c, t in zip(counts, tile_shape) for v in (c, t)])
    n = image.ndim
    order = list(range(0, 2 * n, 2)) + list(range(1, 2 * n, 2))
    return blocked.transpose(order).reshape((int(np.prod(counts)),) + tuple(tile_shape))


def _finest_diagonal(tiles):
    """Finest diagonal wavelet coefficients of every tile, computed inside the tile.

    A "valid" convolution with stride 2 along every axis longer than one pixel: a
    coefficient never reaches outside its tile, so it never sees a border extension.
    """
    out = tiles
    for axis in range(1, tiles.ndim):
        length = out.shape[axis]
        if length < 2:
            continue
        taps = _DB2 if length >= len(_DB2) else _HAAR
        m = (length - len(taps)) // 2 + 1
        filtered = None
        for j, tap in enumerate(taps):
            index = [slice(None)] * out.ndim
            index[axis] = slice(j, j + 2 * (m - 1) + 1, 2)
            term = tap * out[tuple(index)]
            filtered = term if filtered is None else filtered + term
        out = filtered
    return out


def tile_statistics(image, tile_shape):
    """Robust noise level and mean intensity of every complete tile of one image.

    Parameters
    ----------
    image : ndarray
        One single-channel image (no sample or channel axis), or a part of one whose
        origin lies on a multiple of ``tile_shape``.
    tile_shape : tuple of int
        From :func:`noise_tile_shape` of the *whole* image.

    Returns
    -------
    sigmas : ndarray of shape (n_tiles,)
        ``median(|d|) / 0.6745`` of each tile's finest diagonal coefficients ``d``.
    levels : ndarray of shape (n_tiles,)
        Mean of each tile.
    """
    tiles = _tiles(np.asarray(image, dtype=np.float64), tile_shape)
    if len(tiles) == 0:
        return np.empty(0), np.empty(0)
    flat = tiles.reshape(len(tiles), -1)
    levels = np.mean(flat, axis=1)
    if all(t < 2 for t in tile_shape):  # single pixels: no high-pass, no noise seen
        return np.zeros(len(tiles)), levels
    detail = _finest_diagonal(tiles).reshape(len(tiles), -1)
    sigmas = np.median(np.abs(detail), axis=1) / MAD_TO_SIGMA
    return sigmas, levels


def pool_tile_statistics(sigmas, levels, n_bins=8):
    """Mean noise variance from per-tile statistics, as ``(mantissa, exponent)``.

    Tiles are grouped by their mean intensity (``n_bins`` quantile bins); within a bin
    the median tile variance is taken (robust to the few tiles that hold edges or
    texture), and the bins are averaged, weighted by their number of tiles. Under
    signal-dependent noise each bin sees its own noise level. The result does not
    depend on the order of the tiles.

    The variance is ``mantissa * 2**exponent``: the levels are divided by a power of
    two (exact) before squaring, so that any finite data gives a finite mantissa.

    Parameters
    ----------
    sigmas, levels : array-like of shape (n_tiles,)
        From :func:`tile_statistics`, for all the tiles of one image.
    n_bins : int, default=8
        Number of intensity bins (fewer when there are under 4 tiles per bin).

    Returns
    -------
    mantissa : float
    exponent : int
    """
    sigmas = np.asarray(sigmas, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    if sigmas.size == 0:
        return 0.0, 0
    exponent = int(np.frexp(np.max(sigmas))[1])
    variances = np.square(np.ldexp(sigmas, -exponent))
    total = 0.0
    for _, median, count in _intensity_bins(levels, variances, n_bins):
        total += median * count
    return float(total / len(variances)), 2 * exponent


def _intensity_bins(levels, variances, n_bins):
    """``[(median level, median variance, number of tiles)]`` per intensity bin.

    Tiles are grouped into ``n_bins`` quantile bins of their mean intensity (fewer when
    there are under 4 tiles per bin), in increasing intensity.
    """
    n_bins = max(1, min(n_bins, len(variances) // 4))
    edges = np.quantile(levels, np.linspace(0, 1, n_bins + 1)[1:-1])
    bins = np.searchsorted(edges, levels, side="right")
    out = []
    for b in np.unique(bins):
        members = bins == b
        out.append((np.median(levels[members]), np.median(variances[members]),
                    members.sum()))
    return out


def image_noise_variance(image, n_bins=8):
    """Mean noise variance of one single-channel image (any number of axes).

    The image is cut into tiles (:func:`noise_tile_shape`), each tile gets its robust
    noise level (:func:`tile_statistics`), and the tiles are pooled by intensity
    (:func:`pool_tile_statistics`).

    Parameters
    ----------
    image : ndarray
        One image (no sample or channel axis), with one to three axes.
    n_bins : int, default=8
        Number of intensity bins (fewer when there are under 4 tiles per bin).

    Returns
    -------
    variance : float
        The mean noise variance, in the image's units squared (infinite only when it
        exceeds the largest float64).
    """
    image = np.asarray(image, dtype=np.float64)
    sigmas, levels = tile_statistics(image, noise_tile_shape(image.shape))
    with np.errstate(over="ignore"):
        return float(np.ldexp(*pool_tile_statistics(sigmas, levels, n_bins)))


def estimate_noise_variance(X, *, channel_axis=None):
    """Per-sample mean noise variance of a stack, robust to signal-dependent noise.

    Parameters
    ----------
    X : ndarray of shape (n_samples, *spatial[, n_channels])
        An image stack with one to three spatial axes, in the units the variance is
        wanted in (converted to float64).
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis; each channel is estimated on its own.

    Returns
    -------
    variances : ndarray of shape (n_samples,)
        Mean noise variance of each sample, averaged over channels.

    See Also
    --------
    skimage.restoration.estimate_sigma : the global (median) estimate this refines.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(0, 0.1, size=(2, 256, 256))
    >>> np.round(estimate_noise_variance(X), 2)
    array([0.01, 0.01])
    """
    X = np.asarray(X, dtype=np.float64)
    variances = np.empty(X.shape[0])
    for i, sample in enumerate(X):
        channels = [sample] if channel_axis is None else np.moveaxis(sample, -1, 0)
        variances[i] = np.mean([image_noise_variance(c) for c in channels])
    return variances


def noise_variance_weights(image, guide, n_bins=8):
    """Relative noise variance of every pixel of one image, from its intensity.

    Under photon noise the variance follows the signal. The tiles of
    :func:`tile_statistics` are grouped by intensity as in :func:`pool_tile_statistics`;
    the bins' median tile variances are fitted by the Poisson-Gaussian model of camera
    noise, ``variance = a * intensity + b`` with ``a >= 0`` (Foi et al. 2008; ``a = 0``:
    homogeneous noise), which is read at the ``guide`` (a denoised version of the image,
    so that the noise does not pick its own variance) and divided by its mean over the
    pixels. Stein's risk estimate under heteroscedastic noise weights the divergence of
    a filter by these (see :meth:`sklearn_n2s.image.JInvariantGaussian.estimated_risk`);
    under homogeneous noise they are close to 1.

    Why a line and not the bins joined up: a tile's mean averages its pixels, so on a
    textured image the tiles' means span far less than the pixels do (brick, 256 x 256:
    0.41-0.47 against 0.29-0.78), and interpolating between the bins gave every pixel
    beyond them the end bin's variance. The model's variance is linear in intensity,
    so a tile's mean variance lies on the same line and the fit extends to every pixel.
    On the 28 offline images x noises the weights' RMS error against each pixel's true
    relative variance fell from 0.125 to 0.064 (128 x 128) and from 0.108 to 0.068
    (256 x 256); without ``a >= 0`` a slope fitted to noise over a narrow range blew up
    on Gaussian noise (``benchmarks/RESULTS.md``).

    Parameters
    ----------
    image : ndarray
        One single-channel image (no sample or channel axis).
    guide : ndarray of the same shape
        The intensities the variance is read at.
    n_bins : int, default=8
        Number of intensity bins (fewer when there are under 4 tiles per bin).

    Returns
    -------
    weights : ndarray of the image's shape
        Positive, mean 1 (all ones when no tile or no noise is seen). The model's
        variance is kept above :data:`WEIGHT_FLOOR` of the largest bin's, so that no
        pixel's divergence is weighted by nothing.

    References
    ----------
    .. [1] A. Foi, M. Trimeche, V. Katkovnik and K. Egiazarian, "Practical
       Poissonian-Gaussian noise modeling and fitting for single-image raw-data",
       IEEE Trans. Image Process. 17(10), 2008.
    """
    image = np.asarray(image, dtype=np.float64)
    sigmas, levels = tile_statistics(image, curve_tile_shape(image.shape))
    ones = np.ones(image.shape)
    if sigmas.size < 8 or not np.any(sigmas > 0):
        return ones
    variances = np.square(sigmas / np.max(sigmas))
    centres, values, counts = (np.asarray(v, dtype=np.float64)
                               for v in zip(*_intensity_bins(levels, variances, n_bins)))
    slope, intercept = _photon_line(centres, values, counts)
    weights = np.maximum(intercept + slope * np.asarray(guide, dtype=np.float64),
                         WEIGHT_FLOOR * np.max(values))
    return weights / np.mean(weights)


#: Smallest variance :func:`noise_variance_weights` gives a pixel, as a share of the
#: largest intensity bin's: dark pixels under pure photon noise get close to it.
WEIGHT_FLOOR = 0.05


def _photon_line(centres, values, counts):
    """``(a, b)`` of ``variance = a * level + b``, least squares weighted by the bins'
    tile counts, with ``a >= 0`` (a flat line at the weighted mean otherwise)."""
    mean_level = np.average(centres, weights=counts)
    mean_value = np.average(values, weights=counts)
    spread = np.sum(counts * (centres - mean_level) ** 2)
    if not spread > 0:  # one intensity level: nothing to fit a slope to
        return 0.0, mean_value
    slope = np.sum(counts * (centres - mean_level) * (values - mean_value)) / spread
    slope = max(float(slope), 0.0)
    return slope, mean_value - slope * mean_level
