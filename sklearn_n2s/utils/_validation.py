"""Input validation shared by every estimator.

One place decides what an image stack is, which dtypes are accepted and how integer
images become floats, so every estimator fails the same way on bad input. The generic
checks (finiteness, minimum sizes, no copy of an array that is already fine) are
scikit-learn's :func:`~sklearn.utils.check_array`; only the image policy is ours.
"""

import numbers

import numpy as np
from skimage.util import img_as_float
from sklearn.utils import check_array

MAX_SPATIAL_DIMS = 3


def check_channel_axis(channel_axis):
    """Return ``channel_axis`` if it is None or -1, else raise a ValueError."""
    if channel_axis is None or (
        isinstance(channel_axis, numbers.Integral) and not isinstance(channel_axis, bool)
        and channel_axis == -1
    ):
        return channel_axis
    raise ValueError(f"channel_axis must be None or -1, got {channel_axis!r}.")


def _as_array(X):
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            "Sparse input is not supported by image denoisers: pass a dense array "
            "(sparse matrices are for the table estimators)."
        )
    try:
        array = np.asarray(X)
    except ValueError as exc:  # numpy refuses ragged nested sequences
        raise ValueError(
            f"X is ragged: its rows have different lengths and cannot form an array ({exc})."
        ) from None
    if array.dtype.kind in "iu" and not hasattr(X, "dtype"):
        # Python ints carry no image dtype: numpy's int64 would make img_as_float
        # divide them by 2**63. Take them at face value instead.
        return array.astype(np.float64)
    return array


def _check_dtype(X):
    """Return X with a numeric dtype, or raise naming the problem."""
    if X.dtype == object:
        # An object array of numbers is accepted (as scikit-learn does); anything else
        # (strings, None, nested sequences) is refused.
        try:
            return X.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                "X has dtype object and its values are not numbers (argument must be a "
                "string or a number, not a sequence or None); expected a numeric array."
            ) from None
    if np.iscomplexobj(X):
        raise ValueError("Complex data not supported: denoisers expect real-valued images.")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X has unsupported dtype {X.dtype}; expected a numeric array.")
    return X


def intensity_scale(dtype):
    """Factor that maps intensities of ``dtype`` to the float units used internally.

    Integer images are converted with :func:`skimage.util.img_as_float` (uint8 0..255 to
    0..1, for example), so an intensity-valued parameter given in the input's units
    (a wavelet ``sigma``, a noise variance) is multiplied by this factor, exactly as
    scikit-image's ``rescale_sigma=True`` does. Floats are used as they are (factor 1).
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        return 1.0
    pair = np.array([0, 1], dtype=dtype)
    converted = img_as_float(pair)
    return float(converted[1] - converted[0])


def to_float(X):
    """Convert to the float dtype used for computation.

    float32 and float64 are kept (without a copy: the estimators never write into their
    input, which the tests check), float16 becomes float32, longdouble float64; integers
    and booleans go through ``img_as_float`` (uint8 0..255 becomes 0..1, int16 becomes
    -1..1).
    """
    if X.dtype.kind == "f":
        dtype = np.float32 if X.dtype.itemsize <= 4 else np.float64
        return np.asarray(X, dtype=dtype)
    if X.dtype.kind == "b":
        return X.astype(np.float64)
    return np.asarray(img_as_float(X), dtype=np.float64)


def check_stack(X, *, channel_axis=None, min_spatial_size=1, name="X", return_scale=False):
    """Validate an image stack and return it as floats.

    Our policy is checked first, with messages that name the problem (sparse, ragged,
    complex, object and string input; the number of spatial axes; empty stacks; images
    smaller than the filter); then :func:`sklearn.utils.check_array` (``allow_nd=True``,
    no dtype conversion, no copy) refuses NaN and infinity; integer and boolean images
    finally become floats through :func:`to_float`.

    Parameters
    ----------
    X : array-like of shape (n_samples, *spatial[, n_channels])
        One to three spatial axes; a trailing channel axis when ``channel_axis=-1``.
    channel_axis : None or -1
    min_spatial_size : int
        Smallest length allowed along every spatial axis (an image smaller than the
        filter cannot be filtered meaningfully).
    name : str
        Name of the input in error messages.
    return_scale : bool
        Also return :func:`intensity_scale` of the input's dtype.

    Returns
    -------
    X_float : ndarray
        float32/float64; the caller's array itself when it already is one, so callers
        must treat it as read-only.
    scale : float
        Only with ``return_scale=True``.
    """
    channel_axis = check_channel_axis(channel_axis)
    X = _check_dtype(_as_array(X))
    n_extra = 1 + (channel_axis is not None)
    if X.ndim == 0:
        raise ValueError(f"{name} is 0-d (a scalar); expected an image stack.")
    n_spatial = X.ndim - n_extra
    if n_spatial < 1:
        raise ValueError(
            f"{name} has {X.ndim} dimension(s); expected (n_samples, *spatial"
            f"{', n_channels' if channel_axis is not None else ''}) with 1 to "
            f"{MAX_SPATIAL_DIMS} spatial axes. Reshape your data: a single image as "
            "X[np.newaxis], a 1-d signal as X.reshape(1, -1)."
        )
    if n_spatial > MAX_SPATIAL_DIMS:
        hint = ("" if channel_axis is not None
                else " (set channel_axis=-1 for a trailing channel axis)")
        raise ValueError(
            f"{name} has {X.ndim} dimensions, i.e. {n_spatial} spatial axes; at most "
            f"{MAX_SPATIAL_DIMS} spatial axes are supported{hint}."
        )
    if X.shape[0] == 0:
        raise ValueError(
            f"{name} is empty: 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if X.size == 0:
        raise ValueError(
            f"{name} is empty: 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    spatial = X.shape[1:1 + n_spatial]
    if min(spatial) < min_spatial_size:
        features = f" (n_features = {spatial[0]})" if n_spatial == 1 else ""
        raise ValueError(
            f"{name} has spatial shape {spatial}{features}, smaller than the filter needs: "
            f"every spatial axis must have at least {min_spatial_size} pixels."
        )
    # NaN and infinity; float32/float64 come back as they are (no copy, no conversion).
    X = check_array(X, accept_sparse=False, dtype=None, order=None, copy=False,
                    ensure_all_finite=True, ensure_2d=True, allow_nd=True,
                    ensure_min_samples=1, ensure_min_features=1, input_name=name)
    Xf = to_float(X)
    return (Xf, intensity_scale(X.dtype)) if return_scale else Xf


def spatial_axes(ndim, channel_axis):
    """Axes of a stack that are spatial: all but the sample axis and the channel axis."""
    last = ndim - (channel_axis is not None)
    return tuple(range(1, last))


def check_option(value, name, options):
    """Raise a ValueError naming the allowed options when ``value`` is not one of them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}.")
    return value
