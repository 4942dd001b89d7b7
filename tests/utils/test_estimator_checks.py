"""The estimator checks fail on broken denoisers and pass on the real ones.

Each broken denoiser below has one realistic bug (a centre weight left in, an edge mode
that reflects the centre back in, a channel leak, a write into X, state stored by
``transform``, a float64 result for float32 input); the matching check must raise an
AssertionError that names what went wrong.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import ndimage as ndi
from sklearn.base import BaseEstimator, TransformerMixin

from sklearn_n2s import DonutMedian, JInvariantGaussian, LowRankDenoiser
from sklearn_n2s.utils.estimator_checks import (
    check_denoiser,
    check_dtype_preserved,
    check_j_invariance,
    check_no_mutation,
)


def _donut_mean(X, mode, axes):
    """Mean of the 3**d - 1 neighbours of every pixel (the centre left out)."""
    footprint = np.ones((3,) * len(axes))
    footprint[(1,) * len(axes)] = 0
    footprint /= footprint.sum()
    kernel = footprint.reshape(tuple(3 if a in axes else 1 for a in range(X.ndim)))
    return ndi.correlate(X, kernel, mode=mode)


class ImageDenoiser(TransformerMixin, BaseEstimator):
    """A correct J-invariant image denoiser (the mean of the 8 neighbours, mirror edges);
    subclasses below break it in one place each."""

    mode = "mirror"

    def __init__(self, channel_axis=None):
        self.channel_axis = channel_axis

    def fit(self, X, y=None):
        self.n_features_in_ = int(np.prod(np.shape(X)[1:]))
        self.scale_ = np.ones(1)
        return self

    def _float(self, X):
        X = np.asarray(X)
        return X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)

    def _spatial_axes(self, X):
        last = X.ndim - 1 if self.channel_axis is not None else X.ndim
        return tuple(range(1, last))

    def invariant_transform(self, X):
        X = self._float(X)
        return _donut_mean(X, self.mode, self._spatial_axes(X)) * float(self.scale_[0])

    def transform(self, X):
        return self.invariant_transform(X)

    def score(self, X, y=None):
        return -float(np.mean((self.invariant_transform(X) - self._float(X)) ** 2))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class GaussianAsInvariant(ImageDenoiser):
    """A plain Gaussian filter sold as the invariant prediction (the centre weight stays)."""

    def invariant_transform(self, X):
        X = self._float(X)
        sigma = [0] + [1.0] * len(self._spatial_axes(X)) + [0] * (self.channel_axis is not None)
        return ndi.gaussian_filter(X, sigma)


class ReflectEdges(ImageDenoiser):
    """'reflect' repeats the edge pixel, so at the border the centre is its own neighbour."""

    mode = "reflect"


class ChannelLeak(ImageDenoiser):
    """Each channel is predicted from its neighbours and the pixel's *other* channels."""

    def invariant_transform(self, X):
        out = super().invariant_transform(X)
        X = self._float(X)
        return out + 0.1 * (X.sum(axis=-1, keepdims=True) - X)


class LeaksAtOnePixel(ImageDenoiser):
    """Correct everywhere but at one interior pixel."""

    def invariant_transform(self, X):
        out = super().invariant_transform(X)
        out[:, 4, 5] += 0.5 * self._float(X)[:, 4, 5]
        return out


class Nondeterministic(ImageDenoiser):
    def invariant_transform(self, X):
        noise = np.random.default_rng().normal(size=np.shape(X))
        return super().invariant_transform(X) + noise


class MutatesX(ImageDenoiser):
    def transform(self, X):
        X = np.asarray(X)
        X[:, 0] = 0  # a float64 array arrives as the caller's own
        return super().transform(X)


class MutatesXInFit(ImageDenoiser):
    def fit(self, X, y=None):
        super().fit(X)
        np.asarray(X)[...] -= np.asarray(X).mean()  # "centring" in place
        return self


class CountsCalls(ImageDenoiser):
    def transform(self, X):
        self.n_calls_ = getattr(self, "n_calls_", 0) + 1
        return super().transform(X)


class RescalesInPlace(ImageDenoiser):
    """Changes a fitted array's values (not the attribute) in ``score``."""

    def score(self, X, y=None):
        self.scale_ *= 1.0 + 1e-12
        return super().score(X)


class AdvancesItsRandomState(ImageDenoiser):
    def fit(self, X, y=None):
        super().fit(X)
        self.rng_ = np.random.RandomState(0)
        return self

    def invariant_transform(self, X):
        self.rng_.randint(10)
        return super().invariant_transform(X)


class History(list):
    """Stands in for skorch's History (a list of epochs)."""


class AppendsToHistory(ImageDenoiser):
    def fit(self, X, y=None):
        super().fit(X)
        self.history_ = History([{"epoch": 1}])
        return self

    def transform(self, X):
        self.history_.append({"epoch": 2})
        return super().transform(X)


class ReturnsItsInput(ImageDenoiser):
    def transform(self, X):
        return np.asarray(X)


