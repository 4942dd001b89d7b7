"""Any denoising function made J-invariant by the masking core, as an estimator.

:class:`JInvariantDenoiser` wraps a user's function ``f(image, **kwargs) -> image``;
the classical families without a closed form (TV, BM3D) are thin subclasses of the
same machinery (:class:`MaskedFilterDenoiser`).

How a J-invariant prediction is made
------------------------------------
A grid with spacing ``stride`` along every spatial axis splits the pixels into
``stride**ndim`` cosets. For each coset the image is copied, the coset's pixels are
replaced by a fill that does not read them (:mod:`sklearn_n2s.masking`), the function
is run, and the output is kept on the coset only. The masked inputs do not depend on
the function's parameters: with a :class:`MaskedImageCache` as ``memory`` a
:class:`~sklearn.model_selection.GridSearchCV` masks the data once and every candidate
reuses the masked images.

How the function's keyword arguments are searched
-------------------------------------------------
Extra keyword arguments of :class:`JInvariantDenoiser` (``h=0.1``) are the function's:
they are stored as attributes, reported by ``get_params``, accepted by ``set_params``
(also names not given at construction, when the function takes them) and kept by
:func:`~sklearn.base.clone`, so ``GridSearchCV(JInvariantDenoiser(f), {"h": [...]})``
works as for any scikit-learn parameter. The estimator's own parameters (``stride``,
``fill``...) come first: a function keyword with one of their names cannot be passed
this way (bind it with :func:`functools.partial`).
"""

import hashlib
import inspect
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import StrOptions

from ..masking import (
    FILLS,
    iter_footprint_masked,
    iter_grid_masked,
    n_footprint_cosets,
    n_grid_cosets,
    select_cosets,
)
from ..utils._noise import estimate_noise_variance
from ._base import BLIND_SPOT_CONSTRAINT, BaseImageDenoiser
from ._limits import (
    NotBool,
    check_cosets_in_grid,
    check_stride_fits,
    positive_int,
)
from ._wavelet import WaveletDecompositionCache


class MaskedImageCache(WaveletDecompositionCache):
    """Masked copies of the data, shared by the estimators that hold it as ``memory``.

    The masked inputs of the grid partition depend on the data, ``stride``, ``fill``,
    ``channel_axis`` and the cosets, not on the denoising function's parameters: a
    sweep with one cache masks the data once. It also keeps the ordinary filter of the
    data per setting, so that a clone refitted at the chosen setting (a search's
    ``best_estimator_``) returns it without filtering again. Like
    :class:`~sklearn_n2s.WaveletDecompositionCache` (whose mechanics it shares) it is a
    shared handle: clones and deep copies of an estimator hold this very object, it is
    thread-safe, entries are keyed by a digest of the data, the least recently used are
    dropped beyond ``max_entries`` or ``max_bytes``, and a pickled cache comes back
    empty.

    Parameters
    ----------
    max_entries : int, default=2
        Most masked stacks kept (one per dataset and grid setting).
    max_bytes : int, default=536870912
        Most bytes kept in all (512 MiB).
    Attributes
    ----------
    hits : int
        Lookups answered from the cache.
    misses : int
        Lookups that had to mask the data.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import clone
    >>> from skimage.restoration import denoise_tv_chambolle
    >>> from sklearn_n2s.image import JInvariantDenoiser, MaskedImageCache
    >>> X = np.random.default_rng(0).normal(size=(1, 32, 32))
    >>> cache = MaskedImageCache()
    >>> est = JInvariantDenoiser(denoise_tv_chambolle, weight=0.1, memory=cache).fit(X)
    >>> for weight in (0.1, 0.2, 0.4):
    ...     _ = clone(est).set_params(weight=weight).fit(X).score(X)
    >>> cache.misses, cache.hits
    (1, 2)
    """


def _data_key(X):
    digest = hashlib.blake2b(np.ascontiguousarray(X).view(np.uint8), digest_size=16)
    return (digest.hexdigest(), X.shape, X.dtype.str)


