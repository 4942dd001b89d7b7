"""BioImage Model Zoo export of a fitted blind-spot :class:`N2SNet` (needs the ``bmz`` extra).

:func:`export_bmz` writes a model package (``rdf.yaml`` of the bioimageio.spec 0.5
``ModelDescr``, built with the spec's pydantic classes; weights; a test input and output;
a cover; a README; the licence) that :mod:`bioimageio.core`, deepImageJ or ilastik run
without this library's estimator. :func:`load_bmz` reads one back and predicts with
:func:`bioimageio.core.predict`.

What the package computes is :meth:`N2SNet.invariant_transform`, the J-invariant output,
in the input's units (as float32, not rounded):

- preprocessing ``scale_linear`` maps raw values ``x`` to the net's normalised input
  ``(k x - input_offset_) / input_scale_`` (``k`` = 1/255 for uint8, 1/65535 for uint16,
  1 for floats: N2SNet computes integers in ``img_as_float`` units);
- one forward pass of the blind-spot module (J-invariant by construction);
- postprocessing ``scale_linear`` maps back, ``(input_scale_ y + input_offset_) / k``,
  then ``clip`` to the dtype's range for integer data (N2SNet also rounds: the package
  does not, so its output is within 0.5 of the net's integer output).

Only blind-spot modules (``blind_spot = True``: :class:`BlindSpotUnet`,
:class:`DilatedBlindSpotNet`) are exported: the J-invariant output of a masked-trained
module (BabyUnet) takes ``stride**ndim`` masked passes, which no zoo consumer runs.

Weights, two formats of the same parameters (both run offline):

- ``pytorch_state_dict`` (the parent): the state dict of the module, with its architecture
  given as ``sklearn_n2s.neural._blindspot.<class>`` (or ``._shuffled``) and its keyword
  arguments. Exact on
  any size (the module pads internally), but the consumer needs ``sklearn_n2s``
  importable.
- ``torchscript``: the module traced with :func:`torch.jit.trace` inside a wrapper whose
  padding to the module's ``size_multiple`` is scripted, so the trace holds for any size
  (the module's own shape-dependent branches are never taken on padded inputs; the view
  batches are traced on an input with distinct sides, which covers every shape).
  Self-contained: what deepImageJ and ilastik run. Checked against the module on two
  other shapes at export.

Axes: ``batch``, ``channel``, then ``y, x`` or ``z, y, x``; every spatial size from
:data:`MIN_SIDE` up by steps of 1 (the module pads internally, so no size is refused and
the consumer never pads). No halo is declared: a consumer predicts whole images. To tile
large images, overlap tiles by the module's ``receptive_radius`` (stored in the README
and ``config``), as :class:`N2SNet` does with ``tile_size``.

Offline use. Nothing here downloads: citations are DOIs (no URL is checked), the licence
is checked against the SPDX list bundled with bioimageio.spec, and every file is local.
``BIOIMAGEIO_CACHE_PATH`` sets where bioimageio keeps its cache (default: the user's
cache folder); ``bioimageio.spec.settings.perform_io_checks`` (env
``BIOIMAGEIO_PERFORM_IO_CHECKS=false``) skips hashing and reading files during
validation, which an offline export does not need to change.

This module imports torch, and bioimageio only inside its functions.
"""

import contextlib
import copy
import importlib
import shutil
import tempfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.validation import check_is_fitted

from ..utils._validation import intensity_scale

