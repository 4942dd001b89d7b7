"""Neural Noise2Self (needs the ``torch`` extra): torch modules, torch masking and fills,
the batch loader, and :class:`N2SNet`, a skorch net trained with the Noise2Self loss."""

from ._babyunet import BabyUnet
from ._net import N2SNet

__all__ = ["BabyUnet", "N2SNet"]
