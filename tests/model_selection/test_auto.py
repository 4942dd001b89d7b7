"""AutoDenoiser: the family whose output has the lowest estimated error (or, with
criterion='loss', the lowest self-supervised loss), in the data's units."""

import warnings

import numpy as np
import pytest
from skimage import data
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_n2s import (
    AutoDenoiser,
    DonutMedian,
    FullSplit,
    JInvariantGaussian,
    JInvariantWavelet,
    SelfSupervisedScorer,
    image,
)
from sklearn_n2s.model_selection import _auto
from sklearn_n2s.model_selection._auto import DEFAULT_GRIDS, NoiseMultiples, available_families
from sklearn_n2s.utils.estimator_checks import (
    check_dtype_preserved,
    check_j_invariance,
    check_no_mutation,
)

CANDIDATE_DEFAULTS = {"DonutMedian": {}, "JInvariantGaussian": {}, "JInvariantWavelet": {}}
CANDIDATES = [(DonutMedian(), {"radius": [1, 2, 3]}),
              (JInvariantGaussian(), {"sigma": [0.5, 1.0, 2.0]}),
              (JInvariantWavelet(), {"sigma": [0.05, 0.1, 0.2]})]


def _smooth(shape, rng):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return 0.5 + 0.3 * np.prod([np.sin(g / 5.0 + k) for k, g in enumerate(grids)], axis=0)


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(0)
    clean = _smooth((64, 64), rng)
    return clean[np.newaxis], (clean + rng.normal(0, 0.1, clean.shape))[np.newaxis]


@pytest.fixture(scope="module")
def fitted(noisy):
    return AutoDenoiser(CANDIDATES, criterion="loss").fit(noisy[1])


@pytest.fixture(scope="module")
def fitted_by_risk(noisy):
    return AutoDenoiser(CANDIDATES).fit(noisy[1])


def test_risk_keeps_the_family_whose_output_has_the_lowest_estimated_error(fitted_by_risk,
                                                                          noisy):
    auto = fitted_by_risk
    _, X = noisy
    assert auto.criterion_ == "risk"
    risks = {name: est.estimated_risk(X) for name, est in auto.candidates_.items()}
    assert auto.best_family_ == min(risks, key=risks.get)
    assert auto.best_score_ == pytest.approx(-risks[auto.best_family_])
    # the mix of the two best families can only lower the estimated risk (w = 1 is the
    # best family alone); without it the score is the best family's
    assert auto.score(X) >= auto.best_score_ - 1e-12
    alone = AutoDenoiser(CANDIDATES, blend=False).fit(X)
    assert alone.blend_weights_ == {alone.best_family_: 1.0}
    assert alone.score(X) == pytest.approx(auto.best_score_)
    res = auto.cv_results_
    np.testing.assert_allclose(res["estimated_risk"], -res["mean_test_score"])
    assert "self_supervised_loss" not in res
    # every row is the estimated risk of that setting, in the family's own output
    for i, (family, params) in enumerate(zip(res["family"], res["params"])):
        est = type(auto.candidates_[family])(**{**CANDIDATE_DEFAULTS[family], **params})
        assert res["estimated_risk"][i] == pytest.approx(est.fit(X).estimated_risk(X))


def test_risk_picks_within_a_small_margin_of_the_best_output_on_clean(fitted_by_risk, noisy):
    clean, X = noisy
    error = {name: float(np.mean((est.transform(X) - clean) ** 2))
             for name, est in fitted_by_risk.candidates_.items()}
    assert error[fitted_by_risk.best_family_] <= 1.1 * min(error.values())


def _mix(auto, X):
    """What transform should return: the families' outputs weighted by blend_weights_."""
    return sum(w * auto.candidates_[f].transform(X) for f, w in auto.blend_weights_.items())


def _two_close_denoisers():
    """An image and two unlike filters of nearly equal error: a tie Stein's estimate
    cannot break, which the mix of the two serves better than either."""
    rng = np.random.default_rng(4)
    clean = data.camera()[200:328, 200:328] / 255.0
    noisy = (clean + rng.normal(0, 0.1, clean.shape))[np.newaxis]
    candidates = [(DonutMedian(), {"radius": [1, 2]}),
                  (JInvariantGaussian(output="ordinary"), {"sigma": [0.75, 1.0]})]
    return clean, noisy, candidates


