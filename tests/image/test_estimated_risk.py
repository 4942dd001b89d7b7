"""estimated_risk, output='auto' and EstimatedRiskScorer: the error of what transform
returns, estimated without clean data."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_n2s import (
    DonutMedian,
    EstimatedRiskScorer,
    FullSplit,
    JInvariantGaussian,
    JInvariantWavelet,
)
from sklearn_n2s.base import output_risks, shrink_weights
from sklearn_n2s.image import JInvariantNLMeans, JInvariantTV
from sklearn_n2s.utils.estimator_checks import check_dtype_preserved, check_no_mutation

SIGMA = 0.1


def _clean(n=96):
    yy, xx = np.mgrid[:n, :n]
    disc = ((yy - n / 2) ** 2 + (xx - n / 3) ** 2 < (n / 4) ** 2).astype(float)
    return 0.3 + 0.4 * disc + 0.1 * np.sin(xx / 4.0) * np.cos(yy / 6.0)


@pytest.fixture(scope="module")
def data():
    clean = _clean()
    noisy = clean + np.random.default_rng(0).normal(0, SIGMA, clean.shape)
    return clean[np.newaxis], noisy[np.newaxis]


def test_output_risks_are_the_closed_forms():
    risks = output_risks([4.0, 1.0], [1.0, 2.0], ordinary_residual=[0.5, 0.5],
                         divergence=[0.25, 0.0])
    # invariant: L - s2, below 0 where the variance estimate exceeds the loss: not
    # capped, so that it keeps the order of the losses
    np.testing.assert_allclose(risks["invariant"], [3.0, -1.0])
    # shrink: the mix's error at lam = s2 / L, the minimum over lam of its error
    lam = shrink_weights([4.0], [1.0])[0]
    grid = np.linspace(0, 1, 1001)
    mix = grid**2 * 3.0 + (1 - grid) ** 2 * 1.0
    assert risks["shrink"][0] == pytest.approx(mix.min(), abs=1e-6)
    assert risks["shrink"][0] == pytest.approx(lam**2 * 3.0 + (1 - lam) ** 2 * 1.0)
    assert risks["shrink"][1] == -1.0  # lam = 1: the invariant output
    # the order of the losses is kept for every output, whatever the variance estimate
    losses = np.linspace(0.5, 3.0, 11)
    for kind in ("invariant", "shrink"):
        assert np.all(np.diff(output_risks(losses, 1.2)[kind]) > 0)
    # ordinary: SURE, residual - s2 + 2 s2 div
    np.testing.assert_allclose(risks["ordinary"], [0.5 - 1.0 + 0.5, 0.5 - 2.0])
    assert set(output_risks(None, 1.0, ordinary_residual=[1.0], divergence=[0.0])) == {
        "ordinary"}


@pytest.mark.parametrize("estimator", [
    JInvariantGaussian(sigma=1.0), JInvariantGaussian(sigma=2.5), DonutMedian(radius=2),
    JInvariantWavelet(), JInvariantTV(weight=0.1), JInvariantNLMeans(h=0.08)],
    ids=["gauss1", "gauss2.5", "median2", "wavelet", "tv", "nlmeans"])
@pytest.mark.parametrize("output", ["ordinary", "shrink", "invariant"])
def test_estimated_risk_tracks_the_error_against_clean(data, estimator, output):
    clean, X = data
    est = estimator.set_params(output=output, noise_variance=SIGMA**2).fit(X)
    true = float(np.mean((est.transform(X) - clean) ** 2))
    risk = est.estimated_risk(X)
    # unbiased for white Gaussian noise of the given variance; one image of 96 x 96
    # pixels and one divergence probe leave a few percent of the noise variance
    assert abs(risk - true) < 0.12 * true + 0.02 * SIGMA**2, (risk, true)


def test_the_risk_of_the_ordinary_filter_needs_its_divergence(data):
    """Without the 2 s2 div term the residual would rank a filter that returns the data
    (residual 0) best; the estimate puts the data's risk at the noise variance."""
    _, X = data
    identity = JInvariantGaussian(sigma=0.2, output="ordinary",
                                  noise_variance=SIGMA**2).fit(X)
    assert identity.estimated_risk(X) == pytest.approx(SIGMA**2, rel=0.02)
    smooth = JInvariantGaussian(sigma=1.5, output="ordinary", noise_variance=SIGMA**2).fit(X)
    assert smooth.estimated_risk(X) < 0.5 * SIGMA**2


