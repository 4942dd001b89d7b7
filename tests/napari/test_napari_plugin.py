"""The napari plugin: the engine on real units, the widget headless, the manifest.

The engine (``sklearn_n2s.napari._engine``) needs neither napari nor Qt and is tested
always. The widget tests need napari, magicgui, pytest-qt and a Qt binding (the
``napari`` extra) and run with ``QT_QPA_PLATFORM=offscreen``; most use a
``ViewerModel`` (no OpenGL canvas). The test with a full ``napari.Viewer``
(``make_napari_viewer``) needs OpenGL: without a display it starts ``Xvfb`` when the
binary is there (Debian package ``xvfb``) and is skipped otherwise.
"""

import contextlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from skimage import data, transform
from sklearn.model_selection import GridSearchCV

import sklearn_n2s
from sklearn_n2s import FullSplit, JInvariantGaussian, SelfSupervisedScorer
from sklearn_n2s.io import restore_dtype
from sklearn_n2s.napari import _engine

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HAVE_NAPARI = all(importlib.util.find_spec(m) is not None
                  for m in ("napari", "magicgui", "pytestqt", "qtpy"))
needs_napari = pytest.mark.skipif(not HAVE_NAPARI, reason="needs the 'napari' extra")
MANIFEST = Path(sklearn_n2s.__file__).parent / "napari" / "napari.yaml"


def _poisson_planes(n_planes=2, size=64, level=60.0, seed=0):
    """uint16 photon counts (5 to 65 a pixel) of a real image (camera shrunk to
    ``size``), ``n_planes`` 2-D planes."""
    rng = np.random.default_rng(seed)
    camera = data.camera().astype(np.float64) / 255
    clean = transform.resize(camera, (size, size), anti_aliasing=True) * level + 5
    clean = np.broadcast_to(clean, (n_planes, *clean.shape))
    return clean, rng.poisson(clean).astype(np.uint16)


def _mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


def _steps_and_result(generator):
    """Every Step a calibration yields, and the Result it returns."""
    steps = []
    while True:
        try:
            steps.append(next(generator))
        except StopIteration as stop:
            return steps, stop.value


# --------------------------------------------------------------------------- engine
def test_available_methods_follow_the_package():
    methods = _engine.available_methods()
    classics = list(_engine.families())
    assert classics[:3] == ["median", "gaussian", "wavelet"]
    assert methods == ["auto"] * hasattr(sklearn_n2s, "AutoDenoiser") + classics + [
        "net"] * ("net" in methods)
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("skorch") is None:
        assert "net" not in methods
    # every family listed is a class of sklearn_n2s.image with a default grid
    for label, name in _engine.families().items():
        assert _engine.make_estimator(label).__class__ is getattr(sklearn_n2s.image, name)


@pytest.mark.parametrize("method", ["median", "gaussian", "wavelet"])
def test_engine_keeps_uint16_units_and_shape_and_denoises(method):
    clean, noisy = _poisson_planes()
    result = _engine.run(method, noisy)
    assert result.denoised.dtype == np.uint16 and result.denoised.shape == noisy.shape
    # in photon counts, not 0..1: the mean level is kept and the error shrinks
    assert abs(result.denoised.mean() - noisy.mean()) < 0.02 * noisy.mean()
    assert _mse(result.denoised, clean) < 0.5 * _mse(noisy, clean)
    assert np.all(np.isfinite(result.search.losses))


def test_engine_search_is_gridsearchcv_with_the_self_supervised_scorer():
    _, noisy = _poisson_planes()
    grid = {"sigma": [0.5, 1.0, 2.0, 3.0]}
    seen, result = _steps_and_result(_engine.calibration_steps("gaussian", noisy, grid=grid))
    # one step per candidate, then the denoising; progress only goes up, to the total
    assert [s.done for s in seen] == [1, 2, 3, 4, 5] and {s.total for s in seen} == {5}
    reference = GridSearchCV(JInvariantGaussian(), grid, scoring=SelfSupervisedScorer(),
                             cv=FullSplit()).fit(noisy)
    np.testing.assert_allclose(result.search.cv_results_["mean_test_score"],
                               reference.cv_results_["mean_test_score"], rtol=1e-12)
    assert result.search.best_params_ == reference.best_params_


