"""AnnData helpers: counts from a layer, the denoised matrix to a layer."""

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_n2s.table import LowRankDenoiser

anndata = pytest.importorskip("anndata")
from sklearn_n2s.io import (
    counts_from_log_normalized,
    denoise_anndata,
    get_counts,
)


def make_adata(sparse=False):
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (30, 12)).astype(np.float32)
    adata = anndata.AnnData(np.log1p(counts))
    adata.layers["counts"] = sp.csr_matrix(counts) if sparse else counts
    return adata, counts


def test_reads_counts_layer_by_default_and_writes_denoised():
    adata, counts = make_adata()
    est = LowRankDenoiser(2, n_groups=3, random_state=0)
    assert denoise_anndata(adata, est) is None
    expected = LowRankDenoiser(2, n_groups=3, random_state=0).fit(counts).transform(counts)
    np.testing.assert_allclose(adata.layers["denoised"], expected)
    assert adata.uns["denoised"]["layer"] == "counts"
    assert "LowRankDenoiser" in adata.uns["denoised"]["estimator"]
    assert not hasattr(est, "components_")  # the estimator passed in is not fitted


def test_copy_layer_and_key_options():
    adata, counts = make_adata(sparse=True)
    out = denoise_anndata(adata, LowRankDenoiser(2, n_groups=3), layer="X",
                          key_added="pca2", copy=True)
    assert "pca2" in out.layers and "pca2" not in adata.layers
    assert out.uns["pca2"]["layer"] == "X"
    assert sp.issparse(get_counts(adata))


def test_prefitted_estimator():
    adata, counts = make_adata()
    est = LowRankDenoiser(2, n_groups=3).fit(counts)
    denoise_anndata(adata, est, fit=False)
    np.testing.assert_allclose(adata.layers["denoised"], est.transform(counts))


def test_errors():
    adata, _ = make_adata()
    with pytest.raises(ValueError, match="no layer 'raw_counts'"):
        get_counts(adata, "raw_counts")
    with pytest.raises(TypeError, match="expected an anndata.AnnData"):
        get_counts(np.ones((3, 3)))
    adata.obs["n_counts"] = 5e3
    with pytest.raises(ValueError, match="away from integers"):
        counts_from_log_normalized(adata, use_raw=False)


def test_pbmc_counts_are_recovered():
    sc = pytest.importorskip("scanpy")
    adata = sc.datasets.pbmc68k_reduced()
    counts = counts_from_log_normalized(adata)
    assert counts.shape == (700, 765)
    assert counts.min() == 0 and np.all(counts == np.round(counts))
    assert counts.sum(1).min() > 0
    # normalising the counts again gives back what the file stores (to its float32
    # rounding of about 5e-4 in log units)
    raw = adata.raw.X.toarray() if hasattr(adata.raw.X, "toarray") else adata.raw.X
    library = adata.obs["n_counts"].to_numpy()[:, np.newaxis]
    np.testing.assert_allclose(np.log1p(counts / library * 1e4), raw, rtol=0, atol=1e-3)


# ------------------------------------------------------------------ issue 14, item 4
def write_counts_file(path, n=400, g=30, sparse=True):
    rng = np.random.default_rng(0)
    rates = rng.gamma(2.0, 1.0, (n, 3)) @ rng.gamma(2.0, 1.0, (3, g)) / 2
    counts = rng.poisson(rates).astype(np.float32)
    adata = anndata.AnnData(sp.csr_matrix(counts) if sparse else counts)
    adata.uns["note"] = "kept"
    adata.write_h5ad(path)
    return counts


@pytest.mark.parametrize("sparse", [True, False])
def test_backed_file_is_denoised_by_row_blocks_into_a_new_file(tmp_path, sparse, monkeypatch):
    """A backed .h5ad: the estimator sees blocks of rows only, the input file's bytes are
    unchanged, and the new file holds the same layer as the in-memory path."""
    path, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    counts = write_counts_file(path, sparse=sparse)
    before = path.read_bytes()
    est = LowRankDenoiser(3, n_groups=3, random_state=0).fit(counts)
    expected = est.transform(counts)
    asked = []
    transform = LowRankDenoiser.transform
    monkeypatch.setattr(LowRankDenoiser, "transform",
                        lambda self, X: asked.append(X.shape[0]) or transform(self, X))
    backed = anndata.read_h5ad(path, backed="r")
    result = denoise_anndata(backed, est, fit=False, output_file=out, chunk_rows=64)
    assert max(asked) == 64 and sum(asked) == counts.shape[0]
    assert path.read_bytes() == before and "denoised" not in backed.layers
    assert result.isbacked
    np.testing.assert_allclose(result.layers["denoised"], expected, rtol=1e-5, atol=1e-5)
    assert result.layers["denoised"].dtype == np.float32
    assert result.uns["note"] == "kept" and result.uns["denoised"]["layer"] == "X"
    assert not [p.name for p in tmp_path.iterdir() if "tmp" in p.name]  # renamed, no debris
    result.file.close()
    backed.file.close()


def test_backed_file_fit_and_refusals(tmp_path):
    path, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    counts = write_counts_file(path)
    backed = anndata.read_h5ad(path, backed="r")
    result = denoise_anndata(backed, LowRankDenoiser(3, n_groups=3, random_state=0),
                             output_file=out)
    expected = LowRankDenoiser(3, n_groups=3, random_state=0).fit(
        sp.csr_matrix(counts)).transform(sp.csr_matrix(counts))
    np.testing.assert_allclose(result.layers["denoised"], expected, rtol=1e-4, atol=1e-4)
    result.file.close()
    with pytest.raises(ValueError, match="pass output_file"):
        denoise_anndata(backed, LowRankDenoiser(2, n_groups=3))
    with pytest.raises(ValueError, match="is the backed input file: refusing"):
        denoise_anndata(backed, LowRankDenoiser(2, n_groups=3), output_file=path)
    from sklearn_n2s.table import KNNSmoother

    with pytest.raises(ValueError, match="KNNSmoother cannot denoise a backed file by "
                                         "blocks"):
        denoise_anndata(backed, KNNSmoother(5, n_groups=3), output_file=tmp_path / "k.h5ad")
    assert not (tmp_path / "k.h5ad").exists()
    with pytest.raises(ValueError, match="output_file is for an AnnData opened in backed"):
        denoise_anndata(anndata.read_h5ad(path), LowRankDenoiser(2, n_groups=3),
                        output_file=out)
    backed.file.close()
