"""One-pass blind-spot networks: the output at a pixel never depends on that pixel.

A blind-spot network is J-invariant by construction, so the Noise2Self loss can use every
pixel of every training step (no masking) and the J-invariant prediction is one forward
pass instead of ``stride**ndim`` masked ones. Two families, for 1-D, 2-D and 3-D images:

- :class:`BlindSpotUnet`, after Laine, Karras, Lehtinen & Aila (2019): a U-Net whose
  every convolution and downsampling is shifted so that its receptive field covers a
  half-space only. One such half-space network (shared weights) looks at ``2 * ndim``
  axis-permuted and flipped views of the input, one per direction ``±axis``; a final
  one-pixel shift pushes each view's field strictly off the centre's hyperplane; the
  views are undone and merged pixel by pixel by 1x1 convolutions. The union of the
  ``2 * ndim`` open half-spaces is everything but the centre pixel.
- :class:`DilatedBlindSpotNet` (D-BSN), after Wu, Liu, Cao, Ren & Zuo (2020): a first
  convolution whose centre weight is masked, then only dilated convolutions (after a
  ``k``-kernel masked convolution, convolutions dilated by ``d > k // 2`` cannot come
  back to the centre) and 1x1 convolutions; one pass, no rotations.

A third, :class:`~sklearn_n2s.neural.ShuffledBlindSpotUnet` (U-Nets on pixel-shuffled
centre-masked features, a wide field), lives in ``_shuffled``.

Both modules were written from the papers' text. Laine et al.'s own code is under a
non-commercial licence and was not consulted.

Rules that keep the blind spot exact, in training mode too:

- every padding is by constants (zeros, or ``-inf`` inside max pooling). A reflected or
  replicated border would copy pixels, and a mirrored copy of the centre can land inside
  its own field near an edge;
- no batch normalisation: batch statistics mix every pixel (the centre included) into
  every output.

Both modules share one interface: ``(in_channels, out_channels, ndim, width, depth)``;
the class attribute ``blind_spot = True``; ``receptive_radius``, an upper bound on the
distance along any axis of an input pixel that can change an output pixel (the overlap
tiles need); ``size_multiple``, the alignment tiles need (``2**depth`` or 1).

This module imports torch; ``import sklearn_n2s`` does not import it.
"""

import torch
import torch.nn.functional as F
from torch import nn

#: Negative slope of the leaky ReLUs (as in Laine et al. 2019).
LEAKY_SLOPE = 0.1


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}.")


def _check_input(module, x):
    """Refuse a wrong rank or channel count before any work, naming the expected shape."""
    axes = ", ".join("DHW"[3 - module.ndim:])
    if x.ndim != module.ndim + 2:
        raise ValueError(
            f"{type(module).__name__}(ndim={module.ndim}) expects (N, C, {axes}) input, "
            f"got shape {tuple(x.shape)}.")
    if x.shape[1] != module.in_channels:
        raise ValueError(
            f"{type(module).__name__} has in_channels={module.in_channels}, got an input "
            f"with {x.shape[1]} channels (shape {tuple(x.shape)}).")
    if min(x.shape[2:]) < 1:
        raise ValueError(f"Spatial sides must be >= 1, got shape {tuple(x.shape)}.")


def _conv(ndim, *args, **kwargs):
    return getattr(nn, f"Conv{ndim}d")(*args, **kwargs)


def _pad_spec(ndim, axis, before, after):
    """``F.pad`` widths (last axis first) that pad spatial ``axis`` only."""
    spec = [0, 0] * ndim
    spec[2 * (ndim - 1 - axis)] = before
    spec[2 * (ndim - 1 - axis) + 1] = after
    return spec


# ------------------------------------------------------------------- BlindSpotUnet
class HalfSpaceConv(nn.Module):
    """A 3**ndim convolution whose output at row y sees input rows y-2..y only.

    "Row" is spatial axis 0. The usual centred kernel, applied to the input shifted down
    by one row: zero padding of two rows before the first row (none after), so the
    field ends at the output's own row. Every other axis is zero-padded by one on both
    sides as usual.

    Parameters
    ----------
    ndim : {1, 2, 3}
    in_channels, out_channels : int
    """

    def __init__(self, ndim, in_channels, out_channels):
        super().__init__()
        # Padding 2 on both ends of axis 0 and keeping the first n output rows is the
        # same as padding 2 before only, without an F.pad copy per layer.
        self.conv = _conv(ndim, in_channels, out_channels, kernel_size=3,
                          padding=(2,) + (1,) * (ndim - 1))

    def forward(self, x):
        """Apply the convolution; the output has the input's spatial shape."""
        return self.conv(x).narrow(2, 0, x.shape[2])


