"""The contract every sklearn_n2s denoiser keeps, whatever its family.

Every denoiser (image, table, neural) is a scikit-learn estimator whose
``self_supervised_loss(X)`` compares a J-invariant prediction of X with X itself; its
``score`` is minus that loss (:class:`SelfSupervisedScoreMixin`), so a plain
:class:`~sklearn.model_selection.GridSearchCV` ranks parameters by the Noise2Self loss.
The outputs a ``transform`` can keep are :data:`OUTPUTS`; the default mixes the invariant
prediction with the data (:func:`shrink_towards_data`).

This module is a leaf: it imports numpy only, so every family and every layer above it
can use it.

Why ``transform`` shrinks by default
------------------------------------
The self-supervised loss ``L`` ranks J-invariant outputs exactly, but the invariant
output throws the centre pixel away and the ordinary filter at the invariant pick can
be far off. ``x + lam * (f_inv(x) - x)`` with ``lam = sigma**2 / L`` is the mix with the
lowest expected error (Batson & Royer 2019, section 4); :func:`output_risks` estimates
the error of each kind of output, which ``output='auto'`` and
:class:`~sklearn_n2s.EstimatedRiskScorer` use. The derivations and the measurements
(``benchmarks/transform_quality.py``) are in the user guide's page on outputs
(``doc/user_guide/outputs.rst``).

References
----------
Batson, J. & Royer, L. (2019). Noise2Self: Blind Denoising by Self-Supervision.
Proceedings of the 36th International Conference on Machine Learning (ICML), PMLR 97,
524-533. arXiv:1901.11365.
"""

import numpy as np

#: What ``transform`` returns, chosen by ``output=``.
OUTPUTS = ("shrink", "ordinary", "invariant")

#: The image families' outputs: :data:`OUTPUTS` and ``'auto'``, the one of them with the
#: lowest estimated risk, per sample (:func:`output_risks`).
IMAGE_OUTPUTS = (*OUTPUTS, "auto")


def shrink_weights(loss, noise_variance):
    """``lam = noise_variance / loss`` per sample, the variance capped at the loss.

    The self-supervised loss is the invariant output's error plus the noise variance,
    so a variance estimate above the loss is an overestimate; ``lam`` lies in [0, 1]
    (1, the invariant output, when the loss is 0).

    Parameters
    ----------
    loss : array-like of shape (n_samples,)
        Self-supervised loss of each sample.
    noise_variance : float or array-like of shape (n_samples,)
        Noise variance, in the same units as ``loss``.

    Returns
    -------
    lam : ndarray of shape (n_samples,)
        Weight of the invariant prediction, in [0, 1].
    """
    loss = np.asarray(loss, dtype=np.float64)
    noise_variance = np.minimum(np.broadcast_to(noise_variance, loss.shape), loss)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.where(loss > 0, noise_variance / np.where(loss > 0, loss, 1), 1.0)
    return np.clip(lam, 0.0, 1.0)


def shrink_towards_data(invariant, X, noise_variance):
    """Optimal per-sample mix of a J-invariant prediction and the data.

    Parameters
    ----------
    invariant : ndarray
        A J-invariant prediction of X, same shape and dtype.
    X : ndarray of shape (n_samples, ...)
        The data.
    noise_variance : float or array-like of shape (n_samples,)

    Returns
    -------
    output : ndarray
        ``X + lam * (invariant - X)``, X's dtype.
    lam : ndarray of shape (n_samples,)
        ``noise_variance / L`` per sample (see :func:`shrink_weights`), ``L`` the
        mean squared difference between ``invariant`` and X.
    """
    axes = tuple(range(1, X.ndim))
    diff = invariant - X
    loss = np.mean(np.square(diff, dtype=np.float64), axis=axes)
    lam = shrink_weights(loss, noise_variance)
    shape = (-1,) + (1,) * (X.ndim - 1)
    output = X + lam.reshape(shape).astype(X.dtype) * diff
    return output, lam


