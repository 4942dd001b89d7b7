"""Inference helpers for image networks: tiles, and the exact J-invariant output.

:func:`invariant_forward` hides every coset of a stride-``stride`` grid in turn and
reads each pixel from the pass that hid it. The ``stride**ndim`` masked copies of a chunk
of images are built by slices and run as one large batch (no wasted extra pass, unlike
the reference code's ``infer_full_image``). A blind-spot network needs none of this: its
one pass is J-invariant by construction. :func:`forward_tiled` runs a network on
overlapping tiles in 1, 2 or 3 spatial dimensions, for images too big for memory: each
tile carries a margin of context at least the network's receptive radius, and starts on
a multiple of its downsampling factor, so that the kept core of every tile equals the
whole image's output (tested to 1e-4).

With a structured blind spot (a ``footprint``, for correlated noise) the grid has a
spacing per axis (:func:`._masking.footprint_grid_strides`), each pass hides the whole
footprint of every pixel of its coset and fills it from outside, and each pixel is read
from the pass that hid its footprint: its output depends on nothing inside it.
"""

import itertools
import math

import numpy as np
import torch

from .. import masking as core
from ._masking import (
    dilate_mask,
    fill_footprint,
    fill_masked_torch,
    footprint_grid_strides,
    grid_fill_source,
)

#: Context kept around each tile for BabyUnet, larger than its receptive radius (26
#: pixels) and a multiple of 4, so tiles line up with the pooling grid.
TILE_MARGIN = 32
#: Alignment assumed for a module that does not state its ``size_multiple`` (covers up
#: to four levels of 2x pooling).
DEFAULT_SIZE_MULTIPLE = 16


def tile_geometry(module, tile_size=None):
    """``(margin, multiple)`` of tiled inference for a module.

    ``multiple`` is the module's ``size_multiple`` (its total downsampling factor) or
    :data:`DEFAULT_SIZE_MULTIPLE`; ``margin`` its ``receptive_radius`` (or
    :data:`TILE_MARGIN`) plus one, rounded up to a multiple of ``multiple``.

    Parameters
    ----------
    module : torch.nn.Module
    tile_size : int or None
        Unused; kept so callers may pass it.

    Returns
    -------
    margin, multiple : int
    """
    multiple = int(getattr(module, "size_multiple", DEFAULT_SIZE_MULTIPLE))
    radius = int(getattr(module, "receptive_radius", TILE_MARGIN - 1))
    margin = math.ceil((radius + 1) / multiple) * multiple
    return margin, multiple


def forward_tiled(run, x, tile_size=None, margin=TILE_MARGIN):
    """Output of ``run`` for a batch, whole or tile by tile (same result in the core).

    Parameters
    ----------
    run : callable
        Maps an (N, C, *s) tensor to an (N, C_out, *s) tensor.
    x : tensor of shape (N, C, *spatial), 1 to 3 spatial axes
    tile_size : int or None, default=None
        Side of the tiles whose output is kept; None runs whole images.
    margin : int, default=TILE_MARGIN
        Context added around each tile on every side (cut off at the image border).

    Returns
    -------
    out : tensor of shape (N, C_out, *spatial)
    """
    spatial = tuple(x.shape[2:])
    if tile_size is None or all(n <= tile_size for n in spatial):
        return run(x)
    out = None
    starts = [range(0, n, tile_size) for n in spatial]
    for corner in itertools.product(*starts):
        outer = tuple(slice(max(0, c - margin), min(n, c + tile_size + margin))
                      for c, n in zip(corner, spatial))
        pred = run(x[(slice(None), slice(None), *outer)])
        if out is None:
            out = pred.new_empty((x.shape[0], pred.shape[1], *spatial))
        core_in_tile = tuple(slice(c - o.start, c - o.start + tile_size)
                             for c, o in zip(corner, outer))
        core_in_image = tuple(slice(c, c + tile_size) for c in corner)
        out[(slice(None), slice(None), *core_in_image)] = (
            pred[(slice(None), slice(None), *core_in_tile)])
    return out


