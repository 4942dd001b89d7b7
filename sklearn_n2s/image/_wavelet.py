"""Wavelet denoising (scikit-image's ``denoise_wavelet``) made J-invariant by masking."""

import hashlib
import threading
import warnings
from collections import OrderedDict
from numbers import Integral, Real

import numpy as np
import pywt
from skimage.restoration import denoise_wavelet
from sklearn.utils._param_validation import StrOptions

from ..masking import (
    FILLS,
    grid_offsets,
    invariant_predict,
    iter_grid_masked,
    n_grid_cosets,
    select_cosets,
)
from ..utils._noise import MAD_TO_SIGMA
from ..utils._validation import spatial_axes
from ._base import BLIND_SPOT_CONSTRAINT, BaseImageDenoiser
from ._limits import (
    NotBool,
    check_cosets_in_grid,
    check_stride_fits,
    describe_shape,
    positive_int,
)

METHODS = ("BayesShrink", "VisuShrink")


# ------------------------------------------------------------ batched wavelet shrinkage
def wavelet_levels_for(spatial_shape, wavelet, wavelet_levels):
    """Decomposition depth, with scikit-image's default (three below the maximum)."""
    if wavelet_levels is not None:
        return wavelet_levels
    return max(pywt.dwtn_max_level(spatial_shape, wavelet) - 3, 1)


def decompose(batch, wavelet, levels, n_spatial):
    """Wavelet decomposition of a batch of images whose last ``n_spatial`` axes are space."""
    axes = tuple(range(batch.ndim - n_spatial, batch.ndim))
    return pywt.wavedecn(batch, wavelet=wavelet, level=levels, axes=axes)


def _per_image(values, n_spatial):
    return np.asarray(values).reshape(np.shape(values) + (1,) * n_spatial)


def _estimate_sigma(finest_diagonal, n_spatial):
    """Robust noise estimate of every image in the batch, as scikit-image computes it."""
    flat = finest_diagonal.reshape(finest_diagonal.shape[: -n_spatial] + (-1,))
    sigmas = np.empty(flat.shape[:-1])
    for index in np.ndindex(*sigmas.shape):
        coeffs = flat[index]
        coeffs = coeffs[np.nonzero(coeffs)]
        sigmas[index] = np.median(np.abs(coeffs)) / MAD_TO_SIGMA if coeffs.size else 0.0
    return sigmas


def _threshold(coeffs, value, mode):
    """``pywt.threshold`` that leaves coefficients unchanged where the threshold is 0.

    A zero threshold (no noise found: every finest coefficient is zero) makes pywt's
    soft thresholding compute 0/0 on zero coefficients and return NaN.
    """
    if np.all(value > 0):
        return pywt.threshold(coeffs, value=value, mode=mode)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pywt.threshold(coeffs, value=value, mode=mode)
    return np.where(value > 0, out, coeffs)


def _thresholds(details, variance, *, method, spatial_shape, dvars=None):
    """Per-image threshold of every detail subband, as scikit-image chooses them.

    ``dvars`` (the mean square of each subband, which does not depend on ``sigma``) can
    be passed precomputed; it is computed here otherwise.
    """
    n_spatial = len(spatial_shape)
    spatial = tuple(range(-n_spatial, 0))
    thresholds = []
    for depth, level in enumerate(details):
        level_thr = {}
        for key, d in level.items():
            if method == "BayesShrink":
                dvar = dvars[depth][key] if dvars is not None else np.mean(d * d, axis=spatial)
                eps = np.finfo(d.dtype).eps
                thr = variance / np.sqrt(np.maximum(dvar - variance, eps))
            else:
                thr = np.sqrt(variance) * np.sqrt(2 * np.log(np.prod(spatial_shape)))
            level_thr[key] = _per_image(thr, n_spatial)
        thresholds.append(level_thr)
    return thresholds


def _noise_variance(details, sigma, batch_shape, n_spatial):
    if sigma is None:
        sigma = _estimate_sigma(details[-1]["d" * n_spatial], n_spatial)
    return np.broadcast_to(np.square(np.asarray(sigma, dtype=np.float64)), batch_shape)


