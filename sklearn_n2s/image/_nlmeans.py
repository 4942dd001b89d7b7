"""Non-local means (scikit-image's ``denoise_nl_means``) with a one-pass J-invariant form.

Non-local means predicts a pixel ``i`` as the weighted mean of the pixels ``j`` of its
search window, each weighted by how alike the patches around ``i`` and ``j`` are:

    w_ij = exp(-max(d_ij, 0) / h**2),   d_ij = mean_k ((x_{i+k} - x_{j+k})**2 - 2 sigma**2)

(the mean over the patch offsets ``k``, uniform in ``fast_mode``, Gaussian otherwise, as
in scikit-image). ``x_i`` enters that prediction three times: as the term ``j = i``, as
the patch term ``k = 0``, and as the term ``k = i - j`` when ``j`` is within a patch
radius of ``i``. Leaving those out (and renormalising the patch mean over the terms
left) gives a prediction of ``x_i`` that never reads ``x_i``: exact J-invariance for
single pixels in one pass over the search window, instead of one full filtering per
grid coset (``stride**ndim`` of them for scikit-image's exact loss). Pixel pairs that
leave the image are left out rather than mirrored (a mirrored copy could be ``x_i``).
Weights beyond scikit-image's cut-off (``d / h**2 > 5``) are zero, as there. The
masking core's neighbour interpolation of ``i`` (which does not read ``x_i``) joins the
mean with weight 1, as the masked route would have it at the centre at patch distance
0 (on the camera image this is worth up to 0.9 dB at small ``h`` and never costs); it
also predicts a pixel whose other weights are all zero.
"""

from numbers import Real

import numpy as np
from scipy import ndimage as ndi
from skimage.restoration import denoise_nl_means

from ..masking import invariant_predict, neighbour_interpolation
from ._base import BLIND_SPOT_CONSTRAINT, BaseImageDenoiser
from ._generic import noise_std_of
from ._limits import NotBool, describe_shape, positive_int, positive_real

# scikit-image's cut-off: a patch distance above this (in units of h**2) weighs zero.
DISTANCE_CUTOFF = 5.0


def _patch_kernel_1d(patch_size, fast_mode):
    """One-dimensional patch weights: uniform, or scikit-image's Gaussian of the slow mode."""
    radius = patch_size // 2
    if fast_mode:
        return np.ones(2 * radius + 1)
    spread = (patch_size - 1.0) / 4.0
    offsets = np.arange(-radius, radius + 1)
    return np.exp(-offsets**2 / (2 * spread * spread)) if spread > 0 else np.ones(1)


def _pair_slices(shape, delta):
    """Slices of ``p`` and ``p + delta`` for the pairs with both ends inside."""
    src, dst = [], []
    for size, d in zip(shape, delta):
        src.append(slice(max(0, -d), size - max(0, d)))
        dst.append(slice(max(0, d), size - max(0, -d)))
    return tuple(src), tuple(dst)


def _separable(values, kernel, n_spatial):
    uniform = bool(np.all(kernel == kernel[0]))
    for axis in range(n_spatial):
        if uniform:  # a running sum, whatever the patch size
            values = ndi.uniform_filter1d(values, len(kernel), axis=axis, mode="constant",
                                          cval=0.0) * (len(kernel) * float(kernel[0]))
        else:
            values = ndi.correlate1d(values, kernel, axis=axis, mode="constant", cval=0.0)
    return values


