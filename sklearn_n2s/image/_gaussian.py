"""Gaussian filter made J-invariant in closed form."""

import functools
import numbers
import threading
import zlib
from numbers import Real

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage as ndi
from sklearn.utils._param_validation import StrOptions

from ..masking import invariant_predict
from ..utils._correlation import footprint_extent
from ..utils._validation import spatial_axes
from ._base import BLIND_SPOT_CONSTRAINT, BaseImageDenoiser
from ._limits import NotBool, check_has_neighbours, describe_shape

MODES = ("reflect", "nearest", "mirror", "wrap", "constant")
# A pixel whose kernel puts less than this share of the weight off itself has nothing
# to be predicted from (the J-invariant gain 1 / (1 - w_ii) would blow up).
_MIN_NEIGHBOUR_WEIGHT = 1e-9
# The loss path of a sweep filters one image with many sigmas: it keeps the image's
# spectrum (padded by its boundary mode) and filters each sigma with one inverse FFT.
# Images smaller than this per sample filter directly (FFTs do not pay there), and
# stacks larger than this many values too (the spectrum would hold 2x their memory).
_SPECTRAL_MIN_PIXELS = 128 * 128
_SPECTRAL_MAX_VALUES = 2**24
# Padding kept around the image: any kernel radius up to it reuses the spectrum.
_SPECTRAL_MIN_PAD = 24
# Single precision: scipy's inverse FFT in double costs more than the direct filter here
# (CPU time of the 10-sigma sweep on 512 x 512: 0.10 s in double, 0.047 s in single,
# 0.085 s filtering directly); the loss in single is the exact one to ~1e-7 relative.
_SPECTRAL_DTYPE = np.float32
# numpy.pad's name for each scipy.ndimage boundary mode (constant: cval 0, as here).
_PAD_MODES = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge",
              "wrap": "wrap", "constant": "constant"}


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
    output : {'shrink', 'ordinary', 'invariant', 'auto'}, default='shrink'
        What :meth:`transform` returns, see :mod:`sklearn_n2s.base`.
        ``'auto'`` returns, per image, the output with the lowest
        :meth:`estimated_risk` (the three are computed).
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'`` and
        ``'auto'`` and :meth:`estimated_risk`.
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
        "blind_spot": BLIND_SPOT_CONSTRAINT,
    }

    def __init__(self, sigma=1.0, *, truncate=4.0, mode="nearest", channel_axis=None,
                 output="shrink", noise_variance=None, spatial_ndim=None,
                 blind_spot="pixel"):
        self.sigma = sigma
        self.truncate = truncate
        self.mode = mode
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.spatial_ndim = spatial_ndim
        self.blind_spot = blind_spot

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
        structured = self._structured_invariant(X)
        if structured is not None:
            return structured
        out = self._invariant_residual(X, scale, reuse=False)
        out += X
        return out

    def _structured_invariant(self, X):
        """The prediction with a structured blind spot, or None for a single pixel.

        A box (half-extents per axis, what ``'auto'`` and extents give) in closed form:
        the kernel's weights inside the box are removed and the rest renormalised,
        ``(g(x) - S(x)) / (1 - T)``, where ``S`` applies, axis by axis, the 1-D filter
        matrices (boundary mode included) cut to the band ``|p - q| <= e``, and ``T`` is
        the weight they carry. Any other footprint (and axes longer than
        ``_MAX_BAND_MATRIX_SIDE``) goes through the masking core.
        """
        axes, sigmas = self._sigmas(X)
        spatial_shape = tuple(X.shape[a] for a in axes)
        footprint = self._blind_spot_footprint(spatial_shape)
        if footprint is None:
            return None
        if not footprint.all() or max(spatial_shape) > _MAX_BAND_MATRIX_SIDE:
            return invariant_predict(self._denoise, X, channel_axis=self.channel_axis,
                                     footprint=footprint)[0]
        extent = footprint_extent(footprint)
        hidden, weight = X, np.ones(())
        for axis, size, sigma, e in zip(axes, spatial_shape, sigmas, extent):
            band = _band_matrix(size, sigma, float(self.truncate), self.mode, int(e))
            hidden = _along_axis(band, hidden, axis)
            weight = np.multiply.outer(weight, band.sum(axis=1))
        remaining = 1.0 - weight
        if np.any(remaining < _MIN_NEIGHBOUR_WEIGHT):
            raise ValueError(
                f"JInvariantGaussian: the blind spot {self.blind_spot_!r} holds all but "
                f"less than {_MIN_NEIGHBOUR_WEIGHT:g} of the kernel's weight at some "
                f"pixels (sigma={self.sigma!r}): nothing is left to predict them from. "
                "Use a larger sigma."
            )
        shape = tuple(X.shape[i] if i in axes else 1 for i in range(X.ndim))
        out = self._denoise(X)
        out -= hidden
        out /= remaining.reshape(shape).astype(X.dtype)
        return out

    def _invariant_residual(self, X, scale=1.0, reuse=True):
        structured = self._structured_invariant(X)
        if structured is not None:
            structured -= X
            return structured
        # f_inv - x = (g(x) - w x) / (1 - w) - x = (g(x) - x) / (1 - w): two in-place
        # passes over the filtered image. ``reuse``: the loss path, where a sweep scores
        # the same image again and again, filters through the cached spectrum.
        axes, sigmas = self._sigmas(X)
        spatial_shape = tuple(X.shape[a] for a in axes)
        out = _spectral_residual(X, axes, sigmas, float(self.truncate), self.mode) if (
            reuse) else None
        if out is None:
            out = self._denoise(X)
            out -= X
        out *= _residual_gain(spatial_shape, tuple(sigmas), float(self.truncate), self.mode,
                              X.dtype.str).reshape(
            tuple(X.shape[i] if i in axes else 1 for i in range(X.ndim)))
        return out


