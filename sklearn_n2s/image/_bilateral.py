"""Bilateral filter (scikit-image's ``denoise_bilateral``) with a one-pass J-invariant form.

The bilateral filter predicts pixel ``i`` as the mean of its window weighted by distance
(``exp(-|j - i|**2 / (2 sigma_spatial**2))``) and by likeness of value
(``exp(-|x_i - x_j|**2 / (2 sigma_color**2))``). ``x_i`` enters twice: as the term
``j = i`` and in every likeness weight. The J-invariant form leaves the term ``j = i``
out and measures likeness against a guide that does not read ``x_i``: the masking
core's neighbour interpolation of ``i`` (the value the grid-masking route would have
put there). One pass over the window instead of ``stride**2`` bilateral filterings;
pixels outside the image are left out. A pixel whose weights all underflow is
predicted by the guide itself.
"""

from math import ceil

import numpy as np
from skimage.restoration import denoise_bilateral

from ..masking import invariant_predict, neighbour_interpolation
from ._base import BLIND_SPOT_CONSTRAINT, BaseImageDenoiser
from ._generic import noise_std_of
from ._limits import describe_shape, positive_int, positive_real


def window_size(sigma_spatial, win_size=None):
    """scikit-image's default window: ``max(5, 2 * ceil(3 * sigma_spatial) + 1)``."""
    if win_size is not None:
        return int(win_size)
    return max(5, 2 * int(ceil(3 * sigma_spatial)) + 1)


def bilateral_invariant(image, *, sigma_color, sigma_spatial, win_size=None,
                        multichannel=False):
    """Bilateral filter of one 2-D image with each pixel's own value left out.

    Parameters
    ----------
    image : float ndarray of shape ``(H, W[, n_channels])``
    sigma_color : float
        Spread of the likeness weights, in the image's units (Euclidean over channels).
    sigma_spatial : float
        Spread of the distance weights, in pixels.
    win_size : int or None
        Side of the window; None as scikit-image.
    multichannel : bool
        True when the last axis holds channels.

    Returns
    -------
    prediction : ndarray like ``image``
    """
    n_spatial = image.ndim - multichannel
    spatial_shape = image.shape[:n_spatial]
    radius = window_size(sigma_spatial, win_size) // 2
    guide = neighbour_interpolation(image[np.newaxis],
                                    channel_axis=-1 if multichannel else None)[0]
    numerator = np.zeros(image.shape, dtype=np.float64)
    denominator = np.zeros(spatial_shape, dtype=np.float64)
    per_pixel = (lambda w: w[..., np.newaxis]) if multichannel else (lambda w: w)
    inv_color = 1.0 / (2.0 * sigma_color * sigma_color)
    for delta in np.ndindex(*(2 * radius + 1,) * n_spatial):
        delta = tuple(int(d) - radius for d in delta)
        if not any(delta) or any(abs(d) >= s for d, s in zip(delta, spatial_shape)):
            continue
        src = tuple(slice(max(0, -d), s - max(0, d)) for d, s in zip(delta, spatial_shape))
        dst = tuple(slice(max(0, d), s - max(0, -d)) for d, s in zip(delta, spatial_shape))
        spatial = np.exp(-sum(d * d for d in delta) / (2.0 * sigma_spatial**2))
        squared = np.square(guide[src] - image[dst])
        if multichannel:
            squared = squared.sum(axis=-1)
        weight = spatial * np.exp(-squared * inv_color)
        denominator[src] += weight
        numerator[src] += per_pixel(weight) * image[dst]
    empty = denominator == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = numerator / per_pixel(np.where(empty, 1.0, denominator))
    out[empty] = guide[empty]
    return out