def _box_count(shape, region, kernel):
    """Patch-weighted count of the pixels of the box ``region`` around every pixel
    (an outer product of one-dimensional counts)."""
    count = np.ones((1,) * len(shape))
    for axis, (size, sl) in enumerate(zip(shape, region)):
        inside = np.zeros(size)
        inside[sl] = 1.0
        line = np.correlate(np.pad(inside, len(kernel) // 2), kernel, mode="valid")
        count = count * line.reshape((-1,) + (1,) * (len(shape) - axis - 1))
    return count


def _inside_shifted(src, delta):
    """Slices, within the pair region ``src``, of the ``i`` whose ``i - delta`` is also
    in it, and of those ``i - delta``."""
    here, there = [], []
    for sl, d in zip(src, delta):
        start, stop = sl.start, sl.stop
        here.append(slice(max(start, start + d), min(stop, stop + d)))
        there.append(slice(max(start, start + d) - d, min(stop, stop + d) - d))
    return tuple(here), tuple(there)


def _direction_weights(common, count, terms, src, delta, pair_weight, scale):
    """Weights of the pairs ``(i, i + delta)`` for ``i`` in ``src``, seen from ``i``.

    ``common`` and ``count`` already lack the ``k = 0`` term; the term ``k = -delta``
    (``terms[i - delta]``) is removed here when it lies within the patch.
    """
    total = common.copy()
    kept = count.copy()
    if pair_weight:
        here, there = _inside_shifted(src, delta)
        local = tuple(slice(h.start - s.start, h.stop - s.start) for h, s in zip(here, src))
        total[local] -= pair_weight * terms[there]
        kept[local] -= pair_weight
    np.maximum(total, 0.0, out=total)
    with np.errstate(invalid="ignore", divide="ignore"):
        distance = np.where(kept > 1e-12, total / kept, 0.0)
    distance *= scale
    weight = np.exp(-distance)
    weight[distance > DISTANCE_CUTOFF] = 0.0
    return weight


def nl_means_invariant(image, *, patch_size, patch_distance, h, sigma=0.0, fast_mode=True,
                       multichannel=False, guide_weight=0.0):
    """Non-local means of one image with every pixel's own value left out (see module).

    Each pair of pixels ``(i, j = i + delta)`` shares one patch sum (computed once for
    ``delta`` and ``-delta``); the two directions differ only by the terms each
    leaves out.

    Parameters
    ----------
    image : float ndarray of shape ``(*spatial[, n_channels])``
    patch_size, patch_distance : int
        Side of the patches, and the search radius, in pixels.
    h, sigma : float
        Cut-off distance and noise standard deviation, in the image's units.
    fast_mode : bool
        Uniform (True) or Gaussian (False) patch weights.
    multichannel : bool
        True when the last axis holds channels (the distance sums them).
    guide_weight : float, default=0.0
        Weight of each pixel's neighbour interpolation in its own mean (the
        estimator uses 1).

    Returns
    -------
    prediction : ndarray like ``image``
        Each pixel predicted from the others only.
    """
    n_spatial = image.ndim - multichannel
    spatial_shape = image.shape[:n_spatial]
    n_channels = image.shape[-1] if multichannel else 1
    radius = patch_size // 2
    kernel = _patch_kernel_1d(2 * radius + 1, fast_mode)
    centre_weight = float(kernel[radius]) ** n_spatial
    noise_term = 2.0 * sigma * sigma * n_channels
    scale = 1.0 / (n_channels * h * h)
    numerator = np.zeros(image.shape, dtype=np.float64)
    denominator = np.zeros(spatial_shape, dtype=np.float64)
    terms = np.zeros(spatial_shape, dtype=np.float64)
    per_pixel = (lambda w: w[..., np.newaxis]) if multichannel else (lambda w: w)
    guide = None
    if guide_weight:
        guide = neighbour_interpolation(image[np.newaxis],
                                        channel_axis=-1 if multichannel else None)[0]
    for delta in np.ndindex(*(2 * patch_distance + 1,) * n_spatial):
        delta = tuple(int(d) - patch_distance for d in delta)
        # half of the offsets: the first nonzero component positive
        if not any(delta) or next(d for d in delta if d) < 0:
            continue
        if any(abs(d) >= s for d, s in zip(delta, spatial_shape)):
            continue
        src, dst = _pair_slices(spatial_shape, delta)
        squared = np.square(image[src] - image[dst])
        if multichannel:
            squared = squared.sum(axis=-1)
        terms.fill(0.0)
        terms[src] = squared - noise_term
        within = all(abs(d) <= radius for d in delta)
        pair_weight = (float(np.prod([kernel[radius - d] for d in delta])) if within
                       else 0.0)
        common = _separable(terms, kernel, n_spatial)[src] - centre_weight * terms[src]
        count = _box_count(spatial_shape, src, kernel)[src] - centre_weight
        forward = _direction_weights(common, count, terms, src, delta, pair_weight, scale)
        backward = (forward if not pair_weight else _direction_weights(
            common, count, terms, src, tuple(-d for d in delta), pair_weight, scale))
        # pixel i (in src) from x_{i+delta}; pixel i + delta (in dst) from x_i
        denominator[src] += forward
        numerator[src] += per_pixel(forward) * image[dst]
        denominator[dst] += backward
        numerator[dst] += per_pixel(backward) * image[src]
    if guide_weight:
        numerator += guide_weight * guide
        denominator += guide_weight
    empty = denominator == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = numerator / per_pixel(np.where(empty, 1.0, denominator))
    if np.any(empty):
        if guide is None:
            guide = neighbour_interpolation(image[np.newaxis],
                                            channel_axis=-1 if multichannel else None)[0]
        out[empty] = guide[empty]
    return out


class JInvariantNLMeans(BaseImageDenoiser):
    """Non-local means (``skimage.restoration.denoise_nl_means``) with an exact J-invariant
    form in one pass.

    :meth:`transform` with ``output='ordinary'`` is ``denoise_nl_means`` on each
    image. The J-invariant prediction, which
    :meth:`score` compares with the data, is non-local means with each pixel's own
    value left out of its weights and of its mean (see :mod:`sklearn_n2s.image._nlmeans`):
    one pass over the search window instead of one filtering per grid coset, so an
    exact-loss sweep costs about one ``denoise_nl_means`` call per candidate where
    scikit-image's ``calibrate_denoiser(..., approximate_loss=False)`` makes 16 (2-D).

    Parameters
    ----------
    h : float, default=0.1
        Cut-off distance, in the units of the input (grey levels: 0..255 for uint8,
        0..65535 for uint16, the values themselves for floats); a value near the noise
        standard deviation is typical (scikit-image: ``0.8 * sigma`` with ``sigma``
        given). :meth:`default_grid` scales a grid to the data.
    patch_size : int, default=7
        Side of the patches compared, in pixels.
    patch_distance : int, default=11
        Search radius in pixels: ``(2 * patch_distance + 1)**ndim`` candidates.
    fast_mode : bool, default=True
        Uniform patch weights (scikit-image's fast mode); False weighs the patch
        offsets with scikit-image's Gaussian (3-D with channels needs True).
    sigma : float, default=0.0
        Noise standard deviation subtracted from the patch distances, in the units
        of the input (0: none).
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis (distances sum the channels).
    output : {'shrink', 'ordinary', 'invariant', 'auto'}, default='shrink'
        What :meth:`transform` returns. The ordinary filter at the self-supervised
        pick can be better (camera at 512x512, Gaussian noise 0.1: 28.73 against
        28.42 dB) but also far worse (up to 2.4 dB below the best output on the grid,
        median 0.84 dB, on the 20 cases of ``benchmarks/transform_quality.py`` at
        128x128), where the shrink mix is a median 0.01 dB, at worst 1.57 dB, below it.
        ``'auto'`` returns, per image, the output with the lowest
        :meth:`estimated_risk` (the three are computed).
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'`` and
        ``'auto'`` and :meth:`estimated_risk`.
    spatial_ndim : {2, 3} or None, default=None
        Number of spatial axes; when given, one image is accepted as a stack of one.
        ``denoise_nl_means`` takes 2-D and 3-D images, so 1-D signals are refused.
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
        Number of spatial axes of the data seen in ``fit`` (2 or 3).
    n_features_in_ : int
        Number of values per sample of the data seen in ``fit``.

    See Also
    --------
    JInvariantDenoiser : any function through the grid cosets.
    skimage.restoration.denoise_nl_means : the ordinary filter.

    References
    ----------
    .. [1] A. Buades, B. Coll and J.-M. Morel, "A non-local algorithm for image
       denoising", CVPR 2005.
    .. [2] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       ICML 2019, arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import FullSplit
    >>> from sklearn_n2s.image import JInvariantNLMeans
    >>> rng = np.random.default_rng(0)
    >>> clean = np.kron(rng.integers(0, 2, (6, 6)), np.ones((8, 8))) * 40000 + 5000
    >>> X = rng.normal(clean, 3000).clip(0, 65535).astype(np.uint16)[np.newaxis]
    >>> grid = {"h": [300.0, 3000.0, 30000.0]}  # grey levels of the uint16 data
    >>> search = GridSearchCV(JInvariantNLMeans(patch_distance=4), grid, cv=FullSplit())
    >>> search.fit(X).best_params_
    {'h': 3000.0}
    """

    def __init__(self, h=0.1, *, patch_size=7, patch_distance=11, fast_mode=True, sigma=0.0,
                 channel_axis=None, output="shrink", noise_variance=None,
                 spatial_ndim=None,
                 blind_spot="pixel"):
        self.h = h
        self.patch_size = patch_size
        self.patch_distance = patch_distance
        self.fast_mode = fast_mode
        self.sigma = sigma
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.spatial_ndim = spatial_ndim
        self.blind_spot = blind_spot

    _parameter_constraints: dict = {
        **BaseImageDenoiser._parameter_constraints,
        "blind_spot": BLIND_SPOT_CONSTRAINT,
        "h": [positive_real()],
        "patch_size": [positive_int()],
        "patch_distance": [positive_int()],
        "fast_mode": ["boolean"],
        "sigma": [NotBool(Real, 0, None, closed="left")],
    }

    @classmethod
    def default_grid(cls, X=None, *, noise_std=None, channel_axis=None):
        """A search grid for ``h`` in the units of X, with 5x5 patches searched 6 pixels
        away.

        ``h`` around scikit-image's rule of thumb (near the noise standard deviation
        ``s``): ``s * [0.4, 0.55, 0.7, 0.85, 1.0, 1.2, 1.4]``, ``s`` estimated from X
        (:func:`sklearn_n2s.estimate_noise_variance`) unless given. ``patch_size=5``
        and ``patch_distance=6`` (fixed in the grid; the setting of
        ``benchmarks/bench_classics.py``) cost about a quarter of scikit-image's
        defaults (7, 11).

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels]) or None
            The data, in its own units (uint8, uint16 or float).
        noise_std : float or None, default=None
            Noise standard deviation in the units of X, if known.
        channel_axis : None or -1, default=None
            -1 when X has a trailing channel axis.

        Returns
        -------
        grid : dict
            ``{"h": [...], "patch_size": [5], "patch_distance": [6]}``, for
            :class:`~sklearn.model_selection.GridSearchCV`.
        """
        s = noise_std_of(X, noise_std, channel_axis)
        return {"h": [float(s * f) for f in (0.4, 0.55, 0.7, 0.85, 1.0, 1.2, 1.4)],
                "patch_size": [5], "patch_distance": [6]}

    def _check_params_against_data(self, n_spatial):
        if n_spatial not in (2, 3):
            raise ValueError(
                f"JInvariantNLMeans needs 2 or 3 spatial axes (scikit-image's "
                f"denoise_nl_means), got {n_spatial}; pass spatial_ndim=2 for one image "
                "(H, W) or a stack (n, H, W)."
            )
        if n_spatial == 3 and self.channel_axis is not None and not self.fast_mode:
            raise ValueError("3-D images with channels need fast_mode=True "
                             "(as scikit-image's denoise_nl_means).")

    def _check_spatial_shape(self, spatial_shape):
        if min(spatial_shape) < 2:
            raise ValueError(f"X has {describe_shape(spatial_shape)}: NL-means needs at "
                             "least 2 pixels along every spatial axis.")

    def _blockwise_halo(self, spatial_shape):
        reach = self.patch_distance + self.patch_size // 2
        return (reach,) * len(spatial_shape), (1,) * len(spatial_shape)

    def _kwargs(self, scale):
        return dict(patch_size=self.patch_size, patch_distance=self.patch_distance,
                    h=float(self.h) * scale, sigma=float(self.sigma) * scale,
                    fast_mode=self.fast_mode)

    def _denoise(self, X, scale=1.0):
        out = np.empty_like(X)
        channels = {} if self.channel_axis is None else {"channel_axis": -1}
        for i, image in enumerate(X):
            out[i] = denoise_nl_means(image, preserve_range=True, **self._kwargs(scale),
                                      **channels)
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
            out[i] = nl_means_invariant(image.astype(np.float64, copy=False),
                                        multichannel=self.channel_axis is not None,
                                        guide_weight=1.0, **self._kwargs(scale))
        return out
