"""Filters larger than the image, and parameters that must not be booleans.

A filter whose reach exceeds the image does no useful work and can cost without bound
(a median over ``radius=10**6`` asks for terabytes, a wavelet grid with a stride beyond
the image builds millions of empty cosets). Each classical image denoiser states what
an image must hold for it in ``_check_spatial_shape(spatial_shape)``; the image contract
(:class:`~sklearn_n2s.image.JInvariantDenoiserMixin`) runs it in ``fit`` (before any
fitted state is set), on every call from the data's shape (cheap: nothing is computed),
and for a dask array on the whole image's shape when the chunk graph is built. This
module holds the shared constraints and messages.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval

from ..masking import n_grid_cosets


class NotBool(Interval):
    """An :class:`~sklearn.utils._param_validation.Interval` that a bool does not satisfy.

    ``True`` is an ``Integral`` (and a ``Real``) in Python; a parameter that counts or
    measures (a radius, a stride, a number of threads) refuses it by name instead of
    reading it as 1.
    """

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


def positive_int():
    """Constraint: an int >= 1, not a bool."""
    return NotBool(Integral, 1, None, closed="left")


def positive_real():
    """Constraint: a real > 0, not a bool."""
    return NotBool(Real, 0, None, closed="neither")


#: ``n_jobs`` as joblib reads it: None, or a nonzero int (-1: all processors).
N_JOBS_CONSTRAINT = [None, NotBool(Integral, 1, None, closed="left"),
                     NotBool(Integral, None, -1, closed="right")]


def describe_shape(spatial_shape):
    """``'spatial shape (H, W)'``, with scikit-learn's ``n_features`` for 1-D signals."""
    spatial_shape = tuple(int(s) for s in spatial_shape)
    features = f" (n_features = {spatial_shape[0]})" if len(spatial_shape) == 1 else ""
    return f"spatial shape {spatial_shape}{features}"


def check_has_neighbours(spatial_shape):
    """Refuse a single-pixel image: a J-invariant filter has nothing to predict it from."""
    if int(np.prod(spatial_shape)) < 2:
        raise ValueError(
            f"X has {describe_shape(spatial_shape)}, too small: a single pixel has no "
            "neighbours to predict it from."
        )


def check_cosets_in_grid(cosets, stride, n_spatial):
    """Refuse more cosets than a grid with ``stride`` has on ``n_spatial`` axes."""
    n_cosets = n_grid_cosets(stride, n_spatial)
    if cosets is not None and cosets > n_cosets:
        raise ValueError(
            f"cosets={cosets} is more than the {n_cosets} cosets of a grid with "
            f"stride={stride} on {n_spatial} spatial axes."
        )


def check_stride_fits(stride, spatial_shape):
    """Refuse a masking grid whose stride is more than twice the image's largest side."""
    largest = max(spatial_shape)
    if stride > 2 * largest:
        raise ValueError(
            f"stride={stride} is more than twice the largest side of X "
            f"({describe_shape(spatial_shape)}): the grid would have "
            f"{stride}**{len(spatial_shape)} cosets, almost all of them empty. "
            f"Use stride <= {2 * largest}."
        )