#: Smallest spatial side the package accepts (N2SNet's own minimum).
MIN_SIDE = 4
#: Weight formats written by default (the first is the parent of the others).
WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript")
#: Where the architectures of the ``pytorch_state_dict`` weights are imported from.
ARCHITECTURE_MODULES = ("sklearn_n2s.neural._blindspot", "sklearn_n2s.neural._shuffled")
_ARCHITECTURE_KWARGS = ("in_channels", "out_channels", "ndim", "width", "depth")
_SPATIAL_AXES = "zyx"
_CITATIONS = {
    "noise2self": ("J. Batson and L. Royer, Noise2Self: Blind Denoising by "
                   "Self-Supervision, ICML 2019.", "10.48550/arXiv.1901.11365"),
    "BlindSpotUnet": ("S. Laine, T. Karras, J. Lehtinen and T. Aila, High-Quality "
                      "Self-Supervised Deep Image Denoising, NeurIPS 2019.",
                      "10.48550/arXiv.1901.10277"),
    "DilatedBlindSpotNet": ("X. Wu, M. Liu, Y. Cao, D. Ren and W. Zuo, Unpaired Learning "
                            "of Deep Image Denoising, ECCV 2020.",
                            "10.48550/arXiv.2008.13711"),
}

__all__ = ["export_bmz", "load_bmz", "BMZModel"]


def _bioimageio():
    """The bioimageio.spec model classes, or an ImportError naming the extra."""
    try:
        import bioimageio.core  # noqa: F401
        from bioimageio.spec.model import v0_5
    except ImportError as error:
        raise ImportError(
            "BioImage Model Zoo export needs bioimageio.core: pip install "
            "'sklearn_n2s[bmz]'.") from error
    _check_pydantic()
    return v0_5


def _check_pydantic():
    """Refuse a pydantic whose wrap serializers reject ``handler(value, info)``.

    bioimageio.spec 0.5.12 (pinned by bioimageio.core 0.11.0) serialises its file fields
    that way; pydantic 2.14 takes the second argument as an index key and fails while
    building any description, with a cryptic message. Probed, not version-compared.
    """
    from typing import Annotated

    import pydantic

    def serialize(value, handler, info):
        return handler(value, info)

    class Inner(pydantic.BaseModel):
        x: int = 0

    class Outer(pydantic.BaseModel):
        inner: Annotated[Inner, pydantic.WrapSerializer(serialize)]

    try:
        Outer(inner=Inner()).model_dump(mode="json")
    except Exception:
        raise ImportError(
            f"bioimageio.spec 0.5.12 cannot serialise descriptions with pydantic "
            f"{pydantic.VERSION} (it calls wrap-serializer handlers as handler(value, "
            "info)); install an earlier pydantic: pip install 'pydantic<2.14'.") from None


# ----------------------------------------------------------------- checks and units
def _check_net(net):
    """The fitted net's module, refused unless it is a one-pass blind-spot network."""
    check_is_fitted(net, "module_")
    module = net.module_
    if not getattr(module, "blind_spot", False):
        raise ValueError(
            f"export_bmz needs a blind-spot module (N2SNet(module=BlindSpotUnet) or "
            f"DilatedBlindSpotNet); this net's module is {type(module).__name__}, whose "
            "J-invariant output takes stride**ndim masked passes, not one forward pass, "
            "which a BioImage Model Zoo consumer cannot run.")
    if getattr(net, "posterior_head_", False):
        raise ValueError(
            "export_bmz exports the J-invariant mean of a net without the posterior head; "
            "this net was fitted with output='posterior' or 'auto' (the default: 2 x C "
            "output channels). Refit with output='ordinary' or 'invariant'.")
    if getattr(net, "n_spatial_dims_", 2) not in (2, 3):
        raise ValueError(
            f"export_bmz exports 2-D and 3-D nets; this one was fitted on "
            f"{net.n_spatial_dims_}-D data.")
    return module


def _input_dtype(net):
    """The dtype of the data of ``fit`` (its units are the package's), float32 if unknown."""
    dtype = getattr(net, "_input_dtype_", None)
    return np.dtype(dtype) if dtype is not None else np.dtype(np.float32)


