"""Root pytest configuration: skip the doctests of modules whose optional extra is missing.

``pytest`` collects the doctests of every module of the package; a module that needs
torch, dask, zarr, anndata or matplotlib cannot even be imported without it, and the
``[all]`` extra is what the test command installs. Without an extra its doctests are
left out rather than reported as errors.
"""

import importlib.util

_NEEDS = {
    "sklearn_n2s/neural": ("torch", "skorch"),
    "sklearn_n2s/image/_blockwise.py": ("dask",),
    "sklearn_n2s/blockwise/_calibration.py": ("dask",),
    "sklearn_n2s/io/_zarr.py": ("dask", "zarr"),
    "sklearn_n2s/io/_anndata.py": ("anndata",),
    "sklearn_n2s/plotting.py": ("matplotlib",),
    "sklearn_n2s/napari/_widget.py": ("napari", "magicgui", "matplotlib"),
}

collect_ignore = [
    path for path, modules in _NEEDS.items()
    if any(importlib.util.find_spec(m) is None for m in modules)
]