class AlwaysFloat64(ImageDenoiser):
    def transform(self, X):
        return super().transform(X).astype(np.float64)


class Float32ForIntegers(ImageDenoiser):
    def _float(self, X):
        X = np.asarray(X)
        return X.astype(np.float32) if X.dtype.kind in "iu" else super()._float(X)


class TableDenoiser(TransformerMixin, BaseEstimator):
    """Predicts each column group by the row mean of the other groups (J-invariant)."""

    def __init__(self, leak=False):
        self.leak = leak

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        self.groups_ = [np.arange(0, 3), np.arange(3, X.shape[1])]
        return self

    def invariant_transform(self, X):
        X = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
        out = np.empty_like(X)
        for group in self.groups_:
            rest = np.setdiff1d(np.arange(X.shape[1]), group)
            source = X if self.leak else X[:, rest]  # leak: the row mean includes J
            out[:, group] = source.mean(axis=1, keepdims=True)
        return out

    def transform(self, X):
        return self.invariant_transform(X)


@pytest.fixture
def images():
    return np.random.default_rng(0).random((2, 9, 10))


# ------------------------------------------------------------------- J-invariance
def test_correct_image_denoiser_passes_and_reports_its_reach(images):
    assert check_j_invariance(ImageDenoiser(), images) > 0.1
    check_no_mutation(ImageDenoiser(), images)
    check_dtype_preserved(ImageDenoiser(), images)


def test_gaussian_filter_as_invariant_prediction_fails(images):
    with pytest.raises(AssertionError, match=r"not J-invariant at X\[0, 0, 0\]: changing "):
        check_j_invariance(GaussianAsInvariant(), images)


@pytest.mark.parametrize("shape", [(2, 11), (2, 9, 10), (1, 5, 6, 7)])
def test_reflect_edges_fail_at_a_corner(shape):
    X = np.random.default_rng(1).random(shape)
    check_j_invariance(ImageDenoiser(), X)  # mirror edges are fine
    corner = ", ".join(["0"] * len(shape))
    with pytest.raises(AssertionError, match=rf"X\[{corner}\]"):
        check_j_invariance(ReflectEdges(), X, n_probes=0)


def test_a_single_bad_pixel_is_found_by_the_probes_that_reach_it(images):
    bad = LeaksAtOnePixel().fit(images)
    check_j_invariance(bad, images, coordinates=[(0, 4, 4), (1, 5, 5)])
    with pytest.raises(AssertionError, match=r"X\[1, 4, 5\]"):
        check_j_invariance(bad, images, coordinates=[(0, 0, 0), (1, 4, 5)])


def test_channels_of_a_pixel_are_one_coordinate():
    X = np.random.default_rng(2).random((2, 8, 9, 3))
    check_j_invariance(ImageDenoiser(channel_axis=-1), X)
    with pytest.raises(AssertionError, match=r"X\[0, 0, 0, :\]"):
        check_j_invariance(ChannelLeak(channel_axis=-1), X)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_input_is_perturbed_within_its_range(dtype):
    info = np.iinfo(dtype)
    X = np.random.default_rng(3).integers(0, info.max, (2, 9, 10), endpoint=True, dtype=dtype)
    X[0, 0, 0] = info.max  # the probe must go down from the top
    assert check_j_invariance(ImageDenoiser(), X) > 0
    with pytest.raises(AssertionError, match=rf"X\[0, 0, 0\]: changing the input there "
                                             rf"from \[{info.max}\] to \[0\]"):
        check_j_invariance(GaussianAsInvariant(), X)


def test_float32_output_uses_a_float32_tolerance(images):
    X = images.astype(np.float32)
    check_j_invariance(JInvariantGaussian(sigma=2.0), X)
    with pytest.raises(AssertionError, match="not J-invariant"):
        check_j_invariance(GaussianAsInvariant(), X)


def test_nondeterministic_prediction_is_refused(images):
    with pytest.raises(AssertionError, match="not deterministic"):
        check_j_invariance(Nondeterministic(), images)


def test_an_unfitted_estimator_is_cloned_a_fitted_one_used(images):
    est = ImageDenoiser()
    check_j_invariance(est, images)
    assert not hasattr(est, "scale_")
    fitted = ImageDenoiser().fit(images)
    fitted.scale_ = np.array([2.0])  # used as it is, not refitted
    assert check_j_invariance(fitted, images) == pytest.approx(
        2 * check_j_invariance(est, images))


def test_a_2d_array_is_signals_for_an_image_estimator():
    X = np.random.default_rng(4).random((3, 12))
    check_j_invariance(ImageDenoiser(), X)
    with pytest.raises(AssertionError, match=r"X\[0, 0\]"):
        check_j_invariance(ReflectEdges(), X)


