"""The contract every image denoiser keeps, and what ``transform`` returns.

Subclasses implement two steps on a validated float stack (``scale`` converts
intensity-valued parameters to the float units of integer input, see
:func:`sklearn_n2s.utils._validation.intensity_scale`):

- ``_denoise(X, scale)``: the ordinary filter at the set parameters;
- ``_invariant(X, scale)``: a J-invariant prediction of X (optionally
  ``_invariant_covered``, returning also which coordinates an approximate prediction
  covered).

The base class adds validation, ``fit``, ``transform``, ``invariant_transform``,
``score`` and the self-supervised loss.

Parameters are declared the scikit-learn way: each class's ``_parameter_constraints``
(the shared ``channel_axis``, ``output`` and ``noise_variance`` come from
:attr:`JInvariantDenoiserMixin._parameter_constraints`) is checked once per ``fit`` by
:func:`sklearn.base._fit_context`, which raises
:class:`~sklearn.utils._param_validation.InvalidParameterError` (a ``ValueError``).
What constraints cannot express (one parameter against another, or against the data)
a class checks in ``_check_params_against_data``, also once per ``fit``. ``transform``,
``invariant_transform`` and ``score`` validate the data only, never the parameters,
and never change the estimator.
"""

import copy
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..base import OUTPUTS, SelfSupervisedScoreMixin, shrink_towards_data
from ..utils._losses import RESIDUAL_LOSSES, get_loss
from ..utils._noise import estimate_noise_variance
from ..utils._validation import check_stack


def _is_dask_array(X):
    """True for a dask array, checked without importing dask."""
    return type(X).__module__.startswith("dask.array")