def _bmz_layout(net, X):
    """X, one image or a stack in N2SNet's layout, as (n, C, *spatial) float64."""
    ndim, channels = net.n_spatial_dims_, net.n_channels_in_
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"test_input must hold numbers, got dtype {X.dtype}.")
    per_image = ndim + (net.channel_axis is not None)
    if X.ndim == per_image:
        X = X[np.newaxis]
    if X.ndim != per_image + 1:
        raise ValueError(
            f"test_input must be one image of {per_image} axes or a stack of "
            f"{per_image + 1} (the net was fitted on {ndim}-D images"
            f"{' with a channel axis' if net.channel_axis is not None else ''}); got "
            f"shape {X.shape}.")
    X = np.moveaxis(X, -1, 1) if net.channel_axis is not None else X[:, np.newaxis]
    if X.shape[1] != channels or min(X.shape[2:]) < MIN_SIDE:
        raise ValueError(
            f"test_input must have {channels} channel(s) and spatial sides >= {MIN_SIDE}; "
            f"got shape {X.shape[2:]} with {X.shape[1]} channel(s).")
    if not np.all(np.isfinite(X)):
        raise ValueError("test_input holds NaN or infinite values.")
    return X.astype(np.float64)


def _from_bmz_layout(net, X):
    """(n, C, *spatial) back to N2SNet's stack layout."""
    return np.moveaxis(X, 1, -1) if net.channel_axis is not None else X[:, 0]


def _reference_output(net, X, dtype):
    """The net's J-invariant output for raw (n, C, *spatial) X, in X's units, unrounded.

    The same code path as :meth:`N2SNet.invariant_transform`, fed the float values that
    an integer input is computed as (``k x``), so nothing is rounded; then divided by
    ``k`` and clipped to the dtype's range, as the package's postprocessing does.
    """
    k = intensity_scale(dtype)
    out = net.invariant_transform(_from_bmz_layout(net, X) * k)
    out = np.asarray(out, dtype=np.float64) / k
    if net.channel_axis is not None:
        out = np.moveaxis(out, -1, 1)
    else:
        out = out[:, np.newaxis]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        out = np.clip(out, info.min, info.max)
    return out.astype(np.float32)


def _default_test_input(net, dtype):
    """A synthetic noisy image in the fitted units: smooth blobs plus Gaussian noise."""
    ndim, channels = net.n_spatial_dims_, net.n_channels_in_
    side = 64 if ndim == 2 else 24
    rng = np.random.default_rng(0)
    grid = np.meshgrid(*[np.linspace(0, 2 * np.pi, side)] * ndim, indexing="ij")
    pattern = np.prod([np.sin(2 * g) for g in grid], axis=0)
    k = intensity_scale(dtype)
    offset, scale = net.input_offset_ / k, net.input_scale_ / k
    image = offset + scale * (pattern + 0.5 * rng.standard_normal((channels,) + pattern.shape))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        image = np.clip(np.rint(image), info.min, info.max)
    return image[np.newaxis].astype(np.float64)


# -------------------------------------------------------------------------- weights
def _architecture(module):
    """``(module_name, callable_name, kwargs)`` that rebuild the module from one of
    :data:`ARCHITECTURE_MODULES`, or None for a module defined elsewhere."""
    cls = type(module)
    for library in ARCHITECTURE_MODULES:
        if getattr(importlib.import_module(library), cls.__name__, None) is cls:
            kwargs = {name: int(getattr(module, name)) for name in _ARCHITECTURE_KWARGS}
            return library, cls.__name__, kwargs
    return None


