"""Torch masks and fills for (N, C, *spatial) batches, with the semantics of the masking core.

Every function here equals its numpy counterpart in :mod:`sklearn_n2s.masking` (tested to
1e-12) in 1, 2 and 3 spatial dimensions: the network meets a mask and a fill every
batch, so they run in torch, on the batch's device. ``'interpolate'`` is a depthwise
convolution with the core's centre-less kernel (the outer product of [1/2, 1, 1/2] along
every axis, centre 0: faces 1, edges 1/2, corners 1/4 relative to each other) normalised
over the unmasked in-image neighbours; ``'median'`` is delegated to
:func:`sklearn_n2s.masking.fill_masked`.

Masks are (N, 1, *spatial) bool tensors, True where a pixel (all its channels) is hidden.

Structured blind spots (correlated noise): :func:`footprint_grid_strides` spaces a
coset per axis so that the footprints hidden around its pixels never touch,
:func:`dilate_mask` hides each coset pixel's whole footprint (a convolution of the mask
with the footprint) and :func:`fill_from_outside_torch` fills the hidden region from the
visible pixels around it, as :func:`sklearn_n2s.masking.fill_from_outside` does.
"""

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import masking as core

#: How a training batch is masked.
MASKINGS = ("grid", "random")
#: What the network sees at hidden pixels.
NET_FILLS = ("interpolate", "zero", "median", "uniform")

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _spatial_dims(x):
    return tuple(range(2, x.ndim))


@functools.lru_cache(maxsize=8)
def _neighbour_weights(ndim):
    """The centre-less 3**ndim kernel of the core's interpolation, as a numpy array."""
    side = np.array([0.5, 1.0, 0.5])
    kernel = functools.reduce(np.multiply.outer, [side] * ndim)
    kernel[(1,) * ndim] = 0.0
    return kernel


def _kernel(x):
    ndim = x.ndim - 2
    return torch.as_tensor(_neighbour_weights(ndim), dtype=x.dtype, device=x.device)


def _depthwise(x, kernel):
    """Correlate every channel of x with ``kernel`` (zeros outside the image)."""
    ndim = x.ndim - 2
    n_channels = x.shape[1]
    weight = kernel.expand(n_channels, 1, *kernel.shape)
    return _CONV[ndim](x, weight, padding=1, groups=n_channels)


def _per_image_mean(x, keep):
    """Mean of the kept values of every image and channel, 0 where none is kept."""
    dims = _spatial_dims(x)
    total = (x * keep).sum(dim=dims, keepdim=True)
    count = keep.sum(dim=dims, keepdim=True)
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))


def neighbour_fill(x, keep):
    """Weighted mean of the kept in-image 3**ndim neighbours of every pixel, per channel.

    Pixels whose neighbours are all hidden get the mean of the kept pixels of their
    image and channel, as :func:`sklearn_n2s.masking.fill_masked` does.

    Parameters
    ----------
    x : tensor of shape (N, C, *spatial), 1 to 3 spatial axes
    keep : bool tensor broadcastable to x
        True where the pixel is visible.

    Returns
    -------
    values : tensor like x
    """
    kernel = _kernel(x)
    keep = keep.to(x.dtype).expand_as(x)
    numerator = _depthwise(x * keep, kernel)
    denominator = _depthwise(keep, kernel)
    fallback = _per_image_mean(x, keep).expand_as(x)
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-12), fallback)


def neighbour_average(x):
    """Weighted mean of all in-image 3**ndim neighbours (centre excluded), per channel.

    Equals ``neighbour_fill(x, all kept)`` with one convolution of x: the normaliser
    depends on the image size only.

    Parameters
    ----------
    x : tensor of shape (N, C, *spatial)

    Returns
    -------
    values : tensor like x
    """
    kernel = _kernel(x)
    numerator = _depthwise(x, kernel)
    ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
    return numerator / _depthwise(ones, kernel)


def _uniform_fill(x, keep, generator):
    """Uniform values between the min and max of the kept pixels of each image/channel."""
    dims = _spatial_dims(x)
    keep = keep.expand_as(x)
    low = torch.where(keep, x, torch.full_like(x, math.inf)).amin(dim=dims, keepdim=True)
    high = torch.where(keep, x, torch.full_like(x, -math.inf)).amax(dim=dims, keepdim=True)
    low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
    high = torch.where(torch.isfinite(high), high, torch.zeros_like(high))
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return low + (high - low) * noise


