"""ShuffledBlindSpotUnet: U-Nets on pixel-shuffled centre-masked features.

Properties (hypothesis, float64, 1-D, 2-D and 3-D, training and eval mode):
- the phase split is a lossless rearrangement (merge undoes it);
- d out[p] / d x[p] is exactly zero at every pixel, borders included, and the output at
  p depends on each existing neighbour p +- e_a;
- ``receptive_radius`` bounds the field, and is reached in 1-D;
- the field misses exactly the offsets whose components are all multiples of 6;
- a crop aligned to ``size_multiple`` with the radius as margin gives the whole
  image's output; N2SNet's tiled output equals the untiled one within 1e-4;
- N2SNet with the module passes ``check_j_invariance`` (1-D, 2-D, 3-D, channels,
  uint16, tiled);
- a BioImage Model Zoo export (state-dict weights) gives the net's output back.
"""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from sklearn_n2s.neural import N2SNet, ShuffledBlindSpotUnet
from sklearn_n2s.neural._shuffled import PhaseUnet, phase_merge, phase_split
from sklearn_n2s.utils.estimator_checks import (
    _field_jacobian,
    check_blind_spot_field,
    check_j_invariance,
)

SETTINGS = settings(max_examples=10, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _make(seed, **kwargs):
    torch.manual_seed(seed)
    return ShuffledBlindSpotUnet(**kwargs).double()


@settings(max_examples=20, deadline=None, derandomize=True)
@given(ndim=st.integers(1, 3), factor=st.integers(1, 3), n=st.integers(1, 3),
       data=st.data())
def test_phase_split_is_a_lossless_rearrangement(ndim, factor, n, data):
    coarse = data.draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim))
    x = torch.randn((n, 2) + tuple(factor * c for c in coarse))
    phases = phase_split(x, factor)
    assert phases.shape == (factor**ndim * n, 2, *coarse)
    # Phase a of image i holds x[i, :, a + factor * q].
    a = tuple(data.draw(st.integers(0, factor - 1)) for _ in range(ndim))
    index = int(np.ravel_multi_index(a, (factor,) * ndim)) * n + n - 1
    picked = x[(n - 1, slice(None)) + tuple(slice(o, None, factor) for o in a)]
    assert torch.equal(phases[index], picked)
    assert torch.equal(phase_merge(phases, factor, n), x)


@st.composite
def configs(draw, max_side=(40, 11, 6)):
    ndim = draw(st.integers(1, 3))
    sides = tuple(draw(st.lists(st.integers(1, max_side[ndim - 1]), min_size=ndim,
                                max_size=ndim)))
    kwargs = {"in_channels": draw(st.integers(1, 2)), "out_channels": draw(st.integers(1, 2)),
              "ndim": ndim, "width": draw(st.integers(1, 3)), "depth": draw(st.integers(0, 2))}
    net = _make(draw(st.integers(0, 2**16)), **kwargs)
    net.train(draw(st.booleans()))  # no batch norm: training mode is blind too
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = torch.from_numpy(rng.normal(size=(1, kwargs["in_channels"]) + sides))
    return net, x


@SETTINGS
@given(configs())
def test_field_excludes_the_centre_reaches_the_neighbours_and_ends_at_the_radius(config):
    check_blind_spot_field(*config)


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_receptive_radius_is_reached_in_1d(depth):
    # The bound is tight: some output pixel (where the pooling windows line up) sees
    # an input exactly receptive_radius away, and none farther.
    net = _make(depth, ndim=1, width=2, depth=depth)
    side = 2 * net.receptive_radius + 2 * net.size_multiple
    jac = _field_jacobian(net, torch.randn(1, 1, side, dtype=torch.float64))
    dist = np.abs(np.arange(side)[:, None] - np.arange(side)[None, :])
    assert dist[jac > 0].max() == net.receptive_radius
    assert net.receptive_radius == max(k // 2 + s * PhaseUnet.reach(depth)
                                       for k, s in net.BRANCHES)


