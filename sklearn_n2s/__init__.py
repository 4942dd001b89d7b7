"""Self-supervised denoising (Noise2Self, J-invariance) as scikit-learn estimators.

Every denoiser has ``fit``/``transform``, a J-invariant ``invariant_transform`` and a
``score`` that is minus the self-supervised loss, so a plain
:class:`~sklearn.model_selection.GridSearchCV` chooses hyperparameters without clean data.

``N2SNet`` needs the ``torch`` extra and is imported on first use, so that
``import sklearn_n2s`` works without torch.
"""

from .column_masking import ColumnMaskingDenoiser
from .gaussian import JInvariantGaussian
from .knn import KNNSmoother
from .lowrank import LowRankDenoiser, LowRankDenoiserCV
from .mcv import MolecularCrossValidationScorer, molecular_split
from .median import DonutMedian
from .noise import estimate_noise_variance
from .normalize import LibrarySizeNormalizer, NormalizedDenoiser
from .scoring import FullSplit, SelfSupervisedScorer, self_supervised_loss
from .wavelet import JInvariantWavelet

__version__ = "0.1.0"

__all__ = [
    "ColumnMaskingDenoiser",
    "DonutMedian",
    "FullSplit",
    "JInvariantGaussian",
    "JInvariantWavelet",
    "KNNSmoother",
    "LibrarySizeNormalizer",
    "LowRankDenoiser",
    "LowRankDenoiserCV",
    "MolecularCrossValidationScorer",
    "N2SNet",
    "NormalizedDenoiser",
    "SelfSupervisedScorer",
    "estimate_noise_variance",
    "molecular_split",
    "self_supervised_loss",
]


def __getattr__(name):
    # The neural estimator pulls in torch and skorch: load it only when asked for.
    if name == "N2SNet":
        from .net import N2SNet

        return N2SNet
    raise AttributeError(f"module 'sklearn_n2s' has no attribute {name!r}")