def _channels_last(x):
    return x.movedim(1, -1)


def _channels_first(array, like):
    return torch.from_numpy(np.ascontiguousarray(array)).movedim(-1, 1).to(like)


def _median_fill(x, mask):
    """Median of the kept in-image neighbours, through the numpy masking core."""
    nhwc = _channels_last(x.detach()).cpu().numpy()
    spatial_mask = mask[:, 0].cpu().numpy()
    filled = core.fill_masked(nhwc, spatial_mask, "median", channel_axis=-1)
    return _channels_first(filled, x)


def fill_masked_torch(x, mask, fill="interpolate", generator=None):
    """Torch version of :func:`sklearn_n2s.masking.fill_masked` for (N, C, *spatial) stacks.

    Parameters
    ----------
    x : tensor of shape (N, C, *spatial)
    mask : bool tensor of shape (N, 1, *spatial)
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


def grid_batch_mask(n_images, spatial_shape, stride, generator):
    """One random grid coset per image, built by broadcasting.

    Parameters
    ----------
    n_images : int
    spatial_shape : tuple of int
        One to three spatial lengths.
    stride : int >= 2
    generator : torch.Generator

    Returns
    -------
    mask : bool tensor of shape (n_images, 1, *spatial_shape)
    """
    ndim = len(spatial_shape)
    offsets = torch.randint(stride, (ndim, n_images), generator=generator)
    mask = torch.ones((n_images, 1, *spatial_shape), dtype=torch.bool)
    for axis, length in enumerate(spatial_shape):
        shape = [1, 1] + [1] * ndim
        shape[2 + axis] = length
        phase = (torch.arange(length) % stride).view(shape)
        mask &= phase == offsets[axis].view(n_images, *([1] * (ndim + 1)))
    return mask


def random_batch_mask(n_images, spatial_shape, density, generator):
    """Bernoulli mask with the given density; never empty (one pixel at least).

    Parameters
    ----------
    n_images : int
    spatial_shape : tuple of int
    density : float in (0, 1)
    generator : torch.Generator

    Returns
    -------
    mask : bool tensor of shape (n_images, 1, *spatial_shape)
    """
    mask = torch.rand((n_images, 1, *spatial_shape), generator=generator) < density
    if not mask.any():
        flat = mask.view(-1)
        flat[torch.randint(flat.numel(), (1,), generator=generator)] = True
    return mask


def footprint_grid_strides(footprint, spatial_shape, stride):
    """Grid spacing per spatial axis for a structured blind spot on images of a shape.

    :func:`sklearn_n2s.masking.footprint_strides` (footprints of two coset pixels never
    touch), with spacing 1 along the axes the footprint covers whole, as
    :func:`sklearn_n2s.masking.iter_footprint_masked` uses.

    Parameters
    ----------
    footprint : bool ndarray, one odd-length axis per spatial axis
    spatial_shape : tuple of int
    stride : int >= 2

    Returns
    -------
    strides : tuple of int

    Raises
    ------
    ValueError
        When the footprint covers the whole image.
    """
    footprint = np.asarray(footprint, dtype=bool)
    return core._whole_axis_strides(core.footprint_strides(footprint, stride), footprint,
                                    tuple(int(n) for n in spatial_shape))


def dilate_mask(mask, footprint):
    """Every pixel within the footprint of a masked pixel: ``{c + s}`` for ``c`` in the
    mask and ``s`` an offset of the footprint (scipy's ``binary_dilation``).

    Parameters
    ----------
    mask : bool tensor of shape (N, 1, *spatial)
    footprint : bool ndarray, one odd-length axis per spatial axis

    Returns
    -------
    hidden : bool tensor like mask
    """
    ndim = mask.ndim - 2
    # torch convolutions correlate: flip the footprint so that offsets add.
    kernel = np.ascontiguousarray(np.flip(np.asarray(footprint, dtype=np.float32)))
    weight = torch.as_tensor(kernel, device=mask.device)[None, None]
    padding = tuple(n // 2 for n in kernel.shape)
    return _CONV[ndim](mask.to(torch.float32), weight, padding=padding) > 0.5


def fill_from_outside_torch(x, mask):
    """Fill the masked pixels from the visible ones, growing inwards from the border.

    Torch version of :func:`sklearn_n2s.masking.fill_from_outside`: each pass gives the
    masked pixels that touch known pixels the weighted mean of those (the
    ``'interpolate'`` weights) and counts them as known. No masked value is ever read.

    Parameters
    ----------
    x : tensor of shape (N, C, *spatial)
    mask : bool tensor of shape (N, 1, *spatial)

    Returns
    -------
    x_filled : tensor like x
    """
    kernel = _kernel(x)
    known = (~mask).expand_as(x)
    out = torch.where(known, x, torch.zeros_like(x))
    fallback = _per_image_mean(x, known.to(x.dtype)).expand_as(x)
    while not bool(known.all()):
        weight = known.to(x.dtype)
        numerator = _depthwise(out * weight, kernel)
        denominator = _depthwise(weight, kernel)
        newly = ~known & (denominator > 0)
        if not bool(newly.any()):
            return torch.where(known, out, fallback)
        out = torch.where(newly, numerator / denominator.clamp_min(1e-12), out)
        known = known | newly
    return out


def fill_footprint(x, hidden, fill="interpolate", generator=None):
    """Fill a structured hidden region: from outside for ``'interpolate'``, else as
    :func:`fill_masked_torch` (whose other fills read no hidden value either)."""
    if fill == "interpolate":
        return fill_from_outside_torch(x, hidden)
    return fill_masked_torch(x, hidden, fill, generator)


def footprint_batch_mask(n_images, spatial_shape, strides, generator):
    """One random coset per image of a grid with a spacing per axis.

    Parameters
    ----------
    n_images : int
    spatial_shape : tuple of int
    strides : tuple of int >= 1
    generator : torch.Generator

    Returns
    -------
    mask : bool tensor of shape (n_images, 1, *spatial_shape)
    """
    ndim = len(spatial_shape)
    mask = torch.ones((n_images, 1, *spatial_shape), dtype=torch.bool)
    for axis, (length, step) in enumerate(zip(spatial_shape, strides)):
        offsets = torch.randint(step, (n_images,), generator=generator)
        shape = [1, 1] + [1] * ndim
        shape[2 + axis] = length
        phase = (torch.arange(length) % step).view(shape)
        mask &= phase == offsets.view(n_images, *([1] * (ndim + 1)))
    return mask


def mask_batch(x, *, masking="grid", stride=4, density=1 / 16, fill="interpolate",
               generator=None, footprint=None):
    """Hide pixels of a training batch and fill them.

    Parameters
    ----------
    x : tensor of shape (N, C, *spatial)
    masking : {'grid', 'random'}, default='grid'
        One random coset of a stride-``stride`` grid per image, or a Bernoulli mask of
        the given ``density``.
    stride : int, default=4
    density : float, default=1/16
    fill : {'interpolate', 'zero', 'median', 'uniform'}, default='interpolate'
    generator : torch.Generator or None, default=None
        The source of every random draw.
    footprint : None or bool ndarray, default=None
        A structured blind spot: the grid's spacing per axis comes from
        :func:`footprint_grid_strides`, the whole footprint of every drawn pixel is
        hidden and filled (:func:`fill_footprint`), and the returned mask holds the
        drawn pixels only (where the loss goes).

    Returns
    -------
    net_input : tensor like x
    mask : bool tensor of shape (N, 1, *spatial), on the device of x
    """
    n_images, spatial = x.shape[0], tuple(x.shape[2:])
    if footprint is not None:
        if masking == "grid":
            strides = footprint_grid_strides(footprint, spatial, stride)
            mask = footprint_batch_mask(n_images, spatial, strides, generator)
        else:
            mask = random_batch_mask(n_images, spatial, density, generator)
        mask = mask.to(x.device)
        return fill_footprint(x, dilate_mask(mask, footprint), fill, generator), mask
    if masking == "grid":
        mask = grid_batch_mask(n_images, spatial, stride, generator)
    else:
        mask = random_batch_mask(n_images, spatial, density, generator)
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
    x : tensor of shape (N, C, *spatial)
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
        source = core.neighbour_median(_channels_last(x).cpu().numpy(), channel_axis=-1)
        return _channels_first(source, x)
    return None
