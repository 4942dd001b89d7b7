"""BabyUnet: the small U-Net of the Noise2Self reference code, for any image size and
1, 2 or 3 spatial dimensions.

Two levels of 2x2 max-pooling, bilinear upsampling, skip concatenation, and convolution
blocks (3x3 conv, batch norm, leaky ReLU, twice, with a residual connection), then a 1x1
output convolution. The architecture is that of ``models/babyunet.py`` of
github.com/czbiohub-sf/noise2self as it stands since its fix of 2019-12-16 (commit
b306ca7, which made the bottleneck block ``conv3`` feed the decoder; the first release
discarded its output): the same blocks with the same parameter names and shapes (72,353
parameters at ``width=16``), and the same output on images whose sides are multiples of
4. One deliberate difference: any height and width work here, the input being
reflect-padded to a multiple of 4 (so both poolings see whole 2x2 windows and the
upsampled maps line up with the skips) and the output cropped back. ``ndim=1`` and
``ndim=3`` build the same network from 1-D and 3-D convolutions, pooling and (bi/tri)linear
upsampling, for signals and volumes.

This module imports torch; ``import sklearn_n2s`` does not import it.
"""

import copy
import numbers

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: Total downsampling factor: sides are padded to a multiple of it.
DOWNSAMPLING = 4
#: Farthest input pixel that can move an output pixel, along one axis (measured on the
#: fused network: 26 pixels; ``tests/neural/test_babyunet.py`` checks it).
RECEPTIVE_RADIUS = 26

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_UPSAMPLE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def check_ndim(ndim):
    """Return ``ndim`` if it is 1, 2 or 3, else raise a ValueError."""
    if isinstance(ndim, bool) or not isinstance(ndim, numbers.Integral) or ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3 (spatial dimensions), got {ndim!r}.")
    return int(ndim)