@pytest.mark.parametrize("sparse", [False, True])
def test_table_groups_are_probed_as_a_whole(sparse):
    X = np.random.default_rng(5).poisson(3.0, (20, 7)).astype(float)
    X = sp.csr_matrix(X) if sparse else X
    assert check_j_invariance(TableDenoiser(), X) > 0
    with pytest.raises(AssertionError, match=r"row 0, column group \[0, 1, 2\]"):
        check_j_invariance(TableDenoiser(leak=True), X)
    with pytest.raises(AssertionError, match=r"row 7, column group \[3, 4, 5, 6\]"):
        check_j_invariance(TableDenoiser(leak=True), X, coordinates=[(7, 5)])


def test_real_estimators_pass(images):
    counts = np.random.default_rng(6).poisson(4.0, (30, 9)).astype(float)
    check_denoiser(LowRankDenoiser(2, n_groups=3, random_state=0), sp.csr_matrix(counts))
    check_denoiser(DonutMedian(radius=1, channel_axis=-1),
                   np.random.default_rng(7).integers(0, 256, (2, 8, 9, 3), dtype=np.uint8))
    check_denoiser(JInvariantGaussian(), images.astype(np.float32),
                   outputs=["shrink", "ordinary", "invariant"])


# -------------------------------------------------------------------- no mutation
@pytest.mark.parametrize("broken, message", [
    (MutatesX, r"MutatesX.transform\(X\) modified the caller's X in place"),
    (MutatesXInFit, r"MutatesXInFit.fit\(X\) modified the caller's X in place"),
    (CountsCalls, r"CountsCalls.transform\(X\) changed the fitted estimator: gained "
                  r"\['n_calls_'\]"),
    (RescalesInPlace, r"RescalesInPlace.score\(X\) changed the fitted estimator: scale_ "
                      r"changed its values"),
    (AdvancesItsRandomState, r"changed the fitted estimator: rng_ \(a random state\) was "
                             r"advanced"),
    (AppendsToHistory, r"history_ changed from history of length 1 to 2"),
    (ReturnsItsInput, r"shares memory with X"),
])
def test_no_mutation_catches(broken, message, images):
    with pytest.raises(AssertionError, match=message):
        check_no_mutation(broken(), images)


def test_no_mutation_compares_sparse_input_and_torch_weights():
    X = sp.csr_matrix(np.random.default_rng(8).poisson(2.0, (10, 6)).astype(float))

    class MutatesSparse(TableDenoiser):
        def transform(self, X):
            X.data[:] = 0
            return super().transform(X)

    check_no_mutation(TableDenoiser(), X)
    with pytest.raises(AssertionError, match="modified the caller's X"):
        check_no_mutation(MutatesSparse(), X)

    torch = pytest.importorskip("torch")

    class TrainsInTransform(TableDenoiser):
        def fit(self, X, y=None):
            super().fit(X)
            self.module_ = torch.nn.Linear(2, 2)
            return self

        def transform(self, X):
            with torch.no_grad():
                self.module_.weight += 1.0
            return super().transform(X)

    with pytest.raises(AssertionError, match=r"module_ \(a torch module\) changed its "
                                             r"weights \(weight\)"):
        check_no_mutation(TrainsInTransform(), X)


# ------------------------------------------------------------------------- dtypes
def test_dtype_checks_catch_wrong_output_dtypes(images):
    with pytest.raises(AssertionError, match=r"AlwaysFloat64.transform returned float64 "
                                             r"for float32 input; expected float32"):
        check_dtype_preserved(AlwaysFloat64(), images)
    X8 = (images * 255).astype(np.uint8)
    check_dtype_preserved(ImageDenoiser(), X8)
    with pytest.raises(AssertionError, match="returned float32 for uint8 input; expected "
                                             "float64"):
        check_dtype_preserved(Float32ForIntegers(), X8)


def test_dtype_check_follows_the_preserves_dtype_tag():
    X = np.random.default_rng(9).poisson(3.0, (20, 7)).astype(np.float32)
    check_dtype_preserved(TableDenoiser(), X)  # the default tag: float64 out

    class Float32Table(TableDenoiser):
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
            return tags

    with pytest.raises(AssertionError, match="returned float64 for float32 input"):
        check_dtype_preserved(Float32Table(), X)


def test_every_output_is_checked(images):
    class WrongWhenOrdinary(ImageDenoiser):
        def __init__(self, channel_axis=None, output="invariant"):
            super().__init__(channel_axis)
            self.output = output

        def transform(self, X):
            out = super().transform(X)
            return out.astype(np.float64) if self.output == "ordinary" else out

    check_dtype_preserved(WrongWhenOrdinary(), images)  # only the current output
    with pytest.raises(AssertionError, match=r"transform \(output='ordinary'\) returned "
                                             r"float64 for float32"):
        check_dtype_preserved(WrongWhenOrdinary(), images, outputs=["invariant", "ordinary"])


def test_a_fitted_object_need_not_be_a_base_estimator(images):
    class Plain:
        def fit(self, X, y=None):
            self.fitted_ = True
            return self

        def invariant_transform(self, X):
            return _donut_mean(np.asarray(X, dtype=float), "reflect", (1, 2))

    with pytest.raises(AssertionError, match=r"Plain.invariant_transform is not J-invariant"):
        check_j_invariance(Plain().fit(images), images)
