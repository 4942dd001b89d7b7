"""BM3D (the ``bm3d`` package, optional extra ``bm3d``) made J-invariant by masking."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._generic import MaskedFilterDenoiser, noise_std_of
from ._limits import NotBool

#: The ``bm3d`` package's profiles, by the names its ``bm3d()`` takes.
_PROFILES = {"np": "BM3DProfile", "refilter": "BM3DProfileRefilter", "vn": "BM3DProfileVN",
             "high": "BM3DProfileHigh", "vn_old": "BM3DProfileVNOld", "deb": "BM3DProfileDeb"}


def _require_bm3d():
    try:
        import bm3d
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "JInvariantBM3D needs the bm3d package: pip install 'sklearn_n2s[bm3d]' "
            "(or pip install bm3d)."
        ) from error
    return bm3d


class JInvariantBM3D(MaskedFilterDenoiser):
    """BM3D (Dabov et al.; the ``bm3d`` package) with a J-invariant form through grid
    cosets.

    :meth:`transform` with ``output='ordinary'`` (the default) is ``bm3d.bm3d`` on
    each 2-D image (each channel on its own). BM3D's block matching reaches across
    its search window and it has no closed J-invariant form, so the prediction masks
    each of the ``stride**2`` cosets in turn: the exact loss costs 16 BM3D runs per
    image at the default stride (about 25 s each for 512x512 on one busy core).
    ``cosets=k`` scores ``k`` cosets only (an approximate loss); ``output='ordinary'``
    never needs the masked runs.

    Parameters
    ----------
    sigma_psd : float or None, default=None
        Noise standard deviation, in the units of the input (grey levels for integer
        images); None estimates it from each image it filters
        (:func:`sklearn_n2s.estimate_noise_variance`, on the masked image for the
        J-invariant prediction, so it stays J-invariant).
    profile : {'np', 'refilter', 'vn', 'high', 'vn_old', 'deb'}, default='np'
        The ``bm3d`` package's parameter profile.
    num_threads : int or None, default=None
        Threads of one BM3D run. None is the package's choice (all cores); its
        aggregation then adds in a varying order, so two runs on the same image can
        differ at float32 rounding (about 1e-7 of the range). 1 is deterministic, and
        slower (512 x 512 on 2 cores: 12.3 s against 7.0 s). The package must not be
        called from two Python threads at once (its thread pool aborts the process):
        search grids in processes (joblib's default), not threads.
    stride, fill, cosets, channel_axis, output, noise_variance, memory, spatial_ndim
        As in :class:`JInvariantTV`; ``spatial_ndim`` may only be 2 (or None).
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

    See Also
    --------
    JInvariantDenoiser : the generic wrapper this specialises.

    References
    ----------
    .. [1] K. Dabov, A. Foi, V. Katkovnik and K. Egiazarian, "Image denoising by
       sparse 3-D transform-domain collaborative filtering", IEEE TIP 16(8), 2007.
    .. [2] Y. Mäkinen, L. Azzari and A. Foi, "Collaborative filtering of correlated
       noise", IEEE TIP 29, 2020 (the ``bm3d`` package).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.image import JInvariantBM3D
    >>> X = np.random.default_rng(0).normal(100, 10, (1, 16, 16)).astype(np.float32)
    >>> JInvariantBM3D(sigma_psd=10.0).fit(X).transform(X).shape  # doctest: +SKIP
    (1, 16, 16)
    """

    def __init__(self, sigma_psd=None, *, profile="np", num_threads=None, stride=4,
                 fill="interpolate", cosets=None, channel_axis=None, output="ordinary",
                 noise_variance=None, memory=None, spatial_ndim=None, blind_spot="pixel"):
        self.sigma_psd = sigma_psd
        self.profile = profile
        self.num_threads = num_threads
        self.stride = stride
        self.fill = fill
        self.cosets = cosets
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.memory = memory
        self.spatial_ndim = spatial_ndim
        self.blind_spot = blind_spot

    # Block matching and hard thresholding make BM3D's output jump as the data move: a
    # probe of 0.01 sigma sees a jump only where one falls inside it, so the one-probe
    # divergence moved by 4-13 % of the risk between probes (and missed the jumps on
    # average); at 0.1 sigma, 0.5-9 % (coins, camera, text crops, Gaussian noise 0.1, 0.2).
    _divergence_step = 0.1
    # One probe stays: three (``_divergence_probes = 3``) cut the error of the risk
    # estimate over eight noise draws of tests/image/test_bm3d.py's image from 0.0175 to
    # 0.0142 noise variances, but changed none of AutoDenoiser's 28 picks in
    # benchmarks/bench_auto.py, for two more BM3D runs each.

    _parameter_constraints: dict = {
        **MaskedFilterDenoiser._parameter_constraints,
        "sigma_psd": [None, NotBool(Real, 0, None, closed="neither")],
        "profile": [StrOptions(set(_PROFILES))],
        "num_threads": [None, Interval(Integral, 1, None, closed="left")],
    }

    @classmethod
    def default_grid(cls, X=None, *, noise_std=None, channel_axis=None):
        """A grid for ``sigma_psd`` in the units of X: ``s * [0.8, 1, 1.25]``, ``s`` the
        noise standard deviation (given, or estimated from X).

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
            ``{"sigma_psd": [...]}``.
        """
        s = noise_std_of(X, noise_std, channel_axis)
        return {"sigma_psd": [float(s * f) for f in (0.8, 1.0, 1.25)]}

    def _check_params_against_data(self, n_spatial):
        if n_spatial != 2:
            raise ValueError(
                f"JInvariantBM3D filters 2-D images (the bm3d package), got {n_spatial} "
                "spatial axes; pass spatial_ndim=2 for one image (H, W) or a stack "
                "(n, H, W)."
            )
        _require_bm3d()
        super()._check_params_against_data(n_spatial)

    def _check_spatial_shape(self, spatial_shape):
        super()._check_spatial_shape(spatial_shape)
        if min(spatial_shape) < 8:
            raise ValueError(f"JInvariantBM3D needs images of at least 8x8 pixels (BM3D's "
                             f"blocks), got {spatial_shape}.")

    def _profile(self, bm3d):
        """The package's profile object, with ``num_threads`` when given."""
        profile = getattr(bm3d, _PROFILES[self.profile])()
        if self.num_threads is not None:
            profile.num_threads = int(self.num_threads)
        return profile

    def _filter(self, image, scale):
        bm3d = _require_bm3d()
        channels = image[..., np.newaxis] if self.channel_axis is None else image
        out = np.empty(channels.shape, dtype=image.dtype)
        for c in range(channels.shape[-1]):
            plane = channels[..., c].astype(np.float64)
            if self.sigma_psd is None:
                sigma = noise_std_of(plane)
            else:
                sigma = float(self.sigma_psd) * scale
            if sigma <= 0 or np.ptp(plane) == 0:
                out[..., c] = plane
                continue
            out[..., c] = bm3d.bm3d(plane, sigma_psd=sigma, profile=self._profile(bm3d))
        return out[..., 0] if self.channel_axis is None else out