def test_estimated_risk_is_in_the_units_of_the_loss_for_integer_images(data):
    clean, X = data
    X16 = np.round(X * 1000 + 500).astype(np.uint16)  # 400..1700 counts
    est = JInvariantGaussian(sigma=1.0, output="ordinary").fit(X16)
    est_float = JInvariantGaussian(sigma=1.0, output="ordinary").fit(X16.astype(float))
    # the loss of an integer image is in its float units (divided by the dtype's max)
    scale = np.iinfo(np.uint16).max
    assert est.estimated_risk(X16) == pytest.approx(est_float.estimated_risk(X16.astype(float))
                                                    / scale**2, rel=1e-3)
    # and far below the noise variance: the filter helps
    assert est_float.estimated_risk(X16.astype(float)) < 0.5 * (SIGMA * 1000) ** 2


def test_auto_returns_the_lowest_risk_output_per_image():
    rng = np.random.default_rng(1)
    clean = _clean(64)
    # a noisy image, where the smoothed outputs win, and a nearly clean textured one,
    # where the data (lam near 0) or a light filter wins
    texture = 0.5 + 0.3 * np.sign(np.sin(np.arange(64)[None, :] * 1.3)) * np.ones((64, 1))
    X = np.stack([clean + rng.normal(0, 0.2, clean.shape),
                  texture + rng.normal(0, 0.005, clean.shape)])
    est = JInvariantGaussian(sigma=1.5, output="auto").fit(X)
    out = est.transform(X)
    chosen = []
    for i in range(2):
        risks = {k: est.set_params(output=k).estimated_risk(X[i:i + 1])
                 for k in ("shrink", "ordinary", "invariant")}
        best = min(risks, key=risks.get)
        chosen.append(best)
        np.testing.assert_array_equal(out[i], est.set_params(output=best).transform(X[i:i + 1])[0])
    est.set_params(output="auto")
    assert est.estimated_risk(X) == pytest.approx(np.mean([
        min(est.set_params(output=k).estimated_risk(X[i:i + 1])
            for k in ("shrink", "ordinary", "invariant")) for i in range(2)]))
    assert chosen[0] != "invariant" or chosen[1] != "invariant"


def test_auto_output_keeps_the_contract(data):
    _, X = data
    est = JInvariantGaussian(sigma=1.0, output="auto")
    check_no_mutation(est, X)
    check_dtype_preserved(est, X.astype(np.float32))
    assert est.fit(X).transform(X[0:1]).shape == X[0:1].shape


def test_auto_output_refuses_a_dask_array_before_any_work(data):
    da = pytest.importorskip("dask.array")
    _, X = data
    est = JInvariantGaussian(sigma=1.0, output="auto").fit(X)
    with pytest.raises(ValueError, match="output='auto'.*dask"):
        est.transform(da.from_array(X, chunks=(1, 48, 48)))


def test_scorer_picks_the_parameter_and_the_output_the_clean_data_would(data):
    clean, X = data
    grid = {"sigma": [0.5, 1.0, 1.5, 2.5, 4.0], "output": ["ordinary", "shrink", "invariant"]}
    search = GridSearchCV(JInvariantGaussian(noise_variance=SIGMA**2), grid,
                          scoring=EstimatedRiskScorer(), cv=FullSplit()).fit(X)
    errors = {}
    for params in search.cv_results_["params"]:
        est = JInvariantGaussian(noise_variance=SIGMA**2, **params).fit(X)
        errors[tuple(sorted(params.items()))] = float(np.mean((est.transform(X) - clean) ** 2))
    best_error = min(errors.values())
    picked = errors[tuple(sorted(search.best_params_.items()))]
    assert picked <= 1.05 * best_error
    np.testing.assert_allclose(-search.cv_results_["mean_test_score"],
                               [JInvariantGaussian(noise_variance=SIGMA**2, **p).fit(X)
                                .estimated_risk(X) for p in search.cv_results_["params"]])