def _clean_module(module, architecture):
    """A CPU eval-mode module with only the architecture's parameters (N2SNet's
    normalisation buffers dropped: the package's pre/postprocessing does that job)."""
    if architecture is None:
        return copy.deepcopy(module).cpu().eval()
    library, callable_name, kwargs = architecture
    fresh = getattr(importlib.import_module(library), callable_name)(**kwargs)
    keep = fresh.state_dict().keys()
    state = {key: value.detach().cpu() for key, value in module.state_dict().items()
             if key in keep}
    fresh.load_state_dict(state, strict=True)
    return fresh.eval()


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad every spatial axis at its end to a multiple of ``multiple``."""
    pad: list[int] = []
    for axis in range(x.dim() - 1, 1, -1):
        pad += [0, (multiple - x.shape[axis] % multiple) % multiple]
    return F.pad(x, pad)


class _PaddedModule(torch.nn.Module):
    """Pads to the module's size multiple (scripted), runs it, crops back: a trace of it
    holds for every input size, since the module then never pads itself."""

    def __init__(self, module, pad):
        super().__init__()
        self.module = module
        self.multiple = int(getattr(module, "size_multiple", 1))
        self.pad = pad

    def forward(self, x):
        out = self.module(self.pad(x, self.multiple))
        for axis in range(2, x.dim()):
            out = out.narrow(axis, 0, x.shape[axis])
        return out


def _torchscript(module, n_channels, ndim):
    """The module traced for any input size, checked on two shapes it was not traced on."""
    multiple = int(getattr(module, "size_multiple", 1))
    with warnings.catch_warnings():
        # Tracer warnings name the module's shape checks and branches, constant here.
        warnings.simplefilter("ignore")
        pad = torch.jit.script(_pad_to_multiple)
        wrapper = _PaddedModule(module, pad).eval()
        # Distinct padded sides: each direction's views form their own batch, which
        # also covers shapes whose views coincide.
        sides = [multiple * (2 + i) - 1 for i in range(ndim)]
        example = torch.randn(1, n_channels, *sides, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, example, check_trace=False)
    for shape in ((2, n_channels) + (MIN_SIDE + 1,) * ndim,
                  (1, n_channels) + tuple(multiple * (ndim + 1 - i) + 3 for i in range(ndim))):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            gap = float((traced(x) - module(x)).abs().max())
        if not gap <= 1e-4:
            raise RuntimeError(
                f"The TorchScript trace of {type(module).__name__} differs from the module "
                f"by {gap:.3g} on shape {shape}; export with "
                "weight_formats=('pytorch_state_dict',).")
    return traced


# ----------------------------------------------------------------- files of a package
def _cover(path, X, Y):
    """A 2:1 png: the first test image (middle slice of a volume) left, its output right."""
    import imageio.v3 as iio

    def plane(A):
        A = A[0, 0]
        return A[A.shape[0] // 2] if A.ndim == 3 else A

    x, y = plane(X), plane(Y)
    low, high = np.percentile(x, [1, 99])
    high = high if high > low else low + 1
    both = np.concatenate([x, y], axis=1)
    image = np.clip((both - low) / (high - low), 0, 1)
    height, width = image.shape
    # Nearest-neighbour upscaling to at least 256 pixels high; a 2:1 canvas.
    reps = max(1, int(np.ceil(256 / height)))
    image = np.kron(image, np.ones((reps, reps)))
    canvas = np.zeros((image.shape[0], max(image.shape[1], 2 * image.shape[0])))
    canvas[:, :image.shape[1]] = image[:, :canvas.shape[1]]
    iio.imwrite(path, (255 * canvas).astype(np.uint8))


def _readme(net, module, dtype, *, name, description, architecture, formats, synthetic):
    k = intensity_scale(dtype)
    offset, scale = net.input_offset_ / k, net.input_scale_ / k
    ndim = net.n_spatial_dims_
    axes = ", ".join(_SPATIAL_AXES[3 - ndim:])
    plan = getattr(net, "train_plan_", None) or {}
    arch = (f"`{architecture[0]}.{architecture[1]}(**{architecture[2]})`"
            if architecture else f"`{type(module).__module__}.{type(module).__name__}`")
    return textwrap.dedent(f"""\
        # {name}

        {description}

        ## What the model is
        A self-supervised denoiser trained with Noise2Self (Batson & Royer, ICML 2019) by
        `sklearn_n2s.neural.N2SNet`. The network, {arch}, is a *blind-spot* network: its
        output at a pixel never depends on that pixel's own value (it is *J-invariant*).
        For such a function, and noise independent between pixels with zero mean given the
        signal, the self-supervised loss `E||f(x) - x||^2` equals the ground-truth loss
        `E||f(x) - y||^2` plus the noise variance, so training on noisy images alone
        minimises the error against the unknown clean image. One forward pass gives the
        J-invariant prediction; this package computes exactly that output
        (`N2SNet.invariant_transform`).

        - Input: `(batch, channel, {axes})`, {net.n_channels_in_} channel(s), raw values in
          the units of the training data ({dtype.name}), given as float32; any spatial side
          >= {MIN_SIDE}.
        - Preprocessing: `scale_linear`, `(x - {offset:.6g}) / {scale:.6g}` (the median and
          a robust standard deviation of the training data).
        - Postprocessing: the inverse `scale_linear`{", then `clip` to the " + dtype.name +
          " range" if dtype.kind in "iu" else ""}; output float32 in the input's units (not
          rounded).
        - Receptive radius: {int(getattr(module, "receptive_radius", 0))} pixels. Tile
          large images with at least this overlap.
        - Weights: {", ".join(formats)}.

        ## Training data
        The data the net was fitted on ({net.n_features_in_} values per image,
        {ndim}-D, {dtype.name}); training plan: {plan or "not recorded"}. The test input of
        this package is {"a synthetic image in the fitted units" if synthetic else
        "the image given at export"}.

        ## Validation
        Rank denoisers without clean data by the self-supervised loss of the J-invariant
        output, `mean((f(x) - x)**2)` on held-out noisy images (lower is better): it
        differs from the ground-truth error by the noise variance only. With a clean
        reference, report PSNR of the output.

        ## Limitations
        - Noise must be independent between pixels (not correlated along an axis, as
          in some cameras or after resampling) and zero-mean given the signal.
        - The J-invariant output discards the centre pixel; `N2SNet` can mix it back in
          (`output='shrink'`), which this package does not do.
        - Trained on one kind of data: other intensities, noise levels or structures
          need refitting; values far outside the training range are unreliable.

        ## References
        - J. Batson and L. Royer, Noise2Self: Blind Denoising by Self-Supervision, ICML
          2019, arXiv:1901.11365.
        - S. Laine, T. Karras, J. Lehtinen and T. Aila, High-Quality Self-Supervised Deep
          Image Denoising, NeurIPS 2019, arXiv:1901.10277.
        - X. Wu, M. Liu, Y. Cao, D. Ren and W. Zuo, Unpaired Learning of Deep Image
          Denoising, ECCV 2020, arXiv:2008.13711.
        """)


def _authors(v, authors):
    if authors is None:
        return []
    if isinstance(authors, (str, dict)):
        authors = [authors]
    return [v.Author(name=a) if isinstance(a, str) else v.Author(**a) for a in authors]


def _axes(v, ndim, n_channels, *, output):
    channel = v.ChannelAxis(channel_names=[v.Identifier(f"channel{i}")
                                           for i in range(n_channels)])
    space = []
    for axis in _SPATIAL_AXES[3 - ndim:]:
        if output:
            size = v.SizeReference(tensor_id=v.TensorId("input"), axis_id=v.AxisId(axis))
            space.append(v.SpaceOutputAxis(id=v.AxisId(axis), size=size))
        else:
            space.append(v.SpaceInputAxis(id=v.AxisId(axis),
                                          size=v.ParameterizedSize(min=MIN_SIDE, step=1)))
    return [v.BatchAxis(), channel, *space]


def _processing(v, net, dtype):
    """(preprocessing, postprocessing): N2SNet's normalisation and its inverse."""
    k = intensity_scale(dtype)
    offset, scale = net.input_offset_, net.input_scale_
    pre = [v.ScaleLinearDescr(kwargs=v.ScaleLinearKwargs(gain=k / scale,
                                                          offset=-offset / scale))]
    post = [v.ScaleLinearDescr(kwargs=v.ScaleLinearKwargs(gain=scale / k, offset=offset / k))]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        post.append(v.ClipDescr(kwargs=v.ClipKwargs(min=float(info.min),
                                                    max=float(info.max))))
    return pre, post


