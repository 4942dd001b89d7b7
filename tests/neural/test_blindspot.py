"""Blind-spot modules: the centre pixel never reaches its own output, in 1-D, 2-D and 3-D.

Properties, on random modules, sizes and channels (hypothesis), in float64:
- blind spot: perturbing every channel of pixel p by a large amount leaves the output at
  p unchanged (every pixel, borders included, one batched pass), and d out[p] / d x[p]
  is exactly zero;
- the field is not trivial: the output at p depends on each existing neighbour p ± e_a;
- ``receptive_radius`` is an upper bound: changing every pixel farther than it from p
  leaves the output at p unchanged.
"""

import copy
import itertools
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from sklearn_n2s.neural import BlindSpotUnet, DilatedBlindSpotNet, ShuffledBlindSpotUnet
from sklearn_n2s.utils.estimator_checks import check_blind_spot_field

MODULES = [BlindSpotUnet, DilatedBlindSpotNet]
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _make(cls, seed, **kwargs):
    torch.manual_seed(seed)
    return cls(**kwargs).double()


@st.composite
def configs(draw, max_side=(12, 9, 5)):
    """A module (class, ndim, channels, width, depth, train/eval mode) and an input."""
    cls = draw(st.sampled_from(MODULES))
    ndim = draw(st.integers(1, 3))
    sides = tuple(draw(st.lists(st.integers(1, max_side[ndim - 1]), min_size=ndim,
                                max_size=ndim)))
    kwargs = {"in_channels": draw(st.integers(1, 3)), "out_channels": draw(st.integers(1, 2)),
              "ndim": ndim, "width": draw(st.integers(1, 4)), "depth": draw(st.integers(0, 3))}
    net = _make(cls, draw(st.integers(0, 2**16)), **kwargs)
    net.train(draw(st.booleans()))  # no batch norm: training mode is blind too
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = torch.from_numpy(rng.normal(size=(2, kwargs["in_channels"]) + sides))
    return net, x


def _pixels(sides):
    return list(itertools.product(*(range(n) for n in sides)))


@SETTINGS
@given(configs())
def test_output_at_a_pixel_ignores_that_pixel(config):
    net, x = config
    sides = x.shape[2:]
    pixels = _pixels(sides)
    with torch.no_grad():
        base = net(x)
        # One copy of the first image per pixel, that pixel moved in every channel.
        copies = x[:1].repeat(len(pixels), *([1] * (x.ndim - 1)))
        for k, p in enumerate(pixels):
            copies[(k, slice(None)) + p] += 50.0 + 10.0 * k % 7
        moved = net(copies)
    assert base.shape == (2, net.out_channels) + tuple(sides)
    tol = 1e-9 * max(1.0, float(base.abs().max()))
    for k, p in enumerate(pixels):
        change = (moved[(k, slice(None)) + p] - base[(0, slice(None)) + p]).abs().max()
        assert change <= tol, f"{type(net).__name__}: pixel {p} of {tuple(sides)} moved {change}"


@SETTINGS
@given(configs(max_side=(10, 6, 4)))
def test_field_excludes_the_centre_and_reaches_every_neighbour(config):
    check_blind_spot_field(*config)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(cls=st.sampled_from(MODULES), ndim=st.integers(1, 3), depth=st.integers(0, 1),
       seed=st.integers(0, 2**16), data=st.data())
def test_receptive_radius_bounds_the_field(cls, ndim, depth, seed, data):
    if cls is DilatedBlindSpotNet:
        depth += 1  # radius 5 or 8
    if ndim == 3:
        depth = 0 if cls is BlindSpotUnet else 1  # radius 7 or 5: volumes up to 11**3
    net = _make(cls, seed, in_channels=2, ndim=ndim, width=2, depth=depth).eval()
    radius = net.receptive_radius
    high = 2 * radius + 4 if ndim == 1 else radius + 4
    sides = tuple(data.draw(st.integers(radius + 2, high)) for _ in range(ndim))
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(1, 2) + sides))
    pixels = [tuple(int(rng.integers(n)) for n in sides) for _ in range(4)]
    pixels.append(tuple(n - 1 for n in sides))
    grids = np.meshgrid(*(np.arange(n) for n in sides), indexing="ij")
    far = torch.zeros((len(pixels), 1) + sides, dtype=torch.float64)
    for k, p in enumerate(pixels):
        dist = np.max([np.abs(g - c) for g, c in zip(grids, p)], axis=0)
        far[k, 0] = torch.from_numpy((dist > radius).astype(np.float64))
    assert far.sum() > 0
    with torch.no_grad():
        base = net(x)
        moved = net(x + far * torch.from_numpy(rng.normal(10.0, 5.0, far.shape)))
    for k, p in enumerate(pixels):
        change = (moved[(k, slice(None)) + p] - base[(0, slice(None)) + p]).abs().max()
        assert change <= 1e-9 * max(1.0, float(base.abs().max())), (p, float(change))


