"""N2SNet: a neural Noise2Self denoiser as a skorch net and a scikit-learn estimator.

Training (Batson & Royer 2019, section 4): every batch hides a subset J of pixels,
replaces them by a fill that does not look at them, and penalises the network only on J
(the mean squared error over the masked pixels, normalised by their number). Inference
comes in two forms:

- :meth:`N2SNet.transform`: the network applied once to the data (the best output);
- :meth:`N2SNet.invariant_transform`: the exact J-invariant output. Every coset of a
  stride-``stride`` grid is hidden in turn, and each pixel is taken from the pass that
  hid it. The ``stride**2`` masked stacks are built by slices and run as large batches
  under ``torch.no_grad`` in eval mode (no wasted extra pass), in tiles for big images.
  This is what :meth:`N2SNet.score` and :class:`~sklearn_n2s.SelfSupervisedScorer` rank.

Masks and fills have the semantics of :mod:`sklearn_n2s.masking`. The two fills a
network meets every batch are computed in torch for speed: ``'interpolate'`` is a
depthwise convolution with the same centre-less kernel (1 on faces, 1/2 on diagonals)
normalised over the unmasked in-image neighbours, which equals
:func:`sklearn_n2s.masking.fill_masked`; ``'median'`` is delegated to that function.

This module imports torch and skorch; ``import sklearn_n2s`` does not.
"""

import contextlib
import inspect
import math

import numpy as np
import torch
import torch.nn.functional as F
import tqdm
from sklearn.base import TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import ProgressBar
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch.utils.data import DataLoader, Subset

from .. import masking
from ..base import SelfSupervisedScoreMixin
from ..utils._losses import get_loss
from ..utils._validation import check_channel_axis, check_option, check_positive, check_stack
from ._babyunet import DOWNSAMPLING, BabyUnet

MASKINGS = ("grid", "random")
NET_FILLS = ("interpolate", "zero", "median", "uniform")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "bfloat16")
#: Smallest height and width accepted: the U-Net pools twice by 2.
MIN_SIDE = DOWNSAMPLING
#: Context kept around each tile, larger than BabyUnet's receptive radius (about 26
#: pixels) and a multiple of 4, so tiles line up with the pooling grid.
TILE_MARGIN = 32
_SEED_MAX = 2**31 - 1

# Centre-less 3x3 neighbour weights of the 'interpolate' fill (faces 1, diagonals 1/2).
_NEIGHBOUR_WEIGHTS = ((0.5, 1.0, 0.5), (1.0, 0.0, 1.0), (0.5, 1.0, 0.5))


# ----------------------------------------------------------------- torch-side masking
def _per_image_mean(x, keep):
    """Mean of the kept values of every image and channel, 0 where none is kept."""
    total = (x * keep).sum(dim=(2, 3), keepdim=True)
    count = keep.sum(dim=(2, 3), keepdim=True)
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))


def neighbour_fill(x, keep):
    """Weighted mean of the kept in-image 3x3 neighbours of every pixel, per channel.

    ``x`` is (N, C, H, W); ``keep`` broadcasts to it (1 where visible). Pixels whose
    neighbours are all hidden get the mean of the kept pixels of their image and channel,
    as :func:`sklearn_n2s.masking.fill_masked` does.
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
    filled = masking.fill_masked(nhwc, spatial_mask, "median", channel_axis=-1)
    return torch.from_numpy(np.ascontiguousarray(filled)).permute(0, 3, 1, 2).to(x.device)


def fill_masked_torch(x, mask, fill="interpolate", generator=None):
    """Torch version of :func:`sklearn_n2s.masking.fill_masked` for (N, C, H, W) stacks.

    Parameters
    ----------
    x : tensor of shape (N, C, H, W)
    mask : bool tensor of shape (N, 1, H, W)
        True where the pixel (all its channels) is hidden.
    fill : {'interpolate', 'zero', 'median', 'uniform'}
    generator : torch.Generator or None
        Used by ``'uniform'``.

    Returns
    -------
    x_masked : tensor like x whose hidden values do not depend on the hidden values of x.
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
    """One random grid coset per image: (N, 1, H, W) bool, built by broadcasting."""
    offsets = torch.randint(stride, (2, n_images, 1, 1, 1), generator=generator)
    rows = (torch.arange(height) % stride).view(1, 1, height, 1)
    cols = (torch.arange(width) % stride).view(1, 1, 1, width)
    return (rows == offsets[0]) & (cols == offsets[1])


