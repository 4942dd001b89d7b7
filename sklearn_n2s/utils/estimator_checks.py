"""Checks every sklearn_n2s denoiser passes, and that your own denoiser can run too.

The self-supervised loss ranks denoisers correctly only for a J-invariant prediction: the
output at a coordinate must not depend on the value at that coordinate (Batson & Royer
2019). That property is easy to lose at an image edge, through a shared normalisation, in
a channel or in a cache, and a broken prediction still gives a plausible-looking loss. So
prove it, the way this package's own tests do:

>>> import numpy as np
>>> from sklearn_n2s import JInvariantGaussian
>>> from sklearn_n2s.utils.estimator_checks import check_denoiser
>>> X = np.random.default_rng(0).random((2, 12, 13))
>>> check_denoiser(JInvariantGaussian(sigma=1.5), X)

What a denoiser must offer to be checked
----------------------------------------
- ``fit(X)``, ``transform(X)`` and ``invariant_transform(X)`` (the J-invariant
  prediction the loss is computed from); ``score(X)`` when it has one.
- Images: a stack ``(n_samples, *spatial)``, with a trailing channel axis when the
  estimator's ``channel_axis`` parameter is -1 (all channels of a pixel form one
  coordinate group: the prediction of a pixel may use none of its channels).
- Tables: an estimator is treated as a table denoiser when, once fitted, it has a
  ``groups_`` attribute, a list of arrays of column indices: its partition J. The
  prediction of the columns of one group in a row must not depend on those columns of
  that row. A 2-D array is *not* taken for a table on its own: for an image estimator it
  is ``n`` one-dimensional signals.

The checks
----------
- :func:`check_j_invariance` perturbs one coordinate (group) at a time and asserts its
  own prediction did not move: all corners, all edge midpoints and random interior
  pixels of images; every column group of tables, in the first, last and random rows.
- :func:`check_no_mutation`: ``fit``, ``transform``, ``invariant_transform`` and
  ``score`` never write into the caller's X, and the last three leave the fitted
  estimator as it was (arrays, random states, torch tensors and a skorch history
  compared by value).
- :func:`check_dtype_preserved`: float32 stays float32 (when the estimator's tags say so,
  ``preserves_dtype``), float64 stays float64 and integers give float64, for every
  ``output`` the estimator offers.
- :func:`check_denoiser` runs all three.
- :func:`check_blind_spot_field`, for a blind-spot torch module (a network whose field
  excludes the centre pixel by construction) before it goes into ``N2SNet``: from its
  exact Jacobian, ``d out[p] / d x[p]`` is zero at every pixel, each pixel sees its
  neighbours, and nothing beyond ``receptive_radius`` reaches it.

Each raises an :class:`AssertionError` that names the estimator, the coordinate or
attribute, and the change. The checks import nothing from the rest of sklearn_n2s: the
kind of estimator is read from its attributes, never from its class.
"""

import itertools
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "check_blind_spot_field",
    "check_denoiser",
    "check_dtype_preserved",
    "check_j_invariance",
    "check_no_mutation",
]

#: Relative tolerance of :func:`check_j_invariance` for float64 output, and for
#: lower-precision (float32) output: times the largest absolute output value.
RTOL_FLOAT64 = 1e-9
RTOL_FLOAT32 = 1e-5


# ------------------------------------------------------------------------------ helpers
def _name(estimator):
    return type(estimator).__name__


def _is_fitted(estimator):
    """scikit-learn's rule, also for objects that are not ``BaseEstimator``s."""
    if hasattr(estimator, "__sklearn_is_fitted__"):
        return bool(estimator.__sklearn_is_fitted__())
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except (AttributeError, TypeError):  # no tags: look for fitted attributes ourselves
        return any(k.endswith("_") and not k.startswith("__") for k in vars(estimator))
    return True


def _fitted(estimator, X):
    """The estimator itself when fitted, else a clone fitted on X."""
    return estimator if _is_fitted(estimator) else clone(estimator).fit(X)


def _dense(a):
    return a.toarray() if sp.issparse(a) else np.asarray(a)


def _copy(X):
    return X.copy() if sp.issparse(X) else np.array(X, copy=True)


