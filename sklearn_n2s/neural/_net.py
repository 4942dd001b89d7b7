"""N2SNet: a neural Noise2Self denoiser as a skorch net and a scikit-learn estimator.

Training (Batson & Royer 2019, section 4): every batch hides a subset J of pixels,
replaces them by a fill that does not look at them (:mod:`._masking`), and penalises the
network only on J (the mean squared error over the masked pixels, normalised by their
number). A *blind-spot* module (class attribute ``blind_spot = True``, such as
``BlindSpotUnet``) never sees the centre pixel by construction: it is trained with the
loss on every pixel and no masking, and its one pass is J-invariant.

The default ``module='auto'`` chooses at ``fit`` from the data (``module_choice_``): the
one-pass :class:`~sklearn_n2s.neural.DilatedBlindSpotNet` (D-BSN) for a pixel blind spot
on noise of one variance (:func:`noise_signal_dependence` at most
:data:`SIGNAL_DEPENDENCE_LIMIT`), where at equal CPU time it beat BabyUnet on MNIST and
on the camera image with a J-invariant output 16x cheaper; masked-trained
:class:`~sklearn_n2s.neural.BabyUnet` for noise that follows the signal (photon counts:
there the blind-spot net, which never sees the pixel, lost 0.6 dB), structured blind
spots, and the ``'ordinary'`` and ``'shrink'`` outputs. ``batch_size`` and ``lr``
``'auto'`` are the measured ones of the module built.

Correlated noise (``blind_spot``): with noise correlated between neighbouring pixels a
single hidden pixel is seen through its neighbours' noise. ``blind_spot`` hides a whole
footprint around each masked pixel instead (half-extents per axis, a boolean footprint,
or ``'auto'``, measured on the training images by
:func:`sklearn_n2s.estimate_noise_correlation`): training masks a random coset of a grid
spaced per axis so that footprints never touch (:func:`sklearn_n2s.masking.footprint_strides`),
hides the footprints, fills them from outside and puts the loss on the coset pixels;
inference reads each pixel from the pass that hid its footprint. Blind-spot modules hide
the centre pixel only and accept ``blind_spot='pixel'`` alone.

Images are stacks ``(n, *spatial[, C])`` with 1, 2 or 3 spatial axes (``spatial_ndim``,
``channel_axis`` as for the classical denoisers); modules that accept ``ndim`` are built
for the data's. Large images train on random patches (``patch_size``) with flips and
90-degree rotations, for a budget of optimiser steps (``max_steps``), so one image or one
volume is a training set.

Inference:

- :meth:`N2SNet.invariant_transform`: the exact J-invariant output. For a masked-trained
  module every coset of a stride-``stride`` grid is hidden in turn, and each pixel is
  taken from the pass that hid it (:func:`._inference.invariant_forward`); for a
  blind-spot module it is one pass. Under ``torch.no_grad`` in eval mode, in tiles for
  big images (a margin of the module's receptive radius: tiled equals whole). This is
  what :meth:`N2SNet.score` and :class:`~sklearn_n2s.SelfSupervisedScorer` rank.
- :meth:`N2SNet.transform`: by ``output``: ``'auto'`` (the default: the posterior
  mean or the one pass, by estimated risk, see the ``output`` parameter),
  ``'ordinary'`` (one unmasked pass), ``'shrink'``
  (``x + lam (f_inv(x) - x)`` with ``lam = sigma**2 / L`` per image,
  :func:`sklearn_n2s.base.shrink_towards_data`), ``'invariant'`` or ``'posterior'``.

Posterior output (Laine, Karras, Lehtinen & Aila 2019, section 3). With
``output='posterior'`` or ``'auto'`` (the default) at fit time the module gets ``2 C``
output channels: a mean ``mu`` and a prior variance ``s2 = softplus(raw) + 1e-6`` of
the clean value given the other pixels. It is trained by the Gaussian negative
log-likelihood of x under ``N(mu, s2 + sigma2)``, with ``sigma2`` the noise variance
(``noise_variance`` or the robust wavelet estimate of the training data,
:attr:`N2SNet.noise_variance_`), on the masked pixels (or every pixel of a blind-spot
module). The posterior mean of the clean value, which adds the centre pixel back, is
``(s2 x + sigma2 mu) / (s2 + sigma2)`` (``sigma2`` estimated per image at inference).
Limits: the noise model is Gaussian with one variance per image; Poisson (photon)
noise, whose variance follows the signal, is modelled by its mean variance only, so
bright pixels are under-smoothed and dark ones over-smoothed
(``benchmarks/bench_neural_single.py`` measures it); with a variance estimate far off,
the posterior mean is off too. Both heads see the same J-invariant input, so
``invariant``, ``shrink`` and ``score`` of such a net use ``mu``.

``output='auto'`` (the default) guards against both limits without clean data: ``fit``
measures how far the noise variance follows the intensity
(:func:`noise_signal_dependence`, :attr:`N2SNet.noise_dependence_`); above
:data:`SIGNAL_DEPENDENCE_LIMIT` (photon counts) ``transform`` returns the one pass.
Otherwise it returns whichever of the posterior mean and the one pass has the lower
Stein's unbiased risk estimate over X (:meth:`N2SNet.output_risks`): for the posterior
mean ``g x + (1 - g) mu`` with ``g = s2 / (s2 + sigma2)`` the divergence is ``g``
exactly; for the one pass it is a finite difference along random signs (Ramani, Blu &
Unser 2008), one more pass. A module class that takes no output channel count gets no
head, and ``'auto'`` is the one pass.

The steps are small methods in skorch's style, each overridable: :meth:`N2SNet.mask_batch`,
:meth:`N2SNet.infer`, :meth:`N2SNet.get_loss`, :meth:`N2SNet.train_step_single`,
:meth:`N2SNet.validation_step`, :meth:`N2SNet.inference_module`. The learning-rate
schedule and the progress bar are skorch callbacks (:mod:`._callbacks`); batches come
from :class:`._data.ImageBatchLoader`.

Units: integer images are computed in :func:`skimage.util.img_as_float` units (so scores
and ``noise_variance`` follow the classical denoisers) and returned in their own dtype and
units, rounded and clipped to the dtype's range; floats keep their dtype (float16 gives
float32). The network computes in float32 (bfloat16 under ``torch.autocast`` on a GPU by
default) on normalised data: ``fit`` stores the median of X and
a robust standard deviation (the distance between its 1st and 99th percentiles over
4.65; :attr:`N2SNet.input_offset_`,
:attr:`N2SNet.input_scale_`, kept as buffers of the module so that ``save_params`` and
``load_params`` carry them); every input is mapped by ``(X - offset) / scale`` and every
output mapped back, so outputs are in the input's units whatever their magnitude. Values
too far out to compute with are refused with a message naming the accepted range
(:data:`MAX_ABS_VALUE`, :data:`MAX_SPREADS`), training stops with a
:class:`FloatingPointError` when the loss or the weights stop being finite
(:class:`~sklearn_n2s.neural._callbacks.NonFiniteGuard`), and no method returns a
non-finite output or score.

Inference never changes a fitted net: its only randomness (the ``'uniform'`` fill) comes
from a fresh generator seeded from ``random_state`` at every call, and the module is put
in eval mode for the call only.

This module imports torch and skorch; ``import sklearn_n2s`` does not.
"""

import contextlib
import copy
import inspect
import math
import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn import get_config
from sklearn.base import TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch.utils.data import DataLoader

from ..base import OUTPUTS, SelfSupervisedScoreMixin, shrink_towards_data
from ..base import output_risks as _stein_risks  # N2SNet has its own output_risks
from ..utils._correlation import check_blind_spot, estimate_noise_correlation
from ..utils._losses import get_loss
from ..utils._noise import (
    _intensity_bins,
    curve_tile_shape,
    estimate_noise_variance,
    tile_statistics,
)
from ..utils._validation import MAX_SPATIAL_DIMS, check_stack, intensity_scale
from ._babyunet import DOWNSAMPLING, BabyUnet
from ._blindspot import DilatedBlindSpotNet
from ._callbacks import (
    CLOCKS,
    EpochProgressBar,
    NonFiniteGuard,
    TimeBudget,
    WarmupCosineLR,
    _time_budget,
)
from ._data import (
    ImageBatchLoader,
    PatchBatchLoader,
    batch_bounds,
    images_to_tensor,
    patch_shape,
    patches_per_epoch,
    tensor_to_images,
)
from ._inference import TILE_MARGIN, forward_tiled, invariant_forward, tile_geometry
from ._masking import MASKINGS, NET_FILLS, footprint_grid_strides
from ._masking import mask_batch as _mask_batch

LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "float32", "bfloat16")
#: What ``transform`` returns: the classical outputs, the Gaussian posterior mean, and
#: ``'auto'`` (the posterior mean where one noise variance fits the data, else one pass).
NET_OUTPUTS = (*OUTPUTS, "posterior", "auto")
#: Outputs whose fit trains the posterior head (a mean and a prior variance).
_HEAD_OUTPUTS = ("posterior", "auto")
#: ``output='auto'``: the largest :func:`noise_signal_dependence` (noise variance at the
#: brightest intensities over that at the darkest, or the reverse) at which the Gaussian
#: posterior of one variance is used. Measured: the Gaussian camera image (clipped at 0,
#: hence darker tiles less noisy) 1.48, MNIST digits 0.98; Poisson counts 5.9 (the
#: uint16 stack of ``bench_neural_single.py --case cli``) and 18.9 (the camera at 60
#: photons), where the posterior of one variance lost 1.5 dB to the one pass.
SIGNAL_DEPENDENCE_LIMIT = 3.0
#: Step of the finite difference of the one pass's divergence (normalised units, where
#: the data spread is 1; the modules are piecewise linear, so a small step is exact
#: within a linear piece and float32 keeps about 4 digits of the difference).
_SURE_STEP = 1e-3
#: Images read by :func:`noise_signal_dependence` (a fixed random subset of larger stacks).
_DEPENDENCE_SAMPLE = 64
#: Patch side of ``patch_size='auto'`` per number of spatial axes: images longer than it
#: along some axis train on patches (64**2 = 4096 pixels, 32**3 = 32768).
AUTO_PATCH_SIZE = {1: 256, 2: 64, 3: 32}
#: Fewest pixels ``max_steps='auto'`` trains on when training on patches (2**25: 1024
#: batches of 8 patches of 64**2, about 2.5 minutes of one CPU core for BabyUnet).
AUTO_PATCH_PIXELS = 2**25
#: ``max_steps='auto'`` on patches: up to this many passes over the data's pixels...
AUTO_PATCH_PASSES = 512
#: ... but no more patch pixels than this per number of spatial axes. 2-D: 2**27, 4096
#: batches of 8 patches of 64**2 for the 512**2 camera image (about 5 minutes of 2 CPU
#: cores; 1024 batches gave 28.5 dB, 3148-3600 batches 29.0 with the posterior output,
#: ``benchmarks/results/neural_single.md``). 3-D steps cost 8 times as much: 2**25.
AUTO_PATCH_PIXELS_MAX = {1: 2**27, 2: 2**27, 3: 2**25}
#: Step budget of ``max_steps='auto'`` with ``max_time``: no bound in practice, the time
#: budget ends the training (and sets the learning-rate schedule).
TIME_ONLY_STEPS = 2**40
#: ``batch_size='auto'``: images per batch on whole images, and patches per batch on
#: patches. On the one 512**2 camera image, about 2 minutes of one core (posterior
#: output), batches of 4, 16 and 32 patches gave 28.36, 28.24 and 27.96 dB, and 8 gave
#: 28.53 dB in 1.5 times the time: more, smaller steps train one image better. The
#: whole-image default is the one measured on MNIST (``benchmarks/results/neural.md``).
AUTO_BATCH_SIZE = {"images": 32, "patches": 8}
#: ``module='auto'``: the modules it chooses from, in the order of the index saved in the
#: weights (the ``n2s_module_choice`` buffer, read back by ``load_params``).
AUTO_MODULES = (BabyUnet, DilatedBlindSpotNet)
#: Outputs for which ``module='auto'`` may choose the one-pass blind-spot D-BSN: those that
#: read the J-invariant output or the posterior. The plain one pass (``'ordinary'``) and
#: ``'shrink'`` keep BabyUnet, whose one pass sees the pixel itself.
AUTO_BLIND_SPOT_OUTPUTS = ("auto", "posterior", "invariant")
#: ``batch_size='auto'`` and ``lr='auto'`` per module class, where measured otherwise than
#: BabyUnet's (:data:`AUTO_BATCH_SIZE`, :data:`DEFAULT_LR`). D-BSN at exactly equal CPU
#: time (``max_time``), posterior head: batches of 8 digits and lr 6e-3 gave 21.53 and
#: 21.48 dB on MNIST (batch 32, lr 3e-3: 21.21), 4 patches and 6e-3 on the camera 28.79
#: and 28.99 (8 patches, 3e-3: 28.55), against BabyUnet's best 21.43/21.08 and
#: 28.61/28.69 (``benchmarks/results/neural_modules.md``, ``neural_single.md``, fifth pass).
AUTO_MODULE_BATCH_SIZE = {DilatedBlindSpotNet: {"images": 8, "patches": 4}}
#: ``max_steps='auto'`` on patches: the share of the patch-pixel budget
#: (:data:`AUTO_PATCH_PIXELS` ... :data:`AUTO_PATCH_PIXELS_MAX`) a module class trains on.
#: D-BSN: half, the same number of steps as BabyUnet (its batches are half as large),
#: in about 0.7x BabyUnet's time: on the camera image, one thread, 71 against 105 ms of
#: CPU per step (4 patches against 8), so 4096 steps take 290 s against 430 s. The
#: whole budget (8192 steps) took 1.35x BabyUnet's time.
AUTO_MODULE_PATCH_SHARE = {DilatedBlindSpotNet: 0.5}
#: ``lr='auto'``: the base learning rate per module class (:data:`DEFAULT_LR` otherwise).
AUTO_LR = {DilatedBlindSpotNet: 6e-3}
#: ``lr='auto'`` for BabyUnet and any other module (measured on MNIST,
#: ``benchmarks/results/neural.md``).
DEFAULT_LR = 3e-3
#: Smallest prior variance of the posterior head (normalised units).
_MIN_PRIOR_VARIANCE = 1e-6
#: Smallest height and width accepted: the U-Net pools twice by 2.
MIN_SIDE = DOWNSAMPLING
_SEED_MAX = 2**31 - 1
#: Largest magnitude accepted in X: beyond it squared errors (the score) overflow float64.
MAX_ABS_VALUE = 1e100
#: Farthest a value may lie from ``input_offset_``, in units of ``input_scale_``: the
#: network computes in float32 on the normalised values (and squares them in the loss).
MAX_SPREADS = 1e8
#: Distance between the 1st and 99th percentiles of a standard normal distribution: the
#: normalised data have a unit spread (training on unit-scale data denoised better, on
#: MNIST and on smooth Gaussian images, than on data in 0..1 units or smaller).
_PERCENTILE_SPAN = 4.652695748081682
#: Values read to estimate the normalisation of a larger X (a fixed random sample).
_STATS_SAMPLE = 2**22
_OFFSET_BUFFER, _SCALE_BUFFER = "n2s_input_offset", "n2s_input_scale"
#: Buffers of the posterior head's noise statistics (NaN until fit), saved with the weights.
_NOISE_BUFFER, _DEPENDENCE_BUFFER = "n2s_noise_variance", "n2s_noise_dependence"
#: Buffer of ``module='auto'``: the index in :data:`AUTO_MODULES` of the module chosen.
_CHOICE_BUFFER = "n2s_module_choice"
#: Constraint of ``blind_spot`` (the image families' ``BLIND_SPOT_CONSTRAINT``; the forms
#: are checked by :func:`sklearn_n2s.utils._correlation.check_blind_spot` in ``fit``).
_BLIND_SPOT_CONSTRAINT = [
    StrOptions({"pixel", "auto"}), Interval(Integral, 0, None, closed="left"), tuple, list,
    np.ndarray,
]

__all__ = ["MAX_ABS_VALUE", "MAX_SPREADS", "N2SNet", "TILE_MARGIN"]


def _input_dtype(X):
    """The dtype that outputs take: X's own (numpy arrays, lists of arrays of one dtype);
    None for data whose values carry no image dtype (Python numbers)."""
    dtype = getattr(X, "dtype", None)
    if dtype is None and isinstance(X, (list, tuple)) and X and all(
            isinstance(item, (np.ndarray, np.generic)) for item in X):
        dtypes = {np.dtype(item.dtype) for item in X}
        dtype = dtypes.pop() if len(dtypes) == 1 else None
    try:
        return None if dtype is None else np.dtype(dtype)
    except TypeError:
        return None


def _to_input_dtype(values, dtype, float_dtype):
    """Float values (img_as_float units for integers) as the input's dtype.

    Integers: the inverse of :func:`skimage.util.img_as_float`, rounded and clipped to
    the dtype's range. Floats and everything else: ``float_dtype``.
    """
    if dtype is None or dtype.kind not in "iu":
        return values.astype(float_dtype, copy=False)
    info = np.iinfo(dtype)
    raw = np.rint(np.asarray(values, dtype=np.float64) / intensity_scale(dtype))
    return np.clip(raw, info.min, info.max).astype(dtype)



def _is_auto(blind_spot):
    return isinstance(blind_spot, str) and blind_spot == "auto"


def _rotation_safe(footprint):
    """Whether the patch augmentation (flips along every axis, 90-degree rotations in
    the plane of the last two) maps the footprint onto itself."""
    if footprint is None:
        return True
    flipped = all(np.array_equal(footprint, np.flip(footprint, axis))
                  for axis in range(footprint.ndim))
    if footprint.ndim < 2:
        return flipped
    return flipped and np.array_equal(footprint, np.swapaxes(footprint, -1, -2))


def _grid_maps(ndim, footprint):
    """The maps of the self-ensemble: ``(quarter turns, flip)`` of the pixel grid.

    Quarter turns in the plane of the last two axes (2-D and 3-D) and a flip of the last
    axis: the 8 symmetries of the square, 2 in 1-D. Each maps pixels onto pixels, so a
    J-invariant output stays J-invariant; with a structured blind spot, only the maps
    that keep its footprint.
    """
    maps = [(turns, flip) for turns in range(4 if ndim >= 2 else 1) for flip in (False, True)]
    if footprint is None:
        return maps
    return [m for m in maps
            if np.array_equal(_map_grid(footprint, m, np.rot90, np.flip), footprint)]


def _map_grid(x, grid_map, rot90, flip):
    turns, flipped = grid_map
    if turns:
        x = rot90(x, turns, (-2, -1))
    return flip(x, (-1,)) if flipped else x


def _unmap_grid(x, grid_map):
    turns, flipped = grid_map
    if flipped:
        x = torch.flip(x, (-1,))
    return torch.rot90(x, -turns, (-2, -1)) if turns else x


def _accepts(module_cls, name):
    try:
        return name in inspect.signature(module_cls).parameters
    except (TypeError, ValueError):
        return False


def _inference_seed(random_state):
    """A seed for inference draws that never advances ``random_state``.

    An int is used as is; a RandomState is read through a copy; None gives 0, so that
    inference is repeatable whatever the parameter.
    """
    if random_state is None:
        return 0
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(copy.deepcopy(random_state).randint(_SEED_MAX))


def _robust_scaling(Xf):
    """``(offset, scale)`` of a float stack: its median, and a robust standard deviation.

    The spread is the distance between the 1st and 99th percentiles divided by
    :data:`_PERCENTILE_SPAN` (the standard deviation for normal data; unlike the
    interquartile range it stays positive on sparse images such as digits, mostly 0);
    half the full range when those percentiles coincide, and 1 for constant data.
    """
    flat = Xf.reshape(-1)
    if flat.size > 4 * _STATS_SAMPLE:
        flat = flat[np.random.default_rng(0).integers(0, flat.size, _STATS_SAMPLE)]
    low, offset, high = (float(v) for v in np.percentile(flat, [1, 50, 99]))
    scale = (high - low) / _PERCENTILE_SPAN
    if not scale > 0:
        scale = max(float(np.max(Xf)) - offset, offset - float(np.min(Xf)))
    if not (scale > 0 and np.isfinite(scale)):
        scale = 1.0
    return offset, scale


def _check_range(Xf, offset, scale):
    """Refuse values too large for float64 scores or too far out for float32 training."""
    low, high = float(np.min(Xf)), float(np.max(Xf))
    magnitude = max(-low, high)
    if magnitude > MAX_ABS_VALUE:
        raise ValueError(
            f"X holds values of magnitude up to {magnitude:.3g}; N2SNet accepts values in "
            f"[-{MAX_ABS_VALUE:g}, {MAX_ABS_VALUE:g}] (beyond, its squared errors overflow "
            "float64). Divide X by a constant first."
        )
    with np.errstate(over="ignore"):
        reach = np.float64(max(offset - low, high - offset)) / np.float64(scale)
    if reach > MAX_SPREADS:
        raise ValueError(
            f"X holds a value {reach:.3g} spreads away from the median the net normalises "
            f"by: N2SNet maps X to (X - {offset:.6g}) / {scale:.6g} (the median and a "
            "robust standard deviation of the data it was fitted on, the spreads) "
            f"and computes in float32, so it accepts values within {MAX_SPREADS:g} spreads "
            f"of the median, here [{offset - MAX_SPREADS * scale:.6g}, "
            f"{offset + MAX_SPREADS * scale:.6g}]. Remove or clip the outliers."
        )


