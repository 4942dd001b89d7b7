"""N2SNet on 1-D, 2-D and 3-D stacks, with masked (BabyUnet) and blind-spot modules:
J-invariance as a property, tiling, patch training, the step budget, the outputs
(shrink, invariant, ordinary, posterior), units and dtypes, and CUDA where present."""

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skorch.dataset import Dataset

from sklearn_n2s.base import shrink_weights
from sklearn_n2s.neural import BabyUnet, DilatedBlindSpotNet, N2SNet
from sklearn_n2s.neural._data import PatchBatchLoader, augment
from sklearn_n2s.neural._inference import forward_tiled, tile_geometry
from sklearn_n2s.utils.estimator_checks import check_j_invariance

_CONV = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
SIDES = {1: 40, 2: 20, 3: 10}


class CentreBlindConv(torch.nn.Module):
    """Test double of a blind-spot module: a 3**ndim convolution whose centre tap is
    zeroed at every call, then pixel-wise layers. Same interface as ``BlindSpotUnet``."""

    blind_spot = True
    receptive_radius = 1
    size_multiple = 1

    def __init__(self, in_channels=1, out_channels=1, ndim=2, width=4, depth=1):
        super().__init__()
        conv = _CONV[ndim]
        self.first = conv(in_channels, width, 3, padding=1)
        self.rest = torch.nn.Sequential(torch.nn.LeakyReLU(), conv(width, width, 1),
                                        torch.nn.LeakyReLU(), conv(width, out_channels, 1))
        mask = torch.ones_like(self.first.weight)
        mask[(Ellipsis, *(1,) * ndim)] = 0
        self.register_buffer("centre_mask", mask)

    def forward(self, x):
        conv = {3: torch.nn.functional.conv1d, 4: torch.nn.functional.conv2d,
                5: torch.nn.functional.conv3d}[x.ndim]
        out = conv(x, self.first.weight * self.centre_mask, self.first.bias, padding=1)
        return self.rest(out)


def smooth_stack(ndim, n=3, channels=None, seed=0, sigma=0.3, side=None):
    rng = np.random.default_rng(seed)
    side = side or SIDES[ndim]
    shape = (n,) + (side,) * ndim + ((channels,) if channels else ())
    axes = tuple(range(1, ndim + 1))
    clean = ndi.gaussian_filter(rng.normal(size=shape), 2.0, axes=axes)
    clean /= clean.std()
    return clean.astype(np.float32), (clean + rng.normal(0, sigma, shape)).astype(np.float32)


def tiny_net(kind, **params):
    module = BabyUnet if kind == "masked" else CentreBlindConv
    return N2SNet(module, module__width=2, max_steps=3, batch_size=4, random_state=0,
                  **params)


@functools.cache
def fitted(kind, ndim, channels=None):
    _, X = smooth_stack(ndim, channels=channels)
    return tiny_net(kind, channel_axis=-1 if channels else None).fit(X)


# ------------------------------------------------------------------- J-invariance
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["masked", "blind"]), ndim=st.sampled_from([1, 2, 3]),
       channels=st.sampled_from([None, 2]), tiled=st.booleans(),
       seed=st.integers(0, 2**16))
