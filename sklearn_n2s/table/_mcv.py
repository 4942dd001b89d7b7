"""Molecular cross-validation (MCV) for count data.

Batson, Royer & Webber (2019), "Molecular cross-validation for single-cell RNA-seq".
Each count is split binomially into two parts, ``A ~ Binomial(X, p)`` and ``B = X - A``.
When the counts are Poisson, A and B are independent given the signal, with means ``p``
and ``1 - p`` times the signal: a denoiser fitted on A and applied to A, with its output
rescaled to B's depth, is scored against B — an ordinary held-out loss, with no clean
data and no partition of the features.

When to use which
-----------------
- The column partition (:class:`~sklearn_n2s.SelfSupervisedScorer` with
  :class:`~sklearn_n2s.table.LowRankDenoiser` and friends) needs only independence
  across features and works on any data: normalised, log-transformed, non-count.
  It scores the J-invariant prediction (each gene group predicted from the others).
- MCV needs raw counts with (close to) Poisson sampling noise, and scores the
  *ordinary* output of any denoiser — one that is not J-invariant and has no
  J-invariant form — at a depth ``p`` times the data's, so it tends to choose a
  slightly simpler model than the full depth would support; ``p`` close to 1 reduces
  that bias (and the square-root loss then needs :func:`convert_sqrt_expectation`).
  The scorer's default, ``p=0.9``, was chosen by measurement
  (``benchmarks/results/mcv_split.md``); :func:`molecular_split` itself defaults to
  halves.

Square-root loss and the expectation correction
-----------------------------------------------
On square-root counts, ``E[sqrt(A)] = g(p * lam)`` with ``g(mu) = E[sqrt(Poisson(mu))]``,
which is not proportional to ``sqrt(p)``; for ``p != 0.5`` the denoised ``sqrt(A)`` must
be mapped to B's scale as ``g((1 - p) / p * g^-1(f))``. :func:`expected_sqrt` computes g
exactly (a sum over the Poisson distribution) up to a mean of 100 and by its asymptotic
series above. An expected square root is never negative, and ``g^-1`` is defined on
``[0, inf)`` only: negative denoised values are taken as 0 at every split, ``p = 0.5``
included (where the mapping is otherwise the identity), so the loss does not jump
between ``p = 0.5`` and its neighbours.

Overlap correction
------------------
If the captured counts are a sizeable fraction ``sample_ratio`` of the molecules in the
cell, two independent experiments would have shared some molecules; passing
``sample_ratio`` makes the two parts overlap by the expected amount (Batson et al.,
2019, supplementary note), with effective split fractions returned by
:func:`overlap_correction`.
"""

from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import validate_params

from ..utils._table_validation import (
    RANDOM_STATE_CONSTRAINT,
    IntervalNotBool,
    check_counts,
    check_table_array,
)
from ._column_masking import elementwise_loss

MCV_LOSSES = ("sqrt_mse", "poisson", "mse")
#: Constraints on the split's parameters, shared with
#: :class:`~sklearn_n2s.model_selection.MolecularCrossValidationScorer`.
FRACTION_CONSTRAINT = [IntervalNotBool(Real, 0, 1, closed="neither")]
SAMPLE_RATIO_CONSTRAINT = [IntervalNotBool(Real, 0, 1, closed="left")]
# Below this mean, E[sqrt(Poisson(mu))] is summed exactly; above, the asymptotic series
# sqrt(mu) - 1/(8 sqrt(mu)) - 7/(128 mu^1.5) is accurate to about 1e-7.
_EXACT_MAX_MEAN = 100.0
_TABLE_STEP = 0.01


def _exact_expected_sqrt(means):
    """``sum_k sqrt(k) pmf(k; mean)`` for sorted means <= ``_EXACT_MAX_MEAN``, the sum
    cut where the mass left is below 1e-20 (beyond ``mean + 10 sqrt(mean) + 40``)."""
    top = float(means[-1]) if len(means) else 0.0
    k = np.arange(1, int(top + 10 * np.sqrt(top) + 40))
    # the pmf by its recurrence pmf(k) = pmf(k - 1) mean / k from exp(-mean) (no
    # underflow below a mean of 700): one product an entry instead of an exp and a log
    # (the table's 10,001 means took 0.2 s through scipy.stats.poisson.pmf, 44 ms
    # through the log-pmf, 3 ms here; the same values to 1e-13)
    pmf = means[:, np.newaxis] / k[np.newaxis, :]
    pmf[:, 0] *= np.exp(-means)
    np.cumprod(pmf, axis=1, out=pmf)
    return pmf @ np.sqrt(k)


