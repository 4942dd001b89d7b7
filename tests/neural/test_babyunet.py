"""BabyUnet: shapes for any size, channels, the bottleneck in use, receptive field."""

import pytest

torch = pytest.importorskip("torch")

from sklearn_n2s.neural import BabyUnet
from sklearn_n2s.neural._net import TILE_MARGIN


@pytest.mark.parametrize("height, width", [(4, 4), (5, 7), (28, 28), (30, 17)])
def test_output_has_input_shape(height, width):
    net = BabyUnet(width=4).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, height, width))
    assert out.shape == (2, 1, height, width)


def test_channels_in_and_out():
    net = BabyUnet(n_channels_in=3, n_channels_out=2, width=4).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 12, 12)).shape == (1, 2, 12, 12)
    assert BabyUnet(n_channels_in=3, width=4).n_channels_out == 3


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"n_channels_in": -1}, {"width": 2.5},
                                    {"width": True}])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError, match="positive integer"):
        BabyUnet(**kwargs)


def test_wrong_input_rank_raises():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        BabyUnet(width=4)(torch.randn(1, 8, 8))


def test_bottleneck_block_receives_gradient():
    # The reference computes conv3 and discards its output; ours must use it.
    net = BabyUnet(width=4)
    net(torch.randn(2, 1, 16, 16)).square().mean().backward()
    grad = net.conv3.conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_default_size_matches_reference():
    n_params = sum(p.numel() for p in BabyUnet().parameters())
    assert 60_000 < n_params < 90_000


def test_receptive_field_is_inside_tile_margin():
    torch.manual_seed(0)
    net = BabyUnet(width=4).eval()
    x = torch.randn(1, 1, 96, 96)
    y = x.clone()
    y[0, 0, 48, 48] += 10.0
    with torch.no_grad():
        changed = (net(x) - net(y)).abs()[0, 0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    radius = max((rows - 48).abs().max().item(), (cols - 48).abs().max().item())
    assert 0 < radius < TILE_MARGIN


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    net = BabyUnet(n_channels_in=2, width=4).eval()
    x = torch.randn(3, 2, 20, 24)
    with torch.no_grad():
        expected = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        got = net_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
