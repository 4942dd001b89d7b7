"""Self-supervised denoising (Noise2Self, J-invariance) as scikit-learn estimators.

The families live in subpackages (:mod:`~sklearn_n2s.image`, :mod:`~sklearn_n2s.table`,
:mod:`~sklearn_n2s.neural`), the scorers in :mod:`~sklearn_n2s.model_selection`; the
public names are re-exported here.

Every denoiser has ``fit``/``transform``, a J-invariant ``invariant_transform`` and a
``score`` that is minus the self-supervised loss, so a plain
:class:`~sklearn.model_selection.GridSearchCV` chooses hyperparameters without clean data.

``N2SNet`` needs the ``torch`` extra and is imported on first use, so that
``import sklearn_n2s`` works without torch.
"""

from .image import (
    DonutMedian,
    JInvariantBilateral,
    JInvariantBM3D,
    JInvariantDenoiser,
    JInvariantGaussian,
    JInvariantNLMeans,
    JInvariantTV,
    JInvariantWavelet,
    MaskedImageCache,
    WaveletDecompositionCache,
)
from .model_selection import (
    AutoDenoiser,
    EstimatedRiskScorer,
    FullSplit,
    MolecularCrossValidationScorer,
    SelfSupervisedScorer,
    self_supervised_loss,
)
from .table import (
    ColumnMaskingDenoiser,
    DiffusionSmoother,
    KNNSmoother,
    LibrarySizeNormalizer,
    LowRankDenoiser,
    LowRankDenoiserCV,
    NormalizedDenoiser,
    molecular_split,
)
from .utils import estimate_noise_correlation, estimate_noise_variance

__version__ = "0.1.0"

__all__ = [
    "AutoDenoiser",
    "ColumnMaskingDenoiser",
    "DiffusionSmoother",
    "DonutMedian",
    "EstimatedRiskScorer",
    "FullSplit",
    "JInvariantBM3D",
    "JInvariantBilateral",
    "JInvariantDenoiser",
    "JInvariantGaussian",
    "JInvariantNLMeans",
    "JInvariantTV",
    "JInvariantWavelet",
    "KNNSmoother",
    "LibrarySizeNormalizer",
    "LowRankDenoiser",
    "LowRankDenoiserCV",
    "MaskedImageCache",
    "MolecularCrossValidationScorer",
    "N2SNet",
    "NormalizedDenoiser",
    "SelfSupervisedScorer",
    "WaveletDecompositionCache",
    "estimate_noise_correlation",
    "estimate_noise_variance",
    "molecular_split",
    "self_supervised_loss",
]


def __getattr__(name):
    # The neural estimator pulls in torch and skorch: load it only when asked for.
    if name == "N2SNet":
        from .neural import N2SNet

        return N2SNet
    raise AttributeError(f"module 'sklearn_n2s' has no attribute {name!r}")