# Steps of 0.01 up to a mean of 10, of 0.1 above (where the curvature is a 30th of its
# value at 1: the same interpolation error, about 1e-5, at a fifth of the entries).
_TABLE_MEANS = np.concatenate([np.arange(0.0, 10.0, _TABLE_STEP),
                               np.arange(10.0, _EXACT_MAX_MEAN + 0.05, 10 * _TABLE_STEP)])
_TABLE_VALUES = None  # filled on first use (2 ms)


def _table():
    global _TABLE_VALUES
    if _TABLE_VALUES is None:
        # chunks of means, each summed as far as its largest mean needs
        _TABLE_VALUES = np.concatenate(
            [_exact_expected_sqrt(chunk) for chunk in np.array_split(_TABLE_MEANS, 40)]
        )
    return _TABLE_MEANS, _TABLE_VALUES


def expected_sqrt(mean):
    """``E[sqrt(Poisson(mean))]``, elementwise, for means >= 0.

    Parameters
    ----------
    mean : float or array-like of float
        Poisson means (negative values are taken as 0).

    Returns
    -------
    expected : ndarray of float
        Same shape as ``mean``: the exact sum over the Poisson distribution up to a mean
        of 100, the asymptotic series above (accurate to about 1e-7).

    Examples
    --------
    >>> from sklearn_n2s.table._mcv import expected_sqrt
    >>> [round(float(v), 4) for v in expected_sqrt([0.0, 1.0, 400.0])]
    [0.0, 0.7732, 19.9937]
    """
    mean = np.maximum(np.asarray(mean, dtype=np.float64), 0.0)
    means, values = _table()
    large = np.maximum(mean, _EXACT_MAX_MEAN)
    series = np.sqrt(large) - 1 / (8 * np.sqrt(large)) - 7 / (128 * large**1.5)
    return np.where(mean <= _EXACT_MAX_MEAN, np.interp(mean, means, values), series)


def _inverse_expected_sqrt(values):
    """The mean whose expected square root is ``values`` (monotone interpolation)."""
    values = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
    top = max(float(values.max(initial=0.0)) ** 2 * 1.1 + 10.0, 2 * _EXACT_MAX_MEAN)
    grid = np.concatenate([_TABLE_MEANS, np.geomspace(_EXACT_MAX_MEAN * 1.001, top, 4000)])
    return np.interp(values, expected_sqrt(grid), grid)


# Uniform intervals of the lookup table of mean_from_expected_sqrt.
_LOOKUP_INTERVALS = 1 << 16
# Entries converted at once: float64 temporaries of 256 KB, in cache and reused (blocks
# of 2^20 entries took twice the time on pbmc68k, most of it in fresh pages).
_LOOKUP_BLOCK = 1 << 15


def mean_from_expected_sqrt(values):
    """The Poisson means whose expected square roots are ``values``, elementwise.

    The inverse of :func:`expected_sqrt` (values below 0 are taken as 0): a table of
    2^16 uniform intervals up to the largest value, built with the exact inverse, then
    linear interpolation by index arithmetic (no search), a block of entries at a time.
    Within about 1e-4 (relative) of the exact inverse; float32 values give float32
    means.

    A denoiser of square-root counts estimates ``E[sqrt(x)]``; its square is biased
    low as an expected count (by about 1/4 at large means, and by far more where
    counts are rare: ``E[sqrt(Poisson(m))]`` is about m for a small m, whose square
    is m^2), this is not.

    Parameters
    ----------
    values : array-like of shape (n_samples, n_features) or (n_samples,)
        Expected square roots of Poisson counts.

    Returns
    -------
    means : ndarray of the same shape
        float32 for float32 values, else float64.

    Examples
    --------
    >>> from sklearn_n2s.table import expected_sqrt, mean_from_expected_sqrt
    >>> means = mean_from_expected_sqrt(expected_sqrt([0.05, 1.0, 400.0]))
    >>> [round(float(v), 4) for v in means]
    [0.05, 1.0, 400.0]
    """
    values = np.asarray(values)
    dtype = np.float32 if values.dtype == np.float32 else np.float64
    return _means_into(values, np.empty(values.shape, dtype=dtype))


