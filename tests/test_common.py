"""scikit-learn's common estimator checks on every public estimator.

Expected failures are listed once, here, each with its reason.
"""

from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_n2s import (
    ColumnMaskingDenoiser,
    DonutMedian,
    JInvariantGaussian,
    JInvariantWavelet,
    KNNSmoother,
    LibrarySizeNormalizer,
    LowRankDenoiser,
    NormalizedDenoiser,
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

EXPECTED_FAILED_CHECKS = {
    "DonutMedian": _ANY_IMAGE_SIZE,
    "JInvariantGaussian": _ANY_IMAGE_SIZE,
    "JInvariantWavelet": _ANY_IMAGE_SIZE,
    "KNNSmoother": {
        "check_methods_subset_invariance": (
            "transductive: neighbours are searched among the rows given, so a row's "
            "output depends on the other rows of the batch"
        ),
    },
}

# Table estimators: n_groups=2 because the checks' data has few features (the default
# of 10 groups would be more groups than features); empty_rows="zero" because the
# checks' random data has all-zero rows, which the default refuses by design.
ESTIMATORS = [
    DonutMedian(radius=1),
    JInvariantGaussian(),
    JInvariantWavelet(),
    LowRankDenoiser(n_components=1, n_groups=2),
    KNNSmoother(n_neighbors=3, n_groups=2),
    ColumnMaskingDenoiser(PCA(1), n_groups=2),
    ColumnMaskingDenoiser(TruncatedSVD(1), n_groups=2, fill="zero"),
    LibrarySizeNormalizer(empty_rows="zero"),
    NormalizedDenoiser(LowRankDenoiser(1, n_groups=2), empty_rows="zero"),
    NormalizedDenoiser(LowRankDenoiser(1, n_groups=2), empty_rows="zero", output="counts"),
]

def _expected(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})

@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

def test_every_public_estimator_is_checked():
    import sklearn_n2s

    skipped = {"FullSplit", "N2SNet"}  # a CV splitter; the net is checked in test_net.py
    public = {name for name in sklearn_n2s.__all__
              if name not in skipped
              and isinstance(getattr(sklearn_n2s, name), type)
              and hasattr(getattr(sklearn_n2s, name), "fit")}
    checked = {type(e).__name__ for e in ESTIMATORS}
    assert public <= checked, f"add {sorted(public - checked)} to ESTIMATORS"