class MaskedFilterDenoiser(BaseImageDenoiser):
    """A per-image filter made J-invariant through grid cosets (not for direct use).

    Subclasses implement ``_filter(image, scale)``: the ordinary filter on one float
    image ``(*spatial[, n_channels])`` at the set parameters (``scale`` maps the
    input's intensities to the image's float units). ``_reach(spatial_shape)`` (pixels
    a filtered pixel reads around it, or None when unbounded) enables dask chunks.
    """

    _parameter_constraints: dict = {
        **BaseImageDenoiser._parameter_constraints,
        "stride": [NotBool(Integral, 2, None, closed="left")],
        "fill": [StrOptions(set(FILLS))],
        "cosets": [None, positive_int()],
        "memory": [None, WaveletDecompositionCache],
        "blind_spot": BLIND_SPOT_CONSTRAINT,
    }

    def _check_params_against_data(self, n_spatial):
        check_cosets_in_grid(self.cosets, self.stride, n_spatial)

    def _check_spatial_shape(self, spatial_shape):
        check_stride_fits(self.stride, spatial_shape)

    def _min_spatial_size(self):
        return 2

    # ------------------------------------------------------------------ filtering
    def _filter(self, image, scale):
        raise NotImplementedError

    def _filter_checked(self, image, scale):
        out = np.asarray(self._filter(image, scale))
        if out.shape != image.shape:
            raise ValueError(
                f"{type(self).__name__}: the denoising function returned shape "
                f"{out.shape} for an image of shape {image.shape}; it must keep the shape."
            )
        return out

    def _denoise(self, X, scale=1.0):
        out = np.empty_like(X)
        for i, image in enumerate(X):
            out[i] = self._filter_checked(image, scale)
        return out

    #: Parameters the ordinary filter does not depend on (left out of its cache key).
    _NOT_FILTER_PARAMS = frozenset({"memory", "output", "noise_variance", "cosets", "stride",
                                    "fill", "blind_spot", "spatial_ndim"})

    def _denoise_memoised(self, X, scale=1.0):
        """The ordinary filter of X, kept in ``memory`` when one is set.

        A sweep scored by its estimated risk filters the data once per setting, and the
        refitted clone's ``transform`` (which shares the cache) then finds it: one BM3D
        run of 512 x 512 saved per :class:`~sklearn_n2s.AutoDenoiser` fit.
        """
        memory = self.memory
        if memory is None:
            return self._denoise(X, scale)
        params = sorted((k, repr(v)) for k, v in self.get_params(deep=False).items()
                        if k not in self._NOT_FILTER_PARAMS)
        key = _data_key(X) + ("ordinary", float(scale), tuple(params))
        out = memory.get(key)
        if out is None:
            out = self._denoise(X, scale)
            out.flags.writeable = False  # shared through the cache
            memory.put(key, out, nbytes=out.nbytes)
        return out

    def _invariant(self, X, scale=1.0):
        return self._invariant_covered(X, scale, cosets=None)[0]

    def _invariant_covered(self, X, scale=1.0, cosets="param"):
        cosets = self.cosets if cosets == "param" else cosets
        n_spatial = X.ndim - 1 - (self.channel_axis is not None)
        spatial_shape = X.shape[1:1 + n_spatial]
        footprint = self._blind_spot_footprint(spatial_shape)
        n_total = (n_grid_cosets(self.stride, n_spatial) if footprint is None
                   else n_footprint_cosets(footprint, spatial_shape, self.stride))
        chosen = select_cosets(n_total, cosets)
        prediction = np.array(X, copy=True)
        covered = np.zeros(X.shape, dtype=bool)
        for slices, masked in self._masked_inputs(X, chosen, footprint):
            for i in range(X.shape[0]):
                # only the coset's pixels of each filtered image are kept
                prediction[i][slices[1:]] = self._filter_checked(masked[i], scale)[slices[1:]]
            covered[slices] = True
        return prediction, (None if covered.all() else covered)

    def _masked_inputs(self, X, chosen, footprint=None):
        """``[(slices, X_masked), ...]`` for the chosen cosets, from ``memory`` if seen.

        With a structured blind spot (``footprint``) each coset hides the footprint
        around its pixels (:func:`~sklearn_n2s.masking.iter_footprint_masked`).
        """
        memory = self.memory
        key = None
        if memory is not None:
            shape_key = None if footprint is None else (footprint.shape,
                                                        footprint.tobytes())
            key = _data_key(X) + ("masked", self.stride, self.fill, self.channel_axis,
                                  tuple(chosen), shape_key)
            entry = memory.get(key)
            if entry is not None:
                return entry
        entry = []
        if footprint is None:
            masked_iter = iter_grid_masked(
                X, stride=self.stride, fill=self.fill, channel_axis=self.channel_axis,
                cosets=chosen, random_state=0)
        else:
            masked_iter = iter_footprint_masked(
                X, footprint, stride=self.stride, fill=self.fill,
                channel_axis=self.channel_axis, cosets=chosen, random_state=0)
        for _, slices, masked in masked_iter:
            masked.flags.writeable = False  # shared through the cache
            entry.append((slices, masked))
        if memory is not None:
            memory.put(key, entry, nbytes=sum(m.nbytes for _, m in entry))
        return entry

    # ------------------------------------------------------------ blockwise (dask)
    def _reach(self, spatial_shape):
        return None

    def _blockwise_halo(self, spatial_shape):
        reach = self._reach(spatial_shape)
        if self._blind_spot_footprint(spatial_shape) is not None:
            raise TypeError(
                f"{type(self).__name__}: a structured blind spot changes the masking grid "
                "with the image, so a dask array cannot be processed chunk by chunk; "
                "compute it first (X.compute()) or use blind_spot='pixel'."
            )
        if reach is None:
            raise TypeError(
                f"{type(self).__name__}: the filter's reach is not bounded (or not "
                "stated), so a dask array cannot be processed chunk by chunk; compute it "
                "first (X.compute())."
            )
        # The fill reads one pixel around each masked pixel; chunks start on multiples
        # of the stride so that their cosets are the whole image's.
        halo = -(-(int(reach) + 1) // self.stride) * self.stride
        return (halo,) * len(spatial_shape), (self.stride,) * len(spatial_shape)


def _signature_keywords(function):
    """``(names, takes_var_keyword)`` of a callable, or ``(None, True)`` if unknown."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None, True
    names, var_keyword = set(), False
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            var_keyword = True
        elif parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            names.add(parameter.name)
    return names, var_keyword


def _function_name(function):
    return getattr(function, "__name__", type(function).__name__)


class JInvariantDenoiser(MaskedFilterDenoiser):
    """Any denoising function ``f(image, **kwargs) -> image`` made J-invariant.

    The function is called on one image at a time, ``(*spatial[, n_channels])``, in the
    units of the input (an uint16 image arrives as float64 values 0..65535), so its
    intensity parameters (a NL-means ``h``, a TV ``weight``) are given in those units
    too, and its output is read in them. It may handle any number of spatial axes; it
    must keep the shape.

    :meth:`transform` with ``output='ordinary'`` is the function on each image. The
    J-invariant prediction, which :meth:`score` compares with the data (the exact
    self-supervised loss, every coset, by default), masks each of the ``stride**ndim``
    grid cosets in turn (``fill``), runs the function and keeps the coset: as
    :func:`skimage.restoration.calibrate_denoiser` with ``approximate_loss=False``,
    but an estimator with every output of the contract. With a
    :class:`MaskedImageCache` as ``memory`` the masked images are made once for a
    whole sweep.

    Parameters
    ----------
    denoise_function : callable or None, default=None
        ``f(image, **kwargs)`` returning an array of the image's shape. None is the
        identity, whose J-invariant prediction is the ``fill`` itself (neighbour
        interpolation by default). With ``channel_axis=-1`` the function also gets
        ``channel_axis=-1`` when its signature has that keyword (scikit-image's
        convention).
    stride : int, default=4
        Grid spacing of the masking partition: ``stride**ndim`` cosets, as many calls
        of the function per image for the exact loss. A stride of more than twice the
        image's largest side is refused.
    fill : {'interpolate', 'median', 'zero', 'mean', 'uniform'}, default='interpolate'
        How masked pixels are replaced, see :mod:`sklearn_n2s.masking`.
    cosets : None or int, default=None
        Cosets used by :meth:`score`: None for all (the exact loss), an int for that
        many (an approximate loss, that many calls). :meth:`invariant_transform`
        always predicts every pixel.
    reach : int or None, default=None
        Pixels the function reads around each output pixel (its radius), if bounded:
        then a dask array is processed chunk by chunk with that halo; None refuses
        dask input.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis (all channels of a pixel are masked
        together).
    output : {'shrink', 'ordinary', 'invariant', 'auto'}, default='shrink'
        What :meth:`transform` returns, see :mod:`sklearn_n2s.base`.
        ``'auto'`` returns, per image, the output with the lowest
        :meth:`estimated_risk` (the three are computed).
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'`` and
        ``'auto'`` and :meth:`estimated_risk`.
    memory : MaskedImageCache or None, default=None
        Where the masked images are kept between calls (shared by clones).
    spatial_ndim : {1, 2, 3} or None, default=None
        Number of spatial axes; when given, one image ``(*spatial[, n_channels])`` is
        accepted as a stack of one.
    blind_spot : 'pixel', 'auto', int, sequence of (int or None) or bool ndarray, \
            default='pixel'
        What the J-invariant prediction hides around each pixel: ``'pixel'`` for
        white noise; for noise correlated between neighbours a footprint (half-extents
        per axis, None for a whole axis, or a boolean array) that the masking core hides
        around each coset pixel and fills from outside; ``'auto'`` measures it in
        ``fit`` (:func:`~sklearn_n2s.estimate_noise_correlation`).
    **denoise_kwargs
        Keyword arguments of the function, each a parameter of the estimator
        (``get_params``, ``set_params``, ``clone``, ``GridSearchCV``). ``fit`` refuses
        names the function does not take (unless it takes ``**kwargs``).

    Attributes
    ----------
    n_spatial_dims_ : int
        Number of spatial axes of the data seen in ``fit``.
    n_features_in_ : int
        Number of values per sample of the data seen in ``fit``.

    See Also
    --------
    JInvariantTV, JInvariantBM3D : subclasses of the same machinery.
    skimage.restoration.calibrate_denoiser : scikit-image's one-call equivalent.

    References
    ----------
    .. [1] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       ICML 2019, arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.restoration import denoise_tv_chambolle
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import FullSplit
    >>> from sklearn_n2s.image import JInvariantDenoiser, MaskedImageCache
    >>> rng = np.random.default_rng(0)
    >>> clean = np.kron(rng.integers(0, 2, (8, 8)), np.ones((8, 8))) * 40000
    >>> X = rng.poisson(clean + 1000).astype(np.uint16)[np.newaxis]
    >>> est = JInvariantDenoiser(denoise_tv_chambolle, weight=100.0,
    ...                          memory=MaskedImageCache())
    >>> est.get_params()["weight"]
    100.0
    >>> search = GridSearchCV(est, {"weight": [30.0, 300.0, 3000.0]}, cv=FullSplit())
    >>> search.fit(X).best_params_
    {'weight': 3000.0}
    """

    def __init__(self, denoise_function=None, *, stride=4, fill="interpolate", cosets=None,
                 reach=None, channel_axis=None, output="shrink", noise_variance=None,
                 memory=None, spatial_ndim=None, blind_spot="pixel", **denoise_kwargs):
        self.denoise_function = denoise_function
        self.stride = stride
        self.fill = fill
        self.cosets = cosets
        self.reach = reach
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.memory = memory
        self.spatial_ndim = spatial_ndim
        self.blind_spot = blind_spot
        self._denoise_kwarg_names = ()
        for name, value in denoise_kwargs.items():
            self._set_denoise_kwarg(name, value)

    _parameter_constraints: dict = {
        **MaskedFilterDenoiser._parameter_constraints,
        "denoise_function": [None, callable],
        "reach": [None, NotBool(Integral, 0, None, closed="left")],
    }

    # ------------------------------------------------ the function's keyword arguments
    def _set_denoise_kwarg(self, name, value):
        setattr(self, name, value)
        if name not in self._denoise_kwarg_names:
            self._denoise_kwarg_names = tuple(self._denoise_kwarg_names) + (name,)

    @property
    def denoise_kwargs_(self):
        """The function's keyword arguments as set now (a new dict)."""
        return {name: getattr(self, name) for name in self._denoise_kwarg_names}

    def get_params(self, deep=True):
        """Parameters of the estimator, the function's keyword arguments included.

        Parameters
        ----------
        deep : bool, default=True
            Also the parameters of contained estimators (there are none here).

        Returns
        -------
        params : dict
        """
        params = super().get_params(deep=deep)
        params.update(self.denoise_kwargs_)
        return params

    def set_params(self, **params):
        """Set parameters; names that are not the estimator's go to the function.

        A name the function does not take (its signature has neither the name nor
        ``**kwargs``) is refused with a ``ValueError``, as scikit-learn refuses an
        invalid parameter.

        Parameters
        ----------
        **params : dict
            Estimator parameters and function keyword arguments.

        Returns
        -------
        self : JInvariantDenoiser
        """
        own_names = set(self._get_param_names())
        own = {k: v for k, v in params.items() if k in own_names or "__" in k}
        extra = {k: v for k, v in params.items() if k not in own}
        super().set_params(**own)
        function = self.denoise_function
        unknown = [k for k in extra if not self._function_takes(function, k)]
        if unknown:
            raise ValueError(
                f"Invalid parameter {unknown[0]!r} for estimator {type(self).__name__}: "
                f"neither its own (valid: {sorted(own_names)}) nor a keyword of "
                f"denoise_function {_function_name(function)!r}."
            )
        for name, value in extra.items():
            self._set_denoise_kwarg(name, value)
        return self

    @staticmethod
    def _function_takes(function, name):
        if function is None:
            return False
        names, var_keyword = _signature_keywords(function)
        return var_keyword or name in names

    def _check_params_against_data(self, n_spatial):
        super()._check_params_against_data(n_spatial)
        unknown = [k for k in self._denoise_kwarg_names
                   if not self._function_takes(self.denoise_function, k)]
        if unknown:
            what = ("denoise_function is None (the identity), which takes none"
                    if self.denoise_function is None else
                    f"denoise_function {_function_name(self.denoise_function)!r} does "
                    "not take them")
            raise ValueError(f"Keyword arguments {unknown} were given, but {what}.")

    # ------------------------------------------------------------------ filtering
    def _filter(self, image, scale):
        function = self.denoise_function
        if function is None:
            return image
        kwargs = self.denoise_kwargs_
        if self.channel_axis is not None and self._function_takes(function, "channel_axis"):
            kwargs.setdefault("channel_axis", -1)
        # the function works in the input's units: the image and its parameters
        out = np.asarray(function(image / image.dtype.type(scale), **kwargs))
        if out.shape != image.shape:
            return out  # refused, with the function named, by the caller
        return (out * scale).astype(image.dtype, copy=False)

    def _reach(self, spatial_shape):
        if self.denoise_function is None:
            return 0
        return self.reach


def noise_std_of(X, noise_std=None, channel_axis=None):
    """Noise standard deviation in the units of X: ``noise_std`` if given, else the
    mean of :func:`~sklearn_n2s.estimate_noise_variance` over the samples (a 2-D X
    without channels is read as one image). Used by the ``default_grid`` helpers."""
    if noise_std is not None:
        return float(noise_std)
    if X is None:
        raise ValueError("default_grid needs X or noise_std.")
    values = np.asarray(X, dtype=np.float64)
    if values.ndim == 2 + (channel_axis is not None):  # one image
        values = values[np.newaxis]
    variance = float(np.mean(estimate_noise_variance(values, channel_axis=channel_axis)))
    return max(float(np.sqrt(variance)), 1e-12)