def _is_table(estimator):
    """True for a fitted estimator with a column partition ``groups_``."""
    groups = getattr(estimator, "groups_", None)
    return groups is not None and not isinstance(groups, (str, bytes))


def _default_delta(X):
    """Twice the largest absolute value of X (1 for an all-zero X)."""
    values = X.data if sp.issparse(X) else np.asarray(X)
    scale = float(np.max(np.abs(values))) if values.size else 0.0
    return 2.0 * scale if scale > 0 else 1.0


def _perturb(values, delta, dtype):
    """New values for the probed coordinate(s), different and inside ``dtype``'s range."""
    values = np.asarray(values)
    if dtype.kind == "b":
        return ~values.astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        old = values.astype(np.float64)
        up = np.clip(np.rint(old + delta), info.min, info.max)
        down = np.clip(np.rint(old - delta), info.min, info.max)
        return np.where(up != old, up, down).astype(dtype)
    return (values + delta).astype(dtype)


def _tolerance(atol, *outputs):
    if atol is not None:
        return float(atol)
    rtol = RTOL_FLOAT64 if all(o.dtype == np.float64 for o in outputs) else RTOL_FLOAT32
    scale = max(float(np.max(np.abs(o))) if o.size else 0.0 for o in outputs)
    return rtol * max(scale, np.finfo(np.float64).tiny)


