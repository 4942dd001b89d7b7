"""Neural Noise2Self (needs the ``torch`` extra): torch modules, torch masking and fills,
the batch loader, and :class:`N2SNet`, a skorch net trained with the Noise2Self loss.

Modules, from the bottom up:

- ``_babyunet``: :class:`BabyUnet`, the small U-Net of the reference code;
- ``_masking``: masks and fills of (N, C, H, W) batches, equal to :mod:`sklearn_n2s.masking`;
- ``_data``: :class:`ImageBatchLoader` and the array <-> tensor conversions;
- ``_inference``: tiled forward passes and the exact J-invariant output;
- ``_callbacks``: the progress bar, the warm-up + cosine learning-rate schedule and the
  guard against non-finite losses;
- ``_net``: :class:`N2SNet`.
"""

from ._babyunet import BabyUnet
from ._callbacks import EpochProgressBar, NonFiniteGuard, WarmupCosineLR, warmup_cosine_factor
from ._data import ImageBatchLoader
from ._inference import TILE_MARGIN, invariant_forward
from ._masking import fill_masked_torch, grid_batch_mask, mask_batch, random_batch_mask
from ._net import N2SNet

__all__ = [
    "TILE_MARGIN",
    "BabyUnet",
    "EpochProgressBar",
    "ImageBatchLoader",
    "N2SNet",
    "NonFiniteGuard",
    "WarmupCosineLR",
    "fill_masked_torch",
    "grid_batch_mask",
    "invariant_forward",
    "mask_batch",
    "random_batch_mask",
    "warmup_cosine_factor",
]
