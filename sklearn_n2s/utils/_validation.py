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
        dtypes = _sequence_dtypes(X)
        if dtypes is None:
            # Python ints carry no image dtype: numpy's int64 would make img_as_float
            # divide them by 2**63. Take them at face value instead.
            return array.astype(np.float64)
        if len(dtypes) > 1:
            raise ValueError(
                "X is a sequence of arrays of different dtypes "
                f"({', '.join(sorted(str(d) for d in dtypes))}): integer images are "
                "scaled by their dtype's range, so convert them to one dtype first."
            )
        # A list of uint8/uint16 images is their stack: same dtype, same scaling.
        return array.astype(next(iter(dtypes)), copy=False)
    return array


def _sequence_dtypes(X):
    """The set of dtypes of a list/tuple whose items are all numpy arrays or scalars.

    None when X is not such a sequence (Python numbers, nested lists): those items
    carry no image dtype.
    """
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return None
    if not all(isinstance(item, (np.ndarray, np.generic)) for item in X):
        return None
    return {np.dtype(item.dtype) for item in X}


def _check_dtype(X):
    """Return X with a numeric dtype, or raise naming the problem."""
    if X.dtype == object:
        # An object array of numbers is accepted (as scikit-learn does); anything else
        # (None, strings, nested sequences) is refused, naming the first offender:
        # numpy would turn None into NaN and '1.5' into 1.5 without a word.
        for index, value in np.ndenumerate(X):
            if value is None:
                raise TypeError(
                    f"X has dtype object and holds None at index {index} (a missing "
                    "value?): image denoisers need a number at every pixel; fill or "
                    "drop the missing values first."
                )
            if isinstance(value, (str, bytes)):
                raise TypeError(
                    f"X has dtype object and holds a non-number at index {index} "
                    f"({value!r}, of type {type(value).__name__}); expected a numeric "
                    "array (convert numeric strings with X.astype(float) first)."
                )
            if not isinstance(value, (numbers.Real, np.bool_)):
                kind = type(value).__name__
                raise TypeError(
                    f"X has dtype object and holds a non-number at index {index} "
                    f"(of type {kind}); expected a numeric array (float() argument must "
                    f"be a string or a real number, not '{kind}')."
                )
        return X.astype(np.float64)
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


def internal_unit(X):
    """Power of two that X is divided by so that squares of its values stay finite.

    1.0 when the largest magnitude is at most ``2**(maxexp // 4)`` of the dtype
    (``2**256`` for float64, ``2**32`` for float32); otherwise ``2**(e - 1)`` with
    ``2**(e - 1) <= max|X| < 2**e``, so that ``X / unit`` lies in (-2, 2).

    Parameters
    ----------
    X : ndarray of float32 or float64, finite

    Returns
    -------
    unit : float
    """
    if X.size == 0:
        return 1.0
    peak = max(float(np.max(X)), -float(np.min(X)))
    if peak <= 2.0 ** (np.finfo(X.dtype).maxexp // 4):
        return 1.0
    return float(np.ldexp(1.0, int(np.frexp(peak)[1]) - 1))


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


def _image_axes_description(spatial_ndim, channel_axis):
    names = {1: "L", 2: "H, W", 3: "D, H, W"}.get(spatial_ndim, f"{spatial_ndim} axes")
    return names + (", n_channels" if channel_axis is not None else "")


def check_stack(X, *, channel_axis=None, spatial_ndim=None, min_spatial_size=1, name="X",
                return_scale=False, return_single=False):
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
    spatial_ndim : None or int in [1, 3], default=None
        Number of spatial axes, when known: a single image ``(*spatial[, n_channels])``
        is then accepted as a stack of one, and any other number of axes is refused.
        None infers it from ``X.ndim``.
    min_spatial_size : int
        Smallest length allowed along every spatial axis (an image smaller than the
        filter cannot be filtered meaningfully).
    name : str
        Name of the input in error messages.
    return_scale : bool
        Also return :func:`intensity_scale` of the input's dtype.
    return_single : bool
        Also return whether X was a single image (given ``spatial_ndim``) that got a
        sample axis.

    Returns
    -------
    X_float : ndarray
        float32/float64; the caller's array itself when it already is one, so callers
        must treat it as read-only.
    scale : float
        Only with ``return_scale=True``.
    single : bool
        Only with ``return_single=True``.
    """
    channel_axis = check_channel_axis(channel_axis)
    X = _check_dtype(_as_array(X))
    n_extra = 1 + (channel_axis is not None)
    if X.ndim == 0:
        raise ValueError(f"{name} is 0-d (a scalar); expected an image stack.")
    single = False
    if spatial_ndim is not None:
        n_image = spatial_ndim + (channel_axis is not None)
        axes = _image_axes_description(spatial_ndim, channel_axis)
        if X.ndim == n_image:
            X, single = X[np.newaxis], True
        elif X.ndim != n_image + 1:
            raise ValueError(
                f"{name} has {X.ndim} dimension(s) (shape {X.shape}), but "
                f"spatial_ndim={spatial_ndim} expects one image ({axes}) or a stack of "
                f"them (n_samples, {axes})."
            )
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
    # scikit-learn first tries the sum of X, which overflows for huge finite values
    # (then it checks element by element): no RuntimeWarning for that.
    with np.errstate(over="ignore", invalid="ignore"):
        X = check_array(X, accept_sparse=False, dtype=None, order=None, copy=False,
                        ensure_all_finite=True, ensure_2d=True, allow_nd=True,
                        ensure_min_samples=1, ensure_min_features=1, input_name=name)
    Xf = to_float(X)
    if not (return_scale or return_single):
        return Xf
    return ((Xf,) + ((intensity_scale(X.dtype),) if return_scale else ())
            + ((single,) if return_single else ()))


def spatial_axes(ndim, channel_axis):
    """Axes of a stack that are spatial: all but the sample axis and the channel axis."""
    last = ndim - (channel_axis is not None)
    return tuple(range(1, last))


def check_option(value, name, options):
    """Raise a ValueError naming the allowed options when ``value`` is not one of them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}.")
    return value
