"""Structured blind spots in the masking core: the prediction at a pixel depends on
nothing inside its footprint (J-invariance over the structured partition)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from sklearn_n2s.masking import (
    fill_from_outside,
    footprint_strides,
    invariant_predict,
    iter_footprint_masked,
)
from sklearn_n2s.utils._correlation import check_blind_spot


def _blur(stack):
    return ndi.gaussian_filter(stack, sigma=(0,) + (1.5,) * (stack.ndim - 1))


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n_spatial=st.integers(1, 3))
def test_prediction_ignores_every_value_in_its_blind_spot(data, n_spatial):
    shape = tuple(data.draw(st.integers(6, 11)) for _ in range(n_spatial))
    extent = tuple(data.draw(st.integers(0, 2)) for _ in range(n_spatial))
    footprint = check_blind_spot(extent, n_spatial)
    if footprint is None:
        footprint = np.ones((1,) * n_spatial, dtype=bool)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    X = rng.normal(size=(1, *shape))
    p = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    q = tuple(min(max(pi + data.draw(st.integers(-e, e)), 0), n - 1)
              for pi, e, n in zip(p, extent, shape))
    base, covered = invariant_predict(_blur, X, footprint=footprint)
    assert covered.all()
    Y = X.copy()
    Y[(0, *q)] += 100.0
    moved, _ = invariant_predict(_blur, Y, footprint=footprint)
    assert moved[(0, *p)] == pytest.approx(base[(0, *p)], abs=1e-9)


def test_prediction_still_uses_pixels_just_outside_the_blind_spot():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1, 20, 20))
    footprint = check_blind_spot((0, 3), 2)
    base, _ = invariant_predict(_blur, X, footprint=footprint)
    Y = X.copy()
    Y[0, 10, 14] += 100.0  # four pixels along x from (10, 10): outside its blind spot
    moved, _ = invariant_predict(_blur, Y, footprint=footprint)
    assert abs(moved[0, 10, 10] - base[0, 10, 10]) > 1e-3


def test_whole_axis_blind_spot_predicts_rows_from_other_rows():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2, 12, 16))
    footprint = check_blind_spot((0, None), 2, spatial_shape=(12, 16))
    assert footprint.shape == (1, 31)
    assert footprint_strides(footprint)[0] == 4
    base, _ = invariant_predict(_blur, X, footprint=footprint)
    Y = X.copy()
    Y[1, 5, :] += 50.0  # the whole row 5 moves
    moved, _ = invariant_predict(_blur, Y, footprint=footprint)
    np.testing.assert_allclose(moved[1, 5], base[1, 5], atol=1e-9)
    assert np.abs(moved[1, 4] - base[1, 4]).max() > 1e-3


def test_blind_spot_covering_the_image_is_refused():
    X = np.zeros((1, 5, 5))
    footprint = np.ones((9, 9), dtype=bool)
    with pytest.raises(ValueError, match="covers the whole image"):
        next(iter_footprint_masked(X, footprint))


def test_fill_from_outside_fills_thick_holes_without_reading_them():
    X = np.arange(100.0).reshape(1, 10, 10)
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:8, 2:8] = True
    filled = fill_from_outside(X, mask)
    poisoned = X.copy()
    poisoned[0, mask] = 1e6
    np.testing.assert_array_equal(fill_from_outside(poisoned, mask), filled)
    # A linear ramp is filled with values inside the ramp's range, never the sample mean.
    assert filled[0, mask].min() >= X.min() and filled[0, mask].max() <= X.max()
    assert not np.shares_memory(filled, X)
    np.testing.assert_array_equal(filled[0, ~mask], X[0, ~mask])


@pytest.mark.parametrize("bad, error, match", [
    ("line", ValueError, "blind_spot must be"),
    ((1, 2, 3), ValueError, "half-extent"),
    ((1, -1), ValueError, "integers >= 0"),
    (1.5, TypeError, "blind_spot must be"),
    (np.ones((2, 3), dtype=bool), ValueError, "odd length"),
])
def test_check_blind_spot_names_the_problem(bad, error, match):
    with pytest.raises(error, match=match):
        check_blind_spot(bad, 2)


def test_check_blind_spot_forms():
    assert check_blind_spot("pixel", 2) is None
    assert check_blind_spot((0, 0), 2) is None
    assert check_blind_spot(1, 2).shape == (3, 3)
    line = check_blind_spot([0, 3], 2)
    assert line.shape == (1, 7) and line.all()
    cross = np.zeros((3, 3), dtype=bool)
    cross[1, :] = cross[:, 1] = True
    np.testing.assert_array_equal(check_blind_spot(cross, 2), cross)