def invariant_forward(forward, x, *, stride=4, fill="interpolate", generator=None,
                      images_per_pass=64, footprint=None):
    """Exact J-invariant output: each grid coset predicted from a pass that hid it.

    Parameters
    ----------
    forward : callable
        Maps an (M, C, *spatial) stack to the network's (M, C_out, *spatial) output.
    x : tensor of shape (N, C, *spatial)
    stride : int >= 2, default=4
        ``stride**ndim`` cosets, so ``stride**ndim`` masked copies of every image.
    fill : {'interpolate', 'zero', 'median', 'uniform'}, default='interpolate'
    generator : torch.Generator or None, default=None
        Used by the ``'uniform'`` fill only.
    images_per_pass : int, default=64
        Masked copies handed to ``forward`` at once (at least one image's cosets; with
        a ``footprint``, at least one).
    footprint : None or bool ndarray, default=None
        A structured blind spot (see :func:`footprint_forward`); None hides the pixel.

    Returns
    -------
    out : tensor of shape (N, C_out, *spatial)
    """
    if footprint is not None:
        return footprint_forward(forward, x, footprint, stride=stride, fill=fill,
                                 generator=generator, images_per_pass=images_per_pass)
    ndim = x.ndim - 2
    n_cosets = core.n_grid_cosets(stride, ndim)
    slices = [(slice(None), slice(None),
               *(slice(o, None, stride) for o in core.grid_offsets(stride, ndim, i)))
              for i in range(n_cosets)]
    source = grid_fill_source(x, fill)
    out = None
    per_chunk = max(1, images_per_pass // n_cosets)
    for start in range(0, len(x), per_chunk):
        chunk = x[start:start + per_chunk]
        k = len(chunk)
        masked = chunk.repeat(n_cosets, *([1] * (ndim + 1)))
        for c, coset in enumerate(slices):
            block = masked[c * k:(c + 1) * k]
            if source is None:
                mask = torch.zeros_like(chunk[:, :1], dtype=torch.bool)
                mask[coset] = True
                block.copy_(fill_masked_torch(chunk, mask, fill, generator))
            else:
                block[coset] = source[start:start + k][coset]
        pred = forward(masked)
        if out is None:
            out = pred.new_empty((len(x), pred.shape[1], *x.shape[2:]))
        for c, coset in enumerate(slices):
            out[start:start + k][coset] = pred[c * k:(c + 1) * k][coset]
    return out


def footprint_forward(forward, x, footprint, *, stride=4, fill="interpolate",
                      generator=None, images_per_pass=64):
    """J-invariant output over a structured partition: each pixel from the pass that hid
    its whole footprint (filled from outside), so it depends on nothing inside it.

    Parameters
    ----------
    forward : callable
        Maps an (M, C, *spatial) stack to the network's (M, C_out, *spatial) output.
    x : tensor of shape (N, C, *spatial)
    footprint : bool ndarray, one odd-length axis per spatial axis
        Centred on the pixel.
    stride : int >= 2, default=4
        Spacing along axes the footprint does not extend along.
    fill : {'interpolate', 'zero', 'median', 'uniform'}, default='interpolate'
        ``'interpolate'`` fills from outside (:func:`._masking.fill_from_outside_torch`).
    generator : torch.Generator or None, default=None
    images_per_pass : int, default=64
        Masked copies handed to ``forward`` at once.

    Returns
    -------
    out : tensor of shape (N, C_out, *spatial)
    """
    spatial = tuple(x.shape[2:])
    strides = footprint_grid_strides(footprint, spatial, stride)
    slices = []
    centres = torch.zeros((int(np.prod(strides)), 1, *spatial), dtype=torch.bool,
                          device=x.device)
    for index in range(len(centres)):
        offsets = np.unravel_index(index, strides)
        coset = tuple(slice(int(o), None, s) for o, s in zip(offsets, strides))
        centres[(index, 0, *coset)] = True
        slices.append((slice(None), slice(None), *coset))
    hidden = dilate_mask(centres, footprint)  # one mask per coset, shared by the images
    out = None
    for i in range(len(x)):
        image = x[i:i + 1]
        for start in range(0, len(slices), max(1, images_per_pass)):
            stop = min(start + max(1, images_per_pass), len(slices))
            masked = fill_footprint(image.expand(stop - start, *image.shape[1:]),
                                    hidden[start:stop], fill, generator)
            pred = forward(masked)
            if out is None:
                out = pred.new_empty((len(x), pred.shape[1], *spatial))
            for c in range(start, stop):
                out[i:i + 1][slices[c]] = pred[c - start:c - start + 1][slices[c]]
    return out