def output_risks(loss, noise_variance, *, ordinary_residual=None, divergence=None):
    """Estimated mean squared error against the clean data of each kind of output.

    Nothing here needs clean data; each estimate is unbiased for white noise of the
    given variance (per sample, in the loss's units):

    - the J-invariant output: ``L - s2``, its self-supervised loss minus the noise
      variance (the noise is independent of the prediction at each pixel);
    - the shrunk output ``x + lam (f_inv - x)`` with ``lam = min(s2 / L, 1)``: its
      error ``lam**2 (L - s2) + (1 - lam)**2 s2``, that is ``s2 (L - s2) / L`` or, where
      ``s2 >= L``, ``L - s2``; it orders parameters as ``L`` does;
    - the ordinary filter f, which looks at the pixel it predicts: Stein's unbiased risk
      estimate ``mean((f(x) - x)**2) - s2 + 2 s2 div f / n`` (Stein 1981), the
      divergence ``div f`` estimated by random probes (Ramani, Blu & Unser 2008).

    Parameters
    ----------
    loss : array-like of shape (n_samples,) or None
        Self-supervised loss of the J-invariant prediction of each sample; None leaves
        out the invariant and shrunk outputs.
    noise_variance : float or array-like of shape (n_samples,)
        Noise variance per sample. It is not capped at the loss: an estimate that is
        too high lowers every risk alike, where a cap would tie every setting whose
        loss falls below it.
    ordinary_residual : array-like of shape (n_samples,) or None, default=None
        ``mean((f(x) - x)**2)`` of the ordinary filter per sample; None leaves out the
        ordinary output.
    divergence : array-like of shape (n_samples,) or None, default=None
        Mean over the coordinates of ``d f_i / d x_i``, per sample.

    Returns
    -------
    risks : dict of str to ndarray of shape (n_samples,)
        Keyed by output name. An estimate, not a bound: it falls below 0 when the true
        error is smaller than the error of the variance estimate. Its order is what
        counts.

    References
    ----------
    .. [1] C. M. Stein, "Estimation of the mean of a multivariate normal distribution",
       The Annals of Statistics 9(6), 1981.
    .. [2] S. Ramani, T. Blu and M. Unser, "Monte-Carlo SURE: a black-box optimization
       of regularization parameters for general denoising algorithms", IEEE TIP 17(9),
       2008.

    Examples
    --------
    >>> from sklearn_n2s.base import output_risks
    >>> risks = output_risks([2.0], 1.0)
    >>> float(risks["invariant"][0]), float(risks["shrink"][0])
    (1.0, 0.5)
    >>> float(output_risks([1.0], 1.5)["shrink"][0])  # s2 above L: the invariant output
    -0.5
    """
    risks = {}
    if loss is not None:
        loss = np.asarray(loss, dtype=np.float64)
        variance = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), loss.shape)
        risks["invariant"] = loss - variance
        lam = shrink_weights(loss, variance)
        risks["shrink"] = lam**2 * (loss - variance) + (1 - lam) ** 2 * variance
    if ordinary_residual is not None:
        residual = np.asarray(ordinary_residual, dtype=np.float64)
        variance = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64),
                                   residual.shape)
        risks["ordinary"] = residual - variance + 2 * variance * np.asarray(divergence)
    return risks


class SelfSupervisedScoreMixin:
    """``score`` as minus the self-supervised loss, for every J-invariant estimator.

    The estimator provides ``self_supervised_loss(X)``; with this ``score``,
    ``GridSearchCV(scoring=None)`` ranks parameters by the Noise2Self loss.
    """

    def score(self, X, y=None):
        """Minus the self-supervised mean squared error, so that greater is better.

        Parameters
        ----------
        X : array-like
            The data the estimator denoises (an image stack or a table).
        y : None
            Ignored: the self-supervised setting has no targets.

        Returns
        -------
        score : float
        """
        return -self.self_supervised_loss(X)
