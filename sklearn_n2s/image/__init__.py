"""Image denoisers: the image contract and the classical J-invariant filters.

Every estimator here takes a stack ``(n_samples, *spatial[, n_channels])`` with one to
three spatial axes, and a dask array as well (chunk by chunk, see
:mod:`sklearn_n2s.blockwise`). With ``spatial_ndim`` set they also take one image
``(*spatial[, n_channels])``; without it a 2-D array is n one-dimensional signals, and
``fit`` says so with a :class:`SpatialAxesWarning`.
"""

from ._base import BaseImageDenoiser, JInvariantDenoiserMixin, SpatialAxesWarning
from ._bilateral import JInvariantBilateral
from ._bm3d import JInvariantBM3D
from ._gaussian import JInvariantGaussian
from ._generic import JInvariantDenoiser, MaskedImageCache
from ._median import DonutMedian
from ._nlmeans import JInvariantNLMeans
from ._tv import JInvariantTV
from ._wavelet import JInvariantWavelet, WaveletDecompositionCache

__all__ = [
    "BaseImageDenoiser",
    "DonutMedian",
    "JInvariantBM3D",
    "JInvariantBilateral",
    "JInvariantDenoiser",
    "JInvariantDenoiserMixin",
    "JInvariantGaussian",
    "JInvariantNLMeans",
    "JInvariantTV",
    "JInvariantWavelet",
    "MaskedImageCache",
    "SpatialAxesWarning",
    "WaveletDecompositionCache",
]