def test_blend_mixes_the_two_best_families_by_their_estimated_risk():
    clean, X, candidates = _two_close_denoisers()
    auto = AutoDenoiser(candidates).fit(X)
    (first, w), (second, w2) = auto.blend_weights_.items()
    assert first == auto.best_family_ and second != first
    assert 0 < w < 1 and w + w2 == pytest.approx(1.0)
    outputs = [auto.candidates_[f].transform(X) for f in (first, second)]
    np.testing.assert_allclose(auto.transform(X), w * outputs[0] + w2 * outputs[1])
    # the weight minimises the mix's estimated risk, whose minimum is what score gives
    risks = [auto.candidates_[f].estimated_risk(X) for f in (first, second)]
    grid = np.linspace(0, 1, 201)
    on_grid = [_auto.mixture_risk(v, *outputs, X, risks) for v in grid]
    assert -auto.score(X) <= min(on_grid) + 1e-12
    assert abs(grid[int(np.argmin(on_grid))] - w) <= 0.005
    # ... and against the clean image the mix beats both families
    error = [float(np.mean((o - clean) ** 2)) for o in [auto.transform(X)] + outputs]
    assert error[0] < min(error[1:])
    # the invariant prediction stays the best family's own (a J-invariant output)
    np.testing.assert_array_equal(auto.invariant_transform(X),
                                  auto.candidates_[first].invariant_transform(X))


def test_mixture_risk_is_steins_estimate_of_the_mix():
    """For linear filters the divergence is known exactly: the mix's estimate from the
    two outputs' own equals Stein's estimate computed on the mix directly."""
    from scipy.ndimage import uniform_filter

    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.2, (96, 96)) + 0.5
    s2, n = 0.04, x.size
    outputs, risks = [], []
    for size in (3, 5):
        f = uniform_filter(x, size, mode="wrap")
        outputs.append(f)
        risks.append(np.mean((f - x) ** 2) - s2 + 2 * s2 / size ** 2)
    for w in (0.0, 0.3, 1.0):
        mix = w * outputs[0] + (1 - w) * outputs[1]
        divergence = w / 9 + (1 - w) / 25
        stein = np.mean((mix - x) ** 2) - s2 + 2 * s2 * divergence
        assert _auto.mixture_risk(w, *outputs, x, risks) == pytest.approx(stein, rel=1e-10)
    assert n == 96 * 96


def test_blend_leaves_loss_ranking_uint8_and_identical_outputs_alone(noisy):
    clean, X, candidates = _two_close_denoisers()
    by_loss = AutoDenoiser(candidates, criterion="loss").fit(X)
    assert by_loss.blend_weights_ == {by_loss.best_family_: 1.0}
    np.testing.assert_array_equal(by_loss.transform(X),
                                  by_loss.best_estimator_.transform(X))
    # uint8 in: the mix is in the families' float units, as each family's output is
    X8 = np.round(np.clip(X, 0, 1) * 255).astype(np.uint8)
    auto8 = AutoDenoiser(candidates).fit(X8)
    out = auto8.transform(X8)
    assert out.dtype == np.float64 and 0 <= out.min() and out.max() <= 1
    assert np.mean((out - clean) ** 2) < np.mean((X8 / 255.0 - clean) ** 2)
    # over 2 % of X at its minimum or maximum: clipping biases Stein's estimate, on which
    # the weight rests, so the best family is kept alone
    low, high = np.quantile(X, [0.02, 0.99])
    clipped = AutoDenoiser(candidates).fit(np.clip(X, low, high))
    assert clipped.criterion_ == "risk"
    assert clipped.blend_weights_ == {clipped.best_family_: 1.0}
    # two copies of one family: their outputs are equal, nothing to mix
    same = AutoDenoiser([(JInvariantGaussian(), {"sigma": [1.0]}),
                         (JInvariantGaussian(), {"sigma": [1.0]})]).fit(noisy[1])
    assert same.blend_weights_ == {"JInvariantGaussian": 1.0}
    first, second, x = np.ones(4), np.ones(4), np.zeros(4)
    assert _auto.mixture_weight(first, second, x, [0.5, 0.5])[0] == 1.0


def test_default_families_return_their_lowest_risk_output(noisy):
    _, X = noisy
    auto = AutoDenoiser(families=["JInvariantGaussian", "JInvariantTV"])
    outputs = {name: est.output for name, est, _ in auto._default_candidates(X, "risk")}
    assert outputs == {"JInvariantGaussian": "auto", "JInvariantTV": "ordinary"}
    outputs = {name: est.output for name, est, _ in auto._default_candidates(X, "loss")}
    assert outputs == {"JInvariantGaussian": "shrink", "JInvariantTV": "ordinary"}
    given = AutoDenoiser(families=["JInvariantGaussian"], output="invariant")
    assert [est.output for _, est, _ in given._default_candidates(X, "risk")] == ["invariant"]


