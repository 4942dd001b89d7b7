"""Images larger than memory: dask arrays denoised chunk by chunk, and calibration on a
representative subset of chunks.

Every image denoiser's ``transform`` takes a dask array and returns a lazy one; the
exactness notes are in :mod:`sklearn_n2s.image._blockwise`.
"""

from ..image._blockwise import (
    blockwise_transform,
    chunk_noise_variance,
    plan_chunks,
    receptive_radius,
)
from ._calibration import calibrate_blockwise, representative_patches, stratified_choice

__all__ = [
    "blockwise_transform",
    "calibrate_blockwise",
    "chunk_noise_variance",
    "plan_chunks",
    "receptive_radius",
    "representative_patches",
    "stratified_choice",
]
