"""scikit-learn's common estimator checks, and sklearn_n2s's own, on every public estimator.

Expected failures of scikit-learn's checks are listed once, here, each with its reason.
sklearn_n2s's own checks (:mod:`sklearn_n2s.utils.estimator_checks`: J-invariance probes,
no mutation, dtypes kept) have no expected failures.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from sklearn_n2s import (
    AutoDenoiser,
    ColumnMaskingDenoiser,
    DiffusionSmoother,
    DonutMedian,
    JInvariantBilateral,
    JInvariantDenoiser,
    JInvariantGaussian,
    JInvariantNLMeans,
    JInvariantTV,
    JInvariantWavelet,
    KNNSmoother,
    LibrarySizeNormalizer,
    LowRankDenoiser,
    LowRankDenoiserCV,
    NormalizedDenoiser,
)
from sklearn_n2s.utils.estimator_checks import (
    check_dtype_preserved,
    check_j_invariance,
    check_no_mutation,
)

# An image filter applies to images of any size: a denoiser calibrated on one image is
# meant to denoise others. Refusing a different number of "features" (pixels) would
# break that, so these two checks cannot pass for the image denoisers.
_ANY_IMAGE_SIZE = {
    "check_n_features_in_after_fitting": (
        "image filters accept images of any size after fit; only the number of "
        "spatial axes must match"
    ),
    "check_transformer_general": (
        "its last step expects an error for a different number of features; image "
        "filters accept any image size"
    ),
}

# NL-means and the bilateral filter are 2-D (and 3-D) filters only: the checks' 2-D
# arrays are one image to them (spatial_ndim=2), not rows of samples.
_ONE_IMAGE = "a 2-D filter (spatial_ndim=2): the checks' 2-D array is one image, not rows"
_TWO_D_ONLY = {**_ANY_IMAGE_SIZE, **{name: _ONE_IMAGE for name in (
    "check_estimators_empty_data_messages", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_fit2d_1sample", "check_fit2d_1feature",
    "check_n_features_in", "check_fit2d_predict1d")}}

EXPECTED_FAILED_CHECKS = {
    "DonutMedian": _ANY_IMAGE_SIZE,
    "JInvariantGaussian": _ANY_IMAGE_SIZE,
    "JInvariantWavelet": _ANY_IMAGE_SIZE,
    "JInvariantDenoiser": _ANY_IMAGE_SIZE,
    "JInvariantTV": _ANY_IMAGE_SIZE,
    "JInvariantNLMeans": _TWO_D_ONLY,
    "AutoDenoiser": {"check_n_features_in_after_fitting":
                     _ANY_IMAGE_SIZE["check_n_features_in_after_fitting"]},
    "JInvariantBilateral": _TWO_D_ONLY,
    "KNNSmoother": {
        "check_methods_subset_invariance": (
            "transductive: neighbours are searched among the rows given, so a row's "
            "output depends on the other rows of the batch"
        ),
    },
    "DiffusionSmoother": {
        "check_methods_subset_invariance": (
            "transductive: the graph is built on the rows given, so a row's output "
            "depends on the other rows of the batch"
        ),
    },
}

# Table estimators: n_groups=2 because the checks' data has few features (the default
# of 10 groups would be more groups than features); empty_rows="zero" because the
# checks' random data has all-zero rows, which the default refuses by design.
# N2SNet reads a 2-D array as n one-dimensional signals and needs at least 4 pixels per
# signal: the checks' tables of 2 or 3 features are refused with a ValueError that says
# so; skorch itself breaks two checks.
_TABLE = ("feeds a 2-D table of 2-3 features, read as 1-D signals shorter than the 4 "
          "pixels N2SNet needs")
EXPECTED_FAILED_CHECKS["N2SNet"] = {
    "check_no_attributes_set_in_init": (
        "skorch.NeuralNet.__init__ sets history_, initialized_ and virtual_params_"),
    "check_set_params": (
        "skorch's get_params exposes its private _params_to_validate set; setting it "
        "to a number breaks skorch.NeuralNet.set_params"),
    **{name: _TABLE for name in (
        "check_fit_score_takes_y",
        "check_estimators_fit_returns_self", "check_pipeline_consistency",
        "check_estimators_overwrite_params", "check_estimators_pickle",
        "check_f_contiguous_array_estimator", "check_transformer_data_not_an_array",
        "check_transformer_general", "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance", "check_methods_subset_invariance",
        "check_dict_unchanged", "check_dont_overwrite_parameters",
        "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting", "check_estimators_nan_inf",
        "check_fit2d_predict1d",
    )},
}

ESTIMATORS = [
    DonutMedian(radius=1),
    JInvariantGaussian(),
    JInvariantWavelet(),
    JInvariantDenoiser(),
    JInvariantTV(),
    JInvariantNLMeans(h=0.5, patch_size=3, patch_distance=2, spatial_ndim=2),
    JInvariantBilateral(spatial_ndim=2),
    AutoDenoiser(families=["DonutMedian", "JInvariantGaussian"]),
    LowRankDenoiser(n_components=1, n_groups=2),
    LowRankDenoiserCV(n_components=2, n_groups=2),
    LowRankDenoiserCV(n_components=(1, 2), n_groups=2, n_jobs=2),
    KNNSmoother(n_neighbors=3, n_groups=2),
    KNNSmoother(n_neighbors=3, n_groups=2, search="shared", n_components=2),
    DiffusionSmoother(n_neighbors=3, n_groups=2),
    DiffusionSmoother(t=2, n_neighbors=3, n_groups=2, n_components=1, n_folds=3),
    ColumnMaskingDenoiser(PCA(1), n_groups=2),
    ColumnMaskingDenoiser(TruncatedSVD(1), n_groups=2, fill="zero"),
    LibrarySizeNormalizer(empty_rows="zero"),
    NormalizedDenoiser(LowRankDenoiser(1, n_groups=2), empty_rows="zero"),
    NormalizedDenoiser(LowRankDenoiser(1, n_groups=2), empty_rows="zero", output="counts"),
]

try:  # the neural extra is optional
    from sklearn_n2s.neural._net import N2SNet
except ImportError:
    N2SNet = None
else:
    from sklearn_n2s.neural import (
        BabyUnet,
        BlindSpotUnet,
        DilatedBlindSpotNet,
        ShuffledBlindSpotUnet,
    )

    ESTIMATORS.append(N2SNet(module__width=2, max_epochs=1, batch_size=8, random_state=0))
    ESTIMATORS += [N2SNet(module=m, module__width=2, module__depth=1, max_epochs=1,
                          batch_size=8, random_state=0)
                   for m in (BlindSpotUnet, DilatedBlindSpotNet, ShuffledBlindSpotUnet)]


def _expected(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# scikit-learn does not yield check_param_validation from parametrize_with_checks: run it
# here, for every estimator, with no expected failure.
def test_param_validation_is_never_an_expected_failure():
    assert not [name for name, checks in EXPECTED_FAILED_CHECKS.items()
                if "check_param_validation" in checks]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)


# ------------------------------------------------ sklearn_n2s's own denoiser checks
_RNG = np.random.default_rng(0)
_IMAGES = {
    "1d": (_RNG.random((3, 40)), None),
    "2d": (_RNG.random((2, 12, 13)), None),
    "3d": (_RNG.random((1, 7, 8, 9)), None),
    "rgb": (_RNG.random((2, 10, 11, 3)), -1),
    "uint8": (_RNG.integers(0, 256, (2, 12, 13), dtype=np.uint8), None),
    "uint16-3d": (_RNG.integers(0, 2**16, (1, 7, 8, 9), dtype=np.uint16), None),
}
# Counts without an empty row (NormalizedDenoiser refuses those by default).
_COUNTS = _RNG.poisson(3.0, (40, 12)) + (np.arange(12) == 0)
_TABLES = {"dense-int": _COUNTS, "csr": sp.csr_matrix(_COUNTS.astype(np.float64))}

IMAGE_OUTPUTS = ["shrink", "ordinary", "invariant", "auto"]
DENOISER_CASES = []  # (id, estimator, X, outputs)
for _make in (lambda **kw: DonutMedian(radius=1, **kw),
              lambda **kw: JInvariantGaussian(sigma=1.5, **kw),
              lambda **kw: JInvariantWavelet(**kw)):
    for _kind, (_X, _axis) in _IMAGES.items():
        _est = _make(channel_axis=_axis)
        DENOISER_CASES.append((f"{type(_est).__name__}-{_kind}", _est, _X, IMAGE_OUTPUTS))
# Issue 12's families: NL-means is 2-D/3-D, the bilateral filter 2-D only.
for _make, _kinds in [
    (lambda **kw: JInvariantDenoiser(**kw), _IMAGES),
    (lambda **kw: JInvariantTV(weight=0.2, **kw), _IMAGES),
    (lambda **kw: JInvariantNLMeans(h=0.3, patch_size=3, patch_distance=2, **kw),
     [k for k in _IMAGES if k != "1d"]),
    (lambda **kw: JInvariantBilateral(sigma_color=0.3, **kw), ["2d", "rgb", "uint8"]),
]:
    for _kind in _kinds:
        _X, _axis = _IMAGES[_kind]
        _est = _make(channel_axis=_axis)
        DENOISER_CASES.append((f"{type(_est).__name__}-{_kind}", _est, _X, IMAGE_OUTPUTS))
for _kind, (_X, _axis) in _IMAGES.items():
    _est = AutoDenoiser(families=["DonutMedian", "JInvariantGaussian"], channel_axis=_axis)
    DENOISER_CASES.append((f"AutoDenoiser-{_kind}", _est, _X, IMAGE_OUTPUTS))
# JInvariantBM3D (optional extra, non-commercial licence) is left out: every check here
# runs hundreds of BM3D filterings (seconds each); tests/image/test_bm3d.py probes its
# J-invariance, units and parameters on its own.
# Structured blind spots (correlated noise, issue 13): the probes change the whole blind
# spot of a pixel, and the pixel's prediction must not move.
for _id, _est, _kind in [
    ("DonutMedian-line", DonutMedian(radius=2, blind_spot=(0, 1)), "uint8"),
    ("JInvariantWavelet-box", JInvariantWavelet(blind_spot=1), "2d"),
    ("JInvariantTV-rows", JInvariantTV(weight=0.2, blind_spot=(None, 0)), "2d"),
    ("DonutMedian-3d-line", DonutMedian(radius=2, blind_spot=(1, 0, 0)), "uint16-3d"),
]:
    DENOISER_CASES.append((_id, _est, _IMAGES[_kind][0], IMAGE_OUTPUTS))
_NORMALIZED = ["normalized", "counts"]
for _id, _est, _outputs in [
    ("ColumnMasking-PCA", ColumnMaskingDenoiser(PCA(2), n_groups=3, random_state=0), None),
    ("ColumnMasking-SVD", ColumnMaskingDenoiser(TruncatedSVD(2), n_groups=3, fill="zero",
                                                 random_state=0), None),
    ("KNNSmoother", KNNSmoother(3, n_groups=3, random_state=0), None),
    ("DiffusionSmoother", DiffusionSmoother(n_neighbors=3, n_groups=3, random_state=0), None),
    ("DiffusionSmoother-pca", DiffusionSmoother(2, n_neighbors=3, n_groups=3, n_components=2,
                                                random_state=0), None),
    ("KNNSmoother-shared-pca", KNNSmoother(3, n_groups=3, search="shared", n_components=2,
                                           random_state=0), None),
    ("LowRankDenoiser", LowRankDenoiser(2, n_groups=3, random_state=0), None),
    ("LowRankDenoiserCV", LowRankDenoiserCV((1, 2, 4), n_groups=3, random_state=0), None),
    ("Normalized-LowRank", NormalizedDenoiser(LowRankDenoiser(2, n_groups=3, random_state=0)),
     _NORMALIZED),
    ("Normalized-KNN-counts", NormalizedDenoiser(KNNSmoother(3, n_groups=3, random_state=0),
                                                 output="counts"), _NORMALIZED),
    ("LibrarySizeNormalizer", LibrarySizeNormalizer(), None),  # no J-invariance to probe
]:
    for _kind, _X in _TABLES.items():
        DENOISER_CASES.append((f"{_id}-{_kind}", _est, _X, _outputs))
if N2SNet is not None:
    _TINY = {"module__width": 2, "max_epochs": 1, "batch_size": 8, "random_state": 0}
    DENOISER_CASES += [
        ("N2SNet-float32", N2SNet(**_TINY), _RNG.random((4, 8, 8)).astype(np.float32), None),
        ("N2SNet-blindspot-uint16-3d", N2SNet(BlindSpotUnet, **_TINY, module__depth=1),
         _RNG.integers(0, 2**16, (2, 6, 7, 8), dtype=np.uint16), None),
        ("N2SNet-dbsn-1d", N2SNet(DilatedBlindSpotNet, **_TINY, spatial_ndim=1),
         _RNG.random((4, 30)), None),
        ("N2SNet-shuffled-uint16-3d", N2SNet(ShuffledBlindSpotUnet, **_TINY, module__depth=0),
         _RNG.integers(0, 2**16, (2, 6, 7, 8), dtype=np.uint16), None),
        # module='auto' takes D-BSN here; at width 2, barely trained, it moves a uint8
        # output by under half a grey level, which rounding erases: width 8
        ("N2SNet-posterior-tta-uint8", N2SNet(**{**_TINY, "module__width": 8},
                                              output="posterior",
                                              test_time_augmentation=True),
         _RNG.integers(0, 256, (4, 8, 8), dtype=np.uint8), None),
        ("N2SNet-babyunet-posterior-uint8", N2SNet(BabyUnet, **_TINY, output="posterior",
                                                   test_time_augmentation=True),
         _RNG.integers(0, 256, (4, 8, 8), dtype=np.uint8), None),
        ("N2SNet-line-uint16", N2SNet(**_TINY, blind_spot=(0, 2)),
         _RNG.integers(0, 2**16, (4, 8, 12), dtype=np.uint16), None),
        ("N2SNet-rgb-uint8", N2SNet(**{**_TINY, "module__width": 8}, channel_axis=-1),
         _RNG.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), None),
    ]


@pytest.mark.parametrize("estimator, X", [pytest.param(e, X, id=i)
                                          for i, e, X, _ in DENOISER_CASES])
def test_j_invariance(estimator, X):
    if not hasattr(estimator, "invariant_transform"):
        pytest.skip(f"{type(estimator).__name__} is not a denoiser")
    n_probes = 2 if type(estimator).__name__ == "N2SNet" else 8  # 16 passes per probe
    # max_change > 0: the probes reached the estimator
    assert check_j_invariance(estimator, X, n_probes=n_probes) > 0


@pytest.mark.parametrize("estimator, X", [pytest.param(e, X, id=i)
                                          for i, e, X, _ in DENOISER_CASES])
def test_no_mutation(estimator, X):
    check_no_mutation(estimator, X)


@pytest.mark.parametrize("estimator, X, outputs", [pytest.param(e, X, o, id=i)
                                                   for i, e, X, o in DENOISER_CASES])
def test_dtype_preserved(estimator, X, outputs):
    check_dtype_preserved(estimator, X, outputs=outputs)


def test_every_public_estimator_is_checked():
    import sklearn_n2s

    skipped = {"FullSplit"}  # a CV splitter, not an estimator
    if N2SNet is None:
        skipped.add("N2SNet")
    skipped.add("JInvariantBM3D")  # see above DENOISER_CASES
    public = {name for name in sklearn_n2s.__all__
              if name not in skipped
              and isinstance(getattr(sklearn_n2s, name), type)
              and hasattr(getattr(sklearn_n2s, name), "fit")}
    checked = {type(e).__name__ for e in ESTIMATORS}
    assert public <= checked, f"add {sorted(public - checked)} to ESTIMATORS"
    own = {type(e).__name__ for _, e, _, _ in DENOISER_CASES}
    assert public <= own, f"add {sorted(public - own)} to DENOISER_CASES"