def noise_signal_dependence(Xf, *, channel_axis=None, n_bins=8):
    """How far the noise variance of a stack follows its intensity: a ratio >= 1.

    The robust noise level of small tiles (:func:`sklearn_n2s.utils._noise.tile_statistics`,
    the tiles of :func:`~sklearn_n2s.utils._noise.noise_variance_weights`) is pooled
    over the images into intensity bins (median variance per bin); a line fitted to the
    bins' variances against their intensities (weighted by their tile counts) is read at
    the darkest and the brightest bin, and the larger over the smaller is returned.
    About 1 for noise of one variance (Gaussian, or photon counts far from zero), the
    ratio of the intensities for pure photon (Poisson) noise. 1 when fewer than 8 tiles
    or no noise are seen. Self-supervised: it reads the noisy data only.

    Parameters
    ----------
    Xf : ndarray of shape (n_samples, *spatial[, n_channels])
        Float images.
    channel_axis : None or -1, default=None
    n_bins : int, default=8

    Returns
    -------
    ratio : float
        In [1, inf]; infinite when the fitted variance reaches zero at one end.
    """
    if len(Xf) > _DEPENDENCE_SAMPLE:
        rows = np.random.default_rng(0).choice(len(Xf), _DEPENDENCE_SAMPLE, replace=False)
        Xf = Xf[np.sort(rows)]
    sigmas, levels = [], []
    for sample in np.asarray(Xf, dtype=np.float64):
        for image in [sample] if channel_axis is None else np.moveaxis(sample, -1, 0):
            tile_sigmas, tile_levels = tile_statistics(image, curve_tile_shape(image.shape))
            sigmas.append(tile_sigmas)
            levels.append(tile_levels)
    sigmas, levels = np.concatenate(sigmas), np.concatenate(levels)
    if sigmas.size < 8 or not np.any(sigmas > 0):
        return 1.0
    bins = _intensity_bins(levels, np.square(sigmas / np.max(sigmas)), n_bins)
    centres, variances, counts = (np.asarray(v, dtype=np.float64) for v in zip(*bins))
    if len(centres) < 2 or np.ptp(centres) == 0:
        return 1.0
    weights = np.sqrt(counts)
    design = np.stack([np.ones_like(centres), centres - centres.mean()], axis=1)
    coef = np.linalg.lstsq(design * weights[:, None], variances * weights, rcond=None)[0]
    ends = coef[0] + coef[1] * (np.array([centres.min(), centres.max()]) - centres.mean())
    low, high = float(np.min(ends)), float(np.max(ends))
    if high <= 0:
        return 1.0
    return high / low if low > 0 else math.inf


