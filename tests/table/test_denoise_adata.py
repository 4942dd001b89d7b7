"""sklearn_n2s.table.denoise: one call that normalises, calibrates and denoises."""

import types

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_n2s.table import LibrarySizeNormalizer, LowRankDenoiserCV, denoise

anndata = pytest.importorskip("anndata")


def make_adata(n=240, g=40, sparse=True, seed=0):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 1.0, (n, 3)) @ rng.gamma(2.0, 1.0, (3, g))
    counts = rng.poisson(rates).astype(np.float32)
    adata = anndata.AnnData(np.log1p(counts))
    adata.layers["counts"] = sp.csr_matrix(counts) if sparse else counts
    return adata, counts


def test_writes_layer_and_calibration_record_in_place():
    adata, counts = make_adata()
    assert denoise(adata, n_components=[1, 3, 8], t=[1, 2, 4]) is None
    record = adata.uns["n2s"]
    out = adata.layers["denoised"]
    assert out.shape == counts.shape and out.dtype == np.float32
    assert record["layer"] == "counts" and record["output"] == "normalized"
    # 'auto' compares the low-rank and the diffusion curves (the kNN curve only on
    # request), keeps the family with the lower best loss, and its best parameter
    assert "knn" not in record
    best = {name: np.nanmin(record[name]["loss"]) for name in ("lowrank", "diffusion")}
    assert record["method"] == min(best, key=best.get)
    family = record[record["method"]]
    key = "n_components" if record["method"] == "lowrank" else "t"
    if record["method"] == "diffusion" and not float(record["params"]["t"]).is_integer():
        # between two scored times: the mixture's loss beat every whole time's
        mixed = record["diffusion"]["mixed"]
        assert np.nanmin(mixed) < np.nanmin(record["diffusion"]["grid"])
        k, i = np.unravel_index(np.nanargmin(mixed), mixed.shape)
        assert record["params"]["t"] == pytest.approx(
            record["diffusion"]["values"][i] + record["diffusion"]["fractions"][k, i])
    else:
        assert record["params"][key] == family["values"][np.nanargmin(family["loss"])]
    assert record["diffusion"]["grid"].shape == (2, 3)  # k in (5, 10) by t
    assert "self-supervised" in record["loss"] and "sqrt" in record["loss"]
    assert record["transform"] == "sqrt"  # the default


def test_lowrank_curve_is_lowrankdenoisercv_on_normalised_counts():
    """The low-rank curve is exactly the CV estimator's on the log-normalised counts,
    with the folds shuffled by random_state; the layer is that model's transform."""
    from sklearn.model_selection import KFold

    adata, counts = make_adata()
    denoise(adata, "lowrank", n_components=[1, 3, 8], transform="log1p", n_groups=10,
            random_state=0)
    Z = LibrarySizeNormalizer(1e4).fit_transform(sp.csr_matrix(counts))
    model = LowRankDenoiserCV([1, 3, 8], cv=KFold(3, shuffle=True, random_state=0),
                              random_state=0).fit(Z)
    np.testing.assert_allclose(adata.uns["n2s"]["lowrank"]["loss"], model.mean_losses_)
    assert adata.uns["n2s"]["params"] == {"n_components": model.n_components_}
    np.testing.assert_allclose(adata.layers["denoised"], model.transform(Z), rtol=1e-5,
                               atol=1e-5)
    assert "knn" not in adata.uns["n2s"]


def test_copy_and_counts_output():
    adata, counts = make_adata(sparse=False)
    out = denoise(adata, "knn", n_neighbors=[5, 10], output="counts", copy=True,
                  key_added="smooth", uns_key="cal")
    assert "smooth" not in adata.layers and "cal" not in adata.uns
    values = out.layers["smooth"]
    assert values.min() >= 0
    # expected counts at each cell's depth: row totals close to the observed ones
    ratio = values.sum(1) / counts.sum(1)
    assert 0.8 < np.median(ratio) < 1.1
    assert out.uns["cal"]["method"] == "knn" and set(out.uns["cal"]) >= {"knn", "params"}


def test_duck_typed_object_without_anndata():
    """The table layer never imports anndata: any object with X, layers, uns, n_obs."""
    _, counts = make_adata()
    duck = types.SimpleNamespace(X=counts, layers={}, uns={}, n_obs=counts.shape[0])
    denoise(duck, "lowrank", layer="X", n_components=[2, 3])
    assert duck.layers["denoised"].shape == counts.shape and duck.uns["n2s"]["layer"] == "X"


def test_large_tables_calibrate_with_four_gene_groups_and_k_up_to_20(monkeypatch):
    """'auto' settings follow the table's size: from LARGE_TABLE_CELLS cells, four gene
    groups (calibration graphs nearer the output's) and k = 20 as a candidate."""
    from sklearn_n2s.table import _denoise

    adata, _ = make_adata()
    denoise(adata, n_components=[1, 3], t=[1, 2])
    assert adata.uns["n2s"]["n_groups"] == 2
    assert list(adata.uns["n2s"]["diffusion"]["n_neighbors"]) == [5, 10]
    monkeypatch.setattr(_denoise, "LARGE_TABLE_CELLS", 200)  # 240 cells: a large table
    denoise(adata, n_components=[1, 3], t=[1, 2])
    assert adata.uns["n2s"]["n_groups"] == 4
    assert list(adata.uns["n2s"]["diffusion"]["n_neighbors"]) == [5, 10, 20]
    assert adata.uns["n2s"]["diffusion"]["grid"].shape[0] == 3
    # given values are kept whatever the size; other strings are refused
    denoise(adata, n_components=[1, 3], t=[1, 2], n_groups=3, diffusion_neighbors=[5])
    assert adata.uns["n2s"]["n_groups"] == 3
    assert list(adata.uns["n2s"]["diffusion"]["n_neighbors"]) == [5]
    with pytest.raises(ValueError, match="n_groups must be 'auto' or an int; got 'many'"):
        denoise(adata, n_groups="many")


