"""The masking core: partitions of coordinates and fills for masked coordinates.

Every estimator that is not J-invariant in closed form gets its invariant prediction
from here: the wavelet estimator, the neural net (for inference and, per batch, for
training) and the table estimators (column groups).

A partition J splits the coordinates of a sample into groups. A J-invariant prediction
predicts every group from the others only: replace the group's values (a *fill* that
does not look at them), run the denoiser, keep the output on the group.

Partitions
----------
- grid: stride ``s`` along every spatial axis, ``s**ndim`` cosets, each selected by a
  tuple of slices (no per-pixel loops);
- random: every coordinate labelled with one of ``n_groups`` groups at random, or a
  Bernoulli mask with a given density (for training a network);
- column groups: the features of a table split into ``n_groups`` groups.

Fills
-----
- ``'interpolate'``: normalised average of the unmasked neighbours in the 3**ndim
  neighbourhood (weight 1 on faces, 1/2 on edges, 1/4 on corners, as in the reference
  Noise2Self code), per channel. Out-of-image neighbours count as missing rather than
  mirrored, so a pixel near the edge is never filled from itself.
- ``'median'``: median of the unmasked in-image neighbours, per channel.
- ``'zero'``: 0.
- ``'mean'``: mean of the unmasked coordinates of the same sample and channel.
- ``'uniform'``: uniform random values between the minimum and maximum of the unmasked
  coordinates of the same sample and channel.

Exact and approximate loss
--------------------------
With all cosets of a grid every coordinate is predicted once (the exact loss).
Passing ``cosets=k`` uses ``k`` cosets spread over the grid and scores only the
coordinates they cover (an approximate loss, ``k / s**ndim`` of the cost, with the
variance of a smaller sample); scikit-image's default uses one coset.
"""

import contextlib
import numbers
import warnings

import numpy as np
from scipy import ndimage as ndi
from sklearn.utils import check_random_state

from .utils._validation import check_option, spatial_axes

FILLS = ("interpolate", "median", "zero", "mean", "uniform")

# Weights of the neighbour average along one axis: centre, and the two neighbours.
_SIDE_WEIGHTS = np.array([0.5, 1.0, 0.5])
_CENTRELESS = np.array([1.0, 0.0, 1.0])


# --------------------------------------------------------------------------- partitions
def n_grid_cosets(stride, n_spatial):
    """Number of cosets of a grid partition: ``stride ** n_spatial``.

    Parameters
    ----------
    stride : int
        Grid spacing along every spatial axis.
    n_spatial : int
        Number of spatial axes.

    Returns
    -------
    n_cosets : int
    """
    return int(stride) ** int(n_spatial)


def grid_offsets(stride, n_spatial, index):
    """Offset of coset ``index`` along each spatial axis.

    Parameters
    ----------
    stride : int
        Grid spacing along every spatial axis.
    n_spatial : int
        Number of spatial axes.
    index : int
        The coset, in ``0 .. stride**n_spatial - 1`` (C order over the axes).

    Returns
    -------
    offsets : tuple of int
        One offset in ``0 .. stride - 1`` per spatial axis.
    """
    return tuple(int(i) for i in np.unravel_index(index, (stride,) * n_spatial))


def grid_slices(n_spatial, stride, index):
    """Slices selecting coset ``index`` of a stride-``stride`` grid on the spatial axes.

    Parameters
    ----------
    n_spatial : int
        Number of spatial axes.
    stride : int
        Grid spacing along every spatial axis.
    index : int
        The coset, see :func:`grid_offsets`.

    Returns
    -------
    slices : tuple of slice
        ``slice(offset, None, stride)`` per spatial axis.
    """
    return tuple(slice(o, None, stride) for o in grid_offsets(stride, n_spatial, index))


def grid_mask(spatial_shape, stride, index):
    """Boolean mask of coset ``index`` of a stride-``stride`` grid.

    Parameters
    ----------
    spatial_shape : tuple of int
        Shape of one image (spatial axes only).
    stride : int
        Grid spacing along every spatial axis.
    index : int
        The coset, see :func:`grid_offsets`.

    Returns
    -------
    mask : bool ndarray of shape ``spatial_shape``
        True on the coset's pixels.
    """
    mask = np.zeros(spatial_shape, dtype=bool)
    mask[grid_slices(len(spatial_shape), stride, index)] = True
    return mask