@pytest.mark.skipif(not hasattr(sklearn_n2s, "AutoDenoiser"), reason="no AutoDenoiser yet")
def test_auto_makes_the_choice_autodenoiser_makes(monkeypatch):
    # two quick families (all of them take minutes on a busy machine)
    quick = {"median": "DonutMedian", "gaussian": "JInvariantGaussian"}
    monkeypatch.setattr(_engine, "families", lambda: quick)
    _, noisy = _poisson_planes(n_planes=1, size=48)
    steps = list(_steps_and_result(_engine.calibration_steps("auto", noisy))[0])
    result = _engine.run("auto", noisy)
    assert [s.done for s in steps] == [1, 2, 3] and steps[0].message.startswith("DonutMedian")
    # the widget's "default" output: AutoDenoiser's own (each family's lowest-risk output)
    reference = sklearn_n2s.AutoDenoiser(families=list(quick.values()),
                                         spatial_ndim=2).fit(noisy)
    assert type(result.estimator.best_estimator_).__name__ == reference.best_family_
    assert result.search.best_params_ == reference.best_params_
    assert result.denoised.dtype == np.uint16 and result.denoised.shape == noisy.shape
    # and the layer is what AutoDenoiser's transform gives (the mix of two families
    # where it mixes), not the best family alone
    assert result.estimator.blend_weights_ == pytest.approx(reference.blend_weights_)
    np.testing.assert_array_equal(result.denoised,
                                  restore_dtype(reference.transform(noisy), np.uint16))


@pytest.mark.skipif("net" not in _engine.available_methods(), reason="needs torch")
def test_engine_net_trains_on_the_layer_and_keeps_its_units():
    _, noisy = _poisson_planes(n_planes=2, size=32)
    steps, result = _steps_and_result(_engine.calibration_steps(
        "net", noisy, params={"max_epochs": 1, "batch_size": 2}))
    assert result.estimator.max_epochs == 1 and result.estimator.random_state == 0
    assert result.denoised.dtype == np.uint16 and result.denoised.shape == noisy.shape
    # nothing searched: one candidate (the net as set), scored on held-out planes
    assert result.search.cv_results_["params"] == [{}] and len(steps) == 2
    assert np.isfinite(result.search.losses).all()


def test_engine_rgb_and_volumes():
    rgb = data.astronaut()[::8, ::8]  # (64, 64, 3) uint8
    result = _engine.run("gaussian", rgb, rgb=True)
    assert result.denoised.dtype == np.uint8 and result.denoised.shape == rgb.shape
    assert result.estimator.channel_axis == -1
    _, planes = _poisson_planes(n_planes=8, size=24)
    volume = _engine.run("median", planes, volume=True)
    assert volume.estimator.n_spatial_dims_ == 3
    assert volume.denoised.shape == planes.shape and volume.denoised.dtype == np.uint16
    as_planes = _engine.run("median", planes)
    assert as_planes.estimator.n_spatial_dims_ == 2


def test_engine_float32_stays_float32():
    _, noisy = _poisson_planes(n_planes=1)
    result = _engine.run("median", noisy[0].astype(np.float32))
    assert result.denoised.dtype == np.float32 and result.denoised.shape == noisy[0].shape


@pytest.mark.parametrize("data_, kwargs, error, match", [
    (np.zeros(16), {}, ValueError, "1 spatial axes"),
    (np.zeros((16, 16)), {"volume": True}, ValueError, "3-D volume"),
    (np.zeros((16, 16), complex), {}, TypeError, "complex"),
    (np.zeros((0, 16, 16)), {}, ValueError, "nothing to denoise"),
])
def test_engine_refuses_bad_layers_before_any_work(data_, kwargs, error, match):
    with pytest.raises(error, match=match):
        _engine.run("median", data_, **kwargs)


def test_engine_refuses_unknown_methods():
    with pytest.raises(ValueError, match="unknown method 'sharpen'"):
        _engine.run("sharpen", np.zeros((16, 16)))