def _means_into(values, out):
    """:func:`mean_from_expected_sqrt` of ``values`` written into ``out`` (of its shape,
    float32 or float64; ``values`` itself when the caller owns it: each block is read
    before it is written, so ``denoise`` maps its layer in place, 2 MB of fresh pages
    fewer on pbmc68k)."""
    flat_in, flat_out = values.reshape(-1), out.reshape(-1)
    top = float(np.max(values, initial=0.0))
    if not top > 0:
        out[...] = 0.0
        return out
    grid = _inverse_expected_sqrt(np.linspace(0.0, top, _LOOKUP_INTERVALS + 1))
    slope = np.diff(grid)
    scale = _LOOKUP_INTERVALS / top
    for start in range(0, flat_in.size, _LOOKUP_BLOCK):
        x = np.maximum(flat_in[start:start + _LOOKUP_BLOCK], 0.0, dtype=np.float64)
        x *= scale
        index = x.astype(np.intp)
        np.minimum(index, _LOOKUP_INTERVALS - 1, out=index)
        x -= index
        x *= slope[index]
        x += grid[index]
        flat_out[start:start + _LOOKUP_BLOCK] = x
    return out


def convert_sqrt_expectation(values, from_fraction, to_fraction):
    """Map expected square-root counts at depth ``from_fraction`` to ``to_fraction``.

    ``values`` estimates ``E[sqrt(A)]`` for ``A ~ Poisson(from_fraction * lam)``; the
    result estimates ``E[sqrt(B)]`` for ``B ~ Poisson(to_fraction * lam)``. The identity
    when the fractions are equal.

    Parameters
    ----------
    values : float or array-like of float
        Expected square-root counts at depth ``from_fraction``.
    from_fraction, to_fraction : float
        Depths (shares of the counts), both > 0.

    Returns
    -------
    converted : ndarray of float
        Same shape as ``values``: ``g(to_fraction / from_fraction * g^-1(values))`` with
        ``g`` = :func:`expected_sqrt`; negative values are taken as 0 first, whatever the
        fractions (an expected square root is not negative).

    References
    ----------
    .. [1] Batson, J., Royer, L. & Webber, J. (2019). Molecular Cross-Validation for
       Single-Cell RNA-seq. bioRxiv 786269.

    Examples
    --------
    >>> from sklearn_n2s.table._mcv import convert_sqrt_expectation, expected_sqrt
    >>> converted = convert_sqrt_expectation(expected_sqrt(0.9 * 5.0), 0.9, 0.1)
    >>> bool(abs(converted - expected_sqrt(0.1 * 5.0)) < 1e-6)
    True
    >>> convert_sqrt_expectation([-0.5, 2.0], 0.5, 0.5)  # the same rule at every split
    array([0., 2.])
    """
    values = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
    if from_fraction == to_fraction:
        return values
    return expected_sqrt(_inverse_expected_sqrt(values) * (to_fraction / from_fraction))


@validate_params(
    {"p": FRACTION_CONSTRAINT, "sample_ratio": SAMPLE_RATIO_CONSTRAINT},
    prefer_skip_nested_validation=True,
)
def overlap_correction(p, sample_ratio):
    """Split fractions and overlap that mimic two independent draws from the cell.

    Parameters
    ----------
    p : float in (0, 1)
        Intended share of the first part.
    sample_ratio : float in [0, 1)
        Captured counts divided by the molecules in the cell (capture efficiency).

    Returns
    -------
    p_a, p_b, overlap : float
        Each molecule lands in the first part with probability ``p_a``, in the second
        with ``p_b``, in both with ``overlap = p_a + p_b - 1`` (0 when
        ``sample_ratio`` is 0: the plain binomial split).

    References
    ----------
    .. [1] Batson, J., Royer, L. & Webber, J. (2019). Molecular Cross-Validation for
       Single-Cell RNA-seq. bioRxiv 786269 (supplementary note on overlapping
       samples).

    Examples
    --------
    >>> from sklearn_n2s.table._mcv import overlap_correction
    >>> overlap_correction(0.5, 0.0)
    (0.5, 0.5, 0.0)
    >>> [round(v, 4) for v in overlap_correction(0.5, 0.2)]
    [0.5279, 0.5279, 0.0557]
    """
    if sample_ratio == 0:
        return float(p), float(1 - p), 0.0
    # Efficiencies a (first) and b = c a (second) of two independent experiments whose
    # union captures sample_ratio: a + b - a b = sample_ratio.
    c = (1 - p) / p
    a = ((1 + c) - np.sqrt((1 + c) ** 2 - 4 * c * sample_ratio)) / (2 * c)
    p_a, p_b = a / sample_ratio, c * a / sample_ratio
    return float(p_a), float(p_b), float(p_a + p_b - 1)