def shrink_and_reconstruct(coeffs, *, wavelet, method, sigma, mode, n_spatial,
                           spatial_shape):
    """Threshold decomposed images (a batch) and reconstruct them.

    Matches ``skimage.restoration.denoise_wavelet`` applied to each image of the batch
    separately, with ``sigma`` a scalar, an array with one value per image, or None
    (estimated per image).
    """
    details = coeffs[1:]
    batch_shape = coeffs[0].shape[:-n_spatial]
    variance = _noise_variance(details, sigma, batch_shape, n_spatial)
    thresholds = _thresholds(details, variance, method=method, spatial_shape=spatial_shape)
    shrunk = [
        {key: _threshold(d, thr[key], mode) for key, d in level.items()}
        for level, thr in zip(details, thresholds)
    ]
    axes = tuple(range(len(batch_shape), len(batch_shape) + n_spatial))
    out = pywt.waverecn([coeffs[0]] + shrunk, wavelet, axes=axes)
    return out[(Ellipsis,) + tuple(slice(s) for s in spatial_shape)]


def haar_outputs_on_cosets(coeffs, coset_offsets, *, stride, method, sigma, mode,
                           spatial_shape, dvars):
    """Haar shrinkage of a batch of masked images, evaluated only on their own cosets.

    Batch entry ``k`` is the image masked on coset ``coset_offsets[k]`` (the leading
    axis of every coefficient array). Only the pixels of that coset are needed, so the
    finest level is not reconstructed in full: with the Haar wavelet a pixel at
    position ``2m + p`` (per axis) is ``2**(-n/2) * sum_key c_key[m] * (-1)**(p * [key
    is a detail along that axis])``. The coarser levels (a quarter of the data) go
    through ``pywt.waverecn``. Returns one array per coset, shaped like the coset.
    """
    n_spatial = len(spatial_shape)
    details = coeffs[1:]
    batch_shape = coeffs[0].shape[:-n_spatial]
    variance = _noise_variance(details, sigma, batch_shape, n_spatial)
    thresholds = _thresholds(details, variance, method=method, spatial_shape=spatial_shape,
                             dvars=dvars)
    finest = details[-1]
    if len(details) > 1:
        coarse = [coeffs[0]] + [
            {key: _threshold(d, thr[key], mode) for key, d in level.items()}
            for level, thr in zip(details[:-1], thresholds[:-1])
        ]
        axes = tuple(range(len(batch_shape), len(batch_shape) + n_spatial))
        approx = pywt.waverecn(coarse, "haar", axes=axes)
    else:
        approx = coeffs[0]
    fine_shape = finest["d" * n_spatial].shape[-n_spatial:]
    approx = approx[(Ellipsis,) + tuple(slice(s) for s in fine_shape)]
    finest_thr = thresholds[-1]
    scale = 2.0 ** (-n_spatial / 2)
    outputs = []
    for k, offsets in enumerate(coset_offsets):
        positions = [np.arange(o, size, stride) for o, size in zip(offsets, spatial_shape)]
        # Index the coset's batch entry first, then gather: numpy keeps the spatial axes
        # in place only when the fancy indices are adjacent.
        index = (Ellipsis,) + np.ix_(*(p // 2 for p in positions))
        signs = [np.where(p % 2 == 1, -1.0, 1.0) for p in positions]
        out = approx[k][index]
        for key, d in finest.items():
            value = _threshold(d[k][index], finest_thr[key][k], mode)
            for axis, char in enumerate(key):
                if char == "d":
                    shape = [1] * value.ndim
                    shape[value.ndim - n_spatial + axis] = -1
                    value = value * signs[axis].reshape(shape)
            out += value
        outputs.append(out * scale)
    return outputs


def subband_mean_squares(details, n_spatial):
    """Mean square of every detail subband, per image (BayesShrink's data term)."""
    spatial = tuple(range(-n_spatial, 0))
    return [{key: np.mean(d * d, axis=spatial) for key, d in level.items()}
            for level in details]


class WaveletDecompositionCache:
    """Wavelet decompositions of masked images, shared by the estimators that hold it.

    Pass one to :class:`JInvariantWavelet` as ``memory=`` (as a
    :class:`~sklearn.pipeline.Pipeline` takes ``memory=``). The masked images, hence
    their decompositions, depend on the data, the grid (``stride``), the ``fill``,
    ``channel_axis``, the ``wavelet`` and the depth, but not on ``sigma``, ``method``
    or ``mode``: a :class:`~sklearn.model_selection.GridSearchCV` over those, with one
    cache, masks and decomposes the data once and reuses it for every other candidate.
    Entries are keyed by a digest of the data and those parameters, so different data
    never reuse each other's decomposition; the least recently used entries are dropped
    beyond ``max_entries`` or ``max_bytes``.

    The cache is a *shared handle*, the way :class:`joblib.Memory` names one location:
    :func:`sklearn.base.clone` and :func:`copy.deepcopy` of an estimator holding it
    return estimators holding this very object (so the clones of a search share it),
    and it is safe to use from several threads (joblib's threading backend, dask's
    threaded scheduler). Pickling it (process-based parallelism) gives a new, empty
    cache with the same limits.

    Parameters
    ----------
    max_entries : int, default=2
        Most decompositions kept (one per dataset and grid setting).
    max_bytes : int, default=536870912
        Most bytes of coefficients kept in all (512 MiB); a decomposition larger than
        this is not kept.

    Attributes
    ----------
    hits : int
        Lookups answered from the cache.
    misses : int
        Lookups that had to mask and decompose.

    See Also
    --------
    JInvariantWavelet : the estimator that uses it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import clone
    >>> from sklearn_n2s import JInvariantWavelet, WaveletDecompositionCache
    >>> X = np.random.default_rng(0).normal(size=(1, 32, 32))
    >>> cache = WaveletDecompositionCache()
    >>> est = JInvariantWavelet(sigma=0.5, memory=cache).fit(X)
    >>> clone(est).memory is cache
    True
    >>> for sigma in (0.5, 1.0, 2.0):
    ...     _ = clone(est).set_params(sigma=sigma).fit(X).score(X)
    >>> cache.misses, cache.hits
    (1, 2)
    """

    def __init__(self, max_entries=2, max_bytes=512 * 2**20):
        for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}.")
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_bytes)
        self._init_state()

    def _init_state(self):
        self._entries = OrderedDict()  # key -> (value, nbytes)
        self._nbytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    # A shared handle: clones and deep copies of an estimator share the one cache.
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __getstate__(self):
        return {"max_entries": self.max_entries, "max_bytes": self.max_bytes}

    def __setstate__(self, state):
        self.max_entries = state["max_entries"]
        self.max_bytes = state["max_bytes"]
        self._init_state()

    def __repr__(self):
        return (f"{type(self).__name__}(max_entries={self.max_entries}, "
                f"max_bytes={self.max_bytes})")

    def __len__(self):
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self):
        """Bytes of coefficients held now."""
        with self._lock:
            return self._nbytes

    def get(self, key):
        """The entry stored under ``key``, or None (counted as a hit or a miss).

        Parameters
        ----------
        key : hashable
            From the masked decomposition's inputs and settings.

        Returns
        -------
        value : object or None
        """
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key][0]
            self.misses += 1
            return None

    def put(self, key, value, nbytes):
        """Store ``value`` (``nbytes`` large), dropping the least recently used entries.

        Parameters
        ----------
        key : hashable
        value : object
            Treated as read-only by every reader.
        nbytes : int
            Its size; an entry larger than ``max_bytes`` is not stored.
        """
        if nbytes > self.max_bytes or self.max_entries == 0:
            return
        with self._lock:
            if key in self._entries:
                self._nbytes -= self._entries.pop(key)[1]
            self._entries[key] = (value, nbytes)
            self._nbytes += nbytes
            while len(self._entries) > self.max_entries or self._nbytes > self.max_bytes:
                self._nbytes -= self._entries.popitem(last=False)[1][1]

    def clear(self):
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0
            self.hits = 0
            self.misses = 0


