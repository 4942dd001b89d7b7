"""Image file I/O: formats, shapes, and the dtype/range policy of sklearn_n2s.io."""

import os

import numpy as np
import pytest
from skimage.util import img_as_float

from sklearn_n2s.io import (
    ImageFileError,
    MissingFeatureError,
    as_stack,
    join_alpha,
    read_image,
    restore_dtype,
    split_alpha,
    write_image,
)
from sklearn_n2s.io import _images as n2s_io

pytest.importorskip("tifffile")
pytest.importorskip("imageio")

RNG = np.random.default_rng(0)


def _uint8(shape):
    return RNG.integers(0, 256, shape, dtype=np.uint8)


# ------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("n_pages", [1, 3, 4, 5])  # 3 and 4 once looked like RGB planes
def test_tiff_stack_round_trip_keeps_pages(tmp_path, n_pages):
    stack = _uint8((n_pages, 12, 10))
    write_image(tmp_path / "s.tif", stack)
    loaded = read_image(tmp_path / "s.tif")
    assert loaded.channel_axis is None
    np.testing.assert_array_equal(loaded.array.reshape(stack.shape), stack)
    assert as_stack(loaded.array).shape[0] == n_pages


def test_tiff_rgb_is_read_with_channels_last(tmp_path):
    image = _uint8((9, 11, 3))
    write_image(tmp_path / "c.tiff", image, channel_axis=-1)
    loaded = read_image(tmp_path / "c.tiff")
    assert loaded.channel_axis == -1
    np.testing.assert_array_equal(loaded.array, image)


def test_tiff_planar_rgb_is_moved_to_channels_last(tmp_path):
    import tifffile

    planar = _uint8((3, 8, 9))
    tifffile.imwrite(tmp_path / "p.tif", planar, photometric="rgb", planarconfig="separate")
    loaded = read_image(tmp_path / "p.tif")
    assert loaded.channel_axis == -1
    np.testing.assert_array_equal(loaded.array, np.moveaxis(planar, 0, -1))


def test_tiff_float_volume_round_trip_is_exact(tmp_path):
    volume = RNG.normal(size=(4, 6, 7)).astype(np.float32)
    write_image(tmp_path / "v.tif", volume)
    loaded = read_image(tmp_path / "v.tif")
    assert loaded.array.dtype == np.float32
    np.testing.assert_array_equal(loaded.array, volume)
    assert as_stack(loaded.array, volume=True).shape == (1, 4, 6, 7)


@pytest.mark.parametrize("shape", [(10, 12), (10, 12, 3), (10, 12, 4)])
def test_png_round_trip(tmp_path, shape):
    image = _uint8(shape)
    write_image(tmp_path / "x.png", image, channel_axis=-1 if len(shape) == 3 else None)
    loaded = read_image(tmp_path / "x.png")
    np.testing.assert_array_equal(loaded.array, image)
    assert loaded.channel_axis == (-1 if len(shape) == 3 else None)


def test_png_16_bit_round_trip(tmp_path):
    image = RNG.integers(0, 65536, (10, 12), dtype=np.uint16)
    write_image(tmp_path / "x16.png", image)
    loaded = read_image(tmp_path / "x16.png")
    assert loaded.array.dtype == np.uint16
    np.testing.assert_array_equal(loaded.array, image)


def test_jpeg_is_8_bit_and_close(tmp_path):
    image = np.tile(np.linspace(0, 1, 32), (32, 1))
    with pytest.warns(UserWarning, match="8-bit"):
        write_image(tmp_path / "x.jpg", image)
    loaded = read_image(tmp_path / "x.jpg")
    assert loaded.array.dtype == np.uint8
    assert np.abs(loaded.array / 255.0 - image).max() < 0.05


def test_npy_round_trip_and_channel_flag(tmp_path):
    image = RNG.normal(size=(5, 6, 3))
    write_image(tmp_path / "a.npy", image)
    assert read_image(tmp_path / "a.npy").channel_axis is None  # .npy: only when asked
    loaded = read_image(tmp_path / "a.npy", channel_axis=-1)
    assert loaded.channel_axis == -1
    np.testing.assert_array_equal(loaded.array, image)


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("shape, channel_axis, volume, expected", [
    ((20,), None, False, (1, 20)),
    ((8, 9), None, False, (1, 8, 9)),
    ((3, 8, 9), None, False, (3, 8, 9)),
    ((3, 8, 9), None, True, (1, 3, 8, 9)),
    ((2, 3, 8, 9), None, True, (2, 3, 8, 9)),
    ((8, 9, 3), -1, False, (1, 8, 9, 3)),
    ((4, 8, 9, 3), -1, False, (4, 8, 9, 3)),
])
def test_as_stack_shapes(shape, channel_axis, volume, expected):
    array = np.zeros(shape)
    X = as_stack(array, channel_axis=channel_axis, volume=volume)
    assert X.shape == expected
    assert np.shares_memory(X, array)  # a view: no copy, caller's array untouched