class JInvariantDenoiserMixin(SelfSupervisedScoreMixin):
    """Validation, ``fit``, ``transform``, ``invariant_transform`` and ``score``.

    Subclasses merge :attr:`_parameter_constraints` (the parameters every image
    denoiser has) into their own.
    """

    #: Constraints of the parameters every image denoiser shares.
    _parameter_constraints: dict = {
        "channel_axis": [None, Options(Integral, {-1})],
        "output": [StrOptions(set(OUTPUTS))],
        "noise_variance": [None, Interval(Real, 0, None, closed="left")],
    }

    #: Smallest number of pixels along every spatial axis the filter accepts.
    def _min_spatial_size(self):
        return 1

    # ------------------------------------------------------------------ validation
    def _check_params_against_data(self, n_spatial):
        """Checks the constraints cannot express (run once per ``fit``, after the
        data's number of spatial axes is known); none by default."""

    def _validate(self, X, *, reset):
        """The float stack and the intensity scale of its original dtype."""
        X, scale = check_stack(X, channel_axis=self.channel_axis,
                               min_spatial_size=self._min_spatial_size(), return_scale=True)
        n_spatial = X.ndim - 1 - (self.channel_axis is not None)
        if reset:
            # before any fitted attribute is set: a refused fit leaves no fitted state
            self._check_params_against_data(n_spatial)
            self.n_spatial_dims_ = n_spatial
            self.n_features_in_ = int(np.prod(X.shape[1:]))
        elif n_spatial != self.n_spatial_dims_:
            raise ValueError(
                f"X has {n_spatial} spatial axes, but {type(self).__name__} was fitted on "
                f"data with {self.n_spatial_dims_}."
            )
        return X, scale

    def _prepare(self, X):
        """Check fitted; return the validated float stack and its scale.

        The parameters are not checked again: that happens once, in ``fit``.
        """
        check_is_fitted(self)
        return self._validate(X, reset=False)

    # -------------------------------------------------------------------- contract
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the parameters and the data; nothing is learned by a fixed filter.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, *spatial[, n_channels])
            One to three spatial axes, plus a trailing channel axis when
            ``channel_axis=-1``. A dask array is checked without being loaded (its
            dtype, number of axes and size).
        y : None
            Ignored: the self-supervised setting has no targets.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        if _is_dask_array(X):
            from ._blockwise import _check_dask_stack

            # Nothing is learned: check the shape and dtype without loading the array.
            _check_dask_stack(X, self.channel_axis)
            self._validate(np.zeros((1,) + tuple(min(n, 8) for n in X.shape[1:]),
                                    dtype=X.dtype), reset=True)
            self.n_features_in_ = int(np.prod(X.shape[1:]))
        else:
            self._validate(X, reset=True)
        return self

    def transform(self, X):
        """Denoise X; what is returned depends on ``output``.

        ``'shrink'`` (default) returns the optimal mix of the J-invariant prediction and
        the data (see the module notes), ``'ordinary'`` the ordinary filter,
        ``'invariant'`` the J-invariant prediction.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, *spatial[, n_channels])
            Images with as many spatial axes as the data seen in ``fit`` (any size).

        Returns
        -------
        X_denoised : ndarray or dask array of the same shape
            float32 for float16/float32 input, else float64, in the input's float units
            (integer images are scaled like :func:`skimage.util.img_as_float`). Lazy
            for a dask array (see :mod:`sklearn_n2s.blockwise`).
        """
        if _is_dask_array(X):
            from ._blockwise import blockwise_transform

            return blockwise_transform(self, X, method="transform")
        X, scale = self._prepare(X)
        if self.output == "ordinary":
            return self._denoise(X, scale)
        invariant = self._invariant(X, scale)
        if self.output == "invariant":
            return invariant
        return shrink_towards_data(invariant, X, self._noise_variance(X, scale))[0]

    def invariant_transform(self, X):
        """J-invariant prediction of X: the output at a pixel never looks at that pixel.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, *spatial[, n_channels])
            Images with as many spatial axes as the data seen in ``fit``.

        Returns
        -------
        X_invariant : ndarray or dask array of the same shape
            float32 for float16/float32 input, else float64.
        """
        if _is_dask_array(X):
            from ._blockwise import blockwise_transform

            return blockwise_transform(self, X, method="invariant_transform")
        X, scale = self._prepare(X)
        return self._invariant(X, scale)

    def shrinkage_weights(self, X):
        """Per-sample weight ``lam`` that ``output='shrink'`` gives the invariant prediction.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
            Images with as many spatial axes as the data seen in ``fit``.

        Returns
        -------
        lam : ndarray of shape (n_samples,)
            ``noise_variance / L`` per sample, in [0, 1], where ``L`` is the sample's
            self-supervised loss (see :func:`sklearn_n2s.base.shrink_weights`).
        """
        X, scale = self._prepare(X)
        invariant = self._invariant(X, scale)
        return shrink_towards_data(invariant, X, self._noise_variance(X, scale))[1]

    def self_supervised_loss(self, X, loss="mse"):
        """Loss of the J-invariant prediction against X itself (lower is better).

        For an estimator set to an approximate loss (a subset of cosets), only the
        coordinates those cosets predict are compared.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
            Images with as many spatial axes as the data seen in ``fit``.
        loss : {'mse', 'mae'} or callable, default='mse'
            Mean squared (the Noise2Self loss) or mean absolute error over all samples
            and pixels, or a callable ``loss(prediction, X) -> float``.

        Returns
        -------
        loss : float
            The loss, in the squared float units of the input for ``'mse'``.
        """
        X, scale = self._prepare(X)
        if isinstance(loss, str) and loss in RESIDUAL_LOSSES:
            return RESIDUAL_LOSSES[loss](self._invariant_residual(X, scale))
        prediction, covered = self._invariant_covered(X, scale)
        loss_fn = get_loss(loss)
        if covered is None:
            return loss_fn(prediction, X)
        return loss_fn(prediction[covered], X[covered])

    # ------------------------------------------------------------- overridable steps
    def _invariant_covered(self, X, scale):
        return self._invariant(X, scale), None

    def _invariant_residual(self, X, scale):
        """``prediction - X`` on the covered coordinates (flattened when partial)."""
        prediction, covered = self._invariant_covered(X, scale)
        if covered is None:
            prediction -= X
            return prediction
        return prediction[covered] - X[covered]

    def _noise_variance(self, X, scale):
        if self.noise_variance is not None:
            return np.full(X.shape[0], float(self.noise_variance) * scale**2)
        return estimate_noise_variance(X, channel_axis=self.channel_axis)

    # ------------------------------------------------------------ blockwise (dask)
    # The dask engine (:mod:`sklearn_n2s.image._blockwise`) asks each estimator for
    # these instead of keeping a table of classes; a new family states its own.
    def _blockwise_halo(self, spatial_shape):
        """``(halo, align)``: pixels a chunk borrows per spatial axis, and the multiple
        its chunk starts must keep, for a chunk's result to equal the whole image's."""
        raise TypeError(
            f"{type(self).__name__} does not state its reach: blockwise processing needs "
            "a _blockwise_halo method giving the halo each chunk must borrow."
        )

    def _blockwise_boundary(self):
        """dask ``boundary`` at the array's true edge: ``'none'`` (the estimator sees the
        real edge and applies its own rule) or ``'periodic'``."""
        return "none"

    def _blockwise_block_estimator(self, spatial_shape):
        """The (shallow, fitted) copy that runs on one chunk of an image of ``spatial_shape``."""
        return copy.copy(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        tags.requires_fit = True
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class BaseImageDenoiser(JInvariantDenoiserMixin, TransformerMixin, BaseEstimator):
    """Base class of the classical image denoisers (not for direct use)."""
