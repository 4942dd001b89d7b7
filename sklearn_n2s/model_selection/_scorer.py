"""Self-supervised scoring for scikit-learn's model selection, and a no-split CV."""

import numpy as np
from sklearn.pipeline import Pipeline

from ..utils._losses import get_loss


def _invariant_step(estimator, X):
    """The estimator that predicts J-invariantly, and the data it predicts.

    A :class:`~sklearn.pipeline.Pipeline` is scored on its last step, fed with the
    output of the earlier steps: the loss is computed in that transformed space. That
    is J-invariant when the earlier steps act on each coordinate on its own (scaling,
    a variance-stabilising transform), which is what such a pipeline should hold.
    """
    return _final_step(estimator, X, ("self_supervised_loss", "invariant_transform"),
                       "invariant_transform: the self-supervised loss needs a J-invariant "
                       "estimator (or a Pipeline ending in one).")


def _final_step(estimator, X, methods, refusal):
    """The estimator, or a Pipeline's last step fed by the earlier ones, if it has one of
    ``methods``: ``(step, X it sees)``; else a TypeError, ``"<name> has no <refusal>"``."""
    if isinstance(estimator, Pipeline):
        Xt = estimator[:-1].transform(X) if len(estimator) > 1 else X
        return _final_step(estimator[-1], Xt, methods, refusal)
    if any(hasattr(estimator, m) for m in methods):
        return estimator, X
    raise TypeError(f"{type(estimator).__name__} has no {refusal}")


def self_supervised_loss(estimator, X, loss="mse"):
    """Loss of a fitted estimator's J-invariant prediction of X against X.

    Uses the estimator's own ``self_supervised_loss`` when it has one (which knows an
    approximate, subset-of-cosets loss), otherwise compares ``invariant_transform(X)``
    with X over all coordinates. For a J-invariant prediction f and noise independent
    across the partition and zero-mean given the clean signal y,
    ``E||f(x) - x||^2 = E||f(x) - y||^2 + E||x - y||^2``: the loss ranks estimators as
    the loss against the unknown clean data would.

    Parameters
    ----------
    estimator : estimator
        A fitted estimator with ``self_supervised_loss`` or ``invariant_transform``, or
        a fitted :class:`~sklearn.pipeline.Pipeline` ending in one (its earlier steps
        transform X first and the loss is computed in their output space).
    X : array-like or sparse matrix
        The data to predict: an image stack or a table.
    loss : {'mse', 'mae'} or callable, default='mse'
        ``loss(prediction, target) -> float``, lower is better.

    Returns
    -------
    loss : float
        The self-supervised loss, lower is better.

    References
    ----------
    .. [1] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       Proceedings of the 36th International Conference on Machine Learning (ICML),
       2019. arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s import JInvariantGaussian, self_supervised_loss
    >>> X = np.random.default_rng(0).normal(size=(1, 32, 32))
    >>> est = JInvariantGaussian(sigma=1.0).fit(X)
    >>> bool(np.isclose(self_supervised_loss(est, X),
    ...                 np.mean((est.invariant_transform(X) - X) ** 2)))
    True
    """
    step, Xt = _invariant_step(estimator, X)
    if hasattr(step, "self_supervised_loss"):
        return step.self_supervised_loss(Xt, loss=loss)
    prediction = step.invariant_transform(Xt)
    target = Xt.toarray() if hasattr(Xt, "toarray") else np.asarray(Xt)
    prediction = prediction.toarray() if hasattr(prediction, "toarray") else prediction
    return get_loss(loss)(prediction, target)