def random_batch_mask(n_images, height, width, density, generator):
    """Bernoulli mask with the given density; never empty (one pixel at least)."""
    mask = torch.rand((n_images, 1, height, width), generator=generator) < density
    if not mask.any():
        flat = mask.view(-1)
        flat[torch.randint(flat.numel(), (1,), generator=generator)] = True
    return mask


# ---------------------------------------------------------------------- data loading
def _stacked_tensor(dataset):
    """The (N, C, H, W) tensor behind a skorch Dataset or a Subset of one, else None."""
    if isinstance(dataset, Subset):
        base = _stacked_tensor(dataset.dataset)
        return None if base is None else base[torch.as_tensor(dataset.indices)]
    X = getattr(dataset, "X", None)
    return X if torch.is_tensor(X) else None


class ImageBatchLoader:
    """Batches of an image tensor by slicing, instead of per-item collation.

    Yields ``(X_batch, X_batch)``: in self-supervised training the target is the input.
    Falls back to a :class:`~torch.utils.data.DataLoader` for other datasets.

    Parameters
    ----------
    dataset : skorch Dataset (or Subset of one) holding an (N, C, H, W) tensor
    batch_size : int
    shuffle : bool
        A new permutation every epoch, drawn from ``random_state``.
    random_state : int, RandomState or None
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, random_state=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = check_random_state(random_state)

    def __len__(self):
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        X = _stacked_tensor(self.dataset)
        if X is None:
            yield from DataLoader(self.dataset, batch_size=self.batch_size, shuffle=self.shuffle)
            return
        n = X.shape[0]
        order = self.random_state.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            batch = X[torch.as_tensor(order[start:start + self.batch_size])]
            yield batch, batch


class EpochProgressBar(ProgressBar):
    """skorch's per-epoch progress bar, silent when the net's ``verbose`` is 0."""

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        if net.verbose:
            super().on_epoch_begin(net, dataset_train=dataset_train,
                                   dataset_valid=dataset_valid, **kwargs)
        else:
            self.pbar_ = tqdm.tqdm(disable=True)


def _accepts(module_cls, name):
    try:
        return name in inspect.signature(module_cls).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------- the net
class N2SNet(SelfSupervisedScoreMixin, TransformerMixin, NeuralNet):
    """Noise2Self neural denoiser: masked self-supervised training of a U-Net.

    A :class:`skorch.NeuralNet` (parameters are routed the skorch way:
    ``module__width``, ``optimizer__lr``, ``max_epochs``, ``batch_size``, ``device``) and
    a scikit-learn transformer: ``fit(X)`` on noisy images alone, ``transform(X)``,
    ``invariant_transform(X)`` and ``score(X)`` (minus the self-supervised loss), so
    :class:`~sklearn.model_selection.GridSearchCV` with
    :class:`~sklearn_n2s.SelfSupervisedScorer` tunes it on held-out images.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=BabyUnet
        Maps (N, C, H, W) to (N, C, H, W). A class that accepts ``n_channels_in`` gets
        the channel count of the data unless ``module__n_channels_in`` is given.
    criterion : torch loss class, default=torch.nn.MSELoss
        Applied to the masked pixels only (hence normalised by their number).
    optimizer : torch optimizer class, default=torch.optim.Adam
        Adam and AdamW are created with ``fused=True`` unless ``optimizer__fused`` or
        ``optimizer__foreach`` is given.
    lr : float, default=3e-3
        Peak learning rate (with the cosine schedule, 3e-3 beat the reference's
        constant 1e-3 by about 0.7 dB after 3 epochs on MNIST, see
        ``benchmarks/results/neural.md``).
    max_epochs : int, default=10
    batch_size : int, default=32
    masking : {'grid', 'random'}, default='grid'
        ``'grid'``: each image of a batch hides one random coset of a stride-``stride``
        grid (``1 / stride**2`` of its pixels). ``'random'``: each pixel is hidden with
        probability ``density``.
    stride : int, default=4
        Grid stride, for training with ``masking='grid'`` and always for the
        J-invariant inference (``stride**2`` passes).
    density : float, default=1/16
        Fraction of pixels hidden per batch with ``masking='random'``.
    fill : {'interpolate', 'zero', 'median', 'uniform'}, default='interpolate'
        What the network sees at hidden pixels, see :func:`sklearn_n2s.masking.fill_masked`.
    lr_schedule : {'constant', 'cosine'}, default='cosine'
        ``'cosine'`` warms up linearly over the first 5% of steps, then decays to 0
        by the last step of ``fit``.
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis: (n, H, W, C).
    tile_size : int or None, default=None
        Run inference on tiles of this side (a multiple of 4) with a margin of
        ``TILE_MARGIN`` pixels, for images too big for memory. None: whole images.
    inference_batch_size : int, default=64
        Images per forward pass at inference (the masked copies count as images;
        larger batches of small images ran slower on CPU, out of cache).
    channels_last : bool, default=False
        Use the channels-last memory format (NHWC) for the module and its inputs.
    precision : {'float32', 'bfloat16'}, default='float32'
        ``'bfloat16'`` trains the module under ``torch.autocast`` (weights, optimizer
        and loss stay float32): about 1.3x faster training on CPUs with AVX512-BF16 or
        AMX and on recent GPUs, much slower on CPUs without them. Inference always
        runs in float32 (with batch norm folded, it was faster than bfloat16 here).
    num_threads : int or None, default=None
        torch intra-op threads during fit and inference (restored afterwards); None
        leaves torch's setting alone.
    random_state : int, RandomState or None, default=None
        Seeds the weight initialisation, the shuffling and every mask draw, so that a
        run with an int is repeatable (on the same device and thread count).
    train_split : skorch split or None, default=None
        Held-out images for a validation loss each epoch (masked, no gradient).
    verbose : int, default=0
        0: silent. 1: skorch's epoch log and a progress bar per epoch.
    device : str, default='cpu'
        ``'cuda'`` to train on a GPU.
    **kwargs
        Other :class:`skorch.NeuralNet` parameters (``callbacks``, ``warm_start``,
        ``iterator_train``, prefixed ``module__*``, ``optimizer__*``...).

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network.
    n_channels_in_ : int
        Channels of the images seen in ``fit``.
    n_features_in_ : int
        Values per image seen in ``fit`` (H * W * C).
    history_ : skorch History
        Per-epoch and per-batch losses.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.neural._net import N2SNet
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(8, 16, 16)).astype(np.float32)
    >>> net = N2SNet(module__width=4, max_epochs=1, random_state=0).fit(X)
    >>> net.transform(X).shape, net.transform(X).dtype
    ((8, 16, 16), dtype('float32'))
    >>> net.invariant_transform(X[:2]).shape
    (2, 16, 16)
    """

    def __init__(self, module=BabyUnet, *, criterion=torch.nn.MSELoss,
                 optimizer=torch.optim.Adam, lr=3e-3, max_epochs=10, batch_size=32,
                 masking="grid", stride=4, density=1 / 16, fill="interpolate",
                 lr_schedule="cosine", channel_axis=None, tile_size=None,
                 inference_batch_size=64, channels_last=False, precision="float32",
                 num_threads=None,
                 random_state=None, train_split=None, iterator_train=ImageBatchLoader,
                 iterator_valid=ImageBatchLoader, verbose=0, device="cpu", **kwargs):
        super().__init__(
            module, criterion, optimizer=optimizer, lr=lr, max_epochs=max_epochs,
            batch_size=batch_size, iterator_train=iterator_train,
            iterator_valid=iterator_valid, train_split=train_split, verbose=verbose,
            device=device, **kwargs,
        )
        self.masking = masking
        self.stride = stride
        self.density = density
        self.fill = fill
        self.lr_schedule = lr_schedule
        self.channel_axis = channel_axis
        self.tile_size = tile_size
        self.inference_batch_size = inference_batch_size
        self.channels_last = channels_last
        self.precision = precision
        self.num_threads = num_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    def _check_n2s_params(self):
        check_option(self.masking, "masking", MASKINGS)
        check_option(self.fill, "fill", NET_FILLS)
        check_option(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        check_option(self.precision, "precision", PRECISIONS)
        check_channel_axis(self.channel_axis)
        check_positive(self.stride, "stride", integer=True)
        if self.stride < 2:
            raise ValueError(f"stride must be >= 2, got {self.stride}.")
        check_positive(self.density, "density")
        if not self.density < 1:
            raise ValueError(f"density must be in (0, 1), got {self.density!r}.")
        check_positive(self.inference_batch_size, "inference_batch_size", integer=True)
        if self.tile_size is not None:
            check_positive(self.tile_size, "tile_size", integer=True)
            if self.tile_size % DOWNSAMPLING:
                raise ValueError(f"tile_size must be a multiple of 4, got {self.tile_size}.")
        if self.num_threads is not None:
            check_positive(self.num_threads, "num_threads", integer=True)

    def get_default_callbacks(self):
        return [*super().get_default_callbacks(), ("progress_bar", EpochProgressBar())]

    def _rng(self):
        if getattr(self, "rng_", None) is None:
            self.rng_ = check_random_state(self.random_state)
        return self.rng_

    def _seed(self):
        return int(self._rng().randint(_SEED_MAX))

    @contextlib.contextmanager
    def _threads(self):
        if self.num_threads is None:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    # --------------------------------------------------------------------- data
    def _check_images(self, X, *, reset):
        """Validate X; return the float stack (never the caller's array)."""
        Xf = check_stack(X, channel_axis=self.channel_axis, min_spatial_size=MIN_SIDE)
        n_spatial = Xf.ndim - 1 - (self.channel_axis is not None)
        if n_spatial != 2:
            layout = "(n_samples, height, width" + (
                ", n_channels)" if self.channel_axis is not None else ")")
            raise ValueError(
                f"N2SNet denoises 2-D images: X must be {layout}, got shape {Xf.shape} "
                f"({n_spatial} spatial axes)."
            )
        n_channels = Xf.shape[-1] if self.channel_axis is not None else 1
        if reset:
            self.n_channels_in_ = n_channels
            self.n_features_in_ = int(np.prod(Xf.shape[1:]))
        elif n_channels != self.n_channels_in_:
            raise ValueError(
                f"X has {n_channels} channel(s), but N2SNet was fitted on images with "
                f"{self.n_channels_in_}."
            )
        return Xf

    def _to_tensor(self, Xf):
        x = torch.from_numpy(np.ascontiguousarray(Xf, dtype=np.float32))
        x = x.unsqueeze(1) if self.channel_axis is None else x.permute(0, 3, 1, 2)
        return x.contiguous().to(self.device)

    def _to_numpy(self, x, Xf):
        out = x.detach().cpu()
        out = out[:, 0] if self.channel_axis is None else out.permute(0, 2, 3, 1)
        return out.numpy().astype(Xf.dtype, copy=False)

    # ------------------------------------------------------------- initialisation
    def initialize_module(self):
        """Build the module, seeded by ``random_state``, with the data's channel count."""
        kwargs = self.get_params_for("module")
        if not isinstance(self.module, torch.nn.Module) and _accepts(self.module, "n_channels_in"):
            kwargs.setdefault("n_channels_in", getattr(self, "n_channels_in_", 1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed())
            module = self.initialized_instance(self.module, kwargs)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if not hasattr(self, "n_channels_in_"):
            self.n_channels_in_ = getattr(module, "n_channels_in", 1)
        self.module_ = module
        return self

    def get_params_for_optimizer(self, prefix, named_parameters):
        """skorch's optimizer arguments, with Adam/AdamW fused by default (one kernel
        for all parameters: the small U-Net's optimizer step is mostly overhead)."""
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        optimizer = getattr(self, prefix)
        fusable = optimizer in (torch.optim.Adam, torch.optim.AdamW)
        if fusable and "fused" not in kwargs and "foreach" not in kwargs:
            kwargs["fused"] = True
        return args, kwargs

    # -------------------------------------------------------------------- training
    def fit(self, X, y=None, **fit_params):
        """Train the network on noisy images alone (``y`` is ignored).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, n_channels])
            Height and width at least 4. Integer images are scaled to [0, 1].
        y : None
            Ignored: the targets are the images themselves.

        Returns
        -------
        self : N2SNet
        """
        self._check_n2s_params()
        Xf = self._check_images(X, reset=True)
        if not self.warm_start or not getattr(self, "initialized_", False):
            self.rng_ = check_random_state(self.random_state)
        with self._threads():
            return super().fit(self._to_tensor(Xf), None, **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Continue training (without re-initialising) on X; see :meth:`fit`."""
        if not torch.is_tensor(X):
            self._check_n2s_params()
            reset = not getattr(self, "initialized_", False)
            X = self._to_tensor(self._check_images(X, reset=reset))
        with self._threads():
            return super().partial_fit(X, None, classes=classes, **fit_params)

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # The schedule spans this call: its length is known once the train iterator
        # exists (see get_iterator); base learning rates are restored afterwards so a
        # warm start begins from them again.
        self.epochs_this_fit_ = self.max_epochs if epochs is None else epochs
        self.step_count_ = 0
        optimizer = self.optimizer_
        self.base_lrs_ = [group["lr"] for group in optimizer.param_groups]
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        finally:
            for group, lr in zip(optimizer.param_groups, self.base_lrs_):
                group["lr"] = lr

    def get_iterator(self, dataset, training=False):
        prefix = "iterator_train" if training else "iterator_valid"
        iterator = self.iterator_train if training else self.iterator_valid
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        if iterator is ImageBatchLoader:
            kwargs.setdefault("shuffle", training)
            kwargs.setdefault("random_state", self._seed())
        elif iterator is DataLoader and training:
            kwargs.setdefault("shuffle", True)
            kwargs.setdefault("generator", torch.Generator().manual_seed(self._seed()))
        loader = iterator(dataset, **kwargs)
        if training:
            self.total_steps_ = max(1, getattr(self, "epochs_this_fit_", self.max_epochs)
                                    * len(loader))
        return loader

    def _schedule_factor(self, step):
        if self.lr_schedule == "constant":
            return 1.0
        warmup = max(1, int(0.05 * self.total_steps_))
        ramp = min(1.0, (step + 1) / warmup)
        return ramp * 0.5 * (1.0 + math.cos(math.pi * step / self.total_steps_))

    def train_step(self, batch, **fit_params):
        if self.lr_schedule != "constant":
            factor = self._schedule_factor(self.step_count_)
            for group, lr in zip(self.optimizer_.param_groups, self.base_lrs_):
                group["lr"] = lr * factor
        step = super().train_step(batch, **fit_params)
        self.step_count_ += 1
        return step

    def mask_batch(self, x):
        """Hide pixels of a batch: return ``(net_input, mask)``, mask (N, 1, H, W)."""
        generator = torch.Generator().manual_seed(self._seed())
        n_images, _, height, width = x.shape
        if self.masking == "grid":
            mask = grid_batch_mask(n_images, height, width, self.stride, generator)
        else:
            mask = random_batch_mask(n_images, height, width, self.density, generator)
        mask = mask.to(x.device)
        if self.masking == "grid" and self.fill == "interpolate":
            # No two pixels of a coset are neighbours: every hidden pixel sees all its
            # neighbours, so the fill is the plain neighbour average (one convolution).
            return torch.where(mask, neighbour_average(x), x), mask
        return fill_masked_torch(x, mask, self.fill, generator), mask

    def infer(self, x, **fit_params):
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.precision == "float32":
            return self.module_(x, **fit_params)
        device_type = torch.device(self.device).type
        with torch.autocast(device_type, dtype=torch.bfloat16):
            out = self.module_(x, **fit_params)
        return out.float()

    def get_loss(self, y_pred, y_true, X=None, training=False, mask=None):
        """Criterion on the masked pixels (all channels) only; everywhere if no mask."""
        y_true = to_tensor(y_true, device=self.device)
        if mask is None:
            return self.criterion_(y_pred, y_true)
        if type(self.criterion_) is torch.nn.MSELoss and self.criterion_.reduction == "mean":
            # Same value as indexing, cheaper: no gather/scatter of the masked pixels.
            weight = mask.to(y_pred.dtype)
            squared = (y_pred - y_true).square() * weight
            return squared.sum() / (weight.sum() * y_pred.shape[1]).clamp_min(1)
        full = mask.expand_as(y_pred)
        return self.criterion_(y_pred[full], y_true[full])

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        Xi = Xi.to(self.device)
        net_input, mask = self.mask_batch(Xi)
        y_pred = self.infer(net_input, **fit_params)
        loss = self.get_loss(y_pred, Xi, X=net_input, training=True, mask=mask)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        Xi, _ = unpack_data(batch)
        Xi = Xi.to(self.device)
        with torch.no_grad():
            net_input, mask = self.mask_batch(Xi)
            y_pred = self.infer(net_input, **fit_params)
            loss = self.get_loss(y_pred, Xi, X=net_input, training=False, mask=mask)
        return {"loss": loss, "y_pred": y_pred}

    # ------------------------------------------------------------------- inference
    def inference_module(self):
        """The module for inference: an eval-mode copy with batch norm folded into the
        convolutions when the module offers it (``fused_for_inference``), in the
        channels-last layout on CPU (about 1.7x faster together for BabyUnet)."""
        self._set_training(False)
        module = self.module_
        if hasattr(module, "fused_for_inference"):
            module = module.fused_for_inference()
        if torch.device(self.device).type == "cpu":
            module = module.to(memory_format=torch.channels_last)
        return module

    @staticmethod
    def _run(module, x):
        return module(x.contiguous(memory_format=torch.channels_last))

    def _forward_tiles(self, module, x):
        """Network output for a batch, whole or tile by tile (same result in the core)."""
        height, width = x.shape[-2:]
        tile = self.tile_size
        if tile is None or (height <= tile and width <= tile):
            return self._run(module, x)
        out = None
        for y0 in range(0, height, tile):
            for x0 in range(0, width, tile):
                ya, xa = max(0, y0 - TILE_MARGIN), max(0, x0 - TILE_MARGIN)
                yb = min(height, y0 + tile + TILE_MARGIN)
                xb = min(width, x0 + tile + TILE_MARGIN)
                pred = self._run(module, x[:, :, ya:yb, xa:xb])
                if out is None:
                    out = pred.new_empty((x.shape[0], pred.shape[1], height, width))
                out[:, :, y0:y0 + tile, x0:x0 + tile] = (
                    pred[:, :, y0 - ya:y0 - ya + tile, x0 - xa:x0 - xa + tile])
        return out

    def _forward_images(self, x, module=None):
        """Eval-mode, no-grad network output for a stack, in inference batches."""
        module = self.inference_module() if module is None else module
        step = self.inference_batch_size
        with torch.no_grad():
            outputs = [self._forward_tiles(module, x[i:i + step].to(self.device))
                       for i in range(0, len(x), step)]
        return torch.cat(outputs)

    def _grid_fill_source(self, x):
        """Fill values valid for every grid coset (stride >= 2), or None for 'uniform'."""
        if self.fill == "interpolate":
            return neighbour_average(x)
        if self.fill == "zero":
            return torch.zeros_like(x)
        if self.fill == "median":
            nhwc = x.permute(0, 2, 3, 1).cpu().numpy()
            source = masking.neighbour_median(nhwc, channel_axis=-1)
            return torch.from_numpy(np.ascontiguousarray(source)).permute(0, 3, 1, 2).to(x)
        return None

    def _invariant_tensor(self, x):
        """J-invariant output: each grid coset predicted from a pass that hid it."""
        stride = self.stride
        n_cosets = masking.n_grid_cosets(stride, 2)
        offsets = [masking.grid_offsets(stride, 2, i) for i in range(n_cosets)]
        source = self._grid_fill_source(x)
        generator = torch.Generator().manual_seed(self._seed())
        module = self.inference_module()
        out = torch.empty_like(x)
        per_chunk = max(1, self.inference_batch_size // n_cosets)
        for start in range(0, len(x), per_chunk):
            chunk = x[start:start + per_chunk]
            k = len(chunk)
            masked = chunk.repeat(n_cosets, 1, 1, 1)
            for c, (oy, ox) in enumerate(offsets):
                block = masked[c * k:(c + 1) * k]
                if source is None:
                    mask = torch.zeros_like(chunk[:, :1], dtype=torch.bool)
                    mask[:, :, oy::stride, ox::stride] = True
                    block.copy_(fill_masked_torch(chunk, mask, self.fill, generator))
                else:
                    src = source[start:start + k]
                    block[:, :, oy::stride, ox::stride] = src[:, :, oy::stride, ox::stride]
            pred = self._forward_images(masked, module)
            for c, (oy, ox) in enumerate(offsets):
                out[start:start + k, :, oy::stride, ox::stride] = (
                    pred[c * k:(c + 1) * k, :, oy::stride, ox::stride])
        return out

    def _prepare(self, X):
        check_is_fitted(self)
        self._check_n2s_params()
        return self._check_images(X, reset=False)

    def transform(self, X):
        """Denoise X with one pass of the network (the output to use).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, n_channels])

        Returns
        -------
        X_denoised : ndarray of the same shape, float32 for float32 input, else float64
        """
        Xf = self._prepare(X)
        with self._threads():
            return self._to_numpy(self._forward_images(self._to_tensor(Xf)), Xf)

    def predict(self, X):
        """Same as :meth:`transform`."""
        return self.transform(X)

    def invariant_transform(self, X):
        """Exact J-invariant prediction: a pixel's output never depends on that pixel.

        Every coset of the stride-``stride`` grid is hidden (filled with ``fill``) in
        one of ``stride**2`` passes, and each pixel is read from the pass that hid it.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, n_channels])

        Returns
        -------
        X_invariant : ndarray of the same shape
        """
        Xf = self._prepare(X)
        with self._threads():
            return self._to_numpy(self._invariant_tensor(self._to_tensor(Xf)), Xf)

    def self_supervised_loss(self, X, loss="mse"):
        """Loss of the J-invariant prediction against X itself (lower is better)."""
        Xf = self._prepare(X)
        with self._threads():
            prediction = self._to_numpy(self._invariant_tensor(self._to_tensor(Xf)), Xf)
        return get_loss(loss)(prediction, Xf)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        tags.requires_fit = True
        tags.non_deterministic = self.random_state is None
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float32", "float64"]
        return tags

