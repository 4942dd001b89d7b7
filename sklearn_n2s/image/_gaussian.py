"""Gaussian filter made J-invariant in closed form."""

import functools
import numbers
from numbers import Real

import numpy as np
from scipy import ndimage as ndi
from sklearn.utils._param_validation import StrOptions

from ..utils._validation import spatial_axes
from ._base import BaseImageDenoiser
from ._limits import NotBool, check_has_neighbours, describe_shape

MODES = ("reflect", "nearest", "mirror", "wrap", "constant")
# A pixel whose kernel puts less than this share of the weight off itself has nothing
# to be predicted from (the J-invariant gain 1 / (1 - w_ii) would blow up).
_MIN_NEIGHBOUR_WEIGHT = 1e-9


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
        ``fit`` refuses a sigma so small that the kernel keeps all but 1e-9 of its
        weight on the centre pixel (below about 0.16 with the default ``truncate``):
        a pixel would have nothing to be predicted from.
    truncate : float, default=4.0
        The kernel is cut at ``truncate * sigma``, as in :func:`scipy.ndimage.gaussian_filter`.
        A kernel radius ``int(truncate * sigma + 0.5)`` of more than twice the image's
        largest side, or an image of a single pixel, is refused with a ``ValueError``
        by ``fit`` and by every call that gets such an image.
    mode : {'nearest', 'reflect', 'mirror', 'wrap', 'constant'}, default='nearest'
        Boundary mode; 'nearest' matches :func:`skimage.filters.gaussian`.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis (never blurred across).
    output : {'shrink', 'ordinary', 'invariant'}, default='shrink'
        What :meth:`transform` returns, see :mod:`sklearn_n2s.base`.
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'``.
    spatial_ndim : {1, 2, 3} or None, default=None
        Number of spatial axes. When given, a single image ``(*spatial[, n_channels])``
        is accepted as a stack of one (the output has the input's shape). None reads
        them from ``X.ndim``: a 2-D array is then n one-dimensional signals, and
        ``fit`` warns (:class:`~sklearn_n2s.image.SpatialAxesWarning`).

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
        "sigma": [NotBool(Real, 0, np.inf, closed="neither"), "array-like"],
        "truncate": [NotBool(Real, 0, np.inf, closed="neither")],
        "mode": [StrOptions(set(MODES))],
    }

    def __init__(self, sigma=1.0, *, truncate=4.0, mode="nearest", channel_axis=None,
                 output="shrink", noise_variance=None, spatial_ndim=None):
        self.sigma = sigma
        self.truncate = truncate
        self.mode = mode
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.spatial_ndim = spatial_ndim

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
        if not isinstance(self.sigma, numbers.Real):
            # A sequence of sigmas: the constraints check its type, not its values.
            sigmas = np.asarray(self.sigma)
            if sigmas.ndim != 1 or sigmas.dtype.kind not in "iuf" or not (
                np.all(np.isfinite(sigmas)) and np.all(sigmas > 0)
            ) or _has_bool(self.sigma):
                raise ValueError(
                    "sigma must be a number > 0 or a sequence of them, one per spatial "
                    f"axis; got {self.sigma!r}."
                )
            if len(sigmas) != n_spatial:
                raise ValueError(
                    f"sigma has {len(sigmas)} values but X has {n_spatial} spatial axes."
                )
        sigmas = self._sigma_per_axis(n_spatial)
        centre = np.prod([_centre_weight(s, float(self.truncate)) for s in sigmas])
        if centre > 1 - _MIN_NEIGHBOUR_WEIGHT:
            radius = max(_kernel_radius(s, float(self.truncate)) for s in sigmas)
            kernel = ("is its centre tap alone (kernel radius int(truncate * sigma + 0.5) "
                      "= 0)" if radius < 1 else
                      f"puts only {1 - centre:.2g} of its weight off the centre pixel")
            raise ValueError(
                f"sigma={self.sigma!r} is too small (with truncate={self.truncate!r}): "
                f"the kernel {kernel}, so a pixel has nothing to be predicted from. Use "
                "a larger sigma (about 0.16 or more with truncate=4) or truncate."
            )

    def _check_spatial_shape(self, spatial_shape):
        check_has_neighbours(spatial_shape)
        largest = max(spatial_shape)
        for axis, sigma in enumerate(self._sigma_per_axis(len(spatial_shape))):
            radius = _kernel_radius(sigma, float(self.truncate))
            if radius > 2 * largest:
                raise ValueError(
                    f"sigma={self.sigma!r} with truncate={self.truncate!r} gives a kernel "
                    f"radius of {radius:.4g} pixels along spatial axis {axis}, more than "
                    f"twice the largest side of X ({describe_shape(spatial_shape)}): the "
                    "kernel would be larger than the image. Use a smaller sigma or "
                    "truncate."
                )

    def _sigma_per_axis(self, n_spatial):
        if isinstance(self.sigma, numbers.Real):
            return [float(self.sigma)] * n_spatial
        return [float(s) for s in self.sigma]

    def _sigmas(self, X):
        axes = spatial_axes(X.ndim, self.channel_axis)
        return axes, self._sigma_per_axis(len(axes))

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
    if np.any(weight > 1 - _MIN_NEIGHBOUR_WEIGHT):
        # Single pixels are refused before: what is left is a sigma too small for the
        # edge pixels (where the boundary mode folds taps back onto the pixel).
        raise ValueError(
            f"sigma={sigmas} is too small for a J-invariant Gaussian with mode={mode!r} "
            f"on spatial shape {spatial_shape}: some pixels keep all but less than "
            f"{_MIN_NEIGHBOUR_WEIGHT:g} of the kernel weight, so they have nothing to be "
            "predicted from. Use a larger sigma or truncate."
        )
    gain = (1.0 / (1.0 - weight)).astype(dtype)
    gain.flags.writeable = False  # shared through the cache
    return gain


def _has_bool(values):
    """True when a (possibly nested) sequence holds a bool: not a standard deviation."""
    if isinstance(values, (bool, np.bool_)):
        return True
    if isinstance(values, np.ndarray):
        return values.dtype.kind == "b"
    if isinstance(values, (list, tuple)):
        return any(_has_bool(v) for v in values)
    return False


def _kernel_radius(sigma, truncate):
    """``int(truncate * sigma + 0.5)`` as scipy.ndimage cuts the kernel (a float, so
    that an absurd value is compared before it is converted)."""
    return float(np.floor(truncate * sigma + 0.5))


def _centre_weight(sigma, truncate):
    """Weight scipy's normalised 1-D Gaussian kernel gives its centre tap."""
    radius = _kernel_radius(sigma, truncate)
    if radius < 1:
        return 1.0
    x = np.arange(1, min(radius, 64) + 1)  # farther taps add nothing once sigma is tiny
    with np.errstate(over="ignore", under="ignore"):
        tails = np.exp(-0.5 * np.square(x / sigma))
    return float(1.0 / (1.0 + 2.0 * tails.sum()))
