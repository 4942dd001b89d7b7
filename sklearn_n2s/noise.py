"""Noise level estimation for the shrinkage output.

``skimage.restoration.estimate_sigma`` takes the median absolute value of the finest
diagonal wavelet coefficients over the whole image. That median follows the *typical*
noise level, which under signal-dependent noise (photon counting: variance grows with
intensity) is below the mean variance that the shrinkage weight needs; on the camera
image with Poisson noise it underestimates the variance by a third. Here the same robust
estimate is taken in blocks of about 256 coefficients, and the block variances are
averaged: within a block the noise is close to homogeneous, and the mean over blocks is
the mean noise variance. For homogeneous noise both agree (measured in
``benchmarks/transform_quality.py``).
"""

import numpy as np
import pywt
from scipy.stats import norm

_MAD_TO_SIGMA = norm.ppf(0.75)
# Block side per number of spatial axes, about 256 coefficients per block.
_BLOCK_SIDE = {1: 256, 2: 16, 3: 6}


def _blocks(coeffs, side):
    """Cut an n-d array into blocks of ``side`` along every axis (remainders dropped)."""
    sides = [min(side, n) for n in coeffs.shape]
    counts = [n // s for n, s in zip(coeffs.shape, sides)]
    trimmed = coeffs[tuple(slice(c * s) for c, s in zip(counts, sides))]
    shape = [v for c, s in zip(counts, sides) for v in (c, s)]
    blocked = trimmed.reshape(shape)
    n = coeffs.ndim
    order = list(range(0, 2 * n, 2)) + list(range(1, 2 * n, 2))
    return blocked.transpose(order).reshape(int(np.prod(counts)), -1)


def image_noise_variance(image):
    """Mean noise variance of one single-channel image (any number of axes)."""
    detail = pywt.dwtn(image, "db2")["d" * image.ndim]
    blocks = _blocks(detail, _BLOCK_SIDE.get(image.ndim, 6))
    sigmas = np.median(np.abs(blocks), axis=1) / _MAD_TO_SIGMA
    return float(np.mean(sigmas**2))


def estimate_noise_variance(X, *, channel_axis=None):
    """Per-sample mean noise variance of a stack, robust to signal-dependent noise.

    Parameters
    ----------
    X : ndarray of shape (n_samples, *spatial[, n_channels])
    channel_axis : None or -1

    Returns
    -------
    variances : ndarray of shape (n_samples,)
        Averaged over channels.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(0, 0.1, size=(2, 128, 128))
    >>> np.round(estimate_noise_variance(X), 3)
    array([0.01, 0.01])
    """
    X = np.asarray(X, dtype=np.float64)
    variances = np.empty(X.shape[0])
    for i, sample in enumerate(X):
        channels = [sample] if channel_axis is None else np.moveaxis(sample, -1, 0)
        variances[i] = np.mean([image_noise_variance(c) for c in channels])
    return variances