def _weights(v, module, architecture, formats, folder, n_channels, ndim):
    torch_version = v.Version(torch.__version__.split("+")[0])
    entries = {}
    clean = _clean_module(module, architecture)
    parent = None
    if "pytorch_state_dict" in formats:
        source = folder / "weights.pt"
        torch.save(clean.state_dict(), source)
        entries["pytorch_state_dict"] = v.PytorchStateDictWeightsDescr(
            source=source, pytorch_version=torch_version,
            architecture=v.ArchitectureFromLibraryDescr(
                callable=v.Identifier(architecture[1]), import_from=architecture[0],
                kwargs=architecture[2]))
        parent = "pytorch_state_dict"
    if "torchscript" in formats:
        source = folder / "weights_torchscript.pt"
        _torchscript(clean, n_channels, ndim).save(str(source))
        entries["torchscript"] = v.TorchscriptWeightsDescr(
            source=source, pytorch_version=torch_version, parent=parent)
    return v.WeightsDescr(**entries)


def _check_formats(weight_formats, architecture):
    if weight_formats is None:
        return WEIGHT_FORMATS if architecture else ("torchscript",)
    formats = tuple(weight_formats)
    unknown = set(formats) - set(WEIGHT_FORMATS)
    if not formats or unknown:
        raise ValueError(f"weight_formats must be a non-empty subset of {WEIGHT_FORMATS}; "
                         f"got {weight_formats!r}.")
    if "pytorch_state_dict" in formats and architecture is None:
        raise ValueError(
            "pytorch_state_dict weights need the module's architecture importable from "
            f"{' or '.join(ARCHITECTURE_MODULES)}; export a custom module with "
            "weight_formats=('torchscript',).")
    return formats


