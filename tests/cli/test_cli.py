"""The ``n2s`` command line, driven as a user drives it (a subprocess), plus its parsing.

User flows run ``python -m sklearn_n2s.cli`` in a subprocess; the many error messages
are checked through ``main([...])`` in-process (the same code, without paying for a
Python start-up each time), and a few through the subprocess too.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data
from skimage.util import img_as_ubyte, random_noise
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import DonutMedian, FullSplit, JInvariantGaussian
from sklearn_n2s.cli._main import (
    CommandLineError,
    default_grid,
    main,
    make_estimator,
    parse_grid,
    parse_params,
    parse_value,
)
from sklearn_n2s.io import restore_dtype

tifffile = pytest.importorskip("tifffile")
iio = pytest.importorskip("imageio.v3")


def run_n2s(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "N2S_PROGRESS"}
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, "-m", "sklearn_n2s.cli", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False,
                          timeout=300)


def assert_one_line_error(result, *words):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A TIFF stack, a grey PNG, a colour PNG and a float .npy, all noisy."""
    root = tmp_path_factory.mktemp("n2s_cli")
    camera = data.camera()[128:384:4, 128:384:4]  # 64 x 64
    stack = np.stack([img_as_ubyte(random_noise(camera, var=0.01, rng=i)) for i in range(3)])
    tifffile.imwrite(root / "stack.tif", stack, photometric="minisblack")
    iio.imwrite(root / "grey.png", stack[0])
    colour = img_as_ubyte(random_noise(data.astronaut()[::8, ::8], var=0.01, rng=0))
    iio.imwrite(root / "colour.png", colour)
    np.save(root / "image.npy", random_noise(camera, var=0.01, rng=5).astype(np.float32))
    return root


# -------------------------------------------------------------------------- user flows
def test_help_is_followable(files):
    result = run_n2s("--help", cwd=files)
    assert result.returncode == 0
    for word in ("demo", "calibrate", "denoise", "examples:"):
        assert word in result.stdout


def test_calibrate_tiff_stack_prints_table_and_writes_plot(files, tmp_path):
    result = run_n2s("calibrate", files / "stack.tif", "--grid", "radius=1,2,3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [ln for ln in result.stdout.splitlines() if ln.strip()[:1].isdigit() or
            ln.startswith("*")]
    assert len(rows) == 3 and sum(ln.startswith("*") for ln in rows) == 1
    # the stack is calibrated once, on all its pages together
    X = tifffile.imread(files / "stack.tif")
    expected = GridSearchCV(DonutMedian(), {"radius": [1, 2, 3]}, cv=FullSplit()).fit(X)
    assert f"chosen: radius={expected.best_params_['radius']}" in result.stdout
    plot = tmp_path / "stack_calibration.png"
    image = iio.imread(plot)
    assert image.ndim == 3 and image.shape[0] > 200


