"""Molecular cross-validation as a scorer for scikit-learn's model selection.

The split and its corrections are in :mod:`sklearn_n2s.table._mcv`; see there for when
to use molecular cross-validation rather than the column partition.

References
----------
Batson, J., Royer, L. & Webber, J. (2019). Molecular cross-validation for single-cell
RNA-seq. bioRxiv 786269.
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils._param_validation import StrOptions, validate_parameter_constraints

from ..table._column_masking import check_finite_loss, elementwise_loss
from ..table._mcv import (
    FRACTION_CONSTRAINT,
    MCV_LOSSES,
    SAMPLE_RATIO_CONSTRAINT,
    convert_sqrt_expectation,
    molecular_split,
    overlap_correction,
)
from ..utils._table_validation import IntervalNotBool, row_chunks, to_dense


class MolecularCrossValidationScorer:
    """Scorer ``(estimator, X, y=None) -> -loss`` by molecular cross-validation.

    Splits the counts X into A (share ``p``) and B, fits a clone of the estimator on A,
    applies it to A and scores the output, brought to B's depth, against B:

    - ``'sqrt_mse'``: the estimator is given ``sqrt(A)`` and returns denoised square-root
      counts; negative ones are taken as 0 (at every ``p``: an expected square root is
      not negative), they are converted to B's depth with
      :func:`convert_sqrt_expectation` (the identity for ``p=0.5``) and compared with
      ``sqrt(B)`` by mean squared error.
    - ``'poisson'``: the estimator is given A and returns expected counts; they are
      scaled by ``p_b / p_a`` and compared with B by mean Poisson deviance.
    - ``'mse'``: as ``'poisson'``, with the mean squared error.

    Sparse counts stay sparse: the split keeps the stored entries only, the held-out
    part is densified one block of rows at a time, and so is the estimator's output when
    its rows are independent (the table denoisers of this package; a kNN smoother gives
    its whole output at once). Scoring a low-rank denoiser on a 40,000 x 4,000 sparse
    matrix peaks at a fraction of its 1.2 GiB dense size
    (``tests/model_selection/test_mcv_sparse.py``).

    Use it as ``GridSearchCV(..., scoring=MolecularCrossValidationScorer(),
    cv=FullSplit())``: the estimator the search fits on X is ignored by the scorer,
    which fits its own on A (so each candidate costs two fits); the split is the same
    for every candidate (seeded by ``random_state``).

    Parameters
    ----------
    p : float in (0, 1), default=0.9
        Share of the counts used for fitting. The denoiser is fitted at ``p`` times the
        data's depth, where fewer components are supported, so MCV leans towards too
        simple a model; a large ``p`` shrinks that bias at the cost of a noisier held-out
        part. 0.9 was chosen by measurement (``benchmarks/bench_mcv_split.py``,
        ``benchmarks/results/mcv_split.md``): on pbmc68k's counts thinned to 10, 20 and
        50 % depth (5 seeds each; low rank on log-normalised counts with the Poisson
        loss, and on square-root counts with ``'sqrt_mse'``), the rank chosen with
        ``p=0.9`` was on average 1.6 % (Poisson) and 1.4 % (square root) worse than the
        grid's best against the full-depth data, against 2.2 % and 2.5 % with 0.7 and
        3.0 % and 5.0 % with the former default 0.5, which picked ranks 2-4 where 4-8
        were best at 10-20 % depth; judged on the held-out molecules instead, 0.03 % and
        0.07 % (0.9), 0.3 % and 0.1 % (0.7), 0.8 % and 1.9 % (0.5).
    loss : {'sqrt_mse', 'poisson', 'mse'}, default='sqrt_mse'
    sample_ratio : float in [0, 1), default=0.0
        Captured fraction of the cell's molecules, for the overlap correction.
    random_state : int, default=0
        Seed of the split (an int, so every candidate sees the same split).

    See Also
    --------
    sklearn_n2s.table.molecular_split : the split itself.
    sklearn_n2s.SelfSupervisedScorer : the column-partition (Noise2Self) loss, for any
        data.

    References
    ----------
    .. [1] Batson, J., Royer, L. & Webber, J. (2019). Molecular Cross-Validation for
       Single-Cell RNA-seq. bioRxiv 786269.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_n2s import FullSplit
    >>> from sklearn_n2s.model_selection import MolecularCrossValidationScorer
    >>> from sklearn_n2s.table import LowRankDenoiser
    >>> rng = np.random.default_rng(0)
    >>> rates = rng.gamma(2.0, 1.0, (300, 3)) @ rng.gamma(2.0, 1.0, (3, 40))
    >>> X = rng.poisson(rates)
    >>> search = GridSearchCV(LowRankDenoiser(random_state=0),
    ...                       {"n_components": [1, 3, 10]},
    ...                       scoring=MolecularCrossValidationScorer(), cv=FullSplit())
    >>> search.fit(X).best_params_
    {'n_components': 3}
    """

    # The same constraint objects as the estimators' (sklearn's InvalidParameterError and
    # message), checked at construction: a scorer has no fit.
    _parameter_constraints: dict = {
        "p": FRACTION_CONSTRAINT,
        "loss": [StrOptions(set(MCV_LOSSES))],
        "sample_ratio": SAMPLE_RATIO_CONSTRAINT,
        "random_state": [IntervalNotBool(Integral, 0, 2**32 - 1, closed="both")],
    }

    def __init__(self, p=0.9, loss="sqrt_mse", sample_ratio=0.0, random_state=0):
        validate_parameter_constraints(
            self._parameter_constraints,
            {"p": p, "loss": loss, "sample_ratio": sample_ratio,
             "random_state": random_state},
            caller_name=type(self).__name__,
        )
        self.p = p
        self.loss = loss
        self.sample_ratio = sample_ratio
        self.random_state = random_state

    def __call__(self, estimator, X, y=None, **kwargs):
        """Minus the MCV loss of a clone of ``estimator`` on counts X (greater is better).

        Parameters
        ----------
        estimator : estimator
            A transformer that denoises; a clone is fitted on the first part of X, the
            estimator itself is not used nor changed.
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.
        y : None
            Ignored.
        **kwargs : dict
            Ignored (what a scikit-learn search may pass to a scorer).

        Returns
        -------
        score : float
            ``-loss_of(estimator, X)``.
        """
        return -self.loss_of(estimator, X)

    def loss_of(self, estimator, X):
        """The MCV loss (lower is better) of a clone of ``estimator`` on counts X.

        Parameters
        ----------
        estimator : estimator
            A transformer that denoises; a clone is fitted on the first part of X.
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative integer counts.

        Returns
        -------
        loss : float
            The mean ``loss`` of the clone's output on the first part, brought to the
            second part's depth, against the second part.
        """
        A, B = molecular_split(X, self.p, sample_ratio=self.sample_ratio,
                               random_state=self.random_state)
        p_a, p_b, _ = overlap_correction(self.p, self.sample_ratio)
        if self.loss == "sqrt_mse":
            A = A.sqrt() if sp.issparse(A) else np.sqrt(A, out=A)
        model = clone(estimator).fit(A)
        total, n_entries = 0.0, A.shape[0] * A.shape[1]
        for rows, output in _outputs_by_rows(model, A):
            target = to_dense(B[rows])
            if self.loss == "sqrt_mse":  # negatives as 0, at B's depth
                prediction, target = convert_sqrt_expectation(output, p_a, p_b), np.sqrt(target)
                name = "mse"
            else:
                prediction, name = output * (p_b / p_a), self.loss
            # divided before summing: a sum of large squared errors could overflow first
            total += float(np.sum(elementwise_loss(name, prediction, target) / n_entries))
        return check_finite_loss(total)

    def __repr__(self):
        return (f"MolecularCrossValidationScorer(p={self.p!r}, loss={self.loss!r}, "
                f"sample_ratio={self.sample_ratio!r}, random_state={self.random_state!r})")


def _outputs_by_rows(model, A):
    """Yield ``(rows, dense output)`` for blocks of rows covering A.

    A sparse A is never densified as a whole: the target is densified block by block,
    and so is the output of a model whose rows are independent (the table denoisers of
    this package say so with ``_row_independent``; a kNN smoother does not, and gives
    its output for all rows at once, as a scikit-learn transformer of unknown kind does).
    """
    if getattr(model, "_row_independent", False) is True:
        for rows in row_chunks(*A.shape):
            yield rows, to_dense(model.transform(A[rows]))
        return
    output = to_dense(model.transform(A))
    for rows in row_chunks(*A.shape):
        yield rows, output[rows]
