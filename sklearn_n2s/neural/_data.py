"""Image stacks as torch tensors, and the batch loaders that slice them.

Arrays travel as (N, C, *spatial) float32 tensors (1 to 3 spatial axes):
:func:`images_to_tensor` and :func:`tensor_to_images` convert between the
(n, *spatial[, C]) stacks of the estimator API and that layout. :class:`ImageBatchLoader`
batches such a tensor by slicing, instead of collating one item at a time as a
:class:`~torch.utils.data.DataLoader` does; a last batch of a single image joins the
previous batch (batch norm cannot train on one small image). :class:`PatchBatchLoader`
draws batches of random patches instead, each flipped along random axes and rotated by a
random multiple of 90 degrees in the plane of the last two axes (where the patch is
square there): these maps send the pixel grid onto itself, so a mask or a blind spot
stays exact, and one large image or volume becomes a training set. Both loaders take a
``budget``: the number of batches they yield over all their epochs together, so that a
fit runs an exact number of optimiser steps.
"""

import math

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch.utils.data import DataLoader, Subset


def images_to_tensor(X, channel_axis=None, device="cpu"):
    """An (N, C, *spatial) float32 tensor of an (n, *spatial) or (n, *spatial, C) stack.

    Parameters
    ----------
    X : ndarray of shape (n, *spatial) or (n, *spatial, C)
    channel_axis : None or -1, default=None
    device : str or torch.device, default='cpu'

    Returns
    -------
    x : float32 tensor of shape (n, C, *spatial), contiguous, on ``device``
    """
    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    x = x.unsqueeze(1) if channel_axis is None else x.movedim(-1, 1)
    return x.contiguous().to(device)


def tensor_to_images(x, channel_axis=None, dtype=np.float32):
    """The inverse of :func:`images_to_tensor`: a numpy stack of the given dtype.

    Parameters
    ----------
    x : tensor of shape (N, C, *spatial)
    channel_axis : None or -1, default=None
        None drops the channel axis (C must be 1); -1 moves it last.
    dtype : numpy dtype, default=np.float32

    Returns
    -------
    X : ndarray of shape (N, *spatial) or (N, *spatial, C)
    """
    out = x.detach().float().cpu()
    out = out[:, 0] if channel_axis is None else out.movedim(1, -1)
    return out.numpy().astype(dtype, copy=False)


def batch_bounds(n, batch_size):
    """``(start, stop)`` of each batch of ``n`` items; a last batch of one joins the previous.

    In training mode a batch norm layer needs more than one value per channel; at the
    bottom of a U-Net a small image has a single one, so a lone last image would stop
    training with an error. It is merged into the batch before it instead (which then
    holds ``batch_size + 1`` images), so every image is still seen once an epoch.

    Parameters
    ----------
    n : int
        Number of items.
    batch_size : int >= 1

    Returns
    -------
    bounds : list of (int, int)

    Examples
    --------
    >>> from sklearn_n2s.neural._data import batch_bounds
    >>> batch_bounds(7, 3)
    [(0, 3), (3, 7)]
    >>> batch_bounds(1, 3)
    [(0, 1)]
    """
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [(start, min(next_start, n))
            for start, next_start in zip(starts, [*starts[1:], n])]


def _holds_tensor(dataset):
    """Whether :func:`stacked_tensor` finds a tensor (without indexing a Subset)."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return torch.is_tensor(getattr(dataset, "X", None))


def stacked_tensor(dataset):
    """The (N, C, *spatial) tensor behind a skorch Dataset or a Subset of one, else None.

    Parameters
    ----------
    dataset : torch Dataset

    Returns
    -------
    X : tensor or None
    """
    if isinstance(dataset, Subset):
        base = stacked_tensor(dataset.dataset)
        return None if base is None else base[torch.as_tensor(dataset.indices)]
    X = getattr(dataset, "X", None)
    return X if torch.is_tensor(X) else None


class ImageBatchLoader:
    """Batches of an image tensor by slicing, instead of per-item collation.

    Yields ``(X_batch, X_batch)``: in self-supervised training the target is the input.
    A last batch of a single image joins the previous batch (see :func:`batch_bounds`).
    Falls back to a :class:`~torch.utils.data.DataLoader` for other datasets.

    Parameters
    ----------
    dataset : skorch Dataset (or Subset of one) holding an (N, C, *spatial) tensor
    batch_size : int, default=32
    shuffle : bool, default=False
        A new permutation every epoch, drawn from ``random_state``.
    random_state : int, RandomState or None, default=None
    budget : int or None, default=None
        Batches yielded over all iterations together; an iteration stops early when it
        is spent. None: every iteration is a whole epoch.
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, random_state=None,
                 budget=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = check_random_state(random_state)
        self.budget = budget
        self.yielded_ = 0

    def __len__(self):
        if _holds_tensor(self.dataset):
            return len(batch_bounds(len(self.dataset), self.batch_size))
        return math.ceil(len(self.dataset) / self.batch_size)

    def _spent(self):
        return self.budget is not None and self.yielded_ >= self.budget

    def __iter__(self):
        X = stacked_tensor(self.dataset)
        if X is None:
            for batch in DataLoader(self.dataset, batch_size=self.batch_size,
                                    shuffle=self.shuffle):
                if self._spent():
                    return
                self.yielded_ += 1
                yield batch
            return
        n = X.shape[0]
        order = self.random_state.permutation(n) if self.shuffle else np.arange(n)
        for start, stop in batch_bounds(n, self.batch_size):
            if self._spent():
                return
            self.yielded_ += 1
            batch = X[torch.as_tensor(order[start:stop])]
            yield batch, batch


