"""Gaussian filter made J-invariant in closed form."""

import functools
import numbers
from numbers import Real

import numpy as np
from scipy import ndimage as ndi
from sklearn.utils._param_validation import Interval, StrOptions

from ..utils._validation import spatial_axes
from ._base import BaseImageDenoiser

MODES = ("reflect", "nearest", "mirror", "wrap", "constant")


@functools.lru_cache(maxsize=64)
def self_weights_1d(size, sigma, truncate, mode):
    """Weight that each position of a length-``size`` axis gives to itself.

    In the interior it is the kernel's centre tap; within the kernel radius of an edge a
    boundary mode that folds the kernel back ('reflect', 'nearest', 'mirror', 'wrap')
    adds the taps that land on the pixel itself. Computed by filtering unit impulses
    placed at the edge positions (and one interior position).
    """
    radius = int(truncate * float(sigma) + 0.5)
    edge = np.unique(np.r_[0:min(radius, size), max(size - radius, 0):size, size // 2])
    impulses = np.zeros((size, len(edge)))
    impulses[edge, np.arange(len(edge))] = 1.0
    response = ndi.gaussian_filter1d(impulses, sigma, axis=0, mode=mode, truncate=truncate)
    weights = np.full(size, response[size // 2, np.searchsorted(edge, size // 2)])
    weights[edge] = response[edge, np.arange(len(edge))]
    weights.flags.writeable = False  # shared through the cache
    return weights


class JInvariantGaussian(BaseImageDenoiser):
    """Gaussian filter whose J-invariant form is exact and costs one filtering pass.

    A Gaussian filter is linear: ``g(x)_i = sum_j w_ij x_j``. Removing the pixel's own
    weight and renormalising the others,

        f_inv(x)_i = (g(x)_i - w_ii x_i) / (1 - w_ii),

    gives a prediction of ``x_i`` that does not depend on ``x_i`` (J-invariance for
    single pixels) at the cost of one separable filtering. ``w_ii`` is the centre tap in
    the interior; near an edge the boundary ``mode`` can fold taps back onto the pixel,
    and those are removed too (the kernel is separable, so ``w_ii`` is the product of
    one-dimensional self-weights).

    Parameters
    ----------
    sigma : float or sequence of float, default=1.0
        Standard deviation of the Gaussian in pixels, one value or one per spatial axis.
    truncate : float, default=4.0
        The kernel is cut at ``truncate * sigma``, as in :func:`scipy.ndimage.gaussian_filter`.
    mode : {'nearest', 'reflect', 'mirror', 'wrap', 'constant'}, default='nearest'
        Boundary mode; 'nearest' matches :func:`skimage.filters.gaussian`.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis (never blurred across).
    output : {'shrink', 'ordinary', 'invariant'}, default='shrink'
        What :meth:`transform` returns, see :mod:`sklearn_n2s.base`.
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'``.

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
    DonutMedian : a non-linear filter, J-invariant in closed form.
    JInvariantWavelet : wavelet shrinkage made J-invariant by masking.

    References
    ----------
    .. [1] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       ICML 2019, arXiv:1901.11365.

    Examples
    --------
    A constant image is its own J-invariant prediction (every neighbour has the same
    value); on pure noise (the clean image is 0) the self-supervised loss is the error
    of the prediction plus the noise variance, 1, and a wide kernel predicts 0 well:

    >>> import numpy as np
    >>> from sklearn_n2s import JInvariantGaussian
    >>> flat = np.full((1, 16, 16), 0.5)
    >>> est = JInvariantGaussian(sigma=2.0).fit(flat)
    >>> bool(np.allclose(est.invariant_transform(flat), 0.5))
    True
    >>> noise = np.random.default_rng(0).normal(size=(4, 64, 64))
    >>> est = JInvariantGaussian(sigma=2.0).fit(noise)
    >>> round(float(est.self_supervised_loss(noise)), 1)
    1.0
    """

    _parameter_constraints: dict = {
        **BaseImageDenoiser._parameter_constraints,
        "sigma": [Interval(Real, 0, None, closed="neither"), "array-like"],
        "truncate": [Interval(Real, 0, None, closed="neither")],
        "mode": [StrOptions(set(MODES))],
    }

    def __init__(self, sigma=1.0, *, truncate=4.0, mode="nearest", channel_axis=None,
                 output="shrink", noise_variance=None):
        self.sigma = sigma
        self.truncate = truncate
        self.mode = mode
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance

    def _blockwise_halo(self, spatial_shape):
        sigmas = [float(s) for s in np.atleast_1d(self.sigma)]
        if len(sigmas) == 1:
            sigmas = sigmas * len(spatial_shape)
        if len(sigmas) != len(spatial_shape):
            raise ValueError(
                f"sigma has {len(sigmas)} values but the image has {len(spatial_shape)} "
                "spatial axes."
            )
        # scipy.ndimage cuts the kernel at int(truncate * sigma + 0.5) pixels.
        halo = tuple(int(float(self.truncate) * s + 0.5) for s in sigmas)
        return halo, (1,) * len(spatial_shape)

    def _blockwise_boundary(self):
        # A wrapped image borrows its border halo from the opposite side.
        return "periodic" if self.mode == "wrap" else "none"

    def _check_params_against_data(self, n_spatial):
        # A sequence of sigmas: the constraints check its type, not its values.
        if isinstance(self.sigma, numbers.Real):
            return
        sigmas = np.asarray(self.sigma)
        if sigmas.ndim != 1 or sigmas.dtype.kind not in "iuf" or not (
            np.all(np.isfinite(sigmas)) and np.all(sigmas > 0)
        ):
            raise ValueError(
                "sigma must be a number > 0 or a sequence of them, one per spatial axis; "
                f"got {self.sigma!r}."
            )
        if len(sigmas) != n_spatial:
            raise ValueError(
                f"sigma has {len(sigmas)} values but X has {n_spatial} spatial axes."
            )

    def _sigmas(self, X):
        axes = spatial_axes(X.ndim, self.channel_axis)
        if isinstance(self.sigma, numbers.Real):
            return axes, [float(self.sigma)] * len(axes)
        return axes, [float(s) for s in self.sigma]

    def _denoise(self, X, scale=1.0):
        axes, sigmas = self._sigmas(X)
        return ndi.gaussian_filter(X, sigmas, mode=self.mode, truncate=self.truncate,
                                   axes=axes)

    def _invariant(self, X, scale=1.0):
        out = self._invariant_residual(X, scale)
        out += X
        return out

    def _invariant_residual(self, X, scale=1.0):
        # f_inv - x = (g(x) - w x) / (1 - w) - x = (g(x) - x) / (1 - w): two in-place
        # passes over the filtered image.
        axes, sigmas = self._sigmas(X)
        spatial_shape = tuple(X.shape[a] for a in axes)
        out = self._denoise(X)
        out -= X
        out *= _residual_gain(spatial_shape, tuple(sigmas), float(self.truncate), self.mode,
                              X.dtype.str).reshape(
            tuple(X.shape[i] if i in axes else 1 for i in range(X.ndim)))
        return out


@functools.lru_cache(maxsize=8)
def _residual_gain(spatial_shape, sigmas, truncate, mode, dtype):
    """``1 / (1 - w_ii)`` over the image, ``w_ii`` the weight a pixel gives itself.

    The kernel is separable, so ``w_ii`` is the product of the 1-D self-weights.
    """
    weight = np.ones(())
    for size, sigma in zip(spatial_shape, sigmas):
        weight = np.multiply.outer(weight, self_weights_1d(size, sigma, truncate, mode))
    if np.any(weight > 1 - 1e-9):
        raise ValueError(
            f"X has spatial shape {spatial_shape}: too small for a J-invariant Gaussian, "
            "some pixels have no neighbours to predict them from."
        )
    gain = (1.0 / (1.0 - weight)).astype(dtype)
    gain.flags.writeable = False  # shared through the cache
    return gain