@pytest.mark.parametrize("shape, volume, words", [
    ((2, 3, 8, 9), False, "--volume"),
    ((8, 9), True, "--volume needs 3-D"),
])
def test_as_stack_refuses_ambiguous_shapes(shape, volume, words):
    with pytest.raises(ImageFileError, match=words):
        as_stack(np.zeros(shape), volume=volume)


def test_alpha_is_split_and_joined_back():
    rgba = _uint8((4, 5, 4))
    colour, alpha = split_alpha(rgba, -1)
    assert colour.shape == (4, 5, 3) and alpha.shape == (4, 5, 1)
    np.testing.assert_array_equal(join_alpha(colour, alpha), rgba)
    assert split_alpha(rgba[..., :3], -1)[1] is None
    assert split_alpha(rgba, None)[1] is None


# ------------------------------------------------------------------------------- dtype
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32])
def test_restore_dtype_inverts_img_as_float_exactly(dtype):
    info = np.iinfo(dtype)
    values = np.array([info.min + 1, info.min + 2, 0, 1, info.max - 1, info.max], dtype=dtype)
    np.testing.assert_array_equal(restore_dtype(img_as_float(values), dtype), values)
    # img_as_float sends a signed dtype's minimum and minimum + 1 both to -1.
    lowest = restore_dtype(img_as_float(np.array([info.min], dtype=dtype)), dtype)
    assert lowest[0] == (info.min if info.min == 0 else info.min + 1)


def test_restore_dtype_rounds_and_clips_integers():
    out = restore_dtype(np.array([-0.2, 0.4 / 255, 0.6 / 255, 1.3]), np.uint8)
    np.testing.assert_array_equal(out, [0, 0, 1, 255])


def test_restore_dtype_keeps_floats_unclipped():
    values = np.array([-0.5, 2.0])
    out32 = restore_dtype(values, np.float32)
    assert out32.dtype == np.float32
    np.testing.assert_array_equal(out32, values.astype(np.float32))
    assert restore_dtype(values, np.float16).dtype == np.float32
    assert restore_dtype(values, np.float64).dtype == np.float64


def test_restore_dtype_bool_thresholds():
    np.testing.assert_array_equal(restore_dtype(np.array([0.2, 0.7]), bool), [False, True])


def test_float_in_unit_range_is_written_as_8_bit_png(tmp_path):
    image = np.array([[0.0, 0.5], [1.0000001, -1e-7]])
    with pytest.warns(UserWarning, match="8-bit"):
        write_image(tmp_path / "f.png", image)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png").array, [[0, 128], [255, 0]])


# ------------------------------------------------------------------------------ errors
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_image(tmp_path / "missing.tif")


@pytest.mark.parametrize("name", ["notes.txt", "noext"])
def test_unsupported_suffix_names_the_supported_ones(tmp_path, name):
    (tmp_path / name).write_text("x")
    with pytest.raises(ImageFileError, match=r"unsupported file type.*\.tif"):
        read_image(tmp_path / name)


@pytest.mark.parametrize("name", ["bad.tif", "bad.png", "bad.npy"])
def test_corrupt_file_is_one_line_naming_the_file(tmp_path, name):
    (tmp_path / name).write_text("this is not an image")
    with pytest.raises(ImageFileError, match="could not read") as info:
        read_image(tmp_path / name)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_directory_is_refused(tmp_path):
    (tmp_path / "dir.tif").mkdir()
    with pytest.raises(ImageFileError, match="directory"):
        read_image(tmp_path / "dir.tif")