def test_calibrate_json_on_png_matches_gridsearchcv(files, tmp_path):
    result = run_n2s("calibrate", files / "grey.png", "--method", "gaussian",
                     "--grid", "sigma=0.5,1,2", "--json", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    X = iio.imread(files / "grey.png")[np.newaxis]
    search = GridSearchCV(JInvariantGaussian(), {"sigma": [0.5, 1, 2]}, cv=FullSplit()).fit(X)
    assert report["best_params"] == search.best_params_
    assert [r["params"]["sigma"] for r in report["results"]] == [0.5, 1, 2]
    # losses in the PNG's own units (0..255 levels, squared), as the sigma grid would be
    np.testing.assert_allclose([r["self_supervised_loss"] for r in report["results"]],
                               -search.cv_results_["mean_test_score"] * 255.0 ** 2)
    assert report["loss_unit"] == "uint8 units²"
    assert report["plot"] is None and not list(tmp_path.glob("*.png"))


def test_denoise_tiff_stack_with_fixed_param_applies_it_to_every_page(files, tmp_path):
    before = (files / "stack.tif").read_bytes()
    result = run_n2s("denoise", files / "stack.tif", tmp_path / "out.tif",
                     "--param", "radius=2", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --quiet
    X = tifffile.imread(files / "stack.tif")
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.shape == X.shape and out.dtype == np.uint8
    expected = restore_dtype(DonutMedian(radius=2).fit(X).transform(X), np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert (files / "stack.tif").read_bytes() == before  # input untouched


def test_denoise_calibrates_by_default(files, tmp_path):
    result = run_n2s("denoise", files / "grey.png", tmp_path / "out.png", "--method",
                     "gaussian", "--grid", "sigma=0.5,1,2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "chosen: sigma=" in result.stderr
    X = iio.imread(files / "grey.png")[np.newaxis]
    best = GridSearchCV(JInvariantGaussian(), {"sigma": [0.5, 1, 2]},
                        cv=FullSplit()).fit(X).best_estimator_
    out = iio.imread(tmp_path / "out.png")
    np.testing.assert_array_equal(out, restore_dtype(best.transform(X)[0], np.uint8))


def test_denoise_colour_png_uses_the_channel_axis(files, tmp_path):
    result = run_n2s("denoise", files / "colour.png", tmp_path / "out.png",
                     "--method", "gaussian", "--param", "sigma=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    image = iio.imread(files / "colour.png")
    out = iio.imread(tmp_path / "out.png")
    assert out.shape == image.shape and out.dtype == np.uint8
    est = JInvariantGaussian(sigma=1, channel_axis=-1).fit(image[np.newaxis])
    np.testing.assert_array_equal(out, restore_dtype(est.transform(image[np.newaxis])[0],
                                                     np.uint8))


def test_denoise_npy_keeps_float32(files, tmp_path):
    result = run_n2s("denoise", files / "image.npy", tmp_path / "out.npy",
                     "--method", "gaussian", "--param", "sigma=1.5", "--output", "ordinary",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    image = np.load(files / "image.npy")
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == np.float32 and out.shape == image.shape
    expected = JInvariantGaussian(sigma=1.5, output="ordinary").fit(
        image[np.newaxis]).transform(image[np.newaxis])[0]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_bad_path_and_bad_grid_in_a_subprocess(files, tmp_path):
    assert_one_line_error(run_n2s("calibrate", "missing.tif", cwd=tmp_path),
                          "no such file", "missing.tif")
    assert_one_line_error(run_n2s("calibrate", files / "grey.png", "--grid", "radius",
                                  cwd=tmp_path), "--grid", "NAME=VALUE")


def test_verbose_shows_the_traceback(tmp_path):
    result = run_n2s("-v", "calibrate", "missing.tif", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.skipif(shutil.which("n2s", path=str(Path(sys.executable).parent)) is None,
                    reason="the n2s console script is not installed next to this Python")
def test_console_script_is_installed(tmp_path):
    exe = shutil.which("n2s", path=str(Path(sys.executable).parent))
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("n2s ")


# ----------------------------------------------------- in-process: every error one line
def _in_process(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, words", [
    (["calibrate", "{d}/grey.png", "--grid", "radius=-1,2"],
     ["'radius' parameter", "range [1, inf)", "Got -1"]),
    (["calibrate", "{d}/grey.png", "--grid", "radius=a"],
     ["'radius' parameter", "must be an int", "Got 'a'"]),
    (["calibrate", "{d}/grey.png", "--grid", "radus=1,2"], ["no parameter 'radus'", "radius"]),
    (["calibrate", "{d}/grey.png", "--grid", "radius=1,,2"], ["empty value"]),
    (["calibrate", "{d}/grey.png", "--grid", "radius=1", "--grid", "radius=2"], ["twice"]),
    (["calibrate", "{d}/notes.txt"], ["unsupported file type .txt"]),
    (["calibrate", "{d}"], ["unsupported file type"]),
    (["denoise", "{d}/stack.tif", "{d}/out.png", "--param", "radius=2"], ["one 2-D image"]),
    (["denoise", "{d}/grey.png", "{d}/out.bmp", "--param", "radius=2"], [".bmp"]),
    (["denoise", "{d}/grey.png", "{d}/no/dir/out.png", "--param", "radius=1"],
     ["no such directory"]),
    (["denoise", "{d}/grey.png", "{d}/out.png", "--param", "radius"], ["--param"]),
    (["denoise", "{d}/grey.png", "{d}/out.png", "--param", "radius=0"],
     ["bad --param", "'radius' parameter", "Got 0"]),
    (["denoise", "{d}/grey.png", "{d}/out.png", "--param", "radius=1", "--grid", "radius=2"],
     ["either --param"]),
    (["denoise", "{d}/stack.tif", "{d}/out.tif", "--volume", "--channel-axis",
      "--param", "radius=1"], ["--volume"]),
    (["calibrate", "{d}/missing.h5ad"], ["no such file"]),
    (["calibrate", "{d}/in.zarr"], ["n2s denoise IN.zarr"]),
    (["calibrate", "{d}/grey.png", "--method", "lowrank"], ["for images use median"]),
    (["denoise", "{d}/grey.png", "{d}/out.h5ad"], [".h5ad input needs a .h5ad output"]),
])
def test_errors_are_one_line(files, capsys, args, words):
    (files / "notes.txt").write_text("not an image")
    code, _, err = _in_process(capsys, *[a.format(d=files) for a in args])
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("n2s: error: ") and "\n" not in lines[-1]
    assert not any(ln.startswith("n2s: error") for ln in lines[:-1])
    for word in words:
        assert word in lines[-1]


def test_usage_errors_exit_2_in_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "x.tif", "--method", "nope"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "invalid choice" in err


def test_net_without_its_module_is_one_clear_line(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn_n2s.neural._net", None)  # import now fails
    code, _, err = _in_process(capsys, "calibrate", files / "grey.png", "--method", "net")
    assert code == 1
    assert err.strip().splitlines() == [err.strip()]
    assert "--method net needs sklearn_n2s.neural._net" in err


def test_warnings_are_one_line(capsys, monkeypatch):
    import warnings

    from sklearn_n2s.cli import _main as cli

    def warns(args, report):
        warnings.warn("first line\nsecond line", UserWarning, stacklevel=2)
        return 0

    monkeypatch.setattr(cli, "cmd_demo", warns)
    code, _, err = _in_process(capsys, "demo")
    assert code == 0
    assert err == "n2s: warning: first line second line\n"


def test_volume_denoises_in_3d(files, tmp_path, capsys):
    volume = np.random.default_rng(0).random((6, 16, 16)).astype(np.float32)
    np.save(tmp_path / "v.npy", volume)
    code, _, _ = _in_process(capsys, "denoise", tmp_path / "v.npy", tmp_path / "o.npy",
                             "--volume", "--method", "gaussian", "--param", "sigma=1",
                             "--output", "ordinary")
    assert code == 0
    expected = JInvariantGaussian(sigma=1, output="ordinary").fit(
        volume[np.newaxis]).transform(volume[np.newaxis])[0]
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), expected, rtol=1e-6)


def test_zarr_store_is_denoised_blockwise(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("dask.array")
    try:
        import sklearn_n2s.io._zarr  # noqa: F401
    except ImportError:
        pytest.skip("sklearn_n2s.io._zarr is not available")
    X = np.random.default_rng(0).random((1, 64, 64)).astype(np.float32)
    src = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=X.shape,
                          chunks=(1, 32, 32), dtype=X.dtype)
    src[:] = X
    code, _, err = _in_process(capsys, "denoise", tmp_path / "in.zarr", tmp_path / "out.zarr",
                               "--method", "gaussian", "--param", "sigma=1",
                               "--output", "ordinary")
    assert code == 0, err
    out = zarr.open_array(str(tmp_path / "out.zarr"))[:]
    expected = JInvariantGaussian(sigma=1, output="ordinary").fit(X).transform(X)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0.5", 0.5), ("1e-2", 0.01), ("None", None), ("true", True),
    ("False", False), ("db2", "db2"), (" 4 ", 4),
])
def test_parse_value(text, value):
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_parse_grid_and_params():
    assert parse_grid(["radius=1,2,3", "output=invariant"]) == {
        "radius": [1, 2, 3], "output": ["invariant"]}
    assert parse_params(["sigma=1.5", "wavelet=db2"]) == {"sigma": 1.5, "wavelet": "db2"}
    assert parse_grid(None) == {} and parse_params(None) == {}
    for bad in (["radius"], ["=1,2"], ["radius="]):
        with pytest.raises(CommandLineError, match="NAME=VALUE"):
            parse_grid(bad)


def test_default_grids():
    X = np.random.default_rng(0).normal(0.5, 0.1, (1, 40, 40))
    assert default_grid("median", X, None) == {"radius": [1, 2, 3, 4, 5, 6]}
    assert default_grid("median", X[:, :7, :7], None) == {"radius": [1, 2, 3]}
    sigmas = default_grid("wavelet", X, None)["sigma"]
    assert min(sigmas) < 0.1 < max(sigmas)  # spans the noise level
    sigmas_u8 = default_grid("wavelet", (X * 255).astype(np.uint8), None)["sigma"]
    assert min(sigmas_u8) < 25 < max(sigmas_u8)  # in the file's units
    assert make_estimator("gaussian", channel_axis=-1).channel_axis == -1


# -------------------------------------------------------------------------- progress
class _FakeTerminal:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_progress_is_silent_when_quiet_or_not_a_terminal(monkeypatch):
    import io

    from sklearn_n2s.utils._progress import progress, progress_enabled

    monkeypatch.delenv("N2S_PROGRESS", raising=False)
    quiet_terminal = _FakeTerminal()
    assert not progress_enabled(quiet=True, file=quiet_terminal)
    bar = progress(range(4), file=quiet_terminal, quiet=True)
    assert list(bar) == [0, 1, 2, 3] and bar.n == 4  # the silent stand-in counts
    assert quiet_terminal.text == ""
    pipe = io.StringIO()
    assert not progress_enabled(file=pipe)
    assert list(progress(range(4), desc="work", file=pipe)) == [0, 1, 2, 3]
    assert pipe.getvalue() == ""  # tqdm turned itself off: not a terminal
    pytest.importorskip("tqdm")
    terminal = _FakeTerminal()
    assert progress_enabled(file=terminal)
    assert terminal.text == ""  # asking draws nothing
    for _ in progress(range(3), desc="work", file=terminal):
        pass
    assert "work" in terminal.text and "/3" in terminal.text


def test_progress_environment_override(monkeypatch):
    import io

    pytest.importorskip("tqdm")
    from sklearn_n2s.utils._progress import progress, progress_enabled

    monkeypatch.setenv("N2S_PROGRESS", "1")
    assert progress_enabled(file=io.StringIO())
    assert not progress_enabled(quiet=True, file=io.StringIO())
    forced = io.StringIO()
    for _ in progress(range(3), desc="forced", file=forced):
        pass
    assert "forced" in forced.getvalue()  # drawn although not a terminal
    monkeypatch.setenv("N2S_PROGRESS", "0")
    assert not progress_enabled(file=_FakeTerminal())
    terminal = _FakeTerminal()
    for _ in progress(range(3), desc="off", file=terminal):
        pass
    assert terminal.text == ""


def test_calibration_shows_a_bar_when_watched(files, tmp_path):
    pytest.importorskip("tqdm")
    env = dict(os.environ, N2S_PROGRESS="1", MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "-m", "sklearn_n2s.cli", "calibrate", str(files / "grey.png"),
         "--grid", "radius=1,2,3", "--no-plot"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
        timeout=300)
    assert result.returncode == 0, result.stderr
    assert "calibrating median" in result.stderr and "/3 [" in result.stderr


# ------------------------------------------------------------------ .h5ad count tables
@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    anndata = pytest.importorskip("anndata")
    try:
        import sklearn_n2s.io._anndata
        import sklearn_n2s.table  # noqa: F401
    except ImportError:
        pytest.skip("the table estimators are not available")
    rng = np.random.default_rng(0)
    rates = rng.gamma(1.0, 1.0, (60, 3)) @ rng.gamma(1.0, 1.0, (3, 24))
    path = tmp_path_factory.mktemp("h5ad") / "counts.h5ad"
    anndata.AnnData(rng.poisson(rates).astype(np.float32)).write_h5ad(path)
    return path


def test_h5ad_in_h5ad_out_with_a_denoised_layer(counts_file, tmp_path, capsys):
    import anndata
    from sklearn.model_selection import KFold

    from sklearn_n2s import SelfSupervisedScorer
    from sklearn_n2s.table import LowRankDenoiser

    out = tmp_path / "out.h5ad"
    code, _, err = _in_process(capsys, "denoise", counts_file, out, "--no-normalize",
                               "--grid", "n_components=1,2,3,6")
    assert code == 0, err
    counts = anndata.read_h5ad(counts_file).X
    search = GridSearchCV(LowRankDenoiser(random_state=0), {"n_components": [1, 2, 3, 6]},
                          scoring=SelfSupervisedScorer(),
                          cv=KFold(3, shuffle=True, random_state=0)).fit(counts)
    result = anndata.read_h5ad(out)
    np.testing.assert_allclose(result.layers["denoised"],
                               search.best_estimator_.transform(counts), rtol=1e-6)
    np.testing.assert_array_equal(result.X, counts)  # the counts are kept as they were
    assert f"n_components={search.best_params_['n_components']}" in err


def test_h5ad_one_call_keeps_scanpys_log_normalisation(counts_file, tmp_path, capsys):
    """Without --grid/--param the CLI is table.denoise with log1p (what its help says),
    whatever denoise's own default transform is."""
    import anndata

    from sklearn_n2s.table import denoise

    out = tmp_path / "one.h5ad"
    code, _, err = _in_process(capsys, "denoise", counts_file, out)
    assert code == 0, err
    expected = denoise(anndata.read_h5ad(counts_file), "lowrank", layer="X",
                       transform="log1p", random_state=0, copy=True)
    result = anndata.read_h5ad(out)
    np.testing.assert_allclose(result.layers["denoised"], expected.layers["denoised"],
                               rtol=1e-6)
    assert "log-normalised values" in err


def test_h5ad_calibrate_json_and_bad_method(counts_file, tmp_path, capsys):
    code, out, _ = _in_process(capsys, "calibrate", counts_file, "--json", "--no-plot",
                               "--grid", "n_components=1,2")
    assert code == 0
    report = json.loads(out)
    # the rank path: every rank of the grid scored from one decomposition per fold, on
    # library-size normalised counts (the README's pipeline) unless --no-normalize
    assert report["estimator"] == "LibrarySizeNormalizer + LowRankDenoiser"
    assert report["shape"] == [60, 24]
    assert [r["params"]["n_components"] for r in report["results"]] == [1, 2]
    code, _, err = _in_process(capsys, "denoise", counts_file, tmp_path / "o.h5ad",
                               "--method", "median")
    assert code == 1 and "for .h5ad count tables use lowrank" in err
