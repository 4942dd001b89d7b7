"""JInvariantNLMeans: one-pass J-invariant NL-means, checked against a pixel-by-pixel
reference; the ordinary output is scikit-image's denoise_nl_means."""

import itertools

import numpy as np
import pytest
from skimage.restoration import denoise_nl_means

from sklearn_n2s.image import JInvariantNLMeans
from sklearn_n2s.image._nlmeans import DISTANCE_CUTOFF, _patch_kernel_1d, nl_means_invariant
from sklearn_n2s.masking import neighbour_interpolation
from sklearn_n2s.utils.estimator_checks import check_denoiser, check_j_invariance


def reference(x, patch_size, patch_distance, h, sigma=0.0, fast_mode=True, guide=0.0):
    """The definition, one pixel at a time (2-D, no channels)."""
    H, W = x.shape
    r = patch_size // 2
    k1 = _patch_kernel_1d(2 * r + 1, fast_mode)
    interp = neighbour_interpolation(x[np.newaxis])[0]
    out = np.empty_like(x)
    for i in itertools.product(range(H), range(W)):
        num, den = guide * interp[i], guide
        for d in itertools.product(range(-patch_distance, patch_distance + 1), repeat=2):
            j = (i[0] + d[0], i[1] + d[1])
            if d == (0, 0) or not (0 <= j[0] < H and 0 <= j[1] < W):
                continue
            total = count = 0.0
            for k in itertools.product(range(-r, r + 1), repeat=2):
                a, b = (i[0] + k[0], i[1] + k[1]), (j[0] + k[0], j[1] + k[1])
                if a == i or b == i:  # terms that read x_i
                    continue
                if not all(0 <= p[0] < H and 0 <= p[1] < W for p in (a, b)):
                    continue
                g = k1[k[0] + r] * k1[k[1] + r]
                total += g * ((x[a] - x[b]) ** 2 - 2 * sigma**2)
                count += g
            dist = (max(total, 0.0) / count if count > 0 else 0.0) / h**2
            w = np.exp(-dist) if dist <= DISTANCE_CUTOFF else 0.0
            num += w * x[j]
            den += w
        out[i] = num / den if den > 0 else interp[i]
    return out


@pytest.mark.parametrize("params", [
    dict(patch_size=3, patch_distance=2, h=0.2),
    dict(patch_size=5, patch_distance=3, h=0.15, sigma=0.05, fast_mode=False),
    dict(patch_size=3, patch_distance=4, h=0.02),  # many weights cut off
])
def test_one_pass_equals_the_definition(params, rng):
    x = rng.random((9, 11))
    for guide in (0.0, 1.0):
        np.testing.assert_allclose(nl_means_invariant(x, guide_weight=guide, **params),
                                   reference(x, guide=guide, **params), atol=1e-10)


@pytest.mark.parametrize("X, params", [
    (np.random.default_rng(1).integers(0, 256, (2, 14, 15), dtype=np.uint8),
     dict(h=40.0, patch_size=3, patch_distance=3)),
    (np.random.default_rng(2).random((1, 12, 12)),
     dict(h=0.2, patch_size=5, patch_distance=2, fast_mode=False, sigma=0.05)),
    (np.random.default_rng(3).random((1, 10, 11, 3)),
     dict(h=0.3, patch_size=3, patch_distance=2, channel_axis=-1)),
    (np.random.default_rng(4).random((1, 7, 8, 9)), dict(h=0.3, patch_size=3, patch_distance=2)),
])
def test_j_invariance_and_contract(X, params):
    check_denoiser(JInvariantNLMeans(**params), X)


def test_ordinary_is_skimage_in_grey_levels(rng):
    X = rng.integers(0, 65536, (2, 20, 21)).astype(np.uint16)
    est = JInvariantNLMeans(h=6000.0, sigma=2000.0, patch_size=5, patch_distance=3,
                            output="ordinary").fit(X)
    out = est.transform(X)
    for i in range(2):
        expected = denoise_nl_means(X[i] / 65535, h=6000 / 65535, sigma=2000 / 65535,
                                    patch_size=5, patch_distance=3)
        np.testing.assert_allclose(out[i], expected, atol=1e-10)
    floats = JInvariantNLMeans(h=6000 / 65535, sigma=2000 / 65535, patch_size=5,
                               patch_distance=3).fit(X / 65535)
    np.testing.assert_allclose(est.invariant_transform(X),
                               floats.invariant_transform(X / 65535), atol=1e-10)


def test_calibration_picks_near_the_noise_level_uint16(rng):
    clean = np.kron(rng.integers(0, 2, (5, 5)), np.ones((8, 8))) * 30000 + 10000
    X = rng.normal(clean, 3000).clip(0, 65535).astype(np.uint16)[np.newaxis]
    grid = JInvariantNLMeans.default_grid(X)["h"]
    assert 2000 < np.median(grid) < 5000  # from the estimated noise, in grey levels
    losses = [JInvariantNLMeans(h=h, patch_distance=4).fit(X).self_supervised_loss(X)
              for h in [grid[0] / 20] + grid + [grid[-1] * 20]]
    best = int(np.argmin(losses))
    assert 0 < best < len(losses) - 1


def test_one_dimensional_refused_and_blockwise_matches(rng):
    with pytest.raises(ValueError, match="2 or 3 spatial axes"):
        JInvariantNLMeans().fit(rng.random((3, 30)))
    da = pytest.importorskip("dask.array")
    X = rng.random((1, 40, 36))
    est = JInvariantNLMeans(h=0.2, patch_size=3, patch_distance=3).fit(X)
    lazy = est.invariant_transform(da.from_array(X, chunks=(1, 20, 18))).compute()
    np.testing.assert_allclose(lazy, est.invariant_transform(X), atol=1e-10)
    assert check_j_invariance(est, X, n_probes=2) > 0