# ------------------------------------------------------------------------- manifest
@needs_napari
def test_manifest_validates_and_points_at_the_widget():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    (command,) = manifest.contributions.commands
    (widget,) = manifest.contributions.widgets
    assert widget.command == command.id
    from sklearn_n2s.napari import DenoiseWidget

    module, _, name = command.python_name.partition(":")
    assert getattr(importlib.import_module(module), name) is DenoiseWidget
    validate = shutil.which("npe2", path=str(Path(os.sys.executable).parent))
    if validate:
        done = subprocess.run([validate, "validate", str(MANIFEST)], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- widget
@pytest.fixture
def viewer_model(qtbot):
    from napari.components import ViewerModel

    return ViewerModel()


def _widget(viewer, qtbot):
    from sklearn_n2s.napari import DenoiseWidget

    widget = DenoiseWidget(viewer)
    qtbot.addWidget(widget.native)
    return widget


@needs_napari
def test_widget_adds_a_denoised_layer_with_dtype_scale_and_curve(viewer_model, qtbot):
    clean, noisy = _poisson_planes()
    viewer_model.add_image(np.zeros((8, 8), np.float32), name="other")
    layer = viewer_model.add_image(noisy, name="noisy", scale=(2.0, 0.5, 0.5),
                                   translate=(1.0, 10.0, -3.0))
    widget = _widget(viewer_model, qtbot)
    assert [lay.name for lay in widget.layer_select.choices] == ["other", "noisy"]
    assert set(widget.method_select.choices) == set(_engine.available_methods())
    widget.layer_select.value = layer
    widget.method_select.value = "gaussian"
    with qtbot.waitSignal(widget.start().finished, timeout=60_000):
        pass
    out = viewer_model.layers["noisy denoised"]
    assert out.data.dtype == np.uint16 and out.data.shape == noisy.shape
    np.testing.assert_array_equal(out.scale, layer.scale)
    np.testing.assert_array_equal(out.translate, layer.translate)
    assert _mse(out.data, clean) < 0.5 * _mse(noisy, clean)
    # the curve: the searched sigmas, the loss of each, the pick marked
    (line, star) = widget.figure.axes[0].lines[:2]
    sigmas = _engine.default_grid("gaussian", noisy)["sigma"]
    assert line.get_xdata().tolist() == sigmas
    np.testing.assert_allclose(line.get_ydata(), widget.result.search.losses)
    assert star.get_xdata()[0] == widget.result.search.best_params_["sigma"]
    assert "sigma=" in widget.status.value
    assert widget.progress.value == widget.progress.max == len(sigmas) + 1
    # napari's own progress bar (the activity dock) followed the same steps
    assert widget.worker.pbar.n == widget.worker.pbar.total == len(sigmas) + 1
    assert widget.run_button.enabled and not widget.cancel_button.enabled


@needs_napari
def test_worker_does_not_block_the_event_loop(viewer_model, qtbot):
    from qtpy.QtCore import QTimer

    _, noisy = _poisson_planes(n_planes=6, size=64)
    viewer_model.add_image(noisy, name="noisy")
    widget = _widget(viewer_model, qtbot)
    widget.method_select.value = "wavelet"
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    begin = time.perf_counter()
    worker = widget.start()
    returned_after = time.perf_counter() - begin
    assert not widget.run_button.enabled and widget.cancel_button.enabled
    steps = []
    worker.yielded.connect(steps.append)
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    elapsed = time.perf_counter() - begin
    timer.stop()
    # start() came back at once and the event loop kept turning while the worker ran:
    # timer ticks all along, and every step arrived in the main thread as it happened.
    assert returned_after < 0.2 * elapsed
    during = [t for t in ticks if begin < t < begin + elapsed]
    assert len(during) >= 5, (len(during), elapsed)
    assert [s.done for s in steps] == sorted(s.done for s in steps) and len(steps) >= 2
    assert "noisy denoised" in viewer_model.layers


@needs_napari
def test_cancel_stops_between_candidates(viewer_model, qtbot):
    _, noisy = _poisson_planes(n_planes=4, size=64)
    viewer_model.add_image(noisy, name="noisy")
    widget = _widget(viewer_model, qtbot)
    widget.method_select.value = "wavelet"
    worker = widget.start()
    worker.yielded.connect(lambda step: widget.cancel())
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert "noisy denoised" not in viewer_model.layers and widget.result is None
    assert widget.status.value == "cancelled" and widget.run_button.enabled


@needs_napari
def test_widget_refuses_a_bad_layer_before_starting(viewer_model, qtbot):
    viewer_model.add_image(np.zeros((4, 16, 16), np.uint8), name="planes")
    widget = _widget(viewer_model, qtbot)
    widget.axes_select.value = "3-D volumes"
    widget.method_select.value = "median"
    viewer_model.layers.pop()
    assert widget.layer_select.value is None
    with pytest.raises(ValueError, match="no image layer"):
        widget.start()
    viewer_model.add_image(np.zeros((16, 16), np.uint8), name="flat")
    with pytest.raises(ValueError, match="3-D volume"):
        widget.start()
    widget.run_button.clicked.emit()  # a click says why in the widget
    assert widget.status.value.startswith("cannot start:") and "3-D volume" in widget.status.value
    assert widget.worker is None
    assert widget.output_select.value == "default"  # the method's own output
    if "net" in _engine.available_methods():
        widget.axes_select.value = "2-D planes"
        widget.method_select.value = "net"
        widget.output_select.value = "auto"
        with pytest.raises(ValueError, match="output 'auto'"):
            widget.start()
        assert widget.worker is None


@needs_napari
def test_widget_checks_a_dask_layer_without_loading_it(viewer_model, qtbot, monkeypatch):
    da = pytest.importorskip("dask.array")
    _, noisy = _poisson_planes(n_planes=2, size=32)
    layer = viewer_model.add_image(da.from_array(noisy, chunks=(1, 32, 32)), name="lazy")
    loaded = []
    monkeypatch.setattr(_engine, "to_stack", _spy(_engine.to_stack, loaded))
    widget = _widget(viewer_model, qtbot)
    widget.layer_select.value = layer
    worker = widget.start()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    # the values were read once, in the worker thread, not in the viewer's
    assert loaded == ["worker"]
    assert viewer_model.layers["lazy denoised"].data.dtype == np.uint16


def _spy(function, calls):
    import threading

    def spied(*args, **kwargs):
        main = threading.current_thread() is threading.main_thread()
        calls.append("main" if main else "worker")
        return function(*args, **kwargs)

    return spied


# ---------------------------------------------------------- a real viewer (OpenGL)
@pytest.fixture(scope="session", autouse=True)
def _display():
    """A virtual X display for OpenGL when there is none and Xvfb is installed.

    Autouse, so that it is there before the first test of this module creates the Qt
    application (which reads ``DISPLAY`` once)."""
    if not HAVE_NAPARI or os.environ.get("DISPLAY") or not shutil.which("Xvfb"):
        yield
        return
    display = f":{4000 + os.getpid() % 1000}"
    # The server must outlive the Qt application, which closes its connection only when
    # Python exits (killing the server earlier aborts Qt): it ends with this process.
    subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     preexec_fn=_die_with_parent)
    time.sleep(1.0)
    os.environ["DISPLAY"] = display
    yield


def _die_with_parent():
    """In the child before exec: SIGTERM when the parent (pytest) exits (Linux)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PDEATHSIG


def _opengl_works():
    from qtpy.QtGui import QOffscreenSurface, QOpenGLContext

    context, surface = QOpenGLContext(), QOffscreenSurface()
    surface.create()
    return context.create() and context.makeCurrent(surface)


@needs_napari
def test_plugin_in_a_real_viewer(make_napari_viewer, qtbot):
    if not _opengl_works():
        pytest.skip("no OpenGL context (install the Debian package xvfb)")
    viewer = make_napari_viewer()
    _, noisy = _poisson_planes(n_planes=1)
    layer = viewer.add_image(noisy[0], name="cells", scale=(0.3, 0.3))
    # opened the way the Plugins menu does, through the installed npe2 manifest
    dock, widget = viewer.window.add_plugin_dock_widget("sklearn_n2s", "Noise2Self denoise")
    widget.method_select.value = "median"
    with qtbot.waitSignal(widget.start().finished, timeout=60_000):
        pass
    out = viewer.layers["cells denoised"]
    assert out.data.dtype == np.uint16 and out.data.shape == noisy[0].shape
    np.testing.assert_array_equal(out.scale, layer.scale)
