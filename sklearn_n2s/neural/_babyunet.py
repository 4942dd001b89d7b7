"""BabyUnet: the small U-Net of the Noise2Self reference code, for any image size.

Two levels of 2x2 max-pooling, bilinear upsampling, skip concatenation, and convolution
blocks (3x3 conv, batch norm, leaky ReLU, twice, with a residual connection), then a 1x1
output convolution. The layout follows ``models/babyunet.py`` of
github.com/czbiohub-sf/noise2self, with two deliberate differences:

- the bottleneck block's output is used (the reference computes ``conv3`` and discards
  it, so its bottleneck is dead weight; the cost is the same either way);
- any height and width work: the input is reflect-padded to a multiple of 4 (so both
  poolings see whole 2x2 windows and the upsampled maps line up with the skips) and the
  output is cropped back.

This module imports torch; ``import sklearn_n2s`` does not import it.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: Total downsampling factor: sides are padded to a multiple of it.
DOWNSAMPLING = 4


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and leaky ReLU, and a residual connection.

    The residual adds the input to the first ``min(in, out)`` output channels (as in the
    reference), so blocks that change the channel count keep a shortcut too.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU()

    def forward(self, x):
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        shared = min(x.shape[1], out.shape[1])
        if shared == out.shape[1]:
            out = out + x[:, :shared]
        else:
            out = torch.cat([out[:, :shared] + x[:, :shared], out[:, shared:]], dim=1)
        return self.act(out)

    def fuse_batch_norm_(self):
        """Fold each eval-mode batch norm into the convolution before it (in place)."""
        self.conv1 = fuse_conv_bn_eval(self.conv1, self.norm1)
        self.conv2 = fuse_conv_bn_eval(self.conv2, self.norm2)
        self.norm1 = nn.Identity()
        self.norm2 = nn.Identity()
        return self


def _upsample(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class BabyUnet(nn.Module):
    """Small two-level U-Net (about 75k parameters at ``width=16``).

    Parameters
    ----------
    n_channels_in : int, default=1
        Channels of the input images.
    n_channels_out : int or None, default=None
        Channels of the output; None means ``n_channels_in``.
    width : int, default=16
        Channels of the first level; the second and third levels have ``2 * width``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_n2s.neural import BabyUnet
    >>> net = BabyUnet(n_channels_in=3, width=4).eval()
    >>> net(torch.zeros(2, 3, 30, 17)).shape
    torch.Size([2, 3, 30, 17])
    """

    def __init__(self, n_channels_in=1, n_channels_out=None, width=16):
        super().__init__()
        for name, value in (("n_channels_in", n_channels_in), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        n_channels_out = n_channels_in if n_channels_out is None else n_channels_out
        self.n_channels_in = n_channels_in
        self.n_channels_out = n_channels_out
        self.width = width
        w = width
        self.pool = nn.MaxPool2d(kernel_size=2)
        self.conv1 = ConvBlock(n_channels_in, w)
        self.conv2 = ConvBlock(w, 2 * w)
        self.conv3 = ConvBlock(2 * w, 2 * w)
        self.conv4 = ConvBlock(4 * w, 2 * w)
        self.conv5 = ConvBlock(3 * w, w)
        self.conv6 = nn.Conv2d(w, n_channels_out, kernel_size=1)

    def fused_for_inference(self):
        """An eval-mode copy with batch norms folded into the convolutions.

        Same outputs as ``self.eval()`` up to float rounding, about 1.2x faster on CPU
        (one pass over each feature map fewer per block).
        """
        fused = copy.deepcopy(self).eval()
        for block in fused.modules():
            if isinstance(block, ConvBlock):
                block.fuse_batch_norm_()
        return fused

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"BabyUnet expects (N, C, H, W) input, got shape {tuple(x.shape)}.")
        height, width = x.shape[-2:]
        pad_h = -height % DOWNSAMPLING
        pad_w = -width % DOWNSAMPLING
        if pad_h or pad_w:
            # Reflect padding needs pad < side; sides >= 4 guarantee it (pad <= 3).
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        c1 = self.conv1(x)
        c2 = self.conv2(self.pool(c1))
        bottom = self.conv3(self.pool(c2))
        up = self.conv4(torch.cat([_upsample(bottom), c2], dim=1))
        up = self.conv5(torch.cat([_upsample(up), c1], dim=1))
        out = self.conv6(up)
        return out[..., :height, :width]
