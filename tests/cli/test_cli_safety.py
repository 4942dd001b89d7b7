"""The ``n2s`` command line never destroys data, and says what it did in its own terms.

Outputs that are an input (by any spelling or link) are refused without ``--overwrite``;
every output is written to a temporary file and renamed, so an error or Ctrl-C leaves
nothing half-written; bad input writes nothing; unwritable paths fail before the work.
Then the polish: losses in the input's units, warnings about the grid, TIFF layout and
metadata kept, messages in command-line terms, ``--threads``.
"""

import json
import os
import re
import shlex
import sys

import numpy as np
import pytest
from skimage import data
from skimage.util import img_as_ubyte, random_noise
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_n2s import FullSplit, JInvariantGaussian
from sklearn_n2s.cli import _main as cli
from sklearn_n2s.cli._main import main

tifffile = pytest.importorskip("tifffile")
iio = pytest.importorskip("imageio.v3")


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err):
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("n2s: error")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder holding in.npy (float32), in.tif (uint8 stack), in.png (uint8)."""
    camera = data.camera()[::16, ::16]  # 32 x 32
    grey = img_as_ubyte(random_noise(camera, var=0.02, rng=0))
    np.save(tmp_path / "in.npy", random_noise(camera, var=0.02, rng=1).astype(np.float32))
    tifffile.imwrite(tmp_path / "in.tif", np.stack([grey, grey[::-1]]),
                     photometric="minisblack")
    iio.imwrite(tmp_path / "in.png", grey)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _alias(folder, name, how):
    """Another way to name ``folder/name``: the same string, ./, a symlink, a hard link."""
    suffix = os.path.splitext(name)[1]
    if how == "same":
        return name
    if how == "dot":
        return f"./{name}"
    if how == "absolute":
        return str(folder / "." / name)
    link = folder / f"link{suffix}"
    if how == "symlink":
        link.symlink_to(folder / name)
    else:
        os.link(folder / name, link)
    return link.name


def _leftovers(folder, *expected):
    return sorted(set(os.listdir(folder)) - set(expected))


# ------------------------------------------------------------------- item 1: no data lost
@pytest.mark.parametrize("suffix", [".npy", ".tif", ".png"])
@pytest.mark.parametrize("how", ["same", "dot", "absolute", "symlink", "hardlink"])
def test_denoise_refuses_an_output_that_is_its_input(folder, capsys, suffix, how):
    name = f"in{suffix}"
    before = (folder / name).read_bytes()
    code, _, err = _run(capsys, "denoise", name, _alias(folder, name, how),
                        "--param", "radius=1")
    assert code == 1
    line = _one_error_line(err)
    assert "--overwrite" in line and name in line
    assert (folder / name).read_bytes() == before


@pytest.mark.parametrize("how", ["same", "dot"])
def test_overwrite_replaces_the_input_on_request(folder, capsys, how):
    before = np.load(folder / "in.npy")
    code, _, err = _run(capsys, "denoise", "in.npy", _alias(folder, "in.npy", how),
                        "--method", "gaussian", "--param", "sigma=1", "--overwrite")
    assert code == 0, err
    after = np.load(folder / "in.npy")
    assert after.dtype == before.dtype and not np.array_equal(after, before)
    assert _leftovers(folder, "in.npy", "in.tif", "in.png") == []


@pytest.mark.parametrize("plot", ["in.png", "./in.png", "link.png"])
def test_calibrate_refuses_a_plot_over_its_input(folder, capsys, monkeypatch, plot):
    if plot == "link.png":
        (folder / "link.png").symlink_to(folder / "in.png")
    before = (folder / "in.png").read_bytes()
    monkeypatch.setattr(cli, "calibrate", _no_calibration)
    code, _, err = _run(capsys, "calibrate", "in.png", "--plot", plot)
    assert code == 1
    line = _one_error_line(err)
    assert "--overwrite" in line and "--plot" in line and "calibration started" not in line
    assert (folder / "in.png").read_bytes() == before


def test_h5ad_and_zarr_outputs_that_are_inputs_are_refused(folder, capsys):
    anndata = pytest.importorskip("anndata")
    zarr = pytest.importorskip("zarr")
    counts = np.random.default_rng(0).poisson(3.0, (30, 12)).astype(np.float32)
    anndata.AnnData(counts).write_h5ad(folder / "c.h5ad")
    (folder / "l.h5ad").symlink_to(folder / "c.h5ad")
    before = (folder / "c.h5ad").read_bytes()
    for out in ("c.h5ad", "./c.h5ad", "l.h5ad"):
        code, _, err = _run(capsys, "denoise", "c.h5ad", out, "--param", "n_components=2")
        assert code == 1 and "--overwrite" in _one_error_line(err)
    assert (folder / "c.h5ad").read_bytes() == before
    X = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    store = zarr.open_array(str(folder / "in.zarr"), mode="w", shape=X.shape,
                            chunks=(1, 16, 16), dtype=X.dtype)
    store[:] = X
    code, _, err = _run(capsys, "denoise", "in.zarr", "./in.zarr/", "--method", "gaussian",
                        "--param", "sigma=1", "--output", "ordinary")
    assert code == 1 and "--overwrite" in _one_error_line(err)
    np.testing.assert_array_equal(zarr.open_array(str(folder / "in.zarr"))[:], X)


def test_existing_zarr_output_names_overwrite_in_command_line_terms(folder, capsys):
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("dask.array")
    X = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    store = zarr.open_array(str(folder / "in.zarr"), mode="w", shape=X.shape,
                            chunks=(1, 16, 16), dtype=X.dtype)
    store[:] = X
    args = ["denoise", "in.zarr", "out.zarr", "--method", "gaussian", "--param", "sigma=1",
            "--output", "ordinary"]
    assert _run(capsys, *args)[0] == 0
    code, _, err = _run(capsys, *args)
    line = _one_error_line(err)
    assert code == 1 and "--overwrite" in line and "=True" not in line
    code, _, err = _run(capsys, *args, "--overwrite")
    assert code == 0, err
    expected = JInvariantGaussian(sigma=1, output="ordinary").fit(X).transform(X)
    np.testing.assert_allclose(zarr.open_array(str(folder / "out.zarr"))[:], expected,
                               rtol=1e-5, atol=1e-6)
    assert _leftovers(folder, "in.npy", "in.tif", "in.png", "in.zarr", "out.zarr") == []


def _half_written(path, *args, **kwargs):
    with open(path, "wb") as fh:
        fh.write(b"half")
    raise KeyboardInterrupt


def test_ctrl_c_while_writing_leaves_nothing_half_written(folder, capsys, monkeypatch):
    from sklearn_n2s.io import _images

    (folder / "out.tif").write_bytes(b"an earlier result")
    monkeypatch.setattr(_images, "_write_tiff", _half_written)
    code, _, err = _run(capsys, "denoise", "in.tif", "out.tif", "--param", "radius=1")
    assert code == 130 and "interrupted" in err
    assert (folder / "out.tif").read_bytes() == b"an earlier result"
    code, _, _ = _run(capsys, "denoise", "in.tif", "new.tif", "--param", "radius=1")
    assert code == 130
    assert _leftovers(folder, "in.npy", "in.tif", "in.png", "out.tif") == []


def test_ctrl_c_while_writing_the_plot_or_h5ad_leaves_nothing(folder, capsys, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda self, path, **kw: _half_written(path))
    code, _, _ = _run(capsys, "calibrate", "in.png", "--grid", "radius=1,2",
                      "--plot", "plot.png")
    assert code == 130
    assert _leftovers(folder, "in.npy", "in.tif", "in.png") == []
    anndata = pytest.importorskip("anndata")
    counts = np.random.default_rng(0).poisson(3.0, (30, 12)).astype(np.float32)
    anndata.AnnData(counts).write_h5ad(folder / "c.h5ad")
    monkeypatch.setattr(anndata.AnnData, "write_h5ad", lambda self, path, **kw:
                        _half_written(path))
    code, _, _ = _run(capsys, "denoise", "c.h5ad", "o.h5ad", "--param", "n_components=2")
    assert code == 130
    assert _leftovers(folder, "in.npy", "in.tif", "in.png", "c.h5ad") == []


def test_ctrl_c_in_the_demo_leaves_no_half_written_figure(tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import io

    from matplotlib.figure import Figure

    from sklearn_n2s.cli._demo import run_demo

    monkeypatch.setattr(Figure, "savefig", lambda self, path, **kw: _half_written(path))
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "demo", size=32, quiet=True, stream=io.StringIO())
    names = sorted(os.listdir(tmp_path / "demo"))
    assert "calibration.png" not in names and not [n for n in names if n.startswith(".")]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_writes_no_output(folder, capsys, bad):
    image = np.load(folder / "in.npy")
    image[3, 4] = bad
    np.save(folder / "bad.npy", image)
    for args in (["denoise", "bad.npy", "out.npy", "--param", "radius=1"],
                 ["denoise", "bad.npy", "out.tif"],
                 ["calibrate", "bad.npy", "--grid", "radius=1,2"]):
        code, _, err = _run(capsys, *args)
        line = _one_error_line(err)
        assert code == 1 and "bad.npy" in line and ("NaN" in line or "infinite" in line)
        assert "--param" not in line  # not blamed on the parameters
    assert _leftovers(folder, "in.npy", "in.tif", "in.png", "bad.npy") == []


def test_non_finite_zarr_and_h5ad_write_no_output(folder, capsys):
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("dask.array")
    anndata = pytest.importorskip("anndata")
    X = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    X[0, 30, 30] = np.nan
    store = zarr.open_array(str(folder / "in.zarr"), mode="w", shape=X.shape,
                            chunks=(1, 16, 16), dtype=X.dtype)
    store[:] = X
    code, _, err = _run(capsys, "denoise", "in.zarr", "out.zarr", "--method", "gaussian",
                        "--param", "sigma=1")
    assert code == 1 and "NaN" in _one_error_line(err)
    counts = np.random.default_rng(0).poisson(3.0, (30, 12)).astype(np.float32)
    counts[2, 2] = np.inf
    anndata.AnnData(counts).write_h5ad(folder / "c.h5ad")
    code, _, err = _run(capsys, "denoise", "c.h5ad", "o.h5ad", "--param", "n_components=2")
    assert code == 1 and "infinite" in _one_error_line(err)
    assert _leftovers(folder, "in.npy", "in.tif", "in.png", "in.zarr", "c.h5ad") == []


def _no_calibration(*args, **kwargs):
    raise AssertionError("calibration started")


@pytest.mark.parametrize("args, words", [
    (["denoise", "in.npy", "nodir/out.npy"], ["no such directory", "nodir"]),
    (["denoise", "in.npy", "adir.npy"], ["adir.npy", "directory"]),
    (["calibrate", "in.npy", "--plot", "nodir/p.png"], ["no such directory", "--plot"]),
    (["calibrate", "in.npy", "--plot", "adir.npy"], ["--plot", "directory"]),
    (["calibrate", "in.npy", "--plot", "p.notaformat"], ["--plot", ".notaformat"]),
])
def test_unwritable_outputs_fail_before_the_calibration(folder, capsys, monkeypatch, args,
                                                          words):
    (folder / "adir.npy").mkdir()
    monkeypatch.setattr(cli, "calibrate", _no_calibration)
    code, _, err = _run(capsys, *args)
    line = _one_error_line(err)
    assert code == 1 and "calibration started" not in line
    for word in words:
        assert word in line


def test_read_only_folder_fails_before_the_calibration(folder, capsys, monkeypatch):
    real_touch = type(folder).touch

    def refuse(self, *args, **kwargs):
        if self.parent.name == "ro":
            raise PermissionError(13, "Permission denied")
        return real_touch(self, *args, **kwargs)

    (folder / "ro").mkdir()
    monkeypatch.setattr(type(folder), "touch", refuse)
    monkeypatch.setattr(cli, "calibrate", _no_calibration)
    code, _, err = _run(capsys, "denoise", "in.npy", "ro/out.npy")
    line = _one_error_line(err)
    assert code == 1 and "not writable" in line and "calibration started" not in line


# --------------------------------------------------------------- item 6: the input's units
def test_losses_are_printed_in_the_input_units(folder, capsys):
    code, out, err = _run(capsys, "calibrate", "in.png", "--method", "gaussian",
                          "--grid", "sigma=0.5,1,2", "--json", "--no-plot")
    assert code == 0, err
    report = json.loads(out)
    X = iio.imread(folder / "in.png")[np.newaxis]
    search = GridSearchCV(JInvariantGaussian(), {"sigma": [0.5, 1, 2]}, cv=FullSplit()).fit(X)
    np.testing.assert_allclose([r["self_supervised_loss"] for r in report["results"]],
                               -search.cv_results_["mean_test_score"] * 255.0 ** 2)
    assert "uint8" in report["loss_unit"]
    code, out, err = _run(capsys, "calibrate", "in.png", "--method", "gaussian",
                          "--grid", "sigma=0.5,1,2", "--no-plot")
    header = out.splitlines()[0]
    assert "uint8" in header
    chosen = [ln for ln in out.splitlines() if ln.startswith("*")][0]
    assert float(chosen.split()[-1]) == pytest.approx(
        -search.best_score_ * 255.0 ** 2, rel=1e-5)


def test_integer_zarr_comes_back_as_integers_in_its_units(folder, capsys):
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("dask.array")
    from sklearn_n2s.io import restore_dtype

    X = np.random.default_rng(0).integers(0, 4000, (1, 32, 32), dtype=np.uint16)
    store = zarr.open_array(str(folder / "in.zarr"), mode="w", shape=X.shape,
                            chunks=(1, 16, 16), dtype=X.dtype)
    store[:] = X
    code, _, err = _run(capsys, "denoise", "in.zarr", "out.zarr", "--method", "gaussian",
                        "--param", "sigma=1", "--output", "ordinary")
    assert code == 0, err
    out = zarr.open_array(str(folder / "out.zarr"))[:]
    assert out.dtype == np.uint16
    expected = restore_dtype(JInvariantGaussian(sigma=1, output="ordinary").fit(X)
                             .transform(X), np.uint16)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


# ---------------------------------------------------------- item 9: normalised count tables
@pytest.fixture
def counts_file(folder):
    anndata = pytest.importorskip("anndata")
    rng = np.random.default_rng(0)
    library = rng.lognormal(0, 0.8, (90, 1))
    rates = library * (rng.gamma(1.0, 1.0, (90, 4)) @ rng.gamma(1.0, 1.0, (4, 30)))
    anndata.AnnData(rng.poisson(rates).astype(np.float32)).write_h5ad(folder / "c.h5ad")
    return folder / "c.h5ad"


def test_h5ad_calibration_normalises_by_default_and_names_the_model(counts_file, capsys,
                                                                    monkeypatch):
    import anndata
    from sklearn.pipeline import make_pipeline

    import sklearn_n2s.plotting as plotting
    from sklearn_n2s import LibrarySizeNormalizer
    from sklearn_n2s.table import LowRankDenoiserCV

    titles = []
    real_plot = plotting.plot_calibration

    def recording_plot(*args, **kwargs):
        fig = real_plot(*args, **kwargs)
        titles.append(fig.axes[0].get_title())
        return fig

    monkeypatch.setattr(plotting, "plot_calibration", recording_plot)
    ranks = [1, 2, 3, 4, 6, 8]
    code, out, err = _run(capsys, "calibrate", counts_file, "--json", "--plot", "p.png",
                          "--grid", "n_components=" + ",".join(map(str, ranks)))
    assert code == 0, err
    report = json.loads(out)
    counts = anndata.read_h5ad(counts_file).X
    expected = make_pipeline(
        LibrarySizeNormalizer(1e4, empty_rows="zero"),
        LowRankDenoiserCV(n_components=ranks, cv=KFold(3, shuffle=True, random_state=0),
                          random_state=0)).fit(counts)
    assert report["best_params"] == {"n_components": int(expected[-1].n_components_)}
    name = "LibrarySizeNormalizer + LowRankDenoiser"
    assert report["estimator"] == name
    assert f"calibrating {name}" in err and titles and titles[0].startswith(name)
    raw = LowRankDenoiserCV(n_components=ranks, cv=KFold(3, shuffle=True, random_state=0),
                            random_state=0).fit(counts)
    code, out, err = _run(capsys, "calibrate", counts_file, "--json", "--no-plot",
                          "--no-normalize",
                          "--grid", "n_components=" + ",".join(map(str, ranks)))
    report = json.loads(out)
    assert report["estimator"] == "LowRankDenoiser" and "calibrating LowRankDenoiser " in err
    assert report["best_params"] == {"n_components": int(raw.n_components_)}


def test_h5ad_denoise_normalises_by_default(counts_file, capsys):
    import anndata
    from sklearn.pipeline import make_pipeline

    from sklearn_n2s import LibrarySizeNormalizer, LowRankDenoiser

    code, _, err = _run(capsys, "denoise", counts_file, "o.h5ad", "--param", "n_components=3")
    assert code == 0, err
    counts = anndata.read_h5ad(counts_file).X
    model = make_pipeline(LibrarySizeNormalizer(1e4, empty_rows="zero"),
                          LowRankDenoiser(3, random_state=0)).fit(counts)
    result = anndata.read_h5ad("o.h5ad")
    np.testing.assert_allclose(result.layers["denoised"], model.transform(counts), rtol=1e-5)
    assert "LibrarySizeNormalizer + LowRankDenoiser(n_components=3)" in err


def test_pbmc_calibration_picks_the_readme_rank(folder, capsys):
    """The README's normalised pipeline picks rank 8 on scanpy's PBMC data; so does the
    command line (on raw counts it picked 2)."""
    sc = pytest.importorskip("scanpy")
    import anndata

    from sklearn_n2s.io import counts_from_log_normalized

    counts = counts_from_log_normalized(sc.datasets.pbmc68k_reduced())
    anndata.AnnData(counts.astype(np.float32)).write_h5ad(folder / "pbmc.h5ad")
    grid = ["--grid", "n_components=2,4,8,16,32", "--json", "--no-plot"]
    code, out, err = _run(capsys, "calibrate", "pbmc.h5ad", *grid)
    assert code == 0, err
    assert json.loads(out)["best_params"] == {"n_components": 8}


# ------------------------------------------------------------------------ item 10: polish
@pytest.mark.parametrize("grid, side", [(["--grid", "radius=1,2"], "largest"),
                                        (["--method", "gaussian", "--grid", "sigma=2,3,4"],
                                         "smallest")])
def test_pick_at_the_edge_warns_with_a_suggestion_that_works(folder, capsys, grid, side):
    code, _, err = _run(capsys, "calibrate", "in.png", *grid, "--no-plot")
    assert code == 0, err
    warning = [ln for ln in err.splitlines() if ln.startswith("n2s: warning") and "edge" in ln]
    assert len(warning) == 1 and side in warning[0]
    suggestion = re.search(r"(--grid \S+)", warning[0]).group(1)
    code, out, err = _run(capsys, "calibrate", "in.png", *grid[:-2],
                          *shlex.split(suggestion), "--no-plot")
    assert code == 0, err
    assert "edge" not in err  # the suggested grid brackets the best value


def test_an_interior_pick_does_not_warn(folder, capsys):
    code, out, err = _run(capsys, "calibrate", "in.png", "--grid", "radius=1,2,3,4",
                          "--no-plot")
    assert code == 0 and "warning" not in err


def test_flat_loss_warns_and_says_the_grid_is_in_the_input_units(folder, capsys):
    code, out, err = _run(capsys, "calibrate", "in.png", "--method", "wavelet",
                          "--grid", "sigma=0.02,0.05,0.1,0.2", "--no-plot")
    assert code == 0, err
    warning = [ln for ln in err.splitlines() if "flat" in ln]
    assert len(warning) == 1 and warning[0].startswith("n2s: warning")
    assert "uint8" in warning[0] and "estimated noise" in warning[0]
    code, _, err = _run(capsys, "calibrate", "in.png", "--method", "wavelet", "--no-plot")
    assert code == 0 and "flat" not in err


def test_tiff_layout_and_imagej_metadata_survive_denoising(folder, capsys):
    planar = np.random.default_rng(0).integers(0, 255, (3, 32, 32), dtype=np.uint8)
    tifffile.imwrite("planar.tif", planar, photometric="rgb", planarconfig="separate")
    code, _, err = _run(capsys, "denoise", "planar.tif", "out.tif", "--param", "radius=1")
    assert code == 0, err
    with tifffile.TiffFile("out.tif") as tif:
        assert tif.series[0].axes == "SYX" and tif.series[0].shape == (3, 32, 32)
    stack = np.random.default_rng(0).integers(0, 60000, (4, 32, 32), dtype=np.uint16)
    tifffile.imwrite("ij.tif", stack, imagej=True, resolution=(5.0, 5.0),
                     metadata={"spacing": 0.5, "unit": "um", "axes": "ZYX"})
    code, _, err = _run(capsys, "denoise", "ij.tif", "ij_out.tif", "--param", "radius=1")
    assert code == 0, err
    with tifffile.TiffFile("ij_out.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZYX"
        assert tif.imagej_metadata["spacing"] == 0.5 and tif.imagej_metadata["unit"] == "um"
        assert tif.pages[0].get_resolution() == pytest.approx((5.0, 5.0))


def test_param_suggestions_work(folder, capsys):
    code, _, err = _run(capsys, "denoise", "in.png", "o.png", "--param", "radius")
    line = _one_error_line(err)
    assert code == 1 and "1,2,3" not in line
    example = re.search(r"e\.g\. (\S+)", line).group(1)
    assert _run(capsys, "denoise", "in.png", "o.png", "--param", example)[0] == 0
    code, _, err = _run(capsys, "denoise", "in.png", "o.png", "--param", "radius=1,2,3")
    line = _one_error_line(err)
    assert code == 1 and "--grid radius=1,2,3" in line
    assert _run(capsys, "denoise", "in.png", "o.png", "--grid", "radius=1,2,3")[0] == 0


def test_messages_use_command_line_terms(folder, capsys):
    anndata = pytest.importorskip("anndata")
    adata = anndata.AnnData(np.ones((5, 4), np.float32))
    adata.layers["counts"] = np.ones((5, 4), np.float32)
    adata.write_h5ad("t.h5ad")
    code, _, err = _run(capsys, "calibrate", "t.h5ad", "--layer", "raw")
    line = _one_error_line(err)
    assert code == 1 and "--layer counts" in line and "--layer X" in line
    assert "layer=" not in line and "adata" not in line


def test_float_to_png_says_it_is_8_bit(folder, capsys):
    code, _, err = _run(capsys, "denoise", "in.npy", "o.png", "--method", "gaussian",
                        "--param", "sigma=1", "--output", "ordinary")
    assert code == 0, err
    assert any(ln.startswith("n2s: warning") and "8-bit" in ln for ln in err.splitlines())


def _thread_counts():
    from threadpoolctl import threadpool_info

    counts = {info["internal_api"]: info["num_threads"] for info in threadpool_info()}
    torch = sys.modules.get("torch")
    if torch is not None:
        counts["torch"] = torch.get_num_threads()
    return counts


@pytest.mark.parametrize("how", ["option", "environment"])
def test_threads_limit_blas_openmp_and_torch(capsys, monkeypatch, how):
    pytest.importorskip("torch")
    import scipy.linalg  # noqa: F401  (its BLAS loaded, so there is something to limit)

    seen = {}

    def record(args, report):
        seen.update(_thread_counts())
        return 0

    monkeypatch.setattr(cli, "cmd_demo", record)
    before = _thread_counts()
    if how == "option":
        code, _, err = _run(capsys, "--threads", "1", "demo")
    else:
        monkeypatch.setenv("N2S_THREADS", "1")
        code, _, err = _run(capsys, "demo")
    assert code == 0, err
    assert seen and set(seen.values()) == {1}, seen
    assert _thread_counts() == before  # given back after the command


def test_threads_are_documented_and_checked(capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--threads" in out and "N2S_THREADS" in out
    with pytest.raises(SystemExit) as info:
        main(["--threads", "0", "demo"])
    assert info.value.code == 2 and "--threads" in capsys.readouterr().err
    monkeypatch.setenv("N2S_THREADS", "many")
    code, _, err = _run(capsys, "demo")
    assert code == 1 and "N2S_THREADS" in _one_error_line(err)
