"""A cross-validation splitter for estimators that learn nothing from the data."""

import numpy as np


class FullSplit:
    """Cross-validation "splitter" whose one split trains and tests on every sample.

    For estimators that learn nothing from the data (the classical filters), held-out
    samples add nothing: the self-supervised loss on the very samples being denoised
    is the right criterion, and a single image can be calibrated. Do not use it for
    estimators that learn (a neural net, a low-rank model): they need held-out samples.

    Parameters
    ----------
    n_repeats : int, default=1
        Number of identical splits (useful only to time repeated fits).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s import FullSplit
    >>> [(tr.tolist(), te.tolist()) for tr, te in FullSplit().split(np.zeros((3, 4)))]
    [([0, 1, 2], [0, 1, 2])]
    """

    def __init__(self, n_repeats=1):
        self.n_repeats = n_repeats

    def split(self, X, y=None, groups=None):
        """Yield ``n_repeats`` splits, each training and testing on every sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Only its number of samples is used.
        y : None
            Ignored.
        groups : None
            Ignored.

        Yields
        ------
        train : ndarray of shape (n_samples,)
            All sample indices.
        test : ndarray of shape (n_samples,)
            All sample indices.
        """
        n_samples = len(X) if not hasattr(X, "shape") else X.shape[0]
        indices = np.arange(n_samples)
        for _ in range(self.n_repeats):
            yield indices, indices

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits: ``n_repeats``.

        Parameters
        ----------
        X, y, groups : None
            Ignored, for compatibility with scikit-learn's splitters.

        Returns
        -------
        n_splits : int
        """
        return self.n_repeats

    def __repr__(self):
        return f"FullSplit(n_repeats={self.n_repeats})"
