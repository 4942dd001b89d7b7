"""AnnData in and out (optional dependency: ``pip install anndata``).

Following scanpy's conventions: raw counts are read from ``adata.layers['counts']`` when
that layer exists (else from ``adata.X``), the denoised matrix is written to
``adata.layers['denoised']``, the parameters to ``adata.uns['denoised']``, the object
is modified in place and ``None`` returned, or a modified copy returned with
``copy=True``.
"""

from sklearn.base import clone

from ..utils._table_validation import check_dense_size

DEFAULT_COUNTS_LAYER = "counts"


def _check_anndata(adata):
    try:
        import anndata
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The AnnData helpers need the optional dependency anndata: "
            "pip install 'sklearn_n2s[single-cell]'."
        ) from exc
    if not isinstance(adata, anndata.AnnData):
        raise TypeError(f"expected an anndata.AnnData, got {type(adata).__name__}.")


def _resolve_layer(adata, layer):
    if layer is None:
        return DEFAULT_COUNTS_LAYER if DEFAULT_COUNTS_LAYER in adata.layers else "X"
    return layer


def get_counts(adata, layer=None):
    """The count matrix of ``adata``: ``layers[layer]``, or ``X`` for ``layer='X'``.

    With ``layer=None``, ``layers['counts']`` if present, else ``X``. The matrix is
    returned as stored (not copied): do not modify it.

    Parameters
    ----------
    adata : anndata.AnnData
        The annotated data matrix (cells in rows, genes in columns).
    layer : str or None, default=None
        A key of ``adata.layers``, ``'X'`` for ``adata.X``, or None (see above).

    Returns
    -------
    counts : ndarray or sparse matrix of shape (n_obs, n_vars)
        The stored matrix itself.

    Raises
    ------
    ValueError
        When ``layer`` is not a layer of ``adata``.

    Examples
    --------
    >>> import numpy as np, anndata
    >>> from sklearn_n2s.io import get_counts
    >>> adata = anndata.AnnData(np.ones((3, 2)))
    >>> adata.layers["counts"] = np.full((3, 2), 5.0)
    >>> float(get_counts(adata)[0, 0]), float(get_counts(adata, "X")[0, 0])
    (5.0, 1.0)
    """
    _check_anndata(adata)
    layer = _resolve_layer(adata, layer)
    if layer == "X":
        return adata.X
    if layer not in adata.layers:
        raise ValueError(
            f"adata has no layer {layer!r}; its layers are {sorted(adata.layers)} "
            "(use layer='X' for adata.X)."
        )
    return adata.layers[layer]


def denoise_anndata(adata, estimator, *, layer=None, key_added="denoised", fit=True,
                    copy=False, output_file=None, chunk_rows=None):
    """Denoise the counts of ``adata`` with ``estimator`` and store the result as a layer.

    Parameters
    ----------
    adata : anndata.AnnData
        The annotated data matrix whose counts are denoised.
    estimator : estimator
        A table denoiser (or a fitted one with ``fit=False``), e.g. a
        :class:`~sklearn_n2s.table.LowRankDenoiser` or the ``best_estimator_`` of a
        search. With ``fit=True`` a clone is fitted on the counts.
    layer : str or None, default=None
        Where the counts are read, see :func:`get_counts`.
    key_added : str, default='denoised'
        Layer that receives the denoised matrix; ``adata.uns[key_added]`` records the
        estimator and the source layer.
    fit : bool, default=True
        Fit a clone of ``estimator`` on the counts; False uses ``estimator`` as fitted.
    copy : bool, default=False
        Work on a copy and return it; otherwise modify ``adata`` and return None.
        Ignored for a backed ``adata`` (which is never modified).
    output_file : str or Path or None, default=None
        Backed ``adata`` only (``anndata.read_h5ad(path, backed='r')``), and then
        required: the new ``.h5ad`` file written. It is the input file copied on disk
        with the layer ``key_added`` added, written in blocks of ``chunk_rows`` rows
        (each block read from the backed file, denoised, written) and ``uns[key_added]``;
        written to a temporary file beside it and renamed when complete, so a failure
        leaves nothing half-written. The input file is never modified; it cannot be
        the output. Only estimators whose rows are independent (the low-rank and
        normalising denoisers, not the transductive kNN smoother) can be applied by
        blocks. With ``fit=True`` the counts are read once to fit (a sparse matrix
        stays sparse); ``fit=False`` with a fitted estimator reads only the blocks.
    chunk_rows : int or None, default=None
        Rows per block in backed mode; None: about 4 million values per block.

    Returns
    -------
    adata : anndata.AnnData or None
        The denoised copy with ``copy=True``, else None (``adata`` is modified). For a
        backed ``adata``: ``output_file`` opened in backed mode (``'r'``).

    Examples
    --------
    >>> import numpy as np, anndata
    >>> from sklearn_n2s.io import denoise_anndata
    >>> from sklearn_n2s.table import LowRankDenoiser
    >>> rng = np.random.default_rng(0)
    >>> adata = anndata.AnnData(rng.poisson(3.0, (20, 12)).astype(np.float32))
    >>> denoise_anndata(adata, LowRankDenoiser(2, n_groups=3))
    >>> adata.layers["denoised"].shape, adata.uns["denoised"]["layer"]
    ((20, 12), 'X')
    """
    _check_anndata(adata)
    if getattr(adata, "isbacked", False):
        return _denoise_backed(adata, estimator, layer=layer, key_added=key_added, fit=fit,
                               output_file=output_file, chunk_rows=chunk_rows)
    if output_file is not None:
        raise ValueError("output_file is for an AnnData opened in backed mode; this one is "
                         "in memory (write it with adata.write_h5ad).")
    if copy:
        adata = adata.copy()
    layer = _resolve_layer(adata, layer)
    counts = get_counts(adata, layer)
    check_dense_size(*counts.shape, "the denoised layer")
    model = clone(estimator).fit(counts) if fit else estimator
    adata.layers[key_added] = model.transform(counts)
    adata.uns[key_added] = {
        "estimator": repr(model),
        "layer": layer,
    }
    return adata if copy else None