# ------------------------------------------------------------------------ public API
def export_bmz(net, path, *, name=None, description=None, authors=None, test_input=None,
               cover=None, license="BSD-3-Clause", tags=None, weight_formats=None,
               documentation=None, version="0.1.0"):
    """Write a BioImage Model Zoo package of a fitted blind-spot :class:`N2SNet`.

    The package computes the net's J-invariant output (:meth:`N2SNet.invariant_transform`)
    in the input's units: ``scale_linear`` preprocessing with the net's fitted
    ``input_offset_`` and ``input_scale_``, one pass of the module, the inverse
    ``scale_linear`` (and a ``clip`` to the range of integer data) after. See the module
    notes for the weight formats and the axes.

    Parameters
    ----------
    net : N2SNet
        Fitted, with a blind-spot module (``BlindSpotUnet``, ``DilatedBlindSpotNet``, or a
        module with ``blind_spot = True`` for TorchScript weights only), on 2-D or 3-D
        images, without the posterior head.
    path : str or path-like
        Ends in ``.zip``: a zipped package (what the zoo takes). Otherwise: the package as
        a folder (created; must not exist or be empty).
    name : str or None, default=None
        Model name (letters, digits, ``_+- ()``); None: ``"Noise2Self <module> <n>D"``.
    description : str or None, default=None
        One or two sentences; None: a generic one.
    authors : str, dict, list of str or dict, or None, default=None
        Names, or ``bioimageio.spec`` ``Author`` fields (``name``, ``affiliation``,
        ``orcid``...).
    test_input : array-like or None, default=None
        One image or a stack in the net's layout (``(*spatial[, C])`` or
        ``(n, *spatial[, C])``) in the units of the data the net was fitted on, sides
        >= 4; its output is computed by :meth:`N2SNet.invariant_transform`. Use a real
        image: None writes a synthetic noisy pattern in the fitted units.
    cover : path-like or None, default=None
        A png or jpg cover (2:1 or 1:1); None: made from the test input and its output.
    license : str, default='BSD-3-Clause'
        SPDX identifier of the weights' licence.
    tags : list of str or None, default=None
        Added to ``denoising``, ``noise2self``, ``self-supervised``, ``<n>d``.
    weight_formats : sequence of {'pytorch_state_dict', 'torchscript'} or None
        None: both for this library's modules, TorchScript for others.
    documentation : path-like or None, default=None
        A README.md to ship instead of the generated one (it should have a
        ``# Validation`` section).
    version : str, default='0.1.0'
        The package's version.

    Returns
    -------
    path : pathlib.Path
        The zip file or folder written.

    Raises
    ------
    ValueError
        For a masked-trained module (BabyUnet), a posterior head, 1-D data, or a test
        input of the wrong shape.
    ImportError
        Without bioimageio.core (``pip install 'sklearn_n2s[bmz]'``).

    See Also
    --------
    load_bmz : Read a package back and predict with it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_n2s.neural import N2SNet, DilatedBlindSpotNet, export_bmz
    >>> X = np.random.default_rng(0).poisson(30, (2, 32, 32)).astype(np.uint16)
    >>> net = N2SNet(DilatedBlindSpotNet, module__width=4, module__depth=1,
    ...              max_steps=1, random_state=0).fit(X)
    >>> export_bmz(net, "n2s_model.zip", authors="Jane Doe",
    ...            test_input=X[0])  # doctest: +SKIP
    PosixPath('n2s_model.zip')
    """
    module = _check_net(net)
    ndim, n_channels = net.n_spatial_dims_, net.n_channels_in_
    dtype = _input_dtype(net)
    architecture = _architecture(module)
    formats = _check_formats(weight_formats, architecture)
    synthetic = test_input is None
    X = _default_test_input(net, dtype) if synthetic else _bmz_layout(net, test_input)
    path = Path(path)
    as_zip = path.suffix.lower() == ".zip"
    if not as_zip and path.exists() and any(path.iterdir()):
        raise ValueError(f"{path} is a folder that is not empty.")
    module_name = type(module).__name__
    name = name or f"Noise2Self {module_name} {ndim}D"
    description = description or (
        f"Self-supervised (Noise2Self) {ndim}-D denoiser: a one-pass blind-spot network "
        f"({module_name}) trained on noisy images alone; outputs the J-invariant "
        "prediction in the input's units.")
    v = _bioimageio()  # after the cheap checks, which need no bioimageio
    Y = _reference_output(net, X, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "test_input.npy", X.astype(np.float32))
        np.save(folder / "test_output.npy", Y)
        if cover is None:
            cover = folder / "cover.png"
            _cover(cover, X, Y)
        readme = folder / "README.md"
        if documentation is not None:
            shutil.copyfile(documentation, readme)
        else:
            readme.write_text(_readme(net, module, dtype, name=name, description=description,
                                      architecture=architecture, formats=formats,
                                      synthetic=synthetic),
                              encoding="utf-8")
        pre, post = _processing(v, net, dtype)
        data = v.IntervalOrRatioDataDescr(type="float32")
        inputs = [v.InputTensorDescr(
            id=v.TensorId("input"), axes=_axes(v, ndim, n_channels, output=False),
            test_tensor=v.FileDescr(source=folder / "test_input.npy"), data=data,
            description=f"noisy image, raw values ({dtype.name} units) as float32",
            preprocessing=pre)]
        outputs = [v.OutputTensorDescr(
            id=v.TensorId("output"), axes=_axes(v, ndim, n_channels, output=True),
            test_tensor=v.FileDescr(source=folder / "test_output.npy"), data=data,
            description="J-invariant denoised image, in the input's units",
            postprocessing=post)]
        citations = [_CITATIONS["noise2self"]]
        if module_name in _CITATIONS:
            citations.append(_CITATIONS[module_name])
        descr = v.ModelDescr(
            name=name, description=description, authors=_authors(v, authors),
            cite=[v.CiteEntry(text=text, doi=v.Doi(doi)) for text, doi in citations],
            license=v.LicenseId(license), covers=[{"source": Path(cover)}],
            documentation={"source": readme}, inputs=inputs, outputs=outputs,
            tags=["denoising", "noise2self", "self-supervised", "blind-spot",
                  f"{ndim}d", "pytorch", *(tags or [])],
            weights=_weights(v, module, architecture, formats, folder, n_channels, ndim),
            version=version,
            config={"sklearn_n2s": {
                "module": module_name,
                "receptive_radius": int(getattr(module, "receptive_radius", 0)),
                "input_offset": float(net.input_offset_),
                "input_scale": float(net.input_scale_),
                "input_dtype": dtype.name,
                "synthetic_test_input": synthetic}},
        )
        _save(descr, path, as_zip)
    return path


