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

"""

import copy
import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..base import OUTPUTS, SelfSupervisedScoreMixin, shrink_towards_data
from ..utils._losses import RESIDUAL_LOSSES, get_loss
from ..utils._noise import estimate_noise_variance
from ..utils._validation import check_channel_axis, check_option, check_stack


def _is_dask_array(X):
    """True for a dask array, checked without importing dask."""
    return type(X).__module__.startswith("dask.array")


class JInvariantDenoiserMixin(SelfSupervisedScoreMixin):
    """Validation, ``fit``, ``transform``, ``invariant_transform`` and ``score``."""

    #: Smallest number of pixels along every spatial axis the filter accepts.
    def _min_spatial_size(self):
        return 1

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        check_channel_axis(self.channel_axis)
        check_option(self.output, "output", OUTPUTS)
        nv = self.noise_variance
        if nv is not None and (
            isinstance(nv, bool) or not isinstance(nv, numbers.Real) or not nv >= 0
            or not np.isfinite(nv)
        ):
            raise ValueError(f"noise_variance must be None or a number >= 0, got {nv!r}.")

    def _validate(self, X, *, reset):
        """The float stack and the intensity scale of its original dtype."""
        X, scale = check_stack(X, channel_axis=self.channel_axis,
                               min_spatial_size=self._min_spatial_size(), return_scale=True)
        n_spatial = X.ndim - 1 - (self.channel_axis is not None)
        if reset:
            self.n_spatial_dims_ = n_spatial
            self.n_features_in_ = int(np.prod(X.shape[1:]))
        elif n_spatial != self.n_spatial_dims_:
            raise ValueError(
                f"X has {n_spatial} spatial axes, but {type(self).__name__} was fitted on "
                f"data with {self.n_spatial_dims_}."
            )
        return X, scale

    def _prepare(self, X):
        """Check fitted and parameters; return the validated float stack and its scale."""
        check_is_fitted(self)
        self._check_params()
        return self._validate(X, reset=False)

    # -------------------------------------------------------------------- contract
    def fit(self, X, y=None):
        """Validate the parameters and the data; nothing is learned by a fixed filter.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
        y : None
            Ignored: the self-supervised setting has no targets.

        Returns
        -------
        self : object
        """
        self._check_params()
        if _is_dask_array(X):
            # Nothing is learned: check the shape and dtype without loading the array.
            self._validate(np.zeros((1,) + tuple(min(n, 8) for n in X.shape[1:]),
                                    dtype=X.dtype), reset=True)
            self.n_features_in_ = int(np.prod(X.shape[1:]))
            return self
        self._validate(X, reset=True)
        return self

    def transform(self, X):
        """Denoise X; what is returned depends on ``output``.

        ``'shrink'`` (default) returns the optimal mix of the J-invariant prediction and
        the data (see the module notes), ``'ordinary'`` the ordinary filter,
        ``'invariant'`` the J-invariant prediction.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])

        Returns
        -------
        X_denoised : ndarray of the same shape, float32 for float32 input, else float64
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
        X : array-like of shape (n_samples, *spatial[, n_channels])

        Returns
        -------
        X_invariant : ndarray of the same shape
        """
        if _is_dask_array(X):
            from ._blockwise import blockwise_transform

            return blockwise_transform(self, X, method="invariant_transform")
        X, scale = self._prepare(X)
        return self._invariant(X, scale)

    def shrinkage_weights(self, X):
        """Per-sample weight ``lam`` that ``output='shrink'`` gives the invariant prediction."""
        X, scale = self._prepare(X)
        invariant = self._invariant(X, scale)
        return shrink_towards_data(invariant, X, self._noise_variance(X, scale))[1]

    def self_supervised_loss(self, X, loss="mse"):
        """Loss of the J-invariant prediction against X itself (lower is better).

        For an estimator set to an approximate loss (a subset of cosets), only the
        coordinates those cosets predict are compared.
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
