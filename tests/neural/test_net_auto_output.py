"""N2SNet(output='auto'): the posterior head is trained, and transform returns the
Gaussian posterior mean where the noise follows one variance, the one pass where it
follows the signal (photon counts); the noise-dependence measure it reads; the step
budget of ``max_steps='auto'`` on one image."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from scipy import ndimage as ndi

from sklearn_n2s.neural import N2SNet
from sklearn_n2s.neural._net import (
    SIGNAL_DEPENDENCE_LIMIT,
    noise_signal_dependence,
)
from sklearn_n2s.utils.estimator_checks import check_j_invariance


def smooth(n, side, seed=0, width=6.0):
    rng = np.random.default_rng(seed)
    clean = ndi.gaussian_filter(rng.normal(size=(n, side, side)), width, axes=(1, 2))
    return (clean - clean.min()) / np.ptp(clean)  # 0..1


@pytest.fixture(scope="module")
def gaussian_uint8():
    clean = smooth(2, 64)
    rng = np.random.default_rng(1)
    noisy = np.clip(40 + 170 * clean + rng.normal(0, 20, clean.shape), 0, 255)
    return 40 + 170 * clean, noisy.round().astype(np.uint8)


@pytest.fixture(scope="module")
def poisson_uint16():
    clean = 1 + 100 * smooth(2, 64, seed=2)  # 1..101 photons: variance follows signal
    return clean, np.random.default_rng(3).poisson(clean).astype(np.uint16)


def test_dependence_about_one_for_gaussian_noise_large_for_photon_counts(
        gaussian_uint8, poisson_uint16):
    _, gauss = gaussian_uint8
    _, counts = poisson_uint16
    assert noise_signal_dependence(gauss.astype(float)) < 1.6
    dependence = noise_signal_dependence(counts.astype(float))
    assert dependence > 1.5 * SIGNAL_DEPENDENCE_LIMIT
    # units and offsets do not matter: it reads the noise variance's own change
    assert noise_signal_dependence(counts * 1e-3) == pytest.approx(dependence)
    assert noise_signal_dependence(counts + 1e4) == pytest.approx(dependence)
    # photon counts on a high background: one variance, nearly
    bright = np.random.default_rng(4).poisson(1e4 + poisson_uint16[0]).astype(float)
    assert noise_signal_dependence(bright) < 1.6
    # nothing to measure: one variance
    assert noise_signal_dependence(np.ones((1, 64, 64))) == 1.0
    assert noise_signal_dependence(np.zeros((3, 8, 8))) == 1.0


def test_dependence_reads_channels_and_large_stacks():
    rng = np.random.default_rng(0)
    ramp = np.broadcast_to(1 + 100 * np.linspace(0, 1, 32), (100, 32, 32))
    stack = rng.poisson(ramp).astype(float)  # over 64 images: a fixed sample is read
    assert noise_signal_dependence(stack) > 10 * SIGNAL_DEPENDENCE_LIMIT
    assert noise_signal_dependence(stack[:64]) != noise_signal_dependence(stack[:65])
    assert noise_signal_dependence(ramp + rng.normal(0, 5, ramp.shape)) < 1.2
    gauss = smooth(2, 64)[..., None] + rng.normal(0, 0.1, (2, 64, 64, 2))
    assert noise_signal_dependence(gauss, channel_axis=-1) < SIGNAL_DEPENDENCE_LIMIT
    channels = np.stack([stack[:4], ramp[:4] + rng.normal(0, 5, (4, 32, 32))], axis=-1)
    # the channels' tiles are pooled: a photon channel beside a Gaussian one
    assert noise_signal_dependence(channels, channel_axis=-1) > 2


def fit_auto(X, **params):
    defaults = {"module__width": 4, "max_steps": 30, "batch_size": 4, "random_state": 0}
    return N2SNet(**{**defaults, **params}).fit(X)


def test_auto_is_the_default_and_chooses_by_estimated_risk(gaussian_uint8):
    clean, X = gaussian_uint8
    net = fit_auto(X)
    assert net.output == "auto"
    assert net.posterior_head_ and net.noise_dependence_ < SIGNAL_DEPENDENCE_LIMIT
    risks = net.output_risks(X)
    assert set(risks) == {"ordinary", "posterior"}
    assert all(r.shape == (2,) and np.all(np.isfinite(r)) for r in risks.values())
    best = min(risks, key=lambda name: risks[name].mean())
    out = net.transform(X)
    assert out.dtype == np.uint8 and out.shape == X.shape
    np.testing.assert_array_equal(out, net.set_params(output=best).transform(X))
    assert np.mean((out - clean) ** 2) < np.mean((X - clean) ** 2)
    # the J-invariant output of the head's mean stays exact
    assert check_j_invariance(net.set_params(output="auto"), X[:1], n_probes=2) > 0


def test_risk_estimates_follow_the_true_error():
    # Gaussian noise of a known variance: the estimates are within the sampling error
    clean = smooth(2, 64)
    rng = np.random.default_rng(5)
    X = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    net = fit_auto(X, noise_variance=0.01, max_steps=60)
    risks = net.output_risks(X)
    for name, risk in risks.items():
        out = net.set_params(output=name).transform(X)
        true = np.mean((out.astype(np.float64) - clean) ** 2, axis=(1, 2))
        np.testing.assert_allclose(risk, true, rtol=0.25, err_msg=name)
    # a blind-spot one pass is J-invariant: its divergence is zero
    from sklearn_n2s.neural import DilatedBlindSpotNet

    blind = fit_auto(X, module=DilatedBlindSpotNet, module__depth=1, max_steps=5)
    _, divergence = blind._ordinary_divergence(X.astype(np.float64))
    np.testing.assert_allclose(divergence, 0, atol=1e-3)


def test_auto_is_the_one_pass_on_photon_counts(poisson_uint16):
    _, X = poisson_uint16
    net = fit_auto(X)
    assert net.posterior_head_ and net.noise_dependence_ > SIGNAL_DEPENDENCE_LIMIT
    with pytest.raises(ValueError, match="noise_dependence_"):
        net.output_risks(X)
    out = net.transform(X)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, net.set_params(output="ordinary").transform(X))


def test_auto_without_the_head_is_the_one_pass(gaussian_uint8):
    _, X = gaussian_uint8
    net = N2SNet(module__width=2, max_steps=2, batch_size=2, random_state=0,
                 output="ordinary").fit(X)
    assert not net.posterior_head_ and net.noise_dependence_ is None
    with pytest.raises(ValueError, match="posterior head"):
        net.output_risks(X)
    net.set_params(output="auto")
    np.testing.assert_array_equal(net.transform(X),
                                  net.set_params(output="ordinary").transform(X))


def test_output_risks_needs_a_fitted_net(gaussian_uint8):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        N2SNet().output_risks(gaussian_uint8[1])


def test_auto_budget_scales_with_the_data_within_bounds():
    net = N2SNet()
    # one 512**2 image: 512 passes = 2**27 patch pixels, 4096 steps of 8 patches of 64**2
    assert net.training_plan(1, (512, 512))["steps"] == 4096
    # 8 x 128**2: 2**26 pixels; 2 x 64**2 (2**13 pixels): the floor of 2**25
    assert net.training_plan(8, (128, 128))["steps"] == 2048
    assert net.training_plan(2, (100, 100))["steps"] == math.ceil(2**25 / (8 * 64**2))
    # a big stack: the cap, 2**27 pixels; 3-D: 2**25 at most
    assert net.training_plan(2, (1024, 1024))["steps"] == 4096
    assert net.training_plan(1, (64, 64, 64))["steps"] == 2**25 // (8 * 32**3)
    assert N2SNet(max_steps=7).training_plan(1, (512, 512))["steps"] == 7


def test_head_statistics_travel_with_the_weights(gaussian_uint8, tmp_path):
    _, X = gaussian_uint8
    net = fit_auto(X)
    path = tmp_path / "params.pt"
    net.save_params(f_params=path)
    loaded = N2SNet(module__width=4, torch_load_kwargs={"weights_only": True}).initialize()
    assert loaded.noise_variance_ is None and loaded.noise_dependence_ is None
    loaded.load_params(f_params=path)
    assert loaded.noise_variance_ == net.noise_variance_
    assert loaded.noise_dependence_ == net.noise_dependence_
    np.testing.assert_array_equal(loaded.transform(X), net.transform(X))


def test_auto_without_output_channels_trains_no_head():
    class Plain(torch.nn.Module):  # takes no output channel count: no head possible
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    X = smooth(2, 16).astype(np.float32)
    net = N2SNet(Plain, max_steps=2, random_state=0).fit(X)
    assert not net.posterior_head_ and net.noise_variance_ is None
    assert net.transform(X).shape == X.shape


def test_auto_keeps_the_input_units():
    clean = smooth(2, 64)
    X = clean + np.random.default_rng(6).normal(0, 0.1, clean.shape)
    base = fit_auto(X)
    scaled = fit_auto(X * 1000 + 5000)
    np.testing.assert_allclose((scaled.transform(X * 1000 + 5000) - 5000) / 1000,
                               base.transform(X), atol=1e-4)