def select_cosets(n_total, cosets=None):
    """Indices of the cosets to evaluate.

    ``None`` means all (the exact loss); an int ``k`` means ``k`` cosets spread evenly
    over the grid (the approximate loss); a sequence is used as given.

    Parameters
    ----------
    n_total : int
        Number of cosets of the grid.
    cosets : None, int or sequence of int, default=None
        Which cosets, as above; ``k=1`` is the middle coset (scikit-image's choice).

    Returns
    -------
    indices : list of int
    """
    if cosets is None:
        return list(range(n_total))
    if isinstance(cosets, numbers.Integral) and not isinstance(cosets, bool):
        if not 1 <= cosets <= n_total:
            raise ValueError(f"cosets must be between 1 and {n_total}, got {cosets}.")
        if cosets == 1:
            return [n_total // 2]  # the middle coset, as scikit-image's approximate loss
        return sorted({int(round(v)) for v in np.linspace(0, n_total - 1, cosets)})
    chosen = [int(c) for c in cosets]
    if not chosen or min(chosen) < 0 or max(chosen) >= n_total:
        raise ValueError(f"cosets must index 0..{n_total - 1}, got {cosets!r}.")
    return chosen


def random_partition(shape, n_groups, random_state=None):
    """Label every coordinate of ``shape`` with a group in ``0..n_groups-1`` at random.

    Parameters
    ----------
    shape : tuple of int
        Shape of the labels.
    n_groups : int
        Number of groups.
    random_state : int, RandomState or None, default=None
        Seeds the labels.

    Returns
    -------
    labels : int ndarray of shape ``shape``
    """
    rng = check_random_state(random_state)
    return rng.randint(n_groups, size=shape)


def random_mask(shape, density, random_state=None):
    """Bernoulli mask: each coordinate is masked with probability ``density``.

    Parameters
    ----------
    shape : tuple of int
        Shape of the mask.
    density : float in (0, 1)
        Probability that a coordinate is masked.
    random_state : int, RandomState or None, default=None
        Seeds the mask.

    Returns
    -------
    mask : bool ndarray of shape ``shape``
    """
    if not 0 < density < 1:
        raise ValueError(f"density must be in (0, 1), got {density!r}.")
    rng = check_random_state(random_state)
    return rng.random_sample(shape) < density


def check_n_groups(n_groups, n_features):
    """Raise a clear error unless ``n_groups`` is an integer in ``2 .. n_features``.

    Parameters
    ----------
    n_groups : int
        Number of column groups asked for.
    n_features : int
        Number of columns to split.

    Raises
    ------
    TypeError
        When ``n_groups`` is not an integer (booleans included).
    ValueError
        When ``n_groups < 2`` or ``n_groups > n_features``.
    """
    if isinstance(n_groups, bool) or not isinstance(n_groups, numbers.Integral):
        raise TypeError(f"n_groups must be an integer, got {n_groups!r}.")
    if n_groups < 2:
        raise ValueError(f"n_groups must be >= 2, got {n_groups}.")
    if n_groups > n_features:
        raise ValueError(
            f"n_groups={n_groups} is more than n_features={n_features}: every column group "
            "needs at least one feature, so n_groups may not be more than the number of "
            "features."
        )


def column_groups(n_features, n_groups, *, shuffle=True, random_state=None):
    """Split feature indices ``0..n_features-1`` into ``n_groups`` groups of near-equal size.

    With ``shuffle=True`` the features are assigned at random (seeded by
    ``random_state``), so neighbouring columns (often correlated genes) do not land in
    the same group systematically.

    Parameters
    ----------
    n_features : int
        Number of columns.
    n_groups : int
        Number of groups, between 2 and ``n_features`` (see :func:`check_n_groups`).
    shuffle : bool, default=True
        Assign columns at random; False makes groups of consecutive columns.
    random_state : int, RandomState or None, default=None
        Seeds the assignment.

    Returns
    -------
    groups : list of ndarray
        Sorted column indices of each group; together they cover every column once.
    """
    check_n_groups(n_groups, n_features)
    order = np.arange(n_features)
    if shuffle:
        order = check_random_state(random_state).permutation(n_features)
    return [np.sort(g) for g in np.array_split(order, n_groups)]


# --------------------------------------------------------------------------------- fills
def _separable_average(X, axes):
    """Correlate with [1/2, 1, 1/2] along every axis in ``axes`` (zeros outside)."""
    out = X
    for ax in axes:
        out = ndi.correlate1d(out, _SIDE_WEIGHTS, axis=ax, mode="constant", cval=0.0)
    return out


def _centreless_sum(X, axes):
    """Weighted sum of the 3**n - 1 neighbours, the centre weighted exactly zero.

    Face neighbours weigh 1, edges 1/2, corners 1/4. Built recursively from 1-D passes
    so that the centre never enters the arithmetic (it is not added then subtracted):
    the result does not depend on the centre value even in floating point.
    """
    first, rest = axes[0], axes[1:]
    along_first = ndi.correlate1d(
        _separable_average(X, rest), _CENTRELESS, axis=first, mode="constant", cval=0.0
    )
    if not rest:
        return along_first
    return along_first + _centreless_sum(X, rest)


def neighbour_interpolation(X, *, channel_axis=None):
    """Every pixel replaced by the weighted mean of its in-image neighbours.

    The centre is excluded exactly, so the value at a pixel never depends on that pixel,
    and neighbours outside the image are left out (not mirrored). For a grid partition
    with stride >= 2 no two pixels of a coset are neighbours, so this one array gives the
    ``'interpolate'`` fill of every coset.

    Parameters
    ----------
    X : ndarray of shape (n_samples, *spatial[, n_channels])
        A float image stack; channels are interpolated each on its own.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis.

    Returns
    -------
    interpolated : ndarray like X
        Face neighbours weigh 1, edge neighbours 1/2, corner neighbours 1/4.
    """
    axes = spatial_axes(X.ndim, channel_axis)
    spatial_shape = tuple(X.shape[a] for a in axes)
    weights = _centreless_sum(np.ones(spatial_shape, dtype=X.dtype), tuple(range(len(axes))))
    weights = weights.reshape(_broadcast_shape(X.shape, axes))
    if np.any(weights == 0):
        raise ValueError("interpolation needs at least 2 pixels along some spatial axis.")
    return _centreless_sum(X, axes) / weights


def _broadcast_shape(shape, axes):
    return tuple(shape[i] if i in axes else 1 for i in range(len(shape)))


def _neighbour_stack(X, axes):
    """Values of the 3**n - 1 neighbours of every coordinate, NaN outside the image."""
    pad = [(1, 1) if i in axes else (0, 0) for i in range(X.ndim)]
    padded = np.pad(X.astype(np.float64), pad, constant_values=np.nan)
    views = []
    for offset in np.ndindex(*(3,) * len(axes)):
        if all(o == 1 for o in offset):
            continue
        index = [slice(None)] * X.ndim
        for ax, o in zip(axes, offset):
            index[ax] = slice(o, o + X.shape[ax])
        views.append(padded[tuple(index)])
    return np.stack(views)


def neighbour_median(X, *, channel_axis=None):
    """Every pixel replaced by the median of its in-image neighbours (centre excluded).

    Parameters
    ----------
    X : ndarray of shape (n_samples, *spatial[, n_channels])
        An image stack; channels are filtered each on its own.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis.

    Returns
    -------
    medians : ndarray like X
        The median of the 3**n - 1 neighbours inside the image, in X's dtype.
    """
    axes = spatial_axes(X.ndim, channel_axis)
    return np.nanmedian(_neighbour_stack(X, axes), axis=0).astype(X.dtype)


def _expand_mask(mask, X, channel_axis):
    """Broadcast a spatial or per-sample mask to the full shape of X."""
    mask = np.asarray(mask, dtype=bool)
    axes = spatial_axes(X.ndim, channel_axis)
    spatial_shape = tuple(X.shape[a] for a in axes)
    if mask.shape == spatial_shape:
        mask = mask[np.newaxis]
    elif mask.shape != (X.shape[0],) + spatial_shape and mask.shape != X.shape:
        raise ValueError(
            f"mask shape {mask.shape} matches neither the spatial shape {spatial_shape} "
            f"nor the samples {(X.shape[0],) + spatial_shape}."
        )
    if channel_axis is not None and mask.ndim == X.ndim - 1:
        mask = mask[..., np.newaxis]
    return np.broadcast_to(mask, X.shape)


@contextlib.contextmanager
def _all_nan_ok():
    """Silence numpy's warnings for reductions over all-NaN (fully masked) slices.

    Their NaN results are replaced by a fallback right after, by the caller.
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _per_sample_channel_stat(X, keep, stat, channel_axis):
    """Reduce the kept coordinates of each sample (and channel) with ``stat``."""
    axes = spatial_axes(X.ndim, channel_axis)
    masked = np.where(keep, X, np.nan)
    with _all_nan_ok():
        values = stat(masked, axis=axes, keepdims=True)
    return np.nan_to_num(values, nan=0.0)


def fill_masked(X, mask, fill="interpolate", *, channel_axis=None, random_state=None):
    """Return a copy of X whose masked coordinates are replaced by ``fill``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, *spatial[, n_channels])
        The image stack.
    mask : bool ndarray of shape ``spatial``, ``(n_samples, *spatial)`` or ``X.shape``
        True where the value must be hidden from the denoiser.
    fill : {'interpolate', 'median', 'zero', 'mean', 'uniform'}
        ``'interpolate'``: weighted mean of the unmasked neighbours; ``'median'``: their
        median; ``'zero'``; ``'mean'``: the mean of the unmasked values of the sample
        (and channel); ``'uniform'``: uniform between their min and max. A pixel with no
        unmasked neighbour gets the sample's (channel's) mean or median.
    channel_axis : None or -1
        -1 when X has a trailing channel axis (then a spatial mask hides all channels).
    random_state : int, RandomState or None
        Used by ``'uniform'`` only.

    Returns
    -------
    X_masked : ndarray, same shape and dtype as X
        Its masked values do not depend on the masked values of X.
    """
    check_option(fill, "fill", FILLS)
    full_mask = _expand_mask(mask, X, channel_axis)
    keep = ~full_mask
    out = np.array(X, copy=True)
    if fill == "zero":
        out[full_mask] = 0
        return out
    if fill == "interpolate":
        axes = spatial_axes(X.ndim, channel_axis)
        kept = np.where(keep, X, 0).astype(X.dtype)
        num = _separable_average(kept, axes)
        den = _separable_average(keep.astype(X.dtype), axes)
        fallback = _per_sample_channel_stat(X, keep, np.nanmean, channel_axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(den > 0, num / np.where(den > 0, den, 1), fallback)
    elif fill == "median":
        axes = spatial_axes(X.ndim, channel_axis)
        neighbours = _neighbour_stack(np.where(keep, X, np.nan), axes)
        fallback = _per_sample_channel_stat(X, keep, np.nanmedian, channel_axis)
        with _all_nan_ok():
            values = np.nanmedian(neighbours, axis=0)
        values = np.where(np.isnan(values), fallback, values)
    elif fill == "mean":
        values = np.broadcast_to(
            _per_sample_channel_stat(X, keep, np.nanmean, channel_axis), X.shape
        )
    else:  # uniform
        low = _per_sample_channel_stat(X, keep, np.nanmin, channel_axis)
        high = _per_sample_channel_stat(X, keep, np.nanmax, channel_axis)
        rng = check_random_state(random_state)
        values = low + (high - low) * rng.random_sample(X.shape)
    out[full_mask] = np.asarray(values, dtype=X.dtype)[full_mask]
    return out


# ------------------------------------------------------------------- grid masking loop
def grid_fill_source(X, fill, *, channel_axis=None):
    """Fill values valid for every coset of a grid with stride >= 2, or None.

    A coset pixel's 3**n neighbourhood contains no other pixel of its coset, so the
    neighbour-based fills can be computed once on the unmasked image. ``'mean'`` and
    ``'uniform'`` depend on the coset and return None.

    Parameters
    ----------
    X : ndarray of shape (n_samples, *spatial[, n_channels])
        The image stack.
    fill : {'interpolate', 'median', 'zero', 'mean', 'uniform'}
        See :func:`fill_masked`.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis.

    Returns
    -------
    source : ndarray like X, or None
        Read ``source[coset]`` to fill any coset.
    """
    if fill == "interpolate":
        return neighbour_interpolation(X, channel_axis=channel_axis)
    if fill == "median":
        return neighbour_median(X, channel_axis=channel_axis)
    if fill == "zero":
        return np.zeros_like(X)
    return None


def iter_grid_masked(X, *, stride=4, fill="interpolate", channel_axis=None, cosets=None,
                     random_state=None):
    """Yield ``(index, slices, X_masked)`` for the chosen cosets of a grid partition.

    ``slices`` index the full stack (sample and channel axes included), so
    ``out[slices] = f(X_masked)[slices]`` assembles a J-invariant output.

    Parameters
    ----------
    X : ndarray of shape (n_samples, *spatial[, n_channels])
        The image stack; never modified.
    stride : int >= 2, default=4
        Grid spacing along every spatial axis.
    fill : {'interpolate', 'median', 'zero', 'mean', 'uniform'}, default='interpolate'
        See :func:`fill_masked`.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis (all channels of a pixel are masked).
    cosets : None, int or sequence of int, default=None
        Which cosets, see :func:`select_cosets`.
    random_state : int, RandomState or None, default=None
        Used by ``fill='uniform'`` only.

    Yields
    ------
    index : int
        The coset.
    slices : tuple of slice
        Selects the coset in the full stack.
    X_masked : ndarray like X
        A copy of X with the coset filled.
    """
    check_option(fill, "fill", FILLS)
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride < 2:
        raise ValueError(f"stride must be an integer >= 2, got {stride!r}.")
    axes = spatial_axes(X.ndim, channel_axis)
    n_spatial = len(axes)
    source = grid_fill_source(X, fill, channel_axis=channel_axis)
    rng = check_random_state(random_state)
    spatial_shape = tuple(X.shape[a] for a in axes)
    for index in select_cosets(n_grid_cosets(stride, n_spatial), cosets):
        spatial = grid_slices(n_spatial, stride, index)
        slices = (slice(None),) + spatial + ((slice(None),) if channel_axis is not None else ())
        if source is not None:
            masked = X.copy()
            masked[slices] = source[slices]
        else:
            masked = fill_masked(
                X, grid_mask(spatial_shape, stride, index), fill,
                channel_axis=channel_axis, random_state=rng,
            )
        yield index, slices, masked


def invariant_predict(denoise, X, *, stride=4, fill="interpolate", channel_axis=None,
                      cosets=None, batch_cosets=False, random_state=None, footprint=None):
    """J-invariant prediction of X by any denoiser, through a grid partition.

    Parameters
    ----------
    denoise : callable
        Maps a stack shaped like X to a stack of the same shape.
    X : ndarray of shape (n_samples, *spatial[, n_channels])
        The image stack; never modified.
    stride : int >= 2
        Grid spacing along every spatial axis: ``stride**ndim`` cosets.
    fill : str
        How masked pixels are replaced, see :func:`fill_masked`.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis (all channels of a pixel are masked).
    cosets : None, int or sequence of int
        None for all cosets (exact); an int for that many cosets (approximate).
    batch_cosets : bool
        Concatenate all masked stacks along the sample axis and call ``denoise`` once
        (fast for a neural net, needs ``n_cosets`` times the memory).
    random_state : int, RandomState or None, default=None
        Used by ``fill='uniform'`` only.
    footprint : None or bool ndarray, default=None
        A structured blind spot (see :func:`iter_footprint_masked`): the prediction at a
        pixel then depends on nothing inside its footprint. None hides the pixel alone.

    Returns
    -------
    prediction : ndarray like X
        The J-invariant prediction on the covered coordinates, X elsewhere.
    covered : bool ndarray like X
        True where the prediction was made (everywhere for the exact loss).
    """
    prediction = np.array(X, copy=True)
    covered = np.zeros(X.shape, dtype=bool)
    if footprint is None:
        masked_iter = iter_grid_masked(
            X, stride=stride, fill=fill, channel_axis=channel_axis, cosets=cosets,
            random_state=random_state,
        )
    else:
        masked_iter = iter_footprint_masked(
            X, footprint, stride=stride, fill=fill, channel_axis=channel_axis,
            cosets=cosets, random_state=random_state,
        )
    if batch_cosets:
        items = list(masked_iter)
        outputs = np.asarray(denoise(np.concatenate([m for _, _, m in items])))
        outputs = outputs.reshape((len(items),) + X.shape)
        for (_, slices, _), output in zip(items, outputs):
            prediction[slices] = output[slices]
            covered[slices] = True
        return prediction, covered
    for _, slices, masked in masked_iter:
        prediction[slices] = np.asarray(denoise(masked))[slices]
        covered[slices] = True
    return prediction, covered


# ------------------------------------------------------- structured (footprint) masking
def footprint_strides(footprint, stride=4):
    """Grid spacing per spatial axis for hiding ``footprint`` around each coset pixel.

    Along an axis where the footprint reaches ``e`` pixels either side, the spacing is
    ``max(stride, 2 e + 2)``: the hidden boxes of two coset pixels never touch, so at
    least one line of visible pixels lies between them. A footprint that spans the whole
    axis (``e >= n - 1``) gets spacing 1 there: every coset hides whole lines.

    Parameters
    ----------
    footprint : bool ndarray, one odd-length axis per spatial axis
        True where a pixel's blind spot lies, centred on the pixel.
    stride : int >= 2
        Spacing along axes the footprint does not extend along.

    Returns
    -------
    strides : tuple of int
    """
    centre = np.array(footprint.shape) // 2
    reach = np.max(np.abs(np.argwhere(footprint) - centre), axis=0)
    return tuple(int(max(stride, 2 * e + 2)) for e in reach)


def _whole_axis_strides(strides, footprint, spatial_shape):
    """Spacing 1 along the axes the footprint covers entirely, checked to leave pixels."""
    reach = np.array(footprint.shape) // 2
    out = tuple(1 if r >= n - 1 else s for s, r, n in zip(strides, reach, spatial_shape))
    if all(s == 1 for s in out):
        raise ValueError(
            f"the blind spot (footprint of shape {footprint.shape}) covers the whole image "
            f"{spatial_shape}: nothing would be left to predict a pixel from."
        )
    return out


def n_footprint_cosets(footprint, spatial_shape, stride=4):
    """Number of cosets :func:`iter_footprint_masked` goes through for these images."""
    footprint = np.asarray(footprint, dtype=bool)
    return int(np.prod(_whole_axis_strides(footprint_strides(footprint, stride), footprint,
                                           tuple(spatial_shape))))


def fill_from_outside(X, mask, *, channel_axis=None):
    """Fill masked coordinates from the unmasked ones, growing inwards from the border.

    Each pass gives the masked pixels that touch known pixels the weighted average of
    those (the ``'interpolate'`` weights), then counts them as known; a masked region
    of any shape is filled in as many passes as it is thick. No value inside the mask
    is ever read, so the fill does not depend on it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, *spatial[, n_channels])
        Float image stack; never modified.
    mask : bool ndarray broadcastable as in :func:`fill_masked`
        True where values must be hidden.
    channel_axis : None or -1

    Returns
    -------
    X_filled : ndarray like X
    """
    full_mask = _expand_mask(mask, X, channel_axis)
    axes = spatial_axes(X.ndim, channel_axis)
    known = ~full_mask
    out = np.where(known, X, 0).astype(X.dtype)
    fallback = _per_sample_channel_stat(X, known, np.nanmean, channel_axis)
    while not known.all():
        num = _separable_average(np.where(known, out, 0).astype(X.dtype), axes)
        den = _separable_average(known.astype(X.dtype), axes)
        newly = ~known & (den > 0)
        if not newly.any():
            out = np.where(known, out, np.broadcast_to(fallback, X.shape)).astype(X.dtype)
            break
        out[newly] = (num[newly] / den[newly]).astype(X.dtype)
        known = known | newly
    return out


def iter_footprint_masked(X, footprint, *, stride=4, fill="interpolate", channel_axis=None,
                          cosets=None, random_state=None):
    """Like :func:`iter_grid_masked`, hiding a whole footprint around each coset pixel.

    The coset's pixels are predicted from an image in which their footprints (their
    blind spots) are filled from outside: the prediction at a pixel depends on no value
    inside its blind spot. Spacing per axis from :func:`footprint_strides`.

    Parameters
    ----------
    X : ndarray of shape (n_samples, *spatial[, n_channels])
    footprint : bool ndarray, one odd-length axis per spatial axis
    stride : int >= 2
    fill : {'interpolate', 'median', 'zero', 'mean', 'uniform'}
        ``'interpolate'`` fills with :func:`fill_from_outside`; the others as
        :func:`fill_masked`.
    channel_axis : None or -1
    cosets : None, int or sequence of int
    random_state : int, RandomState or None

    Yields
    ------
    index, slices, X_masked
        As :func:`iter_grid_masked`.
    """
    check_option(fill, "fill", FILLS)
    axes = spatial_axes(X.ndim, channel_axis)
    spatial_shape = tuple(X.shape[a] for a in axes)
    footprint = np.asarray(footprint, dtype=bool)
    strides = _whole_axis_strides(footprint_strides(footprint, stride), footprint,
                                  spatial_shape)
    rng = check_random_state(random_state)
    channel = (slice(None),) if channel_axis is not None else ()
    for index in select_cosets(int(np.prod(strides)), cosets):
        offsets = np.unravel_index(index, strides)
        spatial = tuple(slice(int(o), None, s) for o, s in zip(offsets, strides))
        centres = np.zeros(spatial_shape, dtype=bool)
        centres[spatial] = True
        hidden = ndi.binary_dilation(centres, structure=footprint)
        if fill == "interpolate":
            masked = fill_from_outside(X, hidden, channel_axis=channel_axis)
        else:
            masked = fill_masked(X, hidden, fill, channel_axis=channel_axis,
                                 random_state=rng)
        yield index, (slice(None),) + spatial + channel, masked
