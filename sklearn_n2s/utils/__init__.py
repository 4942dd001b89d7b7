"""Utilities at the bottom of the house: validation, losses, progress, noise estimates,
and :mod:`~sklearn_n2s.utils.estimator_checks` (the checks every denoiser passes).

Nothing here imports another part of sklearn_n2s.
"""

from ._correlation import NoiseCorrelation, estimate_noise_correlation
from ._noise import estimate_noise_variance

__all__ = ["NoiseCorrelation", "estimate_noise_correlation", "estimate_noise_variance"]
