"""N2SNet's ``blind_spot`` for correlated noise: structured masks in training, the
structured J-invariant output (a property probed over whole blind spots), ``'auto'``
on line-correlated noise, the refusal for blind-spot modules, and ``'pixel'`` unchanged."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from scipy import ndimage as ndi
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_n2s.masking import fill_from_outside
from sklearn_n2s.neural import BabyUnet, BlindSpotUnet, DilatedBlindSpotNet, N2SNet, _net
from sklearn_n2s.neural._inference import invariant_forward
from sklearn_n2s.neural._masking import dilate_mask, fill_from_outside_torch, mask_batch
from sklearn_n2s.utils._correlation import extent_footprint
from sklearn_n2s.utils.estimator_checks import check_j_invariance

#: An asymmetric footprint: a line along x and one pixel off it (tests the direction
#: of the dilation: the blind spot of p is p + offsets).
_ODD = np.zeros((3, 5), dtype=bool)
_ODD[1, :] = True
_ODD[0, 4] = True


def tiny(**params):
    params = {"module__width": 2, "max_steps": 1, "random_state": 0, **params}
    return N2SNet(**params)


def stack(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return rng.poisson(300, size=shape).astype(dtype) + 1000
    return rng.normal(5.0, 2.0, size=shape).astype(dtype)


def line_correlated(shape, length=4, seed=0):
    """A smooth image plus white noise convolved with a ``length``-pixel line along x."""
    rng = np.random.default_rng(seed)
    clean = 5 * ndi.gaussian_filter(rng.normal(size=shape), 3, axes=(1, 2))
    noise = ndi.convolve1d(rng.normal(size=shape), np.ones(length) / 2, axis=-1)
    return (clean + noise).astype(np.float32)


# ----------------------------------------------------------------- J-invariance
@pytest.mark.parametrize("shape, blind_spot, channel_axis, dtype", [
    ((2, 16, 16), (0, 2), None, np.float32),          # a line along x
    ((2, 16, 16), _ODD, None, np.float32),            # an asymmetric footprint
    ((2, 16, 16), (0, None), None, np.float32),       # whole rows (row offsets)
    ((2, 16, 16, 2), (1, 0), -1, np.float32),         # channels
    ((2, 16, 16), 1, None, np.uint16),                # a 3x3 box, counts
    ((1, 8, 12, 12), (0, 0, 2), None, np.uint16),     # a volume
    ((3, 40), (2,), None, np.float64),                # signals
])
def test_structured_blind_spot_is_j_invariant(shape, blind_spot, channel_axis, dtype):
    X = stack(shape, dtype)
    net = tiny(blind_spot=blind_spot, channel_axis=channel_axis).fit(X)
    assert net.blind_spot_ is blind_spot
    assert net._blind_spot_footprint(net_spatial(X, channel_axis)) is not None
    # check_j_invariance changes the whole blind spot of each probed pixel at once.
    assert check_j_invariance(net, X, n_probes=4) > 0
    assert net.transform(X).dtype == X.dtype


def net_spatial(X, channel_axis):
    return X.shape[1:X.ndim - (channel_axis is not None)]


def test_a_net_hiding_only_the_pixel_fails_when_claiming_a_line(monkeypatch):
    """Negative control: inference that hides the pixel alone, while the net claims
    the (0, 2) line, must be caught by the structured probe."""
    X = stack((2, 16, 16))
    net = tiny(blind_spot=(0, 2)).fit(X)

    def pixel_only(*args, footprint=None, **kwargs):
        return invariant_forward(*args, **kwargs)

    monkeypatch.setattr(_net, "invariant_forward", pixel_only)
    with pytest.raises(AssertionError, match="not J-invariant"):
        check_j_invariance(net, X, n_probes=4)


def test_structured_inference_reads_every_pixel_from_a_pass_that_hid_its_footprint():
    """A 'network' that sums its whole input: each pixel's output is the sum of the
    image with the footprints of its coset filled from outside."""
    x = torch.from_numpy(stack((1, 1, 12, 16), np.float64))
    footprint = extent_footprint((0, 2))
    calls = []

    def forward(stack_):
        calls.append(len(stack_))
        return stack_.sum(dim=(2, 3), keepdim=True).expand_as(stack_).clone()

    out = invariant_forward(forward, x, stride=4, footprint=footprint)
    assert sum(calls) == 4 * 6  # strides (4, max(4, 2 * 2 + 2))
    centres = torch.zeros((1, 1, 12, 16), dtype=torch.bool)
    centres[..., 1::4, 3::6] = True
    hidden = dilate_mask(centres, footprint)
    expected = fill_from_outside_torch(x, hidden).sum()
    torch.testing.assert_close(out[0, 0, 1, 3], expected)


# --------------------------------------------------------------------- training
def test_training_mask_hides_the_footprint_and_puts_the_loss_on_the_coset():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(3, 2, 12, 18)))
    generator = torch.Generator().manual_seed(0)
    net_input, mask = mask_batch(x, stride=4, footprint=_ODD, generator=generator)
    hidden = dilate_mask(mask, _ODD)
    for i in range(3):
        rows, cols = np.nonzero(mask[i, 0].numpy())
        assert len(set(rows % 4)) == 1 and len(set(cols % 6)) == 1  # one coset
        assert len(rows) == len(set(rows)) * len(set(cols))
        expected = ndi.binary_dilation(mask[i, 0].numpy(), structure=_ODD)
        np.testing.assert_array_equal(hidden[i, 0].numpy(), expected)
    # The network input never reads a hidden value...
    changed = torch.where(hidden, x + 100.0, x)
    again, _ = mask_batch(changed, stride=4, footprint=_ODD,
                          generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, net_input)
    # ... and equals the masking core's fill from outside.
    core = fill_from_outside(x.movedim(1, -1).numpy(), hidden[:, 0].numpy(), channel_axis=-1)
    np.testing.assert_allclose(net_input.numpy(), np.moveaxis(core, -1, 1), atol=1e-12)


def test_augmentation_is_kept_only_for_symmetric_blind_spots():
    X = stack((1, 80, 80))
    assert tiny(blind_spot=(0, 2)).training_plan(1, (80, 80))["augment"] is False
    assert tiny(blind_spot=2).training_plan(1, (80, 80))["augment"] is True
    assert tiny().training_plan(1, (80, 80))["augment"] is True
    net = tiny(blind_spot=(0, 2), max_steps=2).fit(X)
    assert net.train_plan_["patch_size"] == 64 and not net.train_plan_["augment"]


# ------------------------------------------------------------------------ 'auto'
def test_auto_measures_a_line_along_x():
    X = line_correlated((2, 64, 64))
    net = tiny(blind_spot="auto").fit(X)
    assert net.blind_spot_ == (0, 3)
    assert net.noise_correlation_.extent == (0, 3)
    assert net._blind_spot_footprint((64, 64)).shape == (1, 7)
    assert check_j_invariance(net, X[:1, :24, :24], n_probes=2) > 0


def test_auto_on_white_noise_is_the_pixel():
    X = stack((2, 64, 64))
    net = tiny(blind_spot="auto").fit(X)
    assert net.blind_spot_ == (0, 0) and net._blind_spot_footprint((64, 64)) is None


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("module", [BlindSpotUnet, DilatedBlindSpotNet])
def test_blind_spot_modules_refuse_structured_blind_spots(module):
    X = stack((2, 16, 16))
    for spot in ((0, 2), "auto", 1):
        net = tiny(module=module, blind_spot=spot)
        with pytest.raises(ValueError, match="module=BabyUnet"):
            net.fit(X)
        assert not getattr(net, "initialized_", False)  # refused before training
    net = tiny(module=BlindSpotUnet, blind_spot=(0, 0)).fit(X)  # the pixel: fine
    assert net.blind_spot_module_ and net._blind_spot_footprint((16, 16)) is None


@pytest.mark.parametrize("spot, error, match", [
    ((0, 2, 1), ValueError, "3 half-extent"),
    ((0, -1), ValueError, "integers >= 0"),
    (np.ones((2, 3), bool), ValueError, "odd length"),
    ("line", InvalidParameterError, "blind_spot"),
    ((None, None), ValueError, "whole image"),
])
def test_bad_blind_spots_are_refused_before_training(spot, error, match):
    net = tiny(blind_spot=spot)
    with pytest.raises(error, match=match):
        net.fit(stack((2, 16, 16)))
    assert not getattr(net, "initialized_", False)


# ----------------------------------------------------------------------- 'pixel'
def test_pixel_is_the_default_and_unchanged(monkeypatch):
    X = stack((3, 16, 16))
    # the masked-trained BabyUnet (module='auto' builds D-BSN on these data)
    outputs = [tiny(module=BabyUnet, max_steps=2, **params).fit(X) for params in
               ({}, {"blind_spot": "pixel"}, {"blind_spot": (0, 0)}, {"blind_spot": 0})]
    base = outputs[0]
    assert base.blind_spot == "pixel" and base.blind_spot_ == "pixel"
    assert not base.blind_spot_module_
    for net in outputs[1:]:
        np.testing.assert_array_equal(net.transform(X), base.transform(X))
        np.testing.assert_array_equal(net.invariant_transform(X), base.invariant_transform(X))
    calls = []
    forward_images = N2SNet._forward_images

    def counting(self, module, x):
        calls.append(len(x))
        return forward_images(self, module, x)

    monkeypatch.setattr(N2SNet, "_forward_images", counting)
    base.invariant_transform(X)
    assert sum(calls) == 16 * len(X)  # the stride-4 grid: 16 masked copies per image
