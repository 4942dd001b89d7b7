"""SelfSupervisedScorer and FullSplit with scikit-learn's model selection tools."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_n2s import (
    DonutMedian,
    FullSplit,
    JInvariantGaussian,
    JInvariantWavelet,
    SelfSupervisedScorer,
    self_supervised_loss,
)


@pytest.fixture
def stack(rng):
    """Eight noisy 24x24 images of smooth ramps: the right Gaussian sigma is large."""
    x = np.linspace(0, 1, 24)
    clean = np.stack([np.add.outer(x * a, x * (1 - a)) for a in np.linspace(0, 1, 8)])
    return clean, clean + rng.normal(0, 0.3, clean.shape)


def test_scorer_is_minus_the_self_supervised_loss(stack):
    _, X = stack
    est = JInvariantGaussian(sigma=2.0).fit(X)
    loss = np.mean((est.invariant_transform(X) - X) ** 2)
    assert SelfSupervisedScorer()(est, X) == pytest.approx(-loss)
    assert est.score(X) == pytest.approx(-loss)
    mae = np.mean(np.abs(est.invariant_transform(X) - X))
    assert SelfSupervisedScorer(loss="mae")(est, X) == pytest.approx(-mae)


def test_grid_search_picks_what_the_ground_truth_picks(stack):
    clean, X = stack
    grid = [0.5, 1.0, 2.0, 4.0]
    search = GridSearchCV(JInvariantGaussian(), {"sigma": grid},
                          scoring=SelfSupervisedScorer(), cv=KFold(4)).fit(X)
    truth = [np.mean((JInvariantGaussian(sigma=s).fit(X).invariant_transform(X) - clean) ** 2)
             for s in grid]
    assert search.best_params_["sigma"] == grid[int(np.argmin(truth))]


def test_default_scoring_uses_score(stack):
    _, X = stack
    a = GridSearchCV(DonutMedian(), {"radius": [1, 2, 3]}, cv=FullSplit()).fit(X)
    b = GridSearchCV(DonutMedian(), {"radius": [1, 2, 3]}, cv=FullSplit(),
                     scoring=SelfSupervisedScorer()).fit(X)
    np.testing.assert_allclose(a.cv_results_["mean_test_score"],
                               b.cv_results_["mean_test_score"])


def test_randomized_halving_and_cross_val_score(stack):
    _, X = stack
    scorer = SelfSupervisedScorer()
    rand = RandomizedSearchCV(JInvariantGaussian(), {"sigma": [0.5, 1.0, 2.0, 3.0]},
                              n_iter=3, scoring=scorer, cv=2, random_state=0).fit(X)
    assert rand.best_params_["sigma"] >= 1.0
    halving = HalvingGridSearchCV(JInvariantGaussian(), {"sigma": [0.5, 1.0, 2.0, 3.0]},
                                  scoring=scorer, cv=2, min_resources=4, factor=2).fit(X)
    assert halving.best_params_["sigma"] >= 1.0
    scores = cross_val_score(JInvariantWavelet(sigma=0.3), X, scoring=scorer, cv=4)
    expected = [-JInvariantWavelet(sigma=0.3).fit(X[train]).self_supervised_loss(X[test])
                for train, test in KFold(4).split(X)]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_multi_metric_scoring_dict(stack):
    _, X = stack
    search = GridSearchCV(
        JInvariantGaussian(), {"sigma": [0.5, 2.0]}, cv=FullSplit(), refit="mse",
        scoring={"mse": SelfSupervisedScorer(), "mae": SelfSupervisedScorer(loss="mae")},
    ).fit(X)
    assert {"mean_test_mse", "mean_test_mae"} <= set(search.cv_results_)
    assert search.best_params_["sigma"] == 2.0


def test_full_split_trains_and_tests_on_everything():
    splits = list(FullSplit(n_repeats=2).split(np.zeros((3, 5))))
    assert len(splits) == 2 and FullSplit(2).get_n_splits() == 2
    for train, test in splits:
        np.testing.assert_array_equal(train, [0, 1, 2])
        np.testing.assert_array_equal(test, [0, 1, 2])


def test_single_image_calibration_with_full_split(stack):
    _, X = stack
    search = GridSearchCV(DonutMedian(), {"radius": [1, 3]}, cv=FullSplit()).fit(X[:1])
    assert search.best_params_["radius"] == 3


def test_pipeline_is_scored_on_its_last_step(stack):
    _, X = stack
    pipe = make_pipeline(FunctionTransformer(lambda Z: 2 * Z), JInvariantGaussian(sigma=2.0))
    pipe.fit(X)
    direct = JInvariantGaussian(sigma=2.0).fit(2 * X).self_supervised_loss(2 * X)
    assert self_supervised_loss(pipe, X) == pytest.approx(direct)
    search = GridSearchCV(pipe, {"jinvariantgaussian__sigma": [0.5, 2.0]},
                          scoring=SelfSupervisedScorer(), cv=FullSplit()).fit(X)
    assert search.best_params_["jinvariantgaussian__sigma"] == 2.0


def test_pipeline_steps_before_the_last_all_apply(stack):
    """Every earlier step transforms, in order; 'passthrough' and a lone step work."""
    _, X = stack
    pipe = make_pipeline(FunctionTransformer(lambda Z: Z + 1), "passthrough",
                         FunctionTransformer(lambda Z: 3 * Z), JInvariantGaussian(sigma=1.0))
    pipe.fit(X)
    Xt = 3 * (X + 1)
    direct = JInvariantGaussian(sigma=1.0).fit(Xt).self_supervised_loss(Xt, loss="mae")
    assert self_supervised_loss(pipe, X, loss="mae") == pytest.approx(direct, rel=1e-12)
    lone = make_pipeline(JInvariantGaussian(sigma=1.0)).fit(X)
    assert SelfSupervisedScorer()(lone, X) == pytest.approx(lone[-1].score(X), rel=1e-12)
    with pytest.raises(TypeError, match="FunctionTransformer has no invariant_transform"):
        self_supervised_loss(make_pipeline(JInvariantGaussian(), FunctionTransformer()).fit(X),
                             X)


def test_scorer_refuses_estimators_without_invariant_prediction(stack):
    from sklearn.decomposition import PCA

    _, X = stack
    flat = X.reshape(len(X), -1)
    with pytest.raises(TypeError, match="invariant_transform"):
        SelfSupervisedScorer()(PCA(2).fit(flat), flat)
    with pytest.raises(ValueError, match="loss"):
        SelfSupervisedScorer(loss="huber")


@pytest.mark.parametrize("estimator", [DonutMedian(2), JInvariantGaussian(1.5),
                                       JInvariantWavelet(0.2, fill="median")])
def test_clone_and_pickle_round_trip(estimator, stack):
    _, X = stack
    est = clone(estimator).fit(X)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X), est.transform(X))
    assert clone(est).get_params() == estimator.get_params()