def test_keeps_the_family_with_the_lowest_loss(fitted, noisy):
    _, X = noisy
    losses = {name: -s.best_score_ for name, s in fitted.searches_.items()}
    assert fitted.best_family_ == min(losses, key=losses.get)
    assert list(fitted.candidates_) == ["DonutMedian", "JInvariantGaussian", "JInvariantWavelet"]
    assert fitted.best_estimator_ is fitted.candidates_[fitted.best_family_]
    assert fitted.best_params_ == fitted.searches_[fitted.best_family_].best_params_
    # each candidate is calibrated: fitted at its own family's best parameters
    for name, est in fitted.candidates_.items():
        for key, value in fitted.searches_[name].best_params_.items():
            assert est.get_params()[key] == value
    np.testing.assert_array_equal(fitted.transform(X), fitted.best_estimator_.transform(X))
    np.testing.assert_array_equal(fitted.invariant_transform(X),
                                  fitted.best_estimator_.invariant_transform(X))
    assert fitted.score(X) == pytest.approx(fitted.best_score_)
    assert fitted.self_supervised_loss(X) == pytest.approx(min(losses.values()))


def test_results_table_one_row_per_family_and_setting(fitted):
    res = fitted.cv_results_
    assert len(res["params"]) == 9
    assert list(res["family"]) == ["DonutMedian"] * 3 + ["JInvariantGaussian"] * 3 + [
        "JInvariantWavelet"] * 3
    np.testing.assert_allclose(res["self_supervised_loss"], -res["mean_test_score"])
    for name, search in fitted.searches_.items():
        rows = res["family"] == name
        np.testing.assert_allclose(res["mean_test_score"][rows],
                                   search.cv_results_["mean_test_score"])
        np.testing.assert_array_equal(res["rank_in_family"][rows],
                                      search.cv_results_["rank_test_score"])
    assert res["rank_test_score"][fitted.best_index_] == 1
    assert res["rank_test_score"].min() == 1 and res["rank_test_score"].max() <= 9
    # param_radius is masked on the rows of families without a radius
    assert res["param_radius"].mask.tolist() == [False] * 3 + [True] * 6
    assert res["params"][fitted.best_index_] == fitted.best_params_


def test_same_pick_as_plain_scikit_learn_pipeline_grids(fitted, noisy):
    """The documented equivalent: GridSearchCV over a list of grids whose estimator is a
    parameter of a one-step Pipeline."""
    _, X = noisy
    grids = [{"denoiser": [est], **{f"denoiser__{k}": v for k, v in grid.items()}}
             for est, grid in CANDIDATES]
    search = GridSearchCV(Pipeline([("denoiser", DonutMedian())]), grids,
                          scoring=SelfSupervisedScorer(), cv=FullSplit()).fit(X)
    assert type(search.best_estimator_[-1]).__name__ == fitted.best_family_
    params = {k.removeprefix("denoiser__"): v for k, v in search.best_params_.items()
              if k != "denoiser"}
    assert params == fitted.best_params_
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               fitted.cv_results_["mean_test_score"], rtol=1e-12)


def test_uint16_grids_follow_the_noise_in_counts():
    """uint16 Poisson counts: the noise-scaled grids are in counts, not in 0..1."""
    rng = np.random.default_rng(1)
    clean = 200.0 + 3000.0 * data.camera()[100:228, 200:328] / 255.0  # photon counts
    X = rng.poisson(clean)[np.newaxis].astype(np.uint16)
    auto = AutoDenoiser(families=["DonutMedian", "JInvariantWavelet"]).fit(X)
    true_sigma = np.sqrt(clean.mean())
    assert auto.noise_level_ == pytest.approx(true_sigma, rel=0.5)  # counts, not 0..1
    wavelet = auto.searches_["JInvariantWavelet"].cv_results_["param_sigma"]
    expected = NoiseMultiples(DEFAULT_GRIDS["JInvariantWavelet"]["sigma"].factors).resolve(
        auto.noise_level_)
    assert list(wavelet) == expected
    assert 5 < min(expected) and max(expected) < 200  # counts, not 0..1 units
    # and the grid brackets the wavelet's pick
    assert min(expected) < auto.candidates_["JInvariantWavelet"].sigma < max(expected)
    out = auto.transform(X)
    assert out.shape == X.shape
    np.testing.assert_allclose(out, _mix(auto, X))


