"""N2SNet: masking equals the core, exact J-invariance, training, persistence, CV, errors."""

import copy
import math
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from scipy import ndimage as ndi
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_n2s import SelfSupervisedScorer, masking
from sklearn_n2s.neural import BabyUnet, ImageBatchLoader, N2SNet, warmup_cosine_factor
from sklearn_n2s.neural._data import batch_bounds
from sklearn_n2s.neural._masking import (
    fill_masked_torch,
    grid_batch_mask,
    neighbour_average,
    random_batch_mask,
)
from sklearn_n2s.utils.estimator_checks import check_j_invariance

# output='ordinary': the mechanics of the net without the posterior head of the default
# output='auto' (tested in test_net_auto_output.py and test_net_nd.py)
TINY = {"module__width": 4, "max_epochs": 1, "batch_size": 8, "random_state": 0,
        "output": "ordinary"}


def noisy_blobs(n=24, size=16, channels=None, seed=0, sigma=0.3):
    """Smooth random images plus Gaussian noise, float32."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) + ((channels,) if channels else ())
    axes = (1, 2)
    clean = ndi.gaussian_filter(rng.normal(size=shape), 2.0, axes=axes)
    clean /= clean.std()
    return (clean + rng.normal(0, sigma, shape)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    X = noisy_blobs()
    return N2SNet(**{**TINY, "max_epochs": 2}).fit(X), X


@pytest.fixture(scope="module")
def fitted_rgb():
    X = noisy_blobs(n=12, channels=3)
    return N2SNet(**TINY, channel_axis=-1).fit(X), X


# ------------------------------------------------------------------ torch masking
def _nchw(X):
    return torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize("fill", ["interpolate", "zero", "median"])
@pytest.mark.parametrize("kind", ["grid", "random"])
def test_torch_fill_equals_masking_core(fill, kind):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3, 9, 11, 2))
    generator = torch.Generator().manual_seed(0)
    if kind == "grid":
        mask = grid_batch_mask(3, (9, 11), 4, generator)
    else:
        mask = random_batch_mask(3, (9, 11), 0.4, generator)
    got = fill_masked_torch(_nchw(X), mask, fill).permute(0, 2, 3, 1).numpy()
    expected = masking.fill_masked(X, mask[:, 0].numpy(), fill, channel_axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_neighbour_average_is_the_core_interpolation():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 7, 10, 3))
    got = neighbour_average(_nchw(X)).permute(0, 2, 3, 1).numpy()
    expected = masking.neighbour_interpolation(X, channel_axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_training_fill_of_grid_masks_matches_the_core():
    net = N2SNet(**TINY).initialize()
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(5, 1, 12, 9)))
    net.rng_ = np.random.RandomState(0)
    net_input, mask = net.mask_batch(x)
    expected = masking.fill_masked(x[:, 0].numpy(), mask[:, 0].numpy(), "interpolate")
    np.testing.assert_allclose(net_input[:, 0].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_interpolate_fallback_when_all_neighbours_hidden():
    X = np.arange(2 * 5 * 5, dtype=float).reshape(2, 5, 5, 1)
    mask = torch.zeros(2, 1, 5, 5, dtype=torch.bool)
    mask[:, :, 1:4, 1:4] = True  # the centre pixel has no visible neighbour
    got = fill_masked_torch(_nchw(X), mask, "interpolate").permute(0, 2, 3, 1).numpy()
    expected = masking.fill_masked(X, mask[:, 0].numpy(), "interpolate", channel_axis=-1)
    np.testing.assert_allclose(got, expected)


def test_uniform_fill_ignores_hidden_values_and_stays_in_range():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.normal(size=(2, 1, 8, 8)))
    mask = grid_batch_mask(2, (8, 8), 4, torch.Generator().manual_seed(0))
    a = fill_masked_torch(x, mask, "uniform", torch.Generator().manual_seed(3))
    y = x.clone()
    y[mask.expand_as(y)] = 1e6
    b = fill_masked_torch(y, mask, "uniform", torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    kept = x[~mask.expand_as(x)]
    assert kept.min() <= a[mask.expand_as(a)].min() <= a[mask.expand_as(a)].max() <= kept.max()


def test_grid_batch_mask_hides_one_coset_per_image():
    mask = grid_batch_mask(50, (12, 8), 4, torch.Generator().manual_seed(0))
    assert mask.shape == (50, 1, 12, 8)
    assert (mask.sum(dim=(1, 2, 3)) == 12 * 8 // 16).all()
    for image in mask[:, 0].numpy():
        rows, cols = np.nonzero(image)
        assert len(set(rows % 4)) == 1 and len(set(cols % 4)) == 1
    assert len({tuple(np.argwhere(m[0].numpy())[0]) for m in mask}) > 1


def test_random_batch_mask_density():
    mask = random_batch_mask(64, (32, 32), 0.1, torch.Generator().manual_seed(0))
    assert abs(mask.float().mean().item() - 0.1) < 0.01
    assert random_batch_mask(1, (4, 4), 1e-9, torch.Generator().manual_seed(0)).sum() == 1


# --------------------------------------------------------------- J-invariance
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_invariant_output_ignores_the_pixel_itself(fitted, dtype):
    net, X = fitted
    # corners, edge midpoints and 4 random pixels; the change reaches other pixels
    assert check_j_invariance(net, X[:3].astype(dtype), n_probes=4, delta=5.0,
                              atol=1e-10) > 1e-3


def test_invariant_output_rgb_ignores_all_channels_of_the_pixel(fitted_rgb):
    net, X = fitted_rgb
    check_j_invariance(net, X[:2], coordinates=[(1, 5, 9), (0, 0, 15)],
                       delta=[3.0, -3.0, 7.0], atol=0)


@pytest.mark.parametrize("fill", ["zero", "median", "uniform"])
def test_invariant_output_other_fills(fitted, fill):
    net, X = fitted
    net = clone(net).set_params(fill=fill)
    net.initialize()
    net.module_.load_state_dict(fitted[0].module_.state_dict())
    net.n_channels_in_ = 1
    # exact, and 'uniform' draws repeat (same seed every call), or the check says so
    check_j_invariance(net, X[:2], coordinates=[(0, 7, 3)], delta=-4.0, atol=0)


def test_invariant_output_bfloat16(fitted):
    net, X = fitted
    net = pickle.loads(pickle.dumps(net)).set_params(precision="bfloat16")
    check_j_invariance(net, X[:2], coordinates=[(1, 0, 15)], delta=6.0, atol=0)


def test_tiled_inference_matches_whole_image(fitted):
    net, _ = fitted
    X = noisy_blobs(n=2, size=80, seed=5)
    whole_plain = net.transform(X)
    whole_inv = net.invariant_transform(X)
    tiled = clone(net).set_params(tile_size=40)
    tiled.initialize()
    tiled.module_.load_state_dict(net.module_.state_dict())
    np.testing.assert_allclose(tiled.transform(X), whole_plain, atol=1e-5)
    np.testing.assert_allclose(tiled.invariant_transform(X), whole_inv, atol=1e-5)


class PlainConvNet(torch.nn.Module):
    """A module without ``fused_for_inference``: inference uses ``module_`` itself."""

    def __init__(self, n_channels_in=1, width=4):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(n_channels_in, width, 3, padding=1), torch.nn.BatchNorm2d(width),
            torch.nn.Conv2d(width, n_channels_in, 3, padding=1))

    def forward(self, x):
        return self.body(x)


def _snapshot(net):
    """Everything a net holds, comparable by value (tensors, arrays, random states)."""
    state = {}
    for key, value in vars(net).items():
        if isinstance(value, torch.nn.Module):
            state[key] = (
                {name: tensor.clone() for name, tensor in value.state_dict().items()},
                [sub.training for sub in value.modules()],
                [param.stride() for param in value.parameters()],
            )
        elif isinstance(value, torch.optim.Optimizer):
            state[key] = copy.deepcopy(value.state_dict())
        elif isinstance(value, np.random.RandomState):
            state[key] = value.get_state()
        elif key == "history_":
            state[key] = (len(value), len(value[-1, "batches"]), value.to_list())
        else:
            state[key] = pickle.dumps(value)
    return state


def _assert_same(a, b, path="net"):
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert a == b, path


@pytest.mark.parametrize("params", [
    {}, {"fill": "uniform"}, {"fill": "uniform", "random_state": None},
    {"fill": "uniform", "random_state": np.random.RandomState(3)},
    {"module": PlainConvNet}, {"tile_size": 8},
])
def test_inference_never_changes_the_fitted_net(params):
    X = noisy_blobs(n=6)
    net = N2SNet(**{**TINY, **params}).fit(X)
    before = _snapshot(net)

    def outputs():
        return (net.transform(X), net.invariant_transform(X), net.predict(X),
                net.score(X), net.self_supervised_loss(X), net.self_supervised_loss(X, "mae"))

    first, second = outputs(), outputs()
    _assert_same(_snapshot(net), before)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # ... and equal to what an untouched copy of the fitted net gives.
    fresh = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(fresh.invariant_transform(X), first[1])


def test_uniform_fill_draws_depend_on_random_state(fitted):
    net, X = fitted
    net = pickle.loads(pickle.dumps(net)).set_params(fill="uniform")
    a = net.invariant_transform(X[:2])
    b = net.set_params(random_state=1).invariant_transform(X[:2])
    assert not np.array_equal(a, b)


def test_scorer_uses_the_invariant_loss(fitted):
    net, X = fitted
    expected = np.mean((net.invariant_transform(X).astype(float) - X) ** 2)
    assert net.score(X) == pytest.approx(-expected, rel=1e-6)
    assert SelfSupervisedScorer()(net, X) == pytest.approx(-expected, rel=1e-6)


# ------------------------------------------------------------------- training
def test_masked_loss_falls():
    X = noisy_blobs(n=32)
    net = N2SNet(BabyUnet, module__width=8, max_epochs=6, batch_size=8, lr=3e-3,
                 random_state=0).fit(X)
    losses = net.history[:, "train_loss"]
    assert losses[-1] < 0.8 * losses[0]


def test_training_beats_the_noisy_input():
    # The self-supervised net must denoise: closer to the clean images than the data.
    rng = np.random.default_rng(0)
    clean = ndi.gaussian_filter(rng.normal(size=(32, 16, 16)), 2.0, axes=(1, 2))
    clean = (clean / clean.std()).astype(np.float32)
    X = clean + rng.normal(0, 0.5, clean.shape).astype(np.float32)
    net = N2SNet(BabyUnet, module__width=8, max_epochs=12, batch_size=8, lr=1e-2,
                 random_state=0).fit(X)
    noise_mse = np.mean((X - clean) ** 2)
    assert np.mean((net.transform(X) - clean) ** 2) < 0.6 * noise_mse
    assert np.mean((net.invariant_transform(X) - clean) ** 2) < 0.6 * noise_mse


def test_loss_is_mse_on_masked_pixels_only():
    net = N2SNet(**TINY).initialize()
    y_true = torch.zeros(2, 3, 4, 4)
    y_pred = torch.ones(2, 3, 4, 4)
    y_pred[:, :, 0, 0] = 3.0
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, 0, 0] = True
    assert net.get_loss(y_pred, y_true, mask=mask).item() == pytest.approx(9.0)
    assert net.get_loss(y_pred, y_true).item() == pytest.approx((9 + 15) / 16)
    l1 = N2SNet(**TINY, criterion=torch.nn.L1Loss).initialize()
    assert l1.get_loss(y_pred, y_true, mask=mask).item() == pytest.approx(3.0)


def test_adam_is_fused_unless_asked_otherwise():
    assert N2SNet(**TINY).initialize().optimizer_.defaults["fused"]
    net = N2SNet(**TINY, optimizer__foreach=False).initialize()
    assert not net.optimizer_.defaults.get("fused")


@pytest.mark.parametrize("params", [{"masking": "random", "density": 0.2},
                                    {"fill": "median"}, {"fill": "zero"},
                                    {"lr_schedule": "constant"}, {"channels_last": True},
                                    {"num_threads": 1}, {"precision": "bfloat16"}])
def test_options_train(params):
    X = noisy_blobs(n=8)
    before = torch.get_num_threads()
    net = N2SNet(**TINY, **params).fit(X)
    assert np.isfinite(net.history[-1, "train_loss"])
    assert net.transform(X).shape == X.shape
    assert torch.get_num_threads() == before


def _hand_rolled_factor(step, total_steps):
    # The schedule N2SNet computed by hand before it moved to skorch's LRScheduler:
    # the callback must give exactly these numbers.
    warmup = max(1, int(0.05 * total_steps))
    ramp = min(1.0, (step + 1) / warmup)
    return ramp * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def _batch_lrs(net, epochs=slice(None)):
    return [batch["event_lr"] for epoch in net.history[epochs] for batch in epoch["batches"]
            if "event_lr" in batch]  # training batches only


def test_cosine_schedule_has_the_hand_rolled_factors():
    factors = [warmup_cosine_factor(step, 200) for step in range(200)]
    np.testing.assert_array_equal(factors, [_hand_rolled_factor(s, 200) for s in range(200)])
    assert factors[0] < factors[10] == pytest.approx(1.0, abs=0.01)
    assert factors[-1] < 0.001 and np.all(np.diff(factors[10:]) <= 0)


def test_cosine_schedule_steps_every_batch_and_restores_the_base_lr():
    X = noisy_blobs(n=11)
    params = {**TINY, "max_epochs": 4, "batch_size": 3, "lr": 0.01}  # 3+3+3+2: 4 batches
    net = N2SNet(**params).fit(X)
    expected = [0.01 * _hand_rolled_factor(step, 16) for step in range(16)]
    np.testing.assert_allclose(_batch_lrs(net), expected, rtol=1e-15)
    assert net.optimizer_.param_groups[0]["lr"] == 0.01
    net.partial_fit(X)  # the schedule spans each call
    np.testing.assert_allclose(_batch_lrs(net, slice(4, None)), expected, rtol=1e-15)
    assert net.optimizer_.param_groups[0]["lr"] == 0.01
    # Held-out batches do not step the schedule.
    from skorch.dataset import ValidSplit

    valid = N2SNet(**params, train_split=ValidSplit(5)).fit(X)  # 8 images: 3 batches
    np.testing.assert_allclose(
        _batch_lrs(valid), [0.01 * _hand_rolled_factor(s, 12) for s in range(12)], rtol=1e-15)


def test_constant_schedule_keeps_the_lr():
    net = N2SNet(**TINY, lr=0.01, lr_schedule="constant").fit(noisy_blobs(n=8))
    assert "event_lr" not in net.history[-1, "batches", -1]
    assert net.optimizer_.param_groups[0]["lr"] == 0.01


def test_validation_split_records_valid_loss():
    from skorch.dataset import ValidSplit

    net = N2SNet(**TINY, train_split=ValidSplit(4)).fit(noisy_blobs(n=16))
    assert np.isfinite(net.history[-1, "valid_loss"])


def test_random_state_makes_runs_repeatable():
    X = noisy_blobs(n=16)
    a = N2SNet(**TINY).fit(X).transform(X)
    b = N2SNet(**TINY).fit(X).transform(X)
    c = N2SNet(**{**TINY, "random_state": 1}).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_partial_fit_continues_training(fitted):
    net, X = fitted
    net = pickle.loads(pickle.dumps(net))
    n_epochs = len(net.history)
    net.partial_fit(X)
    assert len(net.history) == n_epochs + net.max_epochs


def test_verbose_controls_output(capsys):
    X = noisy_blobs(n=8)
    N2SNet(**TINY, verbose=0).fit(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    N2SNet(**TINY, verbose=1).fit(X)
    captured = capsys.readouterr()
    assert "train_loss" in captured.out
    assert captured.err == ""  # stderr is no terminal here: tqdm draws no bar


def test_a_last_batch_of_one_image_joins_the_previous_one():
    # 33 images of 4x4 in batches of 32 left a last batch of one: batch norm then saw a
    # single value per channel at the bottom of the U-Net and fit crashed.
    X = noisy_blobs(n=33, size=4)
    net = N2SNet(**{**TINY, "batch_size": 32, "max_epochs": 2}).fit(X)
    assert [len(epoch["batches"]) for epoch in net.history] == [1, 1]
    assert np.isfinite(net.transform(X)).all()
    assert batch_bounds(33, 32) == [(0, 33)]
    assert batch_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert batch_bounds(11, 3) == [(0, 3), (3, 6), (6, 9), (9, 11)]
    assert batch_bounds(1, 32) == [(0, 1)]
    from skorch.dataset import Dataset

    x = torch.arange(10.0).reshape(10, 1, 1, 1)
    loader = ImageBatchLoader(Dataset(x), batch_size=3, shuffle=True, random_state=0)
    batches = [batch for batch, _ in loader]
    assert [len(batch) for batch in batches] == [3, 3, 4] and len(loader) == 3
    assert sorted(torch.cat(batches).flatten().tolist()) == list(range(10))


def test_batches_of_one_tiny_image_raise_a_clear_error():
    with pytest.raises(ValueError, match="batch_size >= 2"):
        N2SNet(**{**TINY, "batch_size": 1}).fit(noisy_blobs(n=3, size=4))
    with pytest.raises(ValueError, match="at least 2 training images"):
        N2SNet(**TINY).fit(noisy_blobs(n=1, size=4))


def test_batch_size_minus_one_takes_all_images():
    net = N2SNet(**{**TINY, "batch_size": -1}).fit(noisy_blobs(n=5))
    assert len(net.history[-1, "batches"]) == 1


# ----------------------------------------------------------------- numeric range
def test_inputs_are_normalised_by_robust_statistics(fitted):
    net, X = fitted
    low, median, high = np.percentile(X, [1, 50, 99])
    assert net.input_offset_ == pytest.approx(median)
    assert net.input_scale_ == pytest.approx((high - low) / 4.652695748081682)
    # constant data: a unit spread, outputs in the data's units
    flat = N2SNet(**TINY).fit(np.full((4, 8, 8), 7.0))
    assert (flat.input_offset_, flat.input_scale_) == (7.0, 1.0)
    assert np.isfinite(flat.transform(np.full((2, 8, 8), 7.0))).all()


@pytest.mark.parametrize("dtype, power", [(np.float32, 70), (np.float32, -70),
                                          (np.float32, 120), (np.float64, 300)])
def test_outputs_and_scores_keep_the_input_units_at_any_magnitude(dtype, power):
    # Values near 1e21 trained to NaN weights and NaN outputs. Normalised internally, a
    # net fitted on X * 2**power (an exact scaling) is the net fitted on X, its outputs
    # scaled by 2**power, and its loss by 4**power.
    X = noisy_blobs(n=8).astype(dtype)
    factor = dtype(2.0**power)
    base = N2SNet(**TINY).fit(X)
    net = N2SNet(**TINY).fit(X * factor)
    for method in ("transform", "invariant_transform"):
        got = getattr(net, method)(X * factor)
        assert got.dtype == dtype and np.isfinite(got).all()
        np.testing.assert_allclose(got / factor, getattr(base, method)(X), rtol=1e-6)
    score = net.score(X * factor)
    assert np.isfinite(score)
    assert score == pytest.approx(base.score(X) * 4.0**power, rel=1e-6)


def test_float32_extremes_stay_finite():
    X = noisy_blobs(n=8)
    X = X / np.abs(X).max() * np.float32(3e38)  # up to the largest float32
    net = N2SNet(**TINY).fit(X)
    assert np.isfinite(net.transform(X)).all() and np.isfinite(net.invariant_transform(X)).all()
    assert np.isfinite(net.score(X))


def test_values_out_of_range_are_refused_with_the_range(fitted):
    net, X = fitted
    with pytest.raises(ValueError, match=r"accepts values in \[-1e\+100, 1e\+100\]"):
        N2SNet(**TINY).fit(X.astype(np.float64) * 1e200)
    outlier = X.copy()
    outlier[0, 0, 0] = 1e12
    with pytest.raises(ValueError, match="within 1e\\+08 spreads of the median, here"):
        N2SNet(**TINY).fit(outlier)
    with pytest.raises(ValueError, match="spreads away from the median"):
        net.transform(X * 1e9)  # far outside what the net was fitted on


class NaNLoss(torch.nn.MSELoss):
    def forward(self, y_pred, y_true):
        return super().forward(y_pred, y_true) * float("nan")


def test_non_finite_training_stops_with_a_clear_error():
    X = noisy_blobs(n=8)
    # The last optimizer step breaks the weights: caught at the end of the epoch.
    net = N2SNet(**{**TINY, "lr": 1e300})
    with pytest.raises(FloatingPointError, match=r"weights became non-finite.*lr=1e\+300"):
        net.fit(X)
    with pytest.raises(FloatingPointError, match="output is not finite"):
        net.transform(X)  # never NaN output from the broken weights
    with pytest.raises(FloatingPointError, match="output is not finite"):
        net.score(X)
    # A non-finite loss stops training at its batch.
    with pytest.raises(FloatingPointError, match="training loss became nan at epoch 1, batch 1"):
        N2SNet(**{**TINY, "batch_size": 4}, criterion=NaNLoss).fit(X)
    # Two batches: the second loss is already NaN after the first step.
    with pytest.raises(FloatingPointError, match="training loss became nan.*learning rate"):
        N2SNet(**{**TINY, "lr": 1e300, "batch_size": 4, "lr_schedule": "constant"}).fit(X)


# --------------------------------------------------------------- persistence
def test_save_and_load_params_round_trip(fitted, tmp_path):
    net, X = fitted
    path = tmp_path / "params.pt"
    net.save_params(f_params=path)
    loaded = N2SNet(**{**TINY, "torch_load_kwargs": {"weights_only": True}}).initialize()
    loaded.load_params(f_params=path)
    np.testing.assert_array_equal(loaded.transform(X), net.transform(X))
    np.testing.assert_array_equal(loaded.invariant_transform(X), net.invariant_transform(X))


def test_pickle_round_trip(fitted):
    net, X = fitted
    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(restored.transform(X), net.transform(X))
    np.testing.assert_array_equal(restored.invariant_transform(X), net.invariant_transform(X))


def test_clone_and_set_params():
    net = N2SNet(**TINY, optimizer__weight_decay=1e-5)
    cloned = clone(net)
    assert cloned.get_params()["module__width"] == 4
    assert cloned.get_params()["optimizer__weight_decay"] == 1e-5
    cloned.set_params(module__width=2).fit(noisy_blobs(n=8))
    assert cloned.module_.width == 2


# ---------------------------------------------------------------- model selection
def test_grid_search_picks_the_lowest_self_supervised_loss():
    # lr=1e-6 leaves the network at its random initialisation: clearly the worst.
    X = noisy_blobs(n=18)
    bad, grid = 1e-6, {"lr": [1e-6, 3e-3, 3e-2]}
    base = N2SNet(module__width=4, max_epochs=3, batch_size=6, random_state=0,
                  output="ordinary")
    search = GridSearchCV(base, grid, scoring=SelfSupervisedScorer(), cv=KFold(3))
    search.fit(X)
    # The losses computed by hand, fold by fold, outside the search.
    losses = [
        np.mean([clone(base).set_params(lr=lr).fit(X[train]).self_supervised_loss(X[test])
                 for train, test in KFold(3).split(X)])
        for lr in grid["lr"]
    ]
    np.testing.assert_allclose(-search.cv_results_["mean_test_score"], losses, rtol=1e-6)
    assert search.best_params_["lr"] == grid["lr"][int(np.argmin(losses))] != bad
    assert losses[0] > 1.2 * min(losses)
    assert search.transform(X).shape == X.shape


# --------------------------------------------------------------------- inputs
def test_dtypes(fitted):
    net, X = fitted
    assert net.transform(X).dtype == np.float32
    assert net.transform(X.astype(np.float64)).dtype == np.float64
    uint8 = (np.clip(X, -2, 2) * 60 + 128).astype(np.uint8)
    net8 = clone(net).fit(uint8)
    for method in (net8.transform, net8.invariant_transform):
        out = method(uint8)  # the input's dtype and units (0..255), not img_as_float's
        assert out.dtype == np.uint8
        assert abs(float(out.mean()) - float(uint8.mean())) < 64  # not 0..1 units


def test_caller_array_is_not_modified(fitted):
    net, X = fitted
    X = X.copy()
    before = X.copy()
    net.transform(X)
    net.invariant_transform(X)
    N2SNet(**TINY).fit(X)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("bad, error, match", [
    (np.zeros((2, 3, 8), np.float32), ValueError, "at least 4"),
    (np.full((2, 8, 8), np.nan), ValueError, "NaN"),
    (np.full((2, 8, 8), np.inf), ValueError, "infinity"),
    (np.zeros((0, 8, 8)), ValueError, "empty"),
    (np.array([[["a"] * 8] * 8] * 2, dtype=object), TypeError, "dtype object"),
])
def test_bad_inputs_raise(fitted, bad, error, match):
    net, _ = fitted
    with pytest.raises(error, match=match):
        net.transform(bad)
    with pytest.raises(error, match=match):
        N2SNet(**TINY).fit(bad)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 16)), "1 spatial axes .* fitted on data with 2"),
    (np.zeros((2, 8, 8, 8)), "3 spatial axes .* fitted on data with 2"),
    (np.zeros((2, 2, 8, 8, 8)), "at most 3 spatial axes"),
])
def test_spatial_axes_must_match_fit(fitted, bad, match):
    with pytest.raises(ValueError, match=match):
        fitted[0].transform(bad)


def test_channel_count_must_match_fit(fitted_rgb):
    net, X = fitted_rgb
    with pytest.raises(ValueError, match="channel"):
        net.transform(X[..., :2])


def test_unfitted_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        N2SNet().transform(noisy_blobs(n=2))


@pytest.mark.parametrize("params, match", [
    ({"masking": "checker"}, "'masking' parameter"), ({"fill": "mean"}, "'fill' parameter"),
    ({"stride": 1}, "'stride' parameter"), ({"density": 1.5}, "'density' parameter"),
    ({"density": 0}, "'density' parameter"), ({"tile_size": 30}, "multiple of 4"),
    ({"tile_size": 2}, "'tile_size' parameter"), ({"lr_schedule": "step"}, "lr_schedule"),
    ({"channel_axis": 0}, "'channel_axis' parameter"), ({"precision": "half"}, "precision"),
    ({"inference_batch_size": 0}, "inference_batch_size"), ({"num_threads": 0}, "num_threads"),
    ({"channels_last": "yes"}, "channels_last"), ({"random_state": "x"}, "random_state"),
    ({"batch_size": 0}, "'batch_size' parameter"), ({"batch_size": -2}, "'batch_size'"),
    ({"batch_size": 2.5}, "'batch_size'"), ({"max_epochs": -1}, "'max_epochs' parameter"),
    ({"max_epochs": 0}, "'max_epochs'"), ({"lr": 0}, "'lr' parameter"), ({"lr": -1e-3}, "'lr'"),
    ({"lr": "fast"}, "'lr'"), ({"device": 3}, "'device' parameter"),
    ({"device": "nodevice"}, "'device' parameter .* torch device"),
    ({"warm_start": "yes"}, "'warm_start'"), ({"verbose": -1}, "'verbose'"),
    ({"train_split": 0.2}, "'train_split'"),
])
def test_bad_parameters_raise(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        N2SNet(**{**TINY, **params}).fit(noisy_blobs(n=4))
    with pytest.raises(InvalidParameterError, match=match):
        N2SNet(**{**TINY, **params}).partial_fit(noisy_blobs(n=4))


def test_parameters_are_checked_before_the_data():
    with pytest.raises(InvalidParameterError, match="The 'stride' parameter of N2SNet"):
        N2SNet(**TINY, stride=0).fit(np.zeros((2, 16)))  # also a bad X


def test_inference_checks_parameters_set_after_fit(fitted):
    net = pickle.loads(pickle.dumps(fitted[0])).set_params(stride=1)
    with pytest.raises(InvalidParameterError, match="stride"):
        net.invariant_transform(fitted[1][:1])


def test_sklearn_check_param_validation():
    from sklearn.utils.estimator_checks import check_param_validation

    check_param_validation("N2SNet", N2SNet(module__width=2, max_epochs=1))


# -------------------------------------------------------------------- example
def test_example_smoke_runs(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend")
    pytest.importorskip("matplotlib")
    import runpy
    from pathlib import Path

    output = tmp_path / "figure.png"
    monkeypatch.setenv("N2S_EXAMPLE_N_IMAGES", "36")
    monkeypatch.setenv("N2S_EXAMPLE_EPOCHS", "1")
    monkeypatch.setenv("N2S_EXAMPLE_OUTPUT", str(output))
    monkeypatch.setattr("sys.argv", ["plot_mnist_n2snet.py"])
    script = Path(__file__).resolve().parents[2] / "examples" / "plot_mnist_n2snet.py"
    runpy.run_path(str(script), run_name="__main__")
    assert output.stat().st_size > 0