def test_non_numeric_npy_is_refused(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(ImageFileError, match="<U1"):
        read_image(tmp_path / "s.npy")


def test_float_out_of_range_to_png_is_refused(tmp_path):
    with pytest.raises(ImageFileError, match=r"outside \[0, 1\].*\.tif or \.npy"):
        write_image(tmp_path / "f.png", np.array([[0.0, 3.0]]))


def test_stack_to_png_is_refused(tmp_path):
    with pytest.raises(ImageFileError, match="one 2-D image"):
        write_image(tmp_path / "s.png", np.zeros((3, 4, 4), np.uint8))


def test_missing_output_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        write_image(tmp_path / "nope" / "x.npy", np.zeros((2, 2)))


def test_missing_optional_module_is_one_clear_line():
    with pytest.raises(MissingFeatureError, match="sklearn_n2s.no_such_module") as info:
        n2s_io.optional_module("no_such_module", "testing")
    assert "\n" not in str(info.value)


def test_h5ad_round_trip_and_errors(tmp_path):
    anndata = pytest.importorskip("anndata")
    adata = anndata.AnnData(RNG.poisson(2.0, (6, 4)).astype(np.float32))
    n2s_io.write_h5ad(adata, tmp_path / "t.h5ad")
    np.testing.assert_array_equal(n2s_io.read_h5ad(tmp_path / "t.h5ad").X, adata.X)
    with pytest.raises(FileNotFoundError, match="no such file"):
        n2s_io.read_h5ad(tmp_path / "missing.h5ad")
    (tmp_path / "bad.h5ad").write_text("not hdf5")
    with pytest.raises(ImageFileError, match="could not read .*bad.h5ad"):
        n2s_io.read_h5ad(tmp_path / "bad.h5ad")


@pytest.mark.parametrize("suffix, shape", [(".tif", (3, 6, 6)), (".npy", (3, 6, 6)),
                                           (".png", (6, 7))])
def test_reading_and_denoising_never_modify_the_file(tmp_path, suffix, shape):
    """The read array is the caller's own: writing into it, or denoising and writing the
    result next to the input, leaves the input file on disk as it was."""
    from sklearn_n2s import DonutMedian

    stack = _uint8(shape)
    path = write_image(tmp_path / f"in{suffix}", stack)
    before = path.read_bytes()
    loaded = read_image(path)
    assert not isinstance(loaded.array, np.memmap)  # not a view of the file
    X = as_stack(loaded.array)
    denoised = DonutMedian(radius=1).fit(X).transform(X)
    write_image(tmp_path / f"out{suffix}",
                restore_dtype(denoised, stack.dtype).reshape(loaded.array.shape))
    loaded.array[...] = 0
    assert path.read_bytes() == before
    np.testing.assert_array_equal(read_image(path).array, stack)  # what the disk holds
    out = read_image(tmp_path / f"out{suffix}").array
    np.testing.assert_array_equal(out.reshape(X.shape), restore_dtype(denoised, np.uint8))


# -------------------------------------------------------- metadata, warnings, safe writes
def test_tiff_keeps_planar_layout_and_imagej_metadata(tmp_path):
    import tifffile

    planar = _uint8((3, 32, 32))
    tifffile.imwrite(tmp_path / "p.tif", planar, photometric="rgb", planarconfig="separate")
    loaded = read_image(tmp_path / "p.tif")
    write_image(tmp_path / "p_out.tif", loaded.array, channel_axis=-1,
                metadata=loaded.metadata)
    with tifffile.TiffFile(tmp_path / "p_out.tif") as tif:
        assert tif.series[0].axes == "SYX" and tif.series[0].shape == (3, 32, 32)
        np.testing.assert_array_equal(tif.asarray(), planar)

    stack = RNG.integers(0, 60000, (5, 16, 16), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", stack, imagej=True, resolution=(5.0, 4.0),
                     metadata={"spacing": 0.5, "unit": "um", "axes": "ZYX"})
    loaded = read_image(tmp_path / "ij.tif")
    write_image(tmp_path / "ij_out.tif", loaded.array, metadata=loaded.metadata)
    with tifffile.TiffFile(tmp_path / "ij_out.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZYX"
        assert tif.imagej_metadata["spacing"] == 0.5 and tif.imagej_metadata["unit"] == "um"
        assert tif.pages[0].get_resolution() == pytest.approx((5.0, 4.0))
        np.testing.assert_array_equal(tif.asarray(), stack)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_float_to_8_bit_raster_says_so(tmp_path, suffix):
    with pytest.warns(UserWarning, match="8-bit"):
        write_image(tmp_path / f"f{suffix}", np.full((4, 4), 0.5))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_image(tmp_path / "u.png", np.zeros((4, 4), np.uint8))  # no conversion: silent


class _Interrupted(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".png"])
def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, suffix):
    target = tmp_path / f"out{suffix}"
    target.write_bytes(b"previous result")

    def half_written(path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"half")
        raise _Interrupted

    monkeypatch.setattr(np, "save", half_written)
    import imageio.v3
    import tifffile

    monkeypatch.setattr(tifffile, "imwrite", half_written)
    monkeypatch.setattr(imageio.v3, "imwrite", half_written)
    with pytest.raises(_Interrupted):
        write_image(target, np.zeros((4, 4), np.uint8))
    assert target.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "t.txt"
    with n2s_io.atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".txt"
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), n2s_io.atomic_output(target) as tmp:
        tmp.write_text("broken")
        raise RuntimeError
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]
    # a directory (a zarr store) is replaced as a whole
    store = tmp_path / "s.zarr"
    (store / "old").mkdir(parents=True)
    with n2s_io.atomic_output(store) as tmp:
        (tmp / "new").mkdir(parents=True)
    assert [p.name for p in store.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr", "t.txt"]


def test_same_file_sees_through_spellings_and_links(tmp_path):
    a = tmp_path / "a.npy"
    np.save(a, np.zeros(3))
    (tmp_path / "sym.npy").symlink_to(a)
    os.link(a, tmp_path / "hard.npy")
    for other in (a, tmp_path / "." / "a.npy", tmp_path / "sym.npy", tmp_path / "hard.npy"):
        assert n2s_io.same_file(a, other)
    assert not n2s_io.same_file(a, tmp_path / "missing.npy")
    np.save(tmp_path / "b.npy", np.zeros(3))
    assert not n2s_io.same_file(a, tmp_path / "b.npy")
