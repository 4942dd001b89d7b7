"""A faithful re-implementation of the Noise2Self reference notebook loop (the peer).

What github.com/czbiohub-sf/noise2self does in ``mask.py`` and the notebook
"Intro to Self-Supervised Neural Nets", reproduced as is, weak spots included:

- the grid mask of each phase is built pixel by pixel in a Python double loop;
- ``Masker(width=4, mode='interpolate')``: masked pixels become a zero-padded 3x3
  convolution with the normalised centre-less kernel (faces 1, diagonals 1/2), one
  channel;
- one mask phase per batch, ``phase = batch index`` (so the 16 phases cycle);
- BabyUnet in NCHW, Adam with lr 1e-3, batch 32, shuffled;
- loss ``MSELoss(output * mask, noisy * mask)`` (the mean over all pixels, i.e. the masked
  MSE divided by 16: Adam is insensitive to that scale);
- J-invariant inference ``Masker.infer_full_image``: one wasted pass on phase 0, then the
  16 masked passes, each accumulated on the CPU, with autograd left on.

The only changes: the module is :class:`sklearn_n2s.neural.BabyUnet` (the same net for
both loops; the same architecture as the reference's ``models/babyunet.py`` since its fix
of December 2019, with any image size), and inference runs in eval mode (the notebook
leaves batch norm in train mode, which uses batch statistics and is not J-invariant).
"""

import time

import numpy as np
import torch
from torch.nn import MSELoss
from torch.optim import Adam

from sklearn_n2s.neural import BabyUnet


def pixel_grid_mask(shape, patch_size, phase_x, phase_y):
    """The reference's mask: a Python loop over every pixel."""
    A = torch.zeros(shape[-2:])
    for i in range(shape[-2]):
        for j in range(shape[-1]):
            if i % patch_size == phase_x and j % patch_size == phase_y:
                A[i, j] = 1
    return torch.Tensor(A)


def interpolate_mask(tensor, mask, mask_inv):
    kernel = np.array([[0.5, 1.0, 0.5], [1.0, 0.0, 1.0], [0.5, 1.0, 0.5]])
    kernel = torch.Tensor(kernel[np.newaxis, np.newaxis])
    kernel = kernel / kernel.sum()
    filtered = torch.nn.functional.conv2d(tensor, kernel, stride=1, padding=1)
    return filtered * mask + tensor * mask_inv


class Masker:
    """``mask.Masker(width=4, mode='interpolate')`` of the reference."""

    def __init__(self, width=4):
        self.grid_size = width
        self.n_masks = width**2

    def mask(self, X, i):
        phasex = i % self.grid_size
        phasey = (i // self.grid_size) % self.grid_size
        mask = pixel_grid_mask(X[0, 0].shape, self.grid_size, phasex, phasey)
        mask_inv = torch.ones(mask.shape) - mask
        return interpolate_mask(X, mask, mask_inv), mask

    def infer_full_image(self, X, model):
        net_input, mask = self.mask(X, 0)
        net_output = model(net_input)  # the reference's extra pass, result unused
        acc_tensor = torch.zeros(net_output.shape).cpu()
        for i in range(self.n_masks):
            net_input, mask = self.mask(X, i)
            net_output = model(net_input)
            acc_tensor = acc_tensor + (net_output * mask).cpu()
        return acc_tensor


def train_reference(noisy, *, epochs, batch_size=32, lr=1e-3, seed=0, targets=None,
                    on_epoch_end=None):
    """Train BabyUnet with the reference loop; ``targets`` given = Noise2Truth.

    Parameters
    ----------
    noisy : float32 ndarray (n, H, W)
    targets : None or float32 ndarray (n, H, W)
        Clean targets: plain supervised MSE on every pixel, no masking.
    on_epoch_end : callable(model, epoch, train_seconds) or None

    Returns
    -------
    model : BabyUnet (eval mode), train_seconds : float (training only)
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = BabyUnet()
    masker = Masker(width=4)
    loss_function = MSELoss()
    optimizer = Adam(model.parameters(), lr=lr)
    data = torch.from_numpy(noisy[:, None])
    clean = None if targets is None else torch.from_numpy(targets[:, None])
    train_seconds = 0.0
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.from_numpy(rng.permutation(len(data)))
        for i, first in enumerate(range(0, len(data), batch_size)):
            index = order[first:first + batch_size]
            noisy_images = data[index]
            if clean is None:
                net_input, mask = masker.mask(noisy_images, i)
                net_output = model(net_input)
                loss = loss_function(net_output * mask, noisy_images * mask)
            else:
                loss = loss_function(model(noisy_images), clean[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train_seconds += time.perf_counter() - start
        if on_epoch_end is not None:
            model.eval()
            on_epoch_end(model, epoch, train_seconds)
    return model.eval(), train_seconds


def reference_single_pass(model, noisy, batch_size=256):
    """The notebook's ``simple_output = model(noisy)``, batched, no_grad for speed."""
    model.eval()
    with torch.no_grad():
        outs = [model(torch.from_numpy(noisy[i:i + batch_size, None]))
                for i in range(0, len(noisy), batch_size)]
    return torch.cat(outs)[:, 0].numpy()


def reference_invariant(model, noisy, batch_size=32):
    """``Masker.infer_full_image`` over a stack, in batches of 32 (autograd on)."""
    model.eval()
    masker = Masker(width=4)
    outs = [masker.infer_full_image(torch.from_numpy(noisy[i:i + batch_size, None]), model)
            for i in range(0, len(noisy), batch_size)]
    return torch.cat(outs)[:, 0].detach().numpy()