def _save(descr, path, as_zip):
    from bioimageio.spec import save_bioimageio_package, save_bioimageio_package_as_folder

    if as_zip:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_bioimageio_package(descr, output_path=path)
    else:
        save_bioimageio_package_as_folder(descr, output_path=path)


class BMZModel:
    """A BioImage Model Zoo package loaded by :func:`load_bmz`: ``predict`` runs it.

    Parameters
    ----------
    description : bioimageio.spec.model.v0_5.ModelDescr
    weight_format : str or None, default=None
        None: the package's preferred format.
    devices : list of str or None, default=None

    Attributes
    ----------
    description : ModelDescr
        The package's description (``rdf.yaml``).
    """

    def __init__(self, description, weight_format=None, devices=None):
        self.description = description
        self.weight_format = weight_format
        self.devices = devices

    @property
    def _spatial(self):
        return [str(a.id) for a in self.description.inputs[0].axes
                if a.implemented_type == "space"]

    def predict(self, X, *, channel_axis=None):
        """The package's output for one image or a stack (batch axis first).

        Parameters
        ----------
        X : array-like of shape ([n,] *spatial[, C])
            In the units of the data the net was fitted on; a trailing channel axis with
            ``channel_axis=-1``.
        channel_axis : None or -1, default=None

        Returns
        -------
        Y : float32 ndarray of the same shape
        """
        from bioimageio.core import Tensor, create_prediction_pipeline, predict

        spatial = self._spatial
        X = np.asarray(X)
        per_image = len(spatial) + (channel_axis is not None)
        single = X.ndim == per_image
        if single:
            X = X[np.newaxis]
        if X.ndim != per_image + 1:
            raise ValueError(f"X must have {per_image} or {per_image + 1} axes for this "
                             f"{len(spatial)}-D model; got shape {X.shape}.")
        X = np.moveaxis(X, -1, 1) if channel_axis is not None else X[:, np.newaxis]
        dims = ("batch", "channel", *spatial)
        ipt, out = self.description.inputs[0], self.description.outputs[0]
        # predict() loads and unloads the pipeline itself (no `with` here).
        pipeline = create_prediction_pipeline(self.description,
                                              weight_format=self.weight_format,
                                              devices=self.devices)
        sample = predict(model=pipeline, inputs={
            ipt.id: Tensor.from_numpy(X.astype(np.float32), dims=dims)})
        Y = sample.members[out.id].data.transpose(*dims).values
        Y = np.moveaxis(Y, 1, -1) if channel_axis is not None else Y[:, 0]
        return Y[0] if single else Y


def load_bmz(path, *, weight_format=None, devices=None):
    """Load a BioImage Model Zoo package (a zip, a folder or its ``rdf.yaml``).

    Parameters
    ----------
    path : str or path-like
    weight_format : {'pytorch_state_dict', 'torchscript'} or None, default=None
        The weights to run; None: the package's first.
    devices : list of str or None, default=None
        E.g. ``['cpu']``; None: bioimageio.core's choice (CUDA when available).

    Returns
    -------
    model : BMZModel
        ``model.predict(X)`` gives the exported net's J-invariant output;
        ``model.description`` is the parsed description.

    Raises
    ------
    ValueError
        When the package does not validate.

    Examples
    --------
    >>> from sklearn_n2s.neural import load_bmz
    >>> model = load_bmz("n2s_model.zip")  # doctest: +SKIP
    >>> model.predict(image)  # doctest: +SKIP
    """
    _bioimageio()
    from bioimageio.core import load_model_description

    source = Path(path)
    with contextlib.suppress(Exception):
        source = source.resolve()
    description = load_model_description(source, format_version="latest")
    return BMZModel(description, weight_format=weight_format, devices=devices)