# The closed form of a box blind spot holds one dense size x size matrix per axis (32 MiB
# at 2048); longer axes go through the masking core (bounded memory, more passes).
_MAX_BAND_MATRIX_SIDE = 2048


@functools.lru_cache(maxsize=8)
def _band_matrix(size, sigma, truncate, mode, extent):
    """The 1-D filter as a matrix (boundary mode folded in), cut to ``|p - q| <= extent``.

    Row p holds the weight of every position in output p; an extent of 0 keeps the
    diagonal (the self-weights), one of ``size - 1`` or more the whole filter.
    """
    matrix = ndi.gaussian_filter1d(np.eye(size), sigma, axis=0, mode=mode, truncate=truncate)
    offsets = np.abs(np.subtract.outer(np.arange(size), np.arange(size)))
    band = np.where(offsets <= extent, matrix, 0.0)
    band.flags.writeable = False  # shared through the cache
    return band


def _along_axis(matrix, X, axis):
    """``matrix`` applied to every line of X along ``axis`` (X's dtype kept)."""
    moved = np.moveaxis(X, axis, -1)
    out = moved @ matrix.T.astype(X.dtype, copy=False)
    return np.moveaxis(out, -1, axis)


@functools.lru_cache(maxsize=16)
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


class _SpectrumCache:
    """The spectrum of the last image filtered on the loss path (one entry, per process).

    A calibration sweep (``GridSearchCV`` over sigma) scores clones of the estimator on
    the same image: the padded image's FFT is computed once and each sigma then costs a
    product with the kernel's spectrum and one inverse FFT, instead of a separable
    filtering pass. The entry is found by the image's content (shape, dtype and a CRC
    of its bytes), since every candidate gets its own copy of the data.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._entry = None

    def get(self, key, pad):
        with self._lock:
            entry = self._entry
        if entry is not None and entry[0] == key and entry[1] >= pad:
            return entry[1:]
        return None

    def put(self, key, pad, lengths, spectrum, centred):
        with self._lock:
            self._entry = (key, pad, lengths, spectrum, centred)

    def clear(self):
        with self._lock:
            self._entry = None


_SPECTRA = _SpectrumCache()


def _spectral_residual(X, axes, sigmas, truncate, mode):
    """``gaussian_filter(X, sigmas, mode, truncate, axes) - X`` through a cached spectrum.

    The image is padded by its boundary mode past every kernel radius, so the circular
    convolution of the padded image with scipy's truncated kernel never wraps into the
    part kept: the result is the direct filter's. It is computed in float32 (an inverse
    FFT in single precision costs a fifth of one in double here), on the image minus its
    mean per sample (the kernel is normalised, so the mean passes through unchanged and
    the rounding scales with the image's spread, not its offset): the residual is the
    direct one to about 1e-6 of the image's spread, so the loss to about 1e-6 relative.
    Returns None (filter directly) where that does not pay or does not hold: small or
    huge stacks, a kernel longer than an axis, the 'constant' mode (which does not pass
    the mean through).
    """
    spatial = [X.shape[a] for a in axes]
    radii = [int(truncate * s + 0.5) for s in sigmas]
    if (np.prod(spatial) < _SPECTRAL_MIN_PIXELS or X.size > _SPECTRAL_MAX_VALUES
            or any(r >= n for r, n in zip(radii, spatial)) or mode == "constant"):
        return None
    X = np.ascontiguousarray(X)
    key = (X.shape, X.dtype.str, tuple(axes), mode, zlib.crc32(X.data))
    pad = max(_SPECTRAL_MIN_PAD, *radii)
    cached = _SPECTRA.get(key, pad)
    if cached is None:
        cached = _padded_spectrum(X, axes, spatial, pad, max(radii), mode)
        _SPECTRA.put(key, *cached)
    pad, lengths, spectrum, centred = cached
    product = spectrum.copy()
    for i, (a, length, sigma, radius) in enumerate(zip(axes, lengths, sigmas, radii)):
        transfer = _kernel_spectrum(length, float(sigma), radius, i == len(axes) - 1)
        product *= transfer.reshape([-1 if k == a else 1 for k in range(X.ndim)])
    out = sp_fft.irfftn(product, s=lengths, axes=axes, overwrite_x=True)
    crop = [slice(None)] * X.ndim
    for a, n in zip(axes, spatial):
        crop[a] = slice(pad, pad + n)
    residual = out[tuple(crop)].astype(X.dtype)
    residual -= centred
    return residual


def _padded_spectrum(X, axes, spatial, pad, largest_radius, mode):
    """``(pad, fft lengths, float32 spectrum of the padded centred image, centred image)``."""
    if any(pad >= n for n in spatial):
        pad = largest_radius
    lengths = [sp_fft.next_fast_len(n + 2 * pad, real=True) for n in spatial]
    widths = [(0, 0)] * X.ndim
    for a, n, length in zip(axes, spatial, lengths):
        widths[a] = (pad, length - n - pad)
    mean = X.mean(axis=tuple(axes), keepdims=True)
    centred = X - mean
    padded = np.pad(centred.astype(_SPECTRAL_DTYPE), widths, mode=_PAD_MODES[mode])
    return pad, lengths, sp_fft.rfftn(padded, axes=axes), centred


@functools.lru_cache(maxsize=64)
def _kernel_spectrum(length, sigma, radius, last):
    """FFT of scipy's truncated, normalised 1-D Gaussian kernel on a circle of ``length``.

    The taps are those of :func:`scipy.ndimage.gaussian_filter1d` (``exp(-x**2 / (2
    sigma**2))`` for ``|x| <= radius``, divided by their sum); the kernel is symmetric,
    so correlation and convolution agree. ``last``: the axis the real FFT halves.
    """
    x = np.arange(-radius, radius + 1)
    taps = np.exp(-0.5 / sigma**2 * x.astype(float) ** 2)
    taps /= taps.sum()
    kernel = np.zeros(length)
    kernel[x % length] = taps
    spectrum = (sp_fft.rfft(kernel) if last else sp_fft.fft(kernel)).astype(
        np.result_type(_SPECTRAL_DTYPE, np.complex64))
    spectrum.flags.writeable = False  # shared through the cache
    return spectrum


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
