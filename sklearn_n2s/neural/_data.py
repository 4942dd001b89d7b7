"""Image stacks as torch tensors, and the batch loader that slices them.

Arrays travel as (N, C, H, W) float32 tensors: :func:`images_to_tensor` and
:func:`tensor_to_images` convert between the (n, H, W[, C]) stacks of the estimator API
and that layout. :class:`ImageBatchLoader` batches such a tensor by slicing, instead of
collating one item at a time as a :class:`~torch.utils.data.DataLoader` does; a last batch
of a single image joins the previous batch (batch norm cannot train on one small image).
"""

import math

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch.utils.data import DataLoader, Subset


def images_to_tensor(X, channel_axis=None, device="cpu"):
    """An (N, C, H, W) float32 tensor of an (n, H, W) or (n, H, W, C) float stack.

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, H, W, C)
    channel_axis : None or -1, default=None
    device : str or torch.device, default='cpu'

    Returns
    -------
    x : float32 tensor of shape (n, C, H, W), contiguous, on ``device``
    """
    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    x = x.unsqueeze(1) if channel_axis is None else x.permute(0, 3, 1, 2)
    return x.contiguous().to(device)


def tensor_to_images(x, channel_axis=None, dtype=np.float32):
    """The inverse of :func:`images_to_tensor`: a numpy stack of the given dtype.

    Parameters
    ----------
    x : tensor of shape (N, C, H, W)
    channel_axis : None or -1, default=None
        None drops the channel axis (C must be 1); -1 moves it last.
    dtype : numpy dtype, default=np.float32

    Returns
    -------
    X : ndarray of shape (N, H, W) or (N, H, W, C)
    """
    out = x.detach().cpu()
    out = out[:, 0] if channel_axis is None else out.permute(0, 2, 3, 1)
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
    """The (N, C, H, W) tensor behind a skorch Dataset or a Subset of one, else None.

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
    dataset : skorch Dataset (or Subset of one) holding an (N, C, H, W) tensor
    batch_size : int, default=32
    shuffle : bool, default=False
        A new permutation every epoch, drawn from ``random_state``.
    random_state : int, RandomState or None, default=None
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, random_state=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = check_random_state(random_state)

    def __len__(self):
        if _holds_tensor(self.dataset):
            return len(batch_bounds(len(self.dataset), self.batch_size))
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        X = stacked_tensor(self.dataset)
        if X is None:
            yield from DataLoader(self.dataset, batch_size=self.batch_size, shuffle=self.shuffle)
            return
        n = X.shape[0]
        order = self.random_state.permutation(n) if self.shuffle else np.arange(n)
        for start, stop in batch_bounds(n, self.batch_size):
            batch = X[torch.as_tensor(order[start:stop])]
            yield batch, batch