@pytest.mark.parametrize("cls, depth, ndim", [
    *[(cls, depth, ndim) for cls, depth in [(BlindSpotUnet, 1), (BlindSpotUnet, 2),
                                            (DilatedBlindSpotNet, 2)] for ndim in (1, 2)],
    *[(ShuffledBlindSpotUnet, depth, ndim)
      for ndim, depth in [(1, 1), (1, 2), (2, 0), (2, 1), (3, 0)]],
])
def test_a_tile_with_a_margin_gives_the_untiled_core(cls, depth, ndim):
    # What tiled inference relies on: a crop starting at a multiple of size_multiple,
    # with receptive_radius of context on each side, reproduces the whole image's output.
    net = _make(cls, 0, in_channels=2, ndim=ndim, width=3, depth=depth).eval()
    r, m = net.receptive_radius, net.size_multiple
    start = m * (r // m + 1)  # >= r + 1, aligned
    core = 5
    side = 2 * start + core + 3
    x = torch.randn((1, 2) + (side,) * ndim, dtype=torch.float64)
    a, b = start - (r + 1), start + core + r + 1
    a -= a % m
    crop = (slice(None), slice(None)) + (slice(a, b),) * ndim
    inner = (slice(None), slice(None)) + (slice(start, start + core),) * ndim
    inner_crop = (slice(None), slice(None)) + (slice(start - a, start - a + core),) * ndim
    with torch.no_grad():
        whole, tile = net(x), net(x[crop])
    torch.testing.assert_close(tile[inner_crop], whole[inner], rtol=0, atol=1e-10)


@pytest.mark.parametrize("cls", MODULES)
@pytest.mark.parametrize("shape", [(1,), (7,), (16,), (1, 1), (3, 10), (9, 8), (2, 3, 5)])
def test_any_size_and_eval_mode_is_deterministic(cls, shape):
    net = cls(in_channels=2, out_channels=3, ndim=len(shape), width=3, depth=3).eval()
    x = torch.randn((2, 2) + shape)
    with torch.no_grad():
        first, second = net(x), net(x)
    assert first.shape == (2, 3) + shape
    assert torch.equal(first, second)
    assert torch.isfinite(first).all()


@pytest.mark.parametrize("cls", MODULES)
def test_common_interface(cls):
    assert cls.blind_spot is True
    net = cls(in_channels=1, out_channels=1, ndim=2, width=2, depth=2)
    assert isinstance(net.receptive_radius, int) and net.receptive_radius > 0
    assert isinstance(net.size_multiple, int) and net.size_multiple >= 1
    assert (net.in_channels, net.out_channels, net.ndim) == (1, 1, 2)
    deeper = cls(ndim=2, width=2, depth=3)
    assert deeper.receptive_radius > net.receptive_radius


@pytest.mark.parametrize("cls", MODULES)
def test_copies_and_pickles_compute_the_same(cls):
    net = cls(in_channels=2, ndim=2, width=3, depth=2).eval()
    x = torch.randn(1, 2, 11, 9)
    with torch.no_grad():
        expected = net(x)
        for other in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
            assert torch.equal(other(x), expected)
            assert other.receptive_radius == net.receptive_radius


@pytest.mark.parametrize("cls", [*MODULES, ShuffledBlindSpotUnet])
def test_trains(cls):
    # Gradients reach every parameter (but the masked centre weight) and a few Adam
    # steps lower the blind-spot loss on a smooth signal.
    torch.manual_seed(0)
    net = cls(ndim=2, width=4, depth=2)
    t = torch.linspace(0, 3, 24)
    clean = torch.sin(t)[:, None] * torch.cos(t)[None, :]
    x = (clean + 0.3 * torch.randn(4, 1, 24, 24)).float()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = (net(x) - x).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("cls", MODULES)
@pytest.mark.parametrize("kwargs, match", [
    ({"ndim": 4}, "ndim"), ({"ndim": 0}, "ndim"), ({"width": 0}, "width"),
    ({"in_channels": 1.5}, "in_channels"), ({"depth": -1}, "depth"),
    ({"out_channels": True}, "out_channels")])
def test_bad_parameters_raise(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls", MODULES)
def test_wrong_input_raises(cls):
    net = cls(in_channels=2, ndim=2, width=2, depth=1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        net(torch.randn(1, 2, 8))
    with pytest.raises(ValueError, match="in_channels=2"):
        net(torch.randn(1, 3, 8, 8))


def test_check_blind_spot_field_names_each_broken_property():
    """The shared field check fails on a module that sees its centre, on one that sees
    nothing, and on a radius that understates the field."""
    x = torch.randn(1, 1, 7, 7, dtype=torch.float64)
    seeing = torch.nn.Conv2d(1, 1, 3, padding=1).double()
    with pytest.raises(AssertionError, match="Conv2d: d out"):
        check_blind_spot_field(seeing, x)
    with pytest.raises(AssertionError, match="does not see its neighbour"):
        check_blind_spot_field(lambda t: 0.0 * t, x)
    net = _make(DilatedBlindSpotNet, 0, in_channels=1, ndim=2, width=2, depth=1)
    check_blind_spot_field(net, x)
    understated = copy.copy(net)
    understated.receptive_radius = 1
    with pytest.raises(AssertionError, match="farther than receptive_radius=1"):
        check_blind_spot_field(understated, x)
