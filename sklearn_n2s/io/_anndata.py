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
                    copy=False):
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

    Returns
    -------
    adata : anndata.AnnData or None
        The denoised copy with ``copy=True``, else None (``adata`` is modified).

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
