"""Calibration of a huge image from a representative subset of its chunks.

See :mod:`sklearn_n2s.image._blockwise` for how chunks are denoised exactly.
"""

import numbers

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, validate_params

from ..image._blockwise import _check_dask_stack, _require_dask, receptive_radius
from ..model_selection import FullSplit
from ..utils._validation import check_channel_axis


def _patch_shape(X, n_spatial, halo):
    """One regular chunk plus the halo on both sides, clipped to the array."""
    return tuple(
        min(X.chunks[axis][0] + 2 * halo[axis - 1], X.shape[axis])
        for axis in range(1, n_spatial + 1)
    )


def _patch_origin(X, chunk_index, halo, patch_shape):
    origin = []
    for i, (index, size) in enumerate(zip(chunk_index, patch_shape)):
        axis = i + 1
        start = int(sum(X.chunks[axis][:index])) - halo[i]
        origin.append(int(np.clip(start, 0, X.shape[axis] - size)))
    return tuple(origin)


def stratified_choice(n_total, n_chosen, random_state=None):
    """``n_chosen`` indices of ``range(n_total)``, one at random from each of as many strata.

    Parameters
    ----------
    n_total : int
    n_chosen : int
        At most ``n_total`` indices are returned.
    random_state : int, RandomState or None, default=None

    Returns
    -------
    indices : list of int
        Increasing, one per stratum of ``np.array_split(range(n_total), n_chosen)``.
    """
    rng = check_random_state(random_state)
    strata = np.array_split(np.arange(n_total), min(n_chosen, n_total))
    return [int(rng.choice(stratum)) for stratum in strata]


@validate_params(
    {
        "X": ["array-like"],
        "n_patches": [Interval(numbers.Integral, 1, None, closed="left")],
        "halo": [Interval(numbers.Integral, 0, None, closed="left"), tuple],
        "channel_axis": [None, Options(numbers.Integral, {-1})],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def representative_patches(X, n_patches=8, halo=0, *, channel_axis=None, random_state=0):
    """Cut a stack of equal-size patches, one chunk (plus halo) each, spread over X.

    The units are (sample, spatial chunk) pairs in C order (samples first, then the
    chunk grid row by row); they are split into ``n_patches`` contiguous strata and one
    unit is drawn at random (seeded) from each, so the patches cover every part of the
    array and every sample evenly instead of clustering. Each patch is the chunk's region
    of the regular chunk size extended by ``halo`` on each side (shifted inwards at the
    border, so all patches have the same shape and hold only real pixels).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, *spatial[, n_channels])
    n_patches : int
    halo : int or tuple of int
        Pixels added on each side of the chunk, per spatial axis.
    channel_axis : None or -1
    random_state : int, RandomState or None

    Returns
    -------
    patches : ndarray of shape (n_chosen, *patch_shape[, n_channels])
    origins : list of tuple
        ``(sample, *start)`` of each patch.
    """
    import dask

    n_spatial = X.ndim - 1 - (channel_axis is not None)
    halo = (int(halo),) * n_spatial if isinstance(halo, numbers.Integral) else tuple(halo)
    grid = tuple(len(X.chunks[axis]) for axis in range(1, n_spatial + 1))
    patch_shape = _patch_shape(X, n_spatial, halo)
    n_units = X.shape[0] * int(np.prod(grid))
    origins, pieces = [], []
    for unit in stratified_choice(n_units, n_patches, random_state):
        sample, *chunk_index = np.unravel_index(unit, (X.shape[0],) + grid)
        origin = _patch_origin(X, chunk_index, halo, patch_shape)
        region = tuple(slice(o, o + s) for o, s in zip(origin, patch_shape))
        origins.append((int(sample),) + origin)
        pieces.append(X[(int(sample),) + region])
    return np.stack(dask.compute(*pieces)), origins


def _largest_halo(estimator, param_grid, spatial_shape):
    halos = [
        receptive_radius(clone(estimator).set_params(**params), spatial_shape)
        for params in ParameterGrid(param_grid)
    ]
    return tuple(int(h) for h in np.max(halos, axis=0))


def calibrate_blockwise(estimator, param_grid, X, *, n_chunks=8, scoring=None, cv=None,
                        n_jobs=None, random_state=0):
    """Choose hyperparameters of a denoiser for a huge image from a subset of its chunks.

    A :class:`~sklearn.model_selection.GridSearchCV` scores every parameter setting on a
    stack of ``n_chunks`` patches cut by :func:`representative_patches`: one chunk each,
    spread over the array by stratified random sampling (seeded by ``random_state``),
    each extended by the largest receptive radius of the grid so that the chunk's pixels
    are predicted from the neighbours they have in the whole image. The loss is the
    self-supervised one over the whole patch (its edge pixels are still predicted
    J-invariantly, from in-patch neighbours). Apply the result with
    ``search.best_estimator_.transform(X)``, which works blockwise.

    Parameters
    ----------
    estimator : DonutMedian, JInvariantGaussian or JInvariantWavelet
    param_grid : dict or list of dict
    X : dask.array.Array of shape (n_samples, *spatial[, n_channels])
    n_chunks : int, default=8
        Number of patches scored (fewer if X has fewer chunks).
    scoring : callable or None, default=None
        None uses the estimator's ``score`` (minus the self-supervised loss).
    cv : cross-validation generator or None, default=None
        None uses :class:`~sklearn_n2s.FullSplit` (right for filters that learn nothing;
        pass a real splitter for estimators that learn).
    n_jobs : int or None, default=None
    random_state : int, RandomState or None, default=0

    Returns
    -------
    search : GridSearchCV
        Fitted on the patches; ``best_params_``, ``cv_results_`` and ``best_estimator_``
        as usual.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from sklearn_n2s import JInvariantGaussian
    >>> from sklearn_n2s.blockwise import calibrate_blockwise
    >>> rng = np.random.default_rng(0)
    >>> clean = np.sin(np.linspace(0, 8, 128))[:, None] * np.ones(128)
    >>> X = da.from_array((clean + rng.normal(0, 0.5, clean.shape))[None], chunks=(1, 32, 32))
    >>> search = calibrate_blockwise(JInvariantGaussian(), {"sigma": [0.5, 3.0]}, X, n_chunks=4)
    >>> search.best_params_
    {'sigma': 3.0}
    """
    _require_dask()
    if not hasattr(X, "chunks") or not type(X).__module__.startswith("dask"):
        raise TypeError(
            f"X must be a dask array, got {type(X).__name__}; wrap it with "
            "dask.array.from_array(X, chunks=...)."
        )
    channel_axis = check_channel_axis(estimator.channel_axis)
    n_spatial = _check_dask_stack(X, channel_axis)
    halo = _largest_halo(estimator, param_grid, X.shape[1:1 + n_spatial])
    patches, _ = representative_patches(
        X, n_chunks, halo, channel_axis=channel_axis, random_state=random_state
    )
    search = GridSearchCV(estimator, param_grid, scoring=scoring,
                          cv=FullSplit() if cv is None else cv, n_jobs=n_jobs)
    return search.fit(patches)