def test_j_invariance_every_module_dimension_and_tiling(kind, ndim, channels, tiled, seed):
    net = fitted(kind, ndim, channels)
    rng = np.random.default_rng(seed)
    side = SIDES[ndim] + int(rng.integers(0, 5))
    _, X = smooth_stack(ndim, n=1, channels=channels, seed=seed, side=side)
    # a corner, an edge pixel and a random one (every corner and edge of a volume
    # would cost 20 invariant passes of 64 masked copies each)
    edge = (0, *(int(v) for v in rng.integers(0, side, ndim - 1)), side - 1)
    coordinates = [(0,) * (ndim + 1), edge[-(ndim + 1):],
                   (0, *(int(v) for v in rng.integers(0, side, ndim)))]
    tile = (side + 1) // 2 if tiled else None  # two tiles along each axis
    net.set_params(tile_size=tile and -(-tile // 4) * 4)
    try:
        assert check_j_invariance(net, X, coordinates=coordinates) > 0
    finally:
        net.set_params(tile_size=None)


@pytest.mark.parametrize("kind", ["masked", "blind"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_tiled_equals_whole(kind, ndim):
    net = pickle_copy(fitted(kind, ndim)).set_params(output="ordinary")
    # BabyUnet's margin is 32 pixels: a 3-D tile costs a whole small volume, so the
    # 64-pass invariant output is compared tiled in 1-D and 2-D only.
    methods = ["transform"] + (["invariant_transform"] if ndim < 3 or kind == "blind"
                               else [])
    _, X = smooth_stack(ndim, n=2, seed=7, side={1: 150, 2: 70, 3: 40}[ndim])
    whole = {m: getattr(net, m)(X) for m in methods}
    tile = {1: 40, 2: 24, 3: 20}[ndim]
    tiled = net.set_params(tile_size=tile)
    for method, expected in whole.items():
        np.testing.assert_allclose(getattr(tiled, method)(X), expected, atol=1e-4)


def pickle_copy(net):
    import pickle

    return pickle.loads(pickle.dumps(net))


def test_tile_margin_covers_the_receptive_field():
    margin, multiple = tile_geometry(BabyUnet())
    assert multiple == 4 and margin >= BabyUnet.receptive_radius + 1 and margin % 4 == 0
    margin, multiple = tile_geometry(CentreBlindConv())
    assert (margin, multiple) == (2, 1)
    # Unknown modules: 16-aligned tiles and the default margin.
    assert tile_geometry(torch.nn.Identity()) == (32, 16)


def test_forward_tiled_3d_reassembles_exactly():
    x = torch.arange(2 * 1 * 9 * 10 * 11, dtype=torch.float64).reshape(2, 1, 9, 10, 11)
    out = forward_tiled(lambda t: 2 * t, x, tile_size=4, margin=2)
    torch.testing.assert_close(out, 2 * x)


# ------------------------------------------------------------------ blind spot
def test_blind_spot_trains_without_masking_and_infers_in_one_pass(monkeypatch):
    _, X = smooth_stack(2, n=4)
    net = tiny_net("blind")
    monkeypatch.setattr(N2SNet, "mask_batch", lambda *a, **k: pytest.fail("masked"))
    net.fit(X)
    assert net.blind_spot_module_ and len(net.history[-1, "batches"]) >= 1
    calls = []
    module = net.module_
    handle = module.register_forward_hook(lambda *a: calls.append(a[1][0].shape[0]))
    try:
        net.invariant_transform(X)
    finally:
        handle.remove()
    assert calls == [len(X)]  # one pass over the images, no masked copies


def test_blind_spot_loss_is_on_every_pixel():
    _, X = smooth_stack(2, n=4)
    net = tiny_net("blind", output="ordinary").fit(X)
    x = torch.from_numpy(X[:, None])
    net_input, mask = net._training_input(x)
    assert mask is None and net_input is x
    y_pred = net.infer(x)
    expected = torch.mean((y_pred - x) ** 2)
    torch.testing.assert_close(net.get_loss(y_pred, x, mask=None), expected)


# ------------------------------------------------------------ patches and budget
def test_patch_loader_shapes_budget_and_grid_maps():
    x = torch.arange(2 * 1 * 30 * 20, dtype=torch.float32).reshape(2, 1, 30, 20)
    loader = PatchBatchLoader(Dataset(x), batch_size=3, patch_size=8, n_batches=4,
                              random_state=0, budget=6)
    first = [b for b, _ in loader]
    second = [b for b, _ in loader]
    assert len(first) == 4 and len(second) == 2  # 6 batches in all
    values = set(x.flatten().tolist())
    for batch in first:
        assert batch.shape == (3, 1, 8, 8)
        patch = batch[0, 0]
        # a flip/rotation of a window: its values are distinct image values, and
        # neighbours in the patch are neighbours in the image (differ by 1 or 20)
        assert set(patch.flatten().tolist()) <= values
        steps = torch.cat([patch.diff(dim=0).abs().flatten(), patch.diff(dim=1).abs().flatten()])
        assert set(steps.tolist()) <= {1.0, 20.0}


def test_augment_is_a_permutation_of_the_grid():
    rng = np.random.RandomState(0)
    patch = torch.arange(2 * 6 * 6 * 6.0).reshape(2, 6, 6, 6)
    seen = set()
    for _ in range(20):
        out = augment(patch, rng)
        assert sorted(out.flatten().tolist()) == sorted(patch.flatten().tolist())
        torch.testing.assert_close(out[1] - out[0], torch.full((6, 6, 6), 216.0))
        seen.add(tuple(out[0].flatten()[:3].tolist()))
    assert len(seen) > 4


def test_max_steps_is_an_exact_budget_for_one_image():
    _, X = smooth_stack(2, n=1, side=150)
    net = N2SNet(module__width=2, max_steps=7, batch_size=4, patch_size=32,
                 random_state=0).fit(X)
    batches = sum(len(epoch["batches"]) for epoch in net.history)
    assert batches == 7 and net.train_plan_["patch_size"] == 32
    assert net.history[-1, "batches", 0, "train_batch_size"] == 4


def test_auto_budget_trains_enough_on_one_large_image():
    net = N2SNet(max_epochs=3)
    plan = net.training_plan(1, (512, 512))
    # batch_size='auto': 8 patches per batch, 32 whole images
    assert plan["patch_size"] == 64 and plan["steps"] * 8 * 64**2 >= 2**25
    small = net.training_plan(4000, (28, 28))  # digits: epochs of whole images
    assert small["patch_size"] is None and small["steps"] == 3 * 125
    assert N2SNet(max_steps=None, max_epochs=2).training_plan(1, (512, 512))["steps"] == 2 * 8
    assert net.training_plan(1, (64, 64, 64))["patch_size"] == 32
    # the same number of pixels whatever the batch size
    assert N2SNet(batch_size=32).training_plan(1, (512, 512))["steps"] * 4 == plan["steps"]


@pytest.mark.parametrize("module, patches, images", [(BabyUnet, 8, 32),
                                                     ("auto", 4, 8)])
def test_auto_batch_size_per_module(module, patches, images):
    # BabyUnet: 8 patches or 32 images; module='auto' builds D-BSN here: 4 or 8
    net = N2SNet(module, module__width=2, max_steps=2, random_state=0, patch_size=16)
    net.fit(smooth_stack(2, n=2, side=32)[1])
    assert net.history[-1, "batches", 0, "train_batch_size"] == patches
    whole = N2SNet(module, module__width=2, max_epochs=1, max_steps=None, random_state=0)
    whole.fit(smooth_stack(2, n=40, side=16)[1])
    assert whole.module_choice_ is (BabyUnet if module is BabyUnet else DilatedBlindSpotNet)
    sizes = [b["train_batch_size"] for b in whole.history[-1, "batches"]]
    assert sizes == [images] * (40 // images) + ([40 % images] if 40 % images else [])


# ---------------------------------------------------------------------- outputs
@pytest.fixture(scope="module")
def trained():
    clean, X = smooth_stack(2, n=6, side=32, sigma=0.5)
    net = N2SNet(module__width=4, max_steps=60, batch_size=6, random_state=0,
                 output="ordinary").fit(X)
    return net, X, clean


def test_shrink_is_the_optimal_mix(trained):
    net, X, _ = trained
    invariant = net.invariant_transform(X)
    shrink = net.set_params(output="shrink", noise_variance=0.25).transform(X)
    net.set_params(noise_variance=None)
    loss = np.mean((invariant.astype(np.float64) - X) ** 2, axis=(1, 2))
    lam = shrink_weights(loss, 0.25)
    expected = X + lam[:, None, None] * (invariant - X)
    np.testing.assert_allclose(shrink, expected, rtol=1e-5, atol=1e-5)
    assert 0 < lam.min() and lam.max() <= 1


def test_outputs_differ_and_beat_the_noise(trained):
    net, X, clean = trained
    outs = {o: net.set_params(output=o).transform(X) for o in ("shrink", "invariant",
                                                               "ordinary")}
    net.set_params(output="shrink")
    noisy_mse = np.mean((X - clean) ** 2)
    for name, out in outs.items():
        assert np.mean((out - clean) ** 2) < noisy_mse, name
    assert not np.allclose(outs["ordinary"], outs["invariant"])


def test_posterior_needs_the_head(trained):
    net, X, _ = trained
    with pytest.raises(ValueError, match="fitted with output='posterior'"):
        pickle_copy(net).set_params(output="posterior").transform(X)


def test_posterior_mean_between_data_and_prior_mean():
    clean, X = smooth_stack(2, n=6, side=32, sigma=0.5)
    net = N2SNet(BabyUnet, module__width=4, max_steps=40, batch_size=6, random_state=0,
                 output="posterior").fit(X)
    assert net.posterior_head_ and net.module_.conv6.out_channels == 2
    assert 0.1 < net.noise_variance_ < 0.5  # the estimate of 0.25
    post = net.transform(X)
    mu = net.invariant_transform(X)
    low, high = np.minimum(X, mu), np.maximum(X, mu)
    assert np.all(post >= low - 1e-5) and np.all(post <= high + 1e-5)
    # a known noise variance of 0 trusts the data; a huge one the prior mean
    np.testing.assert_allclose(net.set_params(noise_variance=0).transform(X), X, atol=1e-5)
    np.testing.assert_allclose(net.set_params(noise_variance=1e6).transform(X), mu,
                               atol=1e-3)
    assert check_j_invariance(net.set_params(noise_variance=None), X[:1], n_probes=1) > 0


def test_posterior_blind_spot_head():
    _, X = smooth_stack(1, n=4)
    net = tiny_net("blind", output="posterior").fit(X)
    assert net.transform(X).shape == X.shape
    assert net.history[-1, "train_loss"] == pytest.approx(net.history[-1, "train_loss"])


# ------------------------------------------------------------------ units, dtypes
@pytest.mark.parametrize("ndim", [1, 3])
def test_integer_stacks_come_back_in_their_units_and_dtype(ndim):
    rng = np.random.default_rng(0)
    clean, _ = smooth_stack(ndim, n=2)
    counts = rng.poisson(np.clip(100 + 30 * clean, 1, None)).astype(np.uint16)
    net = N2SNet(module__width=2, max_steps=20, batch_size=2, random_state=0).fit(counts)
    for output in ("shrink", "invariant", "ordinary"):
        out = net.set_params(output=output).transform(counts)
        assert out.dtype == np.uint16 and out.shape == counts.shape
        assert abs(float(out.mean()) - float(counts.mean())) < 30, output


def test_integers_are_rounded_and_clipped():
    X = np.full((2, 16, 16), 250, dtype=np.uint8)
    X[:, ::2] = 5
    net = N2SNet(module__width=2, max_steps=2, random_state=0, output="ordinary").fit(X)
    net.module_.conv6.bias.data += 100.0  # push the output far above 255
    out = net.transform(X)
    assert out.dtype == np.uint8 and out.max() == 255


def test_single_image_with_spatial_ndim():
    _, X = smooth_stack(3, n=1)
    net = tiny_net("masked", spatial_ndim=3).fit(X[0])
    assert net.transform(X[0]).shape == X[0].shape
    assert net.invariant_transform(X).shape == X.shape


def test_modules_get_ndim_and_channels():
    _, X = smooth_stack(3, n=2, channels=2)
    net = tiny_net("blind", channel_axis=-1).fit(X)
    assert isinstance(net.module_.first, torch.nn.Conv3d)
    assert net.module_.first.in_channels == 2 and net.n_spatial_dims_ == 3


# --------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["masked", "blind"])
def test_cuda_end_to_end_with_mixed_precision(kind):
    clean, X = smooth_stack(2, n=8, side=32, sigma=0.5)
    net = tiny_net(kind, device="cuda", max_steps=30).fit(X)
    assert net._training_precision() == "bfloat16"
    assert next(net.module_.parameters()).device.type == "cuda"
    out = net.transform(X)
    assert out.dtype == np.float32 and np.mean((out - clean) ** 2) < np.mean((X - clean) ** 2)
    assert check_j_invariance(net, X[:1], n_probes=1) > 0


def test_held_out_images_and_early_stopping_with_patches():
    from skorch.callbacks import EarlyStopping
    from skorch.dataset import ValidSplit

    _, X = smooth_stack(2, n=4, side=80)
    net = N2SNet(module__width=2, max_steps=40, batch_size=4, patch_size=32,
                 train_split=ValidSplit(4), random_state=0,
                 callbacks=[EarlyStopping(patience=1, threshold=10.0)]).fit(X)
    plan = net.train_plan_
    assert plan["patch_size"] == 32 and plan["epochs"] > 2
    # the held-out image is scored every epoch, and early stopping cut the budget
    assert all(np.isfinite(net.history[:, "valid_loss"]))
    assert len(net.history) < plan["epochs"]
