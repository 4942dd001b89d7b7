"""Self-supervised denoising (Noise2Self, J-invariance) as scikit-learn estimators.

Every denoiser has ``fit``/``transform``, a J-invariant ``invariant_transform`` and a
``score`` that is minus the self-supervised loss, so a plain
:class:`~sklearn.model_selection.GridSearchCV` chooses hyperparameters without clean data.
"""

from .noise import estimate_noise_variance
from .gaussian import JInvariantGaussian
from .median import DonutMedian
from .scoring import FullSplit, SelfSupervisedScorer, self_supervised_loss
from .wavelet import JInvariantWavelet

__version__ = "0.1.0"

__all__ = [
    "DonutMedian",
    "FullSplit",
    "JInvariantGaussian",
    "JInvariantWavelet",
    "SelfSupervisedScorer",
    "estimate_noise_variance",
    "self_supervised_loss",
]