def patch_shape(spatial_shape, patch_size):
    """The shape of the patches of :class:`PatchBatchLoader`: ``patch_size`` per axis,
    or the whole axis when it is shorter."""
    return tuple(min(int(patch_size), int(n)) for n in spatial_shape)


def patches_per_epoch(n_pixels, patch_pixels, batch_size):
    """Batches of one patch epoch: as many patch pixels as the data holds (at least 1)."""
    return max(1, math.ceil(n_pixels / (patch_pixels * batch_size)))


def augment(patch, rng):
    """A random flip along every spatial axis and, when the last two axes are equal, a
    random rotation by a multiple of 90 degrees in their plane.

    Both map the pixel grid onto itself (each output pixel is one input pixel), so a
    mask or a blind spot drawn afterwards is as exact as on the original patch.

    Parameters
    ----------
    patch : tensor of shape (C, *spatial)
    rng : numpy.random.RandomState

    Returns
    -------
    patch : tensor of the same shape
    """
    ndim = patch.ndim - 1
    flips = [1 + axis for axis in range(ndim) if rng.randint(2)]
    if flips:
        patch = torch.flip(patch, flips)
    if ndim >= 2 and patch.shape[-1] == patch.shape[-2]:
        k = int(rng.randint(4))
        if k:
            patch = torch.rot90(patch, k, dims=(-2, -1))
    return patch


class PatchBatchLoader:
    """Batches of random patches of an image tensor, with flips and 90-degree rotations.

    Every batch holds ``batch_size`` patches, each from an image drawn at random, at a
    random position, then passed through :func:`augment` (when ``augment``). Yields
    ``(X_batch, X_batch)``.

    Parameters
    ----------
    dataset : skorch Dataset (or Subset of one) holding an (N, C, *spatial) tensor
    batch_size : int, default=32
    patch_size : int, default=64
        Side of the patches (the whole axis where an image is shorter).
    n_batches : int or None, default=None
        Batches per iteration (epoch); None: :func:`patches_per_epoch`, as many patch
        pixels as the images hold.
    augment : bool, default=True
        Random flips and rotations.
    random_state : int, RandomState or None, default=None
    budget : int or None, default=None
        Batches over all iterations together (see :class:`ImageBatchLoader`).

    Examples
    --------
    >>> import torch
    >>> from skorch.dataset import Dataset
    >>> from sklearn_n2s.neural._data import PatchBatchLoader
    >>> loader = PatchBatchLoader(Dataset(torch.zeros(1, 1, 100, 80)), batch_size=4,
    ...                           patch_size=32, random_state=0)
    >>> len(loader), next(iter(loader))[0].shape
    (2, torch.Size([4, 1, 32, 32]))
    """

    def __init__(self, dataset, batch_size=32, patch_size=64, n_batches=None, augment=True,
                 random_state=None, budget=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.patch_size = patch_size
        self.n_batches = n_batches
        self.augment = augment
        self.random_state = check_random_state(random_state)
        self.budget = budget
        self.yielded_ = 0

    def _tensor(self):
        X = stacked_tensor(self.dataset)
        if X is None:
            raise TypeError("PatchBatchLoader needs a dataset holding an image tensor.")
        return X

    def __len__(self):
        if self.n_batches is not None:
            return int(self.n_batches)
        X = self._tensor()
        shape = patch_shape(X.shape[2:], self.patch_size)
        return patches_per_epoch(X[0, 0].numel() * len(X), math.prod(shape), self.batch_size)

    def __iter__(self):
        X = self._tensor()
        spatial = tuple(X.shape[2:])
        shape = patch_shape(spatial, self.patch_size)
        rng = self.random_state
        for _ in range(len(self)):
            if self.budget is not None and self.yielded_ >= self.budget:
                return
            self.yielded_ += 1
            patches = []
            for index in rng.randint(len(X), size=self.batch_size):
                corner = [rng.randint(n - p + 1) for n, p in zip(spatial, shape)]
                window = tuple(slice(c, c + p) for c, p in zip(corner, shape))
                patch = X[(int(index), slice(None), *window)]
                patches.append(augment(patch, rng) if self.augment else patch)
            batch = torch.stack(patches).contiguous()
            yield batch, batch
