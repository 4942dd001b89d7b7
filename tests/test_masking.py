"""The masking core: partitions cover every coordinate once; fills never look at the masked."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator

from sklearn_n2s import masking
from sklearn_n2s.utils.estimator_checks import check_j_invariance


@pytest.mark.parametrize("spatial, stride", [((7,), 3), ((9, 10), 4), ((5, 6, 7), 2)])
def test_grid_cosets_partition_every_pixel_once(spatial, stride):
    count = np.zeros(spatial, dtype=int)
    n = masking.n_grid_cosets(stride, len(spatial))
    for index in range(n):
        count += masking.grid_mask(spatial, stride, index)
    np.testing.assert_array_equal(count, 1)


def test_select_cosets():
    assert masking.select_cosets(16) == list(range(16))
    assert masking.select_cosets(16, 1) == [8]
    assert len(masking.select_cosets(16, 4)) == 4
    assert masking.select_cosets(16, [3, 5]) == [3, 5]
    with pytest.raises(ValueError, match="between 1 and 16"):
        masking.select_cosets(16, 17)
    with pytest.raises(ValueError, match="0..15"):
        masking.select_cosets(16, [16])


def test_random_mask_density_and_repeatability():
    a = masking.random_mask((200, 200), 0.1, random_state=3)
    b = masking.random_mask((200, 200), 0.1, random_state=3)
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean() - 0.1) < 0.01
    with pytest.raises(ValueError, match="density"):
        masking.random_mask((4, 4), 1.5)


def test_random_partition_labels():
    labels = masking.random_partition((50, 50), 5, random_state=0)
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}


def test_column_groups_cover_features_once():
    groups = masking.column_groups(23, 4, random_state=0)
    assert len(groups) == 4
    np.testing.assert_array_equal(np.sort(np.concatenate(groups)), np.arange(23))
    assert max(map(len, groups)) - min(map(len, groups)) <= 1
    with pytest.raises(ValueError, match="more than the number of features"):
        masking.column_groups(3, 4)
    with pytest.raises(ValueError, match=">= 2"):
        masking.column_groups(10, 1)


def test_interpolation_matches_reference_kernel_in_the_interior(rng):
    X = rng.random((1, 6, 7))
    kernel = np.array([[0.5, 1.0, 0.5], [1.0, 0.0, 1.0], [0.5, 1.0, 0.5]])
    interp = masking.neighbour_interpolation(X)
    i, j = 3, 3
    expected = np.sum(X[0, i - 1:i + 2, j - 1:j + 2] * kernel) / kernel.sum()
    assert interp[0, i, j] == pytest.approx(expected)
    # At a corner only the three in-image neighbours count, none mirrored.
    corner = (X[0, 0, 1] + X[0, 1, 0] + 0.5 * X[0, 1, 1]) / 2.5
    assert interp[0, 0, 0] == pytest.approx(corner)


@pytest.mark.parametrize("fill", masking.FILLS)
@pytest.mark.parametrize("channel_axis", [None, -1])
def test_fill_never_looks_at_masked_values(fill, channel_axis, rng):
    shape = (2, 9, 8, 3) if channel_axis == -1 else (2, 9, 8)
    X = rng.random(shape)
    mask = masking.random_mask((2, 9, 8), 0.3, random_state=1)
    Y = X.copy()
    full = mask[..., None] if channel_axis == -1 else mask
    Y[np.broadcast_to(full, X.shape)] = rng.random(int(np.broadcast_to(full, X.shape).sum())) * 100
    a = masking.fill_masked(X, mask, fill, channel_axis=channel_axis, random_state=0)
    b = masking.fill_masked(Y, mask, fill, channel_axis=channel_axis, random_state=0)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # Unmasked coordinates are untouched.
    keep = ~np.broadcast_to(full, X.shape)
    np.testing.assert_array_equal(a[keep], X[keep])


def test_fill_interpolate_keeps_channels_apart(rng):
    X = np.zeros((1, 5, 5, 2))
    X[..., 1] = 1.0
    mask = np.zeros((5, 5), dtype=bool)
    mask[2, 2] = True
    out = masking.fill_masked(X, mask, "interpolate", channel_axis=-1)
    assert out[0, 2, 2, 0] == 0.0 and out[0, 2, 2, 1] == 1.0


def test_fill_rejects_bad_mask_and_fill(rng):
    X = rng.random((1, 4, 4))
    with pytest.raises(ValueError, match="mask shape"):
        masking.fill_masked(X, np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="fill"):
        masking.fill_masked(X, np.zeros((4, 4), dtype=bool), "nearest")


@pytest.mark.parametrize("fill", masking.FILLS)
def test_grid_masked_images_equal_fill_masked(fill, rng):
    X = rng.random((2, 10, 9))
    for index, _slices, masked in masking.iter_grid_masked(X, stride=3, fill=fill,
                                                           random_state=0):
        mask = masking.grid_mask((10, 9), 3, index)
        if fill != "uniform":
            expected = masking.fill_masked(X, mask, fill)
            np.testing.assert_allclose(masked, expected, atol=1e-12)
        np.testing.assert_array_equal(masked[:, ~mask], X[:, ~mask])


def _box_blur(X):
    from scipy import ndimage as ndi

    return ndi.uniform_filter(X, size=(1, 5, 5), mode="reflect")


@settings(max_examples=25, deadline=None)
@given(
    i=st.integers(0, 11), j=st.integers(0, 12), delta=st.floats(-50, 50),
    stride=st.integers(2, 4), fill=st.sampled_from(["interpolate", "median", "zero", "mean"]),
)
def test_invariant_predict_is_j_invariant(i, j, delta, stride, fill):
    X = np.random.default_rng(5).random((1, 12, 13))
    check_j_invariance(_GridMasked(stride, fill), X, coordinates=[(0, i, j)], delta=delta,
                       atol=1e-10)


class _GridMasked(BaseEstimator):
    """The box blur made J-invariant by :func:`masking.invariant_predict`."""

    def __init__(self, stride=4, fill="interpolate"):
        self.stride = stride
        self.fill = fill

    def fit(self, X, y=None):
        return self

    def __sklearn_is_fitted__(self):
        return True

    def invariant_transform(self, X):
        return masking.invariant_predict(_box_blur, X, stride=self.stride, fill=self.fill)[0]


@pytest.mark.parametrize("fill", ["interpolate", "median", "zero", "mean"])
def test_invariant_predict_passes_the_estimator_checks_at_edges_and_corners(fill):
    X = np.random.default_rng(6).random((2, 9, 10))
    assert check_j_invariance(_GridMasked(3, fill), X) > 1e-3


def test_invariant_predict_batched_equals_loop_and_covers(rng):
    X = rng.random((3, 12, 12))
    a, cov_a = masking.invariant_predict(_box_blur, X, stride=4)
    b, cov_b = masking.invariant_predict(_box_blur, X, stride=4, batch_cosets=True)
    np.testing.assert_allclose(a, b)
    assert cov_a.all() and cov_b.all()
    _, partial = masking.invariant_predict(_box_blur, X, stride=4, cosets=2)
    assert partial.mean() == pytest.approx(2 / 16)


def test_stride_must_be_at_least_two(rng):
    with pytest.raises(ValueError, match="stride"):
        list(masking.iter_grid_masked(rng.random((1, 4, 4)), stride=1))