class SelfSupervisedScorer:
    """Scorer that returns minus the Noise2Self loss: ``(estimator, X, y=None) -> -loss``.

    For a J-invariant prediction and noise independent across coordinates, the expected
    self-supervised loss equals the loss against the unknown clean data plus the noise
    variance, so it ranks hyperparameters as the clean data would. Pass it as
    ``scoring=`` to :class:`~sklearn.model_selection.GridSearchCV`,
    ``RandomizedSearchCV``, ``HalvingGridSearchCV`` or ``cross_val_score``, alone or in
    a multi-metric dict.

    Parameters
    ----------
    loss : {'mse', 'mae'} or callable, default='mse'
        ``loss(prediction, target) -> float``, lower is better.

    See Also
    --------
    self_supervised_loss : The loss itself; this scorer returns minus it.

    References
    ----------
    .. [1] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       Proceedings of the 36th International Conference on Machine Learning (ICML),
       2019. arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import FullSplit, JInvariantGaussian, SelfSupervisedScorer
    >>> rng = np.random.default_rng(0)
    >>> X = np.sin(np.linspace(0, 6, 64))[None, :] + rng.normal(0, 0.3, (1, 64))
    >>> search = GridSearchCV(JInvariantGaussian(), {"sigma": [0.5, 2.0, 4.0]},
    ...                       scoring=SelfSupervisedScorer(), cv=FullSplit())
    >>> search.fit(X).best_params_["sigma"] > 0.5
    True
    """

    def __init__(self, loss="mse"):
        get_loss(loss)
        self.loss = loss

    @property
    def self_supervised_loss_name(self):
        """The loss's name when it is a named loss, else None.

        Estimators that score every candidate from one decomposition
        (:class:`~sklearn_n2s.LowRankDenoiserCV`) read it to recognise this scorer and
        compute the same loss on their fast path.
        """
        return self.loss if isinstance(self.loss, str) else None

    def __call__(self, estimator, X, y=None, **kwargs):
        """Minus the self-supervised loss of a fitted estimator on X.

        Parameters
        ----------
        estimator : estimator
            Fitted J-invariant estimator, or a Pipeline ending in one.
        X : array-like or sparse matrix
            The held-out data.
        y : None
            Ignored: the self-supervised setting has no targets.
        **kwargs : dict
            Ignored (scikit-learn may pass routed parameters).

        Returns
        -------
        score : float
            ``-self_supervised_loss(estimator, X, loss=self.loss)``: greater is better.
        """
        return -self_supervised_loss(estimator, X, loss=self.loss)

    def __repr__(self):
        return f"SelfSupervisedScorer(loss={self.loss!r})"


def _risk_step(estimator, X):
    """The step that estimates its risk, and the data it sees (a Pipeline's last step)."""
    return _final_step(estimator, X, ("estimated_risk",),
                       "estimated_risk: the risk scorer needs an image denoiser of "
                       "sklearn_n2s.image (or a Pipeline ending in one).")


class EstimatedRiskScorer:
    """Scorer that returns minus the estimated error of what ``transform`` returns.

    :class:`SelfSupervisedScorer` ranks J-invariant predictions; a denoiser's
    ``transform`` may return something else: the ordinary filter, or a mix with the data.
    This scorer ranks those outputs by their estimated mean squared error against the
    unknown clean data (the estimator's ``estimated_risk``): ``L - s2`` for the
    invariant output, ``s2 (L - s2) / L`` for the shrunk one (both ordered as the
    self-supervised loss ``L`` orders them), and Stein's unbiased risk estimate with a
    random-probe divergence for the ordinary filter, ``s2`` the noise variance (given or
    estimated). Put ``output`` in the grid (or set ``output='auto'``) and a
    ``GridSearchCV`` with this scorer picks the parameter *and* the output a user gets.

    It needs a noise model the self-supervised loss does not: noise independent between
    pixels with the estimated variance. Under Poisson or clipped noise the estimates are
    biased (benchmarks/transform_quality.py measures what that costs).

    See Also
    --------
    SelfSupervisedScorer : The model-free loss of the J-invariant prediction.

    References
    ----------
    .. [1] C. M. Stein, "Estimation of the mean of a multivariate normal distribution",
       The Annals of Statistics 9(6), 1981.
    .. [2] S. Ramani, T. Blu and M. Unser, "Monte-Carlo SURE: a black-box optimization
       of regularization parameters for general denoising algorithms", IEEE TIP 17(9),
       2008.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import EstimatedRiskScorer, FullSplit, JInvariantGaussian
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:64, :64]
    >>> X = (np.sin(xx / 6.0) + rng.normal(0, 0.3, (64, 64)))[np.newaxis]
    >>> grid = {"sigma": [0.5, 1.0, 2.0], "output": ["ordinary", "shrink"]}
    >>> search = GridSearchCV(JInvariantGaussian(), grid, scoring=EstimatedRiskScorer(),
    ...                       cv=FullSplit()).fit(X)
    >>> sorted(search.best_params_)
    ['output', 'sigma']
    """

    def __call__(self, estimator, X, y=None, **kwargs):
        """Minus the estimated risk of a fitted estimator's ``transform`` on X.

        Parameters
        ----------
        estimator : estimator
            A fitted image denoiser, or a Pipeline ending in one.
        X : array-like
            The data.
        y : None
            Ignored.
        **kwargs : dict
            Ignored (scikit-learn may pass routed parameters).

        Returns
        -------
        score : float
            ``-estimator.estimated_risk(X)``: greater is better.
        """
        step, Xt = _risk_step(estimator, X)
        return -step.estimated_risk(Xt)

    def __repr__(self):
        return "EstimatedRiskScorer()"
