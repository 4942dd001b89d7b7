"""N2SNet(module='auto'), the default: the one-pass D-BSN for a pixel blind spot on noise
of one variance, masked-trained BabyUnet for photon counts, structured blind spots and
the outputs that read the plain one pass; module-dependent ``batch_size='auto'`` and
``lr='auto'``; explicit modules unchanged; the choice saved with the weights."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from scipy import ndimage as ndi
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_n2s.neural import BabyUnet, DilatedBlindSpotNet, N2SNet
from sklearn_n2s.neural._net import (
    AUTO_BATCH_SIZE,
    AUTO_LR,
    AUTO_MODULE_BATCH_SIZE,
    DEFAULT_LR,
    SIGNAL_DEPENDENCE_LIMIT,
)
from sklearn_n2s.utils.estimator_checks import check_j_invariance

TINY = {"module__width": 4, "max_steps": 3, "random_state": 0}


def smooth(shape, seed=0, width=3.0):
    rng = np.random.default_rng(seed)
    axes = tuple(range(1, len(shape)))
    clean = ndi.gaussian_filter(rng.normal(size=shape), width, axes=axes)
    return (clean - clean.min()) / np.ptp(clean)  # 0..1


@pytest.fixture(scope="module")
def gaussian_uint8():
    """Gaussian noise of one variance on smooth images, in uint8 units far from 0..1."""
    clean = 40 + 170 * smooth((4, 32, 32))
    noise = np.random.default_rng(1).normal(0, 20, clean.shape)
    return np.clip(clean + noise, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def photons_uint16():
    """Photon counts (1..101): the noise variance follows the signal."""
    clean = 1 + 100 * smooth((4, 32, 32), seed=2)
    return np.random.default_rng(3).poisson(clean).astype(np.uint16)


@pytest.fixture(scope="module")
def auto_gaussian(gaussian_uint8):
    return N2SNet(**TINY).fit(gaussian_uint8)


def optimizer_lr(net):
    return net.optimizer_.param_groups[0]["lr"]


def test_defaults_are_auto():
    params = N2SNet().get_params()
    assert params["module"] == "auto" and params["lr"] == "auto"
    assert params["batch_size"] == "auto"


def test_gaussian_noise_gets_the_one_pass_blind_spot_net(auto_gaussian, gaussian_uint8):
    net = auto_gaussian
    assert net.module_choice_ is DilatedBlindSpotNet
    assert isinstance(net.module_, DilatedBlindSpotNet) and net.blind_spot_module_
    assert net.noise_dependence_ <= SIGNAL_DEPENDENCE_LIMIT
    assert net.posterior_head_ and net.module_.out_channels == 2
    # its measured training settings
    assert net.train_plan_["batch_size"] == AUTO_MODULE_BATCH_SIZE[DilatedBlindSpotNet][
        "images"] == 8
    assert optimizer_lr(net) == AUTO_LR[DilatedBlindSpotNet] == 6e-3
    out = net.transform(gaussian_uint8)
    assert out.dtype == np.uint8 and out.shape == gaussian_uint8.shape


def test_photon_counts_get_babyunet(photons_uint16):
    net = N2SNet(**TINY).fit(photons_uint16)
    assert net.noise_dependence_ > SIGNAL_DEPENDENCE_LIMIT
    assert net.module_choice_ is BabyUnet and not net.blind_spot_module_
    assert net.train_plan_["batch_size"] == AUTO_BATCH_SIZE["images"]
    assert optimizer_lr(net) == DEFAULT_LR
    assert net.transform(photons_uint16).dtype == np.uint16


@pytest.mark.parametrize("params", [{"blind_spot": (0, 2)}, {"blind_spot": "auto"},
                                    {"output": "ordinary"}, {"output": "shrink"}])
def test_structured_blind_spots_and_plain_outputs_fall_back_to_babyunet(
        gaussian_uint8, params):
    # D-BSN refuses structured blind spots; its one pass never sees the pixel, which
    # the ordinary and shrink outputs need
    net = N2SNet(**TINY, **params).fit(gaussian_uint8)
    assert net.module_choice_ is BabyUnet and not net.blind_spot_module_


def test_invariant_output_gets_the_blind_spot_net(gaussian_uint8):
    net = N2SNet(**TINY, output="invariant").fit(gaussian_uint8)
    assert net.module_choice_ is DilatedBlindSpotNet and not net.posterior_head_
    np.testing.assert_array_equal(net.transform(gaussian_uint8),
                                  net.invariant_transform(gaussian_uint8))


def test_module_parameters_name_the_module(photons_uint16):
    # depth is D-BSN's alone: asked for, it is built even on photon counts
    net = N2SNet(**TINY, module__depth=1).fit(photons_uint16)
    assert net.module_choice_ is DilatedBlindSpotNet and net.module_.depth == 1


@pytest.mark.parametrize("module", [BabyUnet, "instance"])
def test_explicit_babyunet_is_unchanged_on_gaussian_noise(gaussian_uint8, module):
    if module == "instance":
        module = BabyUnet(n_channels_in=1, n_channels_out=1, width=4)
        params = {"max_steps": 3, "random_state": 0}
    else:
        params = TINY
    net = N2SNet(module, **params).fit(gaussian_uint8)
    assert net.module_choice_ is BabyUnet and not net.blind_spot_module_
    assert net.train_plan_["batch_size"] == AUTO_BATCH_SIZE["images"]
    assert optimizer_lr(net) == DEFAULT_LR
    explicit = N2SNet(BabyUnet, **{**TINY, "lr": 3e-3, "batch_size": 32}).fit(gaussian_uint8)
    reference = N2SNet(BabyUnet, **TINY).fit(gaussian_uint8)
    np.testing.assert_array_equal(explicit.transform(gaussian_uint8),
                                  reference.transform(gaussian_uint8))


def test_explicit_blind_spot_net_stays_on_photon_counts(photons_uint16):
    net = N2SNet(DilatedBlindSpotNet, **TINY).fit(photons_uint16)
    assert net.module_choice_ is DilatedBlindSpotNet
    assert optimizer_lr(net) == 6e-3  # lr='auto' follows the module
    assert N2SNet(DilatedBlindSpotNet, **TINY, lr=1e-3).fit(photons_uint16).optimizer_\
        .param_groups[0]["lr"] == 1e-3


def test_explicit_blind_spot_net_still_refuses_structured_blind_spots(gaussian_uint8):
    with pytest.raises(ValueError, match="needs masked training"):
        N2SNet(DilatedBlindSpotNet, **TINY, blind_spot=(0, 2)).fit(gaussian_uint8)


def test_auto_choice_is_j_invariant(auto_gaussian, gaussian_uint8):
    check_j_invariance(auto_gaussian, gaussian_uint8, n_probes=2)


@pytest.mark.parametrize("shape", [(4, 64), (2, 12, 12, 12)])
def test_one_and_three_dimensional_gaussian_data(shape):
    X = (smooth(shape, seed=4)
         + np.random.default_rng(5).normal(0, 0.2, shape)).astype(np.float32)
    net = N2SNet(**TINY).fit(X)
    assert net.module_choice_ is DilatedBlindSpotNet
    assert net.module_.ndim == len(shape) - 1
    check_j_invariance(net, X, n_probes=1)


def test_choice_travels_with_the_weights(auto_gaussian, gaussian_uint8, tmp_path):
    path = tmp_path / "params.pt"
    auto_gaussian.save_params(f_params=path)
    loaded = N2SNet(module__width=4).initialize()
    assert loaded.module_choice_ is BabyUnet  # nothing chosen before a fit
    loaded.load_params(f_params=path)
    assert loaded.module_choice_ is DilatedBlindSpotNet
    np.testing.assert_array_equal(loaded.transform(gaussian_uint8),
                                  auto_gaussian.transform(gaussian_uint8))
    restored = pickle.loads(pickle.dumps(auto_gaussian))
    assert restored.module_choice_ is DilatedBlindSpotNet
    np.testing.assert_array_equal(restored.invariant_transform(gaussian_uint8),
                                  auto_gaussian.invariant_transform(gaussian_uint8))


def test_refit_chooses_again_warm_start_keeps(auto_gaussian, gaussian_uint8,
                                              photons_uint16):
    net = clone(auto_gaussian).fit(gaussian_uint8)
    assert net.module_choice_ is DilatedBlindSpotNet
    assert net.fit(photons_uint16).module_choice_ is BabyUnet
    warm = N2SNet(**TINY, warm_start=True).fit(gaussian_uint8)
    assert warm.fit(gaussian_uint8).module_choice_ is DilatedBlindSpotNet
    partial = N2SNet(**TINY).partial_fit(photons_uint16)
    assert partial.module_choice_ is BabyUnet


@pytest.mark.parametrize("params, match", [({"module": "best"}, "module"),
                                           ({"lr": "fast"}, "lr")])
def test_bad_auto_values_are_refused(gaussian_uint8, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        N2SNet(**{**TINY, **params}).fit(gaussian_uint8)


def test_patch_budget_of_the_blind_spot_net_is_as_many_steps_in_smaller_batches():
    # D-BSN trains on half BabyUnet's patch pixels: the same steps, of 4 patches
    for module, batch in ((BabyUnet, 8), (DilatedBlindSpotNet, 4)):
        plan = N2SNet(module).training_plan(1, (512, 512))
        assert (plan["steps"], plan["batch_size"]) == (4096, batch)
    assert N2SNet(DilatedBlindSpotNet, max_steps=7).training_plan(1, (512, 512))[
        "steps"] == 7
