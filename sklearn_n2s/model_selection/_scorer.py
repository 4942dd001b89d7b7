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
    if isinstance(estimator, Pipeline):
        Xt = estimator[:-1].transform(X) if len(estimator) > 1 else X
        return _invariant_step(estimator[-1], Xt)
    if hasattr(estimator, "self_supervised_loss") or hasattr(estimator, "invariant_transform"):
        return estimator, X
    raise TypeError(
        f"{type(estimator).__name__} has no invariant_transform: the self-supervised "
        "loss needs a J-invariant estimator (or a Pipeline ending in one)."
    )


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
