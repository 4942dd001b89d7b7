"""N2SNet's test-time augmentation: the mean over the grid maps, still J-invariant."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_n2s.neural import BabyUnet, DilatedBlindSpotNet, N2SNet
from sklearn_n2s.neural._net import _grid_maps
from sklearn_n2s.utils.estimator_checks import check_j_invariance

MODULES = {"masked": BabyUnet, "blind": DilatedBlindSpotNet}


def noisy(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def tiny(kind, **params):
    return N2SNet(MODULES[kind], module__width=2, max_steps=2, batch_size=4,
                  random_state=0, test_time_augmentation=True, **params)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(MODULES)), ndim=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**16))
def test_augmented_output_stays_j_invariant(kind, ndim, seed):
    shape = {1: (2, 24), 2: (2, 12, 16), 3: (1, 8, 8, 12)}[ndim]
    X = noisy(shape, seed)
    net = tiny(kind).fit(X)
    rng = np.random.default_rng(seed)
    coordinates = [(0,) * (ndim + 1),
                   (0, *(int(rng.integers(0, n)) for n in shape[1:]))]
    assert check_j_invariance(net, X, coordinates=coordinates) > 0


def test_structured_blind_spot_keeps_only_the_maps_that_keep_it():
    line = np.zeros((1, 5), bool)
    line[0, :] = True
    assert _grid_maps(2, line) == [(0, False), (0, True), (2, False), (2, True)]
    assert len(_grid_maps(2, None)) == 8 and len(_grid_maps(1, None)) == 2
    X = noisy((2, 12, 16))
    net = tiny("masked", blind_spot=(0, 2)).fit(X)
    check_j_invariance(net, X, coordinates=[(0, 5, 7), (1, 0, 15)])


@pytest.mark.parametrize("output", ["invariant", "ordinary", "posterior"])
def test_equals_the_mean_over_rotations_and_flips(output):
    X = noisy((2, 12, 16), seed=1)
    net = tiny("masked", output=output).fit(X)
    augmented = net.transform(X)
    net.set_params(test_time_augmentation=False)
    assert not np.allclose(augmented, net.transform(X), atol=1e-3)
    if output == "posterior":
        return  # averaged before the posterior formula: checked by the others
    invariant = output == "invariant"
    manual = []
    for turns in range(4):
        for flip in (False, True):
            mapped = np.rot90(X, turns, axes=(1, 2))
            mapped = np.ascontiguousarray(mapped[..., ::-1] if flip else mapped)
            out = (net.invariant_transform(mapped) if invariant else net.transform(mapped))
            out = out[..., ::-1] if flip else out
            manual.append(np.rot90(out, -turns, axes=(1, 2)))
    np.testing.assert_allclose(augmented, np.mean(manual, axis=0), atol=1e-5)
    assert augmented.dtype == X.dtype


def test_uint8_in_uint8_out_and_repeatable():
    X = (np.clip(noisy((1, 20, 20)) * 30 + 120, 0, 255)).astype(np.uint8)
    net = tiny("blind").fit(X)
    first = net.transform(X)
    assert first.dtype == np.uint8 and np.array_equal(first, net.transform(X))


def test_auto_augments_when_trained_on_patches():
    """'auto' (the default) turns test-time augmentation on for a net that trained on
    patches (one large image) and off for one that trained on whole small images."""
    large = noisy((1, 80, 80), seed=3)
    net = N2SNet(BabyUnet, module__width=2, max_steps=2, batch_size=4, random_state=0,
                 output="ordinary").fit(large)
    assert net.test_time_augmentation == "auto"
    assert net.train_plan_["patch_size"] is not None and net.augments_at_test_time()
    auto = net.transform(large)
    on = net.set_params(test_time_augmentation=True).transform(large)
    off = net.set_params(test_time_augmentation=False).transform(large)
    np.testing.assert_array_equal(auto, on)
    assert not np.allclose(auto, off, atol=1e-4)
    small = noisy((4, 12, 16), seed=4)
    net = N2SNet(BabyUnet, module__width=2, max_steps=2, batch_size=4, random_state=0,
                 output="ordinary").fit(small)
    assert net.train_plan_["patch_size"] is None and not net.augments_at_test_time()
    with pytest.raises(ValueError, match="test_time_augmentation"):
        N2SNet(BabyUnet, test_time_augmentation="always").fit(small)
