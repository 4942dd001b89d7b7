"""Inference helpers for image networks: tiles, and the exact J-invariant output.

:func:`invariant_forward` hides every coset of a stride-``stride`` grid in turn and
reads each pixel from the pass that hid it. The ``stride**2`` masked copies of a chunk
of images are built by slices and run as one large batch (no wasted extra pass, unlike
the reference code's ``infer_full_image``). :func:`forward_tiled` runs a network on
overlapping tiles, for images too big for memory.
"""

import torch

from .. import masking as core
from ._masking import fill_masked_torch, grid_fill_source

#: Context kept around each tile, larger than BabyUnet's receptive radius (about 26
#: pixels) and a multiple of 4, so tiles line up with the pooling grid.
TILE_MARGIN = 32


def forward_tiled(run, x, tile_size=None, margin=TILE_MARGIN):
    """Output of ``run`` for a batch, whole or tile by tile (same result in the core).

    Parameters
    ----------
    run : callable
        Maps an (N, C, h, w) tensor to an (N, C_out, h, w) tensor.
    x : tensor of shape (N, C, H, W)
    tile_size : int or None, default=None
        Side of the tiles whose output is kept; None runs whole images.
    margin : int, default=TILE_MARGIN
        Context added around each tile (cut off the image border).

    Returns
    -------
    out : tensor of shape (N, C_out, H, W)
    """
    height, width = x.shape[-2:]
    if tile_size is None or (height <= tile_size and width <= tile_size):
        return run(x)
    tile = tile_size
    out = None
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            ya, xa = max(0, y0 - margin), max(0, x0 - margin)
            yb = min(height, y0 + tile + margin)
            xb = min(width, x0 + tile + margin)
            pred = run(x[:, :, ya:yb, xa:xb])
            if out is None:
                out = pred.new_empty((x.shape[0], pred.shape[1], height, width))
            out[:, :, y0:y0 + tile, x0:x0 + tile] = (
                pred[:, :, y0 - ya:y0 - ya + tile, x0 - xa:x0 - xa + tile])
    return out


def invariant_forward(forward, x, *, stride=4, fill="interpolate", generator=None,
                      images_per_pass=64):
    """Exact J-invariant output: each grid coset predicted from a pass that hid it.

    Parameters
    ----------
    forward : callable
        Maps an (M, C, H, W) stack to the network's (M, C, H, W) output.
    x : tensor of shape (N, C, H, W)
    stride : int >= 2, default=4
        ``stride**2`` cosets, so ``stride**2`` masked copies of every image.
    fill : {'interpolate', 'zero', 'median', 'uniform'}, default='interpolate'
    generator : torch.Generator or None, default=None
        Used by the ``'uniform'`` fill only.
    images_per_pass : int, default=64
        Masked copies handed to ``forward`` at once (at least one image's cosets).

    Returns
    -------
    out : tensor like x
    """
    n_cosets = core.n_grid_cosets(stride, 2)
    offsets = [core.grid_offsets(stride, 2, i) for i in range(n_cosets)]
    source = grid_fill_source(x, fill)
    out = torch.empty_like(x)
    per_chunk = max(1, images_per_pass // n_cosets)
    for start in range(0, len(x), per_chunk):
        chunk = x[start:start + per_chunk]
        k = len(chunk)
        masked = chunk.repeat(n_cosets, 1, 1, 1)
        for c, (oy, ox) in enumerate(offsets):
            block = masked[c * k:(c + 1) * k]
            if source is None:
                mask = torch.zeros_like(chunk[:, :1], dtype=torch.bool)
                mask[:, :, oy::stride, ox::stride] = True
                block.copy_(fill_masked_torch(chunk, mask, fill, generator))
            else:
                src = source[start:start + k]
                block[:, :, oy::stride, ox::stride] = src[:, :, oy::stride, ox::stride]
        pred = forward(masked)
        for c, (oy, ox) in enumerate(offsets):
            out[start:start + k, :, oy::stride, ox::stride] = (
                pred[c * k:(c + 1) * k, :, oy::stride, ox::stride])
    return out