class ConvBlock(nn.Module):
    """Two 3**ndim convolutions with batch norm and leaky ReLU, and a residual connection.

    The residual adds the input to the first ``min(in, out)`` output channels (as in the
    reference), so blocks that change the channel count keep a shortcut too.

    Parameters
    ----------
    in_channels : int
    out_channels : int
    ndim : {1, 2, 3}, default=2
    """

    def __init__(self, in_channels, out_channels, ndim=2):
        super().__init__()
        conv, norm = _CONV[ndim], _NORM[ndim]
        self.conv1 = conv(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm1 = norm(out_channels)
        self.conv2 = conv(out_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = norm(out_channels)
        self.act = nn.LeakyReLU()

    def forward(self, x):
        """Apply the block.

        Parameters
        ----------
        x : tensor of shape (N, in_channels, *spatial)

        Returns
        -------
        out : tensor of shape (N, out_channels, *spatial)
        """
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        shared = min(x.shape[1], out.shape[1])
        if shared == out.shape[1]:
            out = out + x[:, :shared]
        else:
            out = torch.cat([out[:, :shared] + x[:, :shared], out[:, shared:]], dim=1)
        return self.act(out)

    def fuse_batch_norm_(self):
        """Fold each eval-mode batch norm into the convolution before it (in place).

        Returns
        -------
        self : ConvBlock
            With ``norm1`` and ``norm2`` replaced by identities.
        """
        self.conv1 = fuse_conv_bn_eval(self.conv1, self.norm1)
        self.conv2 = fuse_conv_bn_eval(self.conv2, self.norm2)
        self.norm1 = nn.Identity()
        self.norm2 = nn.Identity()
        return self


def _upsample(x):
    return F.interpolate(x, scale_factor=2, mode=_UPSAMPLE[x.ndim - 2], align_corners=False)


class BabyUnet(nn.Module):
    """Small two-level U-Net of the Noise2Self reference (72,353 parameters at ``width=16``).

    Parameters
    ----------
    n_channels_in : int, default=1
        Channels of the input images.
    n_channels_out : int or None, default=None
        Channels of the output; None means ``n_channels_in``.
    width : int, default=16
        Channels of the first level; the second and third levels have ``2 * width``.
    ndim : {1, 2, 3}, default=2
        Spatial dimensions of the inputs: (N, C, L), (N, C, H, W) or (N, C, D, H, W).

    Attributes
    ----------
    n_channels_in, n_channels_out, width, ndim : int
        The resolved parameters.
    blind_spot : bool
        False (class attribute): the output at a pixel looks at that pixel, so N2SNet
        trains it with masking.
    receptive_radius : int
        :data:`RECEPTIVE_RADIUS`: tiles need at least this much context.
    size_multiple : int
        :data:`DOWNSAMPLING`: tiles start at multiples of it, so that the pooling
        windows of a tile are those of the whole image.
    conv1, conv2, conv3, conv4, conv5 : ConvBlock
        Encoder blocks (full, 1/2 and 1/4 resolution: ``conv3`` is the bottleneck) and
        decoder blocks (1/2 and full resolution), named as in the reference.
    conv6 : torch.nn.Conv2d (Conv1d, Conv3d)
        The 1x1 output convolution.

    References
    ----------
    .. [1] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       Proceedings of the 36th International Conference on Machine Learning (ICML),
       PMLR 97:524-533, 2019. arXiv:1901.11365. Code: github.com/czbiohub-sf/noise2self.

    Examples
    --------
    >>> import torch
    >>> from sklearn_n2s.neural import BabyUnet
    >>> net = BabyUnet(n_channels_in=3, width=4).eval()
    >>> net(torch.zeros(2, 3, 30, 17)).shape
    torch.Size([2, 3, 30, 17])
    >>> BabyUnet(width=4, ndim=3).eval()(torch.zeros(1, 1, 8, 9, 10)).shape
    torch.Size([1, 1, 8, 9, 10])
    """

    blind_spot = False
    receptive_radius = RECEPTIVE_RADIUS
    size_multiple = DOWNSAMPLING

    def __init__(self, n_channels_in=1, n_channels_out=None, width=16, ndim=2):
        super().__init__()
        for name, value in (("n_channels_in", n_channels_in), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        n_channels_out = n_channels_in if n_channels_out is None else n_channels_out
        self.n_channels_in = n_channels_in
        self.n_channels_out = n_channels_out
        self.width = width
        self.ndim = check_ndim(ndim)
        w = width
        self.pool = _POOL[ndim](kernel_size=2)
        self.conv1 = ConvBlock(n_channels_in, w, ndim)
        self.conv2 = ConvBlock(w, 2 * w, ndim)
        self.conv3 = ConvBlock(2 * w, 2 * w, ndim)
        self.conv4 = ConvBlock(4 * w, 2 * w, ndim)
        self.conv5 = ConvBlock(3 * w, w, ndim)
        self.conv6 = _CONV[ndim](w, n_channels_out, kernel_size=1)

    def fused_for_inference(self):
        """An eval-mode copy with batch norms folded into the convolutions.

        Same outputs as ``self.eval()`` up to float rounding, about 1.2x faster on CPU
        (one pass over each feature map fewer per block). ``self`` is left unchanged.

        Returns
        -------
        fused : BabyUnet
            A new module, in eval mode.
        """
        fused = copy.deepcopy(self).eval()
        for block in fused.modules():
            if isinstance(block, ConvBlock):
                block.fuse_batch_norm_()
        return fused

    def forward(self, x):
        """Apply the network to a batch of images of any side from 4 up.

        Parameters
        ----------
        x : tensor of shape (N, n_channels_in, *spatial), ``ndim`` spatial axes

        Returns
        -------
        out : tensor of shape (N, n_channels_out, *spatial)
        """
        if x.ndim != self.ndim + 2:
            layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[self.ndim]
            raise ValueError(f"BabyUnet(ndim={self.ndim}) expects {layout} input, got shape "
                             f"{tuple(x.shape)}.")
        spatial = x.shape[2:]
        pads = [-n % DOWNSAMPLING for n in spatial]
        if any(pads):
            # Reflect padding needs pad < side; sides >= 4 guarantee it (pad <= 3). F.pad
            # takes (before, after) pairs from the last axis backwards.
            pairs = [v for pad in reversed(pads) for v in (0, pad)]
            x = F.pad(x, pairs, mode="reflect")
        c1 = self.conv1(x)
        c2 = self.conv2(self.pool(c1))
        bottom = self.conv3(self.pool(c2))
        up = self.conv4(torch.cat([_upsample(bottom), c2], dim=1))
        up = self.conv5(torch.cat([_upsample(up), c1], dim=1))
        out = self.conv6(up)
        return out[(Ellipsis, *(slice(0, n) for n in spatial))]