def test_volume_and_channels():
    rng = np.random.default_rng(2)
    vol = _smooth((12, 20, 22), rng)[np.newaxis]
    X = vol + rng.normal(0, 0.1, vol.shape)
    auto = AutoDenoiser(families=["DonutMedian", "JInvariantGaussian"]).fit(X)
    assert auto.best_estimator_.n_spatial_dims_ == 3
    # radius 4 is refused on a 12-voxel axis? no: only radii a 12-voxel axis takes are kept
    assert auto.transform(X).shape == X.shape
    rgb = np.stack([_smooth((40, 44), rng) * (0.6 + 0.2 * c) for c in range(3)], axis=-1)
    Xc = (rgb + rng.normal(0, 0.1, rgb.shape))[np.newaxis]
    auto = AutoDenoiser(families=["JInvariantGaussian", "JInvariantWavelet"],
                        channel_axis=-1).fit(Xc)
    assert all(est.channel_axis == -1 for est in auto.candidates_.values())
    assert auto.transform(Xc).shape == Xc.shape


def test_single_image_with_spatial_ndim(noisy):
    _, X = noisy
    auto = AutoDenoiser(CANDIDATES[:2], spatial_ndim=2, output="invariant").fit(X[0])
    assert auto.transform(X[0]).shape == X[0].shape
    np.testing.assert_allclose(auto.transform(X[0]), _mix(auto, X[0]))
    alone = AutoDenoiser(CANDIDATES[:2], spatial_ndim=2, output="invariant",
                         blend=False).fit(X[0])
    np.testing.assert_allclose(alone.transform(X[0]), alone.invariant_transform(X[0]))
    assert all(est.output == "invariant" for est in auto.candidates_.values())


def test_default_grid_values_the_data_cannot_take_are_left_out():
    X = np.random.default_rng(3).random((4, 5))  # four 1-D signals of 5 samples
    auto = AutoDenoiser(families=["DonutMedian", "JInvariantGaussian"], spatial_ndim=1).fit(X)
    radii = list(auto.searches_["DonutMedian"].cv_results_["param_radius"])
    sigmas = list(auto.searches_["JInvariantGaussian"].cv_results_["param_sigma"])
    print(radii, sigmas)
    # sigma 3 has a kernel radius of 12, more than twice the 5 samples
    assert sigmas == [0.5, 0.75, 1.0, 1.5, 2.0]


def test_j_invariant_no_mutation_and_dtypes(noisy):
    _, X = noisy
    auto = AutoDenoiser(CANDIDATES[:2])
    assert check_j_invariance(auto, X, n_probes=4) > 0
    check_no_mutation(auto, X)
    check_dtype_preserved(auto, X, outputs=["shrink", "ordinary", "invariant"])
    uint8 = np.clip(X * 255, 0, 255).astype(np.uint8)
    assert check_j_invariance(AutoDenoiser(families=["DonutMedian"]), uint8, n_probes=4) > 0


def test_new_families_join_when_the_image_module_has_them(monkeypatch):
    for name in ("JInvariantNLMeans", "JInvariantTV", "JInvariantBilateral", "JInvariantBM3D"):
        monkeypatch.delattr(image, name, raising=False)
    assert available_families() == ["DonutMedian", "JInvariantGaussian", "JInvariantWavelet"]

    class JInvariantTV(JInvariantGaussian):  # a stand-in with the placeholder's parameter
        def __init__(self, weight=1.0, **kwargs):
            super().__init__(**kwargs)
            self.weight = weight

    monkeypatch.setattr(image, "JInvariantTV", JInvariantTV, raising=False)
    monkeypatch.setattr(image, "JInvariantBM3D", JInvariantTV, raising=False)
    monkeypatch.setattr(_auto.importlib.util, "find_spec", lambda name: None)
    assert available_families() == ["DonutMedian", "JInvariantGaussian", "JInvariantWavelet",
                                    "JInvariantTV"]  # BM3D: no bm3d package


def test_noise_free_data_leaves_out_noise_scaled_grids():
    X = np.tile(np.linspace(0, 1, 32), (32, 1))[np.newaxis]  # a ramp: no noise at all
    with pytest.warns(UserWarning, match="no noise found"):
        auto = AutoDenoiser(families=["JInvariantGaussian", "JInvariantWavelet"]).fit(X)
    assert list(auto.candidates_) == ["JInvariantGaussian"]