def _image_points(spatial_shape, n_probes, rng):
    """Corners, edge midpoints, then ``n_probes`` random interior points (no repeats)."""
    ends = [sorted({0, n - 1}) for n in spatial_shape]
    points = list(itertools.product(*ends))
    for axis, n in enumerate(spatial_shape):
        others = ends[:axis] + [[n // 2]] + ends[axis + 1:]
        points.extend(itertools.product(*others))
    for _ in range(n_probes):
        points.append(tuple(int(rng.integers(1, n - 1)) if n > 2 else int(rng.integers(n))
                            for n in spatial_shape))
    return list(dict.fromkeys(points))


def _image_probes(X, channel_axis, coordinates, n_probes, rng):
    """Index tuples of whole pixels (all channels) to perturb one at a time."""
    if coordinates is not None:
        probes = [tuple(int(i) for i in np.atleast_1d(c)) for c in coordinates]
    else:
        spatial = X.shape[1:-1] if channel_axis is not None else X.shape[1:]
        points = _image_points(spatial, n_probes, rng)
        probes = [(k % X.shape[0],) + p for k, p in enumerate(points)]
    n_index = X.ndim - (channel_axis is not None)
    for probe in probes:
        if len(probe) != n_index:
            raise ValueError(f"coordinate {probe} does not index one pixel of X with "
                             f"shape {X.shape} (expected {n_index} indices)")
    return probes


def _blind_spot_of(estimator, X, channel_axis):
    """The fitted image estimator's structured blind spot (None: the pixel alone)."""
    footprint_of = getattr(estimator, "_blind_spot_footprint", None)
    if footprint_of is None or X.ndim < 2:
        return None
    spatial = X.shape[1:-1] if channel_axis is not None else X.shape[1:]
    return footprint_of(tuple(spatial))


def _blind_spot_index(probe, footprint, spatial_shape):
    """Index of every in-image pixel of ``footprint`` centred on the pixel ``probe``."""
    sample, point = probe[0], np.array(probe[1:1 + len(spatial_shape)])
    offsets = np.argwhere(footprint) - np.array(footprint.shape) // 2
    pixels = point + offsets
    inside = np.all((pixels >= 0) & (pixels < np.array(spatial_shape)), axis=1)
    pixels = pixels[inside]
    return (np.full(len(pixels), sample),) + tuple(pixels.T)


def _table_probes(estimator, X, coordinates, n_probes, rng):
    """``(row, columns)`` pairs: a row and one whole column group of the partition."""
    groups = [np.asarray(g, dtype=np.intp).ravel() for g in estimator.groups_]
    if coordinates is not None:
        probes = []
        for row, column in coordinates:
            group = next((g for g in groups if column in g), None)
            if group is None:
                raise ValueError(f"column {column} is in no group of {_name(estimator)}.groups_")
            probes.append((int(row), group))
        return probes
    n_rows = X.shape[0]
    n_random = min(max(n_probes - 2, 0), n_rows)
    probes = []
    for group in groups:
        rows = [0, n_rows - 1, *rng.choice(n_rows, size=n_random, replace=False)]
        probes.extend((int(row), group) for row in dict.fromkeys(int(r) for r in rows))
    return probes


def _with_table_entries(X, row, columns, values):
    if sp.issparse(X):
        changed = X.tolil(copy=True)
        changed[row, columns] = values
        return changed.asformat(X.format)
    changed = np.array(X, copy=True)
    changed[row, columns] = values
    return changed


# ----------------------------------------------------------------------- J-invariance
def check_j_invariance(estimator, X, *, n_probes=8, coordinates=None, delta=None,
                       random_state=0, atol=None):
    """Assert that ``invariant_transform`` ignores the coordinate it predicts.

    For each probe, one coordinate (group) of X is changed and ``invariant_transform``
    is computed again: its output at that coordinate must equal the output on X.

    - Images ``(n_samples, *spatial[, n_channels])``: one pixel at a time, at every
      corner, every edge midpoint (one axis at its middle, the others at an end) and
      ``n_probes`` random interior pixels, spread over the samples. With a channel
      axis (the estimator's ``channel_axis`` is -1) all channels of the pixel are
      changed and all must keep their output.
    - With a structured blind spot (an image estimator whose ``blind_spot`` hides more
      than the pixel, for correlated noise), every pixel of the probed pixel's blind
      spot is changed at once, and the output at the probed pixel must not move.
    - Tables (the fitted estimator has ``groups_``, its column partition): every
      column of one group in one row at a time, for every group, in the first row,
      the last row and ``n_probes - 2`` random rows; the group's outputs in that row
      must not move. Dense and sparse X are both accepted.

    Parameters
    ----------
    estimator : estimator
        A fitted denoiser, used as it is, or an unfitted one, of which a clone is
        fitted on X (the estimator passed is then left untouched).
    X : ndarray or sparse matrix
        Data the probes perturb: an image stack or a table. Integer and boolean
        dtypes are perturbed within their range.
    n_probes : int, default=8
        Random probes besides the fixed ones (images: interior pixels; tables: rows per
        column group).
    coordinates : sequence of tuples or None, default=None
        Probe these instead: for images ``(sample, *spatial)`` indices of pixels, for
        tables ``(row, column)`` (the whole group of ``column`` is changed in ``row``).
    delta : float, array-like or None, default=None
        Change added to the probed values (an array is broadcast against them: one
        change per channel, say); None adds twice the largest absolute value of X.
        Integer values are clipped to their dtype (and moved by ``-delta`` instead when
        already at the top of the range); booleans are flipped. A delta too small to
        change a value (0, say) probes nothing there.
    random_state : int, default=0
        Seeds the random probes.
    atol : float or None, default=None
        Largest change allowed at the probed coordinate. None allows rounding only:
        1e-9 (float64 output) or 1e-5 (float32 output) times the largest absolute
        output value.

    Returns
    -------
    max_change : float
        The largest change of the output at any coordinate over all probes. For a
        J-invariant estimator that looks at its neighbours it is well above ``atol``;
        tests assert it to show that the probes reached the estimator at all.

    Raises
    ------
    AssertionError
        When ``invariant_transform`` is not deterministic (two calls on X differ), or a
        probe moved its own output; the message names the coordinate, the old and new
        input and output values.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s import DonutMedian
    >>> from sklearn_n2s.utils.estimator_checks import check_j_invariance
    >>> X = np.random.default_rng(0).integers(0, 256, (2, 9, 10), dtype=np.uint8)
    >>> check_j_invariance(DonutMedian(radius=1), X) > 0
    True
    """
    if not (isinstance(n_probes, numbers.Integral) and n_probes >= 0):
        raise ValueError(f"n_probes must be an integer >= 0, got {n_probes!r}.")
    if not sp.issparse(X):
        X = np.asarray(X)
    est = _fitted(estimator, X)
    name = _name(est)
    rng = np.random.default_rng(random_state)
    delta = _default_delta(X) if delta is None else np.asarray(delta, dtype=np.float64)
    dtype = X.dtype
    base = _dense(est.invariant_transform(X))
    again = _dense(est.invariant_transform(X))
    tol = _tolerance(atol, base)
    drift = float(np.max(np.abs(again - base))) if base.size else 0.0
    if not drift <= tol:
        raise AssertionError(
            f"{name}.invariant_transform(X) is not deterministic: two calls on the same X "
            f"differ by {drift:.3g} (> {tol:.3g}), so J-invariance cannot be probed. Fix "
            "its random_state, or make the prediction independent of the call history.")

    if _is_table(est):
        probes = []
        for row, group in _table_probes(est, X, coordinates, n_probes, rng):
            old = _dense(X[[row]][:, group]).ravel()
            new = _perturb(old, delta, dtype)
            probes.append(((row, group), _with_table_entries(X, row, group, new), old, new,
                           f"row {row}, column group {group.tolist()}"))
    else:
        channel_axis = getattr(est, "channel_axis", None)
        footprint = _blind_spot_of(est, X, channel_axis)
        spatial_shape = X.shape[1:X.ndim - (channel_axis is not None)]
        probes = []
        for probe in _image_probes(X, channel_axis, coordinates, n_probes, rng):
            changed = X.copy()
            label = (f"X[{', '.join(map(str, probe))}"
                     f"{', :' if channel_axis is not None else ''}]")
            hidden = probe
            if footprint is not None:
                hidden = _blind_spot_index(probe, footprint, spatial_shape)
                label = f"{label} (its blind spot of {len(hidden[0])} pixels changed)"
            changed[hidden] = _perturb(X[hidden], delta, dtype)
            probes.append((probe, changed, X[probe], changed[probe], label))

    max_change = 0.0
    for index, changed, old, new, label in probes:
        out = _dense(est.invariant_transform(changed))
        if out.shape != base.shape:
            raise AssertionError(f"{name}.invariant_transform changed the output shape "
                                 f"from {base.shape} to {out.shape}")
        before, after = base[index], out[index]
        tol = _tolerance(atol, base, out)
        moved = float(np.max(np.abs(after - before)))
        if not moved <= tol:
            raise AssertionError(
                f"{name}.invariant_transform is not J-invariant at {label}: changing the "
                f"input there from {np.ravel(old)} to {np.ravel(new)} moved its own output "
                f"from {np.ravel(before)} to {np.ravel(after)} (by {moved:.3g} > atol "
                f"{tol:.3g}).")
        max_change = max(max_change, float(np.max(np.abs(out - base))) if out.size else 0.0)
    return max_change


# ------------------------------------------------------------------------- no mutation
_SCALARS = (type(None), bool, numbers.Number, str, bytes, np.generic)


def _torch_kind(obj):
    """'tensor', 'module' or None, read from the class hierarchy (torch is not imported)."""
    for cls in type(obj).__mro__:
        module = cls.__module__ or ""
        if module.startswith("torch") and cls.__name__ == "Tensor":
            return "tensor"
        if module.startswith("torch.nn") and cls.__name__ == "Module":
            return "module"
    return None


def _snapshot(obj, seen=None):
    """A comparable copy of an estimator's state: arrays by value, objects by identity."""
    seen = set() if seen is None else seen
    if isinstance(obj, _SCALARS):
        return ("value", obj)
    if isinstance(obj, np.ndarray):
        return ("array", obj.copy())
    if sp.issparse(obj):
        return ("array", obj.toarray())
    if isinstance(obj, np.random.RandomState):
        return ("random state", obj.get_state(legacy=False))
    if isinstance(obj, np.random.Generator):
        return ("random state", obj.bit_generator.state)
    torch_kind = _torch_kind(obj)
    if torch_kind == "tensor":
        return ("array", obj.detach().cpu().clone())
    if torch_kind == "module":
        return ("module", {k: v.detach().cpu().clone() for k, v in obj.state_dict().items()})
    if type(obj).__name__ == "History" and isinstance(obj, list):  # skorch's history
        return ("history of length", len(obj))
    if id(obj) in seen:
        return ("seen", id(obj))
    seen.add(id(obj))
    if isinstance(obj, dict):
        return ("dict", {k: _snapshot(v, seen) for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_snapshot(v, seen) for v in obj])
    if isinstance(obj, (set, frozenset)):
        return ("set", frozenset(obj))
    if hasattr(obj, "get_params") and hasattr(obj, "__dict__"):
        return ("estimator", type(obj), _snapshot(vars(obj), seen))
    return ("object", id(obj))


def _equal_values(a, b):
    if hasattr(a, "detach"):  # torch tensors
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        return bool(((a == b) | (a.isnan() & b.isnan())).all())
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _difference(before, after, path):
    """A description of the first difference between two snapshots, or None."""
    kind = before[0]
    if kind != after[0]:
        return f"{path} changed from {kind} to {after[0]}"
    if kind == "estimator":
        if before[1] is not after[1]:
            return f"{path} was replaced by a {after[1].__name__}"
        return _difference(before[2], after[2], path)
    if kind == "dict":
        b, a = before[1], after[1]
        if b.keys() != a.keys():
            added = sorted(map(str, a.keys() - b.keys()))
            removed = sorted(map(str, b.keys() - a.keys()))
            changes = ([f"gained {added}"] if added else []) + (
                [f"lost {removed}"] if removed else [])
            return f"{path + ' ' if path else ''}{' and '.join(changes)}"
        for key in b:
            found = _difference(b[key], a[key], f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if kind in ("list", "tuple"):
        if len(before[1]) != len(after[1]):
            return f"{path} changed length from {len(before[1])} to {len(after[1])}"
        for i, (b, a) in enumerate(zip(before[1], after[1])):
            found = _difference(b, a, f"{path}[{i}]")
            if found:
                return found
        return None
    if kind == "module":
        for key in before[1]:
            if key not in after[1] or not _equal_values(before[1][key], after[1][key]):
                return f"{path} (a torch module) changed its weights ({key})"
        return None
    if kind == "random state":
        if not _equal_states(before[1], after[1]):
            return f"{path} (a random state) was advanced"
        return None
    if kind == "array":
        if not _equal_values(before[1], after[1]):
            return f"{path} changed its values"
        return None
    if kind == "value":
        b, a = before[1], after[1]
        same = b is a or (type(b) is type(a) and (b == a or (b != b and a != a)))
        return None if same else f"{path} changed from {b!r} to {a!r}"
    if before[1] != after[1]:
        return f"{path} changed from {kind} {before[1]!r} to {after[1]!r}"
    return None


def _equal_states(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal_states(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return _equal_values(a, b)
    return a == b


def _assert_same_input(X, original, name, method):
    if sp.issparse(X):
        same = (X.shape == original.shape and X.dtype == original.dtype
                and (X != original).nnz == 0)
    else:
        same = X.shape == original.shape and _equal_values(X, original)
    if not same:
        raise AssertionError(f"{name}.{method}(X) modified the caller's X in place.")


def check_no_mutation(estimator, X):
    """Assert that the estimator never writes into X, nor changes itself after ``fit``.

    A clone of the estimator is fitted on X; then ``transform``, ``invariant_transform``
    and ``score`` (those it has) are called on X. After each call X must equal a copy
    taken before, and after each call but ``fit`` the fitted estimator must equal its
    state after ``fit``: every attribute, recursively through nested estimators,
    dictionaries and lists; arrays, sparse matrices and torch tensors by value, torch
    modules by their weights, random states by their state, a skorch history by its
    length, other objects by identity. The output must not share memory with X either
    (writing into it would change the caller's data).

    Parameters
    ----------
    estimator : estimator
        The estimator to check; it is cloned, never fitted itself.
    X : ndarray or sparse matrix
        Data to fit and transform: an image stack or a table.

    Returns
    -------
    None

    Raises
    ------
    AssertionError
        Naming the method and what it changed.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s import JInvariantWavelet
    >>> from sklearn_n2s.utils.estimator_checks import check_no_mutation
    >>> check_no_mutation(JInvariantWavelet(), np.random.default_rng(0).random((2, 16, 16)))
    """
    est = clone(estimator)
    name = _name(est)
    original = _copy(X)
    est.fit(X)
    _assert_same_input(X, original, name, "fit")
    state = _snapshot(vars(est))
    for method in ("transform", "invariant_transform", "score"):
        if not hasattr(est, method):
            continue
        result = getattr(est, method)(X)
        _assert_same_input(X, original, name, method)
        if isinstance(result, np.ndarray) and not sp.issparse(X) and np.shares_memory(
                result, np.asarray(X)):
            raise AssertionError(f"{name}.{method}(X) returned an array that shares memory "
                                 "with X: writing into the result would change the caller's X.")
        changed = _difference(state, _snapshot(vars(est)), "")
        if changed:
            raise AssertionError(f"{name}.{method}(X) changed the fitted estimator: "
                                 f"{changed}.")


# ------------------------------------------------------------------------------- dtypes
def _outputs(estimator, outputs):
    """The values of the ``output`` parameter to check ([None] when there is none)."""
    params = estimator.get_params(deep=False)
    if "output" not in params:
        return [None]
    if outputs is not None:
        return list(outputs)
    for constraint in getattr(estimator, "_parameter_constraints", {}).get("output", []):
        options = getattr(constraint, "options", None)
        if options:
            return sorted(options)
    return [params["output"]]


def _expected_dtype(estimator, in_dtype):
    tags = get_tags(estimator).transformer_tags
    preserved = tags.preserves_dtype if tags is not None else ["float64"]
    if in_dtype.name in preserved:
        return in_dtype
    return np.dtype(np.float64)


def check_dtype_preserved(estimator, X, *, outputs=None):
    """Assert the output dtypes the estimator documents, for every ``output`` it offers.

    Input keeps its dtype when the estimator's tags say so
    (``transformer_tags.preserves_dtype``, scikit-learn's tag): float32 gives float32
    and float64 gives float64, and an integer dtype listed there (an estimator that
    returns integer images in their own units) gives itself. Any other input (float32
    for an estimator that computes in float64, integers not listed) gives float64.
    Checked for ``transform`` with each value of the ``output`` parameter and for
    ``invariant_transform``, on clones fitted on X converted to float32 and float64, and
    on X itself when it is integer.

    Parameters
    ----------
    estimator : estimator
        The estimator to check; it is cloned, never fitted itself.
    X : ndarray or sparse matrix
        Data to convert and fit on.
    outputs : sequence of str or None, default=None
        Values of the estimator's ``output`` parameter to check. None takes them from
        ``_parameter_constraints['output']`` when it lists them, else checks the current
        value only; estimators without ``output`` are checked as they are.

    Returns
    -------
    None

    Raises
    ------
    AssertionError
        Naming the method, the output, the input dtype and the dtype returned.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s import JInvariantGaussian
    >>> from sklearn_n2s.utils.estimator_checks import check_dtype_preserved
    >>> X = np.random.default_rng(0).random((2, 10, 10))
    >>> check_dtype_preserved(JInvariantGaussian(), X,
    ...                       outputs=["shrink", "ordinary", "invariant"])
    """
    name = _name(estimator)
    in_dtypes = [np.dtype(np.float32), np.dtype(np.float64)]
    if X.dtype.kind in "iu":
        in_dtypes.append(X.dtype)
    for in_dtype in in_dtypes:
        Xd = X.astype(in_dtype)
        expected = _expected_dtype(estimator, in_dtype)
        for i, output in enumerate(_outputs(estimator, outputs)):
            est = clone(estimator)
            if output is not None:
                est.set_params(output=output)
            est.fit(Xd)
            methods = ["transform"] + (["invariant_transform"] if i == 0 else [])
            for method in methods:
                if not hasattr(est, method):
                    continue
                got = getattr(est, method)(Xd)
                if got.dtype != expected:
                    shown = f" (output={output!r})" if output is not None and \
                        method == "transform" else ""
                    raise AssertionError(
                        f"{name}.{method}{shown} returned {got.dtype} for {in_dtype} input; "
                        f"expected {expected}.")


# ---------------------------------------------------------------------------- together
def check_denoiser(estimator, X, *, outputs=None, **j_invariance_params):
    """Run :func:`check_no_mutation`, :func:`check_dtype_preserved` and
    :func:`check_j_invariance` on one estimator and one X.

    Parameters
    ----------
    estimator : estimator
        Unfitted (clones are fitted) or fitted (then J-invariance is probed on it as it
        is; the other checks always fit clones).
    X : ndarray or sparse matrix
        An image stack or a table, as the estimator takes.
    outputs : sequence of str or None, default=None
        See :func:`check_dtype_preserved`.
    **j_invariance_params
        Passed to :func:`check_j_invariance` (``n_probes``, ``delta``, ``atol``...).

    Returns
    -------
    None

    Raises
    ------
    AssertionError
        From the first check that fails.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sklearn_n2s import ColumnMaskingDenoiser
    >>> from sklearn_n2s.utils.estimator_checks import check_denoiser
    >>> X = np.random.default_rng(0).normal(size=(30, 8))
    >>> check_denoiser(ColumnMaskingDenoiser(PCA(2), n_groups=3, random_state=0), X)
    """
    check_no_mutation(estimator, X)
    check_dtype_preserved(estimator, X, outputs=outputs)
    check_j_invariance(estimator, X, **j_invariance_params)


def _field_jacobian(module, x):
    """``|d out[p] / d x[q]|`` of the first image of x, summed over the output and input
    channels: a (pixels, pixels) array (rows: output pixels, in C order)."""
    import torch

    first = x[:1]
    jac = torch.autograd.functional.jacobian(module, first, vectorize=True)
    n_pix = int(np.prod(first.shape[2:]))
    c_out, c_in = jac.shape[1], first.shape[1]
    return jac.reshape(c_out, n_pix, c_in, n_pix).abs().sum(dim=(0, 2)).numpy()


def check_blind_spot_field(module, x):
    """Check a blind-spot module's receptive field exactly, from its Jacobian.

    Three properties of the first image of x, every pixel included (borders too):

    - ``d out[p] / d x[p]`` is exactly 0 (all channels): the blind spot;
    - ``out[p]`` depends on each existing neighbour ``p +- e_a``: the field is not
      trivially empty;
    - nothing farther than ``module.receptive_radius`` (Chebyshev distance) reaches
      ``out[p]``, when the module has that attribute (the margin tiled inference uses).

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(N, C_in, *spatial)`` to ``(N, C_out, *spatial)``; best in float64, where
        a broken blind spot cannot hide below rounding.
    x : torch.Tensor of shape (N, C_in, *spatial)
        The input (its first image is probed), of the module's dtype.

    Raises
    ------
    AssertionError
        Naming the module, the pixel and the property broken.

    Examples
    --------
    >>> import torch
    >>> from sklearn_n2s.neural import DilatedBlindSpotNet
    >>> net = DilatedBlindSpotNet(in_channels=1, ndim=2, width=2, depth=1).double()
    >>> check_blind_spot_field(net, torch.randn(1, 1, 9, 9, dtype=torch.float64))
    """
    name = type(module).__name__
    sides = tuple(x.shape[2:])
    jac = _field_jacobian(module, x)
    assert np.all(np.diag(jac) == 0.0), \
        f"{name}: d out[p] / d x[p] is not exactly zero at some pixel of {sides}"
    index = {p: i for i, p in enumerate(itertools.product(*(range(n) for n in sides)))}
    for p, i in index.items():
        for axis, step in itertools.product(range(len(sides)), (-1, 1)):
            q = list(p)
            q[axis] += step
            if tuple(q) in index:
                assert jac[i, index[tuple(q)]] > 0, \
                    f"{name}: pixel {p} does not see its neighbour {tuple(q)}"
    radius = getattr(module, "receptive_radius", None)
    if radius is not None:
        coords = np.array(list(index))
        dist = np.abs(coords[:, None, :] - coords[None, :, :]).max(axis=-1)
        assert np.all(jac[dist > radius] == 0.0), \
            f"{name}: pixels farther than receptive_radius={radius} reach the output"