def test_refusals_before_work():
    adata, counts = make_adata()
    with pytest.raises(ValueError, match=r"adata has no layer 'raw'; its layers are "
                                         r"\['counts'\]"):
        denoise(adata, layer="raw")
    with pytest.raises(ValueError, match="non-integer"):
        denoise(adata, layer="X")  # log values
    with pytest.raises(ValueError, match="method='pca' is not one of"):
        denoise(adata, method="pca")
    with pytest.raises(TypeError, match="expects an anndata.AnnData; got ndarray"):
        denoise(counts)
    with pytest.raises(ValueError, match=r"every value of n_neighbors=\[500\] is more"):
        denoise(adata, "knn", n_neighbors=[500])
    backed = types.SimpleNamespace(X=counts, layers={}, uns={}, n_obs=240, isbacked=True)
    with pytest.raises(ValueError, match="backed mode: denoise works in memory"):
        denoise(backed)
    empty = counts.copy()
    empty[3] = 0
    adata.layers["counts"] = empty
    with pytest.raises(ValueError, match="row"):
        denoise(adata)


def test_square_root_transform():
    """transform='sqrt': the curves are measured on sqrt(counts / size * target_sum),
    and expected counts are the Poisson means whose expected roots are the output
    brought back to each cell's size (not its square, which is biased low)."""
    from sklearn_n2s.table import expected_sqrt

    adata, counts = make_adata()
    denoise(adata, "lowrank", n_components=[2, 3], transform="sqrt", key_added="root")
    denoise(adata, "lowrank", n_components=[2, 3], transform="sqrt", output="counts",
            key_added="counts_out")
    size = counts.sum(1, keepdims=True)
    roots = np.maximum(adata.layers["root"].astype(np.float64), 0) * np.sqrt(size / 1e4)
    out = adata.layers["counts_out"]
    assert out.dtype == np.float32 and np.all(out >= 0)
    np.testing.assert_allclose(expected_sqrt(out), roots, rtol=1e-4, atol=1e-5)
    assert np.all(out >= roots**2 * (1 - 1e-5))  # at least the square: E[sqrt] <= sqrt(E)
    assert adata.uns["n2s"]["transform"] == "sqrt" and "sqrt" in adata.uns["n2s"]["loss"]
    with pytest.raises(ValueError, match="transform='log' is not one of"):
        denoise(adata, transform="log")


def test_diffusion_curve_is_the_smoothers_on_sqrt_normalised_counts():
    """method='diffusion': the curve is diffusion_path_losses of a DiffusionSmoother on
    sqrt(counts / size * 1e4); the layer is that smoother's transform at the best t."""
    from sklearn_n2s.table import DiffusionSmoother, diffusion_path_losses

    adata, counts = make_adata()
    denoise(adata, "diffusion", t=[1, 2, 3, 6], diffusion_neighbors=[4, 8], random_state=0)
    Z = np.sqrt(LibrarySizeNormalizer(1e4, log=False).fit_transform(counts.astype(np.float64)))
    smoother = DiffusionSmoother(6, n_neighbors=8, n_groups=2, random_state=0).fit(Z)
    grid = diffusion_path_losses(smoother, Z, [1, 2, 3, 6], n_neighbors=[4, 8])
    record = adata.uns["n2s"]
    # each k's sweep stops once its curve rose twice, or once by more than three
    # standard errors: the later times are NaN, the others the whole sweep's
    stored = record["diffusion"]["grid"]
    computed = ~np.isnan(stored)
    np.testing.assert_allclose(stored[computed], grid[computed], rtol=1e-4)
    for row, full in zip(computed, grid):
        n = int(row.sum())
        assert row[:n].all() and n >= 3
        if n < 4:  # stopped: the last computed time rose (and the one before, or
            # by a significant step)
            assert full[n - 2] < full[n - 1]
    assert not computed.all()  # this data's curves rise from t=1 or 2
    # the pick: the lowest of the whole times and of the mixtures of two successive
    # ones (t=1.24 here: 0.76 P + 0.24 P^2), whose loss is the smoother's own
    best = record["params"]
    k = [4, 8].index(best["n_neighbors"])
    loss = smoother.set_params(**best).self_supervised_loss(Z)
    mixed = record["diffusion"]["mixed"]
    assert best["t"] == pytest.approx(1.2412, abs=1e-3)
    np.testing.assert_allclose(loss, np.nanmin(mixed), rtol=1e-4)
    assert loss < np.nanmin(grid) and record["method"] == "diffusion"
    np.testing.assert_allclose(record["diffusion"]["loss"], stored[k], rtol=1e-4)
    np.testing.assert_allclose(adata.layers["denoised"],
                               smoother.set_params(**best).transform(Z), rtol=1e-4,
                               atol=1e-4)
    with pytest.raises(ValueError, match=r"every value of diffusion_neighbors=\[240\]"):
        denoise(adata, "diffusion", diffusion_neighbors=240)
