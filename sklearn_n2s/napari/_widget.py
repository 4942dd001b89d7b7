"""The dock widget: choose a layer and a method, calibrate, see the curve, get a layer.

Calibration and denoising run in a napari thread worker
(:func:`napari.qt.threading.create_worker` on :func:`._engine.calibration_steps`): the
viewer stays responsive, each scored candidate advances the widget's progress bar and
napari's own activity bar, and *Cancel* stops the worker between two candidates. The
denoised layer is added from the main thread when the worker returns.
"""

from magicgui.widgets import ComboBox, Container, Label, ProgressBar, PushButton
from napari.layers import Image

from . import _engine

#: What the widget offers for the stack's spatial axes.
AXES = {"2-D planes": False, "3-D volumes": True}
#: "default" keeps the method's own output (AutoDenoiser: each family's lowest-risk one).
OUTPUTS = ("default", "auto", "shrink", "ordinary", "invariant")


class DenoiseWidget(Container):
    """Calibrate a Noise2Self denoiser on an image layer and add the denoised layer.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer or napari.components.ViewerModel
        The viewer whose image layers are listed; napari passes it when the widget is
        opened from the *Plugins* menu.

    Attributes
    ----------
    worker : napari GeneratorWorker or None
        The running (or last) calibration.
    result : sklearn_n2s.napari._engine.Result or None
        The last finished calibration: the denoised data and its search.
    figure : matplotlib Figure
        The calibration curve.

    Examples
    --------
    ::

        import napari
        from sklearn_n2s.napari import DenoiseWidget

        viewer = napari.Viewer()
        viewer.add_image(noisy, name="noisy")
        viewer.window.add_dock_widget(DenoiseWidget(viewer), name="Noise2Self")
    """

    def __init__(self, napari_viewer):
        self.viewer = napari_viewer
        self.worker = None
        self.result = None
        self.layer_select = ComboBox(label="image", choices=self._image_layers)
        self.method_select = ComboBox(label="method", choices=_engine.available_methods(),
                                      value="median")
        self.axes_select = ComboBox(label="axes", choices=list(AXES), value="2-D planes")
        self.output_select = ComboBox(label="output", choices=list(OUTPUTS), value="default")
        self.run_button = PushButton(text="Calibrate and denoise")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.status = Label(value="")
        super().__init__(widgets=[self.layer_select, self.method_select, self.axes_select,
                                  self.output_select, self.run_button, self.cancel_button,
                                  self.progress, self.status])
        self.figure, self.canvas = self._make_canvas()
        self.run_button.changed.connect(self._on_run)
        self.cancel_button.changed.connect(self.cancel)
        layers = self.viewer.layers.events
        layers.inserted.connect(self.layer_select.reset_choices)
        layers.removed.connect(self.layer_select.reset_choices)

    # ------------------------------------------------------------------------ pieces
    def _image_layers(self, _widget=None):
        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _make_canvas(self):
        # A Figure without pyplot: no global state, no window of its own.
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(4, 3))
        canvas = FigureCanvasQTAgg(figure)
        canvas.setMinimumHeight(220)
        self.native.layout().addWidget(canvas)
        return figure, canvas

    # ------------------------------------------------------------------- the work
    def start(self):
        """Calibrate the chosen method on the chosen layer in a thread worker.

        Returns
        -------
        worker : napari GeneratorWorker
            Already started; its ``returned`` signal adds the denoised layer.
        """
        layer = self.layer_select.value
        if layer is None:
            raise ValueError("no image layer to denoise: open or add an image first")
        if layer.multiscale:
            raise ValueError(f"layer {layer.name!r} is multiscale; denoise its full "
                             "resolution as a plain image layer")
        from napari.qt.threading import create_worker  # Qt: imported when needed

        method = self.method_select.value
        volume = AXES[self.axes_select.value]
        # Bad input fails here, in the main thread, before any work starts (nothing is
        # loaded: a dask layer stays lazy until the worker reads it).
        _engine.check_layer(layer.data.shape, layer.data.dtype, rgb=layer.rgb, volume=volume)
        if method == "net" and self.output_select.value == "auto":
            raise ValueError("output 'auto' chooses among the classical filters' outputs; "
                             "the net takes default, shrink, ordinary or invariant")
        self.worker = create_worker(
            _engine.calibration_steps, method, layer.data, rgb=layer.rgb, volume=volume,
            output=(None if self.output_select.value == "default"
                    else self.output_select.value),
            _progress={"total": 0, "desc": f"Noise2Self: {method} on {layer.name}"},
        )
        self.worker.yielded.connect(self._on_step)
        self.worker.returned.connect(lambda result: self._on_done(result, layer))
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.progress.max, self.progress.value = 1, 0
        self.result = None
        self.status.value = f"calibrating {method}..."
        self.worker.start()
        return self.worker

    def _on_run(self):
        # A click: a refused layer is a message in the widget, not a traceback.
        try:
            self.start()
        except (ValueError, TypeError) as exc:
            self.status.value = f"cannot start: {exc}"

    def cancel(self):
        """Stop the running calibration after its current candidate."""
        if self.worker is not None:
            self.worker.quit()
            self.status.value = "cancelling..."

    def _on_step(self, step):
        self.progress.max = step.total
        self.progress.value = step.done
        self.status.value = step.message
        # napari's activity bar (created by _progress) follows the same steps.
        pbar = getattr(self.worker, "pbar", None)
        if pbar is not None:
            if pbar.total != step.total:
                pbar.total = step.total  # known once the grid is (an event napari shows)
            pbar.update(step.done - pbar.n)

    def _on_done(self, result, layer):
        self.result = result
        name = f"{layer.name} denoised"
        self.viewer.add_image(result.denoised, name=name, scale=layer.scale,
                              translate=layer.translate, rgb=layer.rgb,
                              contrast_limits=layer.contrast_limits,
                              colormap=None if layer.rgb else layer.colormap)
        self.status.value = self._summary(result, name)
        self.plot(result)

    def _on_error(self, exc):
        self.status.value = f"failed: {exc}"

    def _on_finished(self):
        self.run_button.enabled, self.cancel_button.enabled = True, False
        if self.result is None and self.status.value == "cancelling...":
            self.status.value = "cancelled"

    @staticmethod
    def _summary(result, name):
        search = result.search
        if search is None or not getattr(search, "best_params_", None):
            return f"added {name!r}"
        chosen = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in search.best_params_.items())
        return f"added {name!r} ({chosen})"

    def plot(self, result):
        """Draw the calibration curve of ``result`` (self-supervised loss per value)."""
        from ..plotting import plot_calibration

        self.figure.clear()
        ax = self.figure.add_subplot()
        search = result.search
        params = getattr(search, "cv_results_", {}).get("params", [])
        if any(params):
            plot_calibration(search, ax=ax, name=type(result.estimator).__name__)
            ax.get_legend().remove()  # the title and the star say it; the dock is small
        else:
            ax.text(0.5, 0.5, f"{result.method}: nothing searched", ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_axis_off()
        self.canvas.draw_idle()