def _split_values(values, p_a, p_b, overlap, rng):
    counts = values.astype(np.int64)
    both = rng.binomial(counts, overlap) if overlap > 0 else np.zeros_like(counts)
    rest = counts - both
    only_a = rng.binomial(rest, (1 - p_b) / (1 - overlap))
    only_b = rest - only_a
    return (only_a + both).astype(np.float64), (only_b + both).astype(np.float64)


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "p": FRACTION_CONSTRAINT,
        "sample_ratio": SAMPLE_RATIO_CONSTRAINT,
        "random_state": RANDOM_STATE_CONSTRAINT,
    },
    prefer_skip_nested_validation=True,
)
def molecular_split(X, p=0.5, *, sample_ratio=0.0, random_state=None):
    """Split counts into two parts, binomially (optionally with the overlap correction).

    Parameters
    ----------
    X : {array-like, sparse matrix (CSR or CSC)} of shape (n_samples, n_features)
        Non-negative integer counts. Not modified.
    p : float in (0, 1), default=0.5
        Expected share of the first part.
    sample_ratio : float in [0, 1), default=0.0
        See :func:`overlap_correction`; 0 gives independent binomial parts.
    random_state : int, RandomState or None, default=None

    Returns
    -------
    A, B : ndarray or sparse matrix like X (float64)
        ``A + B == X`` when ``sample_ratio`` is 0; with the overlap correction they
        share counts, so ``A + B >= X``.

    References
    ----------
    .. [1] Batson, J., Royer, L. & Webber, J. (2019). Molecular Cross-Validation for
       Single-Cell RNA-seq. bioRxiv 786269.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.table._mcv import molecular_split
    >>> X = np.array([[10, 0, 3], [4, 7, 1]])
    >>> A, B = molecular_split(X, 0.5, random_state=0)
    >>> bool(np.all(A + B == X))
    True
    """
    given = X
    X = check_counts(check_table_array(X), allow_empty_rows=True)
    p_a, p_b, overlap = overlap_correction(p, sample_ratio)
    rng = check_random_state(random_state)
    # Draw for the non-zero entries in row-major order, dense or sparse alike, so that
    # the same seed gives the same split for both.
    if sp.issparse(X):
        # Sparse stays sparse: the parts hold the stored entries only (never densified).
        X = X.tocsr(copy=X is given)  # a copy already made by the float64 conversion
        X.sum_duplicates()  # on our copy: canonical, sorted row-major order
        a_values, b_values = _split_values(X.data, p_a, p_b, overlap, rng)
        A = sp.csr_matrix((a_values, X.indices.copy(), X.indptr.copy()), shape=X.shape)
        B = sp.csr_matrix((b_values, X.indices, X.indptr), shape=X.shape)
        A.eliminate_zeros()
        B.eliminate_zeros()
        return A, B
    nonzero = np.nonzero(X)
    A, B = np.zeros(X.shape), np.zeros(X.shape)
    A[nonzero], B[nonzero] = _split_values(X[nonzero], p_a, p_b, overlap, rng)
    return A, B


def poisson_loss(prediction, target):
    """Mean Poisson deviance of count predictions (clipped at 1e-6) against counts.

    Usable as ``SelfSupervisedScorer(loss=poisson_loss)``.

    Parameters
    ----------
    prediction : array-like of float
        Predicted rates (expected counts).
    target : array-like of float
        Observed counts, same shape.

    Returns
    -------
    loss : float
        ``mean(2 (target log(target / rate) - (target - rate)))``, 0 for a perfect
        prediction.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    return float(np.mean(elementwise_loss("poisson", prediction, target)))