class JInvariantBilateral(BaseImageDenoiser):
    """Bilateral filter (``skimage.restoration.denoise_bilateral``) with an exact
    J-invariant form in one pass.

    :meth:`transform` with ``output='ordinary'`` is ``denoise_bilateral`` on each 2-D
    image (``mode='reflect'``, so that the border is not pulled towards zero). The
    J-invariant prediction weighs each neighbour by distance and by likeness to a guide
    that does not read the pixel (its neighbours' interpolation), leaving the pixel out
    (see :mod:`sklearn_n2s.image._bilateral`).

    Parameters
    ----------
    sigma_color : float, default=0.1
        Spread of the likeness weights, in the units of the input (grey levels for
        integer images, the values for floats). :meth:`default_grid` scales a grid to
        the noise of the data.
    sigma_spatial : float, default=1.0
        Spread of the distance weights, in pixels.
    win_size : int or None, default=None
        Side of the window; None: ``max(5, 2 * ceil(3 * sigma_spatial) + 1)``.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis (likeness is Euclidean over channels).
    output : {'shrink', 'ordinary', 'invariant', 'auto'}, default='shrink'
        What :meth:`transform` returns (measured by
        ``benchmarks/transform_quality.py``).
        ``'auto'`` returns, per image, the output with the lowest
        :meth:`estimated_risk` (the three are computed).
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'`` and
        ``'auto'`` and :meth:`estimated_risk`.
    spatial_ndim : {2} or None, default=None
        Number of spatial axes; ``denoise_bilateral`` filters 2-D images only.
    blind_spot : 'pixel', 'auto', int, sequence of (int or None) or bool ndarray, \
            default='pixel'
        What the J-invariant prediction hides around each pixel: ``'pixel'`` for
        white noise; for noise correlated between neighbours a footprint (half-extents
        per axis, None for a whole axis, or a boolean array) that the masking core hides
        around each coset pixel and fills from outside; ``'auto'`` measures it in
        ``fit`` (:func:`~sklearn_n2s.estimate_noise_correlation`).

    Attributes
    ----------
    n_spatial_dims_ : int
        Always 2.
    n_features_in_ : int
        Number of values per sample of the data seen in ``fit``.

    References
    ----------
    .. [1] C. Tomasi and R. Manduchi, "Bilateral filtering for gray and color images",
       ICCV 1998.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import FullSplit
    >>> from sklearn_n2s.image import JInvariantBilateral
    >>> rng = np.random.default_rng(0)
    >>> clean = np.kron(rng.integers(0, 2, (6, 6)), np.ones((8, 8))) * 40000 + 5000
    >>> X = rng.normal(clean, 3000).clip(0, 65535).astype(np.uint16)[np.newaxis]
    >>> grid = {"sigma_color": [300.0, 6000.0, 100000.0]}  # grey levels of the data
    >>> GridSearchCV(JInvariantBilateral(), grid, cv=FullSplit()).fit(X).best_params_
    {'sigma_color': 6000.0}
    """

    def __init__(self, sigma_color=0.1, *, sigma_spatial=1.0, win_size=None,
                 channel_axis=None, output="shrink", noise_variance=None,
                 spatial_ndim=None,
                 blind_spot="pixel"):
        self.sigma_color = sigma_color
        self.sigma_spatial = sigma_spatial
        self.win_size = win_size
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.spatial_ndim = spatial_ndim
        self.blind_spot = blind_spot

    _parameter_constraints: dict = {
        **BaseImageDenoiser._parameter_constraints,
        "blind_spot": BLIND_SPOT_CONSTRAINT,
        "sigma_color": [positive_real()],
        "sigma_spatial": [positive_real()],
        "win_size": [None, positive_int()],
    }

    @classmethod
    def default_grid(cls, X=None, *, noise_std=None, channel_axis=None):
        """A grid in the units of X: ``sigma_color = s * [1, 1.5, 2, 3, 4]`` (``s`` the
        noise standard deviation, given or estimated) times ``sigma_spatial`` in
        ``[1, 2, 3]`` pixels.

        Parameters
        ----------
        X : array-like or None
            The data, in its own units.
        noise_std : float or None, default=None
            Noise standard deviation in the units of X, if known.
        channel_axis : None or -1, default=None
            -1 when X has a trailing channel axis.

        Returns
        -------
        grid : dict
            ``{"sigma_color": [...], "sigma_spatial": [1.0, 2.0, 3.0]}``.
        """
        s = noise_std_of(X, noise_std, channel_axis)
        return {"sigma_color": [float(s * f) for f in (1.0, 1.5, 2.0, 3.0, 4.0)],
                "sigma_spatial": [1.0, 2.0, 3.0]}

    def _check_params_against_data(self, n_spatial):
        if n_spatial != 2:
            raise ValueError(
                f"JInvariantBilateral filters 2-D images (scikit-image's "
                f"denoise_bilateral), got {n_spatial} spatial axes; pass spatial_ndim=2 "
                "for one image (H, W) or a stack (n, H, W)."
            )

    def _check_spatial_shape(self, spatial_shape):
        if min(spatial_shape) < 2:
            raise ValueError(f"X has {describe_shape(spatial_shape)}: the bilateral "
                             "filter needs at least 2 pixels along every axis.")

    def _blockwise_halo(self, spatial_shape):
        # the window, plus the guide's one pixel around each neighbour's centre
        reach = window_size(self.sigma_spatial, self.win_size) // 2 + 1
        return (reach,) * len(spatial_shape), (1,) * len(spatial_shape)

    def _denoise(self, X, scale=1.0):
        out = np.empty_like(X)
        channels = {} if self.channel_axis is None else {"channel_axis": -1}
        for i, image in enumerate(X):
            out[i] = denoise_bilateral(
                image, win_size=self.win_size, sigma_color=float(self.sigma_color) * scale,
                sigma_spatial=self.sigma_spatial, mode="reflect", **channels)
        return out

    def _invariant(self, X, scale=1.0):
        spatial_shape = X.shape[1:X.ndim - (self.channel_axis is not None)]
        footprint = self._blind_spot_footprint(spatial_shape)
        if footprint is not None:
            # The one-pass form leaves out the pixel only: a structured blind spot goes
            # through the masking core instead (the footprint hidden and filled).
            return invariant_predict(lambda Xm: self._denoise(Xm, scale), X,
                                     channel_axis=self.channel_axis, footprint=footprint)[0]
        out = np.empty_like(X)
        for i, image in enumerate(X):
            out[i] = bilateral_invariant(
                image.astype(np.float64, copy=False),
                sigma_color=float(self.sigma_color) * scale,
                sigma_spatial=self.sigma_spatial, win_size=self.win_size,
                multichannel=self.channel_axis is not None)
        return out