def test_scorer_follows_a_pipeline_and_refuses_what_has_no_risk(data):
    _, X = data
    pipe = make_pipeline(FunctionTransformer(lambda a: 2.0 * a),
                         JInvariantGaussian(sigma=1.0, output="ordinary",
                                            noise_variance=4 * SIGMA**2)).fit(X)
    direct = JInvariantGaussian(sigma=1.0, output="ordinary",
                                noise_variance=4 * SIGMA**2).fit(2.0 * X)
    assert EstimatedRiskScorer()(pipe, X) == pytest.approx(-direct.estimated_risk(2.0 * X))
    with pytest.raises(TypeError, match="estimated_risk"):
        EstimatedRiskScorer()(FunctionTransformer().fit(X), X)


def test_photon_noise_weights_the_divergence_by_the_local_variance(monkeypatch):
    """Poisson counts: the variance follows the signal, and the estimate of the ordinary
    filter's error needs each pixel's divergence weighted by its own variance."""
    from sklearn_n2s.utils._noise import noise_variance_weights

    rng = np.random.default_rng(3)
    # 192 = 4 tiles of the mean variance estimate (48), which leaves out partial tiles
    yy, xx = np.mgrid[:192, :192]
    clean = 25.0 + 195.0 * (xx / 191.0) + 20 * np.sin(yy / 5.0)  # 5..240 photons
    counts = rng.poisson(clean).astype(np.uint16)[np.newaxis]
    weights = noise_variance_weights(counts[0].astype(float), clean)
    assert weights.mean() == pytest.approx(1.0)
    # relative variance grows with the signal, as Poisson's does (bright/dark ~ 10x)
    assert weights[:, -16:].mean() > 5 * weights[:, :16].mean()
    flat = noise_variance_weights(rng.normal(0, 1, (192, 192)) + clean / 100, clean / 100)
    assert np.all(np.abs(flat - 1) < 0.5)
    X = counts.astype(float)
    # the mean variance given (its estimate's few percent of error would dominate a
    # risk 20x smaller than the noise): what is tested is the per-pixel weighting
    for est in (JInvariantGaussian(sigma=1.5, output="ordinary"),
                JInvariantTV(weight=8.0, output="ordinary")):
        est.set_params(noise_variance=float(clean.mean())).fit(X)
        true = float(np.mean((est.transform(X)[0] - clean) ** 2))
        weighted = est.estimated_risk(X)
        assert weighted == pytest.approx(true, rel=0.15)
        monkeypatch.setattr(type(est), "_variance_weights",
                            lambda self, X, guide: np.ones(X.shape))
        assert abs(est.estimated_risk(X) - true) > 2 * abs(weighted - true)
        monkeypatch.undo()


