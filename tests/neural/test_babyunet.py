"""BabyUnet: shapes for any size and 1 to 3 dimensions, channels, the reference layout,
receptive field."""

import pytest

torch = pytest.importorskip("torch")

from sklearn_n2s.neural import TILE_MARGIN, BabyUnet


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
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        BabyUnet(width=4, ndim=3)(torch.randn(1, 1, 8, 8))


@pytest.mark.parametrize("ndim, spatial", [(1, (4,)), (1, (37,)), (3, (4, 5, 6)),
                                           (3, (9, 8, 13))])
def test_one_and_three_dimensions(ndim, spatial):
    net = BabyUnet(n_channels_in=2, n_channels_out=3, width=2, ndim=ndim).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 2, *spatial)).shape == (2, 3, *spatial)
    assert isinstance(net.conv6, {1: torch.nn.Conv1d, 3: torch.nn.Conv3d}[ndim])
    fused = net.fused_for_inference()
    x = torch.randn(1, 2, *spatial)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ndim", [0, 4, 2.0, True])
def test_bad_ndim_raises(ndim):
    with pytest.raises(ValueError, match="ndim"):
        BabyUnet(ndim=ndim)


# The layout of czbiohub-sf/noise2self models/babyunet.py since its fix of 2019-12-16
# (commit b306ca7, "x = self.conv3(x)": the bottleneck feeds the decoder), for width w:
# block name -> (input channels, output channels).
def _reference_layout(w, n_in=1, n_out=1):
    return {"conv1": (n_in, w), "conv2": (w, 2 * w), "conv3": (2 * w, 2 * w),
            "conv4": (4 * w, 2 * w), "conv5": (3 * w, w), "conv6": (w, n_out)}


@pytest.mark.parametrize("width, n_in", [(16, 1), (4, 3)])
def test_layers_are_those_of_the_reference(width, n_in):
    net = BabyUnet(n_channels_in=n_in, width=width)
    for name, (c_in, c_out) in _reference_layout(width, n_in, n_in).items():
        block = getattr(net, name)
        first = block if name == "conv6" else block.conv1
        assert (first.in_channels, first.out_channels) == (c_in, c_out), name
        if name != "conv6":  # a ConvBlock: conv, BN, conv, BN, as the reference's
            assert (block.conv2.in_channels, block.conv2.out_channels) == (c_out, c_out)
            assert block.norm1.num_features == block.norm2.num_features == c_out
    assert net.conv6.kernel_size == (1, 1)


def test_default_size_is_the_reference_size():
    # The reference BabyUnet (width 16, one channel) has 72,353 parameters.
    assert sum(p.numel() for p in BabyUnet().parameters()) == 72_353


def test_bottleneck_block_feeds_the_output():
    # As in the fixed reference: conv3's output reaches the output (gradient flows).
    net = BabyUnet(width=4)
    net(torch.randn(2, 1, 16, 16)).square().mean().backward()
    grad = net.conv3.conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    with torch.no_grad():
        net.eval()
        x = torch.randn(1, 1, 16, 16)
        before = net(x)
        net.conv3.conv2.bias += 1.0
        assert not torch.allclose(net(x), before)


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
    assert 0 < radius <= BabyUnet.receptive_radius < TILE_MARGIN


def test_receptive_radius_in_3d():
    torch.manual_seed(0)
    net = BabyUnet(width=2, ndim=3).eval()
    x = torch.randn(1, 1, 64, 64, 64)
    y = x.clone()
    y[0, 0, 32, 32, 32] += 10.0
    with torch.no_grad():
        changed = torch.nonzero((net(x) - net(y)).abs()[0, 0] > 0)
    assert 0 < (changed - 32).abs().max().item() <= BabyUnet.receptive_radius


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    net = BabyUnet(n_channels_in=2, width=4).eval()
    x = torch.randn(3, 2, 20, 24)
    with torch.no_grad():
        expected = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        got = net_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
