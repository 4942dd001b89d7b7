"""Neural Noise2Self (needs the ``torch`` extra): torch modules, torch masking and fills,
the batch loader, and :class:`N2SNet`, a skorch net trained with the Noise2Self loss.

Modules, from the bottom up:

- ``_babyunet``: :class:`BabyUnet`, the small U-Net of the reference code;
- ``_blindspot``: :class:`BlindSpotUnet` and :class:`DilatedBlindSpotNet`, one-pass
  networks whose output at a pixel never sees that pixel (1-D, 2-D, 3-D);
- ``_shuffled``: :class:`ShuffledBlindSpotUnet`, a one-pass blind-spot net with a wide
  field (U-Nets on pixel-shuffled centre-masked features);
- ``_masking``: masks and fills of (N, C, *spatial) batches, equal to :mod:`sklearn_n2s.masking`;
- ``_data``: :class:`ImageBatchLoader`, :class:`PatchBatchLoader` (random patches, flips,
  rotations) and the array <-> tensor conversions;
- ``_inference``: tiled forward passes and the exact J-invariant output;
- ``_callbacks``: the progress bar, the warm-up + cosine learning-rate schedule and the
  guard against non-finite losses;
- ``_net``: :class:`N2SNet`;
- ``_bmz``: :func:`export_bmz` and :func:`load_bmz`, BioImage Model Zoo packages of
  blind-spot nets (needs the ``bmz`` extra).
"""

from ._babyunet import BabyUnet
from ._blindspot import BlindSpotUnet, DilatedBlindSpotNet
from ._bmz import export_bmz, load_bmz
from ._callbacks import (
    EpochProgressBar,
    NonFiniteGuard,
    TimeBudget,
    WarmupCosineLR,
    warmup_cosine_factor,
)
from ._data import ImageBatchLoader, PatchBatchLoader
from ._inference import TILE_MARGIN, invariant_forward
from ._masking import fill_masked_torch, grid_batch_mask, mask_batch, random_batch_mask
from ._net import N2SNet
from ._shuffled import ShuffledBlindSpotUnet

__all__ = [
    "TILE_MARGIN",
    "BabyUnet",
    "BlindSpotUnet",
    "DilatedBlindSpotNet",
    "EpochProgressBar",
    "ImageBatchLoader",
    "N2SNet",
    "NonFiniteGuard",
    "PatchBatchLoader",
    "ShuffledBlindSpotUnet",
    "TimeBudget",
    "WarmupCosineLR",
    "fill_masked_torch",
    "grid_batch_mask",
    "invariant_forward",
    "mask_batch",
    "random_batch_mask",
    "warmup_cosine_factor",
    "export_bmz",
    "load_bmz",
]