def test_clipped_data_are_ranked_by_the_loss(noisy):
    """A fifth of the values at the ends of the range: Stein's estimate assumes noise
    that is not cut there, so the default ranks by the loss (which needs only
    independent noise) and an explicit criterion='risk' warns; the same data unclipped
    are ranked by the risk, with no warning."""
    clean, X = noisy
    clipped = np.clip(X + 0.35 * np.sign(X - 0.5), 0, 1)  # push the tails past 0 and 1
    assert 0.15 < _auto.clipped_fraction(clipped) < 0.5
    with pytest.warns(UserWarning, match="sit at its minimum or maximum"):
        by_risk = AutoDenoiser(CANDIDATES, criterion="risk").fit(clipped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto = AutoDenoiser(CANDIDATES).fit(clipped)
        by_loss = AutoDenoiser(CANDIDATES, criterion="loss").fit(clipped)
        unclipped = AutoDenoiser(CANDIDATES).fit(X)
    assert (by_risk.criterion_, auto.criterion_, unclipped.criterion_) == ("risk", "loss",
                                                                           "risk")
    assert auto.best_family_ == by_loss.best_family_
    np.testing.assert_array_equal(auto.cv_results_["self_supervised_loss"],
                                  by_loss.cv_results_["self_supervised_loss"])
    assert auto.score(clipped) == pytest.approx(-auto.self_supervised_loss(clipped))
    assert _auto.clipped_fraction(np.full((4, 4), 3.0)) == 0.0


class _NoRisk(JInvariantGaussian):
    """A J-invariant family that cannot estimate the error of its output."""

    @property
    def estimated_risk(self):
        raise AttributeError("no risk estimate")


def test_a_candidate_without_a_risk_estimate_is_ranked_by_the_loss(noisy):
    auto = AutoDenoiser([(_NoRisk(), {"sigma": [1.0, 2.0]}),
                         (DonutMedian(), {"radius": [1]})]).fit(noisy[1])
    assert auto.criterion_ == "loss"
    assert "self_supervised_loss" in auto.cv_results_
    with pytest.raises(TypeError, match="has no estimated_risk"):
        AutoDenoiser([(_NoRisk(), {})], criterion="risk").fit(noisy[1])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"candidates": []}, ValueError, "candidates is empty"),
    ({"candidates": [DonutMedian()]}, ValueError, r"candidates\[0\] must be a pair"),
    ({"candidates": [("median", {"radius": [1]})]}, TypeError, "must be an estimator"),
    ({"candidates": [(DonutMedian(), [1, 2])]}, TypeError, "param grid"),
    ({"candidates": [(DonutMedian(), {"radius": 1})]}, TypeError, "radius"),
    ({"families": ["Median"]}, ValueError, "unknown family 'Median'"),
    ({"candidates": CANDIDATES, "families": ["DonutMedian"]}, ValueError, "families selects"),
    ({"output": "best"}, InvalidParameterError, "output"),
    ({"cv": "three"}, InvalidParameterError, "cv"),
    ({"criterion": "psnr"}, InvalidParameterError, "criterion"),
    ({"candidates": [(FunctionTransformer(), {})], "criterion": "risk"}, TypeError,
     "has no estimated_risk"),
])
def test_bad_parameters_refused_before_any_work(kwargs, error, match, monkeypatch, noisy):
    def no_work(*args, **kw):
        raise AssertionError("calibration started")

    monkeypatch.setattr(_auto, "calibrate", no_work)
    with pytest.raises(error, match=match):
        AutoDenoiser(**kwargs).fit(noisy[1])


def test_bad_data_refused_and_unfitted_use_refused(noisy):
    with pytest.raises(ValueError, match="NaN|infinity"):
        AutoDenoiser(CANDIDATES[:1]).fit(np.full((1, 16, 16), np.nan))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AutoDenoiser().transform(noisy[1])


def test_duplicate_classes_get_distinct_names_and_cv_is_used(noisy):
    _, X = noisy
    X4 = np.concatenate([X, X[:, ::-1], X[:, :, ::-1], X.transpose(0, 2, 1)])
    auto = AutoDenoiser([(JInvariantGaussian(), {"sigma": [1.0]}),
                         (JInvariantGaussian(mode="reflect"), {"sigma": [2.0]})],
                        cv=KFold(2)).fit(X4)
    assert list(auto.candidates_) == ["JInvariantGaussian", "JInvariantGaussian#2"]
    assert "split1_test_score" in auto.searches_["JInvariantGaussian"].cv_results_
    # held-out scores are not risks on X: the mix's weight uses the risks on X itself
    (first, weight), (second, _) = auto.blend_weights_.items()
    estimators = [auto.candidates_[f] for f in (first, second)]
    expected = _auto.mixture_weight(*(e.transform(X4) for e in estimators), X4,
                                    [e.estimated_risk(X4) for e in estimators])[0]
    assert weight == pytest.approx(expected)
