"""Table denoisers (cells x genes): partitions over columns, low rank, kNN,
library-size normalisation and the molecular split.

Rows are samples (what cross-validation splits); the J-invariant prediction of a group
of columns is computed from the other columns only. Dense arrays and CSR/CSC matrices.
"""

from ._column_masking import ColumnInvariantMixin, ColumnMaskingDenoiser
from ._denoise import LARGE_TABLE_CELLS, denoise
from ._diffusion import DiffusionSmoother, diffusion_path_losses
from ._knn import KNNSmoother, knn_path_losses
from ._lowrank import LowRankDenoiser, LowRankDenoiserCV
from ._mcv import (
    convert_sqrt_expectation,
    expected_sqrt,
    mean_from_expected_sqrt,
    molecular_split,
    overlap_correction,
    poisson_loss,
)
from ._normalize import LibrarySizeNormalizer, NormalizedDenoiser

__all__ = [
    "LARGE_TABLE_CELLS",
    "ColumnInvariantMixin",
    "ColumnMaskingDenoiser",
    "DiffusionSmoother",
    "KNNSmoother",
    "LibrarySizeNormalizer",
    "LowRankDenoiser",
    "LowRankDenoiserCV",
    "NormalizedDenoiser",
    "convert_sqrt_expectation",
    "denoise",
    "diffusion_path_losses",
    "expected_sqrt",
    "knn_path_losses",
    "mean_from_expected_sqrt",
    "molecular_split",
    "overlap_correction",
    "poisson_loss",
]
