"""Total-variation denoising (scikit-image's ``denoise_tv_chambolle``) made J-invariant."""

from numbers import Real

import numpy as np
from skimage.restoration import denoise_tv_chambolle

from ._generic import MaskedFilterDenoiser, noise_std_of
from ._limits import NotBool, positive_int, positive_real


class JInvariantTV(MaskedFilterDenoiser):
    """Total-variation denoising (Chambolle) with a J-invariant form through grid cosets.

    :meth:`transform` with ``output='ordinary'`` (the default, see below) is
    ``skimage.restoration.denoise_tv_chambolle`` on each image. TV has no closed
    J-invariant form and its reach is the whole image, so the prediction masks each of
    the ``stride**ndim`` grid cosets in turn (the generic route of
    :class:`JInvariantDenoiser`, whose ``memory`` keeps the masked images for a sweep).

    Parameters
    ----------
    weight : float, default=0.1
        Denoising weight, in the units of the input (0..255 grey levels for uint8,
        0..65535 for uint16, the values for floats): TV scales with the data, so the
        weight that suits an image scales with it too. A value near the noise standard
        deviation is typical; :meth:`default_grid` scales a grid to the data.
    eps : float, default=0.0
        Relative change of the energy at which the iterations stop; 0 (the default)
        runs exactly ``max_num_iter`` iterations. scikit-image's default (2e-4) stops
        on an energy change that can be small by chance after a few iterations: on
        512 x 512 crops with Gaussian noise it stopped up to 3 dB short of convergence
        (moon, noise 0.05, weight 0.025: 31.9 against 34.9 dB), and the jumps it makes
        in the output as the data move break the divergence that
        :meth:`estimated_risk` measures (coins, noise 0.2: weights 1 % apart gave
        errors of 0.0054 and 0.0093, and at the second a risk estimate of -0.0025).
        A fixed count makes TV a smooth function of the data.
    max_num_iter : int, default=100
        Number of iterations (the most, when ``eps > 0``): at 100, within 0.05 dB of
        200 on the crops above, in half the time.
    stride : int, default=4
        Grid spacing of the masking partition (``stride**ndim`` TV runs per image for
        the exact loss).
    fill : {'interpolate', 'median', 'zero', 'mean', 'uniform'}, default='interpolate'
        How masked pixels are replaced, see :mod:`sklearn_n2s.masking`.
    cosets : None or int, default=None
        Cosets used by :meth:`score`: None for all (exact), an int for that many.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis.
    output : {'shrink', 'ordinary', 'invariant', 'auto'}, default='ordinary'
        What :meth:`transform` returns; the ordinary filter at the self-supervised pick
        beats the mixes (``benchmarks/transform_quality.py``).
        ``'auto'`` returns, per image, the output with the lowest
        :meth:`estimated_risk` (the three are computed).
    noise_variance : float or None, default=None
        Noise variance in the units of the input, for ``output='shrink'`` and
        ``'auto'`` and :meth:`estimated_risk`.
    memory : MaskedImageCache or None, default=None
        Keeps the masked images between calls (shared by clones).
    spatial_ndim : {1, 2, 3} or None, default=None
        Number of spatial axes; when given, one image is accepted as a stack of one.
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
        Number of spatial axes of the data seen in ``fit``.
    n_features_in_ : int
        Number of values per sample of the data seen in ``fit``.

    See Also
    --------
    JInvariantDenoiser : the generic wrapper this specialises.

    References
    ----------
    .. [1] A. Chambolle, "An algorithm for total variation minimization and
       applications", Journal of Mathematical Imaging and Vision 20, 2004.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.image import JInvariantTV
    >>> rng = np.random.default_rng(0)
    >>> clean = np.kron(rng.integers(0, 2, (4, 4)), np.ones((8, 8))) * 200
    >>> X = rng.normal(clean, 20).clip(0, 255).astype(np.uint8)[np.newaxis]
    >>> grid = JInvariantTV.default_grid(X)["weight"]  # grey levels, from the noise
    >>> losses = [JInvariantTV(weight=w).fit(X).self_supervised_loss(X) for w in grid]
    >>> len(grid), bool(min(losses) < np.var(X / 255.0))
    (6, True)
    """

    def __init__(self, weight=0.1, *, eps=0.0, max_num_iter=100, stride=4,
                 fill="interpolate", cosets=None, channel_axis=None, output="ordinary",
                 noise_variance=None, memory=None, spatial_ndim=None,
                 blind_spot="pixel"):
        self.weight = weight
        self.eps = eps
        self.max_num_iter = max_num_iter
        self.stride = stride
        self.fill = fill
        self.cosets = cosets
        self.channel_axis = channel_axis
        self.output = output
        self.noise_variance = noise_variance
        self.memory = memory
        self.spatial_ndim = spatial_ndim
        self.blind_spot = blind_spot

    _parameter_constraints: dict = {
        **MaskedFilterDenoiser._parameter_constraints,
        "weight": [positive_real()],
        "eps": [NotBool(Real, 0, None, closed="left")],
        "max_num_iter": [positive_int()],
    }

    @classmethod
    def default_grid(cls, X=None, *, noise_std=None, channel_axis=None):
        """A grid for ``weight`` in the units of X: ``s * [0.3, 0.5, 0.7, 1, 1.4, 2]``,
        ``s`` the noise standard deviation (given, or estimated from X).

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
            ``{"weight": [...]}``.
        """
        s = noise_std_of(X, noise_std, channel_axis)
        return {"weight": [float(s * f) for f in (0.3, 0.5, 0.7, 1.0, 1.4, 2.0)]}

    def _filter(self, image, scale):
        channels = {} if self.channel_axis is None else {"channel_axis": -1}
        out = denoise_tv_chambolle(image, weight=float(self.weight) * scale, eps=self.eps,
                                   max_num_iter=self.max_num_iter, **channels)
        return np.asarray(out, dtype=image.dtype)