def test_the_ordinary_filter_is_kept_in_memory_for_the_refitted_clone(data):
    """A risk-scored sweep filters the data once per setting; the refitted clone's
    transform finds the ordinary output in the shared cache (and stays correct)."""
    from sklearn.base import clone

    from sklearn_n2s.image import MaskedImageCache

    _, X = data
    calls = []

    def counted(image, weight):
        calls.append(weight)
        from skimage.restoration import denoise_tv_chambolle

        return denoise_tv_chambolle(image, weight=weight)

    from sklearn_n2s.image import JInvariantDenoiser

    cache = MaskedImageCache(max_entries=2)  # one ordinary output per setting
    est = JInvariantDenoiser(counted, weight=0.1, output="ordinary", memory=cache)
    search = GridSearchCV(est, {"weight": [0.05, 0.1]}, scoring=EstimatedRiskScorer(),
                          cv=FullSplit()).fit(X)
    n_scoring = len(calls)  # per setting: the filter and the divergence probe
    assert n_scoring == 4
    out = search.best_estimator_.transform(X)
    assert len(calls) == n_scoring  # from the cache
    expected = clone(est).set_params(memory=None, **search.best_params_).fit(X).transform(X)
    np.testing.assert_array_equal(out, expected)
    out[...] = 0  # the caller's copy, not the cache's
    np.testing.assert_array_equal(search.best_estimator_.transform(X), expected)


def test_a_risk_scored_search_is_plotted_against_the_error_of_its_output(data):
    pytest.importorskip("matplotlib")
    from sklearn_n2s.plotting import ground_truth_losses, plot_calibration

    clean, X = data
    search = GridSearchCV(JInvariantGaussian(output="ordinary", noise_variance=SIGMA**2),
                          {"sigma": [0.5, 1.0, 2.0]}, scoring=EstimatedRiskScorer(),
                          cv=FullSplit()).fit(X)
    fig = plot_calibration(search, clean=clean, X=X)
    assert "estimated error" in fig.axes[0].get_ylabel() or "mean squared error" in \
        fig.axes[0].get_ylabel()
    truth = ground_truth_losses(search, [0.5, 1.0, 2.0], "sigma", X, clean)
    # the curve of the estimates follows the error of the ordinary output it scores
    np.testing.assert_allclose(-search.cv_results_["mean_test_score"], truth, rtol=0.15)


def test_auto_output_of_a_sample_does_not_depend_on_the_others():
    rng = np.random.default_rng(5)
    clean = _clean(48)
    X = np.stack([clean + rng.normal(0, s, clean.shape) for s in (0.02, 0.1, 0.3, 0.05)])
    est = JInvariantGaussian(sigma=1.0, output="auto").fit(X)
    whole = est.transform(X)
    np.testing.assert_array_equal(est.transform(X[::-1]), whole[::-1])
    np.testing.assert_array_equal(est.transform(X[1:3]), whole[1:3])
    assert est.estimated_risk(X[2:3]) == pytest.approx(
        JInvariantGaussian(sigma=1.0, output="auto").fit(X[2:3]).estimated_risk(X[2:3]))


def _mean_divergence_from_risk(estimator, X):
    """The mean divergence inside ``estimated_risk`` of an ordinary output:
    risk = residual - s2 + 2 s2 div."""
    residual = float(np.mean((estimator.transform(X) - X) ** 2))
    return (estimator.estimated_risk(X) - residual + SIGMA**2) / (2 * SIGMA**2)


def test_more_divergence_probes_approach_the_exact_divergence(data):
    """A linear filter's divergence is the mean of its kernel's diagonal, read exactly
    here from impulses spaced beyond the kernel's reach; the mean over sixteen random
    probes must land nearer to it than one probe does (a loop that reused one probe's
    signs would not)."""
    _, X = data
    est = JInvariantGaussian(sigma=1.0, output="ordinary", noise_variance=SIGMA**2).fit(X)
    spacing, diagonal = 11, np.zeros(X.shape[1:])
    for dy in range(spacing):
        for dx in range(spacing):
            impulses = np.zeros(X.shape)
            impulses[0, dy::spacing, dx::spacing] = 1.0
            response = est.transform(impulses)[0]
            diagonal[dy::spacing, dx::spacing] = response[dy::spacing, dx::spacing]
    exact = diagonal.mean()
    one = _mean_divergence_from_risk(est, X)
    est._divergence_probes = 16
    sixteen = _mean_divergence_from_risk(est, X)
    assert abs(sixteen - exact) < 0.5 * abs(one - exact)
    assert sixteen == pytest.approx(exact, rel=0.05)