def _data_key(X):
    """Digest, shape and dtype of an array: equal only for equal data."""
    digest = hashlib.blake2b(np.ascontiguousarray(X).view(np.uint8), digest_size=16)
    return (digest.hexdigest(), X.shape, X.dtype.str)


def _read_only(coeffs):
    """Mark the coefficient arrays of a decomposition read-only (they are shared)."""
    coeffs[0].flags.writeable = False
    for level in coeffs[1:]:
        for d in level.values():
            d.flags.writeable = False
    return coeffs


def _coeffs_nbytes(coeffs):
    return coeffs[0].nbytes + sum(d.nbytes for level in coeffs[1:] for d in level.values())


class JInvariantWavelet(BaseImageDenoiser):
    """Wavelet shrinkage (``skimage.restoration.denoise_wavelet``) with a J-invariant form.

    :meth:`transform` with ``output='ordinary'`` is ``denoise_wavelet`` on each image.
    The J-invariant prediction comes from the shared masking core: a grid with spacing
    ``stride`` along every spatial axis splits the pixels into ``stride**ndim`` cosets;
    each coset is replaced by its neighbours' interpolation (``fill``), the image is
    denoised, and the coset's pixels are kept. All cosets of all images go through one
    batched decomposition. The masked images do not depend on ``sigma``, ``method`` or
    ``mode``: with a :class:`WaveletDecompositionCache` as ``memory``, a sweep over
    those decomposes the data once.

    Parameters
    ----------
    sigma : float or None, default=None
        Noise standard deviation used for the thresholds, in the units of the input
        (for integer images it is rescaled like scikit-image's ``rescale_sigma=True``).
        None estimates it from each image.
    wavelet : str, default='db1'
        Any discrete wavelet of PyWavelets.
    mode : {'soft', 'hard'}, default='soft'
        Thresholding mode.
    method : {'BayesShrink', 'VisuShrink'}, default='BayesShrink'
    wavelet_levels : int or None, default=None
        Decomposition depth; None means three less than the maximum. A depth beyond
        what :func:`pywt.dwtn_max_level` allows for the image (and beyond 1) is refused
        with a ``ValueError`` by ``fit`` and by every call that gets such an image.
    convert2ycbcr : bool, default=False
        Denoise colour images in YCbCr (needs ``channel_axis=-1``; slower, unbatched).
    rescale_sigma : bool, default=True
        Interpret ``sigma`` in the units of integer input, as scikit-image does.
    stride : int, default=4
        Grid spacing of the masking partition: ``stride**ndim`` cosets. A stride of
        more than twice the image's largest side (cosets that are almost all empty) is
        refused with a ``ValueError`` by ``fit`` and by every call that gets such an
        image.
    fill : {'interpolate', 'median', 'zero', 'mean', 'uniform'}, default='interpolate'
        How masked pixels are replaced, see :mod:`sklearn_n2s.masking`.
    cosets : None or int, default=None
        Cosets used by :meth:`score` and the scorer: None for all (the exact loss), an
        int for that many (an approximate loss, faster), at most ``stride**ndim``.
        :meth:`invariant_transform` always predicts every pixel.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis.
    output : {'shrink', 'ordinary', 'invariant', 'auto'}, default='shrink'
        What :meth:`transform` returns, see :mod:`sklearn_n2s.base`; ``'auto'``
        returns, per image, the output with the lowest :meth:`estimated_risk` (the
        three are computed).
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'`` and
        ``'auto'`` and :meth:`estimated_risk`; estimated per image when None.
    memory : WaveletDecompositionCache or None, default=None
        Where the decompositions of the masked images are kept between calls. None
        keeps nothing: every call masks and decomposes again, and no state outlives
        the call. A cache is shared, not copied, by :func:`~sklearn.base.clone`, so
        the clones a :class:`~sklearn.model_selection.GridSearchCV` makes reuse one
        another's decompositions.
    spatial_ndim : {1, 2, 3} or None, default=None
        Number of spatial axes. When given, a single image ``(*spatial[, n_channels])``
        is accepted as a stack of one (the output has the input's shape). None reads
        them from ``X.ndim``: a 2-D array is then n one-dimensional signals, and
        ``fit`` warns (:class:`~sklearn_n2s.image.SpatialAxesWarning`).
    blind_spot : 'pixel', 'auto', int, sequence of (int or None) or bool ndarray, \
            default='pixel'
        What the J-invariant prediction hides around each pixel (see
        :class:`~sklearn_n2s.image.DonutMedian`): for correlated noise, a footprint the
        masking core hides around each coset pixel and fills from outside
        (:func:`sklearn_n2s.masking.iter_footprint_masked`, more cosets, no ``memory``);
        ``'auto'`` measures it in ``fit``.

    Attributes
    ----------
    blind_spot_ : str, tuple or ndarray
        The blind spot used (the measured extents for ``'auto'``).
    noise_correlation_ : NoiseCorrelation
        Only for ``blind_spot='auto'``: the measurement.
    n_spatial_dims_ : int
        Number of spatial axes of the data seen in ``fit`` (1 to 3); later data must
        have as many, of any size.
    n_features_in_ : int
        Number of values per sample of the data seen in ``fit`` (pixels times
        channels).

    See Also
    --------
    WaveletDecompositionCache : the ``memory`` a parameter sweep shares.
    skimage.restoration.calibrate_denoiser : scikit-image's masking calibration.

    References
    ----------
    .. [1] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       ICML 2019, arXiv:1901.11365.

    Examples
    --------
    The self-supervised loss of pure noise (clean image 0, variance 1) is at least the
    noise variance, whatever ``sigma``; the search picks the strongest thresholds:

    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import FullSplit, JInvariantWavelet, WaveletDecompositionCache
    >>> X = np.random.default_rng(0).normal(size=(1, 64, 64))
    >>> search = GridSearchCV(JInvariantWavelet(memory=WaveletDecompositionCache()),
    ...                       {"sigma": [0.25, 1.0, 4.0]}, cv=FullSplit()).fit(X)
    >>> search.best_params_
    {'sigma': 4.0}
    >>> bool(-search.best_score_ >= 1.0)
    True
    """

    def __init__(self, sigma=None, *, wavelet="db1", mode="soft", method="BayesShrink",
                 wavelet_levels=None, convert2ycbcr=False, rescale_sigma=True, stride=4,
                 fill="interpolate", cosets=None, channel_axis=None, output="shrink",
                 noise_variance=None, memory=None, spatial_ndim=None, blind_spot="pixel"):
        self.sigma = sigma
        self.wavelet = wavelet
        self.mode = mode
        self.method = method
        self.wavelet_levels = wavelet_levels
        self.convert2ycbcr = convert2ycbcr
        self.rescale_sigma = rescale_sigma
        self.stride = stride
        self.fill = fill
        self.cosets = cosets
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.memory = memory
        self.spatial_ndim = spatial_ndim
        self.blind_spot = blind_spot

    # ------------------------------------------------------------------ parameters
    _parameter_constraints: dict = {
        **BaseImageDenoiser._parameter_constraints,
        "sigma": [None, NotBool(Real, 0, np.inf, closed="neither")],
        "wavelet": [StrOptions(set(pywt.wavelist(kind="discrete")))],
        "mode": [StrOptions({"soft", "hard"})],
        "method": [StrOptions(set(METHODS))],
        "wavelet_levels": [None, positive_int()],
        "convert2ycbcr": ["boolean"],
        "rescale_sigma": ["boolean"],
        "stride": [NotBool(Integral, 2, None, closed="left")],
        "fill": [StrOptions(set(FILLS))],
        "cosets": [None, positive_int()],
        "memory": [None, WaveletDecompositionCache],
        "blind_spot": BLIND_SPOT_CONSTRAINT,
    }

    def _check_params_against_data(self, n_spatial):
        if self.convert2ycbcr and self.channel_axis is None:
            raise ValueError("convert2ycbcr=True requires channel_axis=-1.")
        check_cosets_in_grid(self.cosets, self.stride, n_spatial)

    def _check_spatial_shape(self, spatial_shape):
        check_stride_fits(self.stride, spatial_shape)
        if self.wavelet_levels is not None:
            deepest = pywt.dwtn_max_level(spatial_shape, self.wavelet)
            if self.wavelet_levels > max(deepest, 1):
                raise ValueError(
                    f"wavelet_levels={self.wavelet_levels} is deeper than the image allows: "
                    f"pywt.dwtn_max_level gives {deepest} for wavelet={self.wavelet!r} on "
                    f"X with {describe_shape(spatial_shape)}. Use wavelet_levels <= "
                    f"{max(deepest, 1)} (or None)."
                )

    def _blockwise_halo(self, spatial_shape):
        levels = wavelet_levels_for(spatial_shape, self.wavelet, self.wavelet_levels)
        filter_length = pywt.Wavelet(self.wavelet).dec_len
        # A level-j coefficient spans (filter_length - 1) * (2**j - 1) + 1 input pixels;
        # the masking fill (interpolate/median) reads one more pixel around each masked
        # pixel. Chunks start on multiples of 2**levels to keep the dyadic alignment.
        support = (filter_length - 1) * (2**levels - 1) + 1
        align = 2**levels
        halo = -(-support // align) * align
        return (halo,) * len(spatial_shape), (align,) * len(spatial_shape)

    def _blockwise_block_estimator(self, spatial_shape):
        block_estimator = super()._blockwise_block_estimator(spatial_shape)
        # Blocks must decompose as deep as the whole image does.
        block_estimator.wavelet_levels = int(
            wavelet_levels_for(spatial_shape, self.wavelet, self.wavelet_levels))
        return block_estimator

    def _min_spatial_size(self):
        return 2

    def _sigma(self, scale):
        if self.sigma is None:
            return None
        return float(self.sigma) * (scale if self.rescale_sigma else 1.0)

    # ------------------------------------------------------------------ denoising
    def _denoise(self, X, scale=1.0):
        sigma = self._sigma(scale)
        out = np.empty_like(X)
        for i, image in enumerate(X):
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # handled just below
                denoised = denoise_wavelet(
                    image, sigma=sigma, wavelet=self.wavelet, mode=self.mode,
                    wavelet_levels=self.wavelet_levels, convert2ycbcr=self.convert2ycbcr,
                    method=self.method, rescale_sigma=False, channel_axis=self.channel_axis,
                )
            # scikit-image returns NaN when it finds no noise at all (every finest
            # coefficient zero, so its estimate is a median of nothing): nothing to
            # remove, the image is its own denoised version.
            out[i] = image if np.isnan(denoised).any() else denoised
        return out

    def _invariant(self, X, scale=1.0):
        return self._invariant_covered(X, scale, cosets=None)[0]

    def _invariant_covered(self, X, scale=1.0, cosets="param"):
        cosets = self.cosets if cosets == "param" else cosets
        spatial_shape = X.shape[1:X.ndim - (self.channel_axis is not None)]
        footprint = self._blind_spot_footprint(spatial_shape)
        if self.convert2ycbcr or footprint is not None:
            return invariant_predict(
                lambda Xm: self._denoise(Xm, scale), X, stride=self.stride, fill=self.fill,
                channel_axis=self.channel_axis, cosets=cosets, random_state=0,
                footprint=footprint,
            )
        return self._batched_invariant(X, scale, cosets)

    def _batched_invariant(self, X, scale, cosets):
        """All masked images of all cosets denoised as one batch of decompositions."""
        n_spatial = X.ndim - 1 - (self.channel_axis is not None)
        axes = spatial_axes(X.ndim, self.channel_axis)
        spatial_shape = tuple(X.shape[a] for a in axes)
        chosen = select_cosets(n_grid_cosets(self.stride, n_spatial), cosets)
        levels = wavelet_levels_for(spatial_shape, self.wavelet, self.wavelet_levels)
        slices, coeffs, dvars = self._masked_decomposition(X, chosen, levels, n_spatial)
        prediction = np.array(X, copy=True)
        covered = np.zeros(X.shape, dtype=bool)
        if self.wavelet in ("haar", "db1") and self.stride % 2 == 0:
            offsets = [grid_offsets(self.stride, n_spatial, c) for c in chosen]
            per_coset = haar_outputs_on_cosets(
                coeffs, offsets, stride=self.stride, method=self.method,
                sigma=self._sigma(scale), mode=self.mode, spatial_shape=spatial_shape,
                dvars=dvars,
            )
            for sl, out in zip(slices, per_coset):
                prediction[sl] = _channels_last(out, self.channel_axis)
                covered[sl] = True
        else:
            denoised = shrink_and_reconstruct(
                coeffs, wavelet=self.wavelet, method=self.method, sigma=self._sigma(scale),
                mode=self.mode, n_spatial=n_spatial, spatial_shape=spatial_shape,
            )
            for sl, out in zip(slices, denoised):
                out = _channels_last(out, self.channel_axis)
                prediction[sl] = out[sl]
                covered[sl] = True
        return prediction, (None if covered.all() else covered)

    def _masked_decomposition(self, X, chosen, levels, n_spatial):
        """Decompositions of every masked image, from ``memory`` when X was seen before."""
        memory = self.memory
        if memory is None:
            return self._decompose_masked(X, chosen, levels, n_spatial)
        key = _data_key(X) + (self.stride, self.fill, self.channel_axis, tuple(chosen),
                              self.wavelet, levels)
        entry = memory.get(key)
        if entry is None:
            entry = self._decompose_masked(X, chosen, levels, n_spatial)
            _read_only(entry[1])
            memory.put(key, entry, nbytes=_coeffs_nbytes(entry[1]))
        return entry

    def _decompose_masked(self, X, chosen, levels, n_spatial):
        """``(slices, coeffs, dvars)``: every masked image of the chosen cosets, decomposed
        as one batch, and the mean square of every detail subband."""
        slices, masked = [], []
        for _, sl, Xm in iter_grid_masked(X, stride=self.stride, fill=self.fill,
                                          channel_axis=self.channel_axis,
                                          cosets=chosen, random_state=0):
            slices.append(sl)
            masked.append(_channels_first(Xm, self.channel_axis))
        coeffs = decompose(np.stack(masked), self.wavelet, levels, n_spatial)
        return slices, coeffs, subband_mean_squares(coeffs[1:], n_spatial)


def _channels_first(X, channel_axis):
    return X if channel_axis is None else np.moveaxis(X, -1, 1)


def _channels_last(X, channel_axis):
    return X if channel_axis is None else np.moveaxis(X, 1, -1)
