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
    LowRankDenoiserCV,
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
# N2SNet denoises 2-D images (n, H, W) with H, W >= 4 and rejects the 2-D tables that
# most checks feed with a ValueError that says so; skorch itself breaks two checks.
_TABLE = "feeds a 2-D (n_samples, n_features) table; N2SNet needs (n, H, W) images"
EXPECTED_FAILED_CHECKS["N2SNet"] = {
    "check_no_attributes_set_in_init": (
        "skorch.NeuralNet.__init__ sets history_, initialized_ and virtual_params_"),
    "check_set_params": (
        "skorch's get_params exposes its private _params_to_validate set; setting it "
        "to a number breaks skorch.NeuralNet.set_params"),
    **{name: _TABLE for name in (
        "check_dtype_object", "check_estimators_dtypes", "check_fit_score_takes_y",
        "check_estimators_fit_returns_self", "check_pipeline_consistency",
        "check_estimators_overwrite_params", "check_estimators_pickle",
        "check_f_contiguous_array_estimator", "check_transformer_data_not_an_array",
        "check_transformer_general", "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance", "check_methods_subset_invariance",
        "check_fit2d_1sample", "check_dict_unchanged", "check_dont_overwrite_parameters",
        "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
        "check_positive_only_tag_during_fit", "check_readonly_memmap_input",
        "check_n_features_in_after_fitting", "check_estimators_nan_inf",
        "check_fit2d_predict1d",
    )},
}

ESTIMATORS = [
    DonutMedian(radius=1),
    JInvariantGaussian(),
    JInvariantWavelet(),
    LowRankDenoiser(n_components=1, n_groups=2),
    LowRankDenoiserCV(n_components=2, n_groups=2),
    KNNSmoother(n_neighbors=3, n_groups=2),
    ColumnMaskingDenoiser(PCA(1), n_groups=2),
    ColumnMaskingDenoiser(TruncatedSVD(1), n_groups=2, fill="zero"),
    LibrarySizeNormalizer(empty_rows="zero"),
    NormalizedDenoiser(LowRankDenoiser(1, n_groups=2), empty_rows="zero"),
    NormalizedDenoiser(LowRankDenoiser(1, n_groups=2), empty_rows="zero", output="counts"),
]

try:  # the neural extra is optional
    from sklearn_n2s.neural._net import N2SNet
except ImportError:
    pass
else:
    ESTIMATORS.append(N2SNet(module__width=2, max_epochs=1, batch_size=8, random_state=0))

def _expected(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})

@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

def test_every_public_estimator_is_checked():
    import sklearn_n2s

    skipped = {"FullSplit"}  # a CV splitter, not an estimator
    try:
        import torch  # noqa: F401
    except ImportError:
        skipped.add("N2SNet")
    public = {name for name in sklearn_n2s.__all__
              if name not in skipped
              and isinstance(getattr(sklearn_n2s, name), type)
              and hasattr(getattr(sklearn_n2s, name), "fit")}
    checked = {type(e).__name__ for e in ESTIMATORS}
    assert public <= checked, f"add {sorted(public - checked)} to ESTIMATORS"
