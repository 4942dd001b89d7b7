"""``n2s --method auto`` (the default for images): every family calibrated, the lowest
estimated error of the output wins; the table, the JSON and the output say which family."""

import json

import numpy as np
import pytest
from skimage import data
from skimage.util import img_as_ubyte, random_noise

from sklearn_n2s import AutoDenoiser
from sklearn_n2s.cli._main import build_parser, main, resolve_method
from sklearn_n2s.io import restore_dtype
from sklearn_n2s.model_selection import _auto

iio = pytest.importorskip("imageio.v3")
tifffile = pytest.importorskip("tifffile")


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err):
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("n2s: error")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def classic_families():
    """The command line's wiring, checked on the three fast families (which families
    AutoDenoiser finds is tested in tests/model_selection/test_auto.py)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_auto, "available_families",
                   lambda: ["DonutMedian", "JInvariantGaussian", "JInvariantWavelet"])
        yield


@pytest.fixture(scope="module")
def noisy_png(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auto")
    camera = data.camera()[128:384:3, 128:384:3]  # 86 x 86
    image = img_as_ubyte(random_noise(camera, var=0.01, rng=0))
    iio.imwrite(folder / "in.png", image)
    return folder, image


@pytest.fixture(scope="module")
def expected(noisy_png):
    _, image = noisy_png
    return AutoDenoiser().fit(image[np.newaxis])


def test_calibrate_auto_json_names_the_family_of_every_row(noisy_png, expected, capsys,
                                                           monkeypatch):
    folder, _ = noisy_png
    monkeypatch.chdir(folder)
    code, out, err = _run(capsys, "calibrate", "in.png", "--method", "auto", "--json",
                          "--no-plot")
    assert code == 0, err
    report = json.loads(out)
    assert report["best_family"] == expected.best_family_
    assert report["best_params"] == expected.best_params_
    assert report["blend_weights"] == {expected.best_family_: 1.0}  # 9 % clipped: no mix
    rows = report["results"]
    assert [r["family"] for r in rows] == list(expected.cv_results_["family"])
    # losses in the file's units: uint8 levels squared
    # the default criterion ranks the outputs by their estimated error against clean
    np.testing.assert_allclose([r["estimated_risk"] for r in rows],
                               expected.cv_results_["estimated_risk"] * 255.0**2)
    assert [r["chosen"] for r in rows].index(True) == expected.best_index_
    assert len({r["family"] for r in rows}) >= 3


def test_auto_is_the_default_for_images_and_plots_every_family(noisy_png, expected, capsys,
                                                               monkeypatch):
    folder, _ = noisy_png
    monkeypatch.chdir(folder)
    code, out, err = _run(capsys, "calibrate", "in.png", "--plot", "families.png")
    assert code == 0, err
    assert "every family" in err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["family", "parameters"]
    marked = [ln for ln in lines if ln.startswith("* ")]
    assert len(marked) == 1 and expected.best_family_ in marked[0]
    assert f"chosen: {expected.best_family_}" in out
    assert (folder / "families.png").read_bytes()[:4] == b"\x89PNG"


def test_denoise_default_is_the_chosen_family_output(noisy_png, expected, capsys, tmp_path):
    folder, image = noisy_png
    code, _, err = _run(capsys, "denoise", folder / "in.png", tmp_path / "out.png")
    assert code == 0, err
    assert f"chosen: {expected.best_family_}" in err
    assert expected.best_family_ in err.splitlines()[-1]  # "wrote ... JInvariant...(...)"
    out = iio.imread(tmp_path / "out.png")
    want = restore_dtype(expected.transform(image[np.newaxis])[0], np.uint8)
    np.testing.assert_array_equal(out, want)


def test_denoise_auto_writes_the_mix_of_two_families_and_says_so(capsys, tmp_path):
    """Unclipped data: AutoDenoiser mixes its two best families, and the command line
    writes that mix, not the best family alone."""
    rng = np.random.default_rng(3)
    camera = data.camera()[128:384:3, 128:384:3] / 255.0
    image = np.round(255 * (0.2 + 0.6 * camera + rng.normal(0, 0.05, camera.shape)))
    image = image.astype(np.uint8)
    iio.imwrite(tmp_path / "in.png", image)
    expected = AutoDenoiser().fit(image[np.newaxis])
    assert len(expected.blend_weights_) == 2
    code, out, err = _run(capsys, "calibrate", tmp_path / "in.png", "--json", "--no-plot")
    assert code == 0, err
    assert json.loads(out)["blend_weights"] == pytest.approx(expected.blend_weights_)
    code, _, err = _run(capsys, "denoise", tmp_path / "in.png", tmp_path / "out.png")
    assert code == 0, err
    want = restore_dtype(expected.transform(image[np.newaxis])[0], np.uint8)
    np.testing.assert_array_equal(iio.imread(tmp_path / "out.png"), want)
    first, second = expected.blend_weights_
    assert f"mixed {expected.blend_weights_[first]:.2f}" in err
    assert second in err.splitlines()[-1]


def test_output_auto_writes_the_lowest_risk_output_for_the_classics_and_the_net(
        noisy_png, capsys, tmp_path):
    folder, image = noisy_png
    code, _, err = _run(capsys, "denoise", folder / "in.png", tmp_path / "g.png",
                        "--method", "gaussian", "--param", "sigma=1.5", "--output", "auto")
    assert code == 0, err
    from sklearn_n2s import JInvariantGaussian

    est = JInvariantGaussian(sigma=1.5, output="auto", spatial_ndim=2).fit(image)
    np.testing.assert_array_equal(iio.imread(tmp_path / "g.png"),
                                  restore_dtype(est.transform(image), np.uint8))
    # the net's own default: the posterior or the one pass by its estimated risk
    code, _, err = _run(capsys, "denoise", folder / "in.png", tmp_path / "n.png",
                        "--method", "net", "--output", "auto", "--param", "max_steps=2")
    assert code == 0, err
    assert iio.imread(tmp_path / "n.png").dtype == np.uint8


def test_a_family_parameter_keeps_the_median_default(noisy_png, capsys, tmp_path):
    """--param/--grid name one family's parameters: without --method, the median's, as
    before auto existed."""
    folder, _ = noisy_png
    code, _, err = _run(capsys, "denoise", folder / "in.png", tmp_path / "o.png",
                        "--param", "radius=1")
    assert code == 0, err
    assert "DonutMedian(radius=1)" in err
    args = build_parser().parse_args(["calibrate", "x.png", "--grid", "sigma=1,2"])
    assert resolve_method(args, "x.png") == "median"
    args = build_parser().parse_args(["calibrate", "x.png"])
    assert resolve_method(args, "x.png") == "auto"
    args = build_parser().parse_args(["denoise", "a.zarr", "b.zarr"])
    assert resolve_method(args, "a.zarr") == "median"


@pytest.mark.parametrize("extra, words", [
    (["--grid", "radius=1,2"], ["--method auto", "radius", "--method median"]),
    (["--param", "sigma=1"], ["--method auto", "sigma"]),
])
def test_auto_with_one_family_parameters_is_refused_in_one_line(noisy_png, capsys, tmp_path,
                                                                extra, words):
    folder, _ = noisy_png
    code, _, err = _run(capsys, "denoise", folder / "in.png", tmp_path / "o.png",
                        "--method", "auto", *extra)
    line = _error_line(err)
    assert code == 1
    for word in words:
        assert word in line, line
    assert not (tmp_path / "o.png").exists()


def test_auto_on_a_zarr_store_is_refused(tmp_path, capsys):
    code, _, err = _run(capsys, "denoise", tmp_path / "in.zarr", tmp_path / "out.zarr",
                        "--method", "auto")
    assert code == 1 and "--method auto does not apply" in _error_line(err)
    code, _, err = _run(capsys, "denoise", tmp_path / "in.zarr", tmp_path / "out.zarr",
                        "--method", "gaussian", "--output", "auto")
    assert code == 1 and "--output auto does not apply to a .zarr store" in _error_line(err)


def test_auto_on_a_uint16_volume(tmp_path, capsys):
    rng = np.random.default_rng(0)
    blobs = data.binary_blobs(length=40, n_dim=3, volume_fraction=0.4, rng=1)
    counts = rng.poisson(50.0 + 400.0 * blobs[:12]).astype(np.uint16)
    np.save(tmp_path / "vol.npy", counts)
    code, out, err = _run(capsys, "denoise", tmp_path / "vol.npy", tmp_path / "out.npy",
                          "--volume", "--method", "auto", "-v")
    assert code == 0, err
    result = np.load(tmp_path / "out.npy")
    assert result.dtype == np.uint16 and result.shape == counts.shape
    auto = AutoDenoiser().fit(counts[np.newaxis])
    np.testing.assert_array_equal(
        result, restore_dtype(auto.transform(counts[np.newaxis])[0], np.uint16))
    assert "family" in out  # -v prints the table
