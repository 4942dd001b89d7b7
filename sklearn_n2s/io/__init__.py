"""Reading and writing what instruments and pipelines produce: image files (TIFF, PNG,
JPEG, ``.npy``), zarr stores (:mod:`sklearn_n2s.io._zarr`, needs dask and zarr) and
AnnData count tables (:mod:`sklearn_n2s.io._anndata`, needs anndata).

The zarr and AnnData functions are imported on first use, so that this package works
without those extras.
"""

from ._images import (
    ImageFileError,
    MissingFeatureError,
    as_stack,
    file_format,
    is_chunked_path,
    is_table_path,
    join_alpha,
    read_image,
    restore_dtype,
    split_alpha,
    write_image,
)

_LAZY = {
    "denoise_zarr": "_zarr",
    "write_denoised": "_zarr",
    "denoise_anndata": "_anndata",
    "get_counts": "_anndata",
    "counts_from_log_normalized": "_anndata",
}

__all__ = [
    "ImageFileError",
    "MissingFeatureError",
    "as_stack",
    "counts_from_log_normalized",
    "denoise_anndata",
    "denoise_zarr",
    "file_format",
    "get_counts",
    "is_chunked_path",
    "is_table_path",
    "join_alpha",
    "read_image",
    "restore_dtype",
    "split_alpha",
    "write_denoised",
    "write_image",
]


def __getattr__(name):
    # zarr/dask and anndata are optional extras: import their modules when asked for.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
