"""BioImage Model Zoo export: the package passes bioimageio.core's model test and gives
back the net's J-invariant output (skipped without the ``bmz`` extra)."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("skorch")

from sklearn_n2s.neural import (
    BabyUnet,
    BlindSpotUnet,
    DilatedBlindSpotNet,
    N2SNet,
    export_bmz,
    load_bmz,
)
from sklearn_n2s.neural._bmz import _bioimageio
from sklearn_n2s.utils._validation import intensity_scale


@pytest.fixture(scope="module")
def bmz():
    pytest.importorskip("bioimageio.core")
    try:
        _bioimageio()
    except ImportError as error:  # e.g. pydantic too new for bioimageio.spec
        pytest.skip(str(error))
    import bioimageio.core

    return bioimageio.core


def _reference(net, X):
    """The net's J-invariant output in X's units, unrounded (float path)."""
    k = intensity_scale(X.dtype)
    return net.invariant_transform(X.astype(np.float64) * k) / k


@pytest.fixture(scope="module")
def net_2d():
    # uint16 Poisson counts, far from 0..1: the package must work in these units.
    X = np.random.default_rng(0).poisson(120, (2, 24, 24)).astype(np.uint16)
    net = N2SNet(BlindSpotUnet, module__width=2, module__depth=2, max_steps=1,
                 random_state=0, output="ordinary").fit(X)
    return net, X


def test_export_2d_passes_model_test_and_matches_net(bmz, net_2d, tmp_path):
    net, X = net_2d
    path = export_bmz(net, tmp_path / "n2s.zip", authors="Test", test_input=X[0])
    summary = bmz.test_model(path, devices=["cpu"])
    assert summary.status == "passed", summary.format()
    for weight_format in ("pytorch_state_dict", "torchscript"):
        model = load_bmz(path, weight_format=weight_format, devices=["cpu"])
        # The test image and a new one of another (odd, non-square) shape.
        new = np.random.default_rng(1).poisson(120, (1, 19, 30)).astype(np.uint16)
        for image in (X[:1], new):
            out = model.predict(image)
            assert out.shape == image.shape and out.dtype == np.float32
            np.testing.assert_allclose(out, _reference(net, image), rtol=0, atol=1e-4)
            # The net's own integer output is the package's, rounded.
            assert np.abs(out - net.invariant_transform(image)).max() <= 0.5 + 1e-4


def test_package_output_is_j_invariant(bmz, net_2d, tmp_path):
    net, X = net_2d
    path = export_bmz(net, tmp_path / "n2s.zip", test_input=X[0],
                      weight_formats=("torchscript",))
    model = load_bmz(path, devices=["cpu"])
    pixels = [(0, 0), (0, 23), (12, 0), (23, 23), (7, 15)]
    stack = np.repeat(X[:1], len(pixels), axis=0)
    probed = stack.copy()
    for i, (r, c) in enumerate(pixels):
        probed[i, r, c] = 60000 if stack[i, r, c] < 30000 else 0
    before, after = model.predict(stack), model.predict(probed)
    for i, (r, c) in enumerate(pixels):
        assert abs(after[i, r, c] - before[i, r, c]) < 1e-3
        # ... while the perturbation does reach the neighbours.
    assert np.abs(after - before).max() > 1e-2


def test_export_3d_folder(bmz, tmp_path):
    rng = np.random.default_rng(2)
    X = (rng.normal(5.0, 0.5, (1, 8, 12, 10)) + 300).astype(np.float32)
    net = N2SNet(DilatedBlindSpotNet, module__width=2, module__depth=1, max_steps=1,
                 random_state=0, output="ordinary").fit(X)
    path = net.export_bmz(tmp_path / "pkg", name="N2S dbsn 3D", test_input=X)
    assert (path / "rdf.yaml").is_file() and (path / "README.md").is_file()
    summary = bmz.test_model(path / "rdf.yaml", devices=["cpu"])
    assert summary.status == "passed", summary.format()
    new = (rng.normal(5.0, 0.5, (1, 9, 7, 13)) + 300).astype(np.float32)
    out = load_bmz(path, devices=["cpu"]).predict(new)
    np.testing.assert_allclose(out, _reference(net, new), rtol=0, atol=1e-4)


def test_refuses_masked_module_and_bad_input(net_2d, tmp_path):
    X = np.random.default_rng(0).normal(size=(2, 16, 16)).astype(np.float32)
    baby = N2SNet(BabyUnet, module__width=2, max_steps=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="blind-spot module.*masked passes"):
        export_bmz(baby, tmp_path / "baby.zip")
    net, _ = net_2d
    with pytest.raises(ValueError, match="test_input must be one image"):
        export_bmz(net, tmp_path / "bad.zip", test_input=np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="weight_formats"):
        export_bmz(net, tmp_path / "bad.zip", weight_formats=("onnx",))
