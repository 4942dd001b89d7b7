"""The demo: it calibrates on the noisy image alone, agrees with the truth, writes PNGs."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from sklearn_n2s.cli._demo import DENOISERS, noisy_camera, run_demo

iio = pytest.importorskip("imageio.v3")
pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    stream = io.StringIO()
    summary = run_demo(out, size=96, quiet=True, stream=stream)
    return out, summary, stream.getvalue()


def test_writes_valid_pngs(demo):
    out, summary, _ = demo
    names = {"noisy", "clean", "calibration", "comparison"} | {
        f"denoised_{name}" for name, *_ in DENOISERS}
    assert {p.stem for p in out.glob("*.png")} == names
    for path in out.glob("*.png"):
        assert path.read_bytes()[:8] == PNG_MAGIC
        image = iio.imread(path)
        assert image.size > 0
    assert iio.imread(out / "denoised_median.png").shape == (96, 96)
    assert iio.imread(out / "denoised_median.png").dtype == np.uint8
    assert sorted(summary["files"]) == sorted(str(p) for p in out.glob("*.png"))


def test_tables_mark_the_chosen_row(demo):
    _, summary, text = demo
    for name, estimator, param, values in DENOISERS:
        assert type(estimator).__name__ in text
        rows = summary[name]["rows"]
        assert [r[param] for r in rows] == values
        losses = [r["loss"] for r in rows]
        chosen = values[int(np.argmin(losses))]
        assert summary[name]["best_params"] == {param: chosen}
    marked = [ln for ln in text.splitlines() if ln.startswith("* ")]
    assert len(marked) == len(DENOISERS)
    assert text.count("PSNR invariant") == len(DENOISERS)


def test_choice_is_close_to_the_ground_truth_and_denoises(demo):
    _, summary, _ = demo
    clean, noisy = noisy_camera(size=96)
    noisy_psnr = 10 * np.log10(1 / np.mean((noisy - clean) ** 2))
    for name, *_ in DENOISERS:
        rows = summary[name]["rows"]
        chosen = int(np.argmin([r["loss"] for r in rows]))
        best_invariant = max(r["psnr_invariant"] for r in rows)
        assert rows[chosen]["psnr_invariant"] > best_invariant - 0.5, name
        assert rows[chosen]["psnr_transform"] > noisy_psnr + 2, name


def test_noise_is_fixed_by_the_seed():
    a = noisy_camera(size=32, seed=3)[1]
    np.testing.assert_array_equal(a, noisy_camera(size=32, seed=3)[1])
    assert not np.array_equal(a, noisy_camera(size=32, seed=4)[1])
    with pytest.raises(ValueError, match="size"):
        noisy_camera(size=4)


@pytest.mark.parametrize("command", [["-m", "sklearn_n2s.cli", "demo"]])
def test_demo_from_the_command_line(tmp_path, command):
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, *command, "--out", "out", "--size", "64"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "DonutMedian" in result.stdout and "chosen" in result.stdout
    assert (tmp_path / "out" / "calibration.png").read_bytes()[:8] == PNG_MAGIC