def _shift_down(x):
    """Move every row one down along spatial axis 0 (a zero row enters at the top)."""
    ndim = x.ndim - 2
    return F.pad(x, _pad_spec(ndim, 0, 1, 0)).narrow(2, 0, x.shape[2])


def _half_space_pool(x):
    """2x downsampling by max pooling whose window for coarse row i is fine rows 2i-1, 2i.

    So a coarse row i, anchored at fine row 2i, depends on no fine row below 2i: the
    half-space property survives the pooling (and the nearest upsampling back, which
    gives fine rows 2i and 2i+1 the coarse row i).
    """
    ndim = x.ndim - 2
    pool = getattr(F, f"max_pool{ndim}d")
    # -inf padding of one on both ends of axis 0, then the first n/2 windows.
    pooled = pool(x, kernel_size=2, stride=2, padding=(1,) + (0,) * (ndim - 1))
    return pooled.narrow(2, 0, x.shape[2] // 2)


def _upsample(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


class HalfSpaceUnet(nn.Module):
    """A U-Net whose output at row y depends on input rows < y only (spatial axis 0).

    Encoder: two half-space convolutions at full resolution, then ``depth`` times a
    half-space pooling and one convolution (two at the bottom). Decoder: nearest
    upsampling, concatenation with the encoder map of the same level, two convolutions.
    Leaky ReLU after every convolution. Last, the one-row shift that makes the field
    strictly above the output row. Sides along every axis must be multiples of
    ``2**depth`` (:class:`BlindSpotUnet` pads).

    Parameters
    ----------
    ndim : {1, 2, 3}
    in_channels : int
    width : int
        Channels of the encoder and of the output; the decoder has ``2 * width`` below
        full resolution.
    depth : int
        Number of poolings.
    """

    def __init__(self, ndim, in_channels, width, depth):
        super().__init__()
        w = width
        self.depth = depth
        self.act = nn.LeakyReLU(LEAKY_SLOPE)
        self.enc0 = nn.ModuleList([HalfSpaceConv(ndim, in_channels, w),
                                   HalfSpaceConv(ndim, w, w)])
        self.enc = nn.ModuleList([HalfSpaceConv(ndim, w, w) for _ in range(depth)])
        self.bottom = HalfSpaceConv(ndim, w, w)
        self.dec = nn.ModuleList()
        c_in = w
        for level in reversed(range(depth)):
            # 2 * width channels in the decoder, but width at full resolution, where a
            # channel costs the most (Laine et al. narrow their last decoder block too).
            c_out = 2 * w if level else w
            self.dec.append(nn.ModuleList([HalfSpaceConv(ndim, c_in + w, c_out),
                                           HalfSpaceConv(ndim, c_out, c_out)]))
            c_in = c_out
        self.out_channels = w

    def forward(self, x):
        """(N, in_channels, *sides) -> (N, width, *sides), sides multiples of 2**depth."""
        act = self.act
        for conv in self.enc0:
            x = act(conv(x))
        skips = [x]
        for level, conv in enumerate(self.enc, start=1):
            x = act(conv(_half_space_pool(x)))
            if level < self.depth:
                skips.append(x)
        x = act(self.bottom(x))
        for convs, skip in zip(self.dec, reversed(skips)):
            x = torch.cat([_upsample(x), skip], dim=1)
            for conv in convs:
                x = act(conv(x))
        return _shift_down(x)

    @staticmethod
    def reach(depth):
        """(backward, lateral) reach in input pixels: bounds of the field along axis 0
        (rows above) and along the other axes (either side)."""
        backward, lateral = 1, 0  # the final shift
        # Convolutions on the deepest path, per level: 2 (level 0) or 1 in the encoder,
        # 1 more at the bottom, 2 in the decoder above the bottom. Each reaches 2 rows
        # back and 1 pixel aside, in pixels of its level.
        for level in range(depth + 1):
            n = (2 if level == 0 else 1) + (1 if level == depth else 2)
            backward += 2 * n * 2 ** level
            lateral += n * 2 ** level
        for level in range(depth):
            # Entering level+1: the pooling window reaches one level pixel back (and one
            # aside); leaving it, the nearest upsampling reads a coarse pixel anchored up
            # to one level pixel back (or aside).
            backward += 2 * 2 ** level
            lateral += 2 * 2 ** level
        return backward, lateral


class BlindSpotUnet(nn.Module):
    """U-Net with a blind spot: its output at a pixel never depends on that pixel.

    After Laine, Karras, Lehtinen & Aila (2019). A half-space U-Net (every convolution and
    pooling shifted so that the output at row y sees rows above it only, strictly after a
    final one-row shift) runs on ``2 * ndim`` views of the input, one per direction
    ``±axis`` (the axis moved first, flipped for ``-``): 2 views in 1-D, 4 in 2-D (the
    paper's four rotations, as transposes and flips), 6 in 3-D. The views share the
    weights and run as one batch (one batch per distinct view shape when the sides
    differ). Each view's output is moved back, and a pixel-wise stack of 1x1
    convolutions merges the ``2 * ndim`` feature maps. Each view sees an open
    half-space; their union is everything but the centre pixel, in every channel.

    Any size works: the input is zero-padded at the end of each axis to a multiple of
    ``2**depth`` and the output cropped back. Zero padding, not reflection, so that no
    copy of a pixel enters its own field at an edge. No batch normalisation, so that the
    blind spot is exact in training mode too.

    Parameters
    ----------
    in_channels : int, default=1
    out_channels : int, default=1
    ndim : {1, 2, 3}, default=2
        Spatial axes of the input ``(N, C, *spatial)``.
    width : int, default=16
        Channels of the encoder and of each view's output; ``2 * width`` in the decoder
        below full resolution; the merge has ``4 * width`` then ``2 * width``.
    depth : int, default=3
        Number of 2x poolings (and the padding multiple ``2**depth``).

    Attributes
    ----------
    blind_spot : bool
        True (class attribute): the module is J-invariant by construction.
    receptive_radius : int
        Upper bound on the distance along any axis between an output pixel and an input
        pixel that can change it: ``HalfSpaceUnet.reach(depth)[0]``, 91 at ``depth=3``.
    size_multiple : int
        ``2**depth``: the pooling grid is anchored at multiples of it (in every view), so
        tiles that start at such multiples, with a margin over ``receptive_radius``,
        give the untiled output in their core.
    directions : list of (axis, sign)
        The views, in the order their features are stacked for the merge.
    unet : HalfSpaceUnet
        The shared half-space network.
    merge : torch.nn.Sequential
        The 1x1 convolutions from ``2 * ndim * width`` channels to ``out_channels``.

    References
    ----------
    .. [1] S. Laine, T. Karras, J. Lehtinen and T. Aila, "High-Quality Self-Supervised
       Deep Image Denoising", Advances in Neural Information Processing Systems 32
       (NeurIPS), 2019. arXiv:1901.10277.

    Examples
    --------
    >>> import torch
    >>> from sklearn_n2s.neural import BlindSpotUnet
    >>> net = BlindSpotUnet(in_channels=2, out_channels=2, ndim=2, width=4).eval()
    >>> x = torch.randn(1, 2, 13, 20)
    >>> net(x).shape
    torch.Size([1, 2, 13, 20])
    >>> y = x.clone()
    >>> y[0, :, 6, 9] += 100.0  # the pixel's own value does not reach its output
    >>> bool((net(y) - net(x))[0, :, 6, 9].abs().max() < 1e-4)
    True
    """

    blind_spot = True

    def __init__(self, in_channels=1, out_channels=1, ndim=2, width=16, depth=3):
        super().__init__()
        _check_int("in_channels", in_channels, 1)
        _check_int("out_channels", out_channels, 1)
        _check_int("ndim", ndim, 1, 3)
        _check_int("width", width, 1)
        _check_int("depth", depth, 0, 8)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.ndim, self.width, self.depth = ndim, width, depth
        self.directions = [(axis, sign) for axis in range(ndim) for sign in (1, -1)]
        self.unet = HalfSpaceUnet(ndim, in_channels, width, depth)
        n_features = len(self.directions) * self.unet.out_channels
        self.merge = nn.Sequential(
            _conv(ndim, n_features, 4 * width, kernel_size=1), nn.LeakyReLU(LEAKY_SLOPE),
            _conv(ndim, 4 * width, 2 * width, kernel_size=1), nn.LeakyReLU(LEAKY_SLOPE),
            _conv(ndim, 2 * width, out_channels, kernel_size=1))
        self.receptive_radius = max(HalfSpaceUnet.reach(depth))
        self.size_multiple = 2 ** depth

    @staticmethod
    def _view(x, axis, sign):
        """The input as seen from direction (axis, sign): that axis first, flipped for -1."""
        x = x.movedim(2 + axis, 2)
        return x.flip(2) if sign < 0 else x

    @staticmethod
    def _unview(x, axis, sign):
        if sign < 0:
            x = x.flip(2)
        return x.movedim(2, 2 + axis)

    def forward(self, x):
        """Blind-spot output for a batch of any spatial size.

        Parameters
        ----------
        x : tensor of shape (N, in_channels, *spatial)
            ``len(spatial) == ndim``, every side >= 1.

        Returns
        -------
        out : tensor of shape (N, out_channels, *spatial)
            ``out[..., p]`` does not depend on ``x[..., p]`` (any channel).
        """
        _check_input(self, x)
        sides = x.shape[2:]
        multiple = 2 ** self.depth
        pad = []
        for side in reversed(sides):
            pad += [0, -side % multiple]
        if any(pad):
            x = F.pad(x, pad)
        views = [self._view(x, axis, sign) for axis, sign in self.directions]
        # Views of one shape run as one batch: all of them for square/cubic inputs.
        groups = {}
        for i, view in enumerate(views):
            groups.setdefault(tuple(view.shape[2:]), []).append(i)
        features = [None] * len(views)
        n = x.shape[0]
        for members in groups.values():
            out = self.unet(torch.cat([views[i] for i in members], dim=0))
            for j, i in enumerate(members):
                axis, sign = self.directions[i]
                features[i] = self._unview(out[j * n:(j + 1) * n], axis, sign)
        merged = torch.cat(features, dim=1)
        crop = tuple(slice(0, side) for side in sides)
        return self.merge(merged[(slice(None), slice(None)) + crop])


# ------------------------------------------------------------- DilatedBlindSpotNet
class CentreMaskedConv(nn.Module):
    """A k**ndim convolution whose centre weight is held at zero (for every channel pair).

    Parameters
    ----------
    ndim : {1, 2, 3}
    in_channels, out_channels : int
    kernel_size : odd int
    """

    def __init__(self, ndim, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = _conv(ndim, in_channels, out_channels, kernel_size=kernel_size,
                          padding=kernel_size // 2)
        mask = torch.ones((1, 1) + (kernel_size,) * ndim)
        mask[(0, 0) + (kernel_size // 2,) * ndim] = 0.0
        self.register_buffer("mask", mask, persistent=False)
        with torch.no_grad():
            self.conv.weight.mul_(mask)

    def forward(self, x):
        """Convolve with the masked kernel (the centre weight multiplied by zero)."""
        return self.conv._conv_forward(x, self.conv.weight * self.mask, self.conv.bias)


class _DilatedBlock(nn.Module):
    """Dilated 3-kernel convolution, 1x1 convolution, residual (both centre-free)."""

    def __init__(self, ndim, width, dilation):
        super().__init__()
        self.conv = _conv(ndim, width, width, kernel_size=3, dilation=dilation,
                          padding=dilation)
        self.mix = _conv(ndim, width, width, kernel_size=1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x):
        return x + self.act(self.mix(self.act(self.conv(x))))


class DilatedBlindSpotNet(nn.Module):
    """D-BSN: a centre-masked convolution, then dilated and 1x1 convolutions only.

    After Wu, Liu, Cao, Ren & Zuo (2020). A 1x1 convolution lifts the input to ``width``
    channels; two branches follow, one a 3-kernel centre-masked convolution then
    ``depth`` residual blocks of a dilation-2 3-kernel convolution and a 1x1
    convolution, the other the same with a 5-kernel masked convolution and dilation 3;
    three 1x1 convolutions merge the branches. Why the centre stays blind: after the
    masked k-kernel convolution a feature at p depends on offsets m with
    ``0 < max|m_i| <= k // 2``; a dilation-d stack adds multiples of d; with
    ``k // 2 < d``, ``m + d * K`` is never zero. One pass, no rotations, no pooling, so
    any size works with plain zero padding. The field is sparse: an offset whose every
    component is a multiple of 6 is seen by neither branch (in 1-D: 6, 12, ...), nor,
    beyond the dilation-2 branch's reach ``1 + 2 * depth``, a multiple of 3.

    Parameters
    ----------
    in_channels : int, default=1
    out_channels : int, default=1
    ndim : {1, 2, 3}, default=2
    width : int, default=16
        Channels of each branch.
    depth : int, default=5
        Dilated blocks per branch.

    Attributes
    ----------
    blind_spot : bool
        True (class attribute).
    receptive_radius : int
        ``2 + 3 * depth`` (the 5-kernel, dilation-3 branch reaches farthest).
    size_multiple : int
        1: no pooling, tiles may start anywhere.
    head : torch.nn.Conv1d, Conv2d or Conv3d
        The first 1x1 convolution.
    branches : torch.nn.ModuleList
        The two branches (masked convolution first).
    tail : torch.nn.Sequential
        The merging 1x1 convolutions.

    Notes
    -----
    N2SNet's ``module='auto'`` (the default) builds it for noise of one variance, and its
    ``batch_size='auto'`` and ``lr='auto'`` give it smaller batches and a larger
    learning rate than BabyUnet's (8 images or 4 patches, 6e-3), measured at equal CPU
    time (``N2SNet(max_time=...)``): with the
    posterior head, ``N2SNet(DilatedBlindSpotNet, batch_size=8, lr=6e-3)`` on MNIST
    digits gave 21.53 and 21.48 dB in two seeds (batch 32, lr 3e-3: 21.21) against
    BabyUnet's best 21.43 and 21.08, and ``batch_size=4, lr=6e-3`` on the one camera
    image 28.79 and 28.99 dB against BabyUnet's 28.61 and 28.69. On photon counts,
    where ``output='auto'`` returns the one pass, it lost 0.6 dB to BabyUnet's one pass
    (``benchmarks/results/neural_modules.md``, ``neural_single.md``, fifth pass).

    References
    ----------
    .. [1] X. Wu, M. Liu, Y. Cao, D. Ren and W. Zuo, "Unpaired Learning of Deep Image
       Denoising", European Conference on Computer Vision (ECCV), 2020.
       arXiv:2008.13711.

    Examples
    --------
    >>> import torch
    >>> from sklearn_n2s.neural import DilatedBlindSpotNet
    >>> net = DilatedBlindSpotNet(ndim=3, width=4, depth=2).eval()
    >>> x = torch.randn(1, 1, 5, 6, 7)
    >>> y = x.clone()
    >>> y[0, 0, 2, 3, 4] += 100.0
    >>> bool((net(y) - net(x))[0, 0, 2, 3, 4].abs() < 1e-4)
    True
    >>> net.receptive_radius
    8
    """

    blind_spot = True

    #: (masked kernel size, dilation) of each branch: kernel // 2 < dilation.
    BRANCHES = ((3, 2), (5, 3))

    def __init__(self, in_channels=1, out_channels=1, ndim=2, width=16, depth=5):
        super().__init__()
        _check_int("in_channels", in_channels, 1)
        _check_int("out_channels", out_channels, 1)
        _check_int("ndim", ndim, 1, 3)
        _check_int("width", width, 1)
        _check_int("depth", depth, 0)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.ndim, self.width, self.depth = ndim, width, depth
        w = width
        act = nn.LeakyReLU(LEAKY_SLOPE)
        self.head = _conv(ndim, in_channels, w, kernel_size=1)
        self.branches = nn.ModuleList()
        for kernel, dilation in self.BRANCHES:
            self.branches.append(nn.Sequential(
                CentreMaskedConv(ndim, w, w, kernel), act,
                _conv(ndim, w, w, kernel_size=1), act,
                *[_DilatedBlock(ndim, w, dilation) for _ in range(depth)],
                _conv(ndim, w, w, kernel_size=1), act))
        self.tail = nn.Sequential(
            _conv(ndim, 2 * w, 2 * w, kernel_size=1), act,
            _conv(ndim, 2 * w, w, kernel_size=1), act,
            _conv(ndim, w, out_channels, kernel_size=1))
        self.receptive_radius = max(k // 2 + d * depth for k, d in self.BRANCHES)
        self.size_multiple = 1

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
        return self.tail(torch.cat([branch(h) for branch in self.branches], dim=1))


__all__ = ["BlindSpotUnet", "DilatedBlindSpotNet"]
