"""Torch masks and fills for (N, C, H, W) batches, with the semantics of the masking core.

Every function here equals its numpy counterpart in :mod:`sklearn_n2s.masking` (tested to
1e-12): the network meets a mask and a fill every batch, so they run in torch, on the
batch's device. ``'interpolate'`` is a depthwise convolution with the core's centre-less
kernel (1 on faces, 1/2 on diagonals) normalised over the unmasked in-image neighbours;
``'median'`` is delegated to :func:`sklearn_n2s.masking.fill_masked`.

Masks are (N, 1, H, W) bool tensors, True where a pixel (all its channels) is hidden.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import masking as core

#: How a training batch is masked.
MASKINGS = ("grid", "random")
#: What the network sees at hidden pixels.
NET_FILLS = ("interpolate", "zero", "median", "uniform")

# Centre-less 3x3 neighbour weights of the 'interpolate' fill (faces 1, diagonals 1/2).
_NEIGHBOUR_WEIGHTS = ((0.5, 1.0, 0.5), (1.0, 0.0, 1.0), (0.5, 1.0, 0.5))


def _per_image_mean(x, keep):
    """Mean of the kept values of every image and channel, 0 where none is kept."""
    total = (x * keep).sum(dim=(2, 3), keepdim=True)
    count = keep.sum(dim=(2, 3), keepdim=True)
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))


def neighbour_fill(x, keep):
    """Weighted mean of the kept in-image 3x3 neighbours of every pixel, per channel.

    Pixels whose neighbours are all hidden get the mean of the kept pixels of their
    image and channel, as :func:`sklearn_n2s.masking.fill_masked` does.

    Parameters
    ----------
    x : tensor of shape (N, C, H, W)
    keep : bool tensor broadcastable to x
        True where the pixel is visible.

    Returns
    -------
    values : tensor like x
    """
    n_channels = x.shape[1]
    kernel = torch.tensor(_NEIGHBOUR_WEIGHTS, dtype=x.dtype, device=x.device)
    kernel = kernel.expand(n_channels, 1, 3, 3)
    keep = keep.to(x.dtype).expand_as(x)
    numerator = F.conv2d(x * keep, kernel, padding=1, groups=n_channels)
    denominator = F.conv2d(keep, kernel, padding=1, groups=n_channels)
    fallback = _per_image_mean(x, keep).expand_as(x)
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-12), fallback)


def neighbour_average(x):
    """Weighted mean of all in-image 3x3 neighbours (centre excluded), per channel.

    Equals ``neighbour_fill(x, all kept)`` with one convolution of x: the normaliser
    depends on the image size only.

    Parameters
    ----------
    x : tensor of shape (N, C, H, W)

    Returns
    -------
    values : tensor like x
    """
    n_channels, height, width = x.shape[1:]
    kernel = torch.tensor(_NEIGHBOUR_WEIGHTS, dtype=x.dtype, device=x.device)
    numerator = F.conv2d(x, kernel.expand(n_channels, 1, 3, 3), padding=1, groups=n_channels)
    ones = torch.ones((1, 1, height, width), dtype=x.dtype, device=x.device)
    return numerator / F.conv2d(ones, kernel.view(1, 1, 3, 3), padding=1)


def _uniform_fill(x, keep, generator):
    """Uniform values between the min and max of the kept pixels of each image/channel."""
    keep = keep.expand_as(x)
    low = torch.where(keep, x, torch.full_like(x, math.inf)).amin(dim=(2, 3), keepdim=True)
    high = torch.where(keep, x, torch.full_like(x, -math.inf)).amax(dim=(2, 3), keepdim=True)
    low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
    high = torch.where(torch.isfinite(high), high, torch.zeros_like(high))
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return low + (high - low) * noise


def _median_fill(x, mask):
    """Median of the kept in-image neighbours, through the numpy masking core."""
    nhwc = x.detach().permute(0, 2, 3, 1).cpu().numpy()
    spatial_mask = mask[:, 0].cpu().numpy()
    filled = core.fill_masked(nhwc, spatial_mask, "median", channel_axis=-1)
    return torch.from_numpy(np.ascontiguousarray(filled)).permute(0, 3, 1, 2).to(x.device)


def fill_masked_torch(x, mask, fill="interpolate", generator=None):
    """Torch version of :func:`sklearn_n2s.masking.fill_masked` for (N, C, H, W) stacks.

    Parameters
    ----------
    x : tensor of shape (N, C, H, W)
    mask : bool tensor of shape (N, 1, H, W)
        True where the pixel (all its channels) is hidden.
    fill : {'interpolate', 'zero', 'median', 'uniform'}, default='interpolate'
    generator : torch.Generator or None, default=None
        Used by ``'uniform'``.

    Returns
    -------
    x_masked : tensor like x
        x, with hidden values that do not depend on the hidden values of x.
    """
    keep = ~mask
    if fill == "zero":
        return x * keep
    if fill == "interpolate":
        values = neighbour_fill(x, keep)
    elif fill == "median":
        return _median_fill(x, mask)
    elif fill == "uniform":
        values = _uniform_fill(x, keep, generator)
    else:
        raise ValueError(f"fill must be one of {sorted(NET_FILLS)}, got {fill!r}.")
    return torch.where(mask, values, x)


def grid_batch_mask(n_images, height, width, stride, generator):
    """One random grid coset per image, built by broadcasting.

    Parameters
    ----------
    n_images, height, width : int
    stride : int >= 2
    generator : torch.Generator

    Returns
    -------
    mask : bool tensor of shape (n_images, 1, height, width)
    """
    offsets = torch.randint(stride, (2, n_images, 1, 1, 1), generator=generator)
    rows = (torch.arange(height) % stride).view(1, 1, height, 1)
    cols = (torch.arange(width) % stride).view(1, 1, 1, width)
    return (rows == offsets[0]) & (cols == offsets[1])


def random_batch_mask(n_images, height, width, density, generator):
    """Bernoulli mask with the given density; never empty (one pixel at least).

    Parameters
    ----------
    n_images, height, width : int
    density : float in (0, 1)
    generator : torch.Generator

    Returns
    -------
    mask : bool tensor of shape (n_images, 1, height, width)
    """
    mask = torch.rand((n_images, 1, height, width), generator=generator) < density
    if not mask.any():
        flat = mask.view(-1)
        flat[torch.randint(flat.numel(), (1,), generator=generator)] = True
    return mask


def mask_batch(x, *, masking="grid", stride=4, density=1 / 16, fill="interpolate",
               generator=None):
    """Hide pixels of a training batch and fill them.

    Parameters
    ----------
    x : tensor of shape (N, C, H, W)
    masking : {'grid', 'random'}, default='grid'
        One random coset of a stride-``stride`` grid per image, or a Bernoulli mask of
        the given ``density``.
    stride : int, default=4
    density : float, default=1/16
    fill : {'interpolate', 'zero', 'median', 'uniform'}, default='interpolate'
    generator : torch.Generator or None, default=None
        The source of every random draw.

    Returns
    -------
    net_input : tensor like x
    mask : bool tensor of shape (N, 1, H, W), on the device of x
    """
    n_images, _, height, width = x.shape
    if masking == "grid":
        mask = grid_batch_mask(n_images, height, width, stride, generator)
    else:
        mask = random_batch_mask(n_images, height, width, density, generator)
    mask = mask.to(x.device)
    if masking == "grid" and fill == "interpolate":
        # No two pixels of a coset are neighbours: every hidden pixel sees all its
        # neighbours, so the fill is the plain neighbour average (one convolution).
        return torch.where(mask, neighbour_average(x), x), mask
    return fill_masked_torch(x, mask, fill, generator), mask


def grid_fill_source(x, fill):
    """Fill values valid for every coset of a grid with stride >= 2, or None.

    Torch version of :func:`sklearn_n2s.masking.grid_fill_source`: None for
    ``'uniform'``, whose values depend on the coset.

    Parameters
    ----------
    x : tensor of shape (N, C, H, W)
    fill : {'interpolate', 'zero', 'median', 'uniform'}

    Returns
    -------
    source : tensor like x, or None
    """
    if fill == "interpolate":
        return neighbour_average(x)
    if fill == "zero":
        return torch.zeros_like(x)
    if fill == "median":
        nhwc = x.permute(0, 2, 3, 1).cpu().numpy()
        source = core.neighbour_median(nhwc, channel_axis=-1)
        return torch.from_numpy(np.ascontiguousarray(source)).permute(0, 3, 1, 2).to(x)
    return None