@pytest.mark.parametrize("ndim", [1, 2])
def test_field_misses_exactly_the_multiples_of_six(ndim):
    net = _make(3, ndim=ndim, width=3, depth=1)
    reach = 13  # offsets -13..13 around a pixel far from every border
    side = 2 * (reach + net.receptive_radius) + 1
    centre = (side // 2,) * ndim
    x = torch.randn((1, 1) + (side,) * ndim, dtype=torch.float64, requires_grad=True)
    net(x)[(0, 0) + centre].backward()
    grad = x.grad[0, 0].numpy()
    for offset in itertools.product(range(-reach, reach + 1), repeat=ndim):
        seen = grad[tuple(c + o for c, o in zip(centre, offset))] != 0.0
        assert seen == (not all(o % 6 == 0 for o in offset)), offset


def _stack(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        # counts over most of the range: a change of one pixel moves its neighbours'
        # rounded outputs even in a barely trained net
        return (rng.poisson(300, size=shape) * 150 + 1000).astype(dtype)
    return rng.normal(5.0, 2.0, size=shape).astype(dtype)


def _tiny(**params):
    params = {"module__width": 2, "module__depth": 1, "max_steps": 2, "batch_size": 2,
              "random_state": 0, **params}
    return N2SNet(ShuffledBlindSpotUnet, **params)


@pytest.mark.parametrize("shape, channel_axis, dtype, tile_size", [
    ((2, 30, 29), None, np.float32, None),
    ((2, 60, 50), None, np.float32, 16),          # tiled: 3-4 tiles a side
    ((2, 20, 21, 2), -1, np.float32, None),       # channels
    ((2, 24, 24), None, np.uint16, None),          # counts, far from 0..1
    ((1, 9, 10, 11), None, np.float32, None),      # a volume
    ((3, 70), None, np.float64, 24),               # signals, tiled
])
def test_n2snet_is_j_invariant(shape, channel_axis, dtype, tile_size):
    X = _stack(shape, dtype)
    net = _tiny(channel_axis=channel_axis, tile_size=tile_size).fit(X)
    assert net.blind_spot_module_
    assert check_j_invariance(net, X, n_probes=4) > 0
    out = net.transform(X)
    assert out.dtype == X.dtype and out.shape == X.shape


@pytest.mark.parametrize("ndim, depth", [(1, 2), (2, 1), (3, 0)])
def test_n2snet_tiled_equals_whole(ndim, depth):
    # margins 96, 36 and 12 (radius 80, 32, 8): two tiles or more along each axis
    side = {1: 300, 2: 80, 3: 30}[ndim]
    X = _stack((2,) + (side,) * ndim, seed=ndim)
    net = _tiny(output="ordinary", module__depth=depth).fit(X)
    expected = net.transform(X)
    tiled = net.set_params(tile_size={1: 48, 2: 24, 3: 16}[ndim]).transform(X)
    np.testing.assert_allclose(tiled, expected, atol=1e-4 * float(np.abs(expected).max()))


def test_interface():
    assert ShuffledBlindSpotUnet.blind_spot is True
    net = ShuffledBlindSpotUnet()
    assert (net.receptive_radius, net.size_multiple) == (80, 24)
    assert all(k // 2 < s for k, s in net.BRANCHES)  # what keeps the blind spot exact


@pytest.mark.parametrize("kwargs, match", [
    ({"ndim": 4}, "ndim"), ({"width": 0}, "width"), ({"in_channels": 1.5}, "in_channels"),
    ({"depth": -1}, "depth"), ({"depth": 7}, "depth"), ({"out_channels": True}, "out_channels")])
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShuffledBlindSpotUnet(**kwargs)


def test_wrong_input_raises():
    net = ShuffledBlindSpotUnet(in_channels=2, ndim=2, width=2, depth=1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        net(torch.randn(1, 2, 8))
    with pytest.raises(ValueError, match="in_channels=2"):
        net(torch.randn(1, 3, 8, 8))


def test_bmz_export_with_state_dict_weights_gives_the_net_back(tmp_path):
    # The architecture is found in _shuffled, one of the modules export_bmz looks in. The
    # TorchScript trace bakes the padding of one input shape in, so export_bmz refuses
    # that format (its own check); state-dict weights rebuild the module itself.
    pytest.importorskip("bioimageio.core")
    from sklearn_n2s.neural import export_bmz, load_bmz
    from sklearn_n2s.neural._bmz import _bioimageio

    try:
        _bioimageio()
    except ImportError as error:  # e.g. pydantic too new for bioimageio.spec
        pytest.skip(str(error))
    X = _stack((2, 40, 40))
    net = _tiny(output="ordinary").fit(X)
    path = export_bmz(net, tmp_path / "net.zip", weight_formats=("pytorch_state_dict",))
    other = X[:1, :37, :45]  # not the export's test shape
    np.testing.assert_allclose(load_bmz(path).predict(other), net.invariant_transform(other),
                               rtol=1e-5, atol=1e-5 * float(np.abs(other).max()))
