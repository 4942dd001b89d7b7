"""Noise level estimation for the shrinkage output.

``skimage.restoration.estimate_sigma`` takes the median absolute value of the finest
diagonal wavelet coefficients over the whole image. That median follows the *typical*
noise level, which under signal-dependent noise (photon counting: variance grows with
intensity) is below the mean variance that the shrinkage weight needs; on the camera
image with Poisson noise it underestimates the variance by a third. Here the same robust
estimate is taken in blocks of about 256 coefficients; blocks of similar intensity are
pooled by their median (robust to edges and texture) and the intensity levels are
averaged, which gives the mean noise variance. For homogeneous noise both agree
(measured in ``benchmarks/transform_quality.py`` and ``tests/test_noise.py``).
"""

import numpy as np
import pywt
from scipy.stats import norm

#: Median absolute value of a standard normal: scikit-image's robust noise constant.
MAD_TO_SIGMA = norm.ppf(0.75)
# Block side per number of spatial axes, about 256 coefficients per block.
_BLOCK_SIDE = {1: 256, 2: 16, 3: 6}


def _blocks(coeffs, side):
    """Cut an n-d array into blocks of ``side`` along every axis (remainders dropped)."""
    # An axis shorter than two blocks is one block: no coefficients are dropped.
    sides = [n if n < 2 * side else side for n in coeffs.shape]
    counts = [n // s for n, s in zip(coeffs.shape, sides)]
    trimmed = coeffs[tuple(slice(c * s) for c, s in zip(counts, sides))]
    shape = [v for c, s in zip(counts, sides) for v in (c, s)]
    blocked = trimmed.reshape(shape)
    n = coeffs.ndim
    order = list(range(0, 2 * n, 2)) + list(range(1, 2 * n, 2))
    return blocked.transpose(order).reshape(int(np.prod(counts)), -1)


def image_noise_variance(image, n_bins=8):
    """Mean noise variance of one single-channel image (any number of axes).

    Blocks are grouped by their mean intensity (``n_bins`` quantile bins); within a bin
    the median block variance is taken (robust to the few blocks that hold edges or
    texture), and the bins are averaged, weighted by their number of blocks. Under
    signal-dependent noise each bin sees its own noise level.

    Parameters
    ----------
    image : ndarray
        One image (no sample or channel axis), with one to three axes.
    n_bins : int, default=8
        Number of intensity bins (fewer when there are under 4 blocks per bin).

    Returns
    -------
    variance : float
        The mean noise variance, in the image's units squared.
    """
    coeffs = pywt.dwtn(image, "db2")
    key = "d" * image.ndim
    # Coefficients whose filter support crosses the border see the symmetric
    # extension, not the noise alone: drop them where the axis is long enough.
    crop = tuple(slice(2, -2) if n > 8 else slice(None) for n in coeffs[key].shape)
    side = _BLOCK_SIDE.get(image.ndim, 6)
    detail = _blocks(coeffs[key][crop], side)
    level = _blocks(coeffs["a" * image.ndim][crop], side).mean(axis=1)
    variances = (np.median(np.abs(detail), axis=1) / MAD_TO_SIGMA) ** 2
    n_bins = max(1, min(n_bins, len(variances) // 4))
    edges = np.quantile(level, np.linspace(0, 1, n_bins + 1)[1:-1])
    bins = np.searchsorted(edges, level, side="right")
    total = 0.0
    for b in np.unique(bins):
        members = bins == b
        total += np.median(variances[members]) * members.sum()
    return float(total / len(variances))


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
