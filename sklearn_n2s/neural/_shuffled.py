"""A one-pass blind-spot network with a wide field: U-Nets on pixel-shuffled sub-images
of centre-masked features.

Why the blind spot stays exact. A ``k``-kernel convolution whose centre weight is
masked gives features ``h(p)`` that depend on ``x(p + m)`` for offsets ``m`` with
``0 < max|m_i| <= k // 2`` only. Split ``h`` into the ``s**ndim`` sub-images of one
phase each (pixel-shuffle downsampling, as AP-BSN does to the input: Lee, Son & Lee
2022): ``h_a(q) = h(s q + a)``. Whatever a network does inside one sub-image
(convolutions, pooling, upsampling, any padding), its output at ``s q + a`` reads
``h`` at offsets in ``s Z**ndim`` only, so it sees ``x`` at offsets ``s K + m``. With
``k // 2 < s``, every nonzero ``m`` has a component that is not a multiple of ``s``,
and ``s K + m`` is never zero. A plain U-Net (poolings included) then runs inside each
phase, with ``s`` times its own receptive field at the image's scale, at the cost of
one U-Net pass over the image's pixels (the phases are one batch).

Two branches, as in D-BSN (Wu et al. 2020): a 3-kernel mask with ``s = 2`` (its field
misses offsets whose components are all even) and a 5-kernel mask with ``s = 3`` (misses
multiples of 3); merged by 1x1 convolutions, the field misses offsets in ``6 Z**ndim``
only, and reaches 80 pixels at the defaults (BabyUnet: 26; D-BSN: 17).

No batch normalisation (batch statistics would carry the centre into its own output in
training mode). Written from the papers' text; no code was consulted.

This module imports torch; ``import sklearn_n2s`` does not import it.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._blindspot import LEAKY_SLOPE, CentreMaskedConv, _check_input, _check_int, _conv

_UPSAMPLE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def phase_split(x, factor):
    """``(N, C, *sides)`` -> ``(factor**ndim * N, C, *sides / factor)``: one sub-image per
    phase, phase-major (sides must be multiples of ``factor``)."""
    n, c, *sides = x.shape
    ndim = len(sides)
    shape = [n, c]
    for side in sides:
        shape += [side // factor, factor]
    x = x.reshape(shape)
    # (N, C, S1, f, S2, f, ...) -> (f, f, ..., N, C, S1, S2, ...)
    phases = [3 + 2 * i for i in range(ndim)]
    coarse = [2 + 2 * i for i in range(ndim)]
    x = x.permute(*phases, 0, 1, *coarse)
    return x.reshape([factor**ndim * n, c] + [side // factor for side in sides])


def phase_merge(x, factor, n):
    """The inverse of :func:`phase_split` for a batch of ``n`` images."""
    _, c, *coarse = x.shape
    ndim = len(coarse)
    x = x.reshape([factor] * ndim + [n, c] + coarse)
    # (f, ..., N, C, S1, S2, ...) -> (N, C, S1, f, S2, f, ...)
    order = [ndim, ndim + 1]
    for i in range(ndim):
        order += [ndim + 2 + i, i]
    x = x.permute(*order)
    return x.reshape([n, c] + [side * factor for side in coarse])


class _Block(nn.Module):
    """Two 3-kernel convolutions with leaky ReLUs; the second's output adds to the first's."""

    def __init__(self, ndim, in_channels, out_channels):
        super().__init__()
        self.conv1 = _conv(ndim, in_channels, out_channels, kernel_size=3, padding=1)
        self.conv2 = _conv(ndim, out_channels, out_channels, kernel_size=3, padding=1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x):
        y = self.act(self.conv1(x))
        return y + self.act(self.conv2(y))


class PhaseUnet(nn.Module):
    """A plain U-Net (no normalisation): ``depth`` 2x max poolings, linear upsampling,
    skip concatenations; ``width`` channels at full resolution, ``2 * width`` below.

    Sides must be multiples of ``2**depth``.
    """

    def __init__(self, ndim, width, depth):
        super().__init__()
        w = width
        self.depth = depth
        self.enc = nn.ModuleList([_Block(ndim, w, w)])
        c = w
        for _ in range(depth):
            self.enc.append(_Block(ndim, c, 2 * w))
            c = 2 * w
        self.dec = nn.ModuleList()
        for level in reversed(range(depth)):
            skip = w if level == 0 else 2 * w
            c_out = w if level == 0 else 2 * w
            self.dec.append(_Block(ndim, c + skip, c_out))
            c = c_out
        self.pool = getattr(F, f"max_pool{ndim}d")
        self.mode = _UPSAMPLE[ndim]

    def forward(self, x):
        skips = []
        for level, block in enumerate(self.enc):
            if level:
                x = self.pool(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.dec:
            x = F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=False)
            x = block(torch.cat([x, skips.pop()], dim=1))
        return x

    @staticmethod
    def reach(depth):
        """Bound on the field's radius, in pixels of the U-Net's input: at each level, one
        pixel of that level per convolution (two per block, encoder and decoder), and
        two per pooling and upsampling pair below it."""
        radius = 0
        for level in range(depth + 1):
            blocks = 1 if level == depth else 2
            radius += 2 * blocks * 2**level
        return radius + sum(2 * 2**level for level in range(depth))


class ShuffledBlindSpotUnet(nn.Module):
    """Blind-spot net with a wide field: U-Nets on pixel-shuffled masked features.

    A 1x1 convolution lifts the input to ``width`` channels. Two branches follow: a
    ``k``-kernel centre-masked convolution and a 1x1 convolution, then the features are
    split into their ``s**ndim`` phases (pixel-shuffle downsampling by ``s``), a
    :class:`PhaseUnet` (``depth`` poolings) runs on every phase as one batch, and the
    phases are put back. Branch one: ``k = 3``, ``s = 2``; branch two: ``k = 5``,
    ``s = 3``. Three 1x1 convolutions merge the branches. Since ``k // 2 < s``, an offset
    that reaches the centre would need a nonzero masked offset that is a multiple of
    ``s`` in every component, and there is none: the output at a pixel never depends on
    that pixel (see the module notes). The field covers every offset up to
    ``receptive_radius`` but those whose components are all multiples of 6.

    Any size works: each branch zero-pads its features at the end of each axis to a
    multiple of ``s * 2**depth`` and crops back. One forward pass is the J-invariant
    output; training puts the loss on every pixel.

    Measured with N2SNet's posterior head at equal training time (one core, about 2.5
    minutes on the digits, 2 minutes on the camera image; ``benchmarks/results/
    neural_modules.md`` and ``neural_single.md``): level with BabyUnet on MNIST (20.83
    against 20.95 dB), 0.5 dB (width 8) to 1.1 dB (width 16) behind it on the one
    512**2 camera image, where a step costs about 2.5 BabyUnet steps; its one pass is
    6.3x faster than the reference's 16 + 1 masked passes on the digits (width 16).

    Parameters
    ----------
    in_channels : int, default=1
    out_channels : int, default=1
    ndim : {1, 2, 3}, default=2
        Spatial axes of the input ``(N, C, *spatial)``.
    width : int, default=16
        Channels of each branch at full resolution (``2 * width`` below it).
    depth : int, default=2
        Poolings of each branch's U-Net.

    Attributes
    ----------
    blind_spot : bool
        True (class attribute): the module is J-invariant by construction.
    receptive_radius : int
        Upper bound on the distance along any axis of an input pixel that can change an
        output pixel: ``max(k // 2 + s * PhaseUnet.reach(depth))`` over the branches,
        80 at ``depth=2``.
    size_multiple : int
        The least common multiple of the branches' ``s * 2**depth`` (24 at ``depth=2``):
        tiles starting at multiples of it see the phases and pooling windows of the
        whole image.
    head : torch.nn.Conv1d, Conv2d or Conv3d
        The first 1x1 convolution.
    masked : torch.nn.ModuleList
        Per branch, the masked convolution and a 1x1 convolution.
    unets : torch.nn.ModuleList
        Per branch, the :class:`PhaseUnet` run on the phases.
    tail : torch.nn.Sequential
        The merging 1x1 convolutions.

    References
    ----------
    .. [1] X. Wu, M. Liu, Y. Cao, D. Ren and W. Zuo, "Unpaired Learning of Deep Image
       Denoising", European Conference on Computer Vision (ECCV), 2020.
       arXiv:2008.13711.
    .. [2] W. Lee, S. Son and K. M. Lee, "AP-BSN: Self-Supervised Denoising for
       Real-World Images via Asymmetric PD and Blind-Spot Network", IEEE/CVF Conference
       on Computer Vision and Pattern Recognition (CVPR), 2022. arXiv:2203.11799.
    .. [3] S. Laine, T. Karras, J. Lehtinen and T. Aila, "High-Quality Self-Supervised
       Deep Image Denoising", NeurIPS, 2019. arXiv:1901.10277.

    Examples
    --------
    >>> import torch
    >>> from sklearn_n2s.neural import ShuffledBlindSpotUnet
    >>> net = ShuffledBlindSpotUnet(ndim=2, width=4, depth=1).eval()
    >>> x = torch.randn(1, 1, 13, 20)
    >>> y = x.clone()
    >>> y[0, 0, 6, 9] += 100.0  # the pixel's own value does not reach its output
    >>> bool((net(y) - net(x))[0, 0, 6, 9].abs() < 1e-4)
    True
    >>> net.receptive_radius, net.size_multiple
    (32, 12)
    """

    blind_spot = True

    #: (masked kernel size, shuffle factor) of each branch: kernel // 2 < factor.
    BRANCHES = ((3, 2), (5, 3))

    def __init__(self, in_channels=1, out_channels=1, ndim=2, width=16, depth=2):
        super().__init__()
        _check_int("in_channels", in_channels, 1)
        _check_int("out_channels", out_channels, 1)
        _check_int("ndim", ndim, 1, 3)
        _check_int("width", width, 1)
        _check_int("depth", depth, 0, 6)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.ndim, self.width, self.depth = ndim, width, depth
        w = width
        act = nn.LeakyReLU(LEAKY_SLOPE)
        self.head = _conv(ndim, in_channels, w, kernel_size=1)
        self.masked = nn.ModuleList()
        self.unets = nn.ModuleList()
        for kernel, _ in self.BRANCHES:
            self.masked.append(nn.Sequential(
                CentreMaskedConv(ndim, w, w, kernel), act,
                _conv(ndim, w, w, kernel_size=1), act))
            self.unets.append(PhaseUnet(ndim, w, depth))
        n_features = len(self.BRANCHES) * w
        self.tail = nn.Sequential(
            _conv(ndim, n_features, 2 * w, kernel_size=1), act,
            _conv(ndim, 2 * w, w, kernel_size=1), act,
            _conv(ndim, w, out_channels, kernel_size=1))
        reach = PhaseUnet.reach(depth)
        self.receptive_radius = max(k // 2 + s * reach for k, s in self.BRANCHES)
        self.size_multiple = math.lcm(*(s * 2**depth for _, s in self.BRANCHES))

    def _branch(self, h, index):
        _, factor = self.BRANCHES[index]
        sides = h.shape[2:]
        multiple = factor * 2**self.depth
        pad = []
        for side in reversed(sides):
            pad += [0, -side % multiple]
        h = self.masked[index](h)
        if any(pad):
            h = F.pad(h, pad)  # constants: no pixel is copied
        n = h.shape[0]
        out = phase_merge(self.unets[index](phase_split(h, factor)), factor, n)
        return out[(slice(None), slice(None)) + tuple(slice(0, s) for s in sides)]

    def forward(self, x):
        """Blind-spot output for a batch of any spatial size.

        Parameters
        ----------
        x : tensor of shape (N, in_channels, *spatial)

        Returns
        -------
        out : tensor of shape (N, out_channels, *spatial)
            ``out[..., p]`` does not depend on ``x[..., p]`` (any channel).
        """
        _check_input(self, x)
        # The 1x1 head may use the centre: the masked convolution right after drops it.
        h = F.leaky_relu(self.head(x), LEAKY_SLOPE)
        features = [self._branch(h, i) for i in range(len(self.BRANCHES))]
        return self.tail(torch.cat(features, dim=1))


__all__ = ["ShuffledBlindSpotUnet"]
