"""Image denoisers: the image contract and the classical J-invariant filters.

Every estimator here takes a stack ``(n_samples, *spatial[, n_channels])`` with one to
three spatial axes, and a dask array as well (chunk by chunk, see
:mod:`sklearn_n2s.blockwise`).
"""

from ._base import BaseImageDenoiser, JInvariantDenoiserMixin
from ._gaussian import JInvariantGaussian
from ._median import DonutMedian
from ._wavelet import JInvariantWavelet, WaveletDecompositionCache

__all__ = [
    "BaseImageDenoiser",
    "DonutMedian",
    "JInvariantDenoiserMixin",
    "JInvariantGaussian",
    "JInvariantWavelet",
    "WaveletDecompositionCache",
]
