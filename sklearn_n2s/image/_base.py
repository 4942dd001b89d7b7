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

Number of spatial axes
----------------------
A stack ``(n_samples, *spatial)`` is what every method takes; a 2-D array is then n
one-dimensional signals, which scikit-learn's common checks rely on, but a user with one
2-D image means something else. ``spatial_ndim`` says it explicitly: with
``spatial_ndim=2`` a single image ``(H, W)`` is a stack of one (the output has the
input's shape) and ``(n, H, W)`` a stack; with the default None a 2-D array is still n
signals, and ``fit`` warns (:class:`SpatialAxesWarning`) naming the two fixes.

Numeric range
-------------
Squares of values beyond about ``2**(maxexp/4)`` of the dtype (``2**256`` in float64,
``2**32`` in float32) overflow somewhere: in a sum of squares, a wavelet sub-band
variance, a noise variance. Such a stack is divided by a power of two (exact in
floating point) before filtering and every output is multiplied back, so the results are
the ones the filters would give with unlimited range: the median and the Gaussian are
equivariant, the wavelet's thresholds follow the data. What cannot be represented in the
input's units is refused with a ``ValueError`` naming the range: a self-supervised loss
(a square) above the largest float64, an output that leaves the dtype's range. No
method returns a non-finite value for finite input.

Parameters are declared the scikit-learn way: each class's ``_parameter_constraints``
(the shared ``channel_axis``, ``output``, ``noise_variance`` and ``spatial_ndim`` come from
:attr:`JInvariantDenoiserMixin._parameter_constraints`) is checked once per ``fit`` by
:func:`sklearn.base._fit_context`, which raises
:class:`~sklearn.utils._param_validation.InvalidParameterError` (a ``ValueError``).
What constraints cannot express (one parameter against another, or against the data)
a class checks in ``_check_params_against_data``, also once per ``fit``. ``transform``,
``invariant_transform`` and ``score`` validate the data only, never the parameters,
and never change the estimator.
"""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..base import (
    IMAGE_OUTPUTS,
    OUTPUTS,
    SelfSupervisedScoreMixin,
    output_risks,
    shrink_towards_data,
)
from ..utils._correlation import check_blind_spot, estimate_noise_correlation
from ..utils._losses import RESIDUAL_LOSSES, get_loss
from ..utils._noise import estimate_noise_variance, noise_variance_weights
from ..utils._validation import MAX_SPATIAL_DIMS, check_stack, internal_unit

#: Degree of homogeneity of the named losses: ``loss(c * X) = c**degree * loss(X)``.
_LOSS_DEGREE = {"mse": 2, "mae": 1}

#: Constraint of ``blind_spot``, for the families that take it (see
#: :func:`sklearn_n2s.utils._correlation.check_blind_spot` for the forms).
BLIND_SPOT_CONSTRAINT = [
    StrOptions({"pixel", "auto"}), Interval(Integral, 0, None, closed="left"), tuple, list,
    np.ndarray,
]
#: Largest image side (per axis) the ``'auto'`` estimate reads from a dask array.
_AUTO_BLIND_SPOT_CROP = 512

#: Step of the divergence probe, in noise standard deviations, for filters that are
#: continuous functions of the data: small enough to see the local slope, far above
#: float32 rounding. A family whose output jumps overrides ``_divergence_step``.
_DIVERGENCE_STEP = 0.01


class SpatialAxesWarning(UserWarning):
    """An image denoiser got a 2-D array without being told its number of spatial axes.

    The array is read as ``n`` one-dimensional signals; for one 2-D image pass
    ``spatial_ndim=2`` (or ``X[np.newaxis]``), for 1-D signals ``spatial_ndim=1``.
    """


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
        "output": [StrOptions(set(IMAGE_OUTPUTS))],
        "noise_variance": [None, Interval(Real, 0, None, closed="left")],
        "spatial_ndim": [None, Interval(Integral, 1, MAX_SPATIAL_DIMS, closed="both")],
    }

    #: Smallest number of pixels along every spatial axis the filter accepts.
    def _min_spatial_size(self):
        return 1

    # ------------------------------------------------------------------ validation
    def _check_params_against_data(self, n_spatial):
        """Checks the constraints cannot express (run once per ``fit``, after the
        data's number of spatial axes is known); none by default."""

    def _check_blind_spot(self, spatial_shape):
        """Refuse a ``blind_spot`` that does not fit the data's axes (families with one)."""
        spot = getattr(self, "blind_spot", "pixel")
        if not (isinstance(spot, str) and spot == "auto"):
            check_blind_spot(spot, len(spatial_shape), spatial_shape)

    def _fit_blind_spot(self, X):
        """Set ``blind_spot_`` and, for any blind spot but ``'pixel'``,
        ``noise_correlation_`` (measured on the data; ``'auto'`` takes its extents).

        ``X`` is the validated float stack, or a dask stack of which a crop of the first
        image (at most ``_AUTO_BLIND_SPOT_CROP`` pixels per axis) is measured.
        """
        if not hasattr(self, "blind_spot"):
            return
        auto = isinstance(self.blind_spot, str) and self.blind_spot == "auto"
        self.blind_spot_ = self.blind_spot
        if hasattr(self, "noise_correlation_"):
            del self.noise_correlation_  # from an earlier fit
        spatial = X.shape[1:X.ndim - (self.channel_axis is not None)]
        if (isinstance(self.blind_spot, str) and self.blind_spot == "pixel") or (
                not auto and min(spatial) < 3):
            return
        # A structured blind spot means correlated noise: its measurement also corrects
        # the noise variance the shrinkage weight uses (see _noise_variance).
        if _is_dask_array(X):
            n_spatial = X.ndim - 1 - (self.channel_axis is not None)
            crop = (slice(0, 1),) + (slice(0, _AUTO_BLIND_SPOT_CROP),) * n_spatial
            X = np.asarray(X[crop])
        self.noise_correlation_ = estimate_noise_correlation(X, channel_axis=self.channel_axis)
        if auto:
            self.blind_spot_ = self.noise_correlation_.extent

    def _blind_spot_footprint(self, spatial_shape):
        """Footprint hidden around each pixel (None: the pixel alone), from ``blind_spot_``."""
        spot = getattr(self, "blind_spot_", getattr(self, "blind_spot", "pixel"))
        if isinstance(spot, str) and spot == "auto":  # not fitted: the data decide in fit
            return None
        return check_blind_spot(spot, len(spatial_shape), spatial_shape)

    def _check_spatial_shape(self, spatial_shape):
        """Refuse an image the filter cannot serve (one smaller than its reach, say)
        before any work; none by default.

        Runs in ``fit``, on every call (from the data's shape: cheap), and for a dask
        array on the whole image's shape, before any chunk is computed.
        """

    def _validate(self, X, *, reset, whole_spatial_shape=None):
        """The float stack, the intensity scale of its original dtype, and whether X was
        a single image (``spatial_ndim`` given) that got a sample axis.

        ``whole_spatial_shape`` is the shape :meth:`_check_spatial_shape` judges when X
        stands for a larger image (a patch checked for a dask array in ``fit``); a chunk's
        estimator carries it as ``_whole_spatial_shape`` (see
        :meth:`_blockwise_block_estimator`).
        """
        X, scale, single = check_stack(
            X, channel_axis=self.channel_axis, spatial_ndim=self.spatial_ndim,
            min_spatial_size=self._min_spatial_size(), return_scale=True,
            return_single=True)
        n_spatial = X.ndim - 1 - (self.channel_axis is not None)
        if whole_spatial_shape is None:
            whole_spatial_shape = getattr(self, "_whole_spatial_shape", X.shape[1:1 + n_spatial])
        if reset:
            # before any fitted attribute is set: a refused fit leaves no fitted state
            self._check_params_against_data(n_spatial)
            self._check_blind_spot(tuple(int(n) for n in whole_spatial_shape))
            self._check_spatial_shape(tuple(int(s) for s in whole_spatial_shape))
            if self.spatial_ndim is None and n_spatial == 1 and X.shape[0] > 1:
                _warn_ambiguous_axes(X.shape, self.channel_axis, stacklevel=5)
            self.n_spatial_dims_ = n_spatial
            self.n_features_in_ = int(np.prod(X.shape[1:]))
        elif n_spatial != self.n_spatial_dims_:
            raise ValueError(
                f"X has {n_spatial} spatial axes, but {type(self).__name__} was fitted on "
                f"data with {self.n_spatial_dims_}."
            )
        else:
            self._check_spatial_shape(tuple(int(s) for s in whole_spatial_shape))
        return X, scale, single

    def _prepare(self, X):
        """Check fitted; return ``(X, scale, unit, single)`` for the filters.

        ``X`` is the validated float stack divided by ``unit`` (a power of two, 1.0 for
        all but huge values, see :func:`internal_unit`), ``scale`` maps the input's
        intensities to those internal units, ``single`` says X was one image. The
        parameters are not checked again: that happens once, in ``fit``.
        """
        check_is_fitted(self)
        X, scale, single = self._validate(X, reset=False)
        unit = internal_unit(X)
        if unit != 1.0:
            X = X / X.dtype.type(unit)  # exact: a power of two
            scale = scale / unit
        return X, scale, unit, single

    def _in_internal_units(self, unit):
        """The estimator that filters ``X / unit``: itself, or a per-call copy.

        Intensity parameters scaled by ``scale`` follow the internal unit by
        themselves; a parameter rescaled only on request (the wavelet's ``sigma`` with
        ``rescale_sigma=False``) is asked to follow it too. Only float input gets a unit
        other than 1, and there the request changes nothing else (its intensity scale
        is 1).
        """
        if unit == 1.0 or getattr(self, "rescale_sigma", True):
            return self
        estimator = copy.copy(self)
        estimator.rescale_sigma = True
        return estimator

    def _to_input_units(self, out, X, unit, single):
        """Multiply an output back by ``unit`` (X is the internal stack); refuse a
        non-finite result; drop the sample axis of a single image."""
        if unit != 1.0:
            with np.errstate(over="ignore"):
                out *= out.dtype.type(unit)
        if not np.all(np.isfinite(out)):
            raise ValueError(
                f"{type(self).__name__}: the output leaves the range of {out.dtype} "
                f"(magnitudes up to {np.finfo(out.dtype).max:.3g}) for X with values up "
                f"to {_peak(X, unit):.3g} in magnitude. Convert X to float64 or divide it "
                "by a constant first."
            )
        return out[0] if single else out

    def _loss_in_input_units(self, value, X, unit, degree):
        """A loss computed on the internal stack X, in the input's units; refused if
        not finite."""
        with np.errstate(over="ignore"):
            value = float(np.float64(value) * np.float64(unit) ** degree)
        if not np.isfinite(value):
            raise ValueError(
                f"{type(self).__name__}: the self-supervised loss of X overflows float64 "
                f"(largest value {np.finfo(np.float64).max:.3g}): X holds values up to "
                f"{_peak(X, unit):.3g} in magnitude, whose squared errors cannot be "
                "represented. Divide X by a constant (e.g. its maximum) first."
            )
        return value

    # -------------------------------------------------------------------- contract
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the parameters and the data; nothing is learned by a fixed filter.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, *spatial[, n_channels])
            With ``spatial_ndim`` set, also one image ``(*spatial[, n_channels])``.
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

            X = self._dask_stack(X)[0]
            # Nothing is learned: check the shape and dtype without loading the array.
            _check_dask_stack(X, self.channel_axis)
            spatial_end = X.ndim - (self.channel_axis is not None)
            self._validate(np.zeros((1,) + tuple(min(n, 8) for n in X.shape[1:]),
                                    dtype=X.dtype), reset=True,
                           whole_spatial_shape=X.shape[1:spatial_end])
            self.n_features_in_ = int(np.prod(X.shape[1:]))
            if self.spatial_ndim is None and self.n_spatial_dims_ == 1 and X.shape[0] > 1:
                _warn_ambiguous_axes(X.shape, self.channel_axis, stacklevel=4)
        else:
            X = self._validate(X, reset=True)[0]
        self._fit_blind_spot(X)
        return self

    def transform(self, X):
        """Denoise X; what is returned depends on ``output``.

        ``'shrink'`` (default) returns the optimal mix of the J-invariant prediction and
        the data (see the module notes), ``'ordinary'`` the ordinary filter,
        ``'invariant'`` the J-invariant prediction.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, *spatial[, n_channels])
            Images with as many spatial axes as the data seen in ``fit`` (any size);
            with ``spatial_ndim`` set, also one image ``(*spatial[, n_channels])``.

        Returns
        -------
        X_denoised : ndarray or dask array of the same shape as X
            float32 for float16/float32 input, else float64, in the input's float units
            (integer images are scaled like :func:`skimage.util.img_as_float`). Lazy
            for a dask array (see :mod:`sklearn_n2s.blockwise`).
        """
        if _is_dask_array(X):
            return self._blockwise(X, "transform")
        X, scale, unit, single = self._prepare(X)
        estimator = self._in_internal_units(unit)
        if self.output == "ordinary":
            out = estimator._denoise_memoised(X, scale)
            if not out.flags.writeable:  # the cache's own array: the caller gets a copy
                out = out.copy()
        elif self.output == "auto":
            outputs, risks = estimator._outputs_and_risks(X, scale, OUTPUTS)
            out = _lowest_risk_per_sample(outputs, risks)
        else:
            out = estimator._invariant(X, scale)
            if self.output == "shrink":
                out = shrink_towards_data(out, X, estimator._noise_variance(X, scale))[0]
        return self._to_input_units(out, X, unit, single)

    def estimated_risk(self, X):
        """Estimated mean squared error, against the unknown clean data, of what
        :meth:`transform` returns.

        Needs no clean data: for the J-invariant and shrunk outputs it follows from the
        self-supervised loss and the noise variance, for the ordinary filter it is
        Stein's unbiased risk estimate with a one-probe divergence; ``output='auto'``
        takes the lowest of the three per sample (see :func:`sklearn_n2s.base.output_risks`).
        Unlike the self-supervised loss it compares outputs of different kinds, which is
        what :class:`~sklearn_n2s.EstimatedRiskScorer` and
        :class:`~sklearn_n2s.AutoDenoiser` use it for. It assumes noise independent
        between pixels with the variance ``noise_variance`` (or the estimated one); with
        a structured ``blind_spot`` the ordinary output's estimate ignores the noise's
        correlation.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
            Images with as many spatial axes as the data seen in ``fit``.

        Returns
        -------
        risk : float
            Mean over the samples, in the units of :meth:`self_supervised_loss`
            (squared float units of the input). An estimate: it may fall below 0 when
            the true error is near 0.
        """
        X, scale, unit, _ = self._prepare(X)
        estimator = self._in_internal_units(unit)
        kinds = OUTPUTS if self.output == "auto" else (self.output,)
        risks = estimator._outputs_and_risks(X, scale, kinds)[1]
        per_sample = np.min(np.stack(list(risks.values())), axis=0)
        return self._loss_in_input_units(np.mean(per_sample), X, unit, 2)

    def _outputs_and_risks(self, X, scale, kinds):
        """``({kind: output}, {kind: estimated risk per sample})`` in internal units."""
        variance = self._noise_variance(X, scale)
        outputs, loss, residual, divergence = {}, None, None, None
        if "invariant" in kinds or "shrink" in kinds:
            invariant = self._invariant(X, scale)
            loss = _mean_per_sample(np.square(invariant - X, dtype=np.float64))
            outputs["invariant"] = invariant
            if "shrink" in kinds:
                outputs["shrink"] = shrink_towards_data(invariant, X, variance)[0]
        if "ordinary" in kinds:
            outputs["ordinary"], divergence = self._ordinary_and_divergence(X, scale, variance)
            residual = _mean_per_sample(np.square(outputs["ordinary"] - X, dtype=np.float64))
        risks = output_risks(loss, variance, ordinary_residual=residual,
                             divergence=divergence)
        return ({k: outputs[k] for k in kinds}, {k: risks[k] for k in kinds})

    def _ordinary_and_divergence(self, X, scale, variance):
        """The ordinary filter and its variance-weighted mean divergence per sample.

        ``mean(b * (f(x + eps w b) - f(x))) / eps`` with ``b`` random signs: its
        expectation over ``b`` is the mean of ``w_i d f_i / d x_i`` (to first order in
        eps), ``w`` each pixel's noise variance relative to the mean (read from the
        data's intensity, :func:`~sklearn_n2s.utils._noise.noise_variance_weights`: 1
        under homogeneous noise), which is what Stein's estimate needs under photon
        noise. With ``_divergence_probes`` above one, the mean over that many probes.
        Every sample gets the same signs (from fixed seeds), so a sample's
        estimate, and the output ``'auto'`` picks for it, depends neither on the other
        samples nor on their order nor on the input's dtype.
        """
        ordinary = self._denoise_memoised(X, scale)
        shape = (-1,) + (1,) * (X.ndim - 1)
        step = self._divergence_step * np.sqrt(np.asarray(variance, dtype=np.float64))
        if not np.any(step > 0):
            return ordinary, np.zeros(X.shape[0])
        step = np.where(step > 0, step, 1.0).reshape(shape)
        weights = self._variance_weights(X, ordinary).astype(X.dtype)
        divergence = np.zeros(X.shape[0])
        for seed in range(self._divergence_probes):
            signs = np.random.default_rng(seed).integers(0, 2, size=X.shape[1:],
                                                         dtype=np.int8)
            probe = np.broadcast_to((2 * signs - 1).astype(X.dtype), X.shape)
            moved = self._denoise(X + step.astype(X.dtype) * (probe * weights), scale)
            moved -= ordinary
            divergence += _mean_per_sample(probe * moved) / step.ravel()
        return ordinary, divergence / self._divergence_probes

    def _variance_weights(self, X, guide):
        """Each pixel's noise variance relative to its image's (and channel's) mean."""
        weights = np.empty(X.shape)
        for i in range(X.shape[0]):
            if self.channel_axis is None:
                weights[i] = noise_variance_weights(X[i], guide[i])
                continue
            for c in range(X.shape[-1]):
                weights[i, ..., c] = noise_variance_weights(X[i, ..., c], guide[i, ..., c])
        return weights

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
            return self._blockwise(X, "invariant_transform")
        X, scale, unit, single = self._prepare(X)
        out = self._in_internal_units(unit)._invariant(X, scale)
        return self._to_input_units(out, X, unit, single)

    def _dask_stack(self, X):
        """A dask image as a stack: ``(X, single)``, as :func:`check_stack` does."""
        if self.spatial_ndim is not None and (
                X.ndim == self.spatial_ndim + (self.channel_axis is not None)):
            return X[np.newaxis], True
        return X, False

    def _blockwise(self, X, method):
        from ._blockwise import blockwise_transform

        X, single = self._dask_stack(X)
        out = blockwise_transform(self, X, method=method)
        return out[0] if single else out

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
        X, scale, unit, _ = self._prepare(X)
        estimator = self._in_internal_units(unit)
        invariant = estimator._invariant(X, scale)
        return shrink_towards_data(invariant, X, estimator._noise_variance(X, scale))[1]

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
        X, scale, unit, _ = self._prepare(X)
        estimator = self._in_internal_units(unit)
        if isinstance(loss, str) and loss in RESIDUAL_LOSSES:
            value = RESIDUAL_LOSSES[loss](estimator._invariant_residual(X, scale))
            return self._loss_in_input_units(value, X, unit, _LOSS_DEGREE[loss])
        prediction, covered = estimator._invariant_covered(X, scale)
        loss_fn = get_loss(loss)
        if covered is not None:
            prediction, X = prediction[covered], X[covered]
        if unit == 1.0:
            return self._loss_in_input_units(loss_fn(prediction, X), X, 1.0, 0)
        # a callable sees the input's units
        with np.errstate(over="ignore"):
            value = loss_fn(prediction * X.dtype.type(unit), X * X.dtype.type(unit))
        return self._loss_in_input_units(value, X, unit, 0)

    # ------------------------------------------------------------- overridable steps
    #: Divergence probe step in noise standard deviations (see _DIVERGENCE_STEP).
    _divergence_step = _DIVERGENCE_STEP
    #: Random probes averaged for the divergence: one filtering each. One suffices for
    #: a smooth filter; a family whose output jumps raises it.
    _divergence_probes = 1

    def _invariant_covered(self, X, scale):
        return self._invariant(X, scale), None

    def _denoise_memoised(self, X, scale):
        """The ordinary filter, from a cache where the family keeps one (see
        :class:`~sklearn_n2s.image.MaskedImageCache`); read-only when it does."""
        return self._denoise(X, scale)

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
        variances = estimate_noise_variance(X, channel_axis=self.channel_axis)
        correlation = getattr(self, "noise_correlation_", None)
        if correlation is not None and not correlation.is_white:
            # the finest-scale estimate misses the power correlated noise puts at
            # coarser scales; the shrinkage weight needs the per-pixel variance
            variances = variances / correlation.high_pass_gain()
        return variances

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
        """The (shallow, fitted) copy that runs on one chunk of an image of ``spatial_shape``.

        The whole image is checked here, once, before any chunk runs; the copy then
        judges its chunks by that shape (a chunk may be smaller than the filter's reach
        while the image is not).
        """
        spatial_shape = tuple(int(s) for s in spatial_shape)
        self._check_spatial_shape(spatial_shape)
        block_estimator = copy.copy(self)
        block_estimator._whole_spatial_shape = spatial_shape
        return block_estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        tags.requires_fit = True
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _mean_per_sample(values):
    """Mean over every axis but the first, in float64."""
    return np.mean(values, axis=tuple(range(1, values.ndim)), dtype=np.float64)


def _lowest_risk_per_sample(outputs, risks):
    """Per sample, the output whose estimated risk is lowest (ties: the first kind)."""
    kinds = list(outputs)
    best = np.argmin(np.stack([risks[k] for k in kinds]), axis=0)
    out = np.array(outputs[kinds[0]], copy=True)
    for i, k in enumerate(best):
        out[i] = outputs[kinds[k]][i]
    return out


def _peak(X, unit):
    """Largest magnitude of the input whose internal stack is X (for messages)."""
    return max(float(np.max(X)), -float(np.min(X))) * unit


def _warn_ambiguous_axes(shape, channel_axis, stacklevel):
    channels = ", n_channels" if channel_axis is not None else ""
    warnings.warn(
        f"X has shape {shape}: read as {shape[0]} one-dimensional signals of "
        f"{shape[1]} pixels (n_samples, L{channels}). For one 2-D image pass "
        "spatial_ndim=2 (or X[np.newaxis]); for a stack of 1-D signals pass "
        "spatial_ndim=1 to silence this warning.",
        SpatialAxesWarning, stacklevel=stacklevel,
    )


class BaseImageDenoiser(JInvariantDenoiserMixin, TransformerMixin, BaseEstimator):
    """Base class of the classical image denoisers (not for direct use)."""