def _denoise_backed(adata, estimator, *, layer, key_added, fit, output_file, chunk_rows):
    """:func:`denoise_anndata` for a backed AnnData: a new file, written by row blocks."""
    import shutil

    import anndata
    import h5py
    import numpy as np

    from ..utils._table_validation import CHUNK_ENTRIES
    from ._images import atomic_output, same_file

    if output_file is None:
        raise ValueError(
            "adata is opened in backed mode: pass output_file, the new .h5ad file to write "
            "(the input file is never modified).")
    if same_file(output_file, adata.filename):
        raise ValueError(f"output_file {output_file} is the backed input file: refusing to "
                         "modify it; choose another output file.")
    layer = _resolve_layer(adata, layer)
    source = adata.X if layer == "X" else get_counts(adata, layer)
    n_obs, n_vars = adata.shape
    if fit:
        whole = source.to_memory() if hasattr(source, "to_memory") else source[:]
        model = clone(estimator).fit(whole)
        del whole
    else:
        model = estimator
    if getattr(model, "_row_independent", False) is not True:
        raise ValueError(
            f"{type(model).__name__} cannot denoise a backed file by blocks of rows: its "
            "output for a row depends on the other rows (a kNN smoother is transductive). "
            "Read the file into memory, or use a row-independent denoiser such as "
            "LowRankDenoiser.")
    step = chunk_rows or max(1, CHUNK_ENTRIES // max(n_vars, 1))
    dtype = np.float32 if np.dtype(getattr(source, "dtype", np.float64)) == np.float32 \
        else np.float64
    with atomic_output(output_file) as tmp:
        shutil.copyfile(adata.filename, tmp)  # on disk: the input's bytes, not memory
        with h5py.File(tmp, "r+") as handle:
            if "layers" not in handle:
                anndata.io.write_elem(handle, "layers", {})
            if key_added in handle["layers"]:
                del handle["layers"][key_added]
            out = handle["layers"].create_dataset(
                key_added, shape=(n_obs, n_vars), dtype=dtype,
                chunks=(min(step, n_obs), n_vars))
            out.attrs["encoding-type"] = "array"
            out.attrs["encoding-version"] = "0.2.0"
            for start in range(0, n_obs, step):
                rows = slice(start, min(start + step, n_obs))
                out[rows] = np.asarray(model.transform(source[rows]), dtype=dtype)
            if "uns" not in handle:
                anndata.io.write_elem(handle, "uns", {})
            if key_added in handle["uns"]:
                del handle["uns"][key_added]
            anndata.io.write_elem(handle["uns"], key_added,
                                  {"estimator": repr(model), "layer": layer})
    return anndata.read_h5ad(output_file, backed="r")


def counts_from_log_normalized(adata, *, use_raw=True, size_key="n_counts", scale=1e4):
    """Integer counts back from log-normalised data: ``round(expm1(X) * size / scale)``.

    For data stored as ``log1p(counts / size * scale)`` with the per-cell totals kept in
    ``adata.obs[size_key]`` (scanpy's bundled ``pbmc68k_reduced()``: ``.raw.X``, totals
    in ``obs['n_counts']``, scale 1e4). Returns a dense float64 array; the rounding
    error is reported if it is large (then the data were not stored that way).

    Parameters
    ----------
    adata : anndata.AnnData
        Holds the log-normalised values and the per-cell totals.
    use_raw : bool, default=True
        Read ``adata.raw.X`` (where scanpy keeps all genes); False reads ``adata.X``.
    size_key : str, default='n_counts'
        Column of ``adata.obs`` with each cell's total counts.
    scale : float, default=1e4
        The ``target_sum`` the data were normalised to.

    Returns
    -------
    counts : ndarray of shape (n_obs, n_vars)
        Integer-valued float64 counts.

    Raises
    ------
    ValueError
        When a recovered value is more than 0.25 from an integer.

    Examples
    --------
    >>> import numpy as np, anndata
    >>> from sklearn_n2s.io import counts_from_log_normalized
    >>> counts = np.array([[3.0, 1.0], [0.0, 4.0]])
    >>> size = counts.sum(1)
    >>> adata = anndata.AnnData(np.log1p(counts / size[:, None] * 1e4))
    >>> adata.obs["n_counts"] = size
    >>> counts_from_log_normalized(adata, use_raw=False)
    array([[3., 1.],
           [0., 4.]])
    """
    import numpy as np

    from ..utils._table_validation import to_dense

    _check_anndata(adata)
    source = adata.raw.X if use_raw else adata.X
    size = np.asarray(adata.obs[size_key], dtype=np.float64)[:, np.newaxis]
    values = np.expm1(to_dense(source).astype(np.float64)) * size / scale
    counts = np.round(values)
    worst = float(np.max(np.abs(values - counts), initial=0.0))
    if worst > 0.25:
        raise ValueError(
            f"the recovered values are up to {worst:.2f} away from integers: the data are "
            f"not log1p(counts / obs[{size_key!r}] * {scale:g})."
        )
    return counts