@contextlib.contextmanager
def _evaluating(module):
    """Eval mode for the duration of the block; every submodule's mode restored after."""
    modes = [(sub, sub.training) for sub in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for sub, training in modes:
            sub.training = training


class N2SNet(SelfSupervisedScoreMixin, TransformerMixin, NeuralNet):
    """Noise2Self neural denoiser: self-supervised training of a U-Net or a blind-spot net.

    A :class:`skorch.NeuralNet` (parameters are routed the skorch way:
    ``module__width``, ``optimizer__lr``, ``max_epochs``, ``batch_size``, ``device``) and
    a scikit-learn transformer: ``fit(X)`` on noisy images alone, ``transform(X)``,
    ``invariant_transform(X)`` and ``score(X)`` (minus the self-supervised loss), so
    :class:`~sklearn.model_selection.GridSearchCV` with
    :class:`~sklearn_n2s.SelfSupervisedScorer` tunes it on held-out images.

    Parameters
    ----------
    module : 'auto', torch.nn.Module class or instance, default='auto'
        ``'auto'``: :class:`~sklearn_n2s.neural.DilatedBlindSpotNet` or
        :class:`~sklearn_n2s.neural.BabyUnet`, chosen by ``fit`` from the data (module
        notes; ``module_choice_``): D-BSN when ``blind_spot='pixel'``, ``output`` is
        one of :data:`AUTO_BLIND_SPOT_OUTPUTS` (``'auto'``, ``'posterior'``,
        ``'invariant'``), the noise has one variance (``noise_dependence_`` at most
        :data:`SIGNAL_DEPENDENCE_LIMIT`) and every ``module__*`` parameter is one of
        D-BSN's; else BabyUnet. Before any ``fit``, BabyUnet; ``load_params`` builds
        the one the saved weights belong to. Otherwise the module: it maps
        (N, C, *spatial) to (N, C_out, *spatial). A class gets, unless given as
        ``module__*``: the data's channel count as ``n_channels_in`` or ``in_channels``,
        the output channels (``C``, or ``2 C`` for ``output='posterior'``) as
        ``n_channels_out`` or ``out_channels``, and the number of spatial axes as
        ``ndim``, for each it accepts. A module with ``blind_spot = True`` is trained
        without masking (loss on every pixel) and its one pass is the J-invariant
        output; its ``receptive_radius`` (and ``size_multiple``, 16 if absent) sets the
        tile margin.
    criterion : torch loss class, default=torch.nn.MSELoss
        Applied to the masked pixels only (hence normalised by their number); to
        every pixel for a blind-spot module. Not used by ``output='posterior'``, which
        trains by the Gaussian negative log-likelihood.
    optimizer : torch optimizer class, default=torch.optim.Adam
        Adam and AdamW are created with ``fused=True`` unless ``optimizer__fused`` or
        ``optimizer__foreach`` is given.
    lr : float > 0 or 'auto', default='auto'
        Peak learning rate. ``'auto'``: the module's measured one (:data:`AUTO_LR`):
        6e-3 for :class:`~sklearn_n2s.neural.DilatedBlindSpotNet`, else 3e-3 (with the
        cosine schedule, 3e-3 beat the reference's constant 1e-3 by about 0.7 dB
        after 3 epochs on MNIST, see ``benchmarks/results/neural.md``).
    max_epochs : int >= 1, default=10
        Epochs of each ``fit`` and ``partial_fit`` call when ``max_steps`` is None (or
        ``'auto'`` on whole images). An epoch is a pass over the training images, or
        with patches as many patch pixels as the images hold.
    max_steps : int >= 1, 'auto' or None, default='auto'
        The training budget in optimiser steps (batches) of each ``fit`` and
        ``partial_fit`` call, whatever the data size. None: ``max_epochs`` epochs.
        ``'auto'``: ``max_epochs`` epochs, and when training on patches (a few large
        images) at least as many steps as it takes to see :data:`AUTO_PATCH_PASSES`
        (512) times the data's pixels in patches, within :data:`AUTO_PATCH_PIXELS`
        (2**25) and :data:`AUTO_PATCH_PIXELS_MAX` (2**27, 2**25 in 3-D) patch pixels:
        4096 steps of 8 patches of 64**2 for one 512**2 image, so that one image
        trains enough; a module class in :data:`AUTO_MODULE_PATCH_SHARE` (D-BSN:
        half) trains on that share of these pixels (D-BSN: the same 4096 steps, of
        4 patches). With ``max_time``, ``'auto'`` sets no step budget: the time
        budget alone ends the training.
    max_time : float > 0 or None, default=None
        A training budget in seconds of ``clock`` for each ``fit`` and ``partial_fit``
        call: training stops after the first batch that ends past it (at the end of
        that epoch, see :class:`~sklearn_n2s.neural._callbacks.TimeBudget`), or when
        the step budget (``max_steps``, ``max_epochs``) ends first; the cosine
        learning-rate schedule runs over whichever ends first. Gives networks of
        different step costs the same training time (``benchmarks/bench_neural_modules.py``
        and ``bench_neural_single.py --case camera-modules`` use it with the process
        clock). The number of steps then depends on the machine and its load, so a fit
        repeats only approximately even with an int ``random_state``.
    clock : {'process', 'wall'}, default='process'
        What ``max_time`` counts: ``'process'``, the CPU time of this process
        (:func:`time.process_time`, all threads together: fair on a machine shared
        with other jobs, and 2 threads spend it about twice as fast as one);
        ``'wall'``, the elapsed time (:func:`time.perf_counter`).
    batch_size : int >= 1, -1 or 'auto', default='auto'
        Images (or patches) per training batch (-1: all images). ``'auto'``: 32
        whole images, or 8 patches when training on patches (:data:`AUTO_BATCH_SIZE`:
        on one image, more and smaller steps trained better in the same time); 8 and
        4 for :class:`~sklearn_n2s.neural.DilatedBlindSpotNet`
        (:data:`AUTO_MODULE_BATCH_SIZE`, measured at equal CPU time). A last
        batch of a single image joins the previous batch: batch norm cannot train on
        one small image.
    patch_size : int >= 4, 'auto' or None, default='auto'
        Train on random patches of this side (the whole axis where an image is
        shorter), flipped along random axes and rotated by random multiples of 90
        degrees in the plane of the last two axes (maps of the pixel grid onto itself,
        so masks and blind spots stay exact; set ``augment=False`` for data whose
        noise or content is not symmetric). None: whole images. ``'auto'``:
        :data:`AUTO_PATCH_SIZE` (64 in 2-D, 32 in 3-D, 256 in 1-D) when an image is
        longer than that along some axis, else whole images.
    augment : bool, default=True
        Random flips and rotations of the training patches.
    masking : {'grid', 'random'}, default='grid'
        ``'grid'``: each image of a batch hides one random coset of a stride-``stride``
        grid (``1 / stride**ndim`` of its pixels). ``'random'``: each pixel is hidden with
        probability ``density``.
    blind_spot : 'pixel', 'auto', int, tuple or bool ndarray, default='pixel'
        What is hidden around each masked pixel, for noise correlated between
        neighbours. ``'pixel'``: the pixel alone. An int ``k``: a box of half-extent
        ``k``; a tuple: a half-extent per spatial axis, None for the whole axis (e.g.
        ``(0, 3)``: three pixels either side along the last axis); a boolean array with
        an odd length per axis: the footprint itself, centred on the pixel. ``'auto'``:
        the extents :func:`sklearn_n2s.estimate_noise_correlation` measures on the
        training images (``noise_correlation_``). The grid is then spaced per axis by
        :func:`sklearn_n2s.masking.footprint_strides` (1 along whole-axis extents), the
        footprints of the coset are hidden and filled from outside, and inference takes
        one pass per coset of that grid. Masked modules only: a blind-spot module
        (``blind_spot = True``) hides the centre pixel alone and refuses other values.
        Training patches are flipped and rotated only if the footprint is symmetric
        under those maps (a line along one axis turns off ``augment``).
    stride : int >= 2, default=4
        Grid stride, for training with ``masking='grid'`` and for the J-invariant
        inference of masked-trained modules (``stride**ndim`` passes).
    density : float in (0, 1), default=1/16
        Fraction of pixels hidden per batch with ``masking='random'``.
    fill : {'interpolate', 'zero', 'median', 'uniform'}, default='interpolate'
        What the network sees at hidden pixels, see :func:`sklearn_n2s.masking.fill_masked`.
    lr_schedule : {'constant', 'cosine'}, default='cosine'
        ``'cosine'`` warms up linearly over the first 5% of the batches of a ``fit``,
        then decays to 0 by its last batch (the ``lr_scheduler`` callback,
        :class:`~sklearn_n2s.neural._callbacks.WarmupCosineLR`); the base learning rate
        is restored at the end of the fit.
    output : {'auto', 'ordinary', 'shrink', 'invariant', 'posterior'}, default='auto'
        What :meth:`transform` returns (see the module notes): one unmasked pass of
        the network (the J-invariant output itself for a blind-spot module), the
        optimal mix of the J-invariant output and the data, the J-invariant output, the
        Gaussian posterior mean (needs a fit with ``'posterior'`` or ``'auto'``, which
        build the mean and prior-variance head), or ``'auto'``. ``'auto'`` trains the
        head and returns, for the whole X, whichever of ``'posterior'`` and
        ``'ordinary'`` has the lower estimated risk (:meth:`output_risks`, Stein's
        unbiased risk estimate: self-supervised) when the noise of the training data
        follows one variance (``noise_dependence_`` at most
        :data:`SIGNAL_DEPENDENCE_LIMIT`), and ``'ordinary'`` when it follows the signal
        (photon counts, where the posterior of one variance lost 1.5 dB). Measured
        (``benchmarks/results/neural_single.md``, ``neural_modules.md``): on the one
        camera image the posterior beat the one pass by 0.3-0.4 dB; on MNIST digits
        the one pass of a masked-trained BabyUnet beat its posterior (and its
        J-invariant output by 1.5 dB, its shrink mix by 1.8 dB), while a blind-spot
        net's posterior beat its one pass by 1.4 dB; ``'auto'`` picked the better in
        each case. Training the head did not cost the one pass quality.
    noise_variance : float >= 0 or None, default=None
        Noise variance in the input's units, for ``'shrink'`` and ``'posterior'``;
        None estimates it per image (:func:`sklearn_n2s.estimate_noise_variance`).
    channel_axis : None or -1, default=None
        -1 when X has a trailing channel axis: (n, *spatial, C).
    spatial_ndim : None or int in [1, 3], default=None
        Number of spatial axes. With it, one image ``(*spatial[, C])`` is a stack of
        one (and returned in its shape). None: ``X.ndim - 1`` (minus the channel axis).
    tile_size : int or None, default=None
        Run inference on tiles of this side (a multiple of 4, rounded up to a multiple
        of the module's ``size_multiple``) with a margin of the module's receptive
        radius, for images too big for memory. None: whole images.
    test_time_augmentation : bool or 'auto', default='auto'
        Average the network's outputs over the 8 quarter turns and flips of the image
        plane (a flip only in 1-D; with a structured ``blind_spot``, the maps that keep
        its footprint): every output, ``score`` included, costs 8 times as much, and
        stays J-invariant (each map moves pixels onto pixels). On the one camera image
        it added 0.08 to 0.16 dB to the posterior output
        (``benchmarks/results/neural_single.md``). ``'auto'``: on when the last
        ``fit`` trained on patches (images larger than the patch: one image or a few,
        where training costs far more than 8 inferences), off for whole images (many
        small ones, where inference is a larger share).
    inference_batch_size : int, default=64
        Images per forward pass at inference (the masked copies count as images;
        larger batches of small images ran slower on CPU, out of cache).
    channels_last : bool, default=False
        Use the channels-last memory format (NHWC) for the module and its inputs.
    precision : {'auto', 'float32', 'bfloat16'}, default='auto'
        ``'bfloat16'`` trains the module under ``torch.autocast`` (weights, optimizer
        and loss stay float32): about 1.3x faster training on CPUs with AVX512-BF16 or
        AMX and on recent GPUs, much slower on CPUs without them. ``'auto'``:
        bfloat16 on a CUDA device, float32 elsewhere. Inference always runs in float32
        (with batch norm folded, it was faster than bfloat16 here).
    num_threads : int or None, default=None
        torch intra-op threads during fit and inference (restored afterwards); None
        leaves torch's setting alone. On a CPU shared with other jobs, OpenMP threads
        that spin while waiting made 2 threads 4x slower per step than 1 (2 cores,
        load 3); ``OMP_WAIT_POLICY=PASSIVE`` in the environment avoided it.
    random_state : int, RandomState or None, default=None
        Seeds the weight initialisation, the shuffling and every mask draw of training,
        so that a fit with an int is repeatable (on the same device and thread count).
        Inference draws (the ``'uniform'`` fill only) come from a fresh generator
        seeded from it at every call (seed 0 for None), so they repeat exactly.
    train_split : skorch split or None, default=None
        Held-out images for a validation loss each epoch (masked, no gradient; whole
        images, also when training on patches). With
        ``callbacks=[skorch.callbacks.EarlyStopping()]`` training stops when it no
        longer falls. A single image cannot be split: its training is the step budget
        (``max_steps``) alone.
    iterator_train, iterator_valid : class, default=ImageBatchLoader
        Batch loaders; :class:`~sklearn_n2s.neural._data.ImageBatchLoader` slices the
        image tensor instead of collating single images.
    verbose : int, default=0
        0: silent. 1: skorch's epoch log, and a progress bar per epoch when stderr is
        a terminal.
    device : str or torch.device, default='cpu'
        ``'cuda'`` to train on a GPU.
    **kwargs
        Other :class:`skorch.NeuralNet` parameters (``callbacks``, ``warm_start``,
        prefixed ``module__*``, ``optimizer__*``, ``iterator_train__*``...).

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (in the mode training left it; inference uses an
        eval-mode copy or switches it for the call only).
    module_choice_ : type
        The class of ``module_``: for ``module='auto'``, the one ``fit`` chose
        (:class:`~sklearn_n2s.neural.DilatedBlindSpotNet` or
        :class:`~sklearn_n2s.neural.BabyUnet`).
    criterion_ : torch.nn.Module
        The loss, applied to the masked pixels.
    optimizer_ : torch.optim.Optimizer
        The optimizer, with the base learning rate restored after each fit.
    callbacks_ : list of (str, skorch.callbacks.Callback)
        Initialised callbacks, among them ``'progress_bar'``
        (:class:`~sklearn_n2s.neural._callbacks.EpochProgressBar`) and
        ``'lr_scheduler'`` (:class:`~sklearn_n2s.neural._callbacks.WarmupCosineLR`).
    history_ : skorch.History
        Per-epoch losses, and per-batch losses and learning rates (``'event_lr'``).
    initialized_ : bool
        Whether module, criterion, optimizer and callbacks are built.
    n_channels_in_ : int
        Channels of the images seen in ``fit``.
    n_spatial_dims_ : int
        Spatial axes of the images seen in ``fit`` (1, 2 or 3).
    n_features_in_ : int
        Values per image seen in ``fit`` (pixels times channels).
    blind_spot_ : 'pixel', int, tuple or bool ndarray
        The blind spot of training and inference: ``blind_spot``, or for ``'auto'``
        the measured extents (``noise_correlation_.extent``).
    noise_correlation_ : NoiseCorrelation
        With ``blind_spot='auto'``: the measured correlation of the noise
        (:func:`sklearn_n2s.estimate_noise_correlation`).
    blind_spot_module_ : bool
        Whether the module is a blind-spot network (trained without masking, one-pass
        J-invariant output).
    posterior_head_ : bool
        Whether the module predicts a mean and a prior variance (``output='posterior'``
        or ``'auto'`` at fit time).
    noise_variance_ : float or None
        The noise variance the posterior head was trained with, in the float units of
        the data (img_as_float units for integers); None without that head.
    noise_dependence_ : float or None
        With the posterior head: how far the noise variance of the training data
        follows its intensity (:func:`noise_signal_dependence`; about 1 for one
        variance); ``output='auto'`` uses the posterior only up to
        :data:`SIGNAL_DEPENDENCE_LIMIT`. None without the head.
    train_plan_ : dict
        The last training budget: ``patch_size`` (None for whole images),
        ``batch_size``, ``steps_per_epoch``, ``steps``, ``epochs`` and ``augment``
        (:meth:`training_plan`).
    input_offset_ : float
        Median of the data of ``fit``, subtracted from every input (and added back to
        every output).
    input_scale_ : float
        Robust standard deviation of the data of ``fit``: the distance between its 1st
        and 99th percentiles over 4.65 (half its full range if they coincide, 1 for
        constant data). Inputs are divided by it, outputs multiplied. Both are set by
        ``fit`` (and by ``partial_fit`` on a net not yet initialised), are buffers of
        ``module_`` (so ``save_params``/``load_params`` carry them), and are 0 and 1
        after a bare ``initialize()``. Training losses in ``history_`` are in these
        normalised units; outputs and scores are in the input's units.
    rng_ : numpy.random.RandomState
        Source of the training draws (initial weights, shuffling, masks); reset from
        ``random_state`` by ``fit``, advanced by training only.

    See Also
    --------
    sklearn_n2s.neural.BabyUnet : The masked-trained module (``module='auto'`` on
        photon counts and structured blind spots).
    sklearn_n2s.neural.DilatedBlindSpotNet : The one-pass module (``module='auto'`` on
        noise of one variance).
    sklearn_n2s.SelfSupervisedScorer : Scorer for hyperparameter searches.

    References
    ----------
    .. [1] J. Batson and L. Royer, "Noise2Self: Blind Denoising by Self-Supervision",
       Proceedings of the 36th International Conference on Machine Learning (ICML),
       PMLR 97:524-533, 2019. arXiv:1901.11365.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.neural import N2SNet
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(8, 16, 16)).astype(np.float32)
    >>> net = N2SNet(module__width=4, max_epochs=1, random_state=0).fit(X)
    >>> net.transform(X).shape, net.transform(X).dtype
    ((8, 16, 16), dtype('float32'))
    >>> net.module_choice_.__name__  # module='auto' on noise of one variance
    'DilatedBlindSpotNet'
    >>> net.invariant_transform(X[:2]).shape
    (2, 16, 16)

    A volume, uint16 counts in, uint16 out:

    >>> V = rng.poisson(50, size=(1, 12, 16, 16)).astype(np.uint16)
    >>> vnet = N2SNet(module__width=2, max_steps=2, random_state=0).fit(V)
    >>> vnet.transform(V).dtype, vnet.n_spatial_dims_
    (dtype('uint16'), 3)
    """

    # N2SNet's own parameters, and the skorch ones it relies on (skorch checks none of
    # these numbers); the others ('module', 'criterion', prefixed...) skorch checks.
    _n2s_parameter_constraints = {
        "module": [StrOptions({"auto"}), callable, torch.nn.Module],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "max_steps": [None, StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_time": [None, Interval(Real, 0, None, closed="neither")],
        "clock": [StrOptions(set(CLOCKS))],
        "batch_size": [Interval(Integral, 1, None, closed="left"), Options(Integral, {-1}),
                       StrOptions({"auto"})],
        "patch_size": [None, StrOptions({"auto"}),
                       Interval(Integral, MIN_SIDE, None, closed="left")],
        "augment": ["boolean"],
        "output": [StrOptions(set(NET_OUTPUTS))],
        "noise_variance": [None, Interval(Real, 0, None, closed="left")],
        "spatial_ndim": [None, Interval(Integral, 1, MAX_SPATIAL_DIMS, closed="both")],
        "device": [str, torch.device],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "train_split": [None, callable],
        "masking": [StrOptions(set(MASKINGS))],
        "blind_spot": _BLIND_SPOT_CONSTRAINT,
        "stride": [Interval(Integral, 2, None, closed="left")],
        "density": [Interval(Real, 0, 1, closed="neither")],
        "fill": [StrOptions(set(NET_FILLS))],
        "lr_schedule": [StrOptions(set(LR_SCHEDULES))],
        "channel_axis": [None, Options(Integral, {-1})],
        "tile_size": [None, Interval(Integral, DOWNSAMPLING, None, closed="left")],
        "inference_batch_size": [Interval(Integral, 1, None, closed="left")],
        "test_time_augmentation": ["boolean", StrOptions({"auto"})],
        "channels_last": ["boolean"],
        "precision": [StrOptions(set(PRECISIONS))],
        "num_threads": [None, Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, module="auto", *, criterion=torch.nn.MSELoss,
                 optimizer=torch.optim.Adam, lr="auto", max_epochs=10, max_steps="auto",
                 max_time=None, clock="process", batch_size="auto", patch_size="auto", augment=True,
                 masking="grid", stride=4, density=1 / 16, fill="interpolate",
                 blind_spot="pixel", lr_schedule="cosine", output="auto",
                 noise_variance=None,
                 channel_axis=None, spatial_ndim=None, tile_size=None,
                 test_time_augmentation="auto", inference_batch_size=64,
                 channels_last=False, precision="auto", num_threads=None,
                 random_state=None, train_split=None, iterator_train=ImageBatchLoader,
                 iterator_valid=ImageBatchLoader, verbose=0, device="cpu", **kwargs):
        super().__init__(
            module, criterion, optimizer=optimizer, lr=lr, max_epochs=max_epochs,
            batch_size=batch_size, iterator_train=iterator_train,
            iterator_valid=iterator_valid, train_split=train_split, verbose=verbose,
            device=device, **kwargs,
        )
        self.max_steps = max_steps
        self.max_time = max_time
        self.clock = clock
        self.patch_size = patch_size
        self.augment = augment
        self.output = output
        self.noise_variance = noise_variance
        self.spatial_ndim = spatial_ndim
        self.masking = masking
        self.stride = stride
        self.density = density
        self.fill = fill
        self.blind_spot = blind_spot
        self.lr_schedule = lr_schedule
        self.channel_axis = channel_axis
        self.tile_size = tile_size
        self.test_time_augmentation = test_time_augmentation
        self.inference_batch_size = inference_batch_size
        self.channels_last = channels_last
        self.precision = precision
        self.num_threads = num_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    @property
    def _parameter_constraints(self):
        # scikit-learn's view: N2SNet's own constraints, and 'no_validation' for the
        # parameters skorch owns and checks itself (including prefixed ones such as
        # module__width, which only exist per instance).
        constraints = dict.fromkeys(self.get_params(deep=False), "no_validation")
        constraints.update(self._n2s_parameter_constraints)
        return constraints

    def _validate_n2s_params(self):
        """Check N2SNet's own parameters (skorch's ``_validate_params`` checks its)."""
        if get_config()["skip_parameter_validation"]:
            return
        name = type(self).__name__
        constraints = self._n2s_parameter_constraints
        validate_parameter_constraints(
            constraints, {key: getattr(self, key) for key in constraints}, caller_name=name)
        if self.tile_size is not None and self.tile_size % DOWNSAMPLING:
            raise InvalidParameterError(
                f"The 'tile_size' parameter of {name} must be a multiple of "
                f"{DOWNSAMPLING}. Got {self.tile_size!r} instead.")
        try:
            torch.device(self.device)
        except RuntimeError:
            raise InvalidParameterError(
                f"The 'device' parameter of {name} must be a torch device such as 'cpu' "
                f"or 'cuda'. Got {self.device!r} instead.") from None

    def get_default_callbacks(self):
        """skorch's default callbacks plus the progress bar, the lr schedule, the guard
        and the time budget (last: it ends a call at the end of an epoch, after the
        others have seen it).

        Returns
        -------
        callbacks : list of (str, skorch.callbacks.Callback)
        """
        return [*super().get_default_callbacks(), ("progress_bar", EpochProgressBar()),
                ("lr_scheduler", WarmupCosineLR()), ("non_finite_guard", NonFiniteGuard()),
                ("time_budget", TimeBudget())]

    def _rng(self):
        if getattr(self, "rng_", None) is None:
            self.rng_ = check_random_state(self.random_state)
        return self.rng_

    def _seed(self):
        """A seed for one training draw, from ``rng_`` (training only)."""
        return int(self._rng().randint(_SEED_MAX))

    def _inference_generator(self):
        """A fresh torch generator seeded from ``random_state``, for one inference call."""
        return torch.Generator().manual_seed(_inference_seed(self.random_state))

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
    def _check_images(self, X, *, reset, return_single=False):
        """Validate X; return the float stack (never the caller's array to write to).

        With ``return_single``, also whether X was one image given ``spatial_ndim``.
        """
        Xf, single = check_stack(X, channel_axis=self.channel_axis,
                                 spatial_ndim=self.spatial_ndim, min_spatial_size=MIN_SIDE,
                                 return_single=True)
        n_spatial = Xf.ndim - 1 - (self.channel_axis is not None)
        n_channels = Xf.shape[-1] if self.channel_axis is not None else 1
        if reset:
            self.n_channels_in_ = n_channels
            self.n_spatial_dims_ = n_spatial
            self.n_features_in_ = int(np.prod(Xf.shape[1:]))
        else:
            fitted_ndim = getattr(self, "n_spatial_dims_", 2)
            if n_spatial != fitted_ndim:
                raise ValueError(
                    f"X has {n_spatial} spatial axes (shape {Xf.shape}), but N2SNet was "
                    f"fitted on data with {fitted_ndim}.")
            if n_channels != self.n_channels_in_:
                raise ValueError(
                    f"X has {n_channels} channel(s), but N2SNet was fitted on images with "
                    f"{self.n_channels_in_}."
                )
        return (Xf, single) if return_single else Xf

    def _to_tensor(self, Xf):
        return images_to_tensor(Xf, self.channel_axis, self.device)

    # ------------------------------------------------------------- normalisation
    @property
    def input_offset_(self):
        """Median of the data of ``fit``: inputs are ``(X - input_offset_) / input_scale_``."""
        return float(self.module_.get_buffer(_OFFSET_BUFFER))

    @property
    def input_scale_(self):
        """Robust standard deviation of the data of ``fit``, which inputs are divided by."""
        return float(self.module_.get_buffer(_SCALE_BUFFER))

    def _initialize_for(self, Xf, dependence=None):
        """Check X's range, build the net and store X's normalisation in its module
        (``dependence``: X's :func:`noise_signal_dependence` when already measured)."""
        offset, scale = _robust_scaling(Xf)
        _check_range(Xf, offset, scale)
        noise_variance = None
        if self._wants_head():
            noise_variance = float(np.mean(self._noise_variance(Xf, self._input_dtype_)))
            if dependence is None:
                dependence = noise_signal_dependence(Xf, channel_axis=self.channel_axis)
        self.initialize()
        self.module_.get_buffer(_OFFSET_BUFFER).fill_(offset)
        self.module_.get_buffer(_SCALE_BUFFER).fill_(scale)
        if self.posterior_head_:
            self.module_.get_buffer(_NOISE_BUFFER).fill_(noise_variance)
            self.module_.get_buffer(_DEPENDENCE_BUFFER).fill_(dependence)

    def _buffer_value(self, name):
        """A float buffer of the module, None when it is NaN or absent."""
        check_is_fitted(self, "module_")
        try:
            value = float(self.module_.get_buffer(name))
        except AttributeError:
            return None
        return None if math.isnan(value) else value

    @property
    def noise_variance_(self):
        """Noise variance the posterior head was trained with (float units); None
        without the head."""
        return self._buffer_value(_NOISE_BUFFER)

    @property
    def noise_dependence_(self):
        """:func:`noise_signal_dependence` of the training data; None without the head."""
        return self._buffer_value(_DEPENDENCE_BUFFER)

    def _noise_variance(self, Xf, dtype):
        """Per-image noise variance of a float stack, in its float units (``dtype``: the
        caller's, whose units ``noise_variance`` is given in)."""
        if self.noise_variance is not None:
            unit = intensity_scale(dtype) if dtype is not None else 1.0
            return np.full(Xf.shape[0], float(self.noise_variance) * unit**2)
        variances = estimate_noise_variance(Xf, channel_axis=self.channel_axis)
        correlation = getattr(self, "noise_correlation_", None)
        if correlation is not None and not correlation.is_white:
            # correlated noise: the finest-scale estimate misses part of the per-pixel
            # variance the shrinkage weight needs (as in the image families)
            variances = variances / correlation.high_pass_gain()
        return variances

    def _scaled_tensor(self, Xf):
        """The (N, C, *spatial) float32 tensor of ``(Xf - input_offset_) / input_scale_``."""
        offset, scale = self.input_offset_, self.input_scale_
        _check_range(Xf, offset, scale)
        scaled = np.subtract(Xf, offset, dtype=np.float64)
        scaled /= scale
        return self._to_tensor(scaled)

    def _unscaled(self, out, dtype):
        """Network output back in the input's float units, as ``dtype``; never
        non-finite."""
        if not bool(torch.isfinite(out).all()):
            raise FloatingPointError(
                f"{type(self).__name__}'s output is not finite: its network's weights are "
                "not usable (a training that diverged, or loaded parameters). Refit with a "
                "smaller lr.")
        images = tensor_to_images(out, self.channel_axis, np.float64)
        images *= self.input_scale_
        images += self.input_offset_
        limit = np.finfo(dtype).max  # saturate at the largest float32 rather than overflow
        np.clip(images, -limit, limit, out=images)
        return images.astype(dtype, copy=False)

    def _prior_variance(self, raw):
        """Prior variance of the posterior head (normalised units) from its raw output."""
        return torch.nn.functional.softplus(raw.float()) + _MIN_PRIOR_VARIANCE

    # ------------------------------------------------------------- initialisation
    def initialize_module(self):
        """Build the module, seeded by ``random_state``, with the data's channel count.

        Returns
        -------
        self : N2SNet
        """
        kwargs = self.get_params_for("module")
        n_channels = getattr(self, "n_channels_in_", 1)
        ndim = getattr(self, "n_spatial_dims_", 2)
        head = self._wants_head()
        spec = self._module_spec()
        if not isinstance(spec, torch.nn.Module):
            for names, value in ((("n_channels_in", "in_channels"), n_channels),
                                 (("n_channels_out", "out_channels"),
                                  2 * n_channels if head else n_channels),
                                 (("ndim",), ndim)):
                name = next((n for n in names if _accepts(spec, n)), None)
                if name is not None and not any(n in kwargs for n in names):
                    kwargs[name] = value
            if head and not any(_accepts(spec, n)
                                for n in ("n_channels_out", "out_channels")):
                raise ValueError(
                    f"output='posterior' needs a module with 2 x {n_channels} output "
                    "channels (a mean and a variance per channel); "
                    f"{getattr(spec, '__name__', spec)!r} takes no "
                    "n_channels_out or out_channels.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed())
            module = self.initialized_instance(spec, kwargs)
        # The input normalisation (identity until fit sets it), saved with the weights.
        module.register_buffer(_OFFSET_BUFFER, torch.zeros((), dtype=torch.float64))
        module.register_buffer(_SCALE_BUFFER, torch.ones((), dtype=torch.float64))
        if isinstance(self.module, str):  # module='auto': which module, for load_params
            module.register_buffer(_CHOICE_BUFFER, torch.tensor(AUTO_MODULES.index(spec)))
        if head:  # the head's noise statistics, set by fit
            for name in (_NOISE_BUFFER, _DEPENDENCE_BUFFER):
                module.register_buffer(name, torch.full((), math.nan, dtype=torch.float64))
        if self.channels_last and ndim == 2:
            module = module.to(memory_format=torch.channels_last)
        if not hasattr(self, "n_channels_in_"):
            self.n_channels_in_ = getattr(module, "n_channels_in", 1)
        self.blind_spot_module_ = bool(getattr(module, "blind_spot", False))
        self.posterior_head_ = head
        self.module_choice_ = type(module)
        self.module_ = module
        return self

    def _module_spec(self):
        """The module class (or instance) to build: ``module``, or for ``'auto'`` the
        class chosen by the last ``fit`` (BabyUnet before any)."""
        if isinstance(self.module, str):
            choice = getattr(self, "module_choice_", BabyUnet)
            return choice if choice in AUTO_MODULES else BabyUnet
        return self.module

    def _module_class(self):
        spec = self._module_spec()
        return spec if isinstance(spec, type) else type(spec)

    def _choose_module(self, Xf):
        """``module='auto'``: set ``module_choice_`` for the data of a new fit, before
        any training. D-BSN (one pass, loss on every pixel) for a pixel blind spot, an
        output that reads the J-invariant output or the posterior, and noise of one
        variance (:func:`noise_signal_dependence` at most
        :data:`SIGNAL_DEPENDENCE_LIMIT`); BabyUnet (masked training) otherwise, or when
        a ``module__*`` parameter is not one of D-BSN's.

        Returns
        -------
        dependence : float or None
            The noise dependence measured (None when not needed), for the head.
        """
        if not isinstance(self.module, str):
            return None
        dependence = None
        choice = BabyUnet
        n_spatial = Xf.ndim - 1 - (self.channel_axis is not None)
        spot = self.blind_spot
        pixel = not _is_auto(spot) and check_blind_spot(
            spot, n_spatial, tuple(int(n) for n in Xf.shape[1:1 + n_spatial])) is None
        kwargs = self.get_params_for("module")
        if (pixel and self.output in AUTO_BLIND_SPOT_OUTPUTS
                and all(_accepts(DilatedBlindSpotNet, name) for name in kwargs)):
            dependence = noise_signal_dependence(Xf, channel_axis=self.channel_axis)
            if dependence <= SIGNAL_DEPENDENCE_LIMIT:
                choice = DilatedBlindSpotNet
        if choice is BabyUnet and not all(_accepts(BabyUnet, name) for name in kwargs):
            choice = DilatedBlindSpotNet if pixel else BabyUnet  # its parameters name it
        self.module_choice_ = choice
        return dependence

    def load_params(self, f_params=None, *args, **kwargs):
        """skorch's ``load_params``; for ``module='auto'``, the module the saved weights
        belong to is built first (their ``n2s_module_choice`` buffer), so a fresh
        ``N2SNet().initialize()`` loads the weights of any default net.

        Parameters
        ----------
        f_params : file-like object, str or None, default=None
        *args, **kwargs
            skorch's other arguments (``f_optimizer``, ``f_history``...).

        Returns
        -------
        None
        """
        if (isinstance(self.module, str) and isinstance(f_params, (str, os.PathLike))
                and not kwargs.get("use_safetensors", False)):
            load_kwargs = self.torch_load_kwargs or {"weights_only": True}
            state = torch.load(f_params, map_location="cpu", **load_kwargs)
            if _CHOICE_BUFFER in state:
                chosen = AUTO_MODULES[int(state[_CHOICE_BUFFER])]
                if chosen is not getattr(self, "module_choice_", None):
                    self.module_choice_ = chosen
                    self.initialize()
        return super().load_params(f_params, *args, **kwargs)

    def _wants_head(self):
        """Whether the module gets the posterior head: ``output='posterior'``, or
        ``'auto'`` with a module class that takes its output channel count."""
        if self.output == "posterior":
            return True
        spec = self._module_spec()
        return self.output == "auto" and not isinstance(spec, torch.nn.Module) and any(
            _accepts(spec, n) for n in ("n_channels_out", "out_channels"))

    def get_params_for_optimizer(self, prefix, named_parameters):
        """skorch's optimizer arguments, with Adam/AdamW fused by default.

        One kernel updates all parameters: the small U-Net's optimizer step is mostly
        overhead otherwise.

        Parameters
        ----------
        prefix : str
            The optimizer's attribute name (``'optimizer'``).
        named_parameters : iterator of (str, torch.nn.Parameter)

        Returns
        -------
        args : tuple
            Positional arguments of the optimizer (the parameter groups).
        kwargs : dict
            Keyword arguments of the optimizer.
        """
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        auto_lr = AUTO_LR.get(self._module_class(), DEFAULT_LR)
        for group in (kwargs, *(g for a in args for g in a if isinstance(g, dict))):
            if isinstance(group.get("lr"), str):  # lr='auto': the module's measured one
                group["lr"] = auto_lr
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
        X : array-like of shape (n_samples, *spatial[, n_channels])
            One to three spatial axes, each at least 4 long (with ``spatial_ndim``,
            also one image). Integer images are computed in ``img_as_float`` units.
            Values of magnitude up to :data:`MAX_ABS_VALUE`, within
            :data:`MAX_SPREADS` spreads of the median (see ``input_scale_``).
        y : None
            Ignored: the targets are the images themselves.
        **fit_params : dict
            Passed to skorch (the module's ``forward`` and ``train_split``).

        Returns
        -------
        self : N2SNet
            The fitted net.

        Raises
        ------
        ValueError
            For values out of the accepted range, or a batch norm given a single value
            per channel (one 4x4 image in a batch).
        FloatingPointError
            When the loss or the weights stop being finite (lr too large).
        """
        self._validate_n2s_params()
        Xf = self._check_images(X, reset=True)
        self._input_dtype_ = _input_dtype(X)
        fresh = not self.warm_start or not getattr(self, "initialized_", False)
        dependence = self._choose_module(Xf) if fresh else None
        self._fit_blind_spot(Xf)
        if fresh:
            # skorch's fit: initialize, then partial_fit; plus the normalisation of X.
            self.rng_ = check_random_state(self.random_state)
            self._initialize_for(Xf, dependence)
        x = self._scaled_tensor(Xf)
        with self._threads():
            return self.partial_fit(x, None, _routing_method="fit", **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Continue training (without re-initialising) on X for one budget
        (``max_steps``, or ``max_epochs`` epochs).

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
        y : None
            Ignored.
        classes : None
            Ignored (skorch's signature).
        **fit_params : dict
            Passed to skorch.

        Returns
        -------
        self : N2SNet
        """
        if not torch.is_tensor(X):  # a tensor comes from fit, validated and normalised
            self._validate_n2s_params()
            reset = not getattr(self, "initialized_", False)
            Xf = self._check_images(X, reset=reset)
            dependence = self._choose_module(Xf) if reset else None
            if reset or not hasattr(self, "blind_spot_"):
                self._fit_blind_spot(Xf)
            if reset:
                self._input_dtype_ = _input_dtype(X)
                self._initialize_for(Xf, dependence)
            X = self._scaled_tensor(Xf)
        with self._threads():
            return super().partial_fit(X, None, classes=classes, **fit_params)

    # --------------------------------------------------------------- blind spot
    def _fit_blind_spot(self, Xf):
        """Check ``blind_spot`` against the data and the module, and set ``blind_spot_``
        (and ``noise_correlation_`` for ``'auto'``), before any training."""
        n_spatial = Xf.ndim - 1 - (self.channel_axis is not None)
        spatial_shape = tuple(int(n) for n in Xf.shape[1:1 + n_spatial])
        spot = self.blind_spot
        footprint = None if _is_auto(spot) else check_blind_spot(spot, n_spatial,
                                                                 spatial_shape)
        module = self._module_spec()
        if bool(getattr(module, "blind_spot", False)) and (
                _is_auto(spot) or footprint is not None):
            name = getattr(module, "__name__", type(module).__name__)
            raise ValueError(
                f"blind_spot={spot!r} needs masked training, but the module {name} is a "
                "blind-spot network whose field excludes the centre pixel only. For "
                "correlated noise use module=BabyUnet (masked training hides the whole "
                "blind spot), or blind_spot='pixel' with this module.")
        if hasattr(self, "noise_correlation_"):
            del self.noise_correlation_  # from an earlier fit
        if _is_auto(spot) or (footprint is not None and min(spatial_shape) >= 3):
            # measured for any structured blind spot: it also corrects the noise variance
            # of the shrink output (see _noise_variance)
            self.noise_correlation_ = estimate_noise_correlation(
                Xf, channel_axis=self.channel_axis)
        self.blind_spot_ = self.noise_correlation_.extent if _is_auto(spot) else spot
        # A footprint that leaves nothing to predict from is refused now, not mid-fit.
        patch = self._patch_size_for(spatial_shape)
        shapes = {spatial_shape}
        if patch is not None:
            shapes.add(tuple(int(n) for n in patch_shape(spatial_shape, patch)))
        for shape in shapes:
            footprint = self._blind_spot_footprint(shape)
            if footprint is not None:
                footprint_grid_strides(footprint, shape, self.stride)

    def _blind_spot_footprint(self, spatial_shape):
        """Footprint hidden around each pixel on images of ``spatial_shape`` (None: the
        pixel alone), from ``blind_spot_`` (``blind_spot`` before ``fit``)."""
        spot = getattr(self, "blind_spot_", self.blind_spot)
        if _is_auto(spot) or getattr(self, "blind_spot_module_", False):
            return None
        return check_blind_spot(spot, len(spatial_shape), spatial_shape)

    # ------------------------------------------------------------------- budget
    def _patch_size_for(self, spatial_shape):
        """The patch side training uses on images of ``spatial_shape``; None: whole."""
        if self.patch_size is None:
            return None
        if self.patch_size == "auto":
            side = AUTO_PATCH_SIZE[len(spatial_shape)]
            return side if max(spatial_shape) > side else None
        return int(self.patch_size)

    def training_plan(self, n_images, spatial_shape):
        """The training budget of one ``fit`` on ``n_images`` images of a shape.

        Parameters
        ----------
        n_images : int
            Training images (after any ``train_split``).
        spatial_shape : tuple of int

        Returns
        -------
        plan : dict
            ``patch_size`` (None: whole images), ``batch_size`` (images or patches
            per batch, ``'auto'`` and -1 resolved), ``steps_per_epoch``, ``steps`` (the
            optimiser steps of the fit; :data:`TIME_ONLY_STEPS` when ``max_time`` alone
            bounds it), ``epochs`` (``steps`` over
            ``steps_per_epoch``, rounded up: the last epoch may be shorter) and
            ``augment`` (flips and rotations of the patches: ``augment``, unless the
            blind spot is not symmetric under them).
        """
        patch = self._patch_size_for(tuple(spatial_shape))
        batch_size = self._train_batch_size(n_images, patches=patch is not None)
        if patch is None:
            per_epoch = len(batch_bounds(n_images, batch_size))
        else:
            pixels = math.prod(patch_shape(spatial_shape, patch))
            per_epoch = patches_per_epoch(n_images * math.prod(spatial_shape), pixels,
                                          batch_size)
        if isinstance(self.max_steps, Integral):
            steps = int(self.max_steps)
        elif self.max_steps == "auto" and self.max_time is not None:
            steps = TIME_ONLY_STEPS  # the time budget alone
        else:
            steps = self.max_epochs * per_epoch
            if self.max_steps == "auto" and patch is not None:
                seen = AUTO_PATCH_PASSES * n_images * math.prod(spatial_shape)
                seen = min(max(seen, AUTO_PATCH_PIXELS),
                           AUTO_PATCH_PIXELS_MAX[len(spatial_shape)])
                seen *= AUTO_MODULE_PATCH_SHARE.get(self._module_class(), 1.0)
                steps = max(steps, math.ceil(seen / (pixels * batch_size)))
        shape = spatial_shape if patch is None else patch_shape(spatial_shape, patch)
        footprint = self._blind_spot_footprint(tuple(shape))
        return {"patch_size": patch, "batch_size": batch_size,
                "steps_per_epoch": per_epoch, "steps": steps,
                "epochs": math.ceil(steps / per_epoch),
                "augment": bool(self.augment) and _rotation_safe(footprint)}

    def _train_batch_size(self, n_images, *, patches):
        """Images (or patches) per training batch: ``batch_size`` resolved."""
        if self.batch_size == "auto":
            sizes = AUTO_MODULE_BATCH_SIZE.get(self._module_class(), AUTO_BATCH_SIZE)
            return sizes["patches" if patches else "images"]
        return n_images if self.batch_size == -1 else int(self.batch_size)

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop, run for the epochs of :meth:`training_plan`.

        Parameters
        ----------
        X : tensor of shape (N, C, *spatial)
        y : None
        epochs : int or None, default=None
            None: the planned epochs (``train_plan_``).
        **fit_params : dict
            Passed to skorch.

        Returns
        -------
        self : N2SNet
        """
        if epochs is None and torch.is_tensor(X):
            dataset_train, _ = self.get_split_datasets(X, y)
            self.train_plan_ = self.training_plan(len(dataset_train), tuple(X.shape[2:]))
            epochs = self.train_plan_["epochs"]
        else:
            self.train_plan_ = None
        return super().fit_loop(X, y, epochs=epochs, **fit_params)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's epoch, whose training batches stop once ``max_time`` is spent.

        Parameters
        ----------
        iterator : iterable of batches or None
        training : bool
        prefix : str
        step_fn : callable
        **fit_params : dict
            Passed to skorch.
        """
        budget = _time_budget(self) if training else None
        if iterator is not None and budget is not None:
            iterator = budget.until_spent(iterator)
        return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    def get_iterator(self, dataset, training=False):
        """The batch loader of a dataset, seeded from ``rng_``.

        Training follows ``train_plan_``: a :class:`._data.PatchBatchLoader` when it
        trains on patches (and ``iterator_train`` is the default), and a budget of
        ``train_plan_['steps']`` batches over all epochs.

        Parameters
        ----------
        dataset : torch Dataset
        training : bool, default=False
            Shuffle (training) or keep the order (validation).

        Returns
        -------
        iterator : iterable of (X_batch, y_batch)
        """
        prefix = "iterator_train" if training else "iterator_valid"
        iterator = self.iterator_train if training else self.iterator_valid
        kwargs = self.get_params_for(prefix)
        plan = getattr(self, "train_plan_", None) if training else None
        if "batch_size" not in kwargs:
            patches = bool(plan is not None and plan["patch_size"])
            kwargs["batch_size"] = self._train_batch_size(len(dataset), patches=patches)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        if iterator is ImageBatchLoader and plan is not None and plan["patch_size"]:
            return PatchBatchLoader(
                dataset, batch_size=kwargs["batch_size"], patch_size=plan["patch_size"],
                n_batches=plan["steps_per_epoch"], augment=plan["augment"],
                random_state=self._seed(), budget=plan["steps"])
        if iterator is ImageBatchLoader:
            kwargs.setdefault("shuffle", training)
            kwargs.setdefault("random_state", self._seed())
            if plan is not None:
                kwargs.setdefault("budget", plan["steps"])
        elif iterator is DataLoader and training:
            kwargs.setdefault("shuffle", True)
            kwargs.setdefault("generator", torch.Generator().manual_seed(self._seed()))
        return iterator(dataset, **kwargs)

    def mask_batch(self, x):
        """Hide pixels of a batch and fill them (see :func:`._masking.mask_batch`).

        Parameters
        ----------
        x : tensor of shape (N, C, *spatial)

        Returns
        -------
        net_input : tensor like x
            x with the hidden pixels replaced by ``fill``.
        mask : bool tensor of shape (N, 1, *spatial)
            True where a pixel is hidden.
        """
        generator = torch.Generator().manual_seed(self._seed())
        return _mask_batch(x, masking=self.masking, stride=self.stride,
                           density=self.density, fill=self.fill, generator=generator,
                           footprint=self._blind_spot_footprint(tuple(x.shape[2:])))

    def _training_precision(self):
        if self.precision == "auto":
            return "bfloat16" if torch.device(self.device).type == "cuda" else "float32"
        return self.precision

    def infer(self, x, **fit_params):
        """The training module's output (autocast when the precision is bfloat16).

        Parameters
        ----------
        x : tensor of shape (N, C, *spatial)
        **fit_params : dict
            Passed to the module's ``forward``.

        Returns
        -------
        y_pred : float32 tensor of shape (N, C_out, *spatial)
        """
        x = x.to(self.device)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self._training_precision() == "float32":
            return self.module_(x, **fit_params)
        device_type = torch.device(self.device).type
        with torch.autocast(device_type, dtype=torch.bfloat16):
            out = self.module_(x, **fit_params)
        return out.float()

    def get_loss(self, y_pred, y_true, X=None, training=False, mask=None):
        """Criterion on the masked pixels (all channels) only; everywhere if no mask.

        With the posterior head, the Gaussian negative log-likelihood of ``y_true``
        under ``N(mu, s2 + sigma2)`` instead (see the module notes), on the same pixels.

        Parameters
        ----------
        y_pred : tensor of shape (N, C, *spatial), (N, 2 C, *spatial) with the head
        y_true : tensor of shape (N, C, *spatial)
            The unmasked batch.
        X : tensor or None, default=None
            The network's input (unused).
        training : bool, default=False
            Unused (skorch's signature).
        mask : bool tensor of shape (N, 1, *spatial) or None, default=None

        Returns
        -------
        loss : scalar tensor
        """
        y_true = to_tensor(y_true, device=self.device)
        if getattr(self, "posterior_head_", False):
            return self._posterior_nll(y_pred, y_true, mask)
        if mask is None:
            return self.criterion_(y_pred, y_true)
        if type(self.criterion_) is torch.nn.MSELoss and self.criterion_.reduction == "mean":
            # Same value as indexing, cheaper: no gather/scatter of the masked pixels.
            weight = mask.to(y_pred.dtype)
            squared = (y_pred - y_true).square() * weight
            return squared.sum() / (weight.sum() * y_pred.shape[1]).clamp_min(1)
        full = mask.expand_as(y_pred)
        return self.criterion_(y_pred[full], y_true[full])

    def _posterior_nll(self, y_pred, y_true, mask):
        """Mean Gaussian negative log-likelihood (without the constant) of the head."""
        n_channels = y_true.shape[1]
        mu = y_pred[:, :n_channels]
        # no estimate before fit (a bare initialize()): a noise-free likelihood
        noise = (self.noise_variance_ or 0.0) / self.input_scale_**2
        total = self._prior_variance(y_pred[:, n_channels:]) + noise
        nll = 0.5 * (torch.log(total) + (y_true - mu).square() / total)
        if mask is None:
            return nll.mean()
        weight = mask.to(nll.dtype)
        return (nll * weight).sum() / (weight.sum() * n_channels).clamp_min(1)

    def _training_input(self, x):
        """``(net_input, mask)``: the batch as is for a blind-spot module (the loss on
        every pixel), else :meth:`mask_batch`."""
        if getattr(self, "blind_spot_module_", False):
            return x, None
        return self.mask_batch(x)

    def train_step_single(self, batch, **fit_params):
        """Mask, predict, masked loss, backward: one training step without the update.

        Parameters
        ----------
        batch : (X_batch, y_batch)
            ``y_batch`` is ignored: the target is ``X_batch``.
        **fit_params : dict
            Passed to :meth:`infer`.

        Returns
        -------
        step : dict
            ``{'loss': loss, 'y_pred': y_pred}``.
        """
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        Xi = Xi.to(self.device)
        net_input, mask = self._training_input(Xi)
        try:
            y_pred = self.infer(net_input, **fit_params)
        except ValueError as error:
            if "Expected more than 1 value per channel" not in str(error):
                raise
            raise ValueError(
                f"A training batch of {len(Xi)} image(s) of {tuple(Xi.shape[2:])} pixels "
                "leaves a single value per channel for the network's batch norm. Use "
                "batch_size >= 2 with at least 2 training images, or larger images."
            ) from error
        loss = self.get_loss(y_pred, Xi, X=net_input, training=True, mask=mask)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        """The masked loss of a held-out batch, in eval mode and without gradient.

        Parameters
        ----------
        batch : (X_batch, y_batch)
        **fit_params : dict
            Passed to :meth:`infer`.

        Returns
        -------
        step : dict
            ``{'loss': loss, 'y_pred': y_pred}``.
        """
        self._set_training(False)
        Xi, _ = unpack_data(batch)
        Xi = Xi.to(self.device)
        with torch.no_grad():
            net_input, mask = self._training_input(Xi)
            y_pred = self.infer(net_input, **fit_params)
            loss = self.get_loss(y_pred, Xi, X=net_input, training=False, mask=mask)
        return {"loss": loss, "y_pred": y_pred}

    # ------------------------------------------------------------------- inference
    def inference_module(self):
        """The module inference runs, never a changed ``module_``.

        With ``fused_for_inference`` (as :class:`BabyUnet` has): an eval-mode copy with
        batch norm folded into the convolutions, in the channels-last layout on CPU for
        2-D images (about 1.7x faster together for BabyUnet). Otherwise ``module_``
        itself, which inference switches to eval mode for the duration of the call only.

        Returns
        -------
        module : torch.nn.Module
        """
        module = self.module_
        if hasattr(module, "fused_for_inference"):
            module = module.fused_for_inference()
            if torch.device(self.device).type == "cpu" and self._ndim() == 2:
                module = module.to(memory_format=torch.channels_last)
        return module

    def _ndim(self):
        return getattr(self, "n_spatial_dims_", 2)

    @staticmethod
    def _run(module, x):
        if x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return module(x)

    def _tile_size(self, module):
        """``(tile_size, margin)``: the tile side rounded up to the module's multiple."""
        margin, multiple = tile_geometry(module)
        if self.tile_size is None:
            return None, margin
        return math.ceil(self.tile_size / multiple) * multiple, margin

    def _forward_images(self, module, x):
        """Network output for a stack, in inference batches, tile by tile if asked."""
        step = self.inference_batch_size
        tile_size, margin = self._tile_size(module)
        outputs = [
            forward_tiled(lambda tile: self._run(module, tile), x[i:i + step].to(self.device),
                          tile_size, margin)
            for i in range(0, len(x), step)
        ]
        return torch.cat(outputs)

    def _network_output(self, x, *, invariant):
        """The module's output for a normalised tensor: J-invariant or one plain pass,
        averaged over the grid maps with ``test_time_augmentation``."""
        module = self.inference_module()
        with self._threads(), _evaluating(module), torch.no_grad():
            if not self.augments_at_test_time():
                return self._one_output(module, x, invariant)
            footprint = self._blind_spot_footprint(tuple(x.shape[2:]))
            maps = _grid_maps(x.ndim - 2, footprint)
            total = None
            for grid_map in maps:
                mapped = _map_grid(x, grid_map, torch.rot90, torch.flip).contiguous()
                out = _unmap_grid(self._one_output(module, mapped, invariant), grid_map)
                total = out if total is None else total.add_(out)
            return total.div_(len(maps))

    def augments_at_test_time(self):
        """Whether outputs average over the quarter turns and flips of the plane:
        ``test_time_augmentation``, with ``'auto'`` resolved by the last ``fit`` (on
        when it trained on patches).

        Returns
        -------
        augments : bool
        """
        if self.test_time_augmentation != "auto":
            return bool(self.test_time_augmentation)
        plan = getattr(self, "train_plan_", None)
        return bool(plan and plan.get("patch_size") is not None)

    def _one_output(self, module, x, invariant):
        if invariant and not getattr(self, "blind_spot_module_", False):
            return invariant_forward(
                lambda stack: self._forward_images(module, stack), x,
                stride=self.stride, fill=self.fill, generator=self._inference_generator(),
                images_per_pass=self.inference_batch_size,
                footprint=self._blind_spot_footprint(tuple(x.shape[2:])))
        return self._forward_images(module, x)

    def _predict(self, X, *, invariant, head=False):
        """``(mean, Xf, single, prior)``: the one-pass or J-invariant mean output in X's
        float units (float64, or float32 for float32 X), the float X, whether X was
        one image, and the posterior head's prior variance (float units) when ``head``."""
        check_is_fitted(self)
        self._validate_n2s_params()
        Xf, single = self._check_images(X, reset=False, return_single=True)
        out = self._network_output(self._scaled_tensor(Xf), invariant=invariant)
        prior = None
        if getattr(self, "posterior_head_", False):
            n_channels = out.shape[1] // 2
            if head:
                variance = self._prior_variance(out[:, n_channels:]) * self.input_scale_**2
                prior = tensor_to_images(variance, self.channel_axis, np.float64)
            out = out[:, :n_channels]
        return self._unscaled(out, Xf.dtype), Xf, single, prior

    def _as_output(self, values, X, single):
        """The input's dtype and shape: integers back to their units (rounded, clipped)."""
        values = _to_input_dtype(values, _input_dtype(X), values.dtype)
        return values[0] if single else values

    def transform(self, X):
        """Denoise X; what is returned depends on ``output``.

        ``'ordinary'`` (default): one pass of the network on X; ``'shrink'``:
        ``X + lam (f_inv(X) - X)`` with ``lam = sigma**2 / L`` per image (``L`` the
        image's self-supervised loss, ``sigma**2`` its noise variance); ``'invariant'``:
        the J-invariant output; ``'posterior'``: the Gaussian posterior mean (module
        notes).

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
            As many spatial axes as the data of ``fit``, any size.

        Returns
        -------
        X_denoised : ndarray of the same shape
            X's dtype: float32 for float16/float32, float64 for float64 (and Python
            numbers); integer images in their own units, rounded and clipped.

        Raises
        ------
        ValueError
            For ``output='posterior'`` on a net fitted without the posterior head.
        """
        output = self.output
        if output == "auto":
            if not self._auto_has_choice():
                output = "ordinary"
            else:
                # one choice for the whole stack: per image, the estimates of small
                # images are noisy (MNIST digits: 0.09 dB lost to choosing per digit)
                outputs, risks, Xf, single = self._auto_candidates(X)
                best = min(risks, key=lambda name: float(np.mean(risks[name])))
                return self._as_output(outputs[best], X, single)
        if output == "posterior" and not getattr(self, "posterior_head_", False):
            check_is_fitted(self)
            raise ValueError(
                "output='posterior' needs a net fitted with output='posterior' (which "
                "trains the mean and variance head): refit, or choose another output.")
        if output == "ordinary":
            out, Xf, single, _ = self._predict(X, invariant=False)
        else:
            mean, Xf, single, prior = self._predict(X, invariant=True,
                                                    head=output == "posterior")
            noise = self._noise_variance(Xf, _input_dtype(X))
            if output == "shrink":
                out = shrink_towards_data(mean, Xf, noise)[0]
            elif output == "posterior":
                noise = noise.reshape((-1,) + (1,) * (Xf.ndim - 1))
                out = ((prior * Xf + noise * mean) / (prior + noise)).astype(Xf.dtype)
            else:
                out = mean
        return self._as_output(out, X, single)

    def _auto_has_choice(self):
        """Whether ``output='auto'`` chooses by risk: a posterior head, and noise of one
        variance (``noise_dependence_`` at most :data:`SIGNAL_DEPENDENCE_LIMIT`)."""
        check_is_fitted(self)
        dependence = getattr(self, "noise_dependence_", None)
        return bool(getattr(self, "posterior_head_", False) and dependence is not None
                    and dependence <= SIGNAL_DEPENDENCE_LIMIT)

    def _auto_candidates(self, X):
        """``(outputs, risks, Xf, single)`` of the two outputs ``'auto'`` chooses from,
        as float arrays in X's float units, with their estimated risks per image."""
        mean, Xf, single, prior = self._predict(X, invariant=True, head=True)
        noise = self._noise_variance(Xf, _input_dtype(X))
        per_image = noise.reshape((-1,) + (1,) * (Xf.ndim - 1))
        gain = prior / (prior + per_image)  # d posterior_j / d x_j, exactly
        posterior = (gain * Xf + (1 - gain) * mean).astype(Xf.dtype)
        axes = tuple(range(1, Xf.ndim))
        if getattr(self, "blind_spot_module_", False):
            # the one pass is the J-invariant mean itself, whose divergence is exactly
            # 0 (d f_j / d x_j = 0): no second and third pass
            ordinary, divergence = mean, np.zeros(Xf.shape[0])
        else:
            ordinary, divergence = self._ordinary_divergence(Xf)
        risks = {}
        for name, out, div in (("ordinary", ordinary, divergence),
                               ("posterior", posterior, np.mean(gain, axis=axes))):
            # Stein's estimate for a filter that looks at its pixel, as for the classics
            residual = np.mean(np.square(out - Xf, dtype=np.float64), axis=axes)
            risks[name] = _stein_risks(None, noise, ordinary_residual=residual,
                                        divergence=div)["ordinary"]
        return {"ordinary": ordinary, "posterior": posterior}, risks, Xf, single

    def _ordinary_divergence(self, Xf):
        """The one-pass output of a float stack and its mean divergence per image, by a
        Monte-Carlo finite difference along random signs (Ramani, Blu & Unser 2008)."""
        x = self._scaled_tensor(Xf)
        n_channels = x.shape[1]
        generator = self._inference_generator()
        signs = torch.randint(0, 2, x.shape, generator=generator).to(x.dtype) * 2 - 1
        signs = signs.to(x.device)
        plain = self._network_output(x, invariant=False)[:, :n_channels]
        moved = self._network_output(x + _SURE_STEP * signs, invariant=False)[:, :n_channels]
        change = ((moved - plain) * signs).double().flatten(1).mean(1) / _SURE_STEP
        return self._unscaled(plain, Xf.dtype), change.cpu().numpy()

    def output_risks(self, X):
        """Estimated mean squared error to the clean images of the two outputs that
        ``output='auto'`` chooses from, per image (Stein's unbiased risk estimate).

        With Gaussian noise of variance ``sigma2`` (estimated per image), an output
        ``f`` has the risk ``mean((f - x)**2) - sigma2 + 2 sigma2 mean(df_j/dx_j)``.
        For the posterior mean ``g x + (1 - g) mu`` the derivative is ``g`` exactly
        (``mu`` and ``g`` are J-invariant); for the one pass it is estimated by a finite
        difference along random signs (one more pass). Self-supervised: no clean data.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])

        Returns
        -------
        risks : dict
            ``{'ordinary': ndarray (n_samples,), 'posterior': ndarray (n_samples,)}``,
            in X's float units squared (``img_as_float`` units for integers).

        Raises
        ------
        ValueError
            When the net has no posterior head (fitted with another output than
            ``'auto'`` or ``'posterior'``) or its data's noise follows the signal.
        """
        if not self._auto_has_choice():
            raise ValueError(
                "output_risks needs a net fitted with output='auto' or 'posterior' (the "
                "posterior head) on noise of one variance (noise_dependence_ <= "
                f"{SIGNAL_DEPENDENCE_LIMIT:g}); this net has "
                f"posterior_head_={getattr(self, 'posterior_head_', False)}, "
                f"noise_dependence_={getattr(self, 'noise_dependence_', None)}.")
        return self._auto_candidates(X)[1]

    def predict(self, X):
        """Same as :meth:`transform`.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])

        Returns
        -------
        X_denoised : ndarray of the same shape
        """
        return self.transform(X)

    @property
    def predict_proba(self):
        """Not available: a denoiser has no class probabilities (skorch's method, which
        would run the module on raw input, is hidden; ``hasattr`` is False)."""
        raise AttributeError(
            f"{type(self).__name__} is a denoiser and has no predict_proba: use transform.")

    def invariant_transform(self, X):
        """Exact J-invariant prediction: a pixel's output never depends on that pixel.

        A blind-spot module's one pass. Otherwise every coset of the stride-``stride``
        grid is hidden (filled with ``fill``) in one of ``stride**ndim`` passes, and
        each pixel is read from the pass that hid it; with a structured ``blind_spot_``
        the grid is spaced per axis and each pass hides the whole footprint of its
        coset's pixels, so the output at a pixel depends on nothing in its blind spot.
        Repeated calls give the same output, also with the random ``'uniform'`` fill.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])

        Returns
        -------
        X_invariant : ndarray of the same shape
            X's dtype, as :meth:`transform`.
        """
        mean, _, single, _ = self._predict(X, invariant=True)
        return self._as_output(mean, X, single)

    def export_bmz(self, path, **kwargs):
        """Write this fitted blind-spot net as a BioImage Model Zoo package.

        See :func:`sklearn_n2s.neural.export_bmz` (needs the ``bmz`` extra); the package
        runs the one-pass J-invariant prediction in the input's units.

        Parameters
        ----------
        path : str or path-like
            A ``.zip`` file or a folder.
        **kwargs
            Passed to :func:`~sklearn_n2s.neural.export_bmz` (``name``, ``authors``,
            ``test_input``, ...).

        Returns
        -------
        path : pathlib.Path
        """
        from ._bmz import export_bmz

        return export_bmz(self, path, **kwargs)

    def shrinkage_weights(self, X):
        """Per-image weight ``lam`` that ``output='shrink'`` gives the invariant output.

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])

        Returns
        -------
        lam : ndarray of shape (n_samples,)
            In [0, 1] (see :func:`sklearn_n2s.base.shrink_weights`).
        """
        mean, Xf, _, _ = self._predict(X, invariant=True)
        return shrink_towards_data(mean, Xf, self._noise_variance(Xf, _input_dtype(X)))[1]

    def self_supervised_loss(self, X, loss="mse"):
        """Loss of the J-invariant prediction against X itself (lower is better).

        In the float units of X (``img_as_float`` units for integer images, as the
        classical denoisers).

        Parameters
        ----------
        X : array-like of shape (n_samples, *spatial[, n_channels])
        loss : {'mse', 'mae'} or callable, default='mse'
            A callable is called as ``loss(prediction, X)``.

        Returns
        -------
        loss : float
            Finite: a non-finite value raises a :class:`FloatingPointError`.
        """
        prediction, Xf, _, _ = self._predict(X, invariant=True)
        value = get_loss(loss)(prediction, Xf)
        if not np.isfinite(value):
            raise FloatingPointError(
                f"The self-supervised loss of {type(self).__name__} is {value}: the "
                "prediction or the loss function overflowed.")
        return value

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        tags.requires_fit = True
        tags.non_deterministic = self.random_state is None
        if tags.transformer_tags is not None:
            # integer images come back in their own dtype and units (rounded, clipped)
            tags.transformer_tags.preserves_dtype = [
                "float32", "float64", "uint8", "uint16", "uint32", "int8", "int16", "int32"]
        return tags
