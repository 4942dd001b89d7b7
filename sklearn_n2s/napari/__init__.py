"""A napari plugin: calibrate a Noise2Self denoiser on an image layer, in a dock widget.

Install with ``pip install "sklearn_n2s[napari]"``; napari then lists *Noise2Self
denoise* under *Plugins* (the npe2 manifest is ``napari.yaml`` beside this file). The
widget (:class:`DenoiseWidget`) lets you pick an image layer and a method (``auto``
when :class:`sklearn_n2s.AutoDenoiser` exists, each classical family, ``net`` when
torch is installed), calibrates it with the self-supervised loss in a thread worker
(a progress bar, the viewer stays responsive), shows the calibration curve and adds
``<layer> denoised`` with the layer's dtype, ``scale`` and ``translate``.

The computation itself (:mod:`._engine`) needs neither napari nor Qt.
"""


def __getattr__(name):
    # The widget imports napari and Qt: only when asked for.
    if name == "DenoiseWidget":
        from ._widget import DenoiseWidget

        return DenoiseWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DenoiseWidget"]
