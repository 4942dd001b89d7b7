"""plot_calibration and plot_comparison: the figures hold the numbers they claim to."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import (
    DonutMedian,
    FullSplit,
    JInvariantGaussian,
    JInvariantWavelet,
    SelfSupervisedScorer,
)
from sklearn_n2s.plotting import plot_calibration, plot_comparison
from sklearn_n2s.utils._progress import ProgressScorer, progress

RADII = [1, 2, 3, 4]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    clean = 0.5 + 0.4 * np.sin(xx / 6.0) * np.cos(yy / 9.0)
    noisy = clean + rng.normal(0, 0.15, clean.shape)
    return clean[np.newaxis], noisy[np.newaxis]


@pytest.fixture(scope="module")
def median_search(images):
    _, X = images
    return GridSearchCV(DonutMedian(), {"radius": RADII}, scoring=SelfSupervisedScorer(),
                        cv=FullSplit()).fit(X)


def _line(ax, label_start):
    found = [ln for ln in ax.lines if ln.get_label().startswith(label_start)]
    assert found, [ln.get_label() for ln in ax.lines]
    return found[0]


def test_loss_curve_holds_searched_values_and_losses(median_search):
    fig = plot_calibration(median_search)
    ax = fig.axes[0]
    curve = _line(ax, "self-supervised loss")
    np.testing.assert_array_equal(curve.get_xdata(), RADII)
    np.testing.assert_allclose(curve.get_ydata(), -median_search.cv_results_["mean_test_score"])
    assert ax.get_xlabel() == "radius"
    assert "loss" in ax.get_ylabel()


def test_chosen_parameter_is_marked(median_search):
    fig = plot_calibration(median_search)
    star = _line(fig.axes[0], "chosen")
    best = median_search.best_params_["radius"]
    assert list(star.get_xdata()) == [best]
    assert f"radius = {best}" in star.get_label()


def test_ground_truth_curve_is_the_invariant_output_mse(images, median_search):
    clean, X = images
    fig = plot_calibration(median_search, clean=clean, X=X)
    truth = _line(fig.axes[0], "ground-truth loss")
    np.testing.assert_array_equal(truth.get_xdata(), RADII)
    expected = [np.mean((DonutMedian(radius=r).fit(X).invariant_transform(X) - clean) ** 2)
                for r in RADII]
    np.testing.assert_allclose(truth.get_ydata(), expected, rtol=1e-12)
    # Noise2Self: the two curves differ by about the noise variance at every radius.
    gap = _line(fig.axes[0], "self-supervised").get_ydata() - truth.get_ydata()
    np.testing.assert_allclose(gap, 0.15**2, rtol=0.25)
    assert fig.axes[0].get_ylabel() == "mean squared error"


def test_draws_on_a_given_axes(median_search):
    fig, axes = plt.subplots(1, 2)
    assert plot_calibration(median_search, ax=axes[1]) is fig
    assert not axes[0].lines and axes[1].lines


def test_several_varying_parameters_hold_the_others_at_best(images):
    _, X = images
    grid = {"sigma": [0.5, 1.0, 2.0], "truncate": [2.0, 4.0]}
    search = GridSearchCV(JInvariantGaussian(), grid, cv=FullSplit()).fit(X)
    fig = plot_calibration(search, param="sigma")
    curve = _line(fig.axes[0], "self-supervised")
    np.testing.assert_array_equal(curve.get_xdata(), grid["sigma"])
    best_truncate = search.best_params_["truncate"]
    expected = [-JInvariantGaussian(sigma=s, truncate=best_truncate).fit(X).score(X)
                for s in grid["sigma"]]
    np.testing.assert_allclose(curve.get_ydata(), expected, rtol=1e-10)
    fig = plot_calibration(search)  # no param: the first of the grid's keys
    assert fig.axes[0].get_xlabel() == "sigma"


def test_categorical_values_are_ticks(images):
    _, X = images
    grid = {"wavelet": ["db1", "db2", "sym4"]}
    search = GridSearchCV(JInvariantWavelet(sigma=0.1, stride=2), grid, cv=FullSplit()).fit(X)
    fig = plot_calibration(search)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == grid["wavelet"]


def test_multimetric_search_uses_the_refit_metric(images):
    _, X = images
    search = GridSearchCV(DonutMedian(), {"radius": RADII},
                          scoring={"n2s": SelfSupervisedScorer(), "also": SelfSupervisedScorer()},
                          refit="n2s", cv=FullSplit()).fit(X)
    curve = _line(plot_calibration(search).axes[0], "self-supervised")
    np.testing.assert_allclose(curve.get_ydata(), -search.cv_results_["mean_test_n2s"])


def test_wrapped_progress_scorer_is_still_self_supervised(images):
    _, X = images
    bar = progress(total=len(RADII), quiet=True)
    search = GridSearchCV(DonutMedian(), {"radius": RADII},
                          scoring=ProgressScorer(SelfSupervisedScorer(), bar),
                          cv=FullSplit()).fit(X)
    assert bar.n == len(RADII)
    assert plot_calibration(search).axes[0].get_ylabel().startswith("self-supervised")


def test_bad_calls_name_the_problem(images, median_search):
    clean, X = images
    with pytest.raises(ValueError, match="not fitted"):
        plot_calibration(GridSearchCV(DonutMedian(), {"radius": RADII}))
    with pytest.raises(ValueError, match="clean needs X"):
        plot_calibration(median_search, clean=clean)
    with pytest.raises(ValueError, match="'sigma' was not searched"):
        plot_calibration(median_search, param="sigma")
    with pytest.raises(ValueError, match="shape"):
        plot_calibration(median_search, clean=clean[:, :10], X=X)


def test_plot_comparison_shows_each_image_with_its_title(images):
    clean, X = images
    colour = np.random.default_rng(1).random((48, 48, 3))
    fig = plot_comparison([X, clean[0], colour], ["noisy", "clean", "colour"])
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["noisy", "clean", "colour"]
    np.testing.assert_array_equal(shown[0].images[0].get_array(), X[0])
    # grey panels share one scale, so they can be compared by eye
    assert shown[0].images[0].get_clim() == shown[1].images[0].get_clim()


def test_plot_comparison_rows_and_errors():
    fig = plot_comparison([np.zeros((4, 4))] * 5, ncols=2)
    assert len(fig.axes) == 6 and sum(bool(ax.images) for ax in fig.axes) == 5
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        plot_comparison([np.zeros((4, 4))] * 2, ["one"])
    with pytest.raises(ValueError, match=r"shape \(2, 5, 5\)"):
        plot_comparison([np.zeros((2, 5, 5))])
    with pytest.raises(ValueError, match="empty"):
        plot_comparison([])


def test_losses_in_the_data_units_and_the_estimator_named(median_search):
    """The CLI prints losses in the input's units (uint8 counts²) and names the model
    its own way: the plot can say the same."""
    fig = plot_calibration(median_search, loss_scale=255.0 ** 2, loss_unit="uint8 units²",
                           name="DonutMedian (median)")
    ax = fig.axes[0]
    curve = _line(ax, "self-supervised")
    np.testing.assert_allclose(curve.get_ydata(),
                               -median_search.cv_results_["mean_test_score"] * 255.0 ** 2)
    assert "uint8 units²" in ax.get_ylabel()
    assert ax.get_title().startswith("DonutMedian (median):")


# ------------------------------------------------ several families on one loss axis
@pytest.fixture(scope="module")
def auto(images):
    from sklearn_n2s import AutoDenoiser

    _, X = images
    return AutoDenoiser([(DonutMedian(), {"radius": RADII}),
                         (JInvariantGaussian(), {"sigma": [0.5, 1.0, 2.0]}),
                         (JInvariantWavelet(), {"sigma": [0.05, 0.1, 0.2]})]).fit(X)


def test_families_share_one_loss_axis(auto):
    fig = plot_calibration(auto)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    for k, (name, search) in enumerate(auto.searches_.items()):
        curve = _line(ax, name)
        np.testing.assert_allclose(curve.get_ydata(), -search.cv_results_["mean_test_score"])
        # each family sits at its own slot of the x axis, its values left to right
        assert np.all(np.abs(curve.get_xdata() - k) <= 0.4)
        assert np.all(np.diff(curve.get_xdata()) > 0)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(auto.searches_)
    star = _line(ax, "chosen")
    assert star.get_ydata()[0] == pytest.approx(-auto.best_score_)
    assert auto.best_family_ in star.get_label()
    # the parameter values are written beside the points
    texts = {t.get_text() for t in ax.texts}
    assert {"1", "2", "3", "4", "0.05"} <= texts


def test_families_with_clean_data_and_scaled_units(auto, images):
    clean, X = images
    fig = plot_calibration(auto, clean=clean, X=X, loss_scale=255.0**2,
                           loss_unit="uint8 units²")
    ax = fig.axes[0]
    truth = _line(ax, "JInvariantGaussian: ground truth")
    # AutoDenoiser ranks by the estimated error of each family's output (here the shrunk
    # mix, the candidates' own): the truth drawn beside it is that output's error
    expected = [np.mean((JInvariantGaussian(sigma=s).fit(X).transform(X) - clean)
                        ** 2) for s in [0.5, 1.0, 2.0]]
    np.testing.assert_allclose(truth.get_ydata(), np.array(expected) * 255.0**2, rtol=1e-10)
    assert "uint8 units²" in ax.get_ylabel()
    by_loss = type(auto)(auto.candidates, criterion="loss").fit(X)
    ax = plot_calibration(by_loss, clean=clean, X=X).axes[0]
    expected = [np.mean((JInvariantGaussian(sigma=s).fit(X).invariant_transform(X) - clean)
                        ** 2) for s in [0.5, 1.0, 2.0]]
    np.testing.assert_allclose(_line(ax, "JInvariantGaussian: ground truth").get_ydata(),
                               expected, rtol=1e-10)
    assert "self-supervised loss" in plot_calibration(by_loss).axes[0].get_ylabel()
    assert "estimated error" in plot_calibration(auto).axes[0].get_ylabel()


def test_a_dict_of_searches_and_refusals(median_search, auto):
    fig = plot_calibration({"median": median_search, "gauss": auto.searches_[
        "JInvariantGaussian"]}, name="two")
    assert fig.axes[0].get_title().startswith("two")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["median", "gauss"]
    with pytest.raises(ValueError, match="param is chosen per family"):
        plot_calibration(auto, param="sigma")
    from sklearn_n2s import AutoDenoiser

    with pytest.raises(ValueError, match="not fitted"):
        plot_calibration(AutoDenoiser())
    with pytest.raises(ValueError, match="empty"):
        plot_calibration({})
